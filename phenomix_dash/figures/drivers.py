"""The features behind a phenotype: grouped effect bars and the downloadable feature table.

Input is the characterise stage's feature-driver artifacts (precompute/feature_drivers.py,
docs/feature-drivers.md): per feature its name, compartment, kind and channel, and per
perturbation its effect size (mean control-standardised value) and BH q. A group's bar is the
root mean square effect of its features, so a channel with many features does not outrank one
with few by count alone. A pair (two perturbations) is drawn side by side on the same groups.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

GROUPINGS = ("compartment", "kind", "channel")
FEATURE_COLUMNS = ("feature", "compartment", "kind", "channel")
PAIR_COLOURS = ("#1f77b4", "#ff7f0e")


def _check(features: pd.DataFrame, effect: np.ndarray, q: np.ndarray) -> None:
    missing = [c for c in FEATURE_COLUMNS if c not in features.columns]
    if missing:
        raise ValueError(f"feature table lacks columns {missing}; has {list(features.columns)}")
    if np.shape(effect) != (len(features),) or np.shape(q) != (len(features),):
        raise ValueError(f"effect {np.shape(effect)} and q {np.shape(q)} need one value per feature ({len(features)},)")


def group_table(features: pd.DataFrame, effect: np.ndarray, q: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (grouping, group): RMS effect over the features that have one, how many
    features it has, how many have a value and how many move at q < alpha. Names that do not say
    their group are left out of that grouping. RMS effect NaN where no feature has a value."""
    _check(features, effect, q)
    eff = np.asarray(effect, dtype=np.float64)
    sig = np.asarray(q, dtype=np.float64) < alpha
    rows = []
    for by in GROUPINGS:
        labels = features[by].fillna("").astype(str).to_numpy()  # "" = the name does not say: no group, skipped
        for g in pd.unique(labels):
            if not g:
                continue
            m = labels == g
            vals = eff[m][np.isfinite(eff[m])]
            rows.append({"grouping": by, "group": g, "rms_effect": float(np.sqrt(np.mean(vals**2))) if vals.size else np.nan,
                         "n_features": int(m.sum()), "n_measured": int(vals.size), "n_significant": int(sig[m].sum())})
    return pd.DataFrame(rows, columns=["grouping", "group", "rms_effect", "n_features", "n_measured", "n_significant"])


def driver_table(features: pd.DataFrame, effect: np.ndarray, q: np.ndarray) -> pd.DataFrame:
    """Every feature with its group labels, effect size and q, strongest effect first (missing last)."""
    _check(features, effect, q)
    out = features.loc[:, list(FEATURE_COLUMNS)].copy()
    out["effect_size"] = np.asarray(effect, dtype=np.float64)
    out["q_value"] = np.asarray(q, dtype=np.float64)
    # Largest |effect| first; numpy sorts NaN (an unmeasured effect) last, and the table shows it missing.
    order = np.argsort(-np.abs(out["effect_size"].to_numpy()), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def feature_group_figure(groups: dict[str, pd.DataFrame], *, title: str | None = None, alpha: float = 0.05) -> go.Figure:
    """Compartment / kind / channel bars (one subplot each) of one perturbation, or of a matched
    pair side by side. ``groups``: label -> :func:`group_table` frame. Hover says how many of the
    group's features move at q < alpha; a group with no measured feature shows no bar and says so."""
    if not groups:
        raise ValueError("no perturbation to draw feature groups for")
    fig = make_subplots(rows=1, cols=len(GROUPINGS), subplot_titles=[f"by {g}" for g in GROUPINGS],
                        horizontal_spacing=0.12)
    for (label, table), colour in zip(groups.items(), PAIR_COLOURS, strict=False):
        for c, by in enumerate(GROUPINGS, start=1):
            sub = table[table["grouping"] == by]
            hover = [f"<b>{g}</b> ({label})<br>RMS effect " + (f"{e:.2f}" if np.isfinite(e) else "no value")
                     + f"<br>{s} of {n} features at q < {alpha}" + (f" ({m} measured)" if m < n else "")
                     for g, e, s, n, m in zip(sub["group"], sub["rms_effect"], sub["n_significant"],
                                              sub["n_features"], sub["n_measured"], strict=True)]
            fig.add_trace(go.Bar(x=sub["rms_effect"], y=sub["group"], orientation="h", name=label,
                                 marker_color=colour, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
                                 showlegend=c == 1 and len(groups) > 1, legendgroup=label), row=1, col=c)
            fig.update_yaxes(autorange="reversed", row=1, col=c, tickfont=dict(size=10))
            fig.update_xaxes(title_text="RMS effect (control SDs)", row=1, col=c, rangemode="tozero")
    n = max(len(t[t["grouping"] == by]) for t in groups.values() for by in GROUPINGS)
    fig.update_layout(title=dict(text=title) if title else None, barmode="group", plot_bgcolor="#FFFFFF",
                      height=max(260, 24 * n * len(groups) + 120), margin=dict(l=10, r=10, t=70 if title else 40, b=40))
    return fig
