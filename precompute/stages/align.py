"""The align stage: each embedder's well embeddings corrected for batch effects on the negative
controls, once per alignment method (precompute/align.py, precompute/align_recipe.py)."""

from __future__ import annotations

import numpy as np

from precompute.align import align
from precompute.align_recipe import pca_tvn
from precompute.artifacts import StageWriter
from precompute.stages.registry import Stage, StageContext, Target, register


def run(ctx: StageContext, target: Target) -> str:
    config, method = ctx.config, str(target.align)
    embed_key = ctx.key("embed", target.embedder)
    components = config.tvn_components
    recipe = method == "tvn" and components != "none"

    def compute(w: StageWriter) -> None:
        raw = ctx.runner.store.open_stage("embed", embed_key).array("embeddings", mmap=False)
        wells = ctx.screen.wells
        ctrl, batches = (wells["perturbation_type"] == "negative_control").to_numpy(), wells["batch"].to_numpy()
        if recipe:
            out, info = pca_tvn(raw, ctrl, batches, n_components=components, fallback=config.tvn_fallback)
            w.info.update(info)
        else:
            out = align(raw, ctrl, batches, method, **({"fallback": config.tvn_fallback} if method == "tvn" else {}))
        w.save_array("embeddings", np.asarray(out, dtype=np.float32))

    cfg = {"method": method, "fallback": config.tvn_fallback if method == "tvn" else None}
    if recipe:
        cfg["pca_components"] = components
    return ctx.runner.run_stage("align", f"{target.embedder}/{method}", cfg, {"embed": embed_key}, compute)


STAGE = register(Stage(name="align", version="3", after="embed", inputs=("embed",), outputs={"embeddings": "array"},
                       run=run, scope="embedder x align",
                       description="aligned well embeddings float32, per embedder and method"))
# version 2: float32 embeddings are multiplied in float32 (TVN, spherize, the PCA-TVN projection).
# version 3: the d x d statistics (eigh, covariances) on single-threaded BLAS: the bytes no longer depend
# on the thread count (they equal version 2 run with one thread; with two, the last bits differed).
