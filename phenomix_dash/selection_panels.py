"""The map page's selection panels: the selection's tables and composition, the A / B slots and
the comparison of A with B, as Dash components built from selection_stats / selection_compare."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html, no_update

from phenomix_dash.components import message
from phenomix_dash.figures.captions import of, part_of
from phenomix_dash.figures.palette import PERTURBATION_TYPE_LABELS
from phenomix_dash.figures.selection import composition_figure, effect_size_figure
from phenomix_dash.ids import MAP_SEL_PERT_GRID, MAP_SEL_WELL_GRID
from phenomix_dash.selection import SelectionError, decode_region, encode_region, stored_selection
from phenomix_dash.selection_compare import Comparison, compare_selections
from phenomix_dash.selection_stats import (
    artefact_flags,
    selection_composition,
    selection_tables,
)

GRID_STYLE = {"height": "300px"}
N_EFFECTS = 15
N_TERMS = 12


def _grid(grid_id: str, df: pd.DataFrame, row_id: str) -> dag.AgGrid:
    defs = [{"field": c, "headerName": c.replace("_", " ")} for c in df.columns]
    for d in defs:
        if d["field"] == "fraction_selected":
            d["valueFormatter"] = {"function": "params.value == null ? 'no value' : d3.format('.0%')(params.value)"}
    rows = df.astype(object).where(df.notna(), None).to_dict("records")  # missing is null (shown empty), not NaN
    return dag.AgGrid(id=grid_id, columnDefs=defs, rowData=rows, getRowId=f"params.data.{row_id}",
                      defaultColDef={"sortable": True, "resizable": True, "filter": True},
                      dashGridOptions={"animateRows": False}, style=GRID_STYLE, className="ag-theme-alpine")


def table_view(d: Any, level: str, sel: str | None) -> html.Div:
    """The selection's perturbations (wells selected / in the screen) and wells, as sortable grids."""
    if not sel:
        return html.Div()
    perts, wells, n = selection_tables(d, level, sel)
    if n == 0:
        return html.Div()
    perts = perts.assign(perturbation_type=perts["perturbation_type"].map(lambda t: PERTURBATION_TYPE_LABELS.get(t, t)))
    shown = perts.head(2000)
    return html.Div([
        html.H6(f"Perturbations: {part_of(len(shown), len(perts), 'perturbation')}", className="mt-2"),
        _grid(MAP_SEL_PERT_GRID, shown, "pert_id"),
        html.H6(f"Wells: {part_of(len(wells), n, 'well')}" + ("" if len(wells) >= n else " shown (the downloads hold all)"),
                className="mt-2"),
        _grid(MAP_SEL_WELL_GRID, wells, "well_id"),
    ], id="map-selection-tables")


def composition_view(d: Any, level: str, sel: str | None) -> html.Div:
    """Composition by type, batch and plate against the screen, with a warning per likely artefact."""
    if not sel:
        return html.Div()
    comp = selection_composition(d, level, sel)
    if comp.empty or comp["selected"].sum() == 0:
        return html.Div()
    warnings = [message(f, "warning") for f in artefact_flags(comp)]
    return html.Div(warnings + [dcc.Graph(figure=composition_figure(comp), config={"displaylogo": False})],
                    id="map-selection-composition-content")


def stored_from_link(value: str | None, name: str, notes: list[str]) -> str | None:
    """A stored selection (``selA`` / ``selB``) from a link, re-encoded; a note instead of junk."""
    try:
        decoded = decode_region(value)
    except SelectionError as err:
        notes.append(f"selection {name}: {err}")
        return None
    return encode_region(*decoded) if decoded else None


def ab_update(which: str | None, level: str, sel: str | None) -> tuple:
    """New (A, B) store values when a slot button is pressed: 'A' / 'B' keep the current selection
    there, 'clear' empties both; anything else (or no selection) changes nothing."""
    if which == "clear":
        return None, None
    try:
        stored = stored_selection(level, sel)
    except SelectionError:
        stored = None
    if stored is None or which not in ("A", "B"):
        return no_update, no_update
    return (stored, no_update) if which == "A" else (no_update, stored)


