"""Stages after embedding: align, aggregate, relate, project, characterise, evaluate (docs/artifacts.md).

Per embedder: every alignment method; then, on the primary alignment, aggregation to
perturbations, their relations and the projections. Evaluation compares all embedders.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from precompute.screen import Screen

log = logging.getLogger("precompute")


def _is_negative_control(wells: pd.DataFrame) -> np.ndarray:
    return (wells["perturbation_type"] == "negative_control").to_numpy()


def stage_align(runner: Any, screen: Screen, config: Any, embed_key: str, emb_name: str, method: str) -> str:
    from precompute.align import align

    components = getattr(config, "tvn_components", "auto")
    recipe = method == "tvn" and components != "none"

    def compute(w) -> None:
        raw = runner.store.open_stage("embed", embed_key).array("embeddings", mmap=False)
        wells = screen.wells
        ctrl, batches = _is_negative_control(wells), wells["batch"].to_numpy()
        if recipe:
            from precompute.align_recipe import pca_tvn

            out, info = pca_tvn(raw, ctrl, batches, n_components=components, fallback=config.tvn_fallback)
            w.info.update(info)
        else:
            out = align(raw, ctrl, batches, method, **({"fallback": config.tvn_fallback} if method == "tvn" else {}))
        w.save_array("embeddings", np.asarray(out, dtype=np.float32))

    cfg = {"method": method, "fallback": config.tvn_fallback if method == "tvn" else None}
    if recipe:
        cfg["pca_components"] = components
    return runner.run_stage("align", f"{emb_name}/{method}", cfg, {"embed": embed_key}, compute)


def stage_aggregate(runner: Any, screen: Screen, config: Any, align_key: str, emb_name: str) -> str:
    from precompute.aggregate import aggregate_perturbations
    from precompute.relate import l2_normalise

    def compute(w) -> None:
        emb = runner.store.open_stage("align", align_key).array("embeddings", mmap=False)
        agg, table = aggregate_perturbations(emb, screen.wells, method=config.aggregate_method)
        w.save_table("perturbations", _parquet_safe(table))
        w.save_array("embeddings", np.asarray(agg, dtype=np.float32))
        w.save_array("unit_embeddings", l2_normalise(np.asarray(agg, dtype=np.float32)))

    return runner.run_stage("aggregate", emb_name, {"method": config.aggregate_method}, {"align": align_key}, compute)


def stage_relate(runner: Any, screen: Screen, config: Any, keys: dict[str, str], emb_name: str) -> str:
    """Neighbours, similarity matrices, well distances to plate controls, phenotypic activity."""
    from precompute import relate
    from precompute.evaluate import phenotypic_activity

    def compute(w) -> None:
        agg = runner.store.open_stage("aggregate", keys["aggregate"])
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
        w.save_array("sim_gene_compound", unit[genes] @ unit[cmpds].T, dtype="float16")
        w.save_array("sim_gene_gene", unit[genes] @ unit[genes].T, dtype="float16")
        w.save_array("sim_compound_compound", unit[cmpds] @ unit[cmpds].T, dtype="float16")
        w.save_array("null_similarity", relate.null_similarity_sample(unit, 100_000, seed=config.seed))
        w.dtypes["similarity_note"] = "float16 matrices; neighbour lists float32 from exact cosine"

        wells = screen.wells
        ctrl = _is_negative_control(wells)
        plates = wells["plate"].to_numpy()
        metrics = pd.DataFrame({"well_id": wells["well_id"].to_numpy()})
        # Well embeddings memory-mapped, one space at a time (1.5 GB each at 10^6 wells x 384):
        # every use below streams them in chunks instead of holding copies.
        for space in ("raw", "aligned"):
            stage, key = ("embed", keys["embed"]) if space == "raw" else ("align", keys["align"])
            emb = runner.store.open_stage(stage, key).array("embeddings", mmap=True)
            metrics[f"distance_to_controls_{space}"] = relate.distance_to_plate_controls(emb, plates, ctrl)
            metrics[f"pc1_{space}"] = _first_pc(emb, ctrl)
            del emb
        w.save_table("well_metrics", metrics)

        aligned = runner.store.open_stage("align", keys["align"]).array("embeddings", mmap=True)
        activity = phenotypic_activity(aligned, wells, seed=config.seed)
        del aligned
        w.save_table("activity", _parquet_safe(activity))

    return runner.run_stage("relate", emb_name, {"top_k": config.top_k, "seed": config.seed},
                            {"aggregate": keys["aggregate"], "align": keys["align"], "embed": keys["embed"]}, compute)


def _first_pc(emb: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
    """Score on the first principal component of all wells (sign fixed: controls' mean below 0).
    The component comes from every (n // 20000)-th well; scores are (emb - mean) @ pc computed as
    emb @ pc - mean @ pc, so no centred copy of the wells is made."""
    mean = np.asarray(emb.mean(axis=0, dtype=np.float64), dtype=np.float32)
    sub = np.asarray(emb[:: max(1, len(emb) // 20000)]) - mean
    _, _, vt = np.linalg.svd(sub, full_matrices=False)
    pc = np.asarray(emb @ vt[0]) - mean @ vt[0]
    if ctrl.any() and pc[ctrl].mean() > 0:
        pc = -pc
    return pc.astype(np.float32)


def stage_project(runner: Any, screen: Screen, config: Any, keys: dict[str, str], emb_name: str) -> str:
    from precompute.reduce import project_many

    def compute(w) -> None:
        opts = dict(n_pca=config.pca_components, n_neighbors=config.umap_neighbors, sample=config.umap_sample, seed=config.seed)
        raw = runner.store.open_stage("embed", keys["embed"]).array("embeddings", mmap=True)
        aligned = runner.store.open_stage("align", keys["align"]).array("embeddings", mmap=True)
        agg = runner.store.open_stage("aggregate", keys["aggregate"]).array("unit_embeddings", mmap=False)
        maps = project_many({"raw": raw, "aligned": aligned, "perturbations": agg}, **opts)
        for name in ("raw", "aligned", "perturbations"):
            w.save_array(f"umap_{name}", maps[name])
        w.info["umap"] = {"fitted_on": {k: int(min(len(a), config.umap_sample)) for k, a in
                                        (("raw", raw), ("aligned", aligned), ("perturbations", agg))},
                          "others": "placed at the weighted mean of their fitted neighbours (docs/artifacts.md)"}

    cfg = {"pca": config.pca_components, "neighbors": config.umap_neighbors, "sample": config.umap_sample, "seed": config.seed}
    return runner.run_stage("project", emb_name, cfg, {k: keys[k] for k in ("embed", "align", "aggregate")}, compute)


def stage_evaluate(runner: Any, screen: Screen, config: Any, per_embedder: dict[str, dict[str, Any]]) -> str:
    from precompute.scorecard import evaluate_run

    inputs = {f"{e}/{stage}/{m}": key for e, d in per_embedder.items() for stage, node in d.items()
              for m, key in (node.items() if isinstance(node, dict) else [("-", node)])}

    def compute(w) -> None:
        from precompute.evaluate_map import count_replicate_entities
        from precompute.scorecard import MAX_REPLICATE_ENTITIES

        result = evaluate_run(runner.store, screen, per_embedder, config)
        w.info["replicate_map_sample"] = f"at most {MAX_REPLICATE_ENTITIES} perturbations (seeded) query; see docs/artifacts.md"
        # Counts the dashboard shows beside the results ("over N of M perturbations", "on N of M wells").
        n_rep = count_replicate_entities(screen.wells)
        w.info["replicate_map"] = {"with_replicates": n_rep, "queried": min(n_rep, MAX_REPLICATE_ENTITIES)}
        batch = result.get("tables", {}).get("batch")
        used = int(batch["n_samples"].max()) if batch is not None and len(batch) and "n_samples" in batch else None
        w.info["batch_metrics"] = {"wells": len(screen.wells), "sampled": used}
        for name, df in result.pop("tables", {}).items():
            w.save_table(name, _parquet_safe(df))
        w.save_json("benchmarks", result)

    return runner.run_stage("evaluate", "all", {"seed": config.seed}, inputs, compute)


def run_downstream(runner: Any, screen: Screen, config: Any, ingest_key: str, embed_keys: dict[str, str], primary: str) -> dict[str, Any]:
    from precompute.characterise import stage_characterise

    out: dict[str, Any] = {"align": {}, "aggregate": {}, "relate": {}, "project": {}, "characterise": {}}
    per_embedder: dict[str, dict[str, Any]] = {}
    methods = list(dict.fromkeys(list(config.align_methods) + [config.primary_align]))
    for emb_name, embed_key in embed_keys.items():
        aligns = {m: stage_align(runner, screen, config, embed_key, emb_name, m) for m in methods}
        out["align"][emb_name] = aligns
        keys = {"embed": embed_key, "align": aligns[config.primary_align]}
        keys["aggregate"] = stage_aggregate(runner, screen, config, keys["align"], emb_name)
        out["aggregate"][emb_name] = keys["aggregate"]
        per_embedder[emb_name] = {"embed": embed_key, "align": aligns, "aggregate": keys["aggregate"]}
        # Relations and maps are what the pages browse: compute them for the primary embedder, and
        # for every embedder on small screens where they are cheap (the Benchmarks page compares).
        if emb_name == primary or len(screen.wells) <= 20_000:
            out["relate"][emb_name] = stage_relate(runner, screen, config, keys, emb_name)
            out["project"][emb_name] = stage_project(runner, screen, config, keys, emb_name)
            keys["relate"] = out["relate"][emb_name]
            out["characterise"][emb_name] = stage_characterise(runner, screen, config, keys, emb_name)
    out["evaluate"] = stage_evaluate(runner, screen, config, per_embedder)
    return out


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].astype("string")
    return out
