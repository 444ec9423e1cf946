"""Benchmarks: how good is the map — relationship recall, replicate retrieval, batch removal,
compound-gene retrieval — for every embedder of the run (the evaluate stage's results)."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import MATCH, Input, Output, callback, dcc, html

from phenomix_dash.components import message
from phenomix_dash.data import DataUnavailable, PhenomixData, get_data
from phenomix_dash.figures.benchmarks import (
    SPACE_LABELS,
    batch_figure,
    compound_gene_figure,
    embedder_label,
    recall_figure,
    recall_matrix,
    replicate_map_figure,
)
from phenomix_dash.ids import (
    BM_EXPORT,
    BM_GRID,
    BM_RECALL,
    BM_SPACE,
)
from phenomix_dash.selection import benchmark_captions
from precompute.embed.registry import is_mae

dash.register_page(__name__, path="/benchmarks", name="Benchmarks", title="Phenomix · benchmarks", order=7)


GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": "benchmark"}}
# One sentence per section, used when benchmarks.json carries no description of its own.
SENTENCES = {
    "recall": "Fraction of known gene–gene relationships whose cosine similarity falls in the top or bottom 5% "
              "of all gene pairs (Kraus et al. 2024, Table 3); a random map recalls about 0.10.",
    "replicate_map": "How well a perturbation's replicate wells find each other, ranked by cosine similarity "
                     "(mean average precision); higher means more reproducible phenotypes.",
    "batch": "How well a classifier predicts the batch (or plate row) from the embeddings; it should fall towards "
             "chance after alignment while replicate retrieval holds.",
    "compound_gene": "For each compound, how well |cosine| to every gene ranks its known targets first "
                     "(ROC-AUC 0.5 is chance).",
}


def sentence(bench: dict, key: str) -> str:
    desc = (bench or {}).get("descriptions", {})
    return str(desc.get(key) or SENTENCES[key])


def table_of(d: PhenomixData, name: str) -> pd.DataFrame | None:
    """A benchmark table, or None when the evaluate stage did not write it."""
    try:
        df = d.benchmark_table(name)
    except (DataUnavailable, FileNotFoundError, KeyError, OSError, ValueError):
        return None
    return df if len(df) else None


def grid(section: str, df: pd.DataFrame, height: int = 260) -> html.Div:
    """A small table with a CSV button (the numbers behind each figure)."""
    show = df.copy()
    for c in show.columns:
        if pd.api.types.is_float_dtype(show[c]):
            show[c] = show[c].round(4)
    return html.Div([
        dbc.Button("Export CSV", id={"type": BM_EXPORT, "index": section}, size="sm", color="secondary",
                   outline=True, className="mb-1"),
        dag.AgGrid(id={"type": BM_GRID, "index": section}, rowData=show.replace({np.nan: None}).to_dict("records"),
                   columnDefs=[{"field": str(c)} for c in show.columns],
                   defaultColDef={"sortable": True, "resizable": True, "filter": True, "flex": 1, "minWidth": 110},
                   csvExportParams={"fileName": f"{section}.csv"}, style={"height": f"{height}px"}),
    ])


def section(title: str, text: str, body, key: str) -> html.Section:
    return html.Section([html.H4(title, className="mt-4"), html.P(text, className="text-muted"), body],
                        id=f"benchmarks-{key}")


def recall_section(d: PhenomixData, bench: dict) -> html.Section:
    rec = table_of(d, "recall")
    if rec is None or "space" not in rec.columns:
        body = message("No relationship-recall results in this run (the screen has no gene relationship annotations, "
                       "or the evaluate stage did not run).", "light")
        return section("Relationship recall", sentence(bench, "recall"), body, "recall")
    spaces = list(dict.fromkeys(rec["space"].astype(str)))
    primary = (bench or {}).get("summary", {}).get("primary_align")
    default = primary if primary in spaces else spaces[-1]
    body = html.Div([
        dbc.Row(dbc.Col([dbc.Label("Embeddings scored (alignment)"), dcc.Dropdown(
            id=BM_SPACE, options=[{"label": SPACE_LABELS.get(s, s), "value": s} for s in spaces], value=default,
            clearable=False)], md=4)),
        dcc.Loading(html.Div(id=BM_RECALL)),
    ])
    return section("Relationship recall", sentence(bench, "recall"), body, "recall")


def blocks_section(d: PhenomixData) -> html.Section:
    """Recall per MAE encoder block, when the run embedded with --block best (figures/blocks.py)."""
    from phenomix_dash.figures.blocks import block_scores_figure, recall_columns

    mae = next((e for e in [d.primary_embedder, *d.embedders] if is_mae(e)), None)
    info = d.stage_info("embed", mae).get("block", {}) if mae else {}
    text = "Relationship recall and replicate mAP of each encoder block's embeddings, aligned as the map is."
    if not info.get("scores"):
        how = f" (block {info['chosen']} of {info.get('depth')}, {info.get('how')})" if info.get("chosen") else ""
        return section("MAE encoder blocks", text, message(f"This run embedded from one block{how}; "
                                                           "embed with --block best to score every block.", "light"), "blocks")
    scores = pd.DataFrame(info["scores"])
    rec = table_of(d, "recall")
    base = rec[(rec["embedder"] == "pixelstats") & (rec["space"] == d.primary_align)] if rec is not None else None
    sources = {c.removeprefix("recall_") for c in recall_columns(scores)}
    baselines = {r.source: r.recall for r in base.itertuples() if r.source in sources} if base is not None else None
    fig = block_scores_figure(scores, chosen=info.get("chosen"), baselines=baselines)
    return section("MAE encoder blocks", f"{text} Chosen: block {info.get('chosen')} of {info.get('depth')} "
                   f"({info.get('how')}).", dcc.Graph(figure=fig, config=GRAPH_CONFIG, id="benchmarks-blocks-figure"),
                   "blocks")


def calibration_section(d: PhenomixData) -> html.Section:
    """Match significance calibrated on a screen with known truth (benchmarks/results/match_calibration.json)."""
    from phenomix_dash.figures.significance import calibration_table

    text = ("Are the neighbour lists' q-values honest? On a screen whose truth is known: the fraction of "
            "no-phenotype pairs below p = 0.05 (should be at most 0.05), the fraction of calls at q < 0.05 with a "
            "no-phenotype member (the FDR, should be at most 0.05) and the fraction of true pairs called (power). "
            "Method: docs/significance.md.")
    try:
        result = d.match_calibration()
    except DataUnavailable as err:
        return section("Match significance: calibration", text, message(str(err), "light"), "calibration")
    table = calibration_table(result)
    screen = result.get("screen")
    where = (f"Measured on the screen {screen!r}" + ("" if screen == d.run.get("screen", {}).get("name")
                                                     else " (not this run's screen)")
             + f", store {result.get('store')}, commit {str(result.get('meta', {}).get('commit', '?'))[:8]}.")
    body = html.Div([html.Div(where, className="small", id="benchmarks-calibration-source"),
                     grid("calibration", table, 200) if len(table) else message("The results file lists no embedder.", "light")])
    return section("Match significance: calibration", text, body, "calibration")


def layout(**_: object) -> html.Div:
    try:
        d = get_data()
        bench = d.benchmarks()
    except DataUnavailable as err:
        return html.Div([html.H3("Benchmarks"), message(f"No benchmark results: {err}")])
    parts: list = [html.H3("Benchmarks"),
                   html.P("Each embedder of this run scored on the same screen. Random embeddings are the floor; "
                          "pixel statistics are the classical baseline.", className="text-muted")]
    parts.append(recall_section(d, bench))
    parts.append(blocks_section(d))
    parts.append(calibration_section(d))

    captions = benchmark_captions(d)  # what evaluate sampled, from its manifest
    rep = table_of(d, "replicate_map")
    parts.append(section("Replicate retrieval", sentence(bench, "replicate_map"), html.Div([
        dcc.Graph(figure=replicate_map_figure(rep, captions[0]), config=GRAPH_CONFIG, id="benchmarks-replicate-figure"),
        grid("replicate_map", rep.assign(embedder=rep["embedder"].map(embedder_label)), 240),
    ]) if rep is not None else message("No replicate-retrieval results in this run.", "light"), "replicate"))

    batch = table_of(d, "batch")
    parts.append(section("Batch effects before and after alignment", sentence(bench, "batch"), html.Div([
        dcc.Graph(figure=batch_figure(batch, captions[1]), config=GRAPH_CONFIG, id="benchmarks-batch-figure"),
        grid("batch", batch.assign(embedder=batch["embedder"].map(embedder_label)), 300),
    ]) if batch is not None else message("No batch metrics in this run.", "light"), "batch"))

    cg = table_of(d, "compound_gene")
    parts.append(section("Compound–gene benchmark", sentence(bench, "compound_gene"), html.Div([
        dbc.Row([
            dbc.Col(dcc.Graph(figure=compound_gene_figure(cg, "roc_auc"), config=GRAPH_CONFIG,
                              id="benchmarks-compound-gene-figure"), md=6),
            dbc.Col(dcc.Graph(figure=compound_gene_figure(cg, "average_precision"), config=GRAPH_CONFIG), md=6)
            if "average_precision" in cg.columns else None,
        ]),
        grid("compound_gene", cg.assign(embedder=cg["embedder"].map(embedder_label)), 300),
    ]) if cg is not None else message("No compound–gene results (the screen has no compound-target annotations).",
                                       "light"), "compound-gene"))
    return html.Div(parts)


@callback(Output(BM_RECALL, "children"), Input(BM_SPACE, "value"))
def show_recall(space: str | None):
    try:
        rec = get_data().benchmark_table("recall")
        m = recall_matrix(rec, space if isinstance(space, str) else "")
    except (DataUnavailable, ValueError, KeyError, OSError) as err:
        return message(f"Cannot show recall: {err}", "light")
    table = m.round(3).reset_index()
    return html.Div([
        dbc.Table.from_dataframe(table, striped=True, bordered=False, hover=True, size="sm",
                                 className="recall-table mt-2", style={"maxWidth": "900px"}),
        dcc.Graph(figure=recall_figure(m), config=GRAPH_CONFIG, id="benchmarks-recall-figure"),
        grid("recall", rec.assign(embedder=rec["embedder"].map(embedder_label)), 260),
    ])


@callback(
    Output({"type": BM_GRID, "index": MATCH}, "exportDataAsCsv"),
    Input({"type": BM_EXPORT, "index": MATCH}, "n_clicks"),
    prevent_initial_call=True,
)
def export_csv(n: int | None):
    return bool(n)
