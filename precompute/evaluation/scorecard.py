"""The evaluate stage's scorecard: every embedder and alignment of a run compared (runner:
precompute/stages/evaluate.py).

- relationship recall per annotation source (Kraus et al. 2024, Table 3), on gene embeddings
  aggregated from each space;
- replicate retrieval mAP (copairs) and the fraction of perturbations retrieved at q < 0.05;
- batch metrics (batch classification accuracy vs chance, silhouette by batch; the same for
  plate row, the well-position effect), raw vs each alignment;
- the compound-gene benchmark (per-compound AP/AUC of |cosine| to target genes).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from precompute.aggregate import aggregate_perturbations
from precompute.artifacts import ArtifactStore
from precompute.evaluation.batch import batch_metrics
from precompute.evaluation.mean_ap import replicate_retrieval_map
from precompute.evaluation.recall import compound_gene_benchmark, gene_rows, relationship_recall
from precompute.run_config import RunConfig
from precompute.screen import Screen

log = logging.getLogger("precompute")

# Replicate mAP queries at most this many perturbations (a seeded sample; every well still competes
# as a negative, so each sampled mAP is exact). Small screens are never sampled; at 10^6 wells the
# full computation took ~6 minutes per space, the sample well under one.
MAX_REPLICATE_ENTITIES = 2000

DESCRIPTIONS = {
    "recall": "Fraction of known gene-gene relationships whose cosine similarity is in the top or bottom 5% "
              "of all gene pairs; random embeddings give 0.10.",
    "replicate_map": "How well a perturbation's replicate wells find each other among other perturbations' wells "
                     "(mean average precision); higher means reproducible phenotypes. Screens with more than 2,000 "
                     "perturbations: a seeded sample of 2,000 (n_perturbations says how many).",
    "batch": "How well a 10-nearest-neighbour classifier predicts the batch (or plate row) from the embedding; near chance after "
             "alignment means the technical signal was removed.",
    "compound_gene": "For each compound, how well |cosine| to genes ranks its known targets first "
                     "(average precision; AUC 0.5 is chance).",
}


def synthetic_interactions(targets: pd.DataFrame, genes: list[str]) -> pd.DataFrame:
    """Turn compound->target pairs without potencies into the benchmark's table: targets are
    potent (100 nM), every other gene of the map is a clear non-binder (1 M)."""
    rows = []
    by_cmpd = targets.groupby("compound")["gene"].apply(set)
    for cmpd, tset in by_cmpd.items():
        for g in genes:
            rows.append((cmpd, g, 100.0 if g in tset else 1e9))
    return pd.DataFrame(rows, columns=["compound", "gene", "nM_value"])


def evaluate_run(store: ArtifactStore, screen: Screen, per_embedder: dict[str, dict[str, Any]],
                 config: RunConfig) -> dict[str, Any]:
    """Every metric for every embedder x space (raw and each alignment): tables, a summary, descriptions."""
    wells = screen.wells
    relationships = screen.ground_truth("relationships")
    targets = screen.ground_truth("compound_targets")
    batches = wells["batch"].to_numpy()
    rows_label = wells["row"].to_numpy()
    recall_rows, rep_rows, batch_rows, cg_rows = [], [], [], []
    for emb_name, keys in per_embedder.items():
        spaces = {"raw": ("embed", keys["embed"])}
        spaces.update({method: ("align", key) for method, key in keys["align"].items()})
        for space, (stage, key) in spaces.items():
            # memory-mapped, one space at a time (1.5 GB each at 10^6 wells x 384): the metrics below
            # stream it in chunks or take samples, so only the pages in use stay resident
            emb = store.open_stage(stage, key).array("embeddings", mmap=True)
            log.info("evaluate  %-12s %-12s", emb_name, space)
            for label_name, labels in (("batch", batches), ("plate_row", rows_label)):
                if len(np.unique(labels)) > 1:
                    m = batch_metrics(emb, labels, seed=config.seed, max_samples=3000, classifier="knn")
                    batch_rows.append({"embedder": emb_name, "space": space, "label": label_name, **m})
            overall, rep = replicate_retrieval_map(emb, wells, seed=config.seed, null_size=2000,
                                                   max_entities=MAX_REPLICATE_ENTITIES)
            rep_rows.append({"embedder": emb_name, "space": space, "map": overall,
                             "fraction_q05": float((rep["q_value"] < 0.05).mean()) if len(rep) else np.nan,
                             "n_perturbations": len(rep)})
            agg, full = aggregate_perturbations(emb, wells)
            g_rows = gene_rows(full)
            gene_emb, genes = agg[g_rows], full.loc[g_rows, "perturbation"].astype(str).tolist()
            if relationships is not None and len(genes) > 2:
                rec = relationship_recall(gene_emb, genes, relationships)
                for r in rec.to_dict("records"):
                    recall_rows.append({"embedder": emb_name, "space": space, **r})
            if targets is not None and len(genes) > 2 and space == config.primary_align:
                dose = ((full["perturbation_type"] == "compound") & (full["level"] == "dose")).to_numpy()
                if dose.any():
                    cg = compound_gene_benchmark(agg[dose], full.loc[dose].reset_index(drop=True), gene_emb, genes,
                                                 synthetic_interactions(targets, genes)
                                                 if "nM_value" not in targets.columns else targets)
                    for r in cg.to_dict("records"):
                        cg_rows.append({"embedder": emb_name, "space": space, **r})
    tables = {
        "recall": pd.DataFrame(recall_rows),
        "replicate_map": pd.DataFrame(rep_rows),
        "batch": pd.DataFrame(batch_rows),
        "compound_gene": pd.DataFrame(cg_rows),
    }
    return {"descriptions": DESCRIPTIONS, "summary": summarise(tables, config.primary_align), "tables": tables}


def summarise(tables: dict[str, pd.DataFrame], primary_align: str) -> dict[str, Any]:
    """Small JSON-able summary: recall (primary alignment) per embedder x source, and batch effects."""
    out: dict[str, Any] = {"primary_align": primary_align}
    rec = tables["recall"]
    if len(rec):
        sub = rec[rec["space"] == primary_align]
        out["recall"] = {e: dict(zip(g["source"], g["recall"].round(4))) for e, g in sub.groupby("embedder")}
    rep = tables["replicate_map"]
    if len(rep):
        out["replicate_map"] = {e: dict(zip(g["space"], g["map"].round(4))) for e, g in rep.groupby("embedder")}
    bat = tables["batch"]
    if len(bat):
        b = bat[bat["label"] == "batch"]
        out["batch_accuracy"] = {e: dict(zip(g["space"], g["accuracy"].round(4))) for e, g in b.groupby("embedder")}
        out["batch_chance"] = float(b["chance"].iloc[0]) if len(b) else None
    cg = tables["compound_gene"]
    if len(cg):
        whole = cg[cg["concentration_um"].isna()] if "concentration_um" in cg.columns else cg
        out["compound_gene"] = {e: {"mean_ap": round(float(g["average_precision"].mean()), 4),
                                    "mean_auc": round(float(g["roc_auc"].mean()), 4)} for e, g in whole.groupby("embedder")}
    return out
