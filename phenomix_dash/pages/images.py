"""Images: one well and site — channel composite with per-channel controls, single channels,
and the MAE's reconstruction of one tile beside the original (masked input, reconstruction,
per-channel error)."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, dcc, html, no_update

from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, PhenomixData, get_data
from phenomix_dash.figures.images import channel_colour, composite_rgb, png_data_uri, site_panels
from phenomix_dash.figures.palette import PERTURBATION_TYPE_LABELS
from phenomix_dash.ids import (
    IMG_CENTRE,
    IMG_COLOUR,
    IMG_GAIN,
    IMG_INFO,
    IMG_ON,
    IMG_RATIO,
    IMG_RECON,
    IMG_RESEED,
    IMG_SEED,
    IMG_SET_BADGE,
    IMG_SITE,
    IMG_TILE_FIG,
    IMG_URL,
    IMG_VIEW,
    IMG_WELL,
    SET_STORE,
)
from phenomix_dash.links import merge_search
from phenomix_dash.reconstruction import (
    ReconstructionUnavailable,
    channel_ranges,
    composite_fixed,
    crop_origin,
    error_maps,
    grey_fixed,
    load_model,
    model_input_size,
    reconstruct_site,
)
from phenomix_dash.set_chooser import membership_badge

dash.register_page(__name__, path="/images", name="Images", title="Phenomix · images", order=6)


N_OPTIONS = 50
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": "site"}}


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def hex_to_rgb(value: str | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b); anything else -> default (inputs are validated, never trusted)."""
    if not isinstance(value, str) or len(value) != 7 or value[0] != "#":
        return default
    try:
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    except ValueError:
        return default


def well_label(r) -> str:
    extra = f" {r.concentration_um:g} µM" if r.perturbation_type == "compound" and np.isfinite(r.concentration_um) else ""
    return f"{r.plate} {r.well} · {r.perturbation}{extra}"


def well_options(wells: pd.DataFrame, text: str | None, keep: str | None, limit: int = N_OPTIONS) -> list[dict]:
    """Wells whose id, plate, well or perturbation contains ``text`` (server-side filtering)."""
    hits = wells[wells["well_id"] == keep] if keep else wells.iloc[:0]
    rest = wells[wells["well_id"] != keep] if keep else wells
    if text:
        s = str(text).strip().lower()[:80]
        hay = (rest["well_id"].astype(str) + " " + rest["perturbation"].astype(str)).str.lower()
        rest = rest[hay.str.contains(s, regex=False).to_numpy()]
    hits = pd.concat([hits, rest.head(limit)])
    return [{"label": well_label(r), "value": r.well_id} for r in hits.itertuples()]


def channel_controls(channels: tuple[str, ...]) -> list:
    rows = []
    for c, name in enumerate(channels):
        rows.append(dbc.Row([
            dbc.Col(dbc.Checklist(id={"type": IMG_ON, "index": c}, options=[{"label": name, "value": 1}], value=[1],
                                  switch=True), width=4),
            dbc.Col(dbc.Input(id={"type": IMG_COLOUR, "index": c}, type="color", value=_hex(channel_colour(c)),
                              style={"height": "30px", "padding": "2px"}), width=2),
            dbc.Col(dcc.Slider(id={"type": IMG_GAIN, "index": c}, min=0.5, max=4, step=0.25, value=1,
                               marks={0.5: "½×", 1: "1×", 2: "2×", 4: "4×"}), width=6),
        ], className="align-items-center mb-1"))
    return rows


