"""The map: UMAP scatter of wells or perturbations, coloured by any column (the batch-correction
summary beside it is `figures.alignment`).

Design for size: one Scattergl trace carries every drawn point (coordinates as float32 typed
arrays, colour as a small integer/float array), so a colour change is a `Patch` of
``data[0].marker`` and nothing else. Points with no value for the colouring are never given one:
their x is NaN in that trace (not drawn, not hovered) and they are drawn by the last trace, grey
and named "no value" (legend entry and hover say so), whose ``customdata`` maps a click back to
the point. Above ``max_points`` the figure draws a server-side density
(2-D histogram of ALL points) under a seeded random sample of points; `sample_indices` recomputes
that sample from (n, max_points, seed) alone, so a callback maps a clicked ``pointIndex`` back to
its row without shipping indices to the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from phenomix_dash.cache import memoize
from precompute.contract import PLATE_FORMATS, row_letters

from .palette import (
    NO_VALUE,
    NO_VALUE_COLOUR,
    OKABE_ITO,
    PERTURBATION_TYPE_COLOURS,
    PERTURBATION_TYPE_LABELS,
    SEQUENTIAL,
)

MAX_POINTS = 200_000
OTHER_COLOUR = "#DDDDDD"

# Derived colourings offered on top of the table's own columns: value -> label.
DERIVED_COLOURS: dict[str, str] = {
    "batch": "batch",
    "plate": "plate",
    "row": "plate row",
    "col": "plate column",
    "edge_distance": "distance to plate edge (wells)",
    "perturbation_type": "perturbation type",
    "control": "control vs treatment",
}
_CONTROL_LABELS = {"negative_control": "negative control", "positive_control": "positive control"}


@dataclass(frozen=True)
class ColourSpec:
    """Per-point colour values plus how to draw them.

    values: (n,) uint8/int16 category codes (categorical) or float32 with NaN (numeric).
    categories/colours: category names and their hex colours, in code order (categorical only).
    ticks: optional (tickvals, ticktext) for a numeric colour bar (plate row letters).
    missing: (n,) bool, True where the row has no value (drawn grey as "no value"); None when
    every row has one. The codes/values of missing rows mean nothing and are never drawn.
    """

    values: np.ndarray
    kind: str
    label: str
    categories: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    ticks: tuple[tuple[float, ...], tuple[str, ...]] | None = None
    n_levels: int = 0  # > 0: too many levels to name; values are level codes modulo the palette (colours repeat)
    missing: np.ndarray | None = None


def _missing_mask(missing: np.ndarray) -> np.ndarray | None:
    missing = np.asarray(missing, dtype=bool)
    return missing if missing.any() else None


def edge_distance(row: np.ndarray, col: np.ndarray, plate_format: int = 384) -> np.ndarray:
    """Wells between a well and the nearest plate edge (0 = outer ring), shape as `row`."""
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    row = np.asarray(row)
    col = np.asarray(col)
    return np.minimum.reduce([row - 1, n_rows - row, col - 1, n_cols - col]).astype(np.float32)


def _categorical(values: pd.Series, label: str, max_categories: int, fixed: dict[str, str] | None = None,
                 cycle: bool = False) -> ColourSpec:
    """Codes for a categorical column. Beyond ``max_categories`` levels either the rarest become
    'other' (a few dominant levels matter, e.g. perturbations) or, with ``cycle``, every level keeps
    its own code and the palette repeats (levels of equal weight, e.g. plates: neighbours in the
    natural order get different colours, so plate structure stays visible)."""
    s = values.astype("string")
    missing = _missing_mask(s.isna().to_numpy())  # drawn as "no value", never as a category
    counts = s.value_counts()
    if cycle and len(counts) > max_categories:
        order = sorted(counts.index, key=_natural_key)
        codes = np.maximum(pd.Categorical(s, categories=order).codes, 0) % len(OKABE_ITO)
        return ColourSpec(codes.astype(np.uint8), "categorical", label, tuple(OKABE_ITO), tuple(OKABE_ITO),
                          n_levels=len(order), missing=missing)
    if fixed:
        order = [k for k in fixed if k in counts.index] + sorted(set(counts.index) - set(fixed))
    else:
        order = sorted(counts.index, key=_natural_key)
    if len(order) > max_categories:
        keep = set(counts.index[: max_categories - 1])
        order = [c for c in order if c in keep] + ["other"]
        s = s.where(s.isin(keep), "other")
    codes = np.maximum(pd.Categorical(s, categories=order).codes, 0)
    colours = []
    palette_i = 0
    for cat in order:
        if fixed and cat in fixed:
            colours.append(fixed[cat])
        elif cat == "other":
            colours.append(OTHER_COLOUR)
        else:
            colours.append(OKABE_ITO[palette_i % len(OKABE_ITO)])
            palette_i += 1
    names = tuple(PERTURBATION_TYPE_LABELS.get(c, c) if fixed is PERTURBATION_TYPE_COLOURS else c for c in order)
    dtype = np.uint8 if len(order) < 256 else np.int16
    return ColourSpec(codes.astype(dtype), "categorical", label, names, tuple(colours), missing=missing)


def _numeric(v: np.ndarray, label: str, ticks: tuple | None = None) -> ColourSpec:
    v = np.asarray(v, dtype=np.float32)
    return ColourSpec(v, "numeric", label, ticks=ticks, missing=_missing_mask(~np.isfinite(v)))


def _natural_key(s: str) -> tuple:
    """'P2' before 'P10': numbers inside names compare as numbers."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s)))