def slot_text(sel: str | None) -> str:
    """What a stored selection slot holds, in words ('not set' or 'a region of the aligned map')."""
    try:
        decoded = decode_region(sel)
    except ValueError:
        return "not readable"
    if decoded is None:
        return "not set"
    space, poly = decoded
    where = "the perturbation map" if space == "perturbations" else f"the {space} map"
    return f"a {len(poly)}-vertex region of {where}"


def compare_view(d: Any, sel_a: str | None, sel_b: str | None) -> html.Div:
    """A vs B: counts, embedding directions, top PCs, named features and enriched annotations."""
    if not sel_a or not sel_b:
        missing = " and ".join(s for s, v in (("A", sel_a), ("B", sel_b)) if not v)
        return message(f"Store a selection as {missing} to compare them: select on a map, then "
                       "'Store as A' / 'Store as B'.", "light")
    c = compare_selections(d, sel_a, sel_b)
    return html.Div([_compare_head(c), *_compare_body(c)], id="map-compare-content")


def _compare_head(c: Comparison) -> html.Div:
    overlap = f"; {c.n_overlap:,} wells are in both (counted in each)" if c.n_overlap else ""
    return html.Div(f"A: {c.n_a:,} wells · B: {c.n_b:,} wells{overlap}. Positive d: higher in A.",
                    className="small mb-2", id="map-compare-counts")


def _compare_body(c: Comparison) -> list:
    pcs = c.pcs
    pc_caption = ("" if pcs.fitted_on >= pcs.of else
                  f" (PCA fitted on a seeded sample of {of(pcs.fitted_on, pcs.of, 'wells')})")
    pc_table = pcs.table.assign(name=[f"{n} ({v:.0%} var.)" for n, v in
                                      zip(pcs.table["name"], pcs.table["explained_variance"], strict=True)])
    cols = [dbc.Col([dcc.Graph(figure=effect_size_figure(c.directions, "Aligned embedding dimensions", N_EFFECTS),
                               config={"displaylogo": False}),
                     dcc.Graph(figure=effect_size_figure(pc_table, "Top PCs of the A and B wells" + pc_caption, N_EFFECTS),
                               config={"displaylogo": False})], lg=6)]
    if c.features is not None:
        cols.append(dbc.Col(dcc.Graph(figure=effect_size_figure(
            c.features, f"Named features ({c.feature_embedder}, as measured)", 25), config={"displaylogo": False}),
            lg=6, id="map-compare-features"))
    else:
        cols.append(dbc.Col(message("This screen's embedders have no named features: only embedding directions "
                                    "separate A and B.", "light"), lg=6))
    return [dbc.Row(cols), _annotation_table(c.annotations)]


def _annotation_table(ann: pd.DataFrame) -> html.Div:
    if ann.empty:
        return message("No annotations to test for these selections.", "light")
    top = ann.head(N_TERMS)
    untested = int(ann.attrs.get("untested", 0))
    rows = [html.Tr([html.Td(r.category), html.Td(r.term), html.Td(r.enriched_in),
                     html.Td(f"{r.in_a} of {r.n_a}"), html.Td(f"{r.in_b} of {r.n_b}"),
                     html.Td(f"{r.p:.2g}"), html.Td(f"{r.q:.2g}")]) for r in top.itertuples()]
    head = html.Thead(html.Tr([html.Th(h) for h in ("annotation", "term", "enriched in", "A perturbations",
                                                    "B perturbations", "Fisher p", "q")]))
    return html.Div([
        html.H6(f"Annotations enriched in A or B: {part_of(len(top), len(ann), 'tested term')} shown, most "
                "significant first" + (f" ({untested:,} rarer terms not tested)" if untested else ""),
                className="mt-2"),
        dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, className="small", id="map-compare-annotations"),
    ])
