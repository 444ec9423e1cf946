"""Sets: statistics of the gene set chosen in the bar under the navbar.

How tightly its members cluster (mean within-set cosine of their aggregated embeddings against random
sets of the same size), how many are active, and the members' activity table. The set itself lives
in the URL (``set=``), so a link reproduces the page.
"""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import numpy as np
from dash import Input, Output, callback, dcc, html

from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, get_data
from phenomix_dash.figures.sets import null_figure, p_text
from phenomix_dash.gene_sets import SetError, fraction_active
from phenomix_dash.ids import SET_STORE, SETS_NULL, SETS_SUMMARY, SETS_TABLE
from phenomix_dash.set_chooser import clean_set
from phenomix_dash.set_data import set_activity, set_stats, try_set
from phenomix_dash.set_data import warm_up as warm_sets

dash.register_page(__name__, path="/sets", name="Sets", title="Phenomix · sets", order=7)

COLUMN_DEFS = [
    {"field": "perturbation", "headerName": "perturbation", "pinned": "left"},
    {"field": "perturbation_type", "headerName": "type"},
    {"field": "mean_average_precision", "headerName": "mAP vs controls",
     "valueFormatter": {"function": "params.value == null ? 'no value' : d3.format('.3f')(params.value)"}},
    {"field": "q_value", "headerName": "q", "valueFormatter": {"function": "params.value == null ? 'no value' : d3.format('.2g')(params.value)"}},
    {"field": "active", "headerName": "active (q < 0.05)",
     "valueFormatter": {"function": "params.value == null ? 'no value' : (params.value ? 'yes' : 'no')"}},
    {"field": "pert_id", "headerName": "id"},
]


def layout(**_: object) -> html.Div:
    return html.Div([
        html.H3("Sets"),
        html.P("Choose a set above (a complex, a pathway, a mechanism of action, a compound and its targets) or "
               "paste a list of names. Its members are outlined on the map, the similarity heatmaps and the plates; "
               "here: do they look alike, and are they active?", className="text-muted small"),
        dcc.Loading(html.Div(id=SETS_SUMMARY)),
        dcc.Graph(id=SETS_NULL, config={"displaylogo": False}, style={"height": "320px"}),
        html.H5("Members", className="mt-3"),
        dag.AgGrid(id=SETS_TABLE, columnDefs=COLUMN_DEFS, rowData=[], getRowId="params.data.pert_id",
                   defaultColDef={"sortable": True, "filter": True, "resizable": True},
                   dashGridOptions={"domLayout": "autoHeight", "pagination": True, "paginationPageSize": 20},
                   className="ag-theme-alpine"),
    ])


def set_summary(d, key: str) -> tuple[list, dict, list[dict]]:
    """(summary lines, null figure, member rows) of a set; SetError when it cannot be scored."""
    s, problem = try_set(d, key)
    if problem or s is None:
        raise SetError(problem or "no set chosen")
    table = set_activity(d, key)
    active, scored = fraction_active(table)
    lines = [html.H5(s.label), html.P(f"{s.size} perturbation{'s' if s.size != 1 else ''} of this screen"
                                      + (f"; not found: {', '.join(s.unknown)}" if s.unknown else ""))]
    lines.append(html.P(f"Active (mAP against negative controls, q < 0.05): {active} of {scored} scored members"
                        + (f" ({active / scored:.0%})" if scored else "")
                        + (f"; {s.size - scored} without an activity score" if scored < s.size else "")))
    try:
        st = set_stats(d, key)
    except SetError as err:
        lines.append(message(f"No within-set similarity: {err}", "info"))
        fig = {"layout": {"title": {"text": "no within-set similarity"}, "height": 120}}
    else:
        lines.append(html.P(f"Mean within-set cosine {st.mean_cosine:.3f}; random sets of {st.size}: mean "
                            f"{float(np.mean(st.null)):.3f}; {p_text(st.p_value, st.n_null)} ({st.n_null:,} random "
                            f"sets; with none at or above the set's value, p is at most 1/{st.n_null + 1:,})"))
        fig = null_figure(st.null, st.mean_cosine, st.p_value, st.size, st.pool_size, s.label)
    return lines, fig, table.astype(object).where(table.notna(), None).to_dict("records")


@callback(Output(SETS_SUMMARY, "children"), Output(SETS_NULL, "figure"), Output(SETS_TABLE, "rowData"),
          Input(SET_STORE, "data"))
def show_statistics(key):
    key = clean_set(key)
    empty = {"layout": {"title": {"text": "no set chosen"}, "height": 120}}
    if not key:
        return message("No set chosen: pick one in the bar above.", "light"), empty, []
    try:
        return set_summary(get_data(), key)
    except (DataUnavailable, SetError) as err:
        return message(str(err)), empty, []


def warm_up() -> None:
    """At server start: the screen's annotation sets and name index (reading a large screen's tables
    takes seconds), so the first set chosen is answered at once."""
    try:
        warm_sets(get_data())
    except DataUnavailable:
        pass  # no store yet: the page says so itself
