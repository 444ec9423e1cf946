"""What precompute sampled is read from the stage manifests and shown where the result is shown:
on the tiny store nothing is sampled and nothing says so; on a store built with small sample limits
the Map, Benchmarks and Plates figures name both counts."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from phenomix_dash.data import PhenomixData
from phenomix_dash.map_panels import N_TILES
from phenomix_dash.map_views import full_figure


@pytest.fixture(scope="module")
def pages(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    create_app(Settings(store=tiny_store))
    return {n: sys.modules[f"phenomix_dash.pages.{n}"] for n in ("map", "plates", "benchmarks")}


@pytest.fixture(scope="module")
def sampled_store(tiny_screen, tmp_path_factory):
    """The tiny screen with every sample limit below its size: UMAP fitted on 100 wells, replicate
    mAP over 5 perturbations, batch metrics on 100 wells."""
    import precompute.evaluation.scorecard as sc
    import precompute.stages.evaluate as evaluate_stage
    from precompute.pipeline import RunConfig, run_pipeline

    mp = pytest.MonkeyPatch()
    real = sc.batch_metrics
    mp.setattr(sc, "MAX_REPLICATE_ENTITIES", 5)
    mp.setattr(evaluate_stage, "MAX_REPLICATE_ENTITIES", 5)  # the stage records what the scorecard sampled
    mp.setattr(sc, "batch_metrics", lambda *a, **k: real(*a, **{**k, "max_samples": 100}))
    store = tmp_path_factory.mktemp("sampled") / "store"
    try:
        run_pipeline(tiny_screen, store, RunConfig(embedders=("random",), primary_embedder="random", umap_sample=100,
                                                   umap_neighbors=10), progress=False)
    finally:
        mp.undo()
    return store


def _titles(fig) -> str:
    layout = fig["layout"] if isinstance(fig, dict) else fig.to_plotly_json()["layout"]
    title = layout.get("title") or {}
    return title.get("text") or "" if isinstance(title, dict) else str(title)


def test_nothing_sampled_nothing_said(pages, tiny_store):
    p = pages["plates"]
    d = PhenomixData(tiny_store)
    for level, space in (("wells", "raw"), ("wells", "aligned"), ("perturbations", "aligned")):
        title = full_figure(d, level, space, "perturbation_type", None, None).layout.title.text
        assert "fitted" not in title and " of " not in title and "sample" not in title, title
    assert d.stage_info("evaluate")["replicate_map"]["queried"] == d.stage_info("evaluate")["replicate_map"]["with_replicates"]
    from phenomix_dash.selection import benchmark_captions

    assert benchmark_captions(d) == (None, None)
    pos, bench, _ = p.static_figures(d)
    assert "from all" in _titles(pos) and "sample" not in _titles(pos) and "sample" not in _titles(bench)


def test_sampled_store_names_both_counts_where_results_are_shown(pages, sampled_store):
    from phenomix_dash.selection import benchmark_captions

    m, p = pages["map"], pages["plates"]
    d = PhenomixData(sampled_store)
    n = len(d.wells)
    assert n > 100
    title = full_figure(d, "wells", "raw", "perturbation_type", None, None).layout.title.text
    assert f"UMAP fitted on 100 of {n:,} wells" in title
    info = d.stage_info("evaluate")
    total = info["replicate_map"]["with_replicates"]
    assert info["replicate_map"]["queried"] == 5 < total
    rep, batch = benchmark_captions(d)
    assert rep == f"replicate mAP over a seeded sample of 5 of {total:,} perturbations with replicates"
    assert batch == f"batch metrics on a stratified sample of 100 of {n:,} wells"
    # Shown where the results are: the map's alignment summary, the Plates batch card, the Benchmarks page.
    assert rep in _titles(m._bench_figure(d)) and batch in _titles(m._bench_figure(d))
    assert batch in _titles(p.static_figures(d)[1])
    figs = {c.id: c.figure for c in _walk(_benchmarks_layout(pages["benchmarks"], sampled_store))
            if getattr(c, "id", None) in ("benchmarks-replicate-figure", "benchmarks-batch-figure")}
    assert rep in _titles(figs["benchmarks-replicate-figure"]) and batch in _titles(figs["benchmarks-batch-figure"])


def test_selection_images_say_how_many_of_the_selected_wells_they_show(pages, tiny_store):
    from phenomix_dash.selection import encode_region, region_rows

    m, d = pages["map"], PhenomixData(tiny_store)
    xy = d.umap("raw")
    lo, hi = xy.min(axis=0) - 1, xy.max(axis=0) + 1
    sel = encode_region("raw", np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]))
    n = len(region_rows(d, "wells", sel))
    tiles = m.selection_views(d, "wells", sel, None)[-1]
    heading = next(c for c in _walk(tiles) if getattr(c, "id", None) == "map-selection-tiles-heading")
    assert heading.children == f"Images: {N_TILES} of {n:,} wells"


def _benchmarks_layout(page, store):
    from phenomix.settings import Settings
    from phenomix_dash import data

    before = data._settings
    data.configure(Settings(store=store))
    try:
        return page.layout()
    finally:
        data.configure(before)  # the other tests read the tiny store


def _walk(c):
    yield c
    ch = getattr(c, "children", None)
    for x in ch if isinstance(ch, list | tuple) else [ch] if ch is not None and not isinstance(ch, str) else []:
        yield from _walk(x)
