"""Which stains a perturbation's phenotype lives in: one bar per channel from the
channel_attribution stage (precompute/channel_attribution.py, docs/channel-attribution.md).

A bar is how much further the phenotype moves, when the CA-MAE is shown every channel but that
one, than groups of as many control wells move without it, in standard deviations of theirs (0:
no more than noise; leaving some channels out moves every well); the longest bar is the channel
the phenotype depends on most. The hover also gives the move as a fraction of the phenotype. The stage
runs on a sample, so the figure always says what was sampled (both counts), and distinguishes a
perturbation that was not sampled, one without a phenotype to attribute, and a channel with no
value (no bar, "no value" on hover), never drawing any of them as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from .captions import with_caption
from .missing import fmt_value, is_true
from .palette import NO_VALUE, NO_VALUE_COLOUR, OKABE_ITO

TOP_COLOUR = OKABE_ITO[5]  # vermillion: the channel the phenotype depends on most
OTHER_COLOUR = OKABE_ITO[0]


def sample_caption(sample: Mapping[str, Any] | None) -> str:
    """The stage's own caption of its sample ('sampled: 24 of 307 perturbations, ...')."""
    if not sample:
        return "sampled: what was sampled is not recorded (rerun the channel_attribution stage)"
    return str(sample.get("caption") or "sampled: counts not recorded")


def _message(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=13, color="#555555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def channel_attribution_figure(table_row: Mapping[str, Any] | None, options: Mapping[str, Any]) -> go.Figure:
    """Bars per channel of one perturbation's row of the stage's table (None: not sampled).

    ``options``: ``channels`` (the screen's, in order; required), ``sample`` (the stage manifest's
    ``info["sample"]``), ``title`` (optional), ``height`` (optional, px)."""
    channels: Sequence[str] = list(options.get("channels") or [])
    if not channels:
        raise ValueError(f"channel_attribution_figure needs options['channels']; got {dict(options)!r}")
    title = with_caption(options.get("title") or "Channel attribution (leave one channel out)",
                         sample_caption(options.get("sample")))
    fig = go.Figure()
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=int(options.get("height", 300)),
                      margin=dict(l=70, r=20, t=70, b=45), template="plotly_white")
    if table_row is None:
        return _message(fig, "not among the sampled perturbations: no channel attribution computed")
    if not is_true(table_row.get("has_phenotype")):
        return _message(fig, "no phenotype beyond the controls' noise: nothing to attribute")
    values = [table_row.get(c) for c in channels]
    shown = [float(v) if fmt_value(v) != NO_VALUE else None for v in values]
    top = str(table_row.get("top_channel") or "")
    colours = [TOP_COLOUR if c == top else (OTHER_COLOUR if v is not None else NO_VALUE_COLOUR)
               for c, v in zip(channels, shown, strict=True)]
    moved = [fmt_value(table_row.get(f"shift_{c}")) for c in channels]
    hover = [f"<b>without {c}</b><br>" + (f"{v:+.1f} sd beyond control groups' move<br>phenotype moves by "
                                           + (f"{float(table_row.get(f'shift_{c}')):.0%} of its size"
                                              if m != NO_VALUE else NO_VALUE) if v is not None else NO_VALUE)
             for c, v, m in zip(channels, shown, moved, strict=True)]
    fig.add_trace(go.Bar(x=shown, y=list(channels), orientation="h", marker_color=colours, hovertext=hover,
                         hovertemplate="%{hovertext}<extra></extra>", showlegend=False))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="move without the channel beyond control groups' (sd)", zeroline=True)
    detail = (f"{int(table_row.get('n_wells', 0) or 0)} sampled wells; phenotype size "
              f"{fmt_value(table_row.get('phenotype'))} (controls' {fmt_value(table_row.get('null'))})")
    fig.update_layout(title=dict(text=with_caption(title, detail)))
    return fig
