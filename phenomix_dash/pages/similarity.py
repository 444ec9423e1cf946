"""Similarity: gene x compound (and gene x gene, compound x compound) cosine heatmaps.

A readable block (<= 60 x 60) is chosen on the server (most active, a search, a complex, a
compound and its targets), read from the memory-mapped similarity matrix, clustered, and drawn
with known relationships marked. Clicking a cell shows the pair: its cosine, how unusual that
is among random pairs, what is known about it, and both entities' nearest neighbours.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import MATCH, Input, Output, Patch, State, callback, dcc, html, no_update

from phenomix_dash.annotations import annotations
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.captions import part_of
from phenomix_dash.figures.sets import outline_members
from phenomix_dash.figures.similarity import (
    MAX_SIDE,
    empty_figure,
    similarity_heatmap,
)
from phenomix_dash.ids import (
    SET_STORE,
    SIM_BLOCK,
    SIM_COMPLEX,
    SIM_COMPOUND,
    SIM_CONTROLS,
    SIM_DOSE,
    SIM_FIG,
    SIM_KIND,
    SIM_MODE,
    SIM_NOTE,
    SIM_PAIR,
    SIM_PAIR_EXPORT,
    SIM_PAIR_GRID,
    SIM_PAIR_INFO,
    SIM_RANGE,
    SIM_SEARCH,
    SIM_SIZE,
    SIM_URL,
)
from phenomix_dash.links import merge_search
from phenomix_dash.name_data import named_perturbations, search_options
from phenomix_dash.names import name_and_id
from phenomix_dash.neighbours import pair_overlays
from phenomix_dash.security import safe_choice
from phenomix_dash.set_chooser import clean_set
from phenomix_dash.set_data import member_pert_ids
from phenomix_dash.shared_answers import shareable
from phenomix_dash.similarity_views import MAX_SEARCH, available_kinds, build_block, kinds_for, pair_panel

dash.register_page(__name__, path="/similarity", name="Similarity", title="Phenomix · similarity", order=4)


KINDS = {"gene_compound": "gene × compound", "gene_gene": "gene × gene", "compound_compound": "compound × compound"}
MODES = {"active": "most active", "search": "search", "complex": "a complex", "targets": "a compound's targets",
         "set": "the chosen set"}
RANGES = (0.25, 0.5, 0.75, 1.0)
N_OPTIONS = 50
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "similarity"}}


# -- layout --------------------------------------------------------------------------------

def layout(kind: str | None = None, mode: str | None = None, q: str | None = None, complex: str | None = None,  # noqa: A002
           compound: str | None = None, dose: str | None = None, n: str | None = None, range: str | None = None,  # noqa: A002
           pair: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        ann = annotations(d)
        named = named_perturbations(d)  # perturbations() with the names
        # A view with nothing on this screen (no genes on the real screen) is offered greyed with
        # the reason, and the page opens on the first view that has something to show.
        unavailable = available_kinds(d)
    except DataUnavailable as err:
        return message(f"No similarities to show: {err}")
    usable = [k for k in KINDS if unavailable.get(k) is None] or list(KINDS)
    kind = safe_choice(kind, usable, usable[0])
    mode = safe_choice(mode, MODES, "active")
    picks = [p for p in (q or "").split(",") if p][:MAX_SEARCH]
    size = _int(n, 40, 5, MAX_SIDE)
    zmax = _float(range, 0.5, RANGES)
    compounds = named[(named["perturbation_type"] == "compound") & (named["level"] != "dose")]
    compound_opts = [{"label": name_and_id(nm, str(p)), "value": i}
                     for nm, p, i in zip(compounds["name"], compounds["perturbation"], compounds["pert_id"], strict=True)]
    if compound not in set(compounds["pert_id"]):
        compound = compound_opts[0]["value"] if compound_opts else None
    complexes = ann.complex_names
    if complex not in complexes:
        complex = complexes[0] if complexes else None  # noqa: A001
    pair_sel = pair.split("|", 1) if pair and "|" in pair else None
    no_genes = unavailable.get("gene_gene") is not None and unavailable.get("gene_compound") is not None
    mode_gaps = {"complex": None if complexes else "none annotated in this screen",
                 "targets": "this screen has no genes" if no_genes else None}

    def box(key: str, label: str, control) -> html.Div:
        return html.Div([dbc.Label(label), control], id=SIM_CONTROLS[key], className="mb-2",
                        style=None if mode == key else {"display": "none"})

    controls = [
        dbc.Label("View"),
        dbc.RadioItems(id=SIM_KIND, value=kind, className="mb-2", options=[
            {"label": v if unavailable.get(k) is None else f"{v} ({unavailable[k]})", "value": k,
             "disabled": unavailable.get(k) is not None} for k, v in KINDS.items()]),
        dbc.Label("Show"),
        dbc.RadioItems(id=SIM_MODE, value=mode, className="mb-2", options=[
            {"label": v if mode_gaps.get(k) is None else f"{v} ({mode_gaps[k]})", "value": k,
             "disabled": mode_gaps.get(k) is not None and k != mode} for k, v in MODES.items()]),
        box("search", "Search perturbations", dcc.Dropdown(
            id=SIM_SEARCH, options=search_options(d, None, kinds_for(kind), picks), value=picks, multi=True,
            placeholder="type a name, id, InChIKey or synonym…")),
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


def warm_up() -> None:
    """Open the page's first views once at server start (annotations, names, each kind's most active
    block): cold, the first heatmap after a start cost 0.45-0.65 s at a million wells."""
    try:
        layout()
        unavailable = available_kinds(get_data())
    except DataUnavailable:
        return
    for kind in KINDS:
        if unavailable.get(kind) is None:
            update_heatmap(kind, "active", [], None, None, [], 40, 0.5, None)


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
        return search_options(get_data(), text if isinstance(text, str) else None,
                              kinds_for(safe_choice(kind, KINDS, "gene_compound")), value if isinstance(value, list) else None)
    except DataUnavailable:
        return []


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
    Input(SET_STORE, "data"),  # last: Dash passes arguments in the order declared
)
def update_heatmap(kind, mode, picks, complex_name, compound, dose, size, zmax, pair, set_key=None):
    kind = safe_choice(kind, KINDS, "gene_compound")
    mode = safe_choice(mode, MODES, "active")
    picks = [p for p in picks if isinstance(p, str)][:MAX_SEARCH] if isinstance(picks, list) else []
    size = _int(size, 40, 5, MAX_SIDE)
    zmax = _float(zmax, 0.5, RANGES)
    pair = pair if isinstance(pair, dict) else None
    try:
        d = get_data()
        members = member_pert_ids(d, clean_set(set_key)) if clean_set(set_key) else set()
        if mode == "set":  # the heatmap restricted to the set: its members seed the block
            picks = sorted(members) if members else []
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
    outline_members(fig, [i in members for i in ids_r], [j in members for j in ids_c])
    sr, tr, sc, tc = b["counts"]
    doses = f" ({len(ids_c)} dose columns)" if b["dose"] else ""
    note = f"Showing {part_of(sr, tr, rows_t)} × {part_of(sc, tc, cols_t)}{doses}: {b['note']}."
    return fig, {"rows": ids_r, "cols": ids_c, "kind": kind, "selection_trace": len(fig.data) - 1}, note


shareable(SIM_FIG, "figure")  # a pure function of its request and the screen: answers shared by workers


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
    new = merge_search(current, params)  # keeps the session's screen and gene set
    return new if new != current else no_update