def colour_values(table: pd.DataFrame, color_by: str, *, plate_format: int = 384, max_categories: int = 12) -> ColourSpec:
    """Colour spec for one column (or derived colouring) of a wells or perturbations table.

    ``color_by`` is a column of ``table`` or one of DERIVED_COLOURS ('edge_distance' needs row/col,
    'control' needs perturbation_type). Numeric columns get a sequential scale; everything else is
    categorical. Raises ValueError naming the column when it cannot be coloured.
    """
    label = DERIVED_COLOURS.get(color_by, color_by.replace("_", " "))
    if color_by == "edge_distance":
        if not {"row", "col"} <= set(table.columns):
            raise ValueError("cannot colour by distance to plate edge: the table has no row/col columns")
        rows, cols = (table[c].to_numpy(dtype=np.float32, na_value=np.nan) for c in ("row", "col"))
        return _numeric(edge_distance(rows, cols, plate_format), label)
    if color_by == "control":
        if "perturbation_type" not in table.columns:
            raise ValueError("cannot colour by control vs treatment: the table has no perturbation_type column")
        t = table["perturbation_type"].astype("string")
        s = t.map(lambda x: _CONTROL_LABELS.get(x, "treatment")).where(t.notna())  # unknown type: no value
        fixed = {"negative control": PERTURBATION_TYPE_COLOURS["negative_control"],
                 "positive control": PERTURBATION_TYPE_COLOURS["positive_control"], "treatment": "#0072B2"}
        return _categorical(s, label, max_categories, fixed)
    if color_by not in table.columns:
        raise ValueError(f"cannot colour by {color_by!r}: not a column of this table")
    values = table[color_by]
    if color_by in ("batch", "plate"):
        return _categorical(values, label, max_categories, cycle=True)
    if color_by in ("row", "col"):
        v = values.to_numpy(dtype=np.float32, na_value=np.nan)
        ticks = None
        if color_by == "row":
            step = 1 if np.nanmax(v, initial=1) <= 16 else 4
            tv = tuple(float(r) for r in range(1, int(np.nanmax(v, initial=1)) + 1, step))
            ticks = (tv, tuple(row_letters(int(r)) for r in tv))
        return _numeric(v, label, ticks)
    if color_by == "perturbation_type":
        return _categorical(values, label, max_categories, PERTURBATION_TYPE_COLOURS)
    if pd.api.types.is_bool_dtype(values):
        return _categorical(values.map({True: "yes", False: "no"}), label, max_categories)
    if pd.api.types.is_numeric_dtype(values):
        return _numeric(values.to_numpy(dtype=np.float32, na_value=np.nan), label)
    return _categorical(values, label, max_categories)


