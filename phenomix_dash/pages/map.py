"""The map: UMAP of wells (raw and TVN-aligned side by side) or of perturbations.

Colour by any column (Patch, not a redraw), click a point for its activity and neighbours, lasso
a region to see its wells on the plate, as image tiles and as CSV. The URL holds level, space,
colour, clicked point, selection region and plate, so a link reproduces the view.
"""

from __future__ import annotations

from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, Patch, State, callback, ctx, dcc, html, no_update

from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.alignment import batch_correction_figure
from phenomix_dash.figures.captions import part_of
from phenomix_dash.figures.images import composite_rgb, png_data_uri
from phenomix_dash.figures.map import (
    MAX_POINTS,
    density_trace,
    drawn_split,
    embedding_figure,
    marker_size,
    no_value_trace_index,
    point_traces,
    sample_indices,
    split_positions,
    typed_array,
)
from phenomix_dash.figures.missing import fmt_value
from phenomix_dash.figures.palette import PERTURBATION_TYPE_LABELS
from phenomix_dash.figures.plate import plate_layout_figure
from phenomix_dash.security import safe_choice, safe_id, safe_str
from phenomix_dash.selection import (
    LEVELS,
    SelectionError,
    benchmark_captions,
    benchmark_rows,
    cached_on_store,
    colour_options,
    colour_spec,
    decode_region,
    encode_region,
    hover_texts,
    point_coordinates,
    point_index,
    region_from_selected_data,
    region_rows,
    selected_wells,
    selection_csv_text,
    selection_summary,
    tile_rows,
    umap_caption,
)
from precompute.aggregate import pert_id_for

dash.register_page(__name__, path="/map", name="Map", title="Phenomix · map", order=1)

MAP_URL = "map-url"
MAP_LEVEL = "map-level"
MAP_SPACE = "map-space"
MAP_COLOR = "map-color-by"
MAP_NOTE = "map-note"
MAP_RAW = "map-raw-figure"
MAP_ALIGNED = "map-aligned-figure"
MAP_RAW_BOX = "map-raw-box"
MAP_ALIGNED_BOX = "map-aligned-box"
MAP_DRAWN = "map-drawn"
MAP_POINT = "map-point"
MAP_SEL = "map-selection"
MAP_PANEL = "map-panel"
MAP_BENCH = "map-benchmarks"
MAP_SEL_SUMMARY = "map-selection-summary"
MAP_SEL_PLATE = "map-selection-plate"
MAP_SEL_PLATE_FIG = "map-selection-plate-figure"
MAP_SEL_TILES = "map-selection-tiles"
MAP_SEL_DOWNLOAD_BTN = "map-selection-download-button"
MAP_SEL_DOWNLOAD = "map-selection-download"

SPACE_CHOICES = [("both", "raw and aligned side by side"), ("raw", "raw only"), ("aligned", "aligned only")]
GRAPH_CONFIG = {"displaylogo": False, "scrollZoom": True, "toImageButtonOptions": {"format": "png", "scale": 2},
                "modeBarButtonsToAdd": ["lasso2d", "select2d"]}
_SHOW, _HIDE = {"display": "block", "flex": "1 1 0", "minWidth": 0}, {"display": "none"}


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
                    style=_SHOW, className="map-box")


def layout(level: str | None = None, space: str | None = None, color: str | None = None, well: str | None = None,
           pert: str | None = None, sel: str | None = None, plate: str | None = None, **_: object) -> html.Div:
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
                     dbc.Button("Download selection (CSV)", id=MAP_SEL_DOWNLOAD_BTN, color="secondary", size="sm",
                                className="mt-2"), dcc.Download(id=MAP_SEL_DOWNLOAD)], lg=4),
            dbc.Col([dbc.Label("Plate"), dcc.Dropdown(id=MAP_SEL_PLATE, value=plate, clearable=False),
                     dcc.Loading(dcc.Graph(id=MAP_SEL_PLATE_FIG, config=GRAPH_CONFIG, style={"height": "460px"}))], lg=5),
            dbc.Col(dcc.Loading(html.Div(id=MAP_SEL_TILES)), lg=3),
        ]),
    ])


@cached_on_store(maxsize=2)
def _bench_figure(d) -> dict:
    """Depends on the store only: built once per process (make_subplots is slow to build)."""
    try:
        return batch_correction_figure(benchmark_rows(d), aligned_label=f"aligned ({d.primary_align})",
                                       captions=benchmark_captions(d)).to_plotly_json()
    except DataUnavailable as err:
        return {"layout": {"title": {"text": f"batch benchmarks unavailable: {err}"}, "height": 120}}