def layout(well: str | None = None, site: str | None = None, ratio: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        wells = d.wells
    except DataUnavailable as err:
        return message(f"No screen to show: {err}")
    unknown = well if well is not None and well not in d.well_index else None
    if well not in d.well_index:
        well = wells["well_id"].iloc[0]
    try:
        site_i = min(max(int(site) - 1, 0), d.n_sites - 1) if site is not None else 0
    except ValueError:
        site_i = 0
    try:
        r = float(ratio) if ratio is not None else 0.75
        r = r if 0.05 <= r <= 0.95 else 0.75
    except ValueError:
        r = 0.75
    return html.Div([
        dcc.Location(id=IMG_URL, refresh=False),
        html.H3("Images"),
        message(f"{str(unknown)[:80]!r} is not a well of this screen; showing the first well.") if unknown else None,
        dbc.Row([
            dbc.Col([dbc.Label("Well"), dcc.Dropdown(id=IMG_WELL, options=well_options(wells, None, well), value=well,
                                                     clearable=False, placeholder="type a well id or perturbation…")], md=6),
            dbc.Col([dbc.Label("Site"), dbc.RadioItems(id=IMG_SITE, options=[{"label": f"site {s + 1}", "value": s}
                                                                           for s in range(d.n_sites)],
                                                       value=site_i, inline=True)], md=6),
        ], className="mb-2"),
        html.Div(id=IMG_SET_BADGE),
        html.Div(id=IMG_INFO, className="mb-2"),
        dbc.Row([
            dbc.Col([html.H6("Channels: on/off, colour, gain (contrast)"), *channel_controls(d.channels)], lg=4),
            dbc.Col(dcc.Loading(html.Div(id=IMG_VIEW)), lg=8),
        ]),
        html.H4("MAE reconstruction", className="mt-4"),
        html.Div("The masked autoencoder sees only the unmasked patches of a tile and paints the rest. "
                 "Click the site to choose the tile; the mask ratio is the fraction of patches hidden.",
                 className="small text-muted mb-2"),
        dbc.Row([
            dbc.Col([
                dcc.Loading(dcc.Graph(id=IMG_TILE_FIG, config=GRAPH_CONFIG, style={"height": "360px"})),
                dbc.Label("Mask ratio"),
                dcc.Slider(id=IMG_RATIO, min=0.05, max=0.95, step=0.05, value=r,
                           marks={0.25: "25%", 0.5: "50%", 0.75: "75%", 0.95: "95%"}),
                dbc.Button("Draw another mask", id=IMG_RESEED, size="sm", color="secondary", outline=True, className="mt-2"),
            ], lg=4),
            dbc.Col(dcc.Loading(html.Div(id=IMG_RECON)), lg=8),
        ]),
        dcc.Store(id=IMG_CENTRE),
        dcc.Store(id=IMG_SEED, data=0),
    ])


# -- pure view builders --------------------------------------------------------------------------

def site_tile_figure(rgb: np.ndarray, origin: tuple[int, int] | None, size: int | None) -> go.Figure:
    """A site composite (H, W, 3) uint8 as a clickable figure, the model's tile outlined."""
    h, w = rgb.shape[:2]
    fig = go.Figure(go.Image(source=png_data_uri(rgb), x0=0, y0=0, dx=1, dy=1, hoverinfo="x+y", name="site"))
    if origin is not None and size:
        y, x = origin
        fig.add_shape(type="rect", x0=x - 0.5, x1=x + size - 0.5, y0=y - 0.5, y1=y + size - 0.5,
                      line=dict(color="#F0E442", width=2))
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5])
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(margin=dict(l=0, r=0, t=24, b=0), title=dict(text="site (click to move the tile)", font=dict(size=12)),
                      clickmode="event", dragmode=False)
    return fig


def figure_img(src: str, caption: str, width: str = "100%", cls: str = "") -> html.Figure:
    return html.Figure([html.Img(src=src, alt=caption, className=f"img-fluid {cls}",
                                 style={"width": width, "background": "#000", "borderRadius": "3px",
                                        "imageRendering": "pixelated"}),
                        html.Figcaption(caption, className="small text-muted")], className="m-0")


