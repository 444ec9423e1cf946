"""Aggregate: one embedding per perturbation entity from aligned well embeddings.

Entities (one output row each):
- genetic perturbations (crispr, orf): pooled over guides and wells, keyed by
  (perturbation_type, perturbation) so a gene's CRISPR and ORF entities stay apart;
- compounds: pooled over all concentrations (``level='pooled'``) AND one entity per
  concentration (``level='dose'``);
- controls (negative_control, positive_control): one pooled entity per control perturbation.

``pert_id`` is unique and URL-safe: ``crispr:TP53``, ``compound:CPD0012``,
``compound:CPD0012@1.0`` (perturbation percent-encoded, concentration as Python float repr).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

import numpy as np
import pandas as pd
import scipy.sparse as sp

ENTITY_COLUMNS: tuple[str, ...] = (
    "pert_id",
    "perturbation_type",
    "perturbation",
    "level",
    "concentration_um",
    "gene",
    "n_wells",
    "n_plates",
    "n_batches",
    "n_guides",
    "replicate_cosine",
)
_CHUNK = 32768  # rows per sparse group-sum pass: bounds the float64 working copy to ~100 MB


def pert_id_for(perturbation_type: str, perturbation: str, concentration_um: float | None = None) -> str:
    """The entity id used across artifacts, e.g. ``crispr:TP53`` or ``compound:CPD0012@1.0``."""
    base = f"{perturbation_type}:{quote(str(perturbation), safe='')}"
    if concentration_um is None or pd.isna(concentration_um):
        return base
    return f"{base}@{float(concentration_um)!r}"


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a column, -1 for missing (used only for distinct counts)."""
    codes, _ = pd.factorize(values, sort=False)
    return codes


