"""Compare: two embedders or two alignments of the same screen side by side (issue #16).

Two UMAPs of wells, linked: a lasso or box on one highlights the same wells on the other (the
region lives in the URL with the space it was drawn on). Below, how many of each perturbation's k
nearest neighbours the two spaces share (the knn_overlap stage: Jaccard at k as a distribution and
per perturbation, lowest first) and the two spaces' benchmark figures side by side.
URL: ``/compare?left=mae:tvn&right=pixelstats:tvn&k=10&on=mae:tvn&sel=aligned:x,y;...``.
"""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from plotly.io.json import to_json_plotly as to_json

from phenomix_dash.compare_views import (
    MISSING,
    benchmarks_of,
    decode_selection,
    default_pair,
    map_figure,
    overlap_csv,
    overlap_positions,
    overlap_view,
    run_spaces,
    selected_perturbations,
    selected_rows,
    selection_patch,
    umap_kind,
    well_entities,
)
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.compare import space_label
from phenomix_dash.figures.missing import js_number_formatter
from phenomix_dash.ids import (
    CMP_BENCH,
    CMP_CLEAR,
    CMP_DOWNLOAD,
    CMP_DRAWN,
    CMP_EXPORT,
    CMP_GRID,
    CMP_JACCARD,
    CMP_JACCARD_TEXT,
    CMP_K,
    CMP_LEFT,
    CMP_LEFT_MAP,
    CMP_NOTE,
    CMP_RIGHT,
    CMP_RIGHT_MAP,
    CMP_SEL,
    CMP_SEL_TEXT,
    CMP_URL,
)
from phenomix_dash.links import merge_search
from phenomix_dash.map_views import selection_from_event
from phenomix_dash.security import safe_choice, safe_int, safe_str
from phenomix_dash.selection import SelectionError, encode_region

dash.register_page(__name__, path="/compare", name="Compare", title="Phenomix · compare", order=8)

GRAPH_CONFIG = {"displaylogo": False, "scrollZoom": True, "toImageButtonOptions": {"format": "png", "scale": 2},
                "modeBarButtonsToAdd": ["lasso2d", "select2d"]}
DEFAULT_K = 10
MAX_SEL = 8192


def clean(d, left, right, k, sel) -> tuple[str, str, int, dict | None]:
    """Callback inputs as the page sets them, or safe defaults (crafted requests never raise)."""
    spaces = run_spaces(d)
    first, second = default_pair(d, spaces)
    left, right = safe_choice(left, spaces, first), safe_choice(right, spaces, second)
    k = safe_int(k, 1, 10_000, DEFAULT_K)
    if not isinstance(sel, dict):
        return left, right, k, None
    on, region = safe_choice(sel.get("on"), spaces, None), safe_str(sel.get("sel"), MAX_SEL)
    return left, right, k, ({"on": on, "sel": region} if on and region else None)


def k_choices(d) -> list[int]:
    try:
        return [int(k) for k in d.artifact("knn_overlap", "summary").get("k", [])]
    except MISSING:
        return []


def _space_options(spaces: list[str]) -> list[dict]:
    return [{"label": space_label(s), "value": s} for s in spaces]


def _graph(graph_id: str) -> html.Div:
    return html.Div(dcc.Loading(dcc.Graph(id=graph_id, config=GRAPH_CONFIG, style={"height": "520px"}), delay_show=300),
                    style={"flex": "1 1 0", "minWidth": 0})