def reconstruction_view(result: dict, channels: tuple[str, ...], colours=None, gains=None) -> html.Div:
    """Original, masked input, reconstruction (and with visible patches pasted back) on ONE
    intensity scale (the original's), then per channel: original, reconstruction, error."""
    lo, hi = channel_ranges(result["input"])
    comp = lambda a: png_data_uri(composite_fixed(a, lo, hi, colours=colours, gains=gains))  # noqa: E731
    pct = round(100 * result["mask_ratio"])
    top = dbc.Row([
        dbc.Col(figure_img(comp(result["input"]), "original tile", cls="recon-original"), width=3),
        dbc.Col(figure_img(comp(result["masked_input"]), f"masked input ({pct}% of patches hidden)", cls="recon-masked"), width=3),
        dbc.Col(figure_img(comp(result["reconstruction"]), "reconstruction", cls="recon-output"), width=3),
        dbc.Col(figure_img(comp(result["reconstruction_pasted"]), "reconstruction, visible patches pasted back"), width=3),
    ], className="g-2 mb-2")
    err = error_maps(result)
    emax = float(err.max()) or 1.0
    mse = np.asarray(result["per_channel_mse"], dtype=float)
    rows = []
    for c, name in enumerate(channels[: err.shape[0]]):
        rows.append(html.Tr([
            html.Td(html.B(name)),
            html.Td(html.Img(src=png_data_uri(grey_fixed(result["input"][c], lo[c], hi[c])), style={"width": "84px"})),
            html.Td(html.Img(src=png_data_uri(grey_fixed(result["reconstruction"][c], lo[c], hi[c])), style={"width": "84px"})),
            html.Td(html.Img(src=png_data_uri(grey_fixed(err[c], 0.0, emax)), style={"width": "84px"})),
            html.Td(f"{mse[c]:.3f}" if np.isfinite(mse[c]) else "—"),
        ]))
    table = dbc.Table([html.Thead(html.Tr([html.Th(h) for h in (
        "channel", "original", "reconstruction", "|error| on masked patches", "MSE (masked, normalised units)")])),
        html.Tbody(rows)], size="sm", className="per-channel-error", style={"maxWidth": "640px"})
    y, x = result["origin"]
    note = (f"{result['size']}×{result['size']} tile at row {y}, column {x} of the site. The model is channel-agnostic: "
            "each channel's patches are masked independently, so a patch may be hidden in some channels only. "
            "All four images share the original's intensity scale; error maps share one scale (brighter = larger "
            "error); MSE is in per-channel normalised units, as in the training loss.")
    return html.Div([top, html.Div(note, className="small text-muted mb-2"), table])


# -- callbacks -----------------------------------------------------------------------------

@callback(Output(IMG_SET_BADGE, "children"), Input(IMG_WELL, "value"), Input(SET_STORE, "data"))
def show_membership(well: str | None, set_key: str | None):
    """Whether the well's perturbation belongs to the gene set chosen in the bar."""
    return membership_badge(set_key, well_id=well)


@callback(Output(IMG_WELL, "options"), Input(IMG_WELL, "search_value"), Input(IMG_WELL, "value"))
def filter_wells(text: str | None, value: str | None):
    try:
        wells = get_data().wells
    except DataUnavailable:
        return []
    return well_options(wells, text if isinstance(text, str) else None, value if isinstance(value, str) else None)


def _site_images(d: PhenomixData, well: str, site) -> tuple[pd.Series, np.ndarray, int]:
    row = d.well_row(well)
    images = d.well_images(well)
    s = int(site) if isinstance(site, int | float) and 0 <= int(site) < images.shape[0] else 0
    return row, images[s], s


def _channel_options(n: int, on: list, colours: list, gains: list) -> dict:
    def at(lst, i, default):
        return lst[i] if isinstance(lst, list) and i < len(lst) else default
    return {
        "enabled": [bool(at(on, c, [1])) for c in range(n)],
        "colours": [hex_to_rgb(at(colours, c, None), channel_colour(c)) for c in range(n)],
        "gains": [float(g) if isinstance(g, int | float) and 0 < g <= 10 else 1.0 for g in (at(gains, c, 1.0) for c in range(n))],
    }


@callback(
    Output(IMG_INFO, "children"),
    Output(IMG_VIEW, "children"),
    Input(IMG_WELL, "value"),
    Input(IMG_SITE, "value"),
    Input({"type": IMG_ON, "index": ALL}, "value"),
    Input({"type": IMG_COLOUR, "index": ALL}, "value"),
    Input({"type": IMG_GAIN, "index": ALL}, "value"),
)
def show_images(well, site, on, colours, gains):
    if not isinstance(well, str):
        return message("Choose a well.", "light"), None
    try:
        d = get_data()
        row, img, s = _site_images(d, well, site)
    except DataUnavailable as err:
        return message(str(err)), None
    opts = _channel_options(img.shape[0], on, colours, gains)
    panels = site_panels(img, d.channels, **opts)
    label = PERTURBATION_TYPE_LABELS.get(row["perturbation_type"], row["perturbation_type"])
    conc = f" at {row['concentration_um']:g} µM" if row["perturbation_type"] == "compound" and pd.notna(row["concentration_um"]) else ""
    info = html.Div([
        html.B(f"{row['well']} · plate {row['plate']} · batch {row['batch']} · site {s + 1}"), html.Br(),
        f"{row['perturbation']} ({label}){conc}",
        f" · guide {row['guide']}" if isinstance(row.get("guide"), str) else "",
    ])
    (_, src0), rest = panels[0], panels[1:]
    view = html.Div([
        figure_img(src0, f"composite of the enabled channels ({img.shape[-1]}×{img.shape[-2]} px)", width="min(100%, 520px)",
                   cls="composite-image"),
        html.Div([figure_img(src, name, width="110px", cls="channel-image") for name, src in rest],
                 className="d-flex flex-wrap gap-2 mt-2"),
    ])
    return info, view


