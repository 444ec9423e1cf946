"""Benchmark figures: how good is each embedder's map (input: the evaluate stage's tables).

- relationship recall per embedder and annotation source (Kraus et al. 2024, Table 3 layout:
  rows random / pixel statistics / MAE, columns sources);
- replicate retrieval mAP per embedder and space (raw, each alignment);
- batch metrics: how well batch or plate row is predicted, before and after alignment;
- compound-gene benchmark: per-compound ROC-AUC / AP of |cosine| ranking known targets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from precompute.embed.registry import embedder_labels

from .missing import fmt_value
from .palette import OKABE_ITO

# The embedder registry's labels and order (random, pixel statistics, MAE, ..., precomputed features).
EMBEDDER_LABELS = embedder_labels()
EMBEDDER_ORDER = tuple(EMBEDDER_LABELS)
SPACE_LABELS = {"raw": "raw (before alignment)", "centerscale": "center-scale per batch", "tvn": "TVN", "spherize": "sphering"}
SOURCE_LABELS = {"synthetic_complex": "same complex", "synthetic_pathway": "same pathway",
                 "synthetic_opposing": "opposing pathways", "HuMAP": "hu.MAP"}
RECALL_RANDOM = 0.10  # 5th/95th percentile thresholds: a random map recalls 10% of pairs


def embedder_label(name: str) -> str:
    return EMBEDDER_LABELS.get(name, name)


def _embedder_order(names) -> list[str]:
    present = list(dict.fromkeys(str(n) for n in names))
    return [e for e in EMBEDDER_ORDER if e in present] + [e for e in present if e not in EMBEDDER_ORDER]


def _require(df: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} table lacks columns {missing}; has {list(df.columns)}")


def recall_matrix(recall: pd.DataFrame, space: str) -> pd.DataFrame:
    """Table 3 layout: index = embedder label (random, pixel statistics, MAE...), columns =
    annotation sources, values = recall in the given space; the pair count is in the column name."""
    _require(recall, ("embedder", "space", "source", "recall"), "recall")
    sub = recall[recall["space"] == space]
    if sub.empty:
        raise ValueError(f"no recall rows for space {space!r}; spaces present: {sorted(recall['space'].unique())}")
    m = sub.pivot_table(index="embedder", columns="source", values="recall", aggfunc="first")
    m = m.reindex(_embedder_order(m.index))
    if "n_pairs" in sub.columns:
        n = sub.groupby("source")["n_pairs"].max()
        m.columns = [f"{SOURCE_LABELS.get(c, c)} (n={int(n[c])})" for c in m.columns]
    else:
        m.columns = [SOURCE_LABELS.get(c, c) for c in m.columns]
    m.index = [embedder_label(e) for e in m.index]
    m.index.name = "embedder"
    return m


def recall_figure(matrix: pd.DataFrame, *, baseline: float = RECALL_RANDOM) -> go.Figure:
    """Grouped bars: one group per source, one bar per embedder; dashed line = random expectation."""
    fig = go.Figure()
    for i, (emb, row) in enumerate(matrix.iterrows()):
        fig.add_trace(go.Bar(x=list(matrix.columns), y=row.to_numpy(dtype=float), name=str(emb),
                             marker_color=OKABE_ITO[i % len(OKABE_ITO)],
                             hovertemplate=f"{emb}<br>%{{x}}<br>recall %{{y:.3f}}<extra></extra>"))
    fig.add_hline(y=baseline, line=dict(dash="dash", color="#555555"),
                  annotation_text=f"random expectation {baseline:.2f}", annotation_position="top left")
    top = float(np.nanmax(matrix.to_numpy(dtype=float), initial=0.0))
    fig.update_layout(barmode="group", yaxis=dict(title="relationship recall", range=[0, max(0.3, 1.15 * top)]), height=380,
                      xaxis=dict(title="annotation source"), legend=dict(title=dict(text="embedder")),
                      margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="#FFFFFF")
    return fig


def _space_order(spaces) -> list[str]:
    present = list(dict.fromkeys(str(s) for s in spaces))
    return ["raw"] * ("raw" in present) + [s for s in present if s != "raw"]


def replicate_map_figure(rep: pd.DataFrame, caption: str | None = None) -> go.Figure:
    """Replicate retrieval mAP per embedder (groups) and space (bars: raw, then each alignment).
    ``caption``: what was sampled (`figures.captions.replicate_caption`), shown as the title."""
    _require(rep, ("embedder", "space", "map"), "replicate_map")
    embs = _embedder_order(rep["embedder"])
    fig = go.Figure()
    for i, space in enumerate(_space_order(rep["space"])):
        sub = rep[rep["space"] == space].set_index("embedder").reindex(embs)
        extra = sub["fraction_q05"].to_numpy(dtype=float) if "fraction_q05" in sub else np.full(len(embs), np.nan)
        fig.add_trace(go.Bar(
            x=[embedder_label(e) for e in embs], y=sub["map"].to_numpy(dtype=float), name=SPACE_LABELS.get(space, space),
            marker_color=OKABE_ITO[i % len(OKABE_ITO)], customdata=[fmt_value(v, ".0%") for v in extra],
            hovertemplate="%{x}<br>mAP %{y:.3f}<br>retrieved at q<0.05: %{customdata}<extra>" + space + "</extra>"))
    top = float(np.nanmax(rep["map"].to_numpy(dtype=float), initial=0.0))
    fig.update_layout(barmode="group", yaxis=dict(title="replicate retrieval mAP", range=[0, max(0.3, 1.15 * top)]), height=380,
                      xaxis=dict(title="embedder"), legend=dict(title=dict(text="space")),
                      margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="#FFFFFF")
    return _captioned(fig, caption)


def _captioned(fig: go.Figure, caption: str | None) -> go.Figure:
    if caption:
        fig.update_layout(title={"text": f"<sup>{caption}</sup>", "x": 0.01}, margin={"t": 50})
    return fig


def batch_figure(batch: pd.DataFrame, caption: str | None = None) -> go.Figure:
    """Classifier accuracy predicting each technical label (batch, plate row) from the embedding,
    per embedder and space; a dashed line marks chance. Lower after alignment = batch removed.
    ``caption``: the wells sampled (`figures.captions.batch_caption`), shown as the title."""
    _require(batch, ("embedder", "space", "label", "accuracy"), "batch")
    labels = list(dict.fromkeys(batch["label"].astype(str)))
    names = {"batch": "predicting the batch", "plate_row": "predicting the plate row"}
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=[names.get(lab, f"predicting {lab}") for lab in labels],
                        shared_yaxes=True)
    embs = _embedder_order(batch["embedder"])
    spaces = _space_order(batch["space"])
    for c, lab in enumerate(labels, start=1):
        sub = batch[batch["label"] == lab]
        for i, space in enumerate(spaces):
            s = sub[sub["space"] == space].set_index("embedder").reindex(embs)
            fig.add_trace(go.Bar(x=[embedder_label(e) for e in embs], y=s["accuracy"].to_numpy(dtype=float),
                                 name=SPACE_LABELS.get(space, space), legendgroup=space, showlegend=c == 1,
                                 marker_color=OKABE_ITO[i % len(OKABE_ITO)],
                                 hovertemplate="%{x}<br>accuracy %{y:.3f}<extra>" + space + "</extra>"), row=1, col=c)
        if "chance" in sub.columns and sub["chance"].notna().any():
            fig.add_hline(y=float(sub["chance"].max()), line=dict(dash="dash", color="#555555"), row=1, col=c,
                          annotation_text="chance", annotation_position="top left")
    fig.update_layout(barmode="group", yaxis=dict(title="classifier accuracy", range=[0, 1]), height=380,
                      legend=dict(title=dict(text="space")), margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="#FFFFFF")
    if caption:  # above the subplot titles
        fig.update_layout(title={"text": f"<sup>{caption}</sup>", "x": 0.01}, margin={"t": 70})
    return fig


def compound_gene_figure(cg: pd.DataFrame, metric: str = "roc_auc") -> go.Figure:
    """Per-compound ROC-AUC (or AP) of ranking known targets by |cosine|, one box per embedder,
    each compound a point; a dashed line at 0.5 marks chance for AUC."""
    _require(cg, ("embedder", "compound", metric), "compound_gene")
    fig = go.Figure()
    for i, e in enumerate(_embedder_order(cg["embedder"])):
        sub = cg[cg["embedder"] == e]
        fig.add_trace(go.Box(y=sub[metric].to_numpy(dtype=float), name=embedder_label(e), boxpoints="all",
                             jitter=0.4, pointpos=0, text=sub["compound"].astype(str).tolist(),
                             marker_color=OKABE_ITO[i % len(OKABE_ITO)],
                             hovertemplate="%{text}: %{y:.3f}<extra></extra>"))
    if metric == "roc_auc":
        fig.add_hline(y=0.5, line=dict(dash="dash", color="#555555"), annotation_text="chance",
                      annotation_position="top left")
    title = {"roc_auc": "ROC-AUC per compound", "average_precision": "average precision per compound"}.get(metric, metric)
    fig.update_layout(yaxis=dict(title=title, range=[0, 1.02]), xaxis=dict(title="embedder"), showlegend=False, height=380,
                      margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="#FFFFFF")
    return fig
