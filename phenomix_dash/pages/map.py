"""The map: UMAP of wells (raw and TVN-aligned side by side) or of perturbations.

Colour by any column (Patch, not a redraw), click a point for its activity and neighbours, lasso
a region to see its wells on the plate, as image tiles, as tables with their composition, as CSV
and AnnData; keep two selections as A and B and compare them. The URL holds level, space, colour,
clicked point, selection region, plate and A / B (``selA``, ``selB``), so a link reproduces the view.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, ctx, dcc, html, no_update
from plotly.io.json import to_json_plotly as to_json

from phenomix_dash.cache import memoize
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.alignment import batch_correction_figure
from phenomix_dash.ids import (
    MAP_AB_STATUS,
    MAP_ALIGNED,
    MAP_ALIGNED_BOX,
    MAP_BENCH,
    MAP_CLEAR_AB_BTN,
    MAP_COLOR,
    MAP_COMPARE,
    MAP_DRAWN,
    MAP_LEVEL,
    MAP_NOTE,
    MAP_PANEL,
    MAP_POINT,
    MAP_RAW,
    MAP_RAW_BOX,
    MAP_SEL,
    MAP_SEL_A,
    MAP_SEL_B,
    MAP_SEL_COMPOSITION,
    MAP_SEL_DOWNLOAD,
    MAP_SEL_DOWNLOAD_BTN,
    MAP_SEL_H5AD_BTN,
    MAP_SEL_H5AD_DOWNLOAD,
    MAP_SEL_PERTS_BTN,
    MAP_SEL_PERTS_DOWNLOAD,
    MAP_SEL_PLATE,
    MAP_SEL_PLATE_FIG,
    MAP_SEL_SUMMARY,
    MAP_SEL_TABLES,
    MAP_SEL_TILES,
    MAP_SPACE,
    MAP_STORE_A_BTN,
    MAP_STORE_B_BTN,
    MAP_URL,
    SET_STORE,
)
from phenomix_dash.links import merge_search
from phenomix_dash.map_panels import first_wells, point_panel, selection_views
from phenomix_dash.map_views import HIDE, SHOW, clicked_point, map_update, selection_from_event
from phenomix_dash.security import safe_choice, safe_id, safe_str
from phenomix_dash.selection import (
    LEVELS,
    SelectionError,
    benchmark_captions,
    benchmark_rows,
    colour_options,
    colour_spec,
    decode_region,
    encode_region,
    point_index,
    selected_wells,
    selection_csv_text,
)
from phenomix_dash.selection_compare import warm_up as warm_selections
from phenomix_dash.selection_panels import (
    ab_update,
    compare_view,
    composition_view,
    slot_text,
    stored_from_link,
    table_view,
)
from phenomix_dash.selection_stats import selection_h5ad, selection_perturbations_csv
from phenomix_dash.set_chooser import clean_set
from phenomix_dash.shared_answers import shareable

dash.register_page(__name__, path="/map", name="Map", title="Phenomix · map", order=1)


SPACE_CHOICES = [("both", "raw and aligned side by side"), ("raw", "raw only"), ("aligned", "aligned only")]
GRAPH_CONFIG = {"displaylogo": False, "scrollZoom": True, "toImageButtonOptions": {"format": "png", "scale": 2},
                "modeBarButtonsToAdd": ["lasso2d", "select2d"]}


def clean_state(level, space, color, point=None, sel=None, plate=None) -> tuple:
    """Callback inputs as the pages set them, or safe defaults: a crafted request (lists, dicts,
    path-like strings) becomes 'nothing chosen' instead of an exception."""
    return (
        safe_choice(level, ("wells", "perturbations"), "wells"),
        safe_choice(space, [v for v, _ in SPACE_CHOICES], "both"),
        safe_id(color) or "perturbation_type",
        safe_id(point),
        safe_str(sel, max_len=8192),
        safe_id(plate),
    )


def _graph(graph_id: str, box_id: str) -> html.Div:
    # Flex children: hiding one map lets the other take the whole row.
    # delay_show: Patch updates take a blink; only a real redraw shows the spinner.
    return html.Div(dcc.Loading(dcc.Graph(id=graph_id, config=GRAPH_CONFIG, style={"height": "520px"}), delay_show=300),
                    id=box_id,
                    style=SHOW, className="map-box")


def layout(level: str | None = None, space: str | None = None, color: str | None = None, well: str | None = None,
           pert: str | None = None, sel: str | None = None, plate: str | None = None, selA: str | None = None,  # noqa: N803
           selB: str | None = None, **_: object) -> html.Div:  # noqa: N803 (URL parameter names)
    try:
        d = get_data()
        d.umap("aligned")
    except DataUnavailable as err:
        return message(f"No map to show: {err}")
    notes = []
    level = level if level in LEVELS else "wells"
    space = space if space in dict(SPACE_CHOICES) else "both"
    options = colour_options(d, level)
    if color not in {o["value"] for o in options}:
        if color:
            notes.append(f"cannot colour by {color!r} here; showing perturbation type")
        color = "perturbation_type"
    point = well if level == "wells" else pert
    if point is not None and point_index(d, level, point) is None:
        notes.append(f"unknown {'well' if level == 'wells' else 'perturbation'} {point!r}")
        point = None
    try:
        region = decode_region(sel)
        sel = encode_region(*region) if region else None
    except SelectionError as err:
        notes.append(str(err))
        sel = None
    sel_a, sel_b = (stored_from_link(safe_str(v, max_len=8192), name, notes) for v, name in ((selA, "A"), (selB, "B")))
    controls = dbc.Row([
        dbc.Col([dbc.Label("Points"), dbc.RadioItems(id=MAP_LEVEL, value=level, inline=True, options=[
            {"label": "wells", "value": "wells"}, {"label": "perturbations", "value": "perturbations"}])], md=3),
        dbc.Col([dbc.Label("Embedding"), dbc.RadioItems(id=MAP_SPACE, value=space, inline=True,
                                                        options=space_options(level))], md=5),
        dbc.Col([dbc.Label("Colour by"), dcc.Dropdown(options, color, id=MAP_COLOR, clearable=False)], md=4),
    ], className="mb-2")
    return html.Div([
        dcc.Location(id=MAP_URL, refresh=False),
        dcc.Store(id=MAP_DRAWN), dcc.Store(id=MAP_POINT, data=point), dcc.Store(id=MAP_SEL, data=sel),
        dcc.Store(id=MAP_SEL_A, data=sel_a), dcc.Store(id=MAP_SEL_B, data=sel_b),
        html.H3("Map"),
        html.Div("Each point is a well (or a perturbation). Raw embeddings on the left, TVN-aligned on the right: "
                 "alignment should mix batches while replicates stay together. Click a point for its activity and "
                 "neighbours; lasso a region to find its wells on the plates.", className="text-muted small mb-2"),
        controls,
        html.Div([message(n, "info") for n in notes], id=MAP_NOTE),
        dbc.Row([
            dbc.Col([
                html.Div([_graph(MAP_RAW, MAP_RAW_BOX), _graph(MAP_ALIGNED, MAP_ALIGNED_BOX)],
                         style={"display": "flex", "gap": "8px"}),
                dcc.Graph(id=MAP_BENCH, figure=_bench_figure(d), config=GRAPH_CONFIG, style={"height": "300px"}),
            ], lg=9),
            dbc.Col(dcc.Loading(html.Div(id=MAP_PANEL)), lg=3, className="border-start"),
        ]),
        html.H4("Selection", className="mt-3"),
        dbc.Row([
            dbc.Col([html.Div(id=MAP_SEL_SUMMARY),
                     dbc.Button("Download wells (CSV)", id=MAP_SEL_DOWNLOAD_BTN, color="secondary", size="sm",
                                className="mt-2 me-2"), dcc.Download(id=MAP_SEL_DOWNLOAD),
                     dbc.Button("Download perturbations (CSV)", id=MAP_SEL_PERTS_BTN, color="secondary", size="sm",
                                className="mt-2 me-2"), dcc.Download(id=MAP_SEL_PERTS_DOWNLOAD),
                     dbc.Button("Download selection (AnnData .h5ad)", id=MAP_SEL_H5AD_BTN, color="secondary",
                                size="sm", className="mt-2"), dcc.Download(id=MAP_SEL_H5AD_DOWNLOAD),
                     dcc.Loading(html.Div(id=MAP_SEL_COMPOSITION))], lg=4),
            dbc.Col([dbc.Label("Plate"), dcc.Dropdown(id=MAP_SEL_PLATE, value=plate, clearable=False),
                     dcc.Loading(dcc.Graph(id=MAP_SEL_PLATE_FIG, config=GRAPH_CONFIG, style={"height": "460px"}))], lg=5),
            dbc.Col(dcc.Loading(html.Div(id=MAP_SEL_TILES)), lg=3),
        ]),
        dcc.Loading(html.Div(id=MAP_SEL_TABLES)),
        html.H4("Compare two selections", className="mt-3"),
        html.Div([dbc.Button("Store as A", id=MAP_STORE_A_BTN, size="sm", color="primary", className="me-2"),
                  dbc.Button("Store as B", id=MAP_STORE_B_BTN, size="sm", color="primary", className="me-2"),
                  dbc.Button("Clear A and B", id=MAP_CLEAR_AB_BTN, size="sm", color="light", className="me-2"),
                  html.Span(id=MAP_AB_STATUS, className="small")], className="mb-2"),
        dcc.Loading(html.Div(id=MAP_COMPARE)),
    ])


@memoize(2, store=True, disk=True)
def _bench_figure(d) -> dict:
    """Depends on the store only: built once per process (make_subplots is slow to build)."""
    try:
        return batch_correction_figure(benchmark_rows(d), aligned_label=f"aligned ({d.primary_align})",
                                       captions=benchmark_captions(d)).to_plotly_json()
    except DataUnavailable as err:
        return {"layout": {"title": {"text": f"batch benchmarks unavailable: {err}"}, "height": 120}}


def warm_up() -> None:
    """Draw the page's first view once at server start: coordinates, the density layer, colours and
    hover text are cached per process, and cold they cost ~1 s at a million wells. Then what the
    usual first interactions need: the point lookup of a click (a dict over every well, ~1 s at a
    million), the colour codes of the first colour changes and the perturbation-level map."""
    steps = [
        # Serialised as a callback answer is: the first answer of a process otherwise also pays for
        # growing the heap to the answer's size (page faults of fresh memory: 0.2-0.5 s of orjson at
        # 110,592 wells, profiled in bench_callbacks' cold child; 40 ms once the heap has grown).
        lambda d: to_json(map_update(d, *clean_state(None, None, None)[:3], None, None, None, set(), wire=True)),
        _bench_figure,  # the layout's own figure
        # The layout's colour menu: which columns vary, 16 nunique over every well (0.66 s of a fresh
        # process's first map page at a million wells, profiled).
        lambda d: [colour_options(d, level) for level in LEVELS],
        warm_selections,
        lambda d: [point_index(d, level, "") for level in LEVELS],
        first_wells,  # a clicked perturbation's images link
        # Every colouring of both levels (2.9 s at a million wells): computed once here, before the
        # workers fork, instead of on the first requests, when every worker is busiest (the 50-user
        # load test's first 15 s had p95 3.5 s against 0.3 s after).
        lambda d: [colour_spec(d, level, o["value"]) for level in LEVELS for o in colour_options(d, level)],
        lambda d: map_update(d, "perturbations", "both", "perturbation_type", None, None, None, set(), wire=True),
    ]
    try:
        d = get_data()
    except DataUnavailable:
        return  # no store yet: the page says so itself
    for step in steps:
        try:
            step(d)
        except (DataUnavailable, ValueError, KeyError):
            pass  # this store lacks what the step needs; the page says so when asked


@callback(
    Output(MAP_RAW, "figure"), Output(MAP_ALIGNED, "figure"), Output(MAP_RAW_BOX, "style"),
    Output(MAP_ALIGNED_BOX, "style"), Output(MAP_DRAWN, "data"),
    Input(MAP_LEVEL, "value"), Input(MAP_SPACE, "value"), Input(MAP_COLOR, "value"), Input(MAP_POINT, "data"),
    Input(MAP_SEL, "data"), Input(SET_STORE, "data"), State(MAP_DRAWN, "data"),
)
def update_maps(level, space, color, point, sel, set_key, drawn):
    level, space, color, point, sel, _ = clean_state(level, space, color, point, sel)
    drawn = drawn if isinstance(drawn, dict) else None
    try:
        d = get_data()
        return map_update(d, level, space, color, point, sel, drawn, set(ctx.triggered_prop_ids.values()),
                          clean_set(set_key), wire=True)
    except (DataUnavailable, ValueError, KeyError, SelectionError) as err:
        empty = {"layout": {"title": {"text": str(err)}}}
        return empty, empty, SHOW, HIDE, None


shareable(MAP_RAW, "figure")  # a pure function of its request and the screen: answers shared by workers


@callback(
    Output(MAP_COLOR, "options"), Output(MAP_COLOR, "value"), Output(MAP_SPACE, "options"),
    Output(MAP_POINT, "data", allow_duplicate=True), Output(MAP_SEL, "data", allow_duplicate=True),
    Input(MAP_LEVEL, "value"), State(MAP_COLOR, "value"),
    prevent_initial_call=True,
)
def switch_level(level, color):
    """Wells and perturbations have different colourings; clicks and selections do not carry over."""
    level, _, color, *_ = clean_state(level, None, color)
    try:
        opts = colour_options(get_data(), level)
    except DataUnavailable:
        return no_update, no_update, no_update, None, None
    keep = color if color in {o["value"] for o in opts} else "perturbation_type"
    return opts, keep, space_options(level), None, None


def space_options(level: str) -> list[dict]:
    """Perturbation UMAPs exist only for aligned, aggregated embeddings: the choice is off there."""
    return [{"label": lbl, "value": v, "disabled": level == "perturbations"} for v, lbl in SPACE_CHOICES]


@callback(
    Output(MAP_POINT, "data"),
    Input(MAP_RAW, "clickData"), Input(MAP_ALIGNED, "clickData"), State(MAP_LEVEL, "value"),
    prevent_initial_call=True,
)
def on_click(raw_click, aligned_click, level):
    level = clean_state(level, None, None)[0]
    space = "raw" if ctx.triggered_id == MAP_RAW else "aligned"
    try:
        pid = clicked_point(get_data(), level, raw_click if space == "raw" else aligned_click,
                            "aligned" if level == "perturbations" else space)
    except DataUnavailable:
        return no_update
    return pid if pid is not None else no_update


@callback(
    Output(MAP_SEL, "data"),
    Input(MAP_RAW, "selectedData"), Input(MAP_ALIGNED, "selectedData"),
    prevent_initial_call=True,
)
def on_select(raw_sel, aligned_sel):
    space = "raw" if ctx.triggered_id == MAP_RAW else "aligned"
    enc = selection_from_event(raw_sel if space == "raw" else aligned_sel, space)
    if enc is None:
        return no_update
    return enc or None


@callback(Output(MAP_PANEL, "children"), Input(MAP_POINT, "data"), State(MAP_LEVEL, "value"))
def show_point(point, level):
    level, _, _, point, *_ = clean_state(level, None, None, point)
    if not point:
        return message("Click a point to see its activity, nearest perturbations and images.", "light")
    try:
        return point_panel(get_data(), level, point)
    except (DataUnavailable, KeyError, ValueError) as err:
        return message(str(err))


@callback(
    Output(MAP_SEL_SUMMARY, "children"), Output(MAP_SEL_PLATE, "options"), Output(MAP_SEL_PLATE, "value"),
    Output(MAP_SEL_PLATE_FIG, "figure"), Output(MAP_SEL_TILES, "children"),
    Input(MAP_SEL, "data"), Input(MAP_SEL_PLATE, "value"), State(MAP_LEVEL, "value"),
)
def show_selection(sel, plate, level):
    level, _, _, _, sel, plate = clean_state(level, None, None, None, sel, plate)
    try:
        return selection_views(get_data(), level, sel, plate)
    except (DataUnavailable, SelectionError, KeyError, ValueError) as err:
        return message(str(err)), [], None, {"layout": {"title": {"text": "no selection"}}}, None


def _selection_download(output: str, button: str, send, errors: tuple[type[Exception], ...]):
    """A download of the current selection, built by ``send(data, level, sel)``. A background
    callback: a million-well CSV or the selection's embeddings must not hold a server thread."""
    @callback(Output(output, "data"), Input(button, "n_clicks"), State(MAP_SEL, "data"), State(MAP_LEVEL, "value"),
              prevent_initial_call=True, background=True)
    def download(n_clicks, sel, level):
        level, _, _, _, sel, _ = clean_state(level, None, None, None, sel)
        if not n_clicks or not sel:
            return no_update
        try:
            return send(get_data(), level, sel)
        except errors:
            return no_update

    return download