@callback(
    Output(IMG_TILE_FIG, "figure"),
    Input(IMG_WELL, "value"),
    Input(IMG_SITE, "value"),
    Input(IMG_CENTRE, "data"),
)
def show_tile_choice(well, site, centre):
    blank = {"layout": {"xaxis": {"visible": False}, "yaxis": {"visible": False}}}
    if not isinstance(well, str):
        return blank
    try:
        d = get_data()
        _, img, _ = _site_images(d, well, site)
    except DataUnavailable:
        return blank
    try:
        size = model_input_size(d)
        origin = crop_origin(img.shape[1], img.shape[2], size, _centre(centre))
    except (ReconstructionUnavailable, ValueError):
        size, origin = None, None
    return site_tile_figure(composite_rgb(img), origin, size)


def _centre(centre) -> tuple[float, float] | None:
    if isinstance(centre, list | tuple) and len(centre) == 2 and all(isinstance(v, int | float) for v in centre):
        return float(centre[0]), float(centre[1])
    return None


@callback(Output(IMG_CENTRE, "data"), Input(IMG_TILE_FIG, "clickData"), prevent_initial_call=True)
def choose_tile(click):
    try:
        pt = click["points"][0]
        return [float(pt["y"]), float(pt["x"])]
    except (TypeError, KeyError, IndexError, ValueError):
        return no_update


@callback(Output(IMG_SEED, "data"), Input(IMG_RESEED, "n_clicks"), State(IMG_SEED, "data"), prevent_initial_call=True)
def new_mask(_n, seed):
    return (int(seed) + 1) % 1_000_000 if isinstance(seed, int) else 0


@callback(
    Output(IMG_RECON, "children"),
    Input(IMG_WELL, "value"),
    Input(IMG_SITE, "value"),
    Input(IMG_CENTRE, "data"),
    Input(IMG_RATIO, "value"),
    Input(IMG_SEED, "data"),
    Input({"type": IMG_COLOUR, "index": ALL}, "value"),
)
def show_reconstruction(well, site, centre, ratio, seed, colours):
    if not isinstance(well, str):
        return None
    try:
        d = get_data()
        _, img, _ = _site_images(d, well, site)
        model = load_model(d)[0]
        ratio = float(ratio) if isinstance(ratio, int | float) and 0.05 <= ratio <= 0.95 else 0.75
        result = reconstruct_site(model, img, centre=_centre(centre), mask_ratio=ratio,
                                  seed=seed if isinstance(seed, int) else 0)
    except (DataUnavailable, ValueError) as err:
        return message(str(err), "info")
    opts = _channel_options(img.shape[0], None, colours, None)
    return reconstruction_view(result, d.channels, colours=opts["colours"])


@callback(
    Output(IMG_URL, "search"),
    Input(IMG_WELL, "value"),
    Input(IMG_SITE, "value"),
    Input(IMG_RATIO, "value"),
    State(IMG_URL, "search"),
    prevent_initial_call=True,
)
def sync_url(well, site, ratio, current):
    """The well and site (1-based, as on the microscope) in the URL reproduce the view."""
    if not isinstance(well, str):
        return no_update
    params = {"well": well, "site": (int(site) if isinstance(site, int) else 0) + 1}
    if isinstance(ratio, int | float) and abs(ratio - 0.75) > 1e-9:
        params["ratio"] = ratio
    new = merge_search(current, params)  # keeps the session's screen and gene set
    return new if new != current else no_update
