"""Replicate-retrieval benchmarks with mean average precision (mAP), as in JUMP / copairs 0.5.x.

- ``phenotypic_activity``: can a perturbation's wells retrieve each other against negative
  controls? (copairs ``average_precision`` + ``mean_average_precision``; JUMP's recipe:
  negatives are the controls on the query's plate, controls never form positive pairs,
  control queries dropped.)
- ``replicate_retrieval_map``: can they retrieve each other against *other perturbations*?
  (JUMP's "consistency / non-replicate" variant; controls left out.) Computed block-wise here
  with the same AP definition as copairs (checked against copairs in tests), then copairs'
  permutation p-values and BH q-values.

Perturbation entity = (perturbation_type, perturbation), optionally x concentration_um.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Literal

import numpy as np
import pandas as pd

from precompute.aggregate import pert_id_for
from precompute.evaluation.ap_kernel import average_precision_rows, similarity_keys
from precompute.relate import l2_normalise

logger = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "pert_id",
    "perturbation_type",
    "perturbation",
    "mean_average_precision",
    "p_value",
    "q_value",
    "active",
    "n_wells",
    "n_queries",
]


def _entity_keys(wells: pd.DataFrame, per_dose: bool) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer entity code per well and the entity table (pert_id, type, perturbation[, conc])."""
    for col in ("perturbation_type", "perturbation"):
        if col not in wells.columns:
            raise ValueError(f"wells table lacks column {col!r}")
    cols = ["perturbation_type", "perturbation"]
    keys = wells[cols].astype(str).reset_index(drop=True)
    if per_dose:
        if "concentration_um" not in wells.columns:
            raise ValueError("per_dose=True needs a 'concentration_um' column in the wells table")
        keys["concentration_um"] = pd.to_numeric(wells.get("concentration_um"), errors="coerce").to_numpy()
        cols = cols + ["concentration_um"]
    codes = keys.groupby(cols, sort=True, dropna=False).ngroup().to_numpy()
    table = keys.assign(_c=codes).drop_duplicates("_c").sort_values("_c").drop(columns="_c").reset_index(drop=True)
    conc = table["concentration_um"] if per_dose else pd.Series(np.nan, index=table.index)
    table.insert(
        0,
        "pert_id",
        [pert_id_for(t, p, c) for t, p, c in zip(table["perturbation_type"], table["perturbation"], conc, strict=True)],
    )
    table["n_wells"] = np.bincount(codes, minlength=len(table))
    return codes, table


def _finish(ap: pd.DataFrame, table: pd.DataFrame, null_size: int, seed: int, cache_dir: str | None) -> pd.DataFrame:
    """copairs mAP + p-values + BH q-values per entity, joined to the entity table."""
    from copairs.map import mean_average_precision

    out_cols = RESULT_COLUMNS + (["concentration_um"] if "concentration_um" in table.columns else [])
    if ap.empty:
        return pd.DataFrame(columns=out_cols)
    if null_size > 0:
        with tempfile.TemporaryDirectory(prefix="copairs-null-") as tmp:
            # copairs caches null distributions under ~/.copairs by default; keep them out of $HOME
            res = mean_average_precision(
                ap,
                sameby=["cp_entity"],
                null_size=null_size,
                threshold=0.05,
                seed=seed,
                progress_bar=False,
                cache_dir=cache_dir or tmp,
            )
    else:  # no permutation test requested: mAP only
        res = ap.groupby("cp_entity", as_index=False)["average_precision"].mean()
        res = res.rename(columns={"average_precision": "mean_average_precision"})
        res["p_value"] = res["corrected_p_value"] = np.nan
    n_q = ap.groupby("cp_entity").size()
    res = res.rename(columns={"corrected_p_value": "q_value"})
    res["n_queries"] = res["cp_entity"].map(n_q).to_numpy()
    res = (
        table.iloc[res["cp_entity"].to_numpy()]
        .reset_index(drop=True)
        .join(res[["mean_average_precision", "p_value", "q_value", "n_queries"]].reset_index(drop=True))
    )
    res["active"] = res["q_value"] < 0.05
    return res[out_cols].sort_values("pert_id").reset_index(drop=True)


