"""Perturbation: one gene or compound — its activity, its neighbours over the whole map, its wells.

Activity (mAP against controls) and replicate consistency come first: a perturbation that does
not reproduce has no meaningful neighbours. Neighbours are computed on the server over ALL
perturbations for each query (phenomix_dash/neighbours.py), genes and compounds separately,
with each similarity's percentile among random pairs and what is already known about the pair.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, PhenomixData, get_data
from phenomix_dash.figures.captions import part_of
from phenomix_dash.figures.neighbours import neighbour_bars, neighbour_grid
from phenomix_dash.figures.plate import plate_layout_figure
from phenomix_dash.ids import (
    PERT_EXPORT,
    PERT_GRID,
    PERT_K,
    PERT_NB_FIG,
    PERT_NB_TABLES,
    PERT_PLATE,
    PERT_PLATE_FIG,
    PERT_SEARCH,
    PERT_SET_BADGE,
    PERT_SUMMARY,
    PERT_TILES,
    PERT_URL,
    SET_STORE,
)
from phenomix_dash.links import merge_search
from phenomix_dash.name_data import name_index, search_options
from phenomix_dash.neighbours import (
    entity_label,
    neighbour_index,
)
from phenomix_dash.perturbation_character import (
    PERT_SIG_ONLY,
    filter_lists,
    insert_significance_columns,
    register_callbacks,
    sections,
    significance_switch,
)
from phenomix_dash.perturbation_views import (
    MAX_TILES,
    activity_summary,
    matched_controls,
    neighbour_lists,
    site_stack,
    summary_cards,
    well_tiles,
    wells_of,
)
from phenomix_dash.reconstruction import channel_ranges
from phenomix_dash.set_chooser import membership_badge
from phenomix_dash.shared_answers import shareable

dash.register_page(__name__, path="/perturbation", name="Perturbation", title="Phenomix · perturbation", order=5)
register_callbacks()  # the characterise sections' callbacks, once per app (this module runs once per app)


SEARCH_TYPES = ("crispr", "orf", "compound", "positive_control", "negative_control")
K_CHOICES = (5, 10, 20, 50)
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "perturbation"}}


# -- layout --------------------------------------------------------------------------------

def layout(pert: str | None = None, k: str | None = None, plate: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        table = d.perturbations()
    except DataUnavailable as err:
        return message(f"No perturbations to show: {err}")
    known = set(table["pert_id"].astype(str))
    unknown = pert if pert is not None and pert not in known else None
    if unknown is not None:
        pert = None
    try:
        k_val = int(k) if k is not None and int(k) in K_CHOICES else 10
    except ValueError:
        k_val = 10
    return html.Div([
        dcc.Location(id=PERT_URL, refresh=False),
        html.H3("Perturbation"),
        message(f"{str(unknown)[:80]!r} is not a perturbation of this screen; search for another.") if unknown else None,
        dbc.Row([
            dbc.Col([dbc.Label("Gene or compound"),
                     dcc.Dropdown(id=PERT_SEARCH, options=search_options(d, None, SEARCH_TYPES, [pert] if pert else None, doses=True),
                                  value=pert, placeholder="type a name, id, InChIKey or synonym, e.g. a gene symbol…",
                                  searchable=True, clearable=True)], md=6),
            dbc.Col([dbc.Label("Neighbours per list"),
                     dcc.Dropdown(id=PERT_K, options=[{"label": str(v), "value": v} for v in K_CHOICES], value=k_val,
                                  clearable=False)], md=2),
        ], className="mb-3"),
        html.Div(id=PERT_SET_BADGE, className="mb-2"),
        dcc.Loading(html.Div(id=PERT_SUMMARY)),
        html.H5("Nearest neighbours over the whole map"),
        html.Div("Computed now over every perturbation. ★ = a known relationship (annotation, compound target, "
                 "same complex). Percentile: where the cosine falls among random pairs. q: the match's BH q-value "
                 "(✔ = q < 0.05, docs/significance.md). Click a bar or a name to open it.",
                 className="small text-muted"),
        significance_switch(),
        dcc.Loading([dcc.Graph(id=PERT_NB_FIG, config=GRAPH_CONFIG), html.Div(id=PERT_NB_TABLES)]),
        *sections(),
        html.H5("Its wells", className="mt-3"),
        dbc.Row([
            dbc.Col([dbc.Label("Plate (plates holding this perturbation)"),
                     dcc.Dropdown(id=PERT_PLATE, value=plate, clearable=False),
                     dcc.Loading(dcc.Graph(id=PERT_PLATE_FIG, config=GRAPH_CONFIG, style={"height": "420px"}))], lg=6),
            dbc.Col(dcc.Loading(html.Div(id=PERT_TILES)), lg=6),
        ]),
    ])


# -- callbacks -----------------------------------------------------------------------------

def warm_up() -> None:
    """At server start: the screen's names and their search index (~1 s cold at 33,405
    perturbations of a million wells), so the first keystroke of the search is answered warm."""
    try:
        d = get_data()
        name_index(d)  # builds the named table on the way
        # The wells-of-a-perturbation index (1-2.7 s at a million wells): built once here, before
        # gunicorn forks its workers, instead of by each worker's first visitor.
        wells_of(d.wells, {"perturbation_type": None, "perturbation": None})
        if d.has_significance():  # the neighbours' q-values: the stored family read, its BH tail built
            d.pair_significance(0, np.empty(0, dtype=np.int64))
    except DataUnavailable:
        pass  # no store yet: the page says so itself


@callback(
    Output(PERT_SEARCH, "options"),
    Input(PERT_SEARCH, "search_value"),
    Input(PERT_SEARCH, "value"),
)
def filter_options(text: str | None, value: str | None):
    """Server-side type-ahead on any of name, id, InChIKey or synonym: only matching options cross
    the wire (10^5 perturbations)."""
    keep = [value] if isinstance(value, str) else None
    try:
        return search_options(get_data(), text if isinstance(text, str) else None, SEARCH_TYPES, keep, doses=True)
    except DataUnavailable:
        return []


def neighbour_tabs(lists: dict[str, pd.DataFrame]) -> dbc.Tabs:
    titles = {"genes_similar": "genes: most similar", "genes_opposite": "genes: most opposite",
              "compounds_similar": "compounds: most similar", "compounds_opposite": "compounds: most opposite"}
    tabs = []
    for key, title in titles.items():
        frame = lists.get(key)
        if frame is None or frame.empty:
            continue
        grid = neighbour_grid({"type": PERT_GRID, "index": key}, frame, file_name=f"{key}.csv")
        insert_significance_columns(grid)
        tabs.append(dbc.Tab([
            dbc.Button("Export CSV", id={"type": PERT_EXPORT, "index": key}, size="sm", color="secondary",
                       outline=True, className="my-2"),
            grid,
        ], label=title, tab_id=key))
    return dbc.Tabs(tabs, active_tab=tabs[0].tab_id if tabs else None) if tabs else message("No neighbours to list "
                                                                                            "(none at q < 0.05 when filtered).")


@callback(
    Output(PERT_SUMMARY, "children"),
    Output(PERT_NB_FIG, "figure"),
    Output(PERT_NB_TABLES, "children"),
    Output(PERT_PLATE, "options"),
    Output(PERT_PLATE, "value"),
    Input(PERT_SEARCH, "value"),
    Input(PERT_K, "value"),
    State(PERT_PLATE, "value"),
    Input(PERT_SIG_ONLY, "value"),
)
def show_perturbation(pert: str | None, k: int | None, plate: str | None, sig_only: list | None = None):
    blank = {"layout": {"xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 80}}
    if not isinstance(pert, str) or not pert:
        return message("Search for a gene or compound above.", "light"), blank, None, [], None
    k = k if k in K_CHOICES else 10
    try:
        d = get_data()
        index = neighbour_index(d)
        if pert not in index.row_of:
            return message(f"{pert[:80]!r} is not a perturbation of this screen."), blank, None, [], None
        entity = index.table.iloc[index.row_of[pert]].to_dict()
        try:
            act = d.activity()
        except DataUnavailable:
            act = None
        summary = summary_cards(entity, activity_summary(entity, act))
        lists = filter_lists(neighbour_lists(d, pert, k), bool(sig_only))
        panels = {g: (lists[f"{g}s_similar"].head(10), lists[f"{g}s_opposite"].head(10))
                  for g in ("gene", "compound") if not lists[f"{g}s_similar"].empty}
        fig = neighbour_bars({f"{g}s": v for g, v in panels.items()}) if panels else blank
        wells = wells_of(d.wells, entity)
    except DataUnavailable as err:
        return message(str(err)), blank, None, [], None
    counts = wells.groupby("plate").size()
    options = [{"label": f"{p} ({n} wells)", "value": p} for p, n in counts.items()]
    plate = plate if plate in counts.index else (counts.index[0] if len(counts) else None)
    return summary, fig, neighbour_tabs(lists), options, plate


shareable(PERT_SUMMARY, "children")  # a pure function of its request and the screen: answers shared by workers


def _entity_on_plate(plate: str | None, pert: str | None) -> tuple[PhenomixData, dict, pd.DataFrame, pd.DataFrame] | None:
    """(data, entity, plate wells, its wells there), or None when the inputs do not fit together
    (the plate chooser lags one step behind a newly chosen perturbation)."""
    if not isinstance(pert, str) or not isinstance(plate, str):
        return None
    d = get_data()
    index = neighbour_index(d)
    if pert not in index.row_of:
        return None
    entity = index.table.iloc[index.row_of[pert]].to_dict()
    pw = d.plate_wells(plate)
    mine = wells_of(pw, entity)
    return None if mine.empty else (d, entity, pw, mine)


@callback(
    Output(PERT_PLATE_FIG, "figure"),
    Input(PERT_PLATE, "value"),
    Input(PERT_SEARCH, "value"),
)
def show_plate(plate: str | None, pert: str | None):
    blank = {"layout": {"xaxis": {"visible": False}, "yaxis": {"visible": False}}}
    try:
        found = _entity_on_plate(plate, pert)
        if found is None:
            return blank
        d, entity, pw, mine = found
        return plate_layout_figure(pw, plate_format=d.plate_format, highlight=mine["well_id"].tolist(),
                                   title=f"Plate {plate}: wells of {entity_label(entity)} outlined")
    except (DataUnavailable, ValueError) as err:
        return {"layout": {"title": {"text": str(err)}, "xaxis": {"visible": False}, "yaxis": {"visible": False}}}


@callback(
    Output(PERT_TILES, "children"),
    Input(PERT_PLATE, "value"),
    Input(PERT_SEARCH, "value"),
)
def show_tiles(plate: str | None, pert: str | None):
    """Separate from the plate map so the two load side by side (each is ~half the work)."""
    try:
        found = _entity_on_plate(plate, pert)
        if found is None:
            return None
        d, entity, pw, mine = found
        return perturbation_tiles(d, entity, pw, mine, plate)
    except (DataUnavailable, ValueError) as err:
        return message(str(err), "light")


def perturbation_tiles(d: PhenomixData, entity: dict, plate_wells: pd.DataFrame, mine: pd.DataFrame, plate: str) -> html.Div:
    """The perturbation's wells beside negative controls of the same plate, on one intensity scale
    (taken from the controls, else from the wells shown)."""
    ctrl = matched_controls(plate_wells, entity["perturbation_type"])
    n_mine = len(mine)
    mine = mine.head(MAX_TILES)
    mine_img, ctrl_img = site_stack(d, mine), site_stack(d, ctrl)
    ranges = channel_ranges(np.stack(ctrl_img if ctrl_img else mine_img))
    return html.Div([
        html.H6(f"{entity_label(entity)} on {plate}: {part_of(len(mine), n_mine, 'well')}"),
        html.Div(well_tiles(d, mine, ranges, images=mine_img), className="d-flex flex-wrap gap-2 pert-tiles"),
        html.H6("Negative controls on the same plate" + (f": {part_of(len(ctrl), ctrl.attrs.get('of', len(ctrl)), 'well')}"
                                                         if len(ctrl) else ""), className="mt-2"),
        html.Div(well_tiles(d, ctrl, ranges, images=ctrl_img) if not ctrl.empty
                 else message("This plate has no negative controls."), className="d-flex flex-wrap gap-2 control-tiles"),
        html.Div("Site 1 of each well, all on the controls' intensity scale; click a tile to open the well in Images.",
                 className="small text-muted"),
    ])


@callback(
    Output(PERT_SEARCH, "value"),
    Input(PERT_NB_FIG, "clickData"),
    Input({"type": PERT_GRID, "index": ALL}, "cellClicked"),
    prevent_initial_call=True,
)
def open_neighbour(click: dict | None, cells: list):
    """Clicking a neighbour (bar or name in a table) makes it the perturbation shown."""
    cell = ctx.triggered[0].get("value") if ctx.triggered else None
    target = neighbour_target(ctx.triggered_id, click, cell)
    return target if target is not None else no_update


def neighbour_target(trigger: str | dict | None, click: dict | None, cell: dict | None) -> str | None:
    """The pert_id a click on the neighbour bars (customdata) or a grid's name cell (rowId) opens."""
    if trigger == PERT_NB_FIG:
        try:
            pid = click["points"][0]["customdata"]
        except (TypeError, KeyError, IndexError):
            return None
        return pid if isinstance(pid, str) else None
    if isinstance(trigger, dict) and trigger.get("type") == PERT_GRID and isinstance(cell, dict):
        if cell.get("colId") == "entity" and isinstance(cell.get("rowId"), str):
            return cell["rowId"]
    return None