def colour_marker(spec: ColourSpec, rows: np.ndarray | None = None, *, size: float = 5.0) -> dict[str, Any]:
    """The ``marker`` dict for the points trace (also what a colour-change Patch writes).

    ``rows``: the rows drawn in that trace, all with a value (see `point_traces`); NaN is never
    replaced by a number here."""
    v = spec.values if rows is None else spec.values[rows]
    marker: dict[str, Any] = {"size": size, "opacity": 0.8, "line": {"width": 0}}
    if spec.kind == "categorical":
        if spec.n_levels:
            scale = [[i / len(spec.colours) + e, c] for i, c in enumerate(spec.colours) for e in (0, 1 / len(spec.colours))]
            marker.update(color=v, colorscale=scale, cmin=-0.5, cmax=len(spec.colours) - 0.5, showscale=True,
                          colorbar={"title": {"text": f"{spec.label}<br>({spec.n_levels:,}; colours repeat)"},
                                    "tickvals": [], "len": 0.5, "y": 1, "yanchor": "top", "thickness": 14})
            return marker
        # Colour bars run bottom-up: the value k-1-code puts the first category at the top.
        k = max(len(spec.categories), 1)
        scale = []
        for i, c in enumerate(reversed(spec.colours or (NO_VALUE_COLOUR,))):
            scale += [[i / k, c], [(i + 1) / k, c]]
        marker.update(color=(k - 1 - v.astype(np.int16)).astype(v.dtype), colorscale=scale, cmin=-0.5, cmax=k - 0.5,
                      showscale=True, colorbar={"title": {"text": spec.label}, "tickvals": list(range(k)),
                                                "ticktext": list(reversed(spec.categories)),
                                                "len": min(1.0, 0.08 * k + 0.1), "y": 1, "yanchor": "top",
                                                "thickness": 14})
    else:
        finite = v[np.isfinite(v)]
        lo, hi = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0.0, 1.0)
        if spec.ticks and finite.size:  # positional colourings use their full range
            lo, hi = float(finite.min()), float(finite.max())
        bar: dict[str, Any] = {"title": {"text": spec.label}, "thickness": 14}
        if spec.ticks:
            bar.update(tickvals=list(spec.ticks[0]), ticktext=list(spec.ticks[1]))
        marker.update(color=np.asarray(v, dtype=np.float32), colorscale=SEQUENTIAL, cmin=lo,
                      cmax=hi if hi > lo else lo + 1, showscale=True, colorbar=bar)
    return marker


_DTYPES = {"uint8": "u1", "int8": "i1", "uint16": "u2", "int16": "i2", "uint32": "u4", "int32": "i4",
           "float32": "f4", "float64": "f8"}