# -- side panel and selection views ------------------------------------------------------------

N_NEIGHBOURS = 10
N_TILES = 6


def pert_href(pert_id: str) -> str:
    return "/perturbation?" + urlencode({"pert": pert_id})


def images_href(well_id: str) -> str:
    return "/images?" + urlencode({"well": well_id})


def _activity_line(d, pert_id: str) -> html.Div:
    try:
        act = d.activity()
    except DataUnavailable:
        return html.Div("activity not computed for this store", className="text-muted small")
    row = act[act["pert_id"] == pert_id]
    pooled = row.empty and "@" in pert_id  # a compound dose: activity is scored over all its doses
    if pooled:
        row = act[act["pert_id"] == pert_id.split("@", 1)[0]]
    if row.empty:
        return html.Div("not scored for activity (negative controls and single-well perturbations are not)",
                        className="text-muted small")
    r = row.iloc[0]
    scored = np.isfinite(float(r["q_value"]))
    active = scored and float(r["q_value"]) < 0.05
    return html.Div([
        dbc.Badge("active" if active else "not active" if scored else "q: no value",
                  color="success" if active else "secondary" if scored else "light", className="me-2"),
        html.Span(f"mAP {fmt_value(r['mean_average_precision'], '.3f')} · q {fmt_value(r['q_value'], '.3g')}"),
        html.Div("replicates retrieved against negative controls" + (" (all doses pooled)" if pooled else ""),
                 className="text-muted small"),
    ], className="mb-2")


def _neighbour_list(d, i: int) -> html.Div:
    try:
        nb = d.neighbours()
    except DataUnavailable as err:
        return message(f"no neighbours: {err}", "light")
    perts = d.perturbations()
    idx, sim = nb["top_idx"][i][:N_NEIGHBOURS], nb["top_sim"][i][:N_NEIGHBOURS]
    items = []
    for j, s in zip(idx, sim, strict=True):
        r = perts.iloc[int(j)]
        label = PERTURBATION_TYPE_LABELS.get(r["perturbation_type"], r["perturbation_type"])
        items.append(html.Li([dcc.Link(str(r["perturbation"]), href=pert_href(str(r["pert_id"]))),
                              html.Span(f" {label}", className="text-muted small"),
                              html.Span(f"{float(s):+.2f}", className="float-end font-monospace")]))
    return html.Div([html.H6("Most similar perturbations (cosine)", className="mt-2"),
                     html.Ol(items, className="ps-3 small map-neighbours")])


def point_panel(d, level: str, point_id: str) -> html.Div:
    """Side panel for a clicked well or perturbation: activity first, then neighbours and links."""
    if level == "wells":
        w = d.well_row(point_id)
        pid = pert_id_for(str(w["perturbation_type"]), str(w["perturbation"]))
        label = PERTURBATION_TYPE_LABELS.get(w["perturbation_type"], w["perturbation_type"])
        head = [html.H5(f"{w['well']} · plate {w['plate']}", className="mb-0"),
                html.Div(f"{point_id} · batch {w['batch']}", className="text-muted small"),
                html.Div([html.B(str(w["perturbation"])), f" — {label}"], className="mb-2")]
        well_for_images = point_id
    else:
        i = point_index(d, level, point_id)
        if i is None:
            raise DataUnavailable(f"unknown perturbation {point_id!r}")
        r = d.perturbations().iloc[i]
        pid = point_id
        label = PERTURBATION_TYPE_LABELS.get(r["perturbation_type"], r["perturbation_type"])
        head = [html.H5(str(r["perturbation"]), className="mb-0"),
                html.Div(f"{label} · {fmt_value(r['n_wells'], ',.0f')} wells", className="text-muted small mb-2")]
        ws = d.wells
        match = ws[(ws["perturbation_type"] == r["perturbation_type"]) & (ws["perturbation"] == r["perturbation"])]
        well_for_images = str(match["well_id"].iloc[0]) if len(match) else None
    i = point_index(d, "perturbations", pid)
    body = head + [_activity_line(d, pid)]
    links = [dbc.Button("Perturbation page", href=pert_href(pid), size="sm", color="primary", className="me-2")]
    if well_for_images:
        links.append(dbc.Button("Images", href=images_href(well_for_images), size="sm", color="secondary"))
    body.append(html.Div(links, className="mb-2"))
    body.append(_neighbour_list(d, i) if i is not None else html.Div("no aggregated profile", className="small"))
    return html.Div(body, id="map-panel-content")


