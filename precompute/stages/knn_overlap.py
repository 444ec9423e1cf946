"""The knn_overlap stage: for every pair of embedding spaces of the run (each embedder raw and
after each alignment method), how many of each perturbation's k nearest perturbations the two
spaces share (Jaccard at k; science in precompute/knn_overlap.py). The Compare page reads it.

Perturbations are the pooled entities (one per gene, compound or control, doses pooled): a dose
entity's nearest neighbours would be its own compound's other doses in every space, which says
nothing about the space. Each space is aggregated the way the aggregate stage aggregates the
primary alignment, so the primary space's entities are the aggregate stage's.

Options (RunConfig.stage_options["knn_overlap"]): ``k`` (list, default 5, 10, 20) and ``pairs``
(list of ["mae:tvn", "pixelstats:tvn"]; default every pair of spaces).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from precompute import knn_overlap as ko
from precompute.aggregate import aggregate_perturbations
from precompute.artifacts import StageWriter
from precompute.stages.registry import Stage, StageContext, Target, parquet_safe, register

LEVEL = "pooled"


def space_name(embedder: str, space: str) -> str:
    """'mae:tvn', 'pixelstats:raw': an embedder's well embeddings, raw or after one alignment."""
    return f"{embedder}:{space}"


def run_spaces(ctx: StageContext) -> dict[str, tuple[str, str]]:
    """{space name: (stage, key)} of every space of the run, embedders in run order, raw first."""
    out: dict[str, tuple[str, str]] = {}
    for e in ctx.embedders:
        out[space_name(e, "raw")] = ("embed", ctx.keys["embed"][e])
        for method, key in ctx.keys["align"][e].items():
            out[space_name(e, method)] = ("align", key)
    return out


def options(ctx: StageContext, spaces: list[str]) -> tuple[list[int], list[tuple[str, str]]]:
    """The configured k and pairs, checked against the run's spaces (a bad value is named)."""
    opts: dict[str, Any] = dict(ctx.config.stage_options.get("knn_overlap", {}) or {})
    ks = opts.get("k", list(ko.DEFAULT_K))
    if not isinstance(ks, list | tuple) or not ks:
        raise ValueError(f"stage_options knn_overlap k must be a list of positive integers, got {ks!r}")
    pairs = opts.get("pairs")
    if pairs is None:
        return sorted({int(k) for k in ks}), ko.all_pairs(spaces)
    out = []
    for p in pairs:
        if not isinstance(p, list | tuple) or len(p) != 2 or p[0] == p[1]:
            raise ValueError(f"stage_options knn_overlap pairs: {p!r} is not two different spaces")
        for s in p:
            if s not in spaces:
                raise ValueError(f"stage_options knn_overlap pairs: unknown space {s!r}; the run has {', '.join(spaces)}")
        out.append((str(p[0]), str(p[1])))
    return sorted({int(k) for k in ks}), out


def run(ctx: StageContext, target: Target) -> str:
    store, wells = ctx.runner.store, ctx.screen.wells
    spaces = run_spaces(ctx)
    ks, pairs = options(ctx, list(spaces))
    method = ctx.config.aggregate_method
    inputs = {f"{name}/{stage}": key for name, (stage, key) in spaces.items()}
    cfg = {"k": ks, "pairs": [list(p) for p in pairs], "level": LEVEL, "aggregate": method}

    def compute(w: StageWriter) -> None:
        used = sorted({s for p in pairs for s in p}, key=list(spaces).index)
        neighbours: dict[str, np.ndarray] = {}
        ids: list[str] = []
        for name in used:
            stage, key = spaces[name]
            emb = store.open_stage(stage, key).array("embeddings", mmap=True)
            agg, table = aggregate_perturbations(emb, wells, method=method)
            keep = (table["level"].astype(str) == LEVEL).to_numpy()
            ids = table.loc[keep, "pert_id"].astype(str).tolist()  # the same entities, in the same order, in every space
            del emb
            k_use = ko.usable_k(ks, len(ids))
            neighbours[name] = ko.neighbour_sets(agg[keep], max(k_use)) if k_use else np.empty((len(ids), 0), np.int64)
        k_use = ko.usable_k(ks, len(ids))
        table = ko.overlap_table(neighbours, pairs, k_use, ids)
        w.save_table("overlap", parquet_safe(table))
        w.save_json("summary", {
            "k": k_use, "k_requested": ks, "level": LEVEL, "n_perturbations": len(ids), "spaces": list(spaces),
            "pairs": ko.overlap_summary(table, k_use, len(ids)) if k_use else [],
            "measure": "Jaccard index of the k nearest perturbations (cosine, exact) in the two spaces; "
                       "'random' is its expectation for two spaces that share nothing",
        })

    return ctx.runner.run_stage("knn_overlap", "all", cfg, inputs, compute)


STAGE = register(Stage(
    name="knn_overlap", version="1", after="relate", inputs=("embed", "align"),
    outputs={"overlap": "table", "summary": "json"}, run=run, scope="run",
    description="Jaccard at k of each perturbation's nearest neighbours between every two spaces of the run"))
