"""The effect of alignment in two panels: batch mixing (should fall towards chance) and biology
retained (should hold or rise), raw beside aligned, from the evaluate stage's tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .captions import with_caption
from .missing import fmt_value

_MIXING = {"batch": "batch predicted from embedding", "plate": "plate predicted from embedding",
           "plate_row": "plate row predicted", "plate_col": "plate column predicted"}


def benchmark_summary(
    batch: pd.DataFrame | None,
    replicate: pd.DataFrame | None,
    *,
    embedder: str,
    aligned: str,
    summary: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Raw-vs-aligned numbers for the batch-correction figure.

    batch: benchmark_table('batch') rows (embedder, space, label, accuracy, chance[, silhouette]);
    replicate: benchmark_table('replicate_map') rows (embedder, space, map[, fraction_q05]);
    ``aligned`` names the alignment space compared with 'raw'. When the tables are missing,
    ``summary`` (benchmarks()['summary']: batch_accuracy / batch_chance / replicate_map per
    embedder and space) is used instead. Returns columns metric, label, group ('mixing' or
    'biology'), raw, aligned, chance (NaN where no chance level applies).
    """
    rows: list[dict[str, Any]] = []

    def pick(df: pd.DataFrame, space: str, col: str) -> float:
        v = df.loc[df["space"] == space, col]
        return _num(v.iloc[0]) if len(v) else float("nan")

    if batch is not None and len(batch) and {"embedder", "space", "label", "accuracy"} <= set(batch.columns):
        b = batch[batch["embedder"] == embedder]
        for label, g in b.groupby("label", sort=False):
            rows.append({"metric": f"{label}_accuracy", "label": _MIXING.get(label, f"{label} predicted"), "group": "mixing",
                         "raw": pick(g, "raw", "accuracy"), "aligned": pick(g, aligned, "accuracy"),
                         "chance": pick(g, "raw", "chance") if "chance" in g else float("nan")})
    elif summary and embedder in (summary.get("batch_accuracy") or {}):
        acc = summary["batch_accuracy"][embedder]
        rows.append({"metric": "batch_accuracy", "label": _MIXING["batch"], "group": "mixing", "raw": _num(acc.get("raw")),
                     "aligned": _num(acc.get(aligned)), "chance": _num(summary.get("batch_chance"))})
    if replicate is not None and len(replicate) and {"embedder", "space", "map"} <= set(replicate.columns):
        r = replicate[replicate["embedder"] == embedder]
        rows.append({"metric": "replicate_map", "label": "replicate retrieval mAP", "group": "biology",
                     "raw": pick(r, "raw", "map"), "aligned": pick(r, aligned, "map"), "chance": float("nan")})
        if "fraction_q05" in r:
            rows.append({"metric": "fraction_q05", "label": "retrieved at q < 0.05", "group": "biology",
                         "raw": pick(r, "raw", "fraction_q05"), "aligned": pick(r, aligned, "fraction_q05"),
                         "chance": float("nan")})
    elif summary and embedder in (summary.get("replicate_map") or {}):
        m = summary["replicate_map"][embedder]
        rows.append({"metric": "replicate_map", "label": "replicate retrieval mAP", "group": "biology",
                     "raw": _num(m.get("raw")), "aligned": _num(m.get(aligned)), "chance": float("nan")})
    return pd.DataFrame(rows, columns=["metric", "label", "group", "raw", "aligned", "chance"])


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def batch_correction_figure(summary: pd.DataFrame, *, title: str | None = "Effect of alignment",
                            aligned_label: str = "aligned", captions: tuple[str | None, ...] = ()) -> go.Figure:
    """Two panels of raw (grey) vs aligned (blue) bars with chance marked: batch mixing
    (classifier accuracy; should fall towards chance) and biology retained (should hold or rise).
    ``captions``: what the numbers were computed on when it was a sample (`figures.captions`)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.28,
                        subplot_titles=("Batch mixing: accuracy (lower = better mixed)", "Biology retained (higher = better)"))
    for c, group in enumerate(("mixing", "biology"), start=1):
        sub = summary[summary["group"] == group]
        for space, colour, name in (("raw", "#999999", "raw"), ("aligned", "#0072B2", aligned_label)):
            fig.add_trace(go.Bar(y=sub["label"], x=sub[space], orientation="h", name=name, marker_color=colour,
                                 legendgroup=space, showlegend=c == 1, hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>",
                                 text=[fmt_value(v, ".2f") for v in sub[space]], textposition="outside"), row=1, col=c)
        ch = sub[np.isfinite(sub["chance"].to_numpy(dtype=float))]
        if len(ch):
            fig.add_trace(go.Scatter(y=ch["label"], x=ch["chance"], mode="markers", name="chance",
                                     marker={"symbol": "line-ns", "size": 22, "line": {"width": 3, "color": "#D55E00"}},
                                     legendgroup="chance", showlegend=c == 1,
                                     hovertemplate="chance: %{x:.3f}<extra></extra>"), row=1, col=c)
        fig.update_xaxes(range=[0, 1.15], title_text="accuracy" if group == "mixing" else "score", row=1, col=c)
    lines = [c for c in captions if c]
    fig.update_layout(barmode="group", title=with_caption(title, *lines), height=300 + 14 * len(lines),
                      margin={"l": 10, "r": 10, "t": 70 + 14 * len(lines), "b": 40},
                      legend={"orientation": "h", "y": -0.25}, plot_bgcolor="#FFFFFF")
    if summary.empty:
        fig.add_annotation(text="no batch benchmarks in this store", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig
