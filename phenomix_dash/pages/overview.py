"""Screen overview: the plate layout of any plate and, on clicking a well, its site images."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from phenomix_dash import ids
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.images import site_panels
from phenomix_dash.figures.palette import PERTURBATION_TYPE_LABELS
from phenomix_dash.figures.plate import plate_layout_figure
from phenomix_dash.figures.sets import plate_member_trace
from phenomix_dash.ids import (
    OV_URL,
)
from phenomix_dash.links import merge_search
from phenomix_dash.security import safe_id, safe_int
from phenomix_dash.set_chooser import clean_set
from phenomix_dash.set_data import member_wells_on

dash.register_page(__name__, path="/", name="Overview", title="Phenomix · screen overview", order=0)

COLOR_BY_OPTIONS = [
    ("perturbation_type", "perturbation type"),
    ("concentration_um", "compound concentration (µM)"),
    ("row", "plate row"),
    ("col", "plate column"),
]


def screen_summary(wells: pd.DataFrame) -> list:
    """Badges: wells, plates, batches and wells per perturbation type."""
    counts = wells["perturbation_type"].value_counts()
    items = [
        ("wells", len(wells)),
        ("plates", wells["plate"].nunique()),
        ("batches", wells["batch"].nunique()),
    ] + [(PERTURBATION_TYPE_LABELS.get(k, k) + " wells", int(v)) for k, v in counts.items()]
    return [dbc.Badge(f"{v:,} {k}", color="light", text_color="dark", className="me-1 mb-1 border") for k, v in items]


def well_description(row: pd.Series) -> html.Div:
    label = PERTURBATION_TYPE_LABELS.get(row["perturbation_type"], row["perturbation_type"])
    lines = [
        html.H5(f"{row['well']} · plate {row['plate']} · batch {row['batch']}", className="mb-1"),
        html.Div([html.B(row["perturbation"]), f" — {label}"]),
    ]
    if isinstance(row.get("guide"), str):
        lines.append(html.Div(f"guide {row['guide']}"))
    if row["perturbation_type"] == "compound" and pd.notna(row.get("concentration_um")):
        lines.append(html.Div(f"{row['concentration_um']:g} µM"))
    return html.Div(lines)


def image_grid(panels: list[tuple[str, str]]) -> html.Div:
    """Composite large, single channels as a row of smaller grey images."""
    (title0, src0), rest = panels[0], panels[1:]
    return html.Div(
        [
            html.Figure(
                [html.Img(src=src0, className="img-fluid composite-image", alt="channel composite"),
                 html.Figcaption(title0, className="small text-muted")],
                className="mb-2",
            ),
            html.Div(
                [
                    html.Figure(
                        [html.Img(src=src, className="img-fluid channel-image", alt=f"{name} channel"),
                         html.Figcaption(name, className="small text-muted text-center")],
                        className="channel-figure",
                    )
                    for name, src in rest
                ],
                className="channel-strip",
            ),
        ]
    )


def layout(plate: str | None = None, well: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        plates = d.plates
        wells = d.wells
    except DataUnavailable as err:
        return message(f"No screen to show: {err}")
    if plate not in set(plates["plate"]):
        plate = plates["plate"].iloc[0]
    if well is not None and well not in d.well_index:
        well = None
    options = [{"label": f"{r.plate} (batch {r.batch}, {r.n_negative_controls} neg. controls)", "value": r.plate}
               for r in plates.itertuples()]
    extra_cols = [c for c in wells.columns if c not in {"well_id", "well", "plate", "row", "col", "perturbation_type",
                                                       "concentration_um", "gene", "guide", "compound", "perturbation"}]
    colour_options = [{"label": lbl, "value": v} for v, lbl in COLOR_BY_OPTIONS] + [
        {"label": c, "value": c} for c in extra_cols
    ]
    return html.Div(
        [
            dcc.Location(id=OV_URL, refresh=False),
            html.H3("Screen overview"),
            html.Div(screen_summary(wells), id=ids.OV_SUMMARY, className="mb-2"),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dbc.Row(
                                [
                                    dbc.Col([dbc.Label("Plate"), dcc.Dropdown(options, plate, id=ids.OV_PLATE, clearable=False)], md=7),
                                    dbc.Col([dbc.Label("Colour wells by"),
                                             dcc.Dropdown(colour_options, "perturbation_type", id=ids.OV_COLOR_BY, clearable=False)], md=5),
                                ],
                                className="mb-2",
                            ),
                            dcc.Loading(dcc.Graph(id=ids.OV_PLATE_FIG, config={"displaylogo": False, "toImageButtonOptions": {"format": "svg"}},
                                                  style={"height": "520px"})),
                            html.Div("Click a well to see its images. ◆ negative control, ★ positive control.",
                                     className="small text-muted"),
                        ],
                        lg=7,
                    ),
                    dbc.Col(
                        [
                            dcc.Store(id=ids.OV_WELL, data=well),
                            html.Div(id=ids.OV_WELL_INFO, className="mb-2"),
                            dbc.RadioItems(id=ids.OV_SITE, options=[{"label": f"site {s + 1}", "value": s} for s in range(d.n_sites)],
                                           value=0, inline=True, className="mb-2"),
                            dcc.Loading(html.Div(id=ids.OV_IMAGES)),
                        ],
                        lg=5,
                    ),
                ]
            ),
        ]
    )


@callback(
    Output(ids.OV_PLATE_FIG, "figure"),
    Input(ids.OV_PLATE, "value"),
    Input(ids.OV_COLOR_BY, "value"),
    Input(ids.OV_WELL, "data"),
    Input(ids.SET_STORE, "data"),
)
def update_plate_figure(plate: str, color_by: str, well: str | None, set_key: str | None = None):
    try:
        d = get_data()
        plate = safe_id(plate, set(d.plates["plate"]))
        color_by = safe_id(color_by, set(d.wells.columns)) or "perturbation_type"
        well = safe_id(well, d.well_index.__contains__)
        if plate is None:
            return {"layout": {"title": {"text": "Choose a plate from the list."}}}
        wells = d.plate_wells(plate)
        fig = plate_layout_figure(wells, plate_format=d.plate_format, color_by=color_by,
                                  title=f"Plate {plate}", selected_well=well)
        members = member_wells_on(d, clean_set(set_key), plate)  # the chosen gene set's wells, outlined
        fig.add_trace(plate_member_trace(members["row"], members["col"], members["well_id"].astype(str).tolist()))
        return fig
    except (DataUnavailable, ValueError) as err:
        return {"layout": {"title": {"text": str(err)}}}


@callback(
    Output(ids.OV_WELL, "data"),
    Input(ids.OV_PLATE_FIG, "clickData"),
    prevent_initial_call=True,
)
def select_well(click: dict | None):
    well_id = clicked_well_id(click)
    return well_id if well_id is not None else no_update


def clicked_well_id(click: dict | None) -> str | None:
    """The well_id carried in a plate figure's click event, if any."""
    try:
        cd = click["points"][0]["customdata"]
    except (TypeError, KeyError, IndexError):
        return None
    return cd if isinstance(cd, str) else None