def _negative_scope(wells: pd.DataFrame, negatives: str) -> np.ndarray:
    """Group code per well within which negatives are drawn: its plate, or one group for all."""
    if negatives == "plate":
        if "plate" not in wells.columns:
            raise ValueError("negatives='plate' needs a 'plate' column in the wells table")
        return pd.factorize(wells["plate"].astype(str))[0]
    if negatives == "all":
        return np.zeros(len(wells), dtype=np.int64)
    raise ValueError(f"negatives must be 'plate' or 'all', got {negatives!r}")


def phenotypic_activity(
    emb: np.ndarray,
    wells: pd.DataFrame,
    *,
    null_size: int = 10000,
    seed: int = 0,
    negatives: Literal["plate", "all"] = "plate",
    per_dose: bool = False,
    max_pairs_per_call: int = 5_000_000,
    cache_dir: str | None = None,
) -> pd.DataFrame:
    """Phenotypic activity: mAP of retrieving an entity's replicate wells against negative controls.

    Args:
        emb: (n_wells, d) well embeddings (cosine similarity is used).
        wells: wells table with ``perturbation_type``, ``perturbation`` and (for
            negatives="plate") ``plate``; negative controls have perturbation_type
            'negative_control'.
        null_size, seed: copairs permutation null per (n_pos, n_total) configuration.
        negatives: "plate" (JUMP: each query ranks its replicates among the controls of its own
            plate) or "all" (all control wells of the screen; quadratic, small screens only).
        per_dose: entities per (compound, concentration) instead of pooled over doses.
        max_pairs_per_call: similarities ranked per block of queries (bounds memory whatever
            the screen size); APs do not depend on it.
        cache_dir: where copairs may cache null distributions (default: a temporary directory).

    Returns:
        One row per evaluable entity (>= 2 wells and >= 1 control negative for some query):
        pert_id, perturbation_type, perturbation, mean_average_precision, p_value, q_value
        (Benjamini-Hochberg over entities), active (q < 0.05), n_wells, n_queries
        (queries kept), plus concentration_um when per_dose. Queries with no negatives are dropped
        before averaging (copairs would give them AP = 1). ``null_size=0`` skips the permutation
        test (p_value, q_value NaN; active False).
    """
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[0] != len(wells):
        raise ValueError(f"emb has shape {emb.shape} but wells has {len(wells)} rows")
    if not np.isfinite(emb).all():
        raise ValueError(
            f"emb has NaN or inf values: first bad row is index {int(np.argmin(np.isfinite(emb).all(axis=1)))}"
        )
    codes, table = _entity_keys(wells, per_dose)
    is_neg = (wells["perturbation_type"].astype(str) == "negative_control").to_numpy()
    if not is_neg.any():
        raise ValueError("phenotypic activity needs negative-control wells (perturbation_type 'negative_control')")
    plate = _negative_scope(wells, negatives)
    # Same AP as copairs' average_precision (pos_sameby entity, neg_sameby plate, neg_diffby
    # control): positives are the entity's other treated wells anywhere, negatives the controls of
    # the query's plate. Ranked here per plate block instead of through copairs' pair tables,
    # which took minutes at 10^6 wells (checked equal to copairs in tests/test_evaluate.py).
    unit = l2_normalise(emb.astype(np.float32, copy=False))
    treated = np.flatnonzero(~is_neg)
    positives = _positive_pairs(treated, codes[treated], unit)
    ap = _ap_per_plate(unit, codes, plate, positives, np.flatnonzero(is_neg), None, max_pairs_per_call)
    return _finish(ap, table, null_size, seed, cache_dir)


