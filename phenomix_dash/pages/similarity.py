"""Similarity: gene x compound (and gene x gene, compound x compound) cosine heatmaps.

A readable block (<= 60 x 60) is chosen on the server (most active, a search, a complex, a
compound and its targets), read from the memory-mapped similarity matrix, clustered, and drawn
with known relationships marked. Clicking a cell shows the pair: its cosine, how unusual that
is among random pairs, what is known about it, and both entities' nearest neighbours.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import MATCH, Input, Output, Patch, State, callback, dcc, html, no_update

from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, PhenomixData, get_data
from phenomix_dash.figures.captions import part_of
from phenomix_dash.figures.neighbours import neighbour_grid
from phenomix_dash.figures.similarity import (
    MAX_SIDE,
    Axis,
    choose_block,
    cluster_order,
    empty_figure,
    grouped_cluster_order,
    positions_in,
    similarity_heatmap,
)
from phenomix_dash.neighbours import (
    GENETIC_TYPES,
    annotations,
    entity_label,
    neighbour_frame,
    neighbour_index,
    pair_overlays,
    percentile_of,
    search,
    search_options,
)
from phenomix_dash.security import safe_choice

dash.register_page(__name__, path="/similarity", name="Similarity", title="Phenomix · similarity", order=4)

SIM_URL = "similarity-url"
SIM_KIND = "similarity-kind"
SIM_MODE = "similarity-mode"
SIM_SEARCH = "similarity-search"
SIM_COMPLEX = "similarity-complex"
SIM_COMPOUND = "similarity-compound"
SIM_DOSE = "similarity-dose"
SIM_SIZE = "similarity-size"
SIM_RANGE = "similarity-range"
SIM_FIG = "similarity-heatmap"
SIM_BLOCK = "similarity-block"
SIM_PAIR = "similarity-pair"
SIM_PAIR_INFO = "similarity-pair-info"
SIM_NOTE = "similarity-note"
SIM_PAIR_GRID = "similarity-pair-grid"  # pattern-matching, index = pert_id
SIM_PAIR_EXPORT = "similarity-pair-export"
SIM_CONTROLS = {"search": "similarity-search-box", "complex": "similarity-complex-box", "targets": "similarity-compound-box"}

KINDS = {"gene_compound": "gene × compound", "gene_gene": "gene × gene", "compound_compound": "compound × compound"}
MODES = {"active": "most active", "search": "search", "complex": "a complex", "targets": "a compound's targets"}
RANGES = (0.25, 0.5, 0.75, 1.0)
MAX_SEARCH = 20
N_OPTIONS = 50
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "similarity"}}


# -- server-side helpers (pure over PhenomixData) --------------------------------------------

def compound_rows(table: pd.DataFrame, index: np.ndarray, dose: bool) -> tuple[np.ndarray, bool]:
    """Compound entities on a matrix axis: per-dose rows when asked and present, else pooled."""
    idx = np.asarray(index, dtype=np.int64)
    lvl = table["level"].to_numpy()[idx]
    if dose and (lvl == "dose").any():
        return idx[lvl == "dose"], True
    return idx[lvl != "dose"], False


@lru_cache(maxsize=4)
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


def seed_rows(d: PhenomixData, table: pd.DataFrame, mode: str, picks: list[str] | None,
              complex_name: str | None, compound: str | None) -> tuple[np.ndarray, str]:
    """Table rows the user asked for in a mode, and a sentence saying what is shown."""
    row_of = neighbour_index(d).row_of
    if mode == "search":
        rows = [row_of[p] for p in (picks or [])[:MAX_SEARCH] if p in row_of]
        return np.array(rows, dtype=np.int64), ("the searched perturbations and those most strongly related to them"
                                               if rows else "pick perturbations in the search box")
    if mode == "complex":
        ann = annotations(d)
        genes = set(ann.genes_in_complex(complex_name or ""))
        t = table["perturbation_type"].isin(GENETIC_TYPES) & table["gene"].astype(object).isin(genes)
        rows = np.flatnonzero(t.to_numpy())
        return rows, (f"genes of complex {complex_name} and the entities most related to them" if rows.size
                      else "choose a complex (from the screen's ground truth)")
    if mode == "targets":
        ann = annotations(d)
        if compound not in row_of:
            return np.empty(0, dtype=np.int64), "choose a compound"
        name = str(table.at[row_of[compound], "perturbation"])
        targets = ann.targets_of(name)
        t = table["perturbation_type"].isin(GENETIC_TYPES) & table["gene"].astype(object).isin(targets)
        rows = np.concatenate([[row_of[compound]], np.flatnonzero(t.to_numpy())]).astype(np.int64)
        known = ", ".join(sorted(targets)) or "none annotated"
        return rows, f"{name}, its annotated targets ({known}) and the entities most related to them"
    return np.empty(0, dtype=np.int64), "the most phenotypically active perturbations (mAP against controls)"


def build_block(d: PhenomixData, kind: str, mode: str, picks: list[str] | None, complex_name: str | None,
                compound: str | None, dose: bool, size: int) -> dict:
    """Everything the heatmap needs: values (display order), rows/cols (table rows), labels, note."""
    table = d.perturbations()
    mat, r_index, c_index = d.similarity(kind)
    index = neighbour_index(d)
    labels = index.labels

    def axis(ix: np.ndarray, is_compound: bool) -> tuple[Axis, bool]:
        if is_compound:
            rows, has_dose = compound_rows(table, ix, dose)
            return Axis(rows, labels[rows], has_dose), has_dose
        ix = np.asarray(ix, dtype=np.int64)
        return Axis(ix, labels[ix], False), False

    row_axis, row_dose = axis(r_index, kind == "compound_compound")
    col_axis, col_dose = axis(c_index, kind != "gene_gene")
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
        col_groups = [bold(str(r["perturbation"]), i) for r, i in zip(col_recs, cols, strict=True)]
    else:
        col_labels, col_groups = [bold(entity_label(r), i) for r, i in zip(col_recs, cols, strict=True)], None
    # Units (genes; compounds with all their doses) shown of those on each axis of the matrix.
    counts = (len(set(row_units)), len(set(row_axis.units)), len(set(col_units)), len(set(col_axis.units)))
    return {"values": block, "rows": rows, "cols": cols, "row_labels": row_labels, "col_labels": col_labels,
            "col_groups": col_groups, "note": note, "dose": col_dose, "counts": counts}


def _kinds_for(kind: str) -> tuple[str, ...]:
    return {"gene_compound": (*GENETIC_TYPES, "compound"), "gene_gene": GENETIC_TYPES,
            "compound_compound": ("compound",)}[kind]


# -- layout --------------------------------------------------------------------------------

def layout(kind: str | None = None, mode: str | None = None, q: str | None = None, complex: str | None = None,  # noqa: A002
           compound: str | None = None, dose: str | None = None, n: str | None = None, range: str | None = None,  # noqa: A002
           pair: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        table = d.perturbations()
        ann = annotations(d)
    except DataUnavailable as err:
        return message(f"No similarities to show: {err}")
    kind = safe_choice(kind, KINDS, "gene_compound")
    mode = safe_choice(mode, MODES, "active")
    picks = [p for p in (q or "").split(",") if p][:MAX_SEARCH]
    size = _int(n, 40, 5, MAX_SIDE)
    zmax = _float(range, 0.5, RANGES)
    compounds = table[(table["perturbation_type"] == "compound") & (table["level"] != "dose")]
    compound_opts = [{"label": str(r.perturbation), "value": r.pert_id} for r in compounds.itertuples()]
    if compound not in set(compounds["pert_id"]):
        compound = compound_opts[0]["value"] if compound_opts else None
    complexes = ann.complex_names
    if complex not in complexes:
        complex = complexes[0] if complexes else None  # noqa: A001
    pair_sel = pair.split("|", 1) if pair and "|" in pair else None

    def box(key: str, label: str, control) -> html.Div:
        return html.Div([dbc.Label(label), control], id=SIM_CONTROLS[key], className="mb-2",
                        style=None if mode == key else {"display": "none"})

    controls = [
        dbc.Label("View"),
        dbc.RadioItems(id=SIM_KIND, options=[{"label": v, "value": k} for k, v in KINDS.items()], value=kind, className="mb-2"),
        dbc.Label("Show"),
        dbc.RadioItems(id=SIM_MODE, options=[{"label": v, "value": k} for k, v in MODES.items()], value=mode, className="mb-2"),
        box("search", "Search perturbations", dcc.Dropdown(
            id=SIM_SEARCH, options=search_options(table, None, _kinds_for(kind), picks), value=picks, multi=True,
            placeholder="type a gene or compound…")),
        box("complex", "Complex", dcc.Dropdown(
            id=SIM_COMPLEX, options=[{"label": c, "value": c} for c in complexes], value=complex,
            placeholder="no complexes in this screen's ground truth" if not complexes else "choose a complex", clearable=False)),
        box("targets", "Compound", dcc.Dropdown(id=SIM_COMPOUND, options=compound_opts, value=compound, clearable=False)),
        dbc.Checklist(id=SIM_DOSE, options=[{"label": "compounds by dose", "value": "dose"}],
                      value=[] if dose == "0" else ["dose"], switch=True, className="mb-2"),
        dbc.Label("Entities per axis (at most)"),
        dcc.Slider(id=SIM_SIZE, min=5, max=MAX_SIDE, step=5, value=size, marks={5: "5", 30: "30", 60: "60"}),
        dbc.Label("Colour range (cosine ±)", className="mt-2"),
        dcc.Dropdown(id=SIM_RANGE, options=[{"label": f"± {r:g}", "value": r} for r in RANGES], value=zmax, clearable=False),
    ]
    return html.Div([
        dcc.Location(id=SIM_URL, refresh=False),
        html.H3("Similarity"),
        html.P("Cosine similarity between perturbation profiles: red = alike, blue = opposite. "
               "Rows and columns are ordered by hierarchical clustering of the block shown. "
               "Click a cell to see the pair.", className="text-muted small"),
        dbc.Row([
            dbc.Col(controls, lg=3),
            dbc.Col([
                html.Div(id=SIM_NOTE, className="small text-muted"),
                dcc.Loading(dcc.Graph(id=SIM_FIG, config=GRAPH_CONFIG, style={"minHeight": "480px"})),
            ], lg=9),
        ]),
        dcc.Store(id=SIM_BLOCK),
        dcc.Store(id=SIM_PAIR, data={"row": pair_sel[0], "col": pair_sel[1]} if pair_sel else None),
        dcc.Loading(html.Div(id=SIM_PAIR_INFO, className="mt-3")),
    ])


def _int(v, default: int, lo: int, hi: int) -> int:
    try:
        return int(min(max(int(float(v)), lo), hi))
    except (TypeError, ValueError):
        return default


def _float(v, default: float, allowed: tuple[float, ...]) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if f in allowed else default


# -- callbacks -----------------------------------------------------------------------------

@callback(
    Output(SIM_CONTROLS["search"], "style"),
    Output(SIM_CONTROLS["complex"], "style"),
    Output(SIM_CONTROLS["targets"], "style"),
    Input(SIM_MODE, "value"),
)
def show_mode_controls(mode: str):
    hide = {"display": "none"}
    return tuple(None if mode == k else hide for k in ("search", "complex", "targets"))


@callback(
    Output(SIM_SEARCH, "options"),
    Input(SIM_SEARCH, "search_value"),
    Input(SIM_KIND, "value"),
    State(SIM_SEARCH, "value"),
)
def filter_search(text: str | None, kind: str, value: list[str] | None):
    try:
        table = get_data().perturbations()
    except DataUnavailable:
        return []
    return search_options(table, text, _kinds_for(safe_choice(kind, KINDS, "gene_compound")),
                          value if isinstance(value, list) else None)


@callback(
    Output(SIM_FIG, "figure"),
    Output(SIM_BLOCK, "data"),
    Output(SIM_NOTE, "children"),
    Input(SIM_KIND, "value"),
    Input(SIM_MODE, "value"),
    Input(SIM_SEARCH, "value"),
    Input(SIM_COMPLEX, "value"),
    Input(SIM_COMPOUND, "value"),
    Input(SIM_DOSE, "value"),
    Input(SIM_SIZE, "value"),
    Input(SIM_RANGE, "value"),
    State(SIM_PAIR, "data"),
)
def update_heatmap(kind, mode, picks, complex_name, compound, dose, size, zmax, pair):
    kind = safe_choice(kind, KINDS, "gene_compound")
    mode = safe_choice(mode, MODES, "active")
    picks = [p for p in picks if isinstance(p, str)][:MAX_SEARCH] if isinstance(picks, list) else []
    size = _int(size, 40, 5, MAX_SIDE)
    zmax = _float(zmax, 0.5, RANGES)
    pair = pair if isinstance(pair, dict) else None
    try:
        d = get_data()
        b = build_block(d, kind, mode, picks, complex_name if isinstance(complex_name, str) else None,
                        compound if isinstance(compound, str) else None, bool(dose), size)
    except (DataUnavailable, ValueError, KeyError) as err:
        return empty_figure(f"Cannot show this view: {err}"), None, ""
    if "empty" in b:
        return empty_figure(b["empty"].capitalize() + "."), None, ""
    rows_t, cols_t = ("compound", "compound") if kind == "compound_compound" else (
        ("gene", "gene") if kind == "gene_gene" else ("gene", "compound"))
    table = d.perturbations()
    ids_r = table["pert_id"].to_numpy()[b["rows"]].tolist()
    ids_c = table["pert_id"].to_numpy()[b["cols"]].tolist()
    sel = None
    if pair and pair.get("row") in ids_r and pair.get("col") in ids_c:
        sel = (ids_r.index(pair["row"]), ids_c.index(pair["col"]))
    fig = similarity_heatmap(
        b["values"], b["row_labels"], b["col_labels"], zmax=zmax, col_groups=b["col_groups"],
        overlays=pair_overlays(annotations(d), table, b["rows"], b["cols"]),
        row_title=rows_t + " (clustered)",
        col_title=cols_t + (", concentration" if b["dose"] else "") + " (clustered)", selected=sel)
    sr, tr, sc, tc = b["counts"]
    doses = f" ({len(ids_c)} dose columns)" if b["dose"] else ""
    note = f"Showing {part_of(sr, tr, rows_t)} × {part_of(sc, tc, cols_t)}{doses}: {b['note']}."
    return fig, {"rows": ids_r, "cols": ids_c, "kind": kind, "selection_trace": len(fig.data) - 1}, note


def clicked_pair(click: dict | None, block: dict | None) -> dict | None:
    """The (row, column) pert_ids of a clicked heatmap cell; None for anything else."""
    try:
        pt = click["points"][0]
        i, j = int(round(float(pt["y"]))), int(round(float(pt["x"])))
        rows, cols = block["rows"], block["cols"]
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    if not (0 <= i < len(rows) and 0 <= j < len(cols)):
        return None
    return {"row": rows[i], "col": cols[j], "i": i, "j": j}


@callback(
    Output(SIM_PAIR, "data"),
    Output(SIM_FIG, "figure", allow_duplicate=True),
    Input(SIM_FIG, "clickData"),
    State(SIM_BLOCK, "data"),
    prevent_initial_call=True,
)
def select_pair(click, block):
    p = clicked_pair(click, block)
    if p is None:
        return no_update, no_update
    fig = Patch()
    k = int(block.get("selection_trace", -1))
    if k < 0:
        return {"row": p["row"], "col": p["col"]}, no_update
    fig["data"][k]["x"] = [p["j"]]
    fig["data"][k]["y"] = [p["i"]]
    return {"row": p["row"], "col": p["col"]}, fig


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
            html.H6(["Most similar to ", dcc.Link(entity_label(rec), href="/perturbation?" + urlencode({"pert": rec["pert_id"]}))]),
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


@callback(
    Output(SIM_PAIR_INFO, "children"),
    Input(SIM_PAIR, "data"),
)
def show_pair(pair):
    if not pair or not isinstance(pair, dict):
        return message("Click a cell of the heatmap to see the pair.", "light")
    row, col = pair.get("row"), pair.get("col")
    if not isinstance(row, str) or not isinstance(col, str):
        return message("Click a cell of the heatmap to see the pair.", "light")
    try:
        return pair_panel(get_data(), row, col)
    except DataUnavailable as err:
        return message(str(err))


@callback(
    Output({"type": SIM_PAIR_GRID, "index": MATCH}, "exportDataAsCsv"),
    Input({"type": SIM_PAIR_EXPORT, "index": MATCH}, "n_clicks"),
    prevent_initial_call=True,
)
def export_pair_csv(n: int | None):
    return bool(n)


@callback(
    Output(SIM_URL, "search"),
    Input(SIM_KIND, "value"),
    Input(SIM_MODE, "value"),
    Input(SIM_SEARCH, "value"),
    Input(SIM_COMPLEX, "value"),
    Input(SIM_COMPOUND, "value"),
    Input(SIM_DOSE, "value"),
    Input(SIM_SIZE, "value"),
    Input(SIM_RANGE, "value"),
    Input(SIM_PAIR, "data"),
    State(SIM_URL, "search"),
    prevent_initial_call=True,
)
def sync_url(kind, mode, picks, complex_name, compound, dose, size, zmax, pair, current):
    """Keep the view in the URL so a link reproduces it."""
    kind, mode = safe_choice(kind, KINDS, "gene_compound"), safe_choice(mode, MODES, "active")
    params = {"kind": kind, "mode": mode}
    if mode == "search" and picks:
        params["q"] = ",".join(p for p in picks if isinstance(p, str))
    if mode == "complex" and complex_name:
        params["complex"] = complex_name
    if mode == "targets" and compound:
        params["compound"] = compound
    params.update({"dose": "1" if dose else "0", "n": size, "range": zmax})
    if isinstance(pair, dict) and pair.get("row") and pair.get("col"):
        params["pair"] = f"{pair['row']}|{pair['col']}"
    new = "?" + urlencode(params)
    return new if new != current else no_update