@callback(
    Output(ids.OV_WELL_INFO, "children"),
    Output(ids.OV_IMAGES, "children"),
    Input(ids.OV_WELL, "data"),
    Input(ids.OV_SITE, "value"),
)
def show_well(well_id: str | None, site: int | None):
    if not well_id:
        return message("No well selected yet.", "light"), None
    try:
        d = get_data()
        if safe_id(well_id, d.well_index.__contains__) is None:
            return message("Unknown well: choose one on the plate."), None
        row = d.well_row(well_id)
        images = d.well_images(well_id)
    except DataUnavailable as err:
        return message(str(err)), None
    site = safe_int(site, 0, images.shape[0] - 1, default=0)
    return well_description(row), image_grid(site_panels(images[site], d.channels))


@callback(
    Output(OV_URL, "search"),
    Input(ids.OV_PLATE, "value"),
    Input(ids.OV_WELL, "data"),
    State(OV_URL, "search"),
    prevent_initial_call=True,
)
def sync_url(plate: str, well: str | None, current: str | None):
    """Keep the page state in the URL so a link reproduces the view."""
    plate, well = safe_id(plate), safe_id(well)
    if plate is None:
        return no_update
    params = {"plate": plate}
    if well:
        params["well"] = well
    new = merge_search(current, params)  # keeps the session's screen and gene set
    return new if new != current else no_update
