"""The map page's side panel (a clicked well or perturbation) and its selection views (counts,
the selected wells on their plate, image tiles): Dash components built from the store."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import dcc, html

from phenomix_dash.cache import memoize
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable
from phenomix_dash.figures.captions import part_of
from phenomix_dash.figures.images import composite_rgb, png_data_uri
from phenomix_dash.figures.missing import fmt_value
from phenomix_dash.figures.palette import PERTURBATION_TYPE_LABELS
from phenomix_dash.figures.plate import plate_layout_figure
from phenomix_dash.links import page_href
from phenomix_dash.selection import (
    point_index,
    selected_wells,
    selection_summary,
    tile_rows,
)
from precompute.aggregate import pert_id_for

# -- side panel and selection views ------------------------------------------------------------

N_NEIGHBOURS = 10
N_TILES = 6


def pert_href(pert_id: str) -> str:
    return page_href("/perturbation", pert=pert_id)  # carries the screen being browsed


def images_href(well_id: str) -> str:
    return page_href("/images", well=well_id)


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


@memoize(2, store=True)
def first_wells(d) -> dict[tuple[str, str], str]:
    """(perturbation type, perturbation) -> its first well: a clicked perturbation's images link
    without comparing two string columns over every well (~0.1 s per click at a million wells)."""
    w = d.wells[["perturbation_type", "perturbation", "well_id"]].dropna()
    w = w.drop_duplicates(["perturbation_type", "perturbation"]).astype(str)
    return dict(zip(zip(w["perturbation_type"], w["perturbation"], strict=True), w["well_id"], strict=True))


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
        well_for_images = first_wells(d).get((str(r["perturbation_type"]), str(r["perturbation"])))
    i = point_index(d, "perturbations", pid)
    body = head + [_activity_line(d, pid)]
    links = [dbc.Button("Perturbation page", href=pert_href(pid), size="sm", color="primary", className="me-2")]
    if well_for_images:
        links.append(dbc.Button("Images", href=images_href(well_for_images), size="sm", color="secondary"))
    body.append(html.Div(links, className="mb-2"))
    body.append(_neighbour_list(d, i) if i is not None else html.Div("no aggregated profile", className="small"))
    return html.Div(body, id="map-panel-content")


@memoize(256, store=True, disk=True)
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
