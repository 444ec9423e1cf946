"""Plates: batch and well-position effects, before and after alignment.

A plate-layout heatmap of any well metric, row/column profiles pooled over plates, whether control
wells at the same position look alike across plates, batch metrics, plate-by-plate similarity of
control wells and plates whose controls drift (robust z > 3), one click from their images.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from phenomix_dash.cache import memoize
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.alignment import batch_correction_figure
from phenomix_dash.figures.plate import plate_grid
from phenomix_dash.figures.plates_qc import (
    ROBUST_Z_OUTLIER,
    centroid_similarity,
    plate_control_centroids,
    plate_drift,
    plate_drift_figure,
    plate_heatmap_figure,
    plate_similarity_figure,
    pooled_plate_grid,
    position_similarity,
    position_similarity_figure,
    row_col_profile_figure,
    row_col_profiles,
)
from phenomix_dash.figures.sets import plate_member_trace
from phenomix_dash.ids import (
    PL_BATCH,
    PL_DRIFT,
    PL_HEATMAP,
    PL_METRIC,
    PL_OUTLIERS,
    PL_PLATE,
    PL_POSITION,
    PL_PROFILES,
    PL_SIMILARITY,
    PL_SPACE,
    PL_URL,
    SET_STORE,
)
from phenomix_dash.links import merge_search, page_href
from phenomix_dash.security import safe_choice, safe_id
from phenomix_dash.selection import benchmark_captions, benchmark_rows
from phenomix_dash.set_chooser import clean_set
from phenomix_dash.set_data import member_wells_on
from phenomix_dash.shared_answers import shareable

dash.register_page(__name__, path="/plates", name="Plates", title="Phenomix · plates", order=2)


ALL_PLATES = "__all__"
MAX_CONTROLS = 50_000  # controls read for the position statistic; exact below, a seeded sample above
METRIC_LABELS = {
    "distance_to_controls_raw": "distance to plate control centroid (raw)",
    "distance_to_controls_aligned": "distance to plate control centroid (aligned)",
    "pc1_raw": "first principal component (raw)",
    "pc1_aligned": "first principal component (aligned)",
}
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg"}}
_SKIP_NUMERIC = {"row", "col", "concentration_um", "plate_number", "SMILES", "concentration"}


# -- cached statistics over stored arrays -------------------------------------------------------

def metric_options(d) -> list[dict[str, str]]:
    """Well metrics from the relate stage first, then numeric wells columns (e.g. a cell count)."""
    opts = []
    try:
        opts = [{"label": METRIC_LABELS.get(c, c), "value": c} for c in d.well_metrics().columns if c != "well_id"]
    except DataUnavailable:
        pass
    w = d.wells
    for c in w.columns:
        if c not in _SKIP_NUMERIC and pd.api.types.is_numeric_dtype(w[c]) and w[c].notna().any():
            opts.append({"label": f"{c.replace('_', ' ')} (wells table)", "value": c})
    return opts


def metric_values(d, metric: str) -> np.ndarray:
    """(n_wells,) float values of a metric; ValueError naming it when unknown."""
    try:
        m = d.well_metrics()
        if metric in m.columns and metric != "well_id":
            return m[metric].to_numpy(dtype=float)
    except DataUnavailable:
        pass
    w = d.wells
    if metric in w.columns and metric not in _SKIP_NUMERIC and pd.api.types.is_numeric_dtype(w[metric]):
        return w[metric].to_numpy(dtype=float, na_value=np.nan)
    raise ValueError(f"unknown well metric {metric!r}")


@memoize(16, store=True)
def pooled_grid(d, metric: str) -> np.ndarray:
    return pooled_plate_grid(d.wells, metric_values(d, metric), d.plate_format)


@memoize(16, store=True)
def profiles(d, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return row_col_profiles(d.wells, metric_values(d, metric))


@memoize(2, store=True, disk=True)
def control_position_stats(d) -> pd.DataFrame:
    """Same- vs different-position cosine of negative controls across plates, raw and aligned;
    ``n_controls`` / ``n_controls_total``: control wells used / in the screen."""
    w = d.wells
    idx = np.flatnonzero((w["perturbation_type"] == "negative_control").to_numpy())
    n_total = len(idx)
    if len(idx) > MAX_CONTROLS:
        idx = np.sort(np.random.default_rng(0).choice(idx, MAX_CONTROLS, replace=False))
    rows = []
    for space in ("raw", "aligned"):
        emb = np.asarray(d.well_embeddings(space)[idx])
        s = position_similarity(emb, w["plate"].to_numpy()[idx], w["well"].to_numpy()[idx])
        rows.append({"space": space, **s, "n_controls": len(idx), "n_controls_total": n_total})
    return pd.DataFrame(rows)


@memoize(2, store=True, disk=True)
def plate_stats(d) -> dict:
    """Per-plate control centroids -> similarity matrices and drift, raw and aligned."""
    out = {}
    idx = np.flatnonzero((d.wells["perturbation_type"] == "negative_control").to_numpy())
    sub = d.wells.iloc[idx]
    for space in ("raw", "aligned"):
        # Fancy indexing reads only the control rows from the memory map.
        info, cent = plate_control_centroids(np.asarray(d.well_embeddings(space)[idx]), sub)
        out[f"sim_{space}"] = centroid_similarity(cent)
        out[f"drift_{space}"] = plate_drift(info, cent)
        out["info"] = info
    return out


# -- layout -------------------------------------------------------------------------------------

def _card(title: str, body, note: str | None = None) -> dbc.Card:
    parts = [html.H6(title, className="card-title")]
    parts.append(body)
    if note:
        parts.append(html.Div(note, className="small text-muted"))
    return dbc.Card(dbc.CardBody(parts), className="mb-3")


def layout(metric: str | None = None, plate: str | None = None, space: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        opts = metric_options(d)
        plates = d.plates
    except DataUnavailable as err:
        return message(f"No plates to show: {err}")
    if not opts:
        return message("This store has no well metrics yet; rerun precompute.")
    notes = []
    values = [o["value"] for o in opts]
    if metric not in values:
        if metric:
            notes.append(message(f"unknown metric {metric!r}; showing {values[0]}", "info"))
        metric = values[0]
    plate_opts = [{"label": "all plates (median per position)", "value": ALL_PLATES}] + [
        {"label": f"{p} (batch {b})", "value": p} for p, b in zip(plates["plate"], plates["batch"], strict=True)]
    if plate not in {o["value"] for o in plate_opts}:
        if plate:
            notes.append(message(f"unknown plate {plate!r}; showing all plates", "info"))
        plate = ALL_PLATES
    space = space if space in ("raw", "aligned") else "aligned"
    def g(graph_id: str, height: str | None) -> dcc.Loading:
        return dcc.Loading(dcc.Graph(id=graph_id, config=GRAPH_CONFIG, style={"height": height} if height else {}),
                           delay_show=250)
    return html.Div([
        dcc.Location(id=PL_URL, refresh=False),
        html.H3("Plates"),
        html.Div("Technical variation: plates imaged together (batches) and wells at the plate edge often differ "
                 "more than the biology does. Each view compares raw embeddings with aligned ones.",
                 className="text-muted small mb-2"),
        html.Div(notes),
        dbc.Row([
            dbc.Col([dbc.Label("Well metric"), dcc.Dropdown(opts, metric, id=PL_METRIC, clearable=False)], md=5),
            dbc.Col([dbc.Label("Plate"), dcc.Dropdown(plate_opts, plate, id=PL_PLATE, clearable=False)], md=4),
            dbc.Col([dbc.Label("Drift in"), dbc.RadioItems(id=PL_SPACE, value=space, inline=True, options=[
                {"label": "raw", "value": "raw"}, {"label": "aligned", "value": "aligned"}])], md=3),
        ], className="mb-2"),
        dbc.Row([dbc.Col(_card("Plate layout", g(PL_HEATMAP, "430px")), lg=6),
                 dbc.Col(_card("Row and column profiles", g(PL_PROFILES, "320px"),
                               "Median and interquartile range over all plates; a flat line = no position effect."), lg=6)]),
        dbc.Row([dbc.Col(_card("Same-position control wells", g(PL_POSITION, None),
                               "Cosine between negative-control wells on different plates. Same-position pairs far "
                               "above other pairs = a well-position effect; alignment should close the gap."), lg=5),
                 dbc.Col(_card("Batch metrics", g(PL_BATCH, None)), lg=7)]),
        dbc.Row([dbc.Col(_card("Plate-by-plate similarity", g(PL_SIMILARITY, None),
                               "Cosine of plates' control centroids after centring: blocks along the diagonal = "
                               "batches; they should fade after alignment."), lg=7),
                 dbc.Col(_card("Outlier plates", html.Div([g(PL_DRIFT, "320px"), html.Div(id=PL_OUTLIERS)]),
                               f"Control drift: distance of a plate's control centroid from the median of all "
                               f"plates, robust z > {ROBUST_Z_OUTLIER:g} flagged. Click a bar to map that plate."),
                         lg=5)]),
    ])


# -- callbacks -----------------------------------------------------------------------------------

def heatmap_figure(d, metric: str, plate: str):
    label = METRIC_LABELS.get(metric, metric.replace("_", " "))
    diverging = metric.startswith("pc1")
    if plate == ALL_PLATES:
        grid, title = pooled_grid(d, metric), f"{label}: median over {len(d.plates)} plates"
    else:
        # By position: no lookup of each well id in a dict over every well (building that dict cost
        # ~0.5 s of a fresh process's first plate view at a million wells).
        rows = d.plate_rows(plate)
        grid = plate_grid(d.wells.iloc[rows], metric_values(d, metric)[rows], d.plate_format)
        title = f"{label}: plate {plate}"
    return plate_heatmap_figure(grid, title=title, colorbar_title=label.split(" (")[0], diverging=diverging,
                                plate_format=d.plate_format)


def warm_up() -> None:
    """At server start: the default view (first metric, all plates) and its profiles, so the first
    visitor does not read and reduce the well metrics (0.65-0.73 s cold at a million wells)."""
    try:
        d = get_data()
        opts = metric_options(d)
        if opts:
            update_metric_views(opts[0]["value"], ALL_PLATES)
    except (DataUnavailable, ValueError, KeyError):
        pass  # the page says what is missing when asked


def outline_set(fig, d, set_key: str | None, plate: str):
    """Outline the chosen gene set's wells on the plate (pooled view: the positions they hold on any plate)."""
    w = member_wells_on(d, set_key, None if plate == ALL_PLATES else plate)
    if plate == ALL_PLATES:
        w = w.drop_duplicates(["row", "col"])
    fig.add_trace(plate_member_trace(w["row"], w["col"], w["well_id"].astype(str).tolist()))
    return fig