@cached_on_store(maxsize=256)
def _thumbnail(d, well_id: str, size: int = 128) -> str:
    site = d.well_images(well_id)[0]
    step = max(1, site.shape[-1] // size)
    return png_data_uri(composite_rgb(site[:, ::step, ::step]))


def _count_table(df: pd.DataFrame) -> dbc.Table:
    return dbc.Table.from_dataframe(df, size="sm", striped=True, className="small mb-2")


def selection_views(d, level: str, sel: str | None, plate: str | None) -> tuple:
    """Summary, plate options and value, highlighted plate layout and image tiles of a selection."""
    empty_fig = {"layout": {"title": {"text": "Select points on a map (lasso or box) to see them here"},
                            "xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 200}}
    if not sel:
        return message("Nothing selected: use the lasso or box tool on a map.", "light"), [], None, empty_fig, None
    wells = selected_wells(d, level, sel)
    if wells.empty:
        return message("No wells inside the selected region.", "light"), [], None, empty_fig, None
    counts = selection_summary(wells, top=10)
    space = sel.split(":", 1)[0]
    summary = html.Div([
        html.H6(f"{len(wells):,} wells selected" + (f" (on the {space} map)" if level == "wells" else
                                                    " (all wells of the selected perturbations)")),
        dbc.Row([dbc.Col(_count_table(counts["batch"]), width=5), dbc.Col(_count_table(counts["plate"]), width=7)]),
        _count_table(counts["perturbation"]),
    ], id="map-selection-counts")
    per_plate = wells["plate"].astype(str).value_counts()
    options = [{"label": f"{p} ({n} selected)", "value": p} for p, n in per_plate.items()]
    plate = plate if plate in per_plate.index else per_plate.index[0]
    on_plate = d.plate_wells(plate)
    fig = plate_layout_figure(on_plate, plate_format=d.plate_format, highlight=wells["well_id"].astype(str).tolist(),
                              title=f"Plate {plate}: {int(per_plate[plate])} selected wells outlined")
    fig.update_layout(title={"y": 0.99, "yanchor": "top"}, margin={"t": 90})  # clear of the column numbers on top
    tiles: list = []
    try:
        for r in tile_rows(len(wells), N_TILES):
            wid = str(wells["well_id"].iloc[r])
            tiles.append(html.A(html.Img(src=_thumbnail(d, wid), className="map-tile", alt=wid, title=wid,
                                         style={"width": "48%", "margin": "1%", "borderRadius": "3px"}),
                                href=images_href(wid)))
    except DataUnavailable as err:
        tiles = [message(f"no images: {err}", "light")]
    head = f"Images: {part_of(len(tiles), len(wells), 'well')}" if tiles and isinstance(tiles[0], html.A) else "Images"
    return summary, options, plate, fig, html.Div([html.H6(head, id="map-selection-tiles-heading")] + tiles)


# -- the two maps -------------------------------------------------------------------------------

def spaces_for(level: str, space: str) -> list[str]:
    """Which figures show: perturbation UMAPs exist only in aligned space."""
    if level == "perturbations":
        return ["aligned"]
    return ["raw", "aligned"] if space == "both" else [space]


def full_figure(d, level: str, space: str, color: str, point: str | None, sel: str | None):
    """The complete figure of one space (a redraw: level changed or the figure was never drawn)."""
    xy = point_coordinates(d, level, space)
    spec = colour_spec(d, level, color)
    hi = point_index(d, level, point) if point else None
    title = {"raw": "Raw embeddings", "aligned": f"Aligned ({d.primary_align.upper()})"}[space]
    if level == "perturbations":
        title = "Perturbations (aggregated aligned embeddings)"
    fig = embedding_figure(xy, spec, hover_text=hover_texts(d, level), title=title, highlight=hi,
                           unit="wells" if level == "wells" else "perturbations",
                           density=_density(d, level, space) if sample_indices(len(xy), MAX_POINTS) is not None else None,
                           notes=(umap_caption(d, level, space),))
    fig.update_layout(clickmode="event")  # a click opens the panel; it must not replace the lasso selection
    grey = no_value_trace_index(len(fig.data) > 3)
    for t in (0, grey):
        fig.data[t].unselected = {"marker": {"opacity": 0.12}}
    picked = _selected_points(d, level, space, sel)
    if picked is not None:
        shown = sample_indices(len(xy), MAX_POINTS)
        fig.data[0].selectedpoints, fig.data[grey].selectedpoints = split_positions(picked, drawn_split(spec, shown))
    return fig


def warm_up() -> None:
    """Draw the page's first view once at server start: coordinates, the density layer, colours and
    hover text are cached per process, and cold they cost ~1 s at a million wells."""
    try:
        map_update(get_data(), *clean_state(None, None, None)[:3], None, None, None, set())
    except (DataUnavailable, ValueError, KeyError):
        pass  # no store yet: the page says so itself


@cached_on_store(maxsize=4)
def _density(d, level: str, space: str):
    """The density layer of a large map depends on the store only: binned once per process."""
    return density_trace(point_coordinates(d, level, space))


def _selected_points(d, level: str, space: str, sel: str | None) -> list[int] | None:
    """Indices into the drawn points of the rows inside the selection region (None = no selection)."""
    if not sel:
        return None
    rows = region_rows(d, level, sel)
    n = len(point_coordinates(d, level, space))
    shown = sample_indices(n, MAX_POINTS)
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return np.flatnonzero(mask if shown is None else mask[shown]).tolist()


def map_update(d, level: str, space: str, color: str, point: str | None, sel: str | None,
               drawn: dict | None, triggers: set[str] | str | None) -> tuple:
    """Figures for (raw, aligned), their box styles and what is drawn now.

    ``triggers``: ids of the inputs that changed (several can change at once, e.g. after a level
    switch resets the click and the selection). A figure is redrawn only when it was never drawn at
    this level; colour, click and selection changes of a drawn figure go into one Patch of its
    traces (no coordinates resent)."""
    triggers = {triggers} if isinstance(triggers, str) else set(triggers or ())
    visible = spaces_for(level, space)
    drawn = drawn if drawn and drawn.get("level") == level else {"level": level, "spaces": [], "color": color}
    out = {}
    for s in ("raw", "aligned"):
        if s not in visible:
            out[s] = no_update
            continue
        if s not in drawn["spaces"]:
            out[s] = full_figure(d, level, s, color, point, sel)
            continue
        p, changed = Patch(), False
        if MAP_COLOR in triggers and drawn.get("color") != color:
            _patch_colour(p, d, level, s, drawn.get("color"), color, sel)
            changed = True
        if MAP_POINT in triggers:
            xy = point_coordinates(d, level, s)
            hi = point_index(d, level, point) if point else None
            p["data"][1]["x"] = [] if hi is None else [float(xy[hi, 0])]
            p["data"][1]["y"] = [] if hi is None else [float(xy[hi, 1])]
            changed = True
        if MAP_SEL in triggers:
            _patch_selection(p, d, level, s, color, sel)
            changed = True
        out[s] = p if changed else no_update
    new_drawn = {"level": level, "color": color, "spaces": sorted(set(drawn["spaces"]) | set(visible))}
    return (out["raw"], out["aligned"], _SHOW if "raw" in visible else _HIDE,
            _SHOW if "aligned" in visible else _HIDE, new_drawn)


def _patch_selection(p: Patch, d, level: str, space: str, color: str, sel: str | None) -> None:
    n = len(point_coordinates(d, level, space))
    shown = sample_indices(n, MAX_POINTS)
    picked = _selected_points(d, level, space, sel)
    grey = no_value_trace_index(shown is not None)
    if picked is None:
        p["data"][0]["selectedpoints"] = p["data"][grey]["selectedpoints"] = None
        return
    p["data"][0]["selectedpoints"], p["data"][grey]["selectedpoints"] = split_positions(
        picked, drawn_split(colour_spec(d, level, color), shown))


def _patch_colour(p: Patch, d, level: str, space: str, old: str | None, color: str, sel: str | None) -> None:
    """A colour change. When the new colouring leaves the same points without a value as the old
    one (usually: none), only the colours change; otherwise the first trace's x (NaN where a point
    has no value) and the grey "no value" trace are resent; y and the first trace's hover text never are."""
    xy = point_coordinates(d, level, space)
    shown = sample_indices(len(xy), MAX_POINTS)
    spec = colour_spec(d, level, color)
    new_split = drawn_split(spec, shown)
    try:
        old_split = drawn_split(colour_spec(d, level, old), shown) if old else None
        same = (old_split is None and new_split is None) or (
            old_split is not None and new_split is not None and np.array_equal(old_split[1], new_split[1]))
    except (ValueError, KeyError):  # the old colouring is not one of this level's
        same = False
    grey = no_value_trace_index(shown is not None)
    hover = None if same else hover_texts(d, level)
    if hover is not None and shown is not None:
        hover = hover[shown]
    valued, missing = point_traces(xy if shown is None else xy[shown], spec, shown, hover,
                                   marker_size(len(xy) if shown is None else len(shown)))
    valued["marker"] = {**valued["marker"], "color": typed_array(valued["marker"]["color"])}
    # The first trace's y and hover text never change; x only gains or loses NaNs.
    for k in ("marker", "hovertemplate") if same else ("x", "marker", "hovertemplate"):
        p["data"][0][k] = _wire(valued[k])
    for k in ("hovertemplate",) if same else tuple(missing):
        p["data"][grey][k] = _wire(missing[k])
    if not same and sel:
        _patch_selection(p, d, level, space, color, sel)


def _wire(v):
    """Arrays as plotly typed arrays (coordinates, customdata) or lists (hover text) for a Patch."""
    if isinstance(v, np.ndarray):
        return v.tolist() if v.dtype == object else typed_array(v)
    return v


@callback(
    Output(MAP_RAW, "figure"), Output(MAP_ALIGNED, "figure"), Output(MAP_RAW_BOX, "style"),
    Output(MAP_ALIGNED_BOX, "style"), Output(MAP_DRAWN, "data"),
    Input(MAP_LEVEL, "value"), Input(MAP_SPACE, "value"), Input(MAP_COLOR, "value"), Input(MAP_POINT, "data"),
    Input(MAP_SEL, "data"), State(MAP_DRAWN, "data"),
)
def update_maps(level, space, color, point, sel, drawn):
    level, space, color, point, sel, _ = clean_state(level, space, color, point, sel)
    drawn = drawn if isinstance(drawn, dict) else None
    try:
        d = get_data()
        return map_update(d, level, space, color, point, sel, drawn, set(ctx.triggered_prop_ids.values()))
    except (DataUnavailable, ValueError, KeyError, SelectionError) as err:
        empty = {"layout": {"title": {"text": str(err)}}}
        return empty, empty, _SHOW, _HIDE, None


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


def clicked_point(d, level: str, click: dict | None, space: str) -> str | None:
    """The id (well_id or pert_id) of a clicked point; Scattergl gives back only its index."""
    try:
        pt = click["points"][0]
        if pt.get("customdata") is not None:  # a points trace while some points are split off as "no value"
            i = int(pt["customdata"])
        elif int(pt.get("curveNumber", 0)) != 0:
            return None
        else:
            i = int(pt.get("pointIndex", pt.get("pointNumber")))
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    n = len(point_coordinates(d, level, space))
    shown = sample_indices(n, MAX_POINTS)
    if not 0 <= i < (n if shown is None else len(shown)):
        return None
    row = i if shown is None else int(shown[i])
    table = d.wells if level == "wells" else d.perturbations()
    return str(table.iloc[row]["well_id" if level == "wells" else "pert_id"])


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


def selection_from_event(selected: dict | None, space: str) -> str | None:
    """Encoded region of a lasso/box event; '' when the selection was cleared; None to ignore."""
    if selected is None:
        return ""
    try:
        poly = region_from_selected_data(selected)
    except SelectionError:
        return None
    return encode_region(space, poly) if poly is not None else None


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


@callback(
    Output(MAP_SEL_DOWNLOAD, "data"),
    Input(MAP_SEL_DOWNLOAD_BTN, "n_clicks"), State(MAP_SEL, "data"), State(MAP_LEVEL, "value"),
    prevent_initial_call=True,
)
def download_selection(n_clicks, sel, level):
    level, _, _, _, sel, _ = clean_state(level, None, None, None, sel)
    if not n_clicks or not sel:
        return no_update
    try:
        return dcc.send_string(selection_csv_text(get_data(), level, sel), "phenomix_selection.csv")
    except (DataUnavailable, SelectionError):
        return no_update


@callback(
    Output(MAP_URL, "search"),
    Input(MAP_LEVEL, "value"), Input(MAP_SPACE, "value"), Input(MAP_COLOR, "value"), Input(MAP_POINT, "data"),
    Input(MAP_SEL, "data"), Input(MAP_SEL_PLATE, "value"), State(MAP_URL, "search"),
    prevent_initial_call=True,
)
def sync_url(level, space, color, point, sel, plate, current):
    level, space, color, point, sel, plate = clean_state(level, space, color, point, sel, plate)
    new = "?" + urlencode(url_params(level, space, color, point, sel, plate))
    return new if new != current else no_update


def url_params(level, space, color, point, sel, plate) -> dict[str, str]:
    params = {"level": level, "space": space, "color": color}
    if point:
        params["well" if level == "wells" else "pert"] = point
    if sel:
        params["sel"] = sel
        if plate:
            params["plate"] = plate
    return params


__all__ = ["layout", "map_update", "clicked_point", "selection_from_event", "url_params", "selected_wells"]