download_selection = _selection_download(
    MAP_SEL_DOWNLOAD, MAP_SEL_DOWNLOAD_BTN,
    lambda d, level, sel: dcc.send_string(selection_csv_text(d, level, sel), "phenomix_selection.csv"),
    (DataUnavailable, SelectionError))
download_selection_perturbations = _selection_download(  # every perturbation; the grid lists the first 2,000
    MAP_SEL_PERTS_DOWNLOAD, MAP_SEL_PERTS_BTN,
    lambda d, level, sel: dcc.send_string(selection_perturbations_csv(d, level, sel), "phenomix_selection_perturbations.csv"),
    (DataUnavailable, SelectionError, KeyError, ValueError))
download_selection_h5ad = _selection_download(
    MAP_SEL_H5AD_DOWNLOAD, MAP_SEL_H5AD_BTN,
    lambda d, level, sel: dcc.send_bytes(selection_h5ad(d, level, sel), "phenomix_selection.h5ad"),
    (DataUnavailable, SelectionError, KeyError, ValueError, OSError))


@callback(
    Output(MAP_SEL_TABLES, "children"), Output(MAP_SEL_COMPOSITION, "children"),
    Input(MAP_SEL, "data"), State(MAP_LEVEL, "value"),
)
def show_selection_tables(sel, level):
    level, _, _, _, sel, _ = clean_state(level, None, None, None, sel)
    try:
        d = get_data()
        return table_view(d, level, sel), composition_view(d, level, sel)
    except (DataUnavailable, SelectionError, KeyError, ValueError) as err:
        return message(str(err)), None