@callback(Output(PL_HEATMAP, "figure"), Output(PL_PROFILES, "figure"), Input(PL_METRIC, "value"),
          Input(PL_PLATE, "value"), Input(SET_STORE, "data"))
def update_metric_views(metric, plate, set_key=None):
    try:
        d = get_data()
        metric = safe_choice(metric, [o["value"] for o in metric_options(d)])
        plate = safe_choice(plate, [ALL_PLATES, *d.plates["plate"]], default=ALL_PLATES)
        if metric is None:
            raise ValueError("unknown well metric: choose one from the list")
        rows, cols = profiles(d, metric)
        label = METRIC_LABELS.get(metric, metric.replace("_", " "))
        fig = outline_set(heatmap_figure(d, metric, plate), d, clean_set(set_key), plate)
        return fig, row_col_profile_figure(rows, cols, label=label)
    except (DataUnavailable, ValueError) as err:
        err_fig = {"layout": {"title": {"text": str(err)}}}
        return err_fig, err_fig


shareable(PL_HEATMAP, "figure")  # a pure function of its request and the screen: answers shared by workers


def outlier_list(drift: pd.DataFrame) -> html.Div:
    flagged = drift[drift["outlier"]].sort_values("robust_z", ascending=False)
    if not np.isfinite(drift["robust_z"].to_numpy(dtype=float)).any():  # undefined, not "all calm"
        return html.Div(f"No plate drifts beyond z > {ROBUST_Z_OUTLIER:g}: the robust z is not defined for these "
                        f"{len(drift)} plates (it needs at least 3 with some spread in control drift).",
                        className="small text-muted", id="plates-outlier-list")
    if flagged.empty:
        return html.Div(f"No plate drifts beyond z > {ROBUST_Z_OUTLIER:g}.", className="small text-success")
    items = [html.Li([html.B(p), f" (batch {b}, z = {z:.1f}) — ",
                      dcc.Link("plate and images", href=page_href("/", plate=p))])
             for p, b, z in zip(flagged["plate"], flagged["batch"], flagged["robust_z"], strict=True)]
    return html.Div([html.Div(f"{len(flagged)} outlier plate(s):", className="small"), html.Ul(items, className="small")],
                    id="plates-outlier-list")


