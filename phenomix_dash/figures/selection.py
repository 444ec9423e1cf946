"""Figures of a map selection: its composition against the screen, and what separates A from B.

Pure builders over the tables of phenomix_dash/selection_stats.py (composition) and
selection_compare.py (effect sizes); they read no store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from phenomix_dash.figures.palette import NO_VALUE_COLOUR

SIGNIFICANT, NOT_SIGNIFICANT = "#D55E00", "#0072B2"
COLUMN_LABELS = {"perturbation_type": "type", "batch": "batch", "plate": "plate"}


def composition_figure(comp: pd.DataFrame, top: int = 6, alpha: float = 0.05) -> go.Figure:
    """Observed / expected wells per category (log axis; 1 = as in the whole screen), the ``top``
    most over-represented categories of each column; vermillion where over-representation has
    q < alpha. Hover gives the counts behind each bar."""
    need = {"column", "value", "selected", "total", "expected", "ratio", "q"}
    if not need <= set(comp.columns):
        raise ValueError(f"composition table lacks columns {sorted(need - set(comp.columns))}")
    shown = comp.groupby("column", sort=False, group_keys=False).head(top)
    shown = shown[shown["selected"] > 0]
    fig = go.Figure()
    if shown.empty:
        fig.update_layout(title={"text": "nothing selected"}, height=160)
        return fig
    labels = [f"{COLUMN_LABELS.get(c, c)} · {v}" for c, v in zip(shown["column"], shown["value"], strict=True)]
    q = shown["q"].to_numpy(float)
    colours = np.where(~np.isfinite(q), NO_VALUE_COLOUR, np.where(q < alpha, SIGNIFICANT, NOT_SIGNIFICANT))
    hover = [f"{lbl}<br>{int(k):,} selected of {int(t):,} in the screen<br>expected {e:,.1f} · q {qq:.2g}"
             for lbl, k, t, e, qq in zip(labels, shown["selected"], shown["total"], shown["expected"], q, strict=True)]
    fig.add_bar(y=labels, x=shown["ratio"], orientation="h", marker_color=list(colours), hovertext=hover,
                hoverinfo="text", text=[f"{int(k):,}" for k in shown["selected"]], textposition="auto")
    fig.add_vline(x=1, line_dash="dot", line_color="#555")
    fig.update_layout(title={"text": "Composition vs the whole screen (observed / expected wells)", "font": {"size": 13}},
                      xaxis={"type": "log", "title": "observed / expected"},
                      yaxis={"autorange": "reversed", "automargin": True}, showlegend=False,
                      height=max(200, 22 * len(shown) + 90), margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return fig


def effect_size_figure(effects: pd.DataFrame, title: str, top: int = 15, alpha: float = 0.05) -> go.Figure:
    """Cohen's d of A vs B (positive: higher in A) for the ``top`` largest |d|; vermillion where
    Welch's q < alpha, grey where d has no value (constant on both sides)."""
    need = {"name", "cohen_d", "q"}
    if not need <= set(effects.columns):
        raise ValueError(f"effect table lacks columns {sorted(need - set(effects.columns))}")
    shown = effects.head(top)
    d = shown["cohen_d"].to_numpy(float)
    q = shown["q"].to_numpy(float)
    colours = np.where(~np.isfinite(d), NO_VALUE_COLOUR, np.where(q < alpha, SIGNIFICANT, NOT_SIGNIFICANT))
    hover = [f"{n}<br>d = {dd:+.2f} · q {qq:.2g}" if np.isfinite(dd) else f"{n}<br>no value (constant)"
             for n, dd, qq in zip(shown["name"], d, q, strict=True)]
    fig = go.Figure(go.Bar(y=shown["name"].astype(str), x=d, orientation="h", marker_color=list(colours),
                           hovertext=hover, hoverinfo="text"))
    fig.add_vline(x=0, line_color="#555")
    fig.update_layout(title={"text": title, "font": {"size": 13}}, xaxis={"title": "Cohen's d (A − B)"},
                      yaxis={"autorange": "reversed", "automargin": True}, showlegend=False,
                      height=max(200, 20 * len(shown) + 90), margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return fig
