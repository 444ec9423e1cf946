"""Similarity heatmaps: choose a readable subset server-side, cluster it, draw it.

A screen holds ~17,000 genes x ~2,000 compounds (x 8 doses); a heatmap is readable up to about
60 x 60. The page picks a seed set (most active, a search, a complex, a compound and its
targets) and fills the axes with the entities most strongly (|cosine|) related to it, computed
from unit embeddings (an exact float32 mat-vec, cheap). Only the shown block is read from the
float16 similarity matrix (memory-mapped), then ordered by hierarchical clustering of that block
with optimal leaf ordering, compounds kept as blocks of their doses (ascending concentration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .palette import DIVERGING

MAX_SIDE = 60
# Markers for known pairs: shape, not colour, so they read on any cell colour.
OVERLAY_STYLE: dict[str, tuple[str, str]] = {
    "compound target": ("square-open", "known compound target"),
    "relationship": ("circle-open", "annotated gene relationship"),
    "same complex": ("diamond-open", "same complex"),
    "shared target": ("triangle-up-open", "compounds share an annotated target"),
}


# -- choosing what to show ----------------------------------------------------------------

def positions_in(index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of perturbation rows inside a matrix axis index (sorted ints) -> (len(rows),).

    Raises ValueError naming the first row the axis lacks.
    """
    index = np.asarray(index)
    rows = np.asarray(rows, dtype=np.int64)
    pos = np.searchsorted(index, rows)
    ok = (pos < index.size) & (index[np.minimum(pos, index.size - 1)] == rows)
    if not ok.all():
        raise ValueError(f"perturbation row {int(rows[~ok][0])} is not on this similarity matrix axis")
    return pos


