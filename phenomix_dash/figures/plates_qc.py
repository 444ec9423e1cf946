"""Plate quality: well-position and batch effects, before and after alignment.

Statistics here are cheap passes over stored arrays (O(n·d), no pairwise matrices), so they are
exact at any screen size; pages cache them per store. Figures are pure builders over their
outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from precompute.contract import PLATE_FORMATS, row_letters

from .missing import fmt_value
from .palette import DIVERGING, NO_VALUE, SEQUENTIAL

ROBUST_Z_OUTLIER = 3.0
SPACE_COLOURS = {"raw": "#999999", "aligned": "#0072B2"}


# -- statistics -------------------------------------------------------------------------------

def pooled_plate_grid(wells: pd.DataFrame, values: np.ndarray, plate_format: int = 384) -> np.ndarray:
    """(rows, cols) grid of the median of ``values`` (n_wells,) over all plates at each position.

    NaN where no plate has a finite value."""
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    df = pd.DataFrame({"r": wells["row"].to_numpy() - 1, "c": wells["col"].to_numpy() - 1, "v": np.asarray(values, float)})
    med = df.dropna().groupby(["r", "c"])["v"].median()
    grid = np.full((n_rows, n_cols), np.nan)
    grid[med.index.get_level_values(0), med.index.get_level_values(1)] = med.to_numpy()
    return grid


def row_col_profiles(wells: pd.DataFrame, values: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Median and IQR of ``values`` (n_wells,) per plate row and per plate column, pooled over plates.

    Returns two frames (rows, columns) with columns position (1-based), median, q25, q75, n."""
    v = pd.Series(np.asarray(values, float))
    out = []
    for axis in ("row", "col"):
        g = v.groupby(wells[axis].to_numpy())
        q = g.quantile([0.25, 0.5, 0.75]).unstack()
        df = pd.DataFrame({"position": q.index.astype(int), "median": q[0.5].to_numpy(), "q25": q[0.25].to_numpy(),
                           "q75": q[0.75].to_numpy(), "n": g.count().reindex(q.index).to_numpy()})
        out.append(df.reset_index(drop=True))
    return out[0], out[1]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def position_similarity(emb: np.ndarray, plates: np.ndarray, positions: np.ndarray) -> dict[str, float]:
    """Mean cosine between control wells on DIFFERENT plates: same position vs different position.

    emb: (n, d) control-well embeddings; plates, positions: (n,) labels (position e.g. 'B07').
    Uses sums of unit vectors (sum over pairs i!=j of u_i·u_j = |Σu|² - Σ|u|²), so it is exact and
    O(n·d) at any number of controls. A large same-minus-different gap means wells at one position
    look alike across plates: a well-position effect.
    """
    u = _unit(emb)
    if len(u) < 2:
        return {"same_position": np.nan, "different_position": np.nan, "n_same_pairs": 0, "n_different_pairs": 0}
    plates = pd.factorize(np.asarray(plates))[0]
    pos = pd.factorize(np.asarray(positions))[0]
    both = pd.factorize(pd.Series(plates).astype(str) + "|" + pd.Series(pos).astype(str))[0]

    def grouped(codes: np.ndarray) -> tuple[float, float]:
        """Σ over groups of |Σu|² and of n² (ordered pairs within groups, self-pairs included)."""
        s = np.zeros((codes.max() + 1, u.shape[1]))
        np.add.at(s, codes, u)
        return float((s * s).sum()), float((np.bincount(codes) ** 2).sum())

    tot_s, tot_n = float((u.sum(0) ** 2).sum()), float(len(u) ** 2)
    plate_s, plate_n = grouped(plates)
    pos_s, pos_n = grouped(pos)
    pp_s, pp_n = grouped(both)
    cross_s, cross_n = tot_s - plate_s, tot_n - plate_n          # pairs on different plates
    same_s, same_n = pos_s - pp_s, pos_n - pp_n                  # ... at the same position
    diff_s, diff_n = cross_s - same_s, cross_n - same_n
    return {
        "same_position": same_s / same_n if same_n > 0 else np.nan,
        "different_position": diff_s / diff_n if diff_n > 0 else np.nan,
        "n_same_pairs": int(same_n // 2),
        "n_different_pairs": int(diff_n // 2),
    }


def plate_control_centroids(emb: np.ndarray, wells: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Mean embedding of each plate's negative controls.

    Returns (plates frame: plate, batch, n_controls; sorted by batch then plate) and centroids
    (n_plates, d). Plates without controls are left out."""
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    sub = wells.loc[ctrl, ["plate", "batch"]].reset_index(drop=True)
    x = np.asarray(emb)[ctrl].astype(np.float64)
    codes, names = pd.factorize(sub["plate"])
    sums = np.zeros((len(names), x.shape[1]))
    np.add.at(sums, codes, x)
    counts = np.bincount(codes, minlength=len(names))
    info = pd.DataFrame({"plate": names.astype(str), "batch": sub.groupby(codes)["batch"].first().astype(str).to_numpy(),
                         "n_controls": counts})
    order = np.array(sorted(range(len(info)), key=lambda i: (_natural(info["batch"][i]), _natural(info["plate"][i]))), dtype=int)
    return info.iloc[order].reset_index(drop=True), (sums / counts[:, None])[order]


def _natural(s: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s)))


def centroid_similarity(centroids: np.ndarray) -> np.ndarray:
    """(p, p) cosine of plate control centroids after centring on their mean.

    Centring matters: raw features share a large common offset that makes every cosine ~1; after
    it, 0 = an ordinary plate and a positive block = plates that drift the same way (a batch)."""
    c = np.asarray(centroids, float)
    u = _unit(c - c.mean(axis=0))
    return u @ u.T


def plate_drift(info: pd.DataFrame, centroids: np.ndarray, threshold: float = ROBUST_Z_OUTLIER) -> pd.DataFrame:
    """Control drift per plate: distance of its control centroid from the median of all plates'
    centroids, as a robust z-score (median / 1.4826·MAD). ``outlier`` = robust z > threshold.
    With fewer than 3 plates, or no spread, the robust z is undefined: NaN, and nothing is flagged."""
    c = np.asarray(centroids, float)
    drift = np.linalg.norm(c - np.median(c, axis=0), axis=1)
    med = np.median(drift)
    mad = 1.4826 * np.median(np.abs(drift - med))
    # With fewer than 3 plates, or identical drifts, there is no spread to measure against.
    if len(drift) < 3 or mad <= 1e-9 * max(float(med), 1e-12):
        z = np.full_like(drift, np.nan)
    else:
        z = (drift - med) / mad
    return info.assign(drift=drift, robust_z=z, outlier=z > threshold)


# -- figures ----------------------------------------------------------------------------------

def _plate_axes(fig: go.Figure, plate_format: int, **where) -> None:
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    step_r = 1 if n_rows <= 16 else 2
    fig.update_xaxes(title_text="column", side="top", tickmode="array", constrain="domain",
                     tickvals=list(range(1, n_cols + 1, 1 if n_cols <= 24 else 4)), **where)
    fig.update_yaxes(title_text="row", autorange="reversed", tickmode="array", scaleanchor="x", scaleratio=1,
                     tickvals=list(range(1, n_rows + 1, step_r)), ticktext=[row_letters(r) for r in range(1, n_rows + 1, step_r)],
                     **where)


def plate_heatmap_figure(grid: np.ndarray, *, title: str, colorbar_title: str, diverging: bool = False,
                         plate_format: int = 384) -> go.Figure:
    """A plate layout (rows, cols) as a heatmap; NaN wells stay blank. ``diverging`` centres the
    scale on 0 (signed metrics such as a principal component)."""
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    if grid.shape != (n_rows, n_cols):
        raise ValueError(f"grid shape {grid.shape} does not match a {plate_format}-well plate ({n_rows}x{n_cols})")
    text = [[f"{row_letters(r + 1)}{c + 1:02d}" for c in range(n_cols)] for r in range(n_rows)]
    kw: dict = {"colorscale": DIVERGING, "zmid": 0} if diverging else {"colorscale": SEQUENTIAL}
    if not np.isfinite(grid).all():  # blank cells are wells without a value: say so where the scale is read
        colorbar_title = f"{colorbar_title}<br><sup>blank = {NO_VALUE}</sup>"
    fig = go.Figure(go.Heatmap(z=grid, x=list(range(1, n_cols + 1)), y=list(range(1, n_rows + 1)), text=text,
                               hovertemplate="%{text}: %{z:.3g}<extra></extra>", colorbar={"title": {"text": colorbar_title}},
                               xgap=1, ygap=1, hoverongaps=False, **kw))
    _plate_axes(fig, plate_format)
    fig.update_layout(title={"text": title, "y": 0.99, "yanchor": "top"}, plot_bgcolor="#FFFFFF", height=430,
                      margin={"l": 50, "r": 10, "t": 95, "b": 20})
    return fig


def row_col_profile_figure(rows: pd.DataFrame, cols: pd.DataFrame, *, label: str) -> go.Figure:
    """Median ± IQR of a well metric per plate row and per plate column, pooled over plates.
    A flat line means no position effect; bent ends mean edge effects."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per plate row", "per plate column"), horizontal_spacing=0.1)
    for c, (df, axis) in enumerate(((rows, "row"), (cols, "column")), start=1):
        x = [row_letters(int(p)) for p in df["position"]] if axis == "row" else df["position"].tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=list(df["q75"]) + list(df["q25"])[::-1], fill="toself", mode="lines",
                                 line={"width": 0}, fillcolor="rgba(0,114,178,0.2)", name="interquartile range",
                                 hoverinfo="skip", showlegend=c == 1, legendgroup="iqr"), row=1, col=c)
        fig.add_trace(go.Scatter(x=x, y=df["median"], mode="lines+markers", line={"color": "#0072B2"}, name="median",
                                 showlegend=c == 1, legendgroup="median", customdata=df["n"],
                                 hovertemplate=f"{axis} %{{x}}: median %{{y:.3g}} (%{{customdata}} wells)<extra></extra>"),
                      row=1, col=c)
        fig.update_xaxes(title_text=f"plate {axis}", type="category" if axis == "row" else "linear", row=1, col=c)
        fig.update_yaxes(title_text=label if c == 1 else None, row=1, col=c)
    fig.update_layout(height=320, margin={"l": 50, "r": 10, "t": 40, "b": 40}, plot_bgcolor="#FFFFFF",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def position_similarity_figure(stats: pd.DataFrame, n_controls: int | None = None,
                               n_controls_total: int | None = None) -> go.Figure:
    """Bars: mean cosine of control wells across plates at the same vs at different positions,
    raw vs aligned (stats: columns space, same_position, different_position). The subtitle says
    from how many control wells (both counts when a sample of them was used)."""
    fig = go.Figure()
    for kind, colour, name in (("same_position", "#D55E00", "same position"), ("different_position", "#56B4E9", "different position")):
        fig.add_trace(go.Bar(x=stats["space"], y=stats[kind], name=name, marker_color=colour,
                             text=[fmt_value(v, ".3f") for v in stats[kind]], textposition="outside",
                             hovertemplate="%{x}, " + name + ": %{y:.3f}<extra></extra>"))
    title = "Same-position control wells across plates"
    if n_controls is not None:
        total = n_controls_total if n_controls_total is not None else n_controls
        used = (f"from a seeded sample of {n_controls:,} of {total:,} negative-control wells" if n_controls < total
                else f"from all {total:,} negative-control wells")
        title += f"<br><sup>{used}</sup>"
    fig.update_layout(barmode="group", height=320, title=title,
                      yaxis_title="mean cosine of control pairs",
                      xaxis_title="embedding space", plot_bgcolor="#FFFFFF", margin={"l": 60, "r": 10, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def plate_similarity_figure(info: pd.DataFrame, raw: np.ndarray, aligned: np.ndarray) -> go.Figure:
    """Two plate x plate heatmaps (raw, aligned) of centred control-centroid cosine, symmetric
    diverging scale; plates ordered by batch, so batch effects show as blocks on the diagonal."""
    labels = [f"{p} ({b})" for p, b in zip(info["plate"], info["batch"], strict=True)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("raw embeddings", "aligned embeddings"), horizontal_spacing=0.12)
    for c, m in enumerate((raw, aligned), start=1):
        fig.add_trace(go.Heatmap(z=m, x=labels, y=labels, colorscale=DIVERGING, zmin=-1, zmax=1, zmid=0,
                                 showscale=c == 2, colorbar={"title": {"text": "cosine"}},
                                 hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>"), row=1, col=c)
        fig.update_yaxes(autorange="reversed", showticklabels=c == 1 and len(labels) <= 40, row=1, col=c)
        fig.update_xaxes(showticklabels=len(labels) <= 40, tickangle=-60, row=1, col=c)
    fig.update_layout(title="Plate-by-plate similarity of control wells (centred centroids)", height=440,
                      margin={"l": 10, "r": 10, "t": 70, "b": 10})
    return fig


def plate_drift_figure(drift: pd.DataFrame, *, space: str = "aligned", threshold: float = ROBUST_Z_OUTLIER) -> go.Figure:
    """Robust z of control drift per plate; plates above the threshold are drawn in vermillion."""
    colours = np.where(drift["outlier"].to_numpy(), "#D55E00", "#999999")
    fig = go.Figure(go.Bar(x=drift["plate"], y=drift["robust_z"], marker_color=colours, customdata=drift["batch"],
                           hovertemplate="plate %{x} (batch %{customdata}): robust z %{y:.2f}<extra></extra>",
                           name="control drift"))
    fig.add_hline(y=threshold, line={"dash": "dash", "color": "#D55E00"}, annotation_text=f"outlier (z > {threshold:g})")
    if not np.isfinite(drift["robust_z"].to_numpy(dtype=float)).any():
        fig.add_annotation(text=f"robust z: {NO_VALUE} (needs at least 3 plates with spread in control drift)",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=f"Control drift per plate ({space})", xaxis_title="plate", height=320,
                      yaxis_title="robust z of control-centroid distance", plot_bgcolor="#FFFFFF",
                      margin={"l": 60, "r": 10, "t": 50, "b": 40})
    return fig