def layout(left: str | None = None, right: str | None = None, k: str | None = None, on: str | None = None,
           sel: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        spaces = run_spaces(d)
    except DataUnavailable as err:
        return message(f"Nothing to compare: {err}")
    notes = [f"unknown space {v!r}; showing the default" for v in (left, right) if v and v not in spaces]
    left, right, k_int, selection = clean(d, left, right, k, {"on": on, "sel": sel})
    ks = k_choices(d)
    k_int = k_int if k_int in ks else (DEFAULT_K if DEFAULT_K in ks else (ks[-1] if ks else DEFAULT_K))
    if selection:
        try:
            region = decode_selection(d, selection["on"], selection["sel"])
            selection = {"on": region[0], "sel": encode_region(umap_kind(d, region[0]), region[1])} if region else None
        except SelectionError as err:
            notes.append(str(err))
            selection = None
    return html.Div([
        dcc.Location(id=CMP_URL, refresh=False), dcc.Store(id=CMP_SEL, data=selection),
        *(dcc.Store(id={"type": CMP_DRAWN, "side": side}) for side in ("left", "right")),
        html.H3("Compare two maps"),
        html.Div("Two embedders, or two alignments of one, side by side. Lasso or box a region on either map: the same "
                 "wells are highlighted on the other. Below: how many of each perturbation's nearest neighbours the "
                 "two spaces agree on, and their benchmarks.", className="text-muted small mb-2"),
        dbc.Row([
            dbc.Col([dbc.Label("Left"), dcc.Dropdown(_space_options(spaces), left, id=CMP_LEFT, clearable=False)], md=4),
            dbc.Col([dbc.Label("Right"), dcc.Dropdown(_space_options(spaces), right, id=CMP_RIGHT, clearable=False)], md=4),
            dbc.Col([dbc.Label("Neighbours (k)"), dbc.RadioItems(id=CMP_K, value=k_int, inline=True,
                                                                options=[{"label": str(x), "value": x} for x in ks])], md=2),
            dbc.Col(dbc.Button("Clear selection", id=CMP_CLEAR, color="secondary", outline=True, size="sm",
                               className="mt-4"), md=2),
        ], className="mb-2"),
        html.Div([message(n, "info") for n in notes], id=CMP_NOTE),
        html.Div(id=CMP_SEL_TEXT, className="small mb-1"),
        html.Div([_graph(CMP_LEFT_MAP), _graph(CMP_RIGHT_MAP)], style={"display": "flex", "gap": "8px"}),
        html.H4("Nearest-neighbour overlap", className="mt-3"),
        html.Div(id=CMP_JACCARD_TEXT, className="text-muted small"),
        dbc.Row([
            dbc.Col(dcc.Loading(dcc.Graph(id=CMP_JACCARD, config=GRAPH_CONFIG, style={"height": "360px"})), lg=6),
            dbc.Col([dbc.Button("Download CSV", id=CMP_EXPORT, size="sm", color="secondary", outline=True, className="mb-1"),
                     dcc.Download(id=CMP_DOWNLOAD),
                     dag.AgGrid(id=CMP_GRID, rowData=[], columnDefs=[],
                                defaultColDef={"sortable": True, "resizable": True, "filter": True, "flex": 1,
                                               "minWidth": 90},
                                style={"height": "360px"})], lg=6),
        ]),
        html.H4("Benchmarks side by side", className="mt-3"),
        dcc.Loading(html.Div(id=CMP_BENCH)),
    ])


def warm_up() -> None:
    """At server start: draw the default maps, read the overlap table and build every space's
    benchmark figures (plotly's make_subplots costs ~0.5 s a side cold; a run has a few spaces)."""
    try:
        d = get_data()
        left, right, *_ = clean(d, None, None, None, None)
        for s in (left, right):
            # Serialised too, as its answer will be: grows the heap once (see the map page's warm_up).
            to_json(map_figure(d, s, None, None))
        overlap_positions(d)
        well_entities(d)
        for s in run_spaces(d):
            benchmarks_of(d, s)
    except (*MISSING, SelectionError):
        pass  # no store or no stage: the page says so itself


def _side_map(side: int, space, sel_store, drawn):
    """(figure, the space drawn): a full map when the space changed or it was never drawn; only a
    Patch of the highlight when the selection changed on a map already showing this space."""
    try:
        d = get_data()
        *pair, _, selection = clean(d, space, space, None, sel_store)
        space = pair[side]  # the side's own default when the value is not a space
        on, sel = (selection["on"], selection["sel"]) if selection else (None, None)
        try:
            # Dash counts the selection store as triggering a map's first call too: the drawn
            # store, not the trigger, says whether there is a figure to patch.
            if drawn == space and set(ctx.triggered_prop_ids) == {f"{CMP_SEL}.data"}:
                return selection_patch(d, space, on, sel), space
            return map_figure(d, space, on, sel), space
        except SelectionError:
            return map_figure(d, space, None, None), space
    except MISSING as err:
        return {"layout": {"title": {"text": f"map unavailable: {err}"}}}, None


# One callback per map: each side's cold call builds one figure, and a space change redraws one map.
@callback(Output(CMP_LEFT_MAP, "figure"), Output({"type": CMP_DRAWN, "side": "left"}, "data"),
          Input(CMP_LEFT, "value"), Input(CMP_SEL, "data"), State({"type": CMP_DRAWN, "side": "left"}, "data"))
def left_map(space, sel_store, drawn):
    return _side_map(0, space, sel_store, drawn)


@callback(Output(CMP_RIGHT_MAP, "figure"), Output({"type": CMP_DRAWN, "side": "right"}, "data"),
          Input(CMP_RIGHT, "value"), Input(CMP_SEL, "data"), State({"type": CMP_DRAWN, "side": "right"}, "data"))
def right_map(space, sel_store, drawn):
    return _side_map(1, space, sel_store, drawn)


@callback(
    Output(CMP_SEL, "data"),
    Input(CMP_LEFT_MAP, "selectedData"), Input(CMP_RIGHT_MAP, "selectedData"),
    State(CMP_LEFT, "value"), State(CMP_RIGHT, "value"),
    prevent_initial_call=True,
)
def on_select(left_sel, right_sel, left, right):
    """A lasso/box on either map becomes the selection, tied to the space it was drawn on."""
    try:
        d = get_data()
        left, right, _, _ = clean(d, left, right, None, None)
    except MISSING:
        return no_update
    space, event = (left, left_sel) if ctx.triggered_id == CMP_LEFT_MAP else (right, right_sel)
    kind = umap_kind(d, space)
    if kind is None:
        return no_update
    enc = selection_from_event(event, kind)
    if enc is None:
        return no_update
    return {"on": space, "sel": enc} if enc else None


@callback(Output(CMP_SEL, "data", allow_duplicate=True), Input(CMP_CLEAR, "n_clicks"), prevent_initial_call=True)
def clear_selection(n):
    return None if n else no_update


@callback(Output(CMP_SEL_TEXT, "children"), Input(CMP_SEL, "data"))
def selection_text(sel_store):
    try:
        d = get_data()
        *_, selection = clean(d, None, None, None, sel_store)
        if not selection:
            return "No selection: lasso or box a region on either map."
        rows = selected_rows(d, selection["on"], selection["sel"])
        perts = selected_perturbations(d, selection["on"], selection["sel"])
    except (*MISSING, SelectionError) as err:
        return f"The selection cannot be shown: {err}"
    return (f"{len(rows):,} of {len(d.wells):,} wells selected on {space_label(selection['on'])}, highlighted on both "
            f"maps; they belong to {len(perts):,} perturbations (marked in the overlap table).")


@callback(
    Output(CMP_JACCARD, "figure"), Output(CMP_GRID, "rowData"), Output(CMP_GRID, "columnDefs"),
    Output(CMP_JACCARD_TEXT, "children"),
    Input(CMP_LEFT, "value"), Input(CMP_RIGHT, "value"), Input(CMP_K, "value"), Input(CMP_SEL, "data"),
)
def show_overlap(left, right, k, sel_store):
    try:
        d = get_data()
        left, right, k, selection = clean(d, left, right, k, sel_store)
        on, sel = (selection["on"], selection["sel"]) if selection else (None, None)
        fig, rows, caption = overlap_view(d, left, right, k, on, sel)
    except (*MISSING, SelectionError) as err:
        why = str(err) if not isinstance(err, KeyError | DataUnavailable) else (
            f"this run has no neighbour overlap ({err}); rerun precompute to add the knn_overlap stage")
        return {"layout": {"title": {"text": "no neighbour overlap"}, "height": 120}}, [], [], why
    cols = []
    for c in rows[0] if rows else []:
        col = {"field": c, "headerName": c.replace("_", " ")}
        if c.startswith("jaccard_"):
            col["valueFormatter"] = js_number_formatter(".3f")
        if c == f"jaccard_{k}":
            col["sort"] = "asc"
        cols.append(col)
    return fig, rows, cols, caption


@callback(Output(CMP_BENCH, "children"), Input(CMP_LEFT, "value"), Input(CMP_RIGHT, "value"))
def show_benchmarks(left, right):
    try:
        d = get_data()
        left, right, _, _ = clean(d, left, right, None, None)
        sides = [(s, benchmarks_of(d, s)) for s in (left, right)]
    except MISSING as err:
        return message(f"No benchmarks to show: {err}", "light")

    def column(space: str, figs: dict) -> dbc.Col:
        parts: list = [html.H5(space_label(space))]
        for name in ("recall", "replicate_map", "batch"):
            v = figs[name]
            parts.append(message(v, "light") if isinstance(v, str) else dcc.Graph(figure=v, config=GRAPH_CONFIG))
        return dbc.Col(parts, lg=6)

    return dbc.Row([column(s, f) for s, f in sides])


@callback(Output(CMP_DOWNLOAD, "data"), Input(CMP_EXPORT, "n_clicks"),
          State(CMP_LEFT, "value"), State(CMP_RIGHT, "value"), State(CMP_K, "value"), State(CMP_SEL, "data"),
          prevent_initial_call=True)
def download_overlap(n, left, right, k, sel_store):
    """The whole overlap table of the pair (the grid shows a part of it at screen scale)."""
    if not n:
        return no_update
    try:
        d = get_data()
        left, right, k, selection = clean(d, left, right, k, sel_store)
        on, sel = (selection["on"], selection["sel"]) if selection else (None, None)
        text = overlap_csv(d, left, right, k, on, sel)
    except (*MISSING, SelectionError):
        return no_update
    return dcc.send_string(text, f"neighbour_overlap_{left}_vs_{right}_k{k}.csv".replace("/", "-"))


@callback(
    Output(CMP_URL, "search"),
    Input(CMP_LEFT, "value"), Input(CMP_RIGHT, "value"), Input(CMP_K, "value"), Input(CMP_SEL, "data"),
    State(CMP_URL, "search"),
    prevent_initial_call=True,
)
def sync_url(left, right, k, sel_store, current):
    try:
        left, right, k, selection = clean(get_data(), left, right, k, sel_store)
    except MISSING:
        return no_update
    own = {"left": left, "right": right, "k": k, **(selection or {})}
    new = merge_search(current, own)
    return new if new != current else no_update
