"""What the Similarity page shows, computed from the store: which perturbations a block of the
matrix holds (by activity, search, complex or a compound's targets) and the panel of a clicked pair."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import dcc, html

from phenomix_dash.annotations import GENETIC_TYPES, annotations
from phenomix_dash.cache import memoize
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, PhenomixData
from phenomix_dash.figures.neighbours import neighbour_grid
from phenomix_dash.figures.similarity import (
    Axis,
    choose_block,
    cluster_order,
    grouped_cluster_order,
    positions_in,
)
from phenomix_dash.ids import (
    SIM_PAIR_EXPORT,
    SIM_PAIR_GRID,
)
from phenomix_dash.links import page_href
from phenomix_dash.names import name_and_id
from phenomix_dash.neighbours import entity_label, neighbour_frame, neighbour_index, percentile_of, search

MAX_SEARCH = 20  # perturbations searched for at once

# -- server-side helpers (pure over PhenomixData) --------------------------------------------

def compound_rows(table: pd.DataFrame, index: np.ndarray, dose: bool) -> tuple[np.ndarray, bool]:
    """Compound entities on a matrix axis: per-dose rows when asked and present, else pooled."""
    idx = np.asarray(index, dtype=np.int64)
    lvl = table["level"].to_numpy()[idx]
    if dose and (lvl == "dose").any():
        return idx[lvl == "dose"], True
    return idx[lvl != "dose"], False


@memoize(4, store=True)
def activity_score(d: PhenomixData) -> np.ndarray | None:
    """mAP against controls per perturbation row (a dose row gets its compound's pooled mAP);
    computed once per process (read-only)."""
    try:
        act = d.activity()
    except DataUnavailable:
        return None
    by_id = pd.Series(act["mean_average_precision"].to_numpy(dtype=float), index=act["pert_id"].astype(str))
    by_id = by_id[~by_id.index.duplicated()]
    out = by_id.reindex(neighbour_index(d).labels).to_numpy(dtype=float)
    out.setflags(write=False)
    return out


@memoize(4, store=True)
def genetic_rows_of_gene(d: PhenomixData) -> dict[str, np.ndarray]:
    """Rows (ascending) of the neighbour table's genetic perturbations per gene: a complex's or a
    compound's targets are then a few dict lookups, not two string isin passes over 33,000 rows
    per heatmap answer (3% of the workers' time in the 50-user load test at the million store)."""
    table = neighbour_index(d).table
    genetic = np.flatnonzero(table["perturbation_type"].isin(GENETIC_TYPES).to_numpy())
    genes = table["gene"].astype(object).to_numpy()[genetic]
    codes, names = pd.factorize(genes)  # a missing gene: code -1, sorted first and never looked up
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return {str(g): genetic[order[bounds[k]:bounds[k + 1]]] for k, g in enumerate(names)}


def _rows_of_genes(d: PhenomixData, genes: set[str]) -> np.ndarray:
    by_gene = genetic_rows_of_gene(d)
    found = [by_gene[g] for g in genes if g in by_gene]
    return np.sort(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)


def seed_rows(d: PhenomixData, table: pd.DataFrame, mode: str, picks: list[str] | None,
              complex_name: str | None, compound: str | None) -> tuple[np.ndarray, str]:
    """Table rows the user asked for in a mode, and a sentence saying what is shown."""
    row_of = neighbour_index(d).row_of
    if mode == "search":
        rows = [row_of[p] for p in (picks or [])[:MAX_SEARCH] if p in row_of]
        return np.array(rows, dtype=np.int64), ("the searched perturbations and those most strongly related to them"
                                               if rows else "pick perturbations in the search box")
    if mode == "set":  # the chosen gene set's members (pert_ids), on this heatmap's axes
        rows = [row_of[p] for p in (picks or []) if p in row_of]
        return np.array(sorted(rows), dtype=np.int64), ("members of the chosen set and the entities most related to them"
                                                       if rows else "the chosen set has no members on this heatmap's axes")
    if mode == "complex":
        ann = annotations(d)
        rows = _rows_of_genes(d, set(ann.genes_in_complex(complex_name or "")))
        return rows, (f"genes of complex {complex_name} and the entities most related to them" if rows.size
                      else "choose a complex (from the screen's ground truth)")
    if mode == "targets":
        ann = annotations(d)
        if compound not in row_of:
            return np.empty(0, dtype=np.int64), "choose a compound"
        name = str(table.at[row_of[compound], "perturbation"])
        targets = ann.targets_of(name)
        rows = np.concatenate([[row_of[compound]], _rows_of_genes(d, set(targets))]).astype(np.int64)
        known = ", ".join(sorted(targets)) or "none annotated"
        return rows, f"{name}, its annotated targets ({known}) and the entities most related to them"
    return np.empty(0, dtype=np.int64), "the most phenotypically active perturbations (mAP against controls)"


@memoize(12, store=True)
def heatmap_axes(d: PhenomixData, kind: str, dose: bool) -> tuple[Axis, bool, Axis, bool, int, int]:
    """(row axis, its doses?, column axis, its doses?, units on each) of a kind's matrix: the same
    for every view of that kind, so built once per process (over the 19,000 x 14,400 axes of the
    million-well store these gathers, dose filters and distinct-unit counts were redone per answer)."""
    index = neighbour_index(d)
    table, labels = index.table, index.labels
    _, r_index, c_index = d.similarity(kind)

    def axis(ix: np.ndarray, is_compound: bool) -> tuple[Axis, bool]:
        if is_compound:
            rows, has_dose = compound_rows(table, ix, dose)
            return Axis(rows, labels[rows], has_dose), has_dose
        ix = np.asarray(ix, dtype=np.int64)
        return Axis(ix, labels[ix], False), False

    row_axis, row_dose = axis(r_index, kind == "compound_compound")
    col_axis, col_dose = axis(c_index, kind != "gene_gene")
    return row_axis, row_dose, col_axis, col_dose, len(set(row_axis.units)), len(set(col_axis.units))


def build_block(d: PhenomixData, kind: str, mode: str, picks: list[str] | None, complex_name: str | None,
                compound: str | None, dose: bool, size: int) -> dict:
    """Everything the heatmap needs: values (display order), rows/cols (table rows), labels, note."""
    index = neighbour_index(d)
    table = index.table  # perturbations() with names: axis labels and hover show them
    mat, r_index, c_index = d.similarity(kind)
    labels = index.labels
    row_axis, row_dose, col_axis, col_dose, row_units_all, col_units_all = heatmap_axes(d, kind, bool(dose))
    seeds, note = seed_rows(d, table, mode, picks, complex_name, compound)
    if mode != "active" and seeds.size == 0:
        return {"empty": note}
    symmetric = kind != "gene_compound"
    rows, row_units, cols, col_units = choose_block(
        index.unit, labels, row_axis, col_axis, seeds, max_side=size,
        score=activity_score(d) if mode == "active" else None, symmetric=symmetric)
    if rows.size == 0 or cols.size == 0:
        return {"empty": "no entities of this kind in the screen"}
    rp, cp = positions_in(r_index, rows), positions_in(c_index, cols)
    order_r = np.argsort(rp, kind="stable")  # memmap reads are cheapest in file order
    block = np.empty((rows.size, cols.size), dtype=np.float32)
    block[order_r] = np.asarray(mat[rp[order_r]], dtype=np.float32)[:, cp]
    ro = grouped_cluster_order(block, row_units) if row_dose else cluster_order(block)
    co = ro if symmetric else (grouped_cluster_order(block.T, col_units) if col_dose else cluster_order(block.T))
    rows, cols, block = rows[ro], cols[co], block[np.ix_(ro, co)]
    row_recs, col_recs = table.iloc[rows].to_dict("records"), table.iloc[cols].to_dict("records")
    asked = set(labels[seeds])  # what the user asked for is drawn in bold

    def bold(text: str, row: int) -> str:
        return f"<b>{text}</b>" if labels[row] in asked else text

    row_labels = [bold(entity_label(r), i) for r, i in zip(row_recs, rows, strict=True)]
    if col_dose:
        col_labels = [f"{r['concentration_um']:g} µM" for r in col_recs]
        col_groups = [bold(name_and_id(r.get("name"), str(r["perturbation"])), i) for r, i in zip(col_recs, cols, strict=True)]
    else:
        col_labels, col_groups = [bold(entity_label(r), i) for r, i in zip(col_recs, cols, strict=True)], None
    # Units (genes; compounds with all their doses) shown of those on each axis of the matrix.
    counts = (len(set(row_units)), row_units_all, len(set(col_units)), col_units_all)
    return {"values": block, "rows": rows, "cols": cols, "row_labels": row_labels, "col_labels": col_labels,
            "col_groups": col_groups, "note": note, "dose": col_dose, "counts": counts}


def available_kinds(d: PhenomixData) -> dict[str, str | None]:
    """Each heatmap kind -> None when this screen has entities on both its axes, else the reason
    it has nothing to show (the real screen has no genes: only compound x compound)."""
    out: dict[str, str | None] = {}
    for kind in ("gene_compound", "gene_gene", "compound_compound"):
        try:
            mat = d.similarity(kind)[0]
        except (DataUnavailable, KeyError) as err:
            out[kind] = str(err)
            continue
        if mat.shape[0] and mat.shape[1]:
            out[kind] = None
        else:
            missing = "genes" if kind != "compound_compound" and mat.shape[0] == 0 else "compounds"
            out[kind] = f"this screen has no {missing}"
    return out


def kinds_for(kind: str) -> tuple[str, ...]:
    return {"gene_compound": (*GENETIC_TYPES, "compound"), "gene_gene": GENETIC_TYPES,
            "compound_compound": ("compound",)}[kind]


def pair_panel(d: PhenomixData, row_id: str, col_id: str, k: int = 8) -> list:
    """What is known about a pair: cosine, its percentile among random pairs, annotations, and the
    nearest neighbours of both entities (over all genes and compounds)."""
    index = neighbour_index(d)
    table = index.table
    if row_id not in index.row_of or col_id not in index.row_of:
        return [message("This pair is not in the screen.")]
    a, b = index.row_of[row_id], index.row_of[col_id]
    cos = float(index.unit[a] @ index.unit[b])
    try:
        null = d.null_similarity()
    except DataUnavailable:
        null = None
    pct = float(percentile_of(cos, null))
    ann = annotations(d)
    ra, rb = table.iloc[a].to_dict(), table.iloc[b].to_dict()
    flags = ann.pair_flags(ra, rb)
    groups = {"all": np.union1d(index.groups["gene"], index.groups["compound"])}
    cols = []
    for r, rec in ((a, ra), (b, rb)):
        nb = search(index.unit, r, k, groups, exclude=index.siblings(r))["all"]
        frame = neighbour_frame(table, nb.top_idx, nb.top_sim, r, null, ann)
        cols.append(dbc.Col([
            html.H6(["Most similar to ", dcc.Link(entity_label(rec), href=page_href("/perturbation", pert=rec["pert_id"]))]),
            dbc.Button("Export CSV", id={"type": SIM_PAIR_EXPORT, "index": rec["pert_id"]}, size="sm",
                       color="secondary", outline=True, className="mb-1"),
            neighbour_grid({"type": SIM_PAIR_GRID, "index": rec["pert_id"]}, frame,
                           file_name=f"neighbours_{rec['perturbation']}.csv", height=290),
        ], md=6))
    unusual = ("" if not np.isfinite(pct) else
               f" — higher than {pct:.1f}% of random pairs" if cos >= 0 else f" — lower than {100 - pct:.1f}% of random pairs")
    return [
        html.H5([entity_label(ra), " × ", entity_label(rb)], className="pair-title"),
        html.Div([html.B(f"cosine {cos:.3f}"), unusual], className="pair-cosine"),
        html.Div(["Known: ", html.Span("; ".join(flags) if flags else "no annotated relationship")], className="mb-2"),
        dbc.Row(cols),
    ]
