"""Sections of the Perturbation page fed by the characterise stage: match significance on the
neighbour lists, the feature groups behind the phenotype (with a CSV download), the dose curve.

Kept apart from pages/perturbation.py (file size); the page imports the layout pieces and the
helpers and calls ``register_callbacks``. Everything is read through phenomix_dash.data; nothing
is recomputed except a pair's p/q from the stored null.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, PhenomixData, get_data
from phenomix_dash.figures.channel_attribution import channel_attribution_figure
from phenomix_dash.figures.dose import dose_curve_figure
from phenomix_dash.figures.drivers import driver_table, feature_group_figure, group_table
from phenomix_dash.figures.missing import fmt_value
from phenomix_dash.figures.significance import significance_columns, significant_only, with_significance
from phenomix_dash.ids import (
    PERT_DOSE,
    PERT_DRIVERS,
    PERT_DRIVERS_BTN,
    PERT_DRIVERS_DL,
    PERT_DRIVERS_FIG,
    PERT_PAIR,
    PERT_PAIR_WITH,
    PERT_SEARCH,
    PERT_SIG_ONLY,
)

PAIR_ROWS = 15
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "perturbation"}}


def significance_switch() -> dbc.Checklist:
    return dbc.Checklist(id=PERT_SIG_ONLY, options=[{"label": "significant matches only (q < 0.05)", "value": "sig"}],
                         value=[], switch=True, inline=True, className="small my-1")


def add_significance(d: PhenomixData, query_row: int, frame: pd.DataFrame, row_of: dict[str, int]) -> pd.DataFrame:
    """The neighbour frame with p, q and the call mark; missing (not computed) when the run has no
    characterise stage for the embedder."""
    if not d.has_significance():
        return with_significance(frame, None, None)
    targets = np.array([row_of[p] for p in frame["pert_id"]], dtype=np.int64)
    p, q = d.pair_significance(query_row, targets)
    return with_significance(frame, p, q)


def filter_lists(lists: dict[str, pd.DataFrame], only_significant: bool) -> dict[str, pd.DataFrame]:
    return {k: significant_only(v) if only_significant else v for k, v in lists.items()}


def insert_significance_columns(grid) -> None:
    """Put q and the call mark after the cosine column of a neighbour grid (figures/neighbours.py)."""
    cols = list(grid.columnDefs)
    at = next((i + 1 for i, c in enumerate(cols) if c.get("field") == "cosine"), len(cols))
    grid.columnDefs = cols[:at] + significance_columns() + cols[at:]


def sections() -> list:
    """The page's layout for the feature groups, the pair view and the dose curve."""
    return [
        html.H5("What moves: feature groups", className="mt-3"),
        html.Div("Effect sizes against the plates' negative controls (mean z of its wells), grouped by "
                 "compartment, measurement kind and channel; bar = root mean square effect of the group's features.",
                 className="small text-muted"),
        dcc.Loading(html.Div([html.Div(id=PERT_DRIVERS), dcc.Graph(id=PERT_DRIVERS_FIG, config=GRAPH_CONFIG),
                              dbc.Button("Download feature table (CSV)", id=PERT_DRIVERS_BTN, size="sm",
                                         color="secondary", outline=True),
                              dcc.Download(id=PERT_DRIVERS_DL)])),
        dbc.Row(dbc.Col([dbc.Label("Compare with a neighbour (shared and differing features)"),
                         dcc.Dropdown(id=PERT_PAIR_WITH, placeholder="one of its nearest neighbours…", clearable=True)],
                        md=6), className="mt-2"),
        dcc.Loading(html.Div(id=PERT_PAIR)),
        html.H5("Dose-response", className="mt-3"),
        dcc.Loading(html.Div(id=PERT_DOSE)),
    ]


def _entity(d: PhenomixData, pert: str) -> tuple[int, dict] | None:
    table = d.perturbations()
    hit = np.flatnonzero(table["pert_id"].astype(str).to_numpy() == pert)
    return (int(hit[0]), table.iloc[int(hit[0])].to_dict()) if hit.size else None