@callback(
    Output({"type": PERT_GRID, "index": dash.MATCH}, "exportDataAsCsv"),
    Input({"type": PERT_EXPORT, "index": dash.MATCH}, "n_clicks"),
    prevent_initial_call=True,
)
def export_csv(n: int | None):
    return bool(n)


@callback(Output(PERT_SET_BADGE, "children"), Input(PERT_SEARCH, "value"), Input(SET_STORE, "data"))
def show_membership(pert: str | None, set_key: str | None):
    """Whether the perturbation shown belongs to the gene set chosen in the bar."""
    return membership_badge(set_key, pert_id=pert)


@callback(
    Output(PERT_URL, "search"),
    Input(PERT_SEARCH, "value"),
    Input(PERT_K, "value"),
    Input(PERT_PLATE, "value"),
    State(PERT_URL, "search"),
    prevent_initial_call=True,
)
def sync_url(pert: str | None, k: int | None, plate: str | None, current: str | None):
    """Keep the perturbation (and list length, plate) in the URL so a link reproduces the view."""
    if not isinstance(pert, str) or not pert:
        return no_update
    params = {"pert": pert}
    if k in K_CHOICES and k != 10:
        params["k"] = k
    if isinstance(plate, str) and plate:
        params["plate"] = plate
    new = merge_search(current, params)  # keeps the session's screen and gene set
    return new if new != current else no_update