@callback(
    Output(MAP_SEL_A, "data"), Output(MAP_SEL_B, "data"),
    Input(MAP_STORE_A_BTN, "n_clicks"), Input(MAP_STORE_B_BTN, "n_clicks"), Input(MAP_CLEAR_AB_BTN, "n_clicks"),
    State(MAP_SEL, "data"), State(MAP_LEVEL, "value"),
    prevent_initial_call=True,
)
def store_ab(_a, _b, _clear, sel, level):
    """Keep the current selection as A or B (with its own level: see selection.stored_selection)."""
    level, _, _, _, sel, _ = clean_state(level, None, None, None, sel)
    return ab_update({MAP_STORE_A_BTN: "A", MAP_STORE_B_BTN: "B", MAP_CLEAR_AB_BTN: "clear"}.get(ctx.triggered_id),
                     level, sel)


@callback(
    Output(MAP_COMPARE, "children"), Output(MAP_AB_STATUS, "children"),
    Input(MAP_SEL_A, "data"), Input(MAP_SEL_B, "data"),
)
def show_compare(sel_a, sel_b):
    sel_a, sel_b = safe_str(sel_a, max_len=8192), safe_str(sel_b, max_len=8192)
    status = f"A: {slot_text(sel_a)} · B: {slot_text(sel_b)}"
    try:
        return compare_view(get_data(), sel_a, sel_b), status
    except (DataUnavailable, SelectionError, KeyError, ValueError) as err:  # CompareError is a ValueError
        return message(f"cannot compare A and B: {err}", "warning"), status