def _driver_rows(d: PhenomixData, pert: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str] | None:
    """(features, effect, q, embedder) of a perturbation in the driver embedder's own row order."""
    e = d.driver_embedder
    if e is None:
        return None
    features, effect, q = d.feature_drivers(e)
    rows = np.flatnonzero(d.perturbations(e)["pert_id"].astype(str).to_numpy() == pert)
    if rows.size == 0:
        return None
    return features, np.asarray(effect[rows[0]]), np.asarray(q[rows[0]]), e


def channel_attribution_graph(d: PhenomixData, pert: str) -> dcc.Graph | None:
    """The channel_attribution stage's bars for ``pert`` (primary embedder; a CA-MAE on an image
    screen), None when the run has no such stage."""
    e = d.primary_embedder
    if not d.has_stage("channel_attribution", e):
        return None
    table = d.artifact("channel_attribution", "channel_attribution", e)
    hit = table[table["pert_id"].astype(str) == pert]
    fig = channel_attribution_figure(hit.iloc[0].to_dict() if len(hit) else None,
                                     {"channels": list(d.channels), "sample": d.stage_info("channel_attribution", e).get("sample"),
                                      "title": f"{pert}: which stains carry the phenotype ({e}, one channel left out)"})
    return dcc.Graph(figure=fig, config=GRAPH_CONFIG, id="perturbation-channel-attribution-figure")


def show_drivers(pert: str | None):
    hidden = {"display": "none"}
    if not isinstance(pert, str) or not pert:
        return None, {}, hidden
    try:
        d = get_data()
        channels = channel_attribution_graph(d, pert)
        found = _driver_rows(d, pert)
        if found is None:
            if channels is not None:  # a Dash component's truth is its number of children: test for None
                return channels, {}, hidden
            return message("This screen's embedders have no named features (pixel statistics or profiles) and the "
                           "run has no channel attribution (CA-MAE embedders only).", "light"), {}, hidden
        features, effect, q, e = found
        fig = feature_group_figure({pert: group_table(features, effect, q)},
                                   title=f"{pert}: feature groups ({e} features, {len(features)} in all)")
        n_sig = int((q < 0.05).sum())
        note = html.Div(f"{n_sig} of {len(features)} features move at q < 0.05 (BH over this perturbation's features).",
                        className="small")
        return (note if channels is None else html.Div([channels, note])), fig, {}
    except (DataUnavailable, ValueError) as err:
        return message(str(err), "light"), {}, hidden


def download_drivers(n: int | None, pert: str | None):
    if not n or not isinstance(pert, str):
        return no_update
    try:
        found = _driver_rows(get_data(), pert)
    except DataUnavailable:
        return no_update
    if found is None:
        return no_update
    features, effect, q, _ = found
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pert)[:80]
    return dcc.send_data_frame(driver_table(features, effect, q).to_csv, f"feature_drivers_{safe}.csv", index=False)


def show_dose(pert: str | None):
    if not isinstance(pert, str) or not pert:
        return None
    try:
        d = get_data()
        found = _entity(d, pert)
        if found is None:
            return None
        _, entity = found
        if entity["perturbation_type"] != "compound":
            return html.Div("Dose-response applies to compounds.", className="small text-muted")
        name = str(entity["perturbation"])
        fits = d.dose_response()
        points = d.dose_points()
        row = fits[fits["perturbation"].astype(str) == name]
        mine = points[points["perturbation"].astype(str) == name]
        if row.empty:
            return html.Div(f"{name}: fewer than three doses, no dose-response fit.", className="small text-muted")
        fig = dose_curve_figure(name, mine, row.iloc[0].to_dict())
        return dcc.Graph(figure=fig, config=GRAPH_CONFIG, id="perturbation-dose-figure")
    except (DataUnavailable, ValueError) as err:
        return message(str(err), "light")


