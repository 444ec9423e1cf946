"""The Compare page's views of the store: which spaces a run has, their UMAPs, the wells inside a
selection region, the knn_overlap rows of a pair, and the figures built from them.

A selection is a region (`phenomix_dash.selection.encode_region`) drawn on the map of one space
(``on``); its rows are wells, the same rows in every space of the screen, so the other map
highlights the same wells. Everything here reads PhenomixData (knn_overlap only through
``artifact``) and is memoized per store (`phenomix_dash.cache`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Patch

from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable
from phenomix_dash.figures.captions import part_of, umap_fit_caption
from phenomix_dash.figures.compare import (
    benchmark_figures,
    jaccard_distribution_figure,
    linked_map_figure,
    no_map_figure,
    overlap_rows,
    pair_positions,
    pair_rows,
    parse_space,
    region_shapes,
    selection_positions,
    space_label,
)
from phenomix_dash.figures.map import MAX_POINTS, density_trace, no_value_trace_index, sample_indices
from phenomix_dash.selection import (
    SelectionError,
    benchmark_captions,
    colour_spec,
    decode_region,
    hover_texts,
    points_in_polygon,
)

MISSING = (DataUnavailable, OSError, KeyError, ValueError)
COLOUR = "perturbation_type"  # both maps coloured alike, so the eye matches them


def run_spaces(d: Any) -> list[str]:
    """'embedder:raw' and 'embedder:<method>' for every embedder and alignment of the run, the
    primary embedder first (the knn_overlap stage's spaces when it ran)."""
    try:
        spaces = list(d.artifact("knn_overlap", "summary").get("spaces", []))
    except MISSING:
        spaces = []
    if not spaces:
        aligns = d.run.get("stages", {}).get("align", {})
        spaces = [f"{e}:{s}" for e in d.embedders for s in ("raw", *aligns.get(e, {}))]
    order = {e: i for i, e in enumerate(d.embedders)}
    return sorted(spaces, key=lambda s: order.get(parse_space(s)[0], len(order)))


def default_pair(d: Any, spaces: list[str]) -> tuple[str, str]:
    """The primary embedder's primary alignment beside the next embedder's (else its raw wells)."""
    first = f"{d.primary_embedder}:{d.primary_align}"
    others = [s for s in spaces if s.endswith(f":{d.primary_align}") and s != first]
    second = others[0] if others else f"{d.primary_embedder}:raw"
    return first, second


def umap_kind(d: Any, space: str) -> str | None:
    """Which of the project stage's well UMAPs shows ``space``: 'raw', 'aligned' (the primary
    alignment only) or None (no UMAP of that space was computed)."""
    _, which = parse_space(space)
    return "raw" if which == "raw" else "aligned" if which == d.primary_align else None


@memoize(16, store=True)
def coordinates(d: Any, space: str) -> np.ndarray | None:
    """(n_wells, 2) float32 UMAP of ``space``, or None when the run has none."""
    kind = umap_kind(d, space)
    if kind is None:
        return None
    try:
        return np.asarray(d.umap(kind, parse_space(space)[0]), dtype=np.float32)
    except MISSING:
        return None


@memoize(8, store=True)
def density(d: Any, space: str) -> go.Heatmap | None:
    """The density layer under a sampled map (> MAX_POINTS wells): binned once per process."""
    xy = coordinates(d, space)
    return density_trace(xy) if xy is not None and sample_indices(len(xy), MAX_POINTS) is not None else None


def why_no_map(d: Any, space: str) -> str:
    kind = umap_kind(d, space)
    if kind is None:
        return (f"No UMAP of {space_label(space)}: the project stage maps raw wells and the primary alignment "
                f"({d.primary_align}). Its neighbour overlap and benchmarks are below.")
    return f"No UMAP of {space_label(space)} in this run (maps are computed for the browsed embedders)."


def decode_selection(d: Any, on: str | None, sel: str | None) -> tuple[str, np.ndarray] | None:
    """(space the region was drawn on, polygon), None without a selection; SelectionError when the
    region does not belong to that space's map."""
    region = decode_region(sel)
    if region is None or not on:
        return None
    kind, poly = region
    if on not in run_spaces(d) or umap_kind(d, on) != kind:
        raise SelectionError(f"the selection was drawn on {on!r}, which has no {kind} map in this run")
    return on, poly


@memoize(64, store=True)
def selected_rows(d: Any, on: str, sel: str) -> np.ndarray:
    """Wells (row positions) inside the region ``sel`` drawn on the map of ``on``, ascending."""
    decoded = decode_selection(d, on, sel)
    xy = coordinates(d, on) if decoded else None
    if decoded is None or xy is None:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(points_in_polygon(xy, decoded[1]))


def map_figure(d: Any, space: str, on: str | None, sel: str | None) -> go.Figure:
    """The full map of one side: its wells, the selection highlighted, its region where drawn."""
    xy = coordinates(d, space)
    if xy is None:
        return no_map_figure(why_no_map(d, space))
    rows = selected_rows(d, on, sel) if on and sel else None
    region = decode_selection(d, on, sel) if on == space and sel else None
    return linked_map_figure(xy, colour_spec(d, "wells", COLOUR), hover_text=hover_texts(d, "wells"),
                             title=space_label(space), selected=rows, region=None if region is None else region[1],
                             density=density(d, space), notes=(fit_caption(d, space, len(xy)), _note(rows, len(xy), on, space)))


def fit_caption(d: Any, space: str, n: int) -> str | None:
    """'UMAP fitted on N of M wells; ...' when the project stage fitted this map on a sample."""
    try:
        fitted = d.stage_info("project", parse_space(space)[0]).get("umap", {}).get("fitted_on", {}).get(umap_kind(d, space))
    except MISSING:
        return None
    return umap_fit_caption(None if fitted is None else int(fitted), n, "wells")


def selection_patch(d: Any, space: str, on: str | None, sel: str | None) -> Patch:
    """Only the highlight of a drawn map changes when the selection does: a Patch, no coordinates."""
    p = Patch()
    xy = coordinates(d, space)
    if xy is None:
        return p
    rows = selected_rows(d, on, sel) if on and sel else None
    picked = selection_positions(len(xy), colour_spec(d, "wells", COLOUR), rows)
    grey = no_value_trace_index(sample_indices(len(xy), MAX_POINTS) is not None)
    p["data"][0]["selectedpoints"], p["data"][grey]["selectedpoints"] = picked if picked is not None else (None, None)
    region = decode_selection(d, on, sel) if on == space and sel else None
    p["layout"]["shapes"] = region_shapes(None if region is None else region[1])
    return p


def _note(rows: np.ndarray | None, n: int, on: str | None, space: str) -> str | None:
    if rows is None:
        return None
    where = "here" if on == space else f"on {space_label(str(on))}"
    return f"{len(rows):,} of {n:,} wells selected {where}"


@memoize(2, store=True)
def well_entities(d: Any) -> tuple[np.ndarray, np.ndarray]:
    """(per well: the row of its pooled perturbation among ``ids``, -1 if none; ``ids``: pooled
    pert_ids). Built once per store, so a selection's perturbations are one gather."""
    perts = d.perturbations()
    pooled = perts[perts["level"].astype(str) == "pooled"]
    key = (pooled["perturbation_type"].astype(str) + "\x1f" + pooled["perturbation"].astype(str)).to_numpy()
    w = d.wells
    wkey = (w["perturbation_type"].astype(str) + "\x1f" + w["perturbation"].astype(str)).to_numpy()
    return pd.Index(key).get_indexer(wkey), pooled["pert_id"].astype(str).to_numpy()


@memoize(64, store=True)
def selected_perturbations(d: Any, on: str, sel: str) -> frozenset[str]:
    """pert_ids of the pooled perturbations with a well in the selection."""
    rows = selected_rows(d, on, sel)
    entity, ids = well_entities(d)
    hit = np.unique(entity[rows])
    return frozenset(ids[hit[hit >= 0]].tolist())


@memoize(4, store=True, disk=True)
def overlap_table(d: Any) -> pd.DataFrame:
    """The knn_overlap table, its pair columns categorical (a few distinct strings, grouped fast)."""
    t = d.artifact("knn_overlap", "overlap").copy()
    for c in ("left", "right"):
        t[c] = t[c].astype(str).astype("category")
    return t


@memoize(4, store=True)
def overlap_positions(d: Any) -> dict[tuple[str, str], np.ndarray]:
    return pair_positions(overlap_table(d))


GRID_ROWS = 2_000  # rows sent to the overlap grid; the CSV download holds every perturbation


def overlap_table_rows(d: Any, left: str, right: str, k: int, on: str | None, sel: str | None) -> pd.DataFrame:
    """Every perturbation's overlap row for one pair of spaces, lowest Jaccard at ``k`` first."""
    pair = pair_rows(overlap_table(d), left, right, overlap_positions(d))
    chosen = set(selected_perturbations(d, on, sel)) if on and sel else None
    return overlap_rows(pair, k, d.perturbations(), chosen)


def grid_rows(rows: pd.DataFrame, limit: int = GRID_ROWS) -> pd.DataFrame:
    """What the grid shows: the ``limit`` lowest-overlap perturbations plus (up to ``limit`` of) the
    selection's, in table order; at 30,000 perturbations all rows are ~5 MB of JSON per call."""
    keep = np.zeros(len(rows), dtype=bool)
    keep[:limit] = True
    if "in_selection" in rows:
        keep[np.flatnonzero(rows["in_selection"].to_numpy())[:limit]] = True
    return rows[keep]


def overlap_view(d: Any, left: str, right: str, k: int, on: str | None, sel: str | None
                 ) -> tuple[go.Figure, list[dict[str, Any]], str]:
    """(Jaccard distribution figure, per-perturbation grid rows lowest first, a caption)."""
    summary = d.artifact("knn_overlap", "summary")
    rows = overlap_table_rows(d, left, right, k, on, sel)
    chosen = "in_selection" in rows
    stats = next((p for p in summary.get("pairs", []) if {p["left"], p["right"]} == {left, right}), {})
    random = stats.get(f"k{k}", {}).get("random")
    in_sel = rows.loc[rows["in_selection"], f"jaccard_{k}"].to_numpy() if chosen else None
    fig = jaccard_distribution_figure(rows[f"jaccard_{k}"].to_numpy(), k, random=random, selected=in_sel,
                                      title=f"{space_label(left)} vs {space_label(right)}")
    show = grid_rows(rows)
    caption = (f"{len(rows):,} perturbations (doses pooled); each one's {k} nearest by cosine in each space, exact. "
               + (f"Two unrelated spaces would share {random:.3f} (Jaccard) on average." if random is not None else ""))
    if chosen:
        caption += f" {len(in_sel):,} of them have wells in the selection (orange)."
    if len(show) < len(rows):
        caption += (f" The table lists {part_of(len(show), len(rows), 'perturbation')}: the lowest overlap first"
                    + (" and the selection's" if chosen else "") + "; Download CSV holds all.")
    show = show.copy()
    for c in show.columns:
        if c.startswith("jaccard_"):
            show[c] = show[c].astype(float).round(3)
    return fig, show.replace({np.nan: None}).to_dict("records"), caption


def overlap_csv(d: Any, left: str, right: str, k: int, on: str | None, sel: str | None) -> str:
    """Every perturbation's overlap row (not only the grid's) as CSV text."""
    return overlap_table_rows(d, left, right, k, on, sel).to_csv(index=False)


@memoize(32, store=True, disk=True)
def benchmarks_of(d: Any, space: str) -> dict[str, Any]:
    """One side's benchmark figures (as JSON dicts) or sentences saying what is missing."""
    tables: dict[str, pd.DataFrame | None] = {}
    for name in ("recall", "replicate_map", "batch"):
        try:
            tables[name] = d.benchmark_table(name)
        except MISSING:
            tables[name] = None
    figs = benchmark_figures(tables, space, benchmark_captions(d, parse_space(space)[0]))
    return {k: v if isinstance(v, str) else v.to_plotly_json() for k, v in figs.items()}
