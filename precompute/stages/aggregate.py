"""The aggregate stage: well embeddings (primary alignment) -> one per perturbation entity
(precompute/aggregate.py), plus their unit-length copies."""

from __future__ import annotations

import numpy as np

from precompute.aggregate import aggregate_perturbations
from precompute.artifacts import StageWriter
from precompute.relate import l2_normalise
from precompute.stages.registry import Stage, StageContext, Target, parquet_safe, register


def run(ctx: StageContext, target: Target) -> str:
    method = ctx.config.aggregate_method
    inputs = ctx.input_keys(STAGE, target)

    def compute(w: StageWriter) -> None:
        emb = ctx.runner.store.open_stage("align", inputs["align"]).array("embeddings", mmap=False)
        agg, table = aggregate_perturbations(emb, ctx.screen.wells, method=method)
        w.save_table("perturbations", parquet_safe(table))
        w.save_array("embeddings", np.asarray(agg, dtype=np.float32))
        w.save_array("unit_embeddings", l2_normalise(np.asarray(agg, dtype=np.float32)))

    return ctx.runner.run_stage("aggregate", str(target.embedder), {"method": method}, inputs, compute)


STAGE = register(Stage(name="aggregate", version="1", after="align", inputs=("align",),
                       outputs={"perturbations": "table", "embeddings": "array", "unit_embeddings": "array"},
                       run=run, description="perturbation embeddings from the primary alignment"))
