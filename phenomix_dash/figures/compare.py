"""Two maps side by side (the Compare page): linked UMAPs, the overlap of each perturbation's k
nearest neighbours between the two spaces (the knn_overlap stage's table) and their benchmarks.

A *space* is an embedder's well embeddings, raw or after one alignment: ``"mae:tvn"``,
``"pixelstats:raw"`` (the knn_overlap stage's names). Pure functions of arrays and tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .benchmarks import SPACE_LABELS, batch_figure, embedder_label, recall_figure, recall_matrix, replicate_map_figure
from .map import (
    MAX_POINTS,
    ColourSpec,
    density_trace,
    drawn_split,
    embedding_figure,
    no_value_trace_index,
    sample_indices,
    split_positions,
)
from .palette import OKABE_ITO

SELECTED_OPACITY, UNSELECTED_OPACITY = 1.0, 0.12


def parse_space(space: str) -> tuple[str, str]:
    """'mae:tvn' -> ('mae', 'tvn'); ValueError naming the value otherwise."""
    embedder, sep, which = str(space).partition(":")
    if not sep or not embedder or not which:
        raise ValueError(f"space {space!r} is not of the form embedder:space (e.g. mae:tvn)")
    return embedder, which


def space_label(space: str) -> str:
    """'mae:tvn' -> 'MAE · TVN'."""
    embedder, which = parse_space(space)
    return f"{embedder_label(embedder)} · {SPACE_LABELS.get(which, which)}"


# -- the linked maps ---------------------------------------------------------------------------

def selection_positions(n: int, spec: ColourSpec, rows: np.ndarray | None) -> tuple[list[int], list[int]] | None:
    """Selected rows (indices into the n points) as positions in (the points trace, the grey "no
    value" trace) of an `embedding_figure` of n points; None when nothing is selected."""
    if rows is None:
        return None
    shown = sample_indices(n, MAX_POINTS)
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    picked = np.flatnonzero(mask if shown is None else mask[shown])
    return split_positions(picked, drawn_split(spec, shown))


def region_shapes(region: np.ndarray | None) -> list[dict]:
    """The selection's polygon as a layout shape (drawn on the map it was made on)."""
    if region is None or len(region) < 3:
        return []
    path = "M " + " L ".join(f"{x:.6g},{y:.6g}" for x, y in np.asarray(region, dtype=float)) + " Z"
    return [{"type": "path", "path": path, "xref": "x", "yref": "y", "line": {"color": "#000", "width": 1.5, "dash": "dot"}}]


def linked_map_figure(xy: np.ndarray, spec: ColourSpec, *, hover_text: np.ndarray | None, title: str,
                      selected: np.ndarray | None = None, region: np.ndarray | None = None,
                      density: go.Heatmap | None = None, notes: tuple[str | None, ...] = ()) -> go.Figure:
    """A UMAP of wells (`figures.map.embedding_figure`) whose ``selected`` rows stand out and the
    others fade; ``region``: the selection polygon, drawn when this is the map it was made on.
    ``density``: `density_trace(xy)` when computed before (it depends on xy only; callers cache it)."""
    xy = np.asarray(xy, dtype=np.float32)
    sampled = sample_indices(len(xy), MAX_POINTS) is not None
    fig = embedding_figure(xy, spec, hover_text=hover_text, title=title, unit="wells",
                           density=(density or density_trace(xy)) if sampled else None, notes=notes)
    fig.update_layout(clickmode="event+select", uirevision=title, shapes=region_shapes(region))
    grey = no_value_trace_index(sampled)
    for t in (0, grey):
        fig.data[t].unselected = {"marker": {"opacity": UNSELECTED_OPACITY}}
        fig.data[t].selected = {"marker": {"opacity": SELECTED_OPACITY}}
    picked = selection_positions(len(xy), spec, selected)
    if picked is not None:
        fig.data[0].selectedpoints, fig.data[grey].selectedpoints = picked
    return fig


def no_map_figure(text: str) -> go.Figure:
    """An empty map that says why there is nothing to draw (never blank axes)."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 13, "color": "#555555"})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, plot_bgcolor="#FFFFFF", height=520,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


# -- neighbour overlap -------------------------------------------------------------------------

def pair_positions(table: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """{(left, right): row positions} of the knn_overlap table: one pass, so a page finds a pair
    without comparing every row's strings (500 ms on the demo's 11,000 rows of string columns)."""
    return {(str(a), str(b)): np.asarray(v) for (a, b), v in
            table.groupby(["left", "right"], sort=False, observed=True).indices.items()}


def pair_rows(table: pd.DataFrame, left: str, right: str,
              positions: dict[tuple[str, str], np.ndarray] | None = None) -> pd.DataFrame:
    """The knn_overlap rows of one pair of spaces, in either order (Jaccard is symmetric);
    ValueError naming the pair when the stage did not compare it. ``positions``: `pair_positions`
    of the table, when the caller keeps it."""
    if left == right:
        raise ValueError(f"both sides show {left!r}: choose two different spaces to compare")
    positions = pair_positions(table) if positions is None else positions
    rows = positions.get((left, right), positions.get((right, left)))
    if rows is None:
        raise ValueError(f"the knn_overlap stage did not compare {left!r} with {right!r} "
                         "(stage_options knn_overlap pairs names the pairs it compares)")
    return table.iloc[rows]


def k_values(table: pd.DataFrame) -> list[int]:
    """The k the table holds (its jaccard_{k} columns), ascending."""
    return sorted(int(c.removeprefix("jaccard_")) for c in table.columns if c.startswith("jaccard_"))


def shared_count(jaccard: np.ndarray, k: int) -> np.ndarray:
    """Neighbours shared out of k, from Jaccard at k (J = s / (2k - s))."""
    j = np.asarray(jaccard, dtype=np.float64)
    return np.rint(2 * k * j / (1 + j)).astype(np.int64)


def overlap_rows(pair: pd.DataFrame, k: int, perturbations: pd.DataFrame | None = None,
                 selected: set[str] | None = None) -> pd.DataFrame:
    """Per perturbation: its Jaccard at every k and the neighbours shared at ``k``, lowest overlap
    first (the perturbations whose neighbourhoods the two spaces disagree on most). With
    ``perturbations`` (pert_id, perturbation, perturbation_type): their names; with ``selected``
    (pert_ids): whether each is in the map selection."""
    ks = k_values(pair)
    if k not in ks:
        raise ValueError(f"no Jaccard at k = {k}; the knn_overlap stage computed k = {', '.join(map(str, ks))}")
    out = pair[["pert_id", *(f"jaccard_{x}" for x in ks)]].reset_index(drop=True)
    out.insert(1, f"shared_of_{k}", shared_count(out[f"jaccard_{k}"].to_numpy(), k))
    if perturbations is not None:  # names by position lookup (a join costs ~50 ms here)
        at = pd.Index(perturbations["pert_id"]).get_indexer(out["pert_id"])
        for i, c in enumerate(("perturbation", "perturbation_type"), start=1):
            v = perturbations[c].to_numpy(dtype=object)[at]
            out.insert(i, c, np.where(at >= 0, v, None))
    if selected is not None:
        out["in_selection"] = out["pert_id"].isin(selected)
    return out.sort_values([f"jaccard_{k}", "pert_id"], kind="stable").reset_index(drop=True)


def jaccard_distribution_figure(jaccard: np.ndarray, k: int, *, random: float | None = None,
                                selected: np.ndarray | None = None, title: str | None = None) -> go.Figure:
    """How many of each perturbation's k nearest neighbours the two spaces share: the fraction of
    perturbations at 0..k shared (Jaccard in the hover), the random expectation dashed, and the
    perturbations of the map selection as a second series when there are any."""
    j = np.asarray(jaccard, dtype=np.float64)
    j = j[np.isfinite(j)]
    xs = np.arange(k + 1)
    jac = xs / (2 * k - xs)
    series = [("all perturbations", j, OKABE_ITO[0])]
    if selected is not None and len(selected):
        series.append(("in the selection", np.asarray(selected, dtype=np.float64), OKABE_ITO[1]))
    bars = []
    for name, v, colour in series:
        counts = np.bincount(shared_count(v, k), minlength=k + 1)[: k + 1]
        bars.append(go.Bar(x=xs, y=counts / max(len(v), 1), name=f"{name} (n={len(v):,})", marker_color=colour,
                           customdata=np.column_stack([jac, counts]),
                           hovertemplate="%{x} of " + str(k) + " shared (Jaccard %{customdata[0]:.3f})<br>"
                                         "%{customdata[1]:,} perturbations (%{y:.1%})<extra>" + name + "</extra>"))
    shapes, notes = [], []
    if random is not None:  # a plain shape and note: add_vline costs ~70 ms of plotly validation
        s = 2 * k * random / (1 + random)
        shapes.append({"type": "line", "x0": s, "x1": s, "xref": "x", "y0": 0, "y1": 1, "yref": "paper",
                       "line": {"dash": "dash", "color": "#555555"}})
        notes.append({"x": s, "y": 1, "xref": "x", "yref": "paper", "showarrow": False, "xanchor": "left",
                      "yanchor": "top", "text": f"unrelated spaces (J≈{random:.3f})"})
    med = float(np.median(j)) if len(j) else float("nan")
    sub = f"median Jaccard at k={k}: {med:.3f} over {len(j):,} perturbations" if len(j) else "no perturbations"
    return go.Figure(data=bars, layout={
        "title": {"text": (f"{title}<br><sup>{sub}</sup>" if title else sub), "x": 0.01, "font": {"size": 15}},
        "barmode": "group", "bargap": 0.15, "height": 360, "plot_bgcolor": "#FFFFFF",
        "margin": {"l": 10, "r": 10, "t": 60, "b": 10}, "shapes": shapes, "annotations": notes,
        "xaxis": {"title": {"text": f"nearest neighbours shared (of {k})"}, "dtick": 1 if k <= 20 else None},
        "yaxis": {"title": {"text": "fraction of perturbations"}, "tickformat": ".0%"},
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"}})


# -- benchmarks side by side -------------------------------------------------------------------

def benchmark_figures(tables: dict[str, pd.DataFrame | None], space: str,
                      captions: tuple[str | None, str | None] = (None, None)) -> dict[str, go.Figure | str]:
    """The Benchmarks page's figures (`figures.benchmarks`) restricted to one space: relationship
    recall, replicate retrieval and batch metrics of that embedder in that space. A section whose
    table is missing or has no row for the space gets a sentence saying so instead of a figure."""
    embedder, which = parse_space(space)
    out: dict[str, go.Figure | str] = {}

    def rows(name: str) -> pd.DataFrame | None:
        t = tables.get(name)
        if t is None or not {"embedder", "space"} <= set(t.columns):
            return None
        sub = t[(t["embedder"].astype(str) == embedder) & (t["space"].astype(str) == which)]
        return sub if len(sub) else None

    rec, rep, batch = rows("recall"), rows("replicate_map"), rows("batch")
    missing = f"not measured for {space_label(space)}"
    out["recall"] = recall_figure(recall_matrix(rec, which)) if rec is not None else f"Relationship recall {missing}."
    out["replicate_map"] = replicate_map_figure(rep, captions[0]) if rep is not None else f"Replicate mAP {missing}."
    out["batch"] = batch_figure(batch, captions[1]) if batch is not None else f"Batch metrics {missing}."
    return out
