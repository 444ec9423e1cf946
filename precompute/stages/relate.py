"""The relate stage: neighbours, similarity matrices, well distances to plate controls and
phenotypic activity of one embedder (science in precompute/relate.py and precompute/evaluation/)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from precompute import relate
from precompute.artifacts import StageWriter
from precompute.evaluation.mean_ap import phenotypic_activity
from precompute.stages.registry import Stage, StageContext, Target, browsed_embedder, parquet_safe, register


def run(ctx: StageContext, target: Target) -> str:
    config, store, screen = ctx.config, ctx.runner.store, ctx.screen
    keys = ctx.input_keys(STAGE, target)

    def compute(w: StageWriter) -> None:
        agg = store.open_stage("aggregate", keys["aggregate"])
        table = agg.table("perturbations")
        unit = agg.array("unit_embeddings", mmap=False)
        k = int(min(config.top_k, max(len(table) - 1, 1)))
        nb = relate.top_k_neighbours(unit, k)
        for name in ("top_idx", "bottom_idx"):
            w.save_array(f"neighbours_{name}", np.asarray(nb[name], dtype=np.int32))
        for name in ("top_sim", "bottom_sim"):
            w.save_array(f"neighbours_{name}", np.asarray(nb[name], dtype=np.float32))
        # Similarity matrices the heatmaps slice by memory map: entities at the pooled level only
        # for genes, and both pooled and per-dose for compounds (dose is an axis of the view).
        genes = np.flatnonzero(table["perturbation_type"].isin(["crispr", "orf"]).to_numpy())
        cmpds = np.flatnonzero((table["perturbation_type"] == "compound").to_numpy())
        w.save_array("gene_index", genes.astype(np.int32))
        w.save_array("compound_index", cmpds.astype(np.int32))
        for name, rows, cols in (("sim_gene_compound", genes, cmpds), ("sim_gene_gene", genes, genes),
                                 ("sim_compound_compound", cmpds, cmpds)):
            w.save_array(name, relate.similarity_matrix_f16(unit, rows, cols))
        w.save_array("null_similarity", relate.null_similarity_sample(unit, 100_000, seed=config.seed))
        w.dtypes["similarity_note"] = "float16 matrices; neighbour lists float32 from exact cosine"

        wells = screen.wells
        ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
        plates = wells["plate"].to_numpy()
        metrics = pd.DataFrame({"well_id": wells["well_id"].to_numpy()})
        # Well embeddings memory-mapped, one space at a time (1.5 GB each at 10^6 wells x 384):
        # every use below streams them in chunks instead of holding copies.
        for space in ("raw", "aligned"):
            stage = "embed" if space == "raw" else "align"
            emb = store.open_stage(stage, keys[stage]).array("embeddings", mmap=True)
            metrics[f"distance_to_controls_{space}"] = relate.distance_to_plate_controls(emb, plates, ctrl)
            metrics[f"pc1_{space}"] = relate.first_pc(emb, ctrl)
            del emb
        w.save_table("well_metrics", metrics)

        aligned = store.open_stage("align", keys["align"]).array("embeddings", mmap=True)
        activity = phenotypic_activity(aligned, wells, seed=config.seed)
        del aligned
        w.save_table("activity", parquet_safe(activity))

    return ctx.runner.run_stage("relate", str(target.embedder), {"top_k": config.top_k, "seed": config.seed},
                                keys, compute)


STAGE = register(Stage(
    name="relate", version="3", after="aggregate", inputs=("aggregate", "align", "embed"),
    outputs={**{f"neighbours_{s}_{v}": "array" for s in ("top", "bottom") for v in ("idx", "sim")},
             "gene_index": "array", "compound_index": "array", "sim_gene_compound": "array",
             "sim_gene_gene": "array", "sim_compound_compound": "array", "null_similarity": "array",
             "well_metrics": "table", "activity": "table"},
    run=run, applies=browsed_embedder,
    description="neighbours, similarity matrices, well distances to controls, phenotypic activity"))
# version 2: activity APs ranked per plate (was copairs' pairs).
# version 3: neighbour lists from one numba scan per row (precompute/topk_select.py): same float32
# similarities; a tie at the k-th place now goes to the lower index (argpartition chose either);
# similarity matrices filled block by block in float16 (the full float32 matrix is never held).