@callback(
    Output(MAP_URL, "search"),
    Input(MAP_LEVEL, "value"), Input(MAP_SPACE, "value"), Input(MAP_COLOR, "value"), Input(MAP_POINT, "data"),
    Input(MAP_SEL, "data"), Input(MAP_SEL_PLATE, "value"), Input(MAP_SEL_A, "data"), Input(MAP_SEL_B, "data"),
    State(MAP_URL, "search"),
    prevent_initial_call=True,
)
def sync_url(level, space, color, point, sel, plate, sel_a, sel_b, current):
    level, space, color, point, sel, plate = clean_state(level, space, color, point, sel, plate)
    own = url_params(level, space, color, point, sel, plate, safe_str(sel_a, max_len=8192),
                     safe_str(sel_b, max_len=8192))
    new = merge_search(current, own)  # keeps the session's screen and gene set
    return new if new != current else no_update


def url_params(level, space, color, point, sel, plate, sel_a=None, sel_b=None) -> dict[str, str]:
    params = {"level": level, "space": space, "color": color}
    if point:
        params["well" if level == "wells" else "pert"] = point
    if sel:
        params["sel"] = sel
        if plate:
            params["plate"] = plate
    if sel_a:
        params["selA"] = sel_a
    if sel_b:
        params["selB"] = sel_b
    return params


__all__ = ["layout", "map_update", "clicked_point", "selection_from_event", "url_params", "selected_wells"]
