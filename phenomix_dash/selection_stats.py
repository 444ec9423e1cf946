"""What a map selection holds: its perturbations and wells as tables, and its composition by
perturbation type, batch and plate against the whole screen (to catch a batch artefact).

Pure functions over the wells table and row positions do the science (unit-tested on constructed
tables); the `selection_*` functions at the bottom take the data object and an encoded selection
(`phenomix_dash.selection`), so each callback's cost can be timed on its own.

Composition is an over-representation test per category: of the screen's N wells, K carry the
category and the selection holds n wells, k of them with it. Expected k is n·K/N; the p-value is
the hypergeometric upper tail P(X >= k) (Fisher's exact test, one-sided), with Benjamini-Hochberg q
over the categories of one column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, hypergeom

from phenomix_dash.cache import memoize
from phenomix_dash.name_data import entity_name_table
from phenomix_dash.selection import selected_well_rows

COMPOSITION_COLUMNS = ("perturbation_type", "batch", "plate")
# A batch or plate is flagged as a likely artefact when it is this over-represented ...
ARTEFACT_RATIO = 2.0
# ... makes up at least this share of the selection ...
ARTEFACT_SHARE = 0.5
# ... and the over-representation is this unlikely by chance (BH q).
ARTEFACT_Q = 1e-3
# Rows a table sends to the browser; the downloads hold every row.
MAX_TABLE_ROWS = 2000

WELL_COLUMNS = ("well_id", "plate", "well", "batch", "perturbation_type", "perturbation", "concentration_um")


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q of finite p-values; NaN stays NaN (not tested is not 'q = 1')."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(p[ok], method="bh")
    return q


def composition(wells: pd.DataFrame, rows: np.ndarray, columns: tuple[str, ...] = COMPOSITION_COLUMNS,
                totals: dict[str, pd.Series] | None = None) -> pd.DataFrame:
    """Per column and category: wells selected / in the screen, expected, observed/expected, p, q.

    ``rows`` are positions in ``wells``; ``totals`` (column -> the screen's value counts) may be
    passed precomputed. Categories absent from the selection are kept (observed 0) so that an
    under-represented batch is visible too. Rows ordered by column, then most over-represented first.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n_all, n_sel = len(wells), int(rows.size)
    parts = []
    for col in columns:
        if col not in wells.columns:
            continue
        total = totals[col] if totals is not None else wells[col].astype(str).value_counts()
        picked = wells[col].iloc[rows].astype(str).value_counts().reindex(total.index, fill_value=0)
        k, big_k = picked.to_numpy(np.int64), total.to_numpy(np.int64)
        expected = n_sel * big_k / n_all if n_all else np.zeros(len(big_k))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(expected > 0, k / expected, np.nan)
        p = hypergeom.sf(k - 1, n_all, big_k, n_sel) if n_sel else np.full(len(k), np.nan)
        parts.append(pd.DataFrame({"column": col, "value": total.index.astype(str), "selected": k, "total": big_k,
                                   "expected": expected, "ratio": ratio, "share": k / n_sel if n_sel else np.nan,
                                   "p": p, "q": _bh(p)}))
    if not parts:
        return pd.DataFrame(columns=["column", "value", "selected", "total", "expected", "ratio", "share", "p", "q"])
    out = pd.concat(parts, ignore_index=True)
    order = {c: i for i, c in enumerate(columns)}
    return (out.assign(_c=out["column"].map(order)).sort_values(["_c", "ratio", "selected"], ascending=[True, False, False])
            .drop(columns="_c").reset_index(drop=True))


def artefact_flags(comp: pd.DataFrame, columns: tuple[str, ...] = ("batch", "plate")) -> list[str]:
    """Sentences naming each batch/plate so over-represented that the selection is likely an artefact."""
    hits = comp[comp["column"].isin(columns) & (comp["ratio"] >= ARTEFACT_RATIO) & (comp["share"] >= ARTEFACT_SHARE)
                & (comp["q"] < ARTEFACT_Q)]
    # A screen with one batch (or plate) cannot be over-represented in it: ratio is then 1.
    return [f"{r.column} {r.value} holds {r.selected:,} of the {int(round(r.selected / r.share)):,} selected wells "
            f"({r.share:.0%}; {r.ratio:.1f}x its {r.total / comp.loc[comp['column'] == r.column, 'total'].sum():.0%} "
            f"share of the screen, q = {r.q:.2g}): the selection may be a {r.column} artefact"
            for r in hits.itertuples()]


def perturbation_key(wells: pd.DataFrame) -> pd.Series:
    """One key per pooled perturbation entity: 'type:perturbation' (the pooled pert_id)."""
    return wells["perturbation_type"].astype(str) + ":" + wells["perturbation"].astype(str)


def perturbation_index(wells: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """(code of each well's pooled perturbation, one row per code: pert_id, perturbation, type and
    wells_total). Built once per store, so counting a selection is one bincount."""
    key = perturbation_key(wells)
    codes, uniques = pd.factorize(key)
    first = np.unique(codes, return_index=True)[1]
    ent = pd.DataFrame({"pert_id": np.asarray(uniques, dtype=object),
                        "perturbation": wells["perturbation"].to_numpy()[first],
                        "perturbation_type": wells["perturbation_type"].to_numpy()[first],
                        "wells_total": np.bincount(codes, minlength=len(uniques))})
    return codes.astype(np.int64), ent


def perturbation_counts(wells: pd.DataFrame, rows: np.ndarray,
                        index: tuple[np.ndarray, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Perturbations of the selected wells: pert_id, perturbation, type, wells selected, wells in the
    screen and the selected fraction; most selected first. ``index``: `perturbation_index(wells)`."""
    codes, ent = index if index is not None else perturbation_index(wells)
    k = np.bincount(codes[np.asarray(rows, dtype=np.int64)], minlength=len(ent))
    hit = np.flatnonzero(k)
    out = ent.iloc[hit].assign(wells_selected=k[hit])
    out["fraction_selected"] = out["wells_selected"] / out["wells_total"]
    cols = ["pert_id", "name", "perturbation", "moa", "perturbation_type", "wells_selected", "wells_total",
            "fraction_selected"]
    return out[[c for c in cols if c in out.columns]].sort_values(["wells_selected", "pert_id"], ascending=[False, True]).reset_index(drop=True)


def well_table(wells: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The selected wells' identifying columns (those the screen has), in row order."""
    cols = [c for c in WELL_COLUMNS if c in wells.columns]
    return wells.iloc[np.asarray(rows, dtype=np.int64)][cols].reset_index(drop=True)


# -- on the store: each takes the data object and the encoded selection ------------------------

@memoize(4, store=True)
def _screen_totals(d: Any) -> dict[str, pd.Series]:
    """The whole screen's counts per composition column (once per store)."""
    w = d.wells
    return {c: w[c].astype(str).value_counts() for c in COMPOSITION_COLUMNS if c in w.columns}


@memoize(4, store=True)
def _perturbation_index(d: Any) -> tuple[np.ndarray, pd.DataFrame]:
    """perturbation_index of the store, with the names a biologist knows (and MOAs) where annotated."""
    codes, ent = perturbation_index(d.wells)
    names = entity_name_table(d)
    if len(names) and names["name"].notna().any():
        ent = ent.merge(names[["perturbation_type", "perturbation", "name", "moa"]].drop_duplicates(
            ["perturbation_type", "perturbation"]), on=["perturbation_type", "perturbation"], how="left")
    return codes, ent


def selection_composition(d: Any, level: str, sel: str) -> pd.DataFrame:
    """`composition` of the wells in an encoded selection (see module doc)."""
    return composition(d.wells, selected_well_rows(d, level, sel), totals=_screen_totals(d))


def selection_tables(d: Any, level: str, sel: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(perturbations table, wells table capped at MAX_TABLE_ROWS, number of selected wells)."""
    rows = selected_well_rows(d, level, sel)
    perts = perturbation_counts(d.wells, rows, index=_perturbation_index(d))
    return perts, well_table(d.wells, rows[:MAX_TABLE_ROWS]), int(rows.size)


def selection_perturbations_csv(d: Any, level: str, sel: str) -> str:
    """CSV text of every perturbation in the selection (the grid shows the first rows only): pert_id,
    name and MOA where annotated, type, wells selected, wells in the screen, fraction selected."""
    perts = perturbation_counts(d.wells, selected_well_rows(d, level, sel), index=_perturbation_index(d))
    return perts.to_csv(index=False)


def selection_h5ad(d: Any, level: str, sel: str) -> bytes:
    """The selected wells as an .h5ad file (the layout `python -m precompute export` writes)."""
    from precompute.readers.anndata_io import anndata_bytes, build_anndata

    rows = selected_well_rows(d, level, sel)
    return anndata_bytes(build_anndata(d.store_root, run=d.run_name, level="wells", rows=rows, selection=sel))