def typed_array(a: np.ndarray) -> dict[str, str]:
    """A numpy array as plotly.js's base64 typed-array spec. Dash's Patch sends arrays as JSON lists
    (about 3x larger for a uint8 colour code); figures get this encoding from plotly already."""
    import base64

    a = np.ascontiguousarray(a)
    if a.dtype.name not in _DTYPES:
        raise ValueError(f"no plotly typed array for dtype {a.dtype}")
    return {"dtype": _DTYPES[a.dtype.name], "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def hover_template(spec: ColourSpec) -> str:
    if spec.kind == "numeric" and not spec.ticks:
        return "%{text}<br>" + spec.label + " = %{marker.color:.3g}<extra></extra>"
    return "%{text}<extra></extra>"


def no_value_hover_template(spec: ColourSpec) -> str:
    return "%{text}<br>" + spec.label + ": " + NO_VALUE + "<extra></extra>"


def drawn_split(spec: ColourSpec, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions among the drawn points (``rows`` = `sample_indices`, None = all) with a value and
    without one; None when every drawn point has a value (then nothing is split off)."""
    if spec.missing is None:
        return None
    m = spec.missing if rows is None else spec.missing[rows]
    if not m.any():
        return None
    return np.flatnonzero(~m), np.flatnonzero(m)


def point_traces(shown: np.ndarray, spec: ColourSpec, rows: np.ndarray | None, hover_text: np.ndarray | None,
                 size: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Properties of the two point traces: (every drawn point, the grey "no value" points).

    ``shown``: (m, 2) drawn coordinates; ``rows``: their rows (None = rows 0..m-1); ``hover_text``:
    one per drawn point or None. The first trace keeps every drawn point in order (pointIndex =
    position among the drawn points, as `sample_indices` indexes them); a point without a value
    gets x = NaN there, so it is neither drawn nor hovered in colour. The grey trace holds those
    points with ``customdata`` = their positions, so a click on one maps back to its row. A
    colour change that moves points therefore resends one coordinate array, not the hover text.
    """
    grey_marker = {"size": size, "opacity": 0.8, "line": {"width": 0}, "color": NO_VALUE_COLOUR}
    split = drawn_split(spec, rows)
    x = shown[:, 0]
    if split is None:
        empty = np.empty(0, dtype=np.float32)
        grey = {"x": empty, "y": empty, "text": None, "customdata": None, "showlegend": False}
    else:
        no = split[1]
        x = x.astype(np.float32, copy=True)
        x[no] = np.nan
        # customdata as plain JSON numbers: dcc.Graph reads a click's customdata from the trace as
        # sent, where a base64 typed array cannot be indexed (the click would lose it).
        grey = {"x": shown[no, 0], "y": shown[no, 1], "customdata": np.array(no.tolist(), dtype=object),
                "text": None if hover_text is None else hover_text[no], "showlegend": True}
    valued = {"x": x, "y": shown[:, 1], "text": hover_text, "marker": colour_marker(spec, rows, size=size),
              "hovertemplate": hover_template(spec)}
    grey.update(marker=grey_marker, hovertemplate=no_value_hover_template(spec), name=NO_VALUE)
    return valued, grey


def no_value_trace_index(sampled: bool) -> int:
    """Index of the grey "no value" trace: after the points, the clicked ring and (when a sample is
    drawn) the density layer."""
    return 3 if sampled else 2


def split_positions(positions: np.ndarray, split: tuple[np.ndarray, np.ndarray] | None) -> tuple[list[int], list[int]]:
    """Drawn-point positions (e.g. a selection) as indices into (the first trace: the positions
    themselves, the grey trace: where the selected points without a value sit in it)."""
    positions = np.asarray(positions, dtype=np.int64)
    if split is None:
        return positions.tolist(), []
    return positions.tolist(), np.flatnonzero(np.isin(split[1], positions)).tolist()


@memoize(16)
def _sample(n: int, max_points: int, sample_size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=sample_size, replace=False)).astype(np.int64)
    idx.setflags(write=False)
    return idx


def sample_indices(n: int, max_points: int = MAX_POINTS, sample_size: int | None = None, seed: int = 0) -> np.ndarray | None:
    """Rows drawn as points when n > max_points (sorted, read-only), else None (all rows drawn).

    Deterministic in its arguments, so a callback recomputes it to map pointIndex -> row.
    """
    if n <= max_points:
        return None
    return _sample(n, max_points, min(sample_size or max_points // 4, n), seed)


def density_trace(xy: np.ndarray, bins: int = 160) -> go.Heatmap:
    """2-D histogram of all points as a grey heatmap (log counts), drawn under the sampled points."""
    finite = np.isfinite(xy).all(axis=1)
    pts = xy[finite] if not finite.all() else xy
    edges, codes = [], []
    for dim in (0, 1):
        # Equal-width bins by arithmetic + one bincount: np.histogram2d binary-searches every
        # point (0.2 s per map at 10^6 points, twice per page); same bins, max value in the last.
        v = pts[:, dim].astype(np.float64)
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges.append(np.linspace(lo, hi, bins + 1))
        codes.append(np.minimum(((v - lo) * (bins / (hi - lo))).astype(np.int64), bins - 1))
    h = np.bincount(codes[0] * bins + codes[1], minlength=bins * bins).reshape(bins, bins)
    xe, ye = edges
    z = np.log1p(h.T).astype(np.float32)
    z[z == 0] = np.nan  # empty bins stay transparent
    return go.Heatmap(x=((xe[:-1] + xe[1:]) / 2).astype(np.float32), y=((ye[:-1] + ye[1:]) / 2).astype(np.float32),
                      z=z, colorscale=[[0, "#EEEEEE"], [1, "#444444"]], showscale=False, hoverinfo="skip",
                      name="density of all points", zsmooth=False)


def marker_size(n: int) -> float:
    return 7.0 if n <= 3_000 else 5.0 if n <= 20_000 else 3.0 if n <= 100_000 else 2.0


def embedding_figure(
    xy: np.ndarray,
    spec: ColourSpec,
    *,
    hover_text: list[str] | np.ndarray | None = None,
    title: str | None = None,
    max_points: int = MAX_POINTS,
    sample_size: int | None = None,
    seed: int = 0,
    highlight: int | None = None,
    unit: str = "wells",
    density: go.Heatmap | None = None,
    notes: tuple[str | None, ...] = (),
) -> go.Figure:
    """UMAP scatter: xy (n, 2); spec from `colour_values` over the same n rows.

    Traces: 0 = points with a value (Scattergl), 1 = highlighted point (the clicked row, empty if
    none), 2 = density of all points (only when n > max_points), last = grey "no value" points
    (empty unless some drawn point has no value; see `point_traces`). ``hover_text`` has one entry per row
    (n), or per drawn row when a sample is drawn. ``highlight`` is a row index into xy.
    ``density``: `density_trace(xy)` computed before (callers cache it: it depends on xy only).
    ``notes``: more lines under the title, e.g. how the coordinates were approximated (None = none).
    """
    xy = np.asarray(xy, dtype=np.float32)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"UMAP coordinates must be (n, 2), got {xy.shape}")
    if len(spec.values) != len(xy):
        raise ValueError(f"colour values ({len(spec.values)}) and points ({len(xy)}) differ in length")
    n = len(xy)
    rows = sample_indices(n, max_points, sample_size, seed)
    shown = xy if rows is None else xy[rows]
    if hover_text is not None:
        # An object array, not a list: plotly validates lists item by item (about 1 s per 100,000).
        hover_text = np.asarray(hover_text, dtype=object)
        if rows is not None and len(hover_text) == n:
            hover_text = hover_text[rows]
    fig = go.Figure()
    valued, grey = point_traces(shown, spec, rows, hover_text, marker_size(len(shown)))
    fig.add_trace(go.Scattergl(mode="markers", name=unit, showlegend=False, **valued))
    hx, hy = ([float(xy[highlight, 0])], [float(xy[highlight, 1])]) if highlight is not None and 0 <= highlight < n else ([], [])
    fig.add_trace(go.Scattergl(x=hx, y=hy, mode="markers", name="clicked", hoverinfo="skip", showlegend=False,
                               marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#000"}}))
    subtitle = f"{n:,} {unit}"
    if rows is not None:
        fig.add_trace(density if density is not None else density_trace(xy))
        subtitle = f"{len(rows):,} of {n:,} {unit} drawn; grey = density of all {unit}"
    fig.add_trace(go.Scattergl(mode="markers", **grey))
    sub = "<br>".join([subtitle, *(n for n in notes if n)])
    fig.update_layout(
        title={"text": f"{title}<br><sup>{sub}</sup>" if title else sub, "x": 0.01, "font": {"size": 15}},
        xaxis={"title": {"text": "UMAP 1"}, "showticklabels": False, "zeroline": False, "showgrid": False},
        yaxis={"title": {"text": "UMAP 2"}, "showticklabels": False, "zeroline": False, "showgrid": False},
        plot_bgcolor="#FFFFFF", margin={"l": 30, "r": 10, "t": 60, "b": 30}, dragmode="lasso",
        clickmode="event+select", hovermode="closest", uirevision="map", height=520,
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": -0.02, "yanchor": "top"},
    )
    return fig