def _distinct_per_group(group_of_row: np.ndarray, value_codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Number of distinct non-missing values per group, without a Python loop."""
    ok = (group_of_row >= 0) & (value_codes >= 0)
    pairs = np.unique(group_of_row[ok].astype(np.int64) * (value_codes.max(initial=0) + 1) + value_codes[ok])
    groups = pairs // (value_codes.max(initial=0) + 1)
    return np.bincount(groups, minlength=n_groups)


def _group_sums(emb: np.ndarray, memberships: list[np.ndarray], n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group sums of raw rows and of L2-normalised rows (plus count of non-zero rows).

    ``memberships`` is a list of (n_wells,) group-index arrays (-1 = not in that grouping); a
    well can belong to one group per array. A sparse indicator (groups x chunk) times the dense
    chunk does the sum in float64 without copying the whole matrix (faster than np.add.at or
    sorting at 10^5-10^6 wells).
    Returns sums (n_groups, d) and normalised sums (n_groups, d+1), last column = sum of |u|^2.
    """
    n, d = emb.shape
    sums = np.zeros((n_groups, d))
    nsums = np.zeros((n_groups, d + 1))
    for lo in range(0, n, _CHUNK):
        x = np.asarray(emb[lo : lo + _CHUNK], dtype=np.float64)
        norms = np.linalg.norm(x, axis=1)
        safe = np.where(norms > 0, norms, 1.0)
        xn = np.empty((x.shape[0], d + 1))
        xn[:, :d] = x / safe[:, None]
        xn[:, d] = (norms > 0).astype(np.float64)
        rows, cols = [], []
        for m in memberships:
            g = m[lo : lo + _CHUNK]
            keep = np.flatnonzero(g >= 0)
            rows.append(g[keep])
            cols.append(keep)
        r, c = np.concatenate(rows), np.concatenate(cols)
        ind = sp.csr_matrix((np.ones(r.size), (r, c)), shape=(n_groups, x.shape[0]))
        sums += ind @ x
        nsums += ind @ xn
    return sums, nsums


def aggregate_perturbations(
    emb: np.ndarray, wells: pd.DataFrame, *, method: Literal["mean", "median"] = "mean"
) -> tuple[np.ndarray, pd.DataFrame]:
    """Aggregate well embeddings into perturbation entities.

    Args:
        emb: (n_wells, d) aligned embeddings, row i belongs to ``wells.iloc[i]``.
        wells: wells table (contract columns; needs ``perturbation_type`` and ``perturbation``;
            uses ``concentration_um``, ``gene``, ``guide``, ``plate``, ``batch`` when present).
        method: "mean" or "median" over the entity's wells.

    Returns:
        (entity_emb, entities): entity_emb is (n_entities, d) in the input's float dtype
        (float64 for non-float input); entities has ENTITY_COLUMNS, one row per entity, ordered by
        perturbation_type, perturbation, then the pooled row before its doses (ascending).
        ``replicate_cosine`` is the mean pairwise cosine between the entity's wells (NaN if < 2),
        computed exactly from sums of unit vectors: (|sum u|^2 - sum |u|^2) / (n (n-1)).
    """
    if method not in ("mean", "median"):
        raise ValueError(f"aggregation method must be 'mean' or 'median', got {method!r}")
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[0] != len(wells):
        raise ValueError(f"emb has shape {emb.shape} but wells has {len(wells)} rows; need (n_wells, d)")
    for col in ("perturbation_type", "perturbation"):
        if col not in wells.columns:
            raise ValueError(f"wells table lacks column {col!r}; present: {list(wells.columns)}")
        missing = wells[col].isna().to_numpy()
        if missing.any():
            raise ValueError(f"wells column {col!r} is empty at row index {int(np.argmax(missing))}")
    if len(wells) == 0:
        raise ValueError("no wells to aggregate")

    ptype = wells["perturbation_type"].astype(str).to_numpy()
    pert = wells["perturbation"].astype(str).to_numpy()
    conc = (
        pd.to_numeric(wells["concentration_um"], errors="coerce").to_numpy(dtype=float)
        if "concentration_um" in wells.columns
        else np.full(len(wells), np.nan)
    )

    # Entity keys: pooled for every well, dose for compound wells with a concentration.
    keys = pd.DataFrame({"perturbation_type": ptype, "perturbation": pert})
    pooled_idx = keys.groupby(["perturbation_type", "perturbation"], sort=True).ngroup().to_numpy()
    pooled = keys.drop_duplicates().sort_values(["perturbation_type", "perturbation"]).reset_index(drop=True)
    pooled["level"], pooled["concentration_um"] = "pooled", np.nan

    is_dose = (ptype == "compound") & ~np.isnan(conc)
    dose_keys = pd.DataFrame(
        {"perturbation_type": ptype[is_dose], "perturbation": pert[is_dose], "concentration_um": conc[is_dose]}
    )
    dose_idx = np.full(len(wells), -1)
    dose_idx[is_dose] = dose_keys.groupby(["perturbation", "concentration_um"], sort=True).ngroup().to_numpy() + len(
        pooled
    )
    doses = dose_keys.drop_duplicates().sort_values(["perturbation", "concentration_um"]).reset_index(drop=True)
    doses["level"] = "dose"

    table = pd.concat([pooled, doses[pooled.columns]], ignore_index=True)
    n_groups = len(table)
    memberships = [pooled_idx, dose_idx]

    sums, nsums = _group_sums(emb, memberships, n_groups)
    n_wells = np.bincount(pooled_idx, minlength=n_groups) + np.bincount(dose_idx[is_dose], minlength=n_groups)

    if method == "mean":
        agg = sums / n_wells[:, None]
    else:
        agg = np.empty((n_groups, emb.shape[1]))
        for m in memberships:
            member = np.flatnonzero(m >= 0)
            order = member[np.argsort(m[member], kind="stable")]
            bounds = np.searchsorted(m[order], np.arange(n_groups + 1))
            for g in np.flatnonzero(np.diff(bounds)):
                agg[g] = np.median(np.asarray(emb[order[bounds[g] : bounds[g + 1]]], dtype=np.float64), axis=0)

    sq = np.einsum("ij,ij->i", nsums[:, :-1], nsums[:, :-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        rep_cos = np.where(n_wells >= 2, (sq - nsums[:, -1]) / (n_wells * (n_wells - 1.0)), np.nan)

    def distinct(col: str) -> np.ndarray:
        if col not in wells.columns:
            return np.zeros(n_groups, dtype=int)
        codes = _codes(wells[col])
        return _distinct_per_group(pooled_idx, codes, n_groups) + _distinct_per_group(dose_idx, codes, n_groups)

    table["n_wells"] = n_wells
    table["n_plates"] = distinct("plate")
    table["n_batches"] = distinct("batch")
    table["n_guides"] = distinct("guide")
    table["replicate_cosine"] = rep_cos
    if "gene" in wells.columns:
        gene = wells["gene"].astype(object).where(wells["gene"].notna(), None).reset_index(drop=True)
        # GroupBy.first skips missing values: the entity's first annotated gene.
        first = pd.concat([gene.groupby(pooled_idx).first(), gene[is_dose].groupby(dose_idx[is_dose]).first()])
        genes = first.reindex(range(n_groups))
        table["gene"] = genes.where(genes.notna(), None).to_numpy(dtype=object)
    else:
        table["gene"] = None
    table["pert_id"] = [
        pert_id_for(t, p, c if lvl == "dose" else None)
        for t, p, c, lvl in zip(
            table["perturbation_type"], table["perturbation"], table["concentration_um"], table["level"], strict=True
        )
    ]
    # Order: type, perturbation, pooled before its doses (ascending concentration).
    table["_lvl"] = (table["level"] == "dose").astype(int)
    order = table.sort_values(
        ["perturbation_type", "perturbation", "_lvl", "concentration_um"], kind="stable"
    ).index.to_numpy()
    table = table.loc[order, list(ENTITY_COLUMNS)].reset_index(drop=True)
    out_dtype = emb.dtype if np.issubdtype(emb.dtype, np.floating) else np.dtype(np.float64)
    return agg[order].astype(out_dtype), table
