"""Which encoder block of an MAE embeds best: every block scored on the screen's own annotations
(the embed stage's ``--block best``; benchmarks/mae_blocks.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from precompute.aggregate import aggregate_perturbations
from precompute.align_recipe import pca_tvn
from precompute.evaluation.mean_ap import replicate_retrieval_map
from precompute.evaluation.recall import gene_rows, relationship_recall


def score_blocks(
    block_embeddings: dict[int, np.ndarray],
    wells: pd.DataFrame,
    relationships: pd.DataFrame | None,
    *,
    tvn_components: int | str = "auto",
    tvn_fallback: str = "error",
    seed: int = 0,
    max_entities: int = 2000,
) -> pd.DataFrame:
    """Score each encoder block's well embeddings on the screen's own annotations.

    Each block is aligned exactly as the align stage aligns the map (EFAAR's PCA + TVN on the
    negative controls, ``tvn_components`` wide), aggregated to genes, and scored by relationship
    recall per annotation source (5th/95th percentile tails) and by replicate-retrieval mAP (at most
    ``max_entities`` perturbations query, seeded, as the evaluate stage samples).

    Returns one row per block: ``block``, ``recall_mean`` (mean over sources; NaN when the screen
    has no relationship annotations), ``recall_<source>`` per source, ``replicate_map``,
    ``n_genes``, ``n_replicate_perturbations``.
    """
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    batches = wells["batch"].to_numpy()
    rows: list[dict[str, Any]] = []
    for block in sorted(block_embeddings):
        emb = np.asarray(block_embeddings[block], dtype=np.float32)
        aligned, _ = pca_tvn(emb, ctrl, batches, n_components=tvn_components, fallback=tvn_fallback)
        aligned = np.asarray(aligned, dtype=np.float32)
        row: dict[str, Any] = {"block": int(block)}
        agg, table = aggregate_perturbations(aligned, wells)
        g = gene_rows(table)
        genes = table.loc[g, "perturbation"].astype(str).tolist()
        row["n_genes"] = len(genes)
        row["recall_mean"] = float("nan")
        if relationships is not None and len(genes) > 2:
            rec = relationship_recall(agg[g], genes, relationships)
            for r in rec.itertuples():
                row[f"recall_{r.source}"] = float(r.recall)
            row["recall_mean"] = float(rec["recall"].mean()) if len(rec) else float("nan")
        overall, rep = replicate_retrieval_map(aligned, wells, seed=seed, null_size=2000, max_entities=max_entities)
        row["replicate_map"] = float(overall)
        row["n_replicate_perturbations"] = int(len(rep))
        rows.append(row)
    return pd.DataFrame(rows)


def choose_block(scores: pd.DataFrame) -> int:
    """The block with the highest mean relationship recall; replicate mAP breaks ties and decides
    alone when the screen has no relationship annotations; then the deeper block (OpenPhenom's default)."""
    if scores.empty:
        raise ValueError("no blocks were scored")
    recall = scores["recall_mean"].fillna(-1.0).round(6)
    ranked = scores.assign(_r=recall, _m=scores["replicate_map"].fillna(-1.0)).sort_values(
        ["_r", "_m", "block"], ascending=False)
    return int(ranked["block"].iloc[0])
