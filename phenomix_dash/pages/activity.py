"""Activity: control versus treatment.

How far wells sit from their plate's negative controls, per perturbation type; which
perturbations are phenotypically active (mAP of replicates against negative controls, q < 0.05);
a ranked, filterable table whose rows open the perturbation page.
"""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update

from phenomix_dash import ids
from phenomix_dash.cache import memoize
from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.activity import activity_table, distance_distribution_figure, filter_activity, volcano_figure
from phenomix_dash.figures.dose import with_dose_columns
from phenomix_dash.figures.missing import fmt_value, js_number_formatter
from phenomix_dash.figures.palette import NO_VALUE, PERTURBATION_TYPE_LABELS
from phenomix_dash.ids import (
    ACT_ACTIVE,
    ACT_COUNT,
    ACT_DIST,
    ACT_DOWNLOAD,
    ACT_EXPORT,
    ACT_GRID,
    ACT_KIND,
    ACT_SEARCH,
    ACT_SPACE,
    ACT_TYPES,
    ACT_URL,
    ACT_VOLCANO,
    ACT_VOLCANO_INFO,
    SET_STORE,
)
from phenomix_dash.links import merge_search, page_href
from phenomix_dash.name_data import named_perturbations
from phenomix_dash.names import name_and_id
from phenomix_dash.set_chooser import clean_set
from phenomix_dash.set_data import member_pert_ids, try_set
from precompute.contract import PERTURBATION_TYPES

dash.register_page(__name__, path="/activity", name="Activity", title="Phenomix · activity", order=3)


MAX_GRID_ROWS = 5000  # the browser gets the top rows; the CSV export has every filtered row
MAX_SEARCH = 100
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg"}}
COLUMN_DEFS = [
    {"field": "rank", "headerName": "#", "width": 70, "filter": False},
    {"field": "in_set", "headerName": "in set", "width": 80,
     "valueFormatter": {"function": "params.value ? 'member' : ''"},
     "headerTooltip": "a member of the gene set chosen above (blank: not a member, or no set chosen)"},
    {"field": "name", "headerName": "name", "width": 170, "tooltipField": "name",
     "headerTooltip": "common name from the screen's annotations (blank: none annotated)"},
    {"field": "perturbation", "headerName": "perturbation", "width": 150},
    {"field": "moa", "headerName": "MOA", "width": 200, "tooltipField": "moa",
     "headerTooltip": "mechanism of action from the screen's annotations (blank: none annotated)"},
    {"field": "type", "headerName": "type", "width": 150},
    {"field": "concentration_um", "headerName": "µM", "width": 80},
    {"field": "n_wells", "headerName": "wells", "width": 80},
    {"field": "mean_average_precision", "headerName": "mAP", "width": 90, "valueFormatter": js_number_formatter(".3f")},
    {"field": "q_value", "headerName": "q", "width": 90, "valueFormatter": js_number_formatter(".2~g")},
    {"field": "active", "headerName": "active (q < 0.05)", "width": 130,
     "valueFormatter": {"function": f"params.value == null ? '{NO_VALUE}' : String(params.value)"}},
    {"field": "replicate_cosine", "headerName": "replicate cosine", "width": 130, "valueFormatter": js_number_formatter(".2f")},
    {"field": "ec50", "headerName": "EC50 µM", "width": 100, "valueFormatter": js_number_formatter(".3g"),
     "headerTooltip": "4PL fit of the distance to controls against dose (compounds with 3+ doses; docs/dose-response.md)"},
    {"field": "ec50_low", "headerName": "EC50 low", "width": 100, "valueFormatter": js_number_formatter(".3g"),
     "headerTooltip": "95% interval of the EC50, lower end"},
    {"field": "ec50_high", "headerName": "EC50 high", "width": 100, "valueFormatter": js_number_formatter(".3g"),
     "headerTooltip": "95% interval of the EC50, upper end"},
    {"field": "dose_flags", "headerName": "fit flags", "width": 180, "tooltipField": "dose_flags",
     "headerTooltip": "no response / poor fit / toxic at the top dose; 'none': the fit is trusted"},
    {"field": "pert_id", "headerName": "id", "width": 200},
    {"field": "inchikey", "headerName": "InChIKey", "width": 240, "hide": True},
    {"field": "synonyms", "headerName": "synonyms", "width": 200, "hide": True},
]


@memoize(2, store=True, disk=True)
def ranked_table(d):
    try:
        fits = d.dose_response()
    except DataUnavailable:  # a run without the characterise stage: the columns show no value
        fits = None
    return with_dose_columns(activity_table(named_perturbations(d), d.activity()), fits)


