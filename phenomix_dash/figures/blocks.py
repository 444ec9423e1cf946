"""Which encoder block of the MAE embeds best: scores per block (input: the embed stage's
``block_scores`` table, written when the run embedded with ``--block best``).

Kenyon-Dean et al. 2024 ("ViTally Consistent") found intermediate blocks of a ViT MAE carry more
biology than the last; this figure shows the same question on the run's own screen: relationship
recall per annotation source (after the alignment the map uses) and replicate-retrieval mAP, block
by block, with the chosen block marked and pixel statistics' recall as the baseline to beat.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .benchmarks import RECALL_RANDOM, SOURCE_LABELS
from .palette import OKABE_ITO


def recall_columns(scores: pd.DataFrame) -> list[str]:
    """The per-source recall columns of a block_scores table (``recall_<source>``), in table order."""
    return [c for c in scores.columns if c.startswith("recall_") and c != "recall_mean"]


def block_scores_figure(scores: pd.DataFrame, chosen: int | None = None,
                        baselines: dict[str, float] | None = None, baseline_label: str = "pixel statistics") -> go.Figure:
    """Recall per source (left) and replicate mAP (right) against the encoder block (1 = first).

    ``baselines``: source -> recall of the baseline embedder in the same space, drawn as dotted
    lines in the source's colour; ``chosen``: the block the run kept, marked on both panels.
    An empty table gives an empty figure that says so (nothing is invented).
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], horizontal_spacing=0.12,
                        subplot_titles=("Relationship recall per block", "Replicate retrieval mAP per block"))
    if scores is None or scores.empty or "block" not in scores.columns:
        fig.add_annotation(text="no per-block scores in this run (embed with --block best)", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
        return fig
    s = scores.sort_values("block")
    blocks = s["block"].astype(int).tolist()
    for i, col in enumerate(recall_columns(s)):
        source = col.removeprefix("recall_")
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        label = SOURCE_LABELS.get(source, source)
        fig.add_trace(go.Scatter(x=blocks, y=s[col], mode="lines+markers", name=label, line=dict(color=colour),
                                 hovertemplate=f"{label}<br>block %{{x}}: recall %{{y:.3f}}<extra></extra>"), 1, 1)
        if baselines and source in baselines and pd.notna(baselines[source]):
            fig.add_trace(go.Scatter(x=[blocks[0], blocks[-1]], y=[baselines[source]] * 2, mode="lines",
                                     name=f"{label}: {baseline_label}", line=dict(color=colour, dash="dot"),
                                     hovertemplate=f"{baseline_label}, {label}: %{{y:.3f}}<extra></extra>"), 1, 1)
    if "recall_mean" in s.columns and s["recall_mean"].notna().any():
        fig.add_trace(go.Scatter(x=blocks, y=s["recall_mean"], mode="lines+markers", name="mean over sources",
                                 line=dict(color="black", dash="dash"),
                                 hovertemplate="mean recall<br>block %{x}: %{y:.3f}<extra></extra>"), 1, 1)
    fig.add_hline(y=RECALL_RANDOM, line=dict(color="grey", width=1, dash="dot"), row=1, col=1,
                  annotation_text="random", annotation_position="bottom right")
    if "replicate_map" in s.columns:
        fig.add_trace(go.Scatter(x=blocks, y=s["replicate_map"], mode="lines+markers", name="replicate mAP",
                                 line=dict(color="grey"), showlegend=False,
                                 hovertemplate="block %{x}: mAP %{y:.3f}<extra></extra>"), 1, 2)
    if chosen is not None:
        for col in (1, 2):
            fig.add_vline(x=chosen, line=dict(color="crimson", width=1), row=1, col=col)
        fig.add_annotation(text=f"chosen: block {chosen}", x=chosen, y=1.0, xref="x", yref="paper", showarrow=False,
                           yanchor="bottom", font=dict(color="crimson"))
    fig.update_xaxes(title_text="encoder block (1 = first)", tickmode="array", tickvals=blocks)
    fig.update_yaxes(title_text="recall (5th/95th percentile tails)", row=1, col=1)
    fig.update_yaxes(title_text="mAP", row=1, col=2)
    fig.update_layout(height=380, margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.25))
    return fig
