"""The project stage: 2-D maps (UMAP) of raw and aligned wells and of perturbations, for the
map pages (science in precompute/projection.py)."""

from __future__ import annotations

from precompute.artifacts import StageWriter
from precompute.projection import INIT_SAMPLE, project_many
from precompute.stages.registry import Stage, StageContext, Target, browsed_embedder, register


def run(ctx: StageContext, target: Target) -> str:
    config, store = ctx.config, ctx.runner.store
    keys = ctx.input_keys(STAGE, target)

    def compute(w: StageWriter) -> None:
        opts = dict(n_pca=config.pca_components, n_neighbors=config.umap_neighbors, sample=config.umap_sample,
                    seed=config.seed)
        raw = store.open_stage("embed", keys["embed"]).array("embeddings", mmap=True)
        aligned = store.open_stage("align", keys["align"]).array("embeddings", mmap=True)
        agg = store.open_stage("aggregate", keys["aggregate"]).array("unit_embeddings", mmap=False)
        maps = project_many({"raw": raw, "aligned": aligned, "perturbations": agg}, **opts)
        for name in ("raw", "aligned", "perturbations"):
            w.save_array(f"umap_{name}", maps[name])
        w.info["umap"] = {"fitted_on": {k: int(min(len(a), config.umap_sample)) for k, a in
                                        (("raw", raw), ("aligned", aligned), ("perturbations", agg))},
                          "others": "placed at the weighted mean of their fitted neighbours (docs/artifacts.md)",
                          "fit_start": f"above {2 * INIT_SAMPLE} points: a fit on {INIT_SAMPLE}, the rest placed"}

    cfg = {"pca": config.pca_components, "neighbors": config.umap_neighbors, "sample": config.umap_sample,
           "seed": config.seed}
    return ctx.runner.run_stage("project", str(target.embedder), cfg, keys, compute)


STAGE = register(Stage(name="project", version="3", after="relate", inputs=("embed", "align", "aggregate"),
                       outputs={"umap_raw": "array", "umap_aligned": "array", "umap_perturbations": "array"},
                       run=run, applies=browsed_embedder, description="2-D UMAP coordinates"))
# version 2: points beyond the UMAP sample placed from their fitted neighbours.
# version 3: a fit on more than 2 x 5,000 points starts from a placed layout, not the spectral one.