def type_options(table) -> list[dict[str, str]]:
    present = list(dict.fromkeys(table["perturbation_type"].astype(str)))
    return [{"label": PERTURBATION_TYPE_LABELS.get(t, t), "value": t} for t in present]


def clean_filters(types, active, search, known_types) -> tuple[list[str], bool, str]:
    """Validate filter inputs (from the URL or the widgets): unknown types dropped, search capped."""
    if isinstance(types, str):
        types = [t for t in types.split(",") if t]
    types = [t for t in (types if isinstance(types, (list, tuple)) else []) if isinstance(t, str) and t in known_types]
    active = active is True or active in ("1", "true") or (isinstance(active, list) and "active" in active)
    search = search if isinstance(search, str) else ""
    return types, active, search[:MAX_SEARCH]


def layout(types: str | None = None, active: str | None = None, q: str | None = None, space: str | None = None,
           kind: str | None = None, **_: object) -> html.Div:
    try:
        d = get_data()
        table = ranked_table(d)
    except (DataUnavailable, ValueError) as err:
        return message(f"No activity to show: {err}")
    topts = type_options(table)
    types, active_only, search = clean_filters(types, active, q, {o["value"] for o in topts})
    space = space if space in ("raw", "aligned") else "aligned"
    kind = kind if kind in ("violin", "ecdf") else "violin"
    n_active = int(table["active"].sum())
    return html.Div([
        dcc.Location(id=ACT_URL, refresh=False),
        html.H3("Activity"),
        html.Div(f"{n_active:,} of {len(table):,} scored perturbations are active (q < 0.05): their replicate wells "
                 "find each other more readily than they find negative-control wells.", className="text-muted small mb-2"),
        dbc.Row([
            dbc.Col([
                dbc.Row([
                    dbc.Col(dbc.RadioItems(id=ACT_SPACE, value=space, inline=True, options=[
                        {"label": "raw", "value": "raw"}, {"label": "aligned", "value": "aligned"}]), width="auto"),
                    dbc.Col(dbc.RadioItems(id=ACT_KIND, value=kind, inline=True, options=[
                        {"label": "violin", "value": "violin"}, {"label": "cumulative (ECDF)", "value": "ecdf"}]),
                        width="auto"),
                ]),
                dcc.Loading(dcc.Graph(id=ACT_DIST, config=GRAPH_CONFIG, style={"height": "380px"})),
            ], lg=6),
            dbc.Col([dcc.Loading(dcc.Graph(id=ACT_VOLCANO, config=GRAPH_CONFIG, style={"height": "420px"})),
                     html.Div(id=ACT_VOLCANO_INFO, className="small")], lg=6),
        ]),
        dbc.Row([
            dbc.Col(dcc.Dropdown(topts, types, id=ACT_TYPES, multi=True, placeholder="all perturbation types"), md=4),
            dbc.Col(dbc.Checklist(id=ACT_ACTIVE, options=[{"label": "active only (q < 0.05)", "value": "active"}],
                                  value=["active"] if active_only else [], switch=True), md=2),
            dbc.Col(dbc.Input(id=ACT_SEARCH, value=search, placeholder="search name, id, MOA or InChIKey", debounce=True,
                              type="text", maxLength=MAX_SEARCH), md=3),
            dbc.Col([dbc.Button("Export CSV", id=ACT_EXPORT, color="secondary", size="sm"), dcc.Download(id=ACT_DOWNLOAD)],
                    md=1),
            dbc.Col(html.Div(id=ACT_COUNT, className="small text-muted pt-2"), md=2),
        ], className="mt-3 mb-2 g-2"),
        dag.AgGrid(id=ACT_GRID, columnDefs=COLUMN_DEFS, rowData=[], getRowId="params.data.pert_id",
                   defaultColDef={"sortable": True, "resizable": True, "filter": True},
                   dashGridOptions={"rowSelection": {"mode": "singleRow", "checkboxes": False}, "animateRows": False,
                                    "tooltipShowDelay": 300},
                   style={"height": "460px"}),
        html.Div("Click a row to open the perturbation.", className="small text-muted"),
    ])


@callback(Output(ACT_DIST, "figure"), Input(ACT_SPACE, "value"), Input(ACT_KIND, "value"))
def update_distances(space, kind):
    try:
        d = get_data()
        space = space if space in ("raw", "aligned") else "aligned"
        values = d.well_metrics()[f"distance_to_controls_{space}"].to_numpy(dtype=float)
        return distance_distribution_figure(values, d.wells["perturbation_type"].to_numpy(),
                                            kind=kind if kind in ("violin", "ecdf") else "violin",
                                            label=f"distance to plate controls ({space}, cosine)")
    except (DataUnavailable, ValueError, KeyError) as err:
        return {"layout": {"title": {"text": f"distances unavailable: {err}"}}}


