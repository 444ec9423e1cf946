"""A gene set drawn on the views: members outlined on the map, on the heatmap axes and on the plate,
and the set's within-set similarity against its null. Pure: member positions come in as data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

SET_COLOUR = "#D55E00"  # Okabe-Ito vermilion: distinct from the type colours and the clicked ring
SET_NAME = "set member"


def member_ring(xy: np.ndarray, rows: np.ndarray, *, max_points: int, size: float = 11.0) -> dict[str, Any]:
    """Properties of the map's set trace: an open ring around each member point (``rows`` into xy).

    Members beyond ``max_points`` are not drawn (the trace's name says how many are); members whose
    coordinates are missing are not drawn either."""
    rows = np.asarray(rows, dtype=np.int64)
    pts = np.asarray(xy, dtype=np.float32)[rows] if rows.size else np.empty((0, 2), dtype=np.float32)
    pts = pts[np.isfinite(pts).all(axis=1)]
    name = f"{SET_NAME}s ({len(rows):,})"
    if len(pts) > max_points:
        pts = pts[:max_points]
        name = f"{SET_NAME}s ({max_points:,} of {len(rows):,} drawn)"
    return {"x": pts[:, 0], "y": pts[:, 1], "name": name, "showlegend": bool(len(rows)),
            "mode": "markers", "hoverinfo": "skip",
            "marker": {"size": size, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": SET_COLOUR}}}


def add_member_ring(fig: go.Figure, xy: np.ndarray, rows: np.ndarray, *, max_points: int) -> int:
    """Append the set trace (possibly empty) to a map figure; returns its index, which a Patch
    then updates when the set changes."""
    fig.add_trace(go.Scattergl(**member_ring(xy, rows, max_points=max_points)))
    return len(fig.data) - 1


def outline_members(fig: go.Figure, row_member: Sequence[bool], col_member: Sequence[bool]) -> go.Figure:
    """Outline every heatmap row and column (integer positions, as `similarity_heatmap` draws
    them) whose entity is a set member: one rectangle each, named ``set member``."""
    rows_in, cols_in = np.flatnonzero(np.asarray(row_member, dtype=bool)), np.flatnonzero(np.asarray(col_member, dtype=bool))
    if rows_in.size == 0 and cols_in.size == 0:
        # Nothing to outline: leave the layout alone (re-setting its shapes re-validates every one,
        # 29 ms of a 45 ms heatmap answer at the million-well store, profiled).
        return fig
    r, c = len(row_member), len(col_member)
    shapes = list(fig.layout.shapes or ())
    line = {"color": SET_COLOUR, "width": 2}
    for i in rows_in:
        shapes.append(dict(type="rect", x0=-0.5, x1=c - 0.5, y0=i - 0.5, y1=i + 0.5, xref="x", yref="y",
                           line=line, fillcolor="rgba(0,0,0,0)", name=f"{SET_NAME} row {int(i)}"))
    for j in cols_in:
        shapes.append(dict(type="rect", x0=j - 0.5, x1=j + 0.5, y0=-0.5, y1=r - 0.5, xref="x", yref="y",
                           line=line, fillcolor="rgba(0,0,0,0)", name=f"{SET_NAME} column {int(j)}"))
    fig.update_layout(shapes=shapes)
    return fig


def outlined_positions(fig: go.Figure | dict) -> tuple[list[int], list[int]]:
    """(rows, columns) a heatmap outlines as set members (what `outline_members` drew)."""
    layout = fig["layout"] if isinstance(fig, dict) else fig.to_plotly_json()["layout"]
    rows, cols = [], []
    for s in layout.get("shapes") or ():
        name = s.get("name") or ""
        if name.startswith(f"{SET_NAME} row "):
            rows.append(int(name.rsplit(" ", 1)[1]))
        elif name.startswith(f"{SET_NAME} column "):
            cols.append(int(name.rsplit(" ", 1)[1]))
    return rows, cols


def plate_member_trace(rows: Sequence[int], cols: Sequence[int], well_ids: Sequence[str]) -> go.Scatter:
    """Open squares around the member wells of a plate view (plate row/column numbers, 1-based)."""
    return go.Scatter(x=list(cols), y=list(rows), mode="markers", name=f"{SET_NAME}s ({len(well_ids)})",
                      text=list(well_ids), hovertemplate="%{text} (set member)<extra></extra>",
                      marker={"symbol": "square-open", "size": 16, "color": SET_COLOUR, "line": {"width": 2.5}},
                      showlegend=bool(len(well_ids)))


def p_text(p: float, n_null: int) -> str:
    """'p = 0.036', or 'p < 0.001' when no random set reached the set's value (the +1-corrected p is
    then its floor 1/(n+1), and printing 0.000999 would read as more precision than there is)."""
    floor = 1 / (n_null + 1)
    return f"p < {1 / n_null:.1g}" if n_null and p <= floor * (1 + 1e-9) else f"p = {p:.3g}"


def null_figure(null: np.ndarray, observed: float, p: float, k: int, pool: int, label: str) -> go.Figure:
    """Histogram of the random sets' mean within-set cosine with the set's own value marked."""
    fig = go.Figure(go.Histogram(x=np.asarray(null, dtype=np.float64), nbinsx=40, marker={"color": "#999999"},
                                 name=f"{len(null):,} random sets of {k}", hovertemplate="%{x}: %{y} sets<extra></extra>"))
    fig.add_vline(x=observed, line={"color": SET_COLOUR, "width": 3})
    fig.update_layout(
        title={"text": f"{label}: mean within-set cosine {observed:.3f}, {p_text(p, len(null))}<br><sup>null: {len(null):,} random "
                       f"sets of {k} drawn from {pool:,} perturbations of the members' types (seeded)</sup>",
               "font": {"size": 14}},
        xaxis={"title": {"text": "mean pairwise cosine within a set"}}, yaxis={"title": {"text": "random sets"}},
        plot_bgcolor="#FFFFFF", margin={"l": 50, "r": 10, "t": 70, "b": 40}, height=320, showlegend=False)
    return fig