@memoize(2, store=True, disk=True)
def static_figures(d) -> tuple[dict, dict, dict]:
    """Views that depend only on the store, as figure dicts: built once per process."""
    stats = plate_stats(d)
    bench = batch_correction_figure(benchmark_rows(d), title="Batch metrics before and after alignment",
                                    aligned_label=f"aligned ({d.primary_align})", captions=benchmark_captions(d))
    pos = control_position_stats(d)
    pos_fig = position_similarity_figure(pos, int(pos["n_controls"].iloc[0]), int(pos["n_controls_total"].iloc[0]))
    return (pos_fig.to_plotly_json(), bench.to_plotly_json(),
            plate_similarity_figure(stats["info"], stats["sim_raw"], stats["sim_aligned"]).to_plotly_json())


@callback(Output(PL_POSITION, "figure"), Output(PL_BATCH, "figure"), Output(PL_SIMILARITY, "figure"),
          Input(PL_URL, "pathname"))
def update_static_views(_pathname):
    try:
        return static_figures(get_data())
    except (DataUnavailable, ValueError) as err:
        err_fig = {"layout": {"title": {"text": str(err)}}}
        return err_fig, err_fig, err_fig


@callback(Output(PL_DRIFT, "figure"), Output(PL_OUTLIERS, "children"), Input(PL_SPACE, "value"))
def update_drift(space):
    try:
        drift = plate_stats(get_data())[f"drift_{space if space in ('raw', 'aligned') else 'aligned'}"]
    except (DataUnavailable, ValueError) as err:
        return {"layout": {"title": {"text": str(err)}}}, message(str(err))
    return plate_drift_figure(drift, space=space), outlier_list(drift)


def plate_from_click(click: dict | None, known: set[str]) -> str | None:
    try:
        p = click["points"][0]["x"]
    except (TypeError, KeyError, IndexError):
        return None
    return p if isinstance(p, str) and p in known else None


@callback(Output(PL_PLATE, "value"), Input(PL_DRIFT, "clickData"), prevent_initial_call=True)
def drift_click(click):
    try:
        p = plate_from_click(click, set(get_data().plates["plate"]))
    except DataUnavailable:
        return no_update
    return p if p is not None else no_update


@callback(Output(PL_URL, "search"), Input(PL_METRIC, "value"), Input(PL_PLATE, "value"), Input(PL_SPACE, "value"),
          State(PL_URL, "search"), prevent_initial_call=True)
def sync_url(metric, plate, space, current):
    metric, plate, space = safe_id(metric), safe_id(plate), safe_choice(space, ("raw", "aligned"), "aligned")
    if metric is None:
        return no_update
    params = {"metric": metric, "space": space}
    if plate and plate != ALL_PLATES:
        params["plate"] = plate
    new = merge_search(current, params)  # keeps the session's screen and gene set
    return new if new != current else no_update
