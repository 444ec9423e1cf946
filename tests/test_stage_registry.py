"""The stage registry: the pipeline's order, versions and --force come from the registered stages, a
new stage is one registration (no edit elsewhere), and bad declarations are refused."""

from __future__ import annotations

import numpy as np
import pytest

from phenomix_dash.data import PhenomixData
from precompute import __version__
from precompute.artifacts import ArtifactStore
from precompute.pipeline import _expand_force, run_pipeline, stage_order, stage_versions
from precompute.run_config import RunConfig
from precompute.stages.registry import REGISTRY, Stage, StageContext, StageRegistry, Target, browsed_embedder

FAST = RunConfig(embedders=("random", "pixelstats"), primary_embedder="pixelstats")
BUILTIN = ("ingest", "embed", "align", "aggregate", "relate", "project", "characterise", "evaluate")


def _noop(ctx: StageContext, target: Target) -> str:
    return ""


def test_order_versions_and_force_come_from_the_registry() -> None:
    order = stage_order()
    assert order == tuple(s.name for s in REGISTRY.ordered())
    # The built-in stages keep their order (other registered stages may sit between them) ...
    assert [s for s in order if s in BUILTIN] == list(BUILTIN)
    # ... and the versions that key the store (byte-identical to before the registry).
    assert {s: v for s, v in stage_versions().items() if s in BUILTIN} == {
        "ingest": "1", "embed": "1", "align": "3", "aggregate": "1", "relate": "3", "project": "3",
        "characterise": "2", "evaluate": "2"}
    assert _expand_force({"relate"}) == set(order[order.index("relate"):]) >= {"project", "characterise", "evaluate"}
    assert "aggregate" not in _expand_force({"relate"})
    assert _expand_force({"all"}) == set(order)
    with pytest.raises(ValueError, match="unknown stage.*'nope'.*ingest, embed"):
        _expand_force({"nope"})
    for stage in REGISTRY.ordered():  # every output kind is one the dashboard can read
        assert stage.outputs and set(stage.outputs.values()) <= {"array", "table", "json"}


def test_the_registry_refuses_a_duplicate_an_unknown_input_and_an_unknown_after() -> None:
    reg = StageRegistry()
    reg.register(Stage(name="first", version="1", after=None, inputs=(), outputs={"x": "array"}, run=_noop, scope="run"))
    with pytest.raises(ValueError, match="'first' is registered twice"):
        reg.register(Stage(name="first", version="2", after=None, inputs=(), outputs={}, run=_noop))
    reg.register(Stage(name="second", version="1", after="first", inputs=("first", "ghost"), outputs={}, run=_noop))
    with pytest.raises(ValueError, match=r"'second': inputs \['ghost'\] are not stages that run before it"):
        reg.ordered()
    reg.unregister("second")
    reg.register(Stage(name="third", version="1", after="ghost", inputs=(), outputs={}, run=_noop))
    with pytest.raises(ValueError, match="'third' runs after 'ghost', which is not a registered stage"):
        reg.ordered()
    with pytest.raises(ValueError, match="scope 'plate'"):
        Stage(name="bad", version="1", after=None, inputs=(), outputs={}, run=_noop, scope="plate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be one of array, table, json"):
        Stage(name="bad", version="1", after=None, inputs=(), outputs={"x": "csv"}, run=_noop)  # type: ignore[dict-item]
    reg.unregister("third")
    with pytest.raises(KeyError, match="no stage 'ghost'; stages are first"):
        reg.get("ghost")


def _toy_run(ctx: StageContext, target: Target) -> str:
    """A throwaway stage after relate: each perturbation's summed top-neighbour similarity."""
    inputs = ctx.input_keys(TOY, target)

    def compute(w) -> None:
        sims = ctx.runner.store.open_stage("relate", inputs["relate"]).array("neighbours_top_sim", mmap=False)
        w.save_array("top_sim_sum", np.asarray(sims, dtype=np.float64).sum(axis=1))

    return ctx.runner.run_stage("toy", str(target.embedder), {"seed": ctx.config.seed}, inputs, compute)


TOY = Stage(name="toy", version="1", after="relate", inputs=("relate",), outputs={"top_sim_sum": "array"},
            run=_toy_run, applies=browsed_embedder)


@pytest.fixture
def fast_umap(monkeypatch):
    from precompute import projection

    monkeypatch.setattr(projection, "umap_2d", lambda x, **kw: np.asarray(x, np.float32)[:, :2].copy())


def test_a_new_stage_is_one_registration(tiny_screen, tmp_path, fast_umap) -> None:
    store = tmp_path / "store"
    before = run_pipeline(tiny_screen, store, FAST, progress=False)
    REGISTRY.register(TOY)
    try:
        assert stage_order().index("toy") > stage_order().index("relate")  # its "after" (and its input)
        assert stage_versions()["toy"] == "1"
        run = run_pipeline(tiny_screen, store, FAST, progress=False)
        # The existing stages keep their keys (all cached); only the new one computes, per embedder.
        assert {k: v for k, v in run["stages"].items() if k != "toy"} == before["stages"]
        assert [(r["stage"], r["skipped"]) for r in run["reports"] if not r["skipped"]] == [("toy", False)] * 2
        assert set(run["stages"]["toy"]) == {"random", "pixelstats"}
        manifest = ArtifactStore(store, create=False).open_stage("toy", run["stages"]["toy"]["pixelstats"]).manifest
        assert manifest["code_version"] == f"{__version__}/1"
        assert manifest["inputs"] == {"relate": run["stages"]["relate"]["pixelstats"]}

        d = PhenomixData(store)
        got = d.artifact("toy", "top_sim_sum")  # the primary embedder by default
        sims = np.asarray(d.neighbours("pixelstats")["top_sim"], dtype=np.float64)
        np.testing.assert_allclose(got, sims.sum(axis=1))
        assert d.artifact("toy", "top_sim_sum", "random").shape == (len(d.perturbations("random")),)
        with pytest.raises(KeyError, match="stage 'toy' declares no output 'nope'; it declares top_sim_sum"):
            d.artifact("toy", "nope")
    finally:
        REGISTRY.unregister("toy")
    assert "toy" not in stage_order()


def test_artifact_reads_every_declared_kind_of_the_builtin_stages(tiny_screen, tmp_path, fast_umap) -> None:
    store = tmp_path / "store"
    run_pipeline(tiny_screen, store, FAST, progress=False)
    d = PhenomixData(store)
    assert d.artifact("ingest", "wells")["well_id"].tolist() == d.wells["well_id"].tolist()
    aligned = d.artifact("align", "embeddings", "random")  # the primary alignment method
    assert np.array_equal(aligned, d.stage("align", "random", FAST.primary_align).array("embeddings"))
    assert d.artifact("evaluate", "benchmarks")["summary"]["primary_align"] == FAST.primary_align
    assert len(d.artifact("evaluate", "recall")) and d.perturbations().equals(d.artifact("aggregate", "perturbations"))
    with pytest.raises(KeyError, match="no stage 'nope'"):
        d.artifact("nope", "x")