def filtered(types, active, search):
    table = ranked_table(get_data())
    t, a, s = clean_filters(types, active, search, set(table["perturbation_type"].astype(str)))
    return filter_activity(table, types=t, active_only=a, search=s)


@callback(Output(ACT_GRID, "rowData"), Output(ACT_COUNT, "children"), Output(ACT_VOLCANO, "figure"),
          Input(ACT_TYPES, "value"), Input(ACT_ACTIVE, "value"), Input(ACT_SEARCH, "value"), Input(SET_STORE, "data"))
def update_table(types, active, search, set_key=None):
    try:
        sub = filtered(types, active, search)
        chosen, _problem = try_set(get_data(), clean_set(set_key))  # a set that cannot be used: the bar says why
        members = member_pert_ids(get_data(), chosen.key) if chosen is not None else set()
    except (DataUnavailable, ValueError) as err:
        return [], str(err), {"layout": {"title": {"text": str(err)}}}
    shown = sub.head(MAX_GRID_ROWS)
    count = f"{len(sub):,} perturbations" + (f" (top {MAX_GRID_ROWS:,} listed)" if len(sub) > MAX_GRID_ROWS else "")
    if chosen is not None:
        count += f" · {int(sub['pert_id'].astype(str).isin(members).sum()):,} in set {chosen.label}"
    rows = shown.drop(columns=["neg_log10_q", "perturbation_type"]).astype(object).where(shown.notna(), None)
    rows.insert(0, "in_set", [True if p in members else None for p in shown["pert_id"].astype(str)])
    return rows.to_dict("records"), count, volcano_figure(sub)


@callback(Output(ids.URL, "href", allow_duplicate=True), Input(ACT_GRID, "cellClicked"), State(ACT_URL, "search"),
          prevent_initial_call=True)
def open_perturbation(cell, current=None):
    pid = row_pert_id(cell)
    return pert_href(pid, current) if pid else no_update


def row_pert_id(cell: dict | None) -> str | None:
    """The pert_id of a clicked grid row, if it names a scored perturbation."""
    try:
        pid = cell["rowId"]
        table = ranked_table(get_data())
    except (TypeError, KeyError, DataUnavailable):
        return None
    return pid if isinstance(pid, str) and pid in set(table["pert_id"]) else None


def pert_href(pert_id: str, current: str | None = None) -> str:
    """The perturbation's page, keeping the screen and gene set of this page's query string ``current``."""
    return page_href("/perturbation", current, pert=pert_id)


@callback(Output(ACT_VOLCANO_INFO, "children"), Input(ACT_VOLCANO, "clickData"), State(ACT_URL, "search"),
          prevent_initial_call=True)
def volcano_click(click, current=None):
    try:
        pid = click["points"][0]["customdata"]
        row = ranked_table(get_data()).set_index("pert_id").loc[pid]
    except (TypeError, KeyError, IndexError, DataUnavailable):
        return no_update
    return html.Span([html.B(name_and_id(row["name"], str(row["perturbation"]))), f" — mAP {fmt_value(row['mean_average_precision'], '.3f')}, "
                      f"q {fmt_value(row['q_value'], '.2g')} — ", dcc.Link("open perturbation", href=pert_href(pid, current))])


@callback(Output(ACT_DOWNLOAD, "data"), Input(ACT_EXPORT, "n_clicks"), State(ACT_TYPES, "value"),
          State(ACT_ACTIVE, "value"), State(ACT_SEARCH, "value"), prevent_initial_call=True,
          background=True)  # off the server's threads: see create_app
def export_csv(n_clicks, types, active, search):
    if not n_clicks:
        return no_update
    try:
        sub = filtered(types, active, search)
    except (DataUnavailable, ValueError):
        return no_update
    return dcc.send_data_frame(sub.to_csv, "phenomix_activity.csv", index=False)


@callback(Output(ACT_URL, "search"), Input(ACT_TYPES, "value"), Input(ACT_ACTIVE, "value"), Input(ACT_SEARCH, "value"),
          Input(ACT_SPACE, "value"), Input(ACT_KIND, "value"), State(ACT_URL, "search"), prevent_initial_call=True)
def sync_url(types, active, search, space, kind, current):
    types, active, search = clean_filters(types, active, search, set(PERTURBATION_TYPES))
    params = {"space": space if space in ("raw", "aligned") else "aligned",
              "kind": kind if kind in ("violin", "ecdf") else "violin"}
    if types:
        params["types"] = ",".join(types)
    if active:
        params["active"] = "1"
    if search:
        params["q"] = search
    new = merge_search(current, params)  # keeps the session's screen and gene set
    return new if new != current else no_update