def _positive_pairs(rows: np.ndarray, row_codes: np.ndarray, xn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row of ``rows`` whose entity code it shares with another row is a query; its
    positives are those other rows. Returns (queries, offsets, sims): query i's positives'
    similarities (dot products of rows of ``xn``) are ``sims[offsets[i]:offsets[i + 1]]``.

    Queries come entity by entity, each entity's block being its Gram matrix without the
    diagonal (row-major: one run per query), so the similarities are batched matmuls over
    entities of equal size instead of a gather of two rows per pair (10x less memory traffic at
    10^6 wells), and no per-pair index is materialised: at 10^6 wells there are ~1.4e8 pairs,
    and every int64 array of them is 1.1 GB.
    """
    # entities ordered by size, so all entities of one size are one run of rows and of pairs
    uniq, inverse, counts = np.unique(row_codes, return_inverse=True, return_counts=True)
    order = np.lexsort((np.arange(rows.size), inverse, counts[inverse]))
    sizes = counts[np.lexsort((uniq, counts))]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    multi = np.repeat(sizes, sizes) >= 2
    queries = rows[order][multi]
    offsets = np.r_[0, np.cumsum(np.repeat(sizes, sizes)[multi] - 1)]
    sims = np.empty(offsets[-1], dtype=xn.dtype)
    block_at = np.r_[0, np.cumsum(sizes * (sizes - 1))[:-1]]  # where each entity's pairs start
    for k in np.unique(sizes[sizes >= 2]):
        groups = np.flatnonzero(sizes == k)  # consecutive
        off_diag = ~np.eye(k, dtype=bool)
        step = max(1, 2_000_000 // (k * xn.shape[1]))
        for g0 in range(0, groups.size, step):
            g = groups[g0 : g0 + step]
            x = xn[rows[order[starts[g[0]] : starts[g[-1]] + k]]].reshape(g.size, k, -1)  # (m, k, d)
            gram = np.matmul(x, x.transpose(0, 2, 1))[:, off_diag]  # (m, k (k - 1))
            sims[block_at[g[0]] : block_at[g[0]] + gram.size] = gram.ravel()
    return queries, offsets, sims


def _ap_per_plate(
    xn: np.ndarray,
    codes: np.ndarray,
    plate: np.ndarray,
    positives: tuple[np.ndarray, np.ndarray, np.ndarray],
    candidates: np.ndarray,
    negative_codes: np.ndarray | None,
    max_block: int,
) -> pd.DataFrame:
    """AP of every query row against its positives (``_positive_pairs``: any plate) and the
    ``candidates`` on its own plate as negatives: all of them (``negative_codes`` None) or those
    whose entity code differs from the query's. Queries go plate by plate, in blocks of about
    ``max_block`` similarities, so memory stays bounded whatever the screen size; blocks do not
    change the APs. Consumes the positives' similarities (turned into sort keys in place).
    Returns copairs' columns: cp_entity, average_precision, n_pos_pairs, n_total_pairs."""
    queries, offsets, pos_key = positives
    np.subtract(np.float32(1.0), pos_key, out=pos_key)  # copairs' rank key, 1 - sim in float32
    by_plate = np.lexsort((queries, plate[queries]))  # plate by plate, rows ascending within one
    q_plate = plate[queries[by_plate]]
    plate_starts = np.flatnonzero(np.r_[True, q_plate[1:] != q_plate[:-1]]) if q_plate.size else np.empty(0, np.int64)
    cand_by_plate = pd.Series(candidates).groupby(plate[candidates]).indices
    recs = []
    for lo_p, hi_p in zip(plate_starts, np.r_[plate_starts[1:], q_plate.size], strict=True):
        pl = q_plate[lo_p]
        cand = candidates[cand_by_plate[pl]] if pl in cand_by_plate else np.empty(0, np.int64)
        block = max(1, max_block // max(cand.size, 1))
        for b0 in range(lo_p, hi_p, block):
            qb = by_plate[b0 : min(b0 + block, hi_p)]
            rows = queries[qb]
            neg_key = similarity_keys(xn[rows] @ xn[cand].T)
            neg = None if negative_codes is None else negative_codes[rows][:, None] != negative_codes[cand][None, :]
            ap_b, n_pos, n_neg = average_precision_rows(pos_key, offsets[qb], offsets[qb + 1], neg_key, neg)
            has_neg = n_neg > 0  # copairs would give AP = 1 to a query with no negatives
            recs.append(pd.DataFrame({"cp_entity": codes[rows[has_neg]], "average_precision": ap_b[has_neg],
                                      "n_pos_pairs": n_pos[has_neg], "n_total_pairs": (n_pos + n_neg)[has_neg]}))
    cols = ["cp_entity", "average_precision", "n_pos_pairs", "n_total_pairs"]
    ap = pd.concat(recs, ignore_index=True) if recs else pd.DataFrame(columns=cols)
    # copairs' mean_average_precision also averages this column; we do not report it, and
    # copairs computes it with a Python loop per query, so leave it empty.
    ap["normalized_average_precision"] = np.nan
    return ap


def _query_rows(wells: pd.DataFrame, include_controls: bool) -> np.ndarray:
    """Rows whose entity can be a replicate query (controls left out unless ``include_controls``)."""
    if include_controls:
        return np.arange(len(wells))
    return np.flatnonzero(~wells["perturbation_type"].astype(str).isin(["negative_control", "positive_control"]).to_numpy())


def count_replicate_entities(wells: pd.DataFrame, *, per_dose: bool = False, include_controls: bool = False) -> int:
    """How many entities have >= 2 wells and so can be replicate-mAP queries (what ``max_entities``
    samples from); the evaluate stage records it so the dashboard can say "N of M"."""
    codes, _ = _entity_keys(wells, per_dose)
    rows = _query_rows(wells, include_controls)
    return int((np.bincount(codes[rows]) >= 2).sum()) if rows.size else 0


def replicate_retrieval_map(
    emb: np.ndarray,
    wells: pd.DataFrame,
    *,
    null_size: int = 10000,
    seed: int = 0,
    negatives: Literal["plate", "all"] = "plate",
    per_dose: bool = False,
    include_controls: bool = False,
    cache_dir: str | None = None,
    max_entities: int | None = None,
) -> tuple[float, pd.DataFrame]:
    """Replicate retrieval against other perturbations: mAP per entity and overall.

    For each well of an entity with >= 2 wells, rank all other wells of the same entity
    (positives) among the wells of *other* entities (negatives: on the query's plate, or
    anywhere for negatives="all", which is quadratic in wells); AP exactly as copairs ranks
    (1 - sim in float32, positives first on ties), computed per plate in bounded blocks and
    without a Python loop per query. Queries with no negatives are dropped. Controls are left
    out unless ``include_controls`` (then each control perturbation is an entity like any other).

    ``max_entities``: when more entities qualify, a seeded random sample of that many are the
    queries (every well still competes as a negative, so each sampled entity's mAP is exact);
    the overall mAP and the fraction retrieved are then estimates over that sample. The cost
    is linear in query wells x wells per plate, about 6 minutes per space at 10^6 wells in full.

    Returns:
        (overall_map, table): overall_map is the mean of the per-entity mAPs; table has the same
        columns as phenotypic_activity (p-values from copairs' permutation null, BH q-values).
        The null costs one permutation sample per distinct (n_pos, n_total) configuration, and
        plate-scoped negatives make many of them: pass ``null_size=0`` for mAP only (fast).
    """
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(wells):
        raise ValueError(f"emb has shape {emb.shape} but wells has {len(wells)} rows")
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        raise ValueError(f"emb has NaN or inf values: first bad row is index {int(np.argmin(finite))}")
    codes, table = _entity_keys(wells, per_dose)
    plate = _negative_scope(wells, negatives)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    xn = emb / np.where(norms > 0, norms, 1)
    rows_kept = _query_rows(wells, include_controls)
    # Positive pairs of every entity (any plate), grouped by the query's plate then query row.
    queries = rows_kept
    entities = np.unique(codes[rows_kept])
    if max_entities is not None and entities.size > max_entities:
        # sample among entities that have replicates (the others are never queries)
        multi = entities[np.bincount(codes[rows_kept])[entities] >= 2]
        if multi.size > max_entities:
            picked = np.random.default_rng(seed).choice(multi, size=max_entities, replace=False)
            queries = rows_kept[np.isin(codes[rows_kept], picked)]
    ap = _ap_per_plate(xn, codes, plate, _positive_pairs(queries, codes[queries], xn), rows_kept, codes, 4_000_000)
    res = _finish(ap, table, null_size, seed, cache_dir)
    overall = float(res["mean_average_precision"].mean()) if len(res) else float("nan")
    return overall, res