def strongest_partners(unit: np.ndarray, seeds: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Max |cosine| of each candidate row to any seed row -> (len(candidates),) float32 (0 if no seeds)."""
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.size == 0:
        return np.zeros(len(candidates), dtype=np.float32)
    sims = unit[np.asarray(candidates, dtype=np.int64)] @ unit[seeds].T
    return np.abs(sims).max(axis=1)


def pick_units(units: np.ndarray, score: np.ndarray, seeds_first: np.ndarray, n: int, *, unique: bool = False) -> np.ndarray:
    """Up to n distinct unit labels: the seed units first, then by descending score.

    units: (m,) unit label per candidate row (a compound's doses share one label); score (m,).
    ``unique`` says every row is its own unit (genes), which skips the group-by.
    """
    units = np.asarray(units, dtype=object)
    score = np.asarray(score, dtype=float)
    seeds = list(pd.unique(np.asarray(seeds_first, dtype=object)))
    if seeds:
        present = pd.Index(pd.unique(units)).get_indexer(seeds) >= 0
        seeds = [u for u, ok in zip(seeds, present, strict=True) if ok]
    if unique:
        order = np.argsort(-score, kind="stable")[: n + len(seeds)]
        ranked = units[order]
    else:
        ranked = pd.Series(score).groupby(units, sort=False).max().sort_values(ascending=False, kind="stable").index
    chosen = list(seeds[:n])
    taken = set(chosen)
    for u in ranked:
        if len(chosen) >= n:
            break
        if u not in taken:
            chosen.append(u)
            taken.add(u)
    return np.asarray(chosen, dtype=object)


@dataclass(frozen=True)
class Axis:
    """Candidate rows of one heatmap axis and how they group (a compound's doses = one unit)."""

    rows: np.ndarray  # perturbation-table rows allowed on this axis
    units: np.ndarray  # unit label per row (gene entity id, or compound name)
    doses: bool  # True: units expand to several rows ordered by concentration


def axis_rows(axis: Axis, chosen_units: np.ndarray, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Expand chosen units into rows (keeping table order, i.e. ascending dose) -> (rows, unit per row).

    Stops before exceeding ``max_rows`` so a compound's doses are never split.
    """
    out_rows: list[int] = []
    out_units: list = []
    # Hash look-up of the few chosen units among all rows (a group-by over 10^4 rows is slower).
    which = pd.Index(pd.unique(np.asarray(chosen_units, dtype=object))).get_indexer(axis.units)
    hit = np.flatnonzero(which >= 0)
    for k, u in enumerate(pd.unique(np.asarray(chosen_units, dtype=object))):
        members = axis.rows[hit[which[hit] == k]]
        if out_rows and len(out_rows) + len(members) > max_rows:
            break
        out_rows += members[:max_rows].tolist()
        out_units += [u] * min(len(members), max_rows)
    return np.asarray(out_rows, dtype=np.int64), np.asarray(out_units, dtype=object)


def units_per_axis(axis: Axis, max_rows: int) -> int:
    """How many units fit on an axis of ``max_rows`` rows (doses take one row each)."""
    if not axis.doses or axis.rows.size == 0:
        return max_rows
    per = pd.Series(axis.units).value_counts().median()
    return max(1, int(max_rows // max(per, 1)))


def choose_block(unit: np.ndarray, labels: np.ndarray, row_axis: Axis, col_axis: Axis, seeds: np.ndarray, *,
                 max_side: int = MAX_SIDE, score: np.ndarray | None = None,
                 symmetric: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows and columns (perturbation-table rows, with their unit labels) of a readable block.

    With seeds (table rows the user asked for): the seeds that belong on an axis come first,
    then the axis is filled with the units most strongly related (max |cosine|) to any seed.
    Without seeds: the units with the highest ``score`` (e.g. mAP against controls; one value
    per table row). ``labels`` gives every table row its unit label (so a compound searched at
    the pooled level is found among the dose rows of an axis). ``symmetric`` views (gene x gene) use the row choice for both axes.
    Returns (rows, row_units, cols, col_units).
    """
    max_side = int(min(max(max_side, 2), MAX_SIDE))
    seeds = np.asarray(seeds, dtype=np.int64)

    def pick(axis: Axis) -> tuple[np.ndarray, np.ndarray]:
        if axis.rows.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        if seeds.size:
            s = strongest_partners(unit, seeds, axis.rows)
            seed_units = np.asarray(labels, dtype=object)[seeds]
        else:
            # Ranking only (never drawn): a perturbation without a score sorts last instead of first.
            s = np.zeros(axis.rows.size) if score is None else np.nan_to_num(np.asarray(score)[axis.rows], nan=-np.inf)
            seed_units = np.empty(0, dtype=object)
        units = pick_units(axis.units, s, seed_units, units_per_axis(axis, max_side), unique=not axis.doses)
        return axis_rows(axis, units, max_side)

    rows, row_units = pick(row_axis)
    if symmetric:
        return rows, row_units, rows, row_units
    cols, col_units = pick(col_axis)
    return rows, row_units, cols, col_units


# -- ordering ------------------------------------------------------------------------------

def cluster_order(values: np.ndarray) -> np.ndarray:
    """Leaf order of the rows of ``values`` (n, m): average-linkage clustering (Euclidean) with
    optimal leaf ordering, so similar rows sit together and neighbouring leaves are close."""
    n = values.shape[0]
    if n < 3:
        return np.arange(n)
    from scipy.cluster.hierarchy import leaves_list, linkage

    # Ordering only: a missing cosine counts as 0 (unrelated) for the distances; the heatmap still
    # draws the cell as a gap (hoverongaps off), never as 0.
    x = np.nan_to_num(np.asarray(values, dtype=np.float64))
    return leaves_list(linkage(x, method="average", metric="euclidean", optimal_ordering=True))


def grouped_cluster_order(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Order the rows of ``values`` by clustering whole groups (their mean profile); rows of one
    group stay together in their given order (e.g. a compound's doses, ascending)."""
    groups = np.asarray(groups, dtype=object)
    labels = list(pd.unique(groups))
    if len(labels) == len(groups):
        return cluster_order(values)
    means = np.stack([np.nanmean(np.asarray(values, dtype=np.float64)[groups == g], axis=0) for g in labels])
    order = cluster_order(means)
    return np.concatenate([np.flatnonzero(groups == labels[i]) for i in order])


# -- drawing -------------------------------------------------------------------------------

def _group_spans(groups: Sequence) -> list[tuple[object, int, int]]:
    """Consecutive runs of equal labels -> (label, first, last) positions."""
    spans, start = [], 0
    for i in range(1, len(groups) + 1):
        if i == len(groups) or groups[i] != groups[start]:
            spans.append((groups[start], start, i - 1))
            start = i
    return spans


def similarity_heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    zmax: float = 0.5,
    col_groups: Sequence[str] | None = None,
    overlays: Sequence[tuple[int, int, str]] = (),
    row_title: str = "gene",
    col_title: str = "compound",
    title: str | None = None,
    selected: tuple[int, int] | None = None,
) -> go.Figure:
    """Cosine similarity block (r, c) in display order as a heatmap.

    The colour scale is diverging and symmetric about 0 with a fixed range ±zmax, so colours
    mean the same in every view. Cells are placed at integer positions (tick labels carry the
    names), so a click's x/y are the column/row positions even when labels repeat.
    ``col_groups`` (one label per column, e.g. the compound of each dose column) draws group
    names above the plot and separators between groups, the tick labels then being the doses.
    ``overlays``: (row, col, kind) with kind in OVERLAY_STYLE, drawn as open markers.
    ``selected`` (row, col) is outlined by the last trace, which is always present.
    """
    v = np.asarray(values, dtype=np.float32)
    r, c = v.shape
    if len(row_labels) != r or len(col_labels) != c:
        raise ValueError(f"labels ({len(row_labels)} rows, {len(col_labels)} columns) do not match values {v.shape}")
    if not zmax > 0:
        raise ValueError(f"zmax must be positive, got {zmax}")
    col_names = [f"{g} @ {lab}" for g, lab in zip(col_groups, col_labels, strict=True)] if col_groups is not None else list(col_labels)
    # A numpy string array passes plotly's validation ~10x faster than nested lists.
    text = np.array([[f"{row_labels[i]} × {col_names[j]}" for j in range(c)] for i in range(r)], dtype=str).reshape(r, c)
    traces: list[dict] = [dict(
        type="heatmap", z=np.round(v, 3), x=np.arange(c), y=np.arange(r), text=text,
        zmin=-zmax, zmax=zmax, zmid=0.0, colorscale=[list(step) for step in DIVERGING],
        colorbar=dict(title=dict(text="cosine<br>similarity"), tickformat=".2f", len=0.55, y=1.0, yanchor="top"),
        hovertemplate="%{text}<br>cosine %{z:.3f}<extra></extra>", xgap=1, ygap=1, name="cosine", hoverongaps=False,
    )]
    for kind, (symbol, label) in OVERLAY_STYLE.items():
        pts = [(i, j) for i, j, k in overlays if k == kind]
        if not pts:
            continue
        ys, xs = zip(*pts, strict=True)
        traces.append(dict(
            type="scatter", x=np.asarray(xs), y=np.asarray(ys), mode="markers", name=label, hoverinfo="skip",
            marker=dict(symbol=symbol, size=max(6, min(14, 500 // max(r, c, 1))), color="#000000", line=dict(width=1.5)),
        ))
    small = max(r, c) > 30
    top, annotations, shapes = 60, [], []
    if col_groups is not None:
        spans = _group_spans(list(col_groups))
        for g, a, b in spans:
            annotations.append(dict(x=(a + b) / 2, y=1.0, xref="x", yref="paper", yanchor="bottom", text=str(g),
                                    showarrow=False, textangle=-45 if len(spans) > 6 else 0, font=dict(size=10)))
            if b < c - 1:
                shapes.append(dict(type="line", x0=b + 0.5, x1=b + 0.5, y0=-0.5, y1=r - 0.5, xref="x", yref="y",
                                   line=dict(color="#333333", width=1.5)))
        top = 110
    # The selected cell is always the LAST trace (possibly empty), so a click callback can move
    # it with a Patch instead of redrawing the heatmap.
    sel = selected if selected is not None and 0 <= selected[0] < r and 0 <= selected[1] < c else None
    traces.append(dict(
        type="scatter", x=[sel[1]] if sel else [], y=[sel[0]] if sel else [], mode="markers", name="selected pair",
        showlegend=False, hoverinfo="skip",
        marker=dict(symbol="square-open", size=max(8, min(30, 640 // max(r, c, 1))), color="#000000", line=dict(width=3)),
    ))
    layout = dict(
        xaxis=dict(tickmode="array", tickvals=list(range(c)), ticktext=list(col_labels), tickangle=-60,
                   title=dict(text=col_title), showgrid=False, zeroline=False, range=[-0.5, c - 0.5],
                   tickfont=dict(size=9 if small else 11)),
        yaxis=dict(tickmode="array", tickvals=list(range(r)), ticktext=list(row_labels), autorange=False,
                   range=[r - 0.5, -0.5], title=dict(text=row_title), showgrid=False, zeroline=False,
                   tickfont=dict(size=9 if small else 11)),
        margin=dict(l=10, r=10, t=top, b=10), plot_bgcolor="#FFFFFF",
        legend=dict(orientation="v", yanchor="bottom", y=0.0, x=1.02, xanchor="left", title=dict(text="known:")),
        clickmode="event", dragmode="zoom",
        # ~14 px per row keeps 60 gene names legible; the x labels and titles need ~220 px more.
        height=int(max(480, 14 * r + top + 220)),
    )
    for key, value in (("title", dict(text=title) if title else None), ("annotations", annotations), ("shapes", shapes)):
        if value:  # absent rather than empty, as plotly's validation leaves them
            layout[key] = value
    # Not validated property by property: plotly's checks of every cell's text, tick and shape were
    # most of a heatmap answer's time (profiled at the million-well store); the test suite builds the
    # same figure validated and compares (tests/test_figures_similarity.py).
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def empty_figure(text: str) -> go.Figure:
    """A blank figure carrying a message (instead of an error) where nothing can be drawn."""
    fig = go.Figure()
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False),
                      annotations=[dict(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")])
    return fig
