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


def _dot_of_unit_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine of paired rows already L2-normalised (copairs' "cosine" re-normalises every pair)."""
    return np.einsum("ij,ij->i", x, y)


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
        max_pairs_per_call: entities are processed in groups whose pair count stays under this,
            so copairs' memory stays bounded whatever the screen size; APs do not depend on it.
        cache_dir: where copairs may cache null distributions (default: a temporary directory).

    Returns:
        One row per evaluable entity (>= 2 wells and >= 1 control negative for some query):
        pert_id, perturbation_type, perturbation, mean_average_precision, p_value, q_value
        (Benjamini-Hochberg over entities), active (q < 0.05), n_wells, n_queries
        (queries kept), plus concentration_um when per_dose. Queries with no negatives are dropped
        before averaging (copairs would give them AP = 1). ``null_size=0`` skips the permutation
        test (p_value, q_value NaN; active False).
    """
    from copairs.map import average_precision
    from copairs.matching import UnpairedException

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

    ctrl_per_plate = np.bincount(plate[is_neg], minlength=plate.max() + 1)
    treated = np.flatnonzero(~is_neg)
    # Pairs each entity costs: its replicate pairs + each well against its plate's controls.
    n_w = np.bincount(codes[treated], minlength=len(table))
    cost = n_w * (n_w - 1) // 2 + np.bincount(
        codes[treated], weights=ctrl_per_plate[plate[treated]], minlength=len(table)
    )
    entities = np.flatnonzero(n_w >= 2)
    groups, cur, acc = [], [], 0.0
    for e in entities:
        if cur and acc + cost[e] > max_pairs_per_call:
            groups.append(cur)
            cur, acc = [], 0.0
        cur.append(e)
        acc += cost[e]
    if cur:
        groups.append(cur)

    unit = l2_normalise(emb.astype(np.float32, copy=False))
    by_entity = pd.Series(np.arange(len(codes))).groupby(codes).indices
    ctrl_rows = np.flatnonzero(is_neg)
    aps = []
    for grp in groups:
        rows = np.concatenate([by_entity[e] for e in grp])
        rows = rows[~is_neg[rows]]
        ctrl = ctrl_rows[np.isin(plate[ctrl_rows], np.unique(plate[rows]))]
        sel = np.concatenate([rows, ctrl])
        meta = pd.DataFrame(
            {
                # controls get unique keys: they must never be each other's positives
                "cp_key": np.where(is_neg[sel], -1 - np.arange(sel.size), codes[sel]),
                "cp_plate": plate[sel],
                "cp_negcon": is_neg[sel].astype(int),
            }
        )
        try:
            ap = average_precision(
                meta,
                unit[sel],
                pos_sameby=["cp_key"],
                pos_diffby=[],
                neg_sameby=["cp_plate"] if negatives == "plate" else [],
                neg_diffby=["cp_negcon"],
                batch_size=20000,
                distance=_dot_of_unit_rows,
                progress_bar=False,
            )
        except UnpairedException:
            continue
        ap = ap[(ap["cp_negcon"] == 0) & (ap["n_pos_pairs"] > 0) & (ap["n_total_pairs"] > ap["n_pos_pairs"])]
        aps.append(ap.assign(cp_entity=ap["cp_key"].astype(np.int64)))
    ap = pd.concat(aps, ignore_index=True) if aps else pd.DataFrame()
    return _finish(ap, table, null_size, seed, cache_dir)


def _positive_pairs(rows: np.ndarray, row_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (a, b), a != b, of ``rows`` sharing an entity code, without a Python loop."""
    order = np.argsort(row_codes, kind="stable")
    sc = row_codes[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    sizes = np.diff(np.r_[starts, sc.size])
    elem_start, n_out = np.repeat(starts, sizes), np.repeat(sizes, sizes) - 1
    a_pos = np.repeat(np.arange(sc.size), n_out)
    j = np.arange(n_out.sum()) - np.repeat(np.cumsum(n_out) - n_out, n_out)  # 0..k-2 per element
    own = np.repeat(np.arange(sc.size) - elem_start, n_out)
    b_pos = np.repeat(elem_start, n_out) + j + (j >= own)  # skip the element itself
    return rows[order[a_pos]], rows[order[b_pos]]


def _ap_contiguous_queries(q: np.ndarray, sims: np.ndarray, is_pos: np.ndarray):
    """AP per query from flat (query, similarity, positive?) triples, exactly as copairs ranks.

    copairs sorts each query's list by ``1 - sim`` (float32) with positives before negatives on
    ties, then averages precision at the positives (``copairs.compute.ap_contiguous``).
    Returns (query ids ascending, AP, n_pos, n_total).
    """
    from copairs.compute import ap_contiguous

    key = (np.float32(1.0) - sims.astype(np.float32)).view(np.uint32)
    # Order-preserving float32 -> uint32 (flip negatives), then one uint64 key:
    # query | 1 - sim | negative-after-positive. One argsort beats a 3-key lexsort by far.
    key = np.where(key & 0x80000000, ~key, key | 0x80000000).astype(np.uint64)
    uq, q_rank = np.unique(q, return_inverse=True)
    composite = (q_rank.astype(np.uint64) << np.uint64(33)) | (key << np.uint64(1)) | (~is_pos).astype(np.uint64)
    order = np.argsort(composite, kind="stable")
    counts = np.bincount(q_rank, minlength=uq.size)
    ap, confs = ap_contiguous(is_pos[order].astype(np.uint32), counts.astype(np.uint32))
    return uq, ap, confs[:, 0], confs[:, 1]


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
) -> tuple[float, pd.DataFrame]:
    """Replicate retrieval against other perturbations: mAP per entity and overall.

    For each well of an entity with >= 2 wells, rank all other wells of the same entity
    (positives) among the wells of *other* entities (negatives: on the query's plate, or
    anywhere for negatives="all", which is quadratic in wells); AP exactly as copairs ranks
    (1 - sim in float32, positives first on ties), computed per plate in bounded blocks and
    without a Python loop per query. Queries with no negatives are dropped. Controls are left
    out unless ``include_controls`` (then each control perturbation is an entity like any other).

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
    keep = np.ones(len(wells), dtype=bool)
    if not include_controls:
        keep = ~wells["perturbation_type"].astype(str).isin(["negative_control", "positive_control"]).to_numpy()
    plate = _negative_scope(wells, negatives)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    xn = emb / np.where(norms > 0, norms, 1)
    rows_kept = np.flatnonzero(keep)
    # Positive pairs of every entity (any plate), grouped by the query's plate then query row.
    qa, qb = _positive_pairs(rows_kept, codes[rows_kept])
    order = np.lexsort((qa, plate[qa]))
    qa, qb = qa[order], qb[order]
    pos_val = np.concatenate(
        [np.einsum("ij,ij->i", xn[qa[k : k + 65536]], xn[qb[k : k + 65536]]) for k in range(0, qa.size, 65536)]
        or [np.empty(0, np.float32)]
    )
    is_query = np.zeros(len(wells), dtype=bool)
    is_query[qa] = True
    by_plate = pd.Series(rows_kept).groupby(plate[rows_kept]).indices
    recs = []
    for pl, pidx in by_plate.items():
        rows_p = rows_kept[pidx]
        queries = rows_p[is_query[rows_p]]
        lo_p, hi_p = np.searchsorted(plate[qa], [pl, pl + 1])
        block = max(1, 4_000_000 // rows_p.size)  # bounds the (queries x plate) similarity block
        for b0 in range(0, queries.size, block):
            qblock = queries[b0 : b0 + block]
            sims = xn[qblock] @ xn[rows_p].T
            neg = codes[qblock][:, None] != codes[rows_p][None, :]  # other entities on the plate
            r_neg, _ = np.nonzero(neg)
            lo, hi = lo_p + np.searchsorted(qa[lo_p:hi_p], [qblock[0], qblock[-1] + 1])
            uq, ap_b, n_pos, n_tot = _ap_contiguous_queries(
                np.concatenate([qa[lo:hi], qblock[r_neg]]),
                np.concatenate([pos_val[lo:hi], sims[neg]]),
                np.concatenate([np.ones(hi - lo, dtype=bool), np.zeros(r_neg.size, dtype=bool)]),
            )
            has_neg = n_tot > n_pos  # copairs would give AP = 1 to a query with no negatives
            recs.append(
                pd.DataFrame(
                    {
                        "cp_entity": codes[uq[has_neg]],
                        "average_precision": ap_b[has_neg],
                        "n_pos_pairs": n_pos[has_neg],
                        "n_total_pairs": n_tot[has_neg],
                    }
                )
            )
    cols = ["cp_entity", "average_precision", "n_pos_pairs", "n_total_pairs"]
    ap = pd.concat(recs, ignore_index=True) if recs else pd.DataFrame(columns=cols)
    # copairs' mean_average_precision also averages this column; we do not report it, and
    # copairs computes it with a Python loop per query, so leave it empty.
    ap["normalized_average_precision"] = np.nan
    res = _finish(ap, table, null_size, seed, cache_dir)
    overall = float(res["mean_average_precision"].mean()) if len(res) else float("nan")
    return overall, res