def pair_options(pert: str | None):
    """The perturbation's ten most similar genes and compounds, to compare it with."""
    from phenomix_dash.neighbours import entity_label, neighbour_index

    if not isinstance(pert, str) or not pert:
        return [], None
    try:
        index = neighbour_index(get_data())
        res = index.query(pert, 10)
    except (DataUnavailable, ValueError):
        return [], None
    rows = [int(r) for nb in res.values() for r in nb.top_idx]
    table = index.table
    return [{"label": entity_label(table.iloc[r].to_dict()), "value": str(table["pert_id"].iloc[r])} for r in rows], None


def pair_view(d: PhenomixData, a: str, b: str) -> html.Div:
    """The pair's match p/q and its features side by side: shared, opposite or moved by one only."""
    from precompute.feature_drivers import pair_features

    found_a, found_b = _entity(d, a), _entity(d, b)
    if found_a is None or found_b is None:
        return message("unknown perturbation in the pair", "light")
    parts: list = []
    if d.has_significance():
        p, q = d.pair_significance(found_a[0], np.array([found_b[0]]))
        call = "not tested (they share wells)" if not np.isfinite(q[0]) else (
            "significant match (q < 0.05)" if q[0] < 0.05 else "not significant")
        parts.append(html.Div(f"Match: p = {fmt_value(p[0], '.2g')}, q = {fmt_value(q[0], '.2g')} — {call}",
                              className="small pair-significance"))
    ra, rb = _driver_rows(d, a), _driver_rows(d, b)
    if ra is None or rb is None:
        return html.Div(parts + [message("No named features for this pair.", "light")])
    features = ra[0]
    table = pair_features(ra[1], ra[2], rb[1], rb[2], features["feature"].astype(str).tolist())
    counts = table["status"].value_counts()
    parts.append(dcc.Graph(figure=feature_group_figure({a: group_table(features, ra[1], ra[2]),
                                                        b: group_table(features, rb[1], rb[2])},
                                                       title=f"{a} vs {b}: feature groups"),
                           config=GRAPH_CONFIG, id="perturbation-pair-figure"))
    parts.append(html.Div(", ".join(f"{int(counts.get(k, 0))} {k}" for k in ("shared", "opposite", "first only", "second only"))
                          + f" (features moved at q < 0.05 by either; first = {a}, second = {b})", className="small"))
    if len(table):
        show = table.head(PAIR_ROWS).assign(**{c: table.head(PAIR_ROWS)[c].map(lambda v: fmt_value(v, ".2g"))
                                               for c in ("effect_a", "q_a", "effect_b", "q_b")})
        parts.append(dbc.Table.from_dataframe(show, size="sm", striped=True, className="pair-features mt-1"))
    return html.Div(parts)


def show_pair(other: str | None, pert: str | None):
    if not isinstance(other, str) or not isinstance(pert, str) or not other or not pert:
        return None
    try:
        return pair_view(get_data(), pert, other)
    except (DataUnavailable, ValueError) as err:
        return message(str(err), "light")


def register_callbacks() -> None:
    """Register this section's callbacks. Called from the page module, which Dash executes anew for
    every app it builds (use_pages): a decorator here would run once per process, on first import,
    so a second app in the same process (tests, several screens) would have none of them."""
    callback(Output(PERT_DRIVERS, "children"), Output(PERT_DRIVERS_FIG, "figure"), Output(PERT_DRIVERS_FIG, "style"),
             Input(PERT_SEARCH, "value"))(show_drivers)
    callback(Output(PERT_DRIVERS_DL, "data"), Input(PERT_DRIVERS_BTN, "n_clicks"), State(PERT_SEARCH, "value"),
             prevent_initial_call=True, background=True)(download_drivers)
    callback(Output(PERT_DOSE, "children"), Input(PERT_SEARCH, "value"))(show_dose)
    callback(Output(PERT_PAIR_WITH, "options"), Output(PERT_PAIR_WITH, "value"), Input(PERT_SEARCH, "value"))(pair_options)
    callback(Output(PERT_PAIR, "children"), Input(PERT_PAIR_WITH, "value"), State(PERT_SEARCH, "value"))(show_pair)
