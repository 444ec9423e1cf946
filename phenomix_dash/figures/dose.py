"""A compound's dose-response curve: replicate points, the fitted 4PL, its EC50 and interval.

Inputs are the characterise stage's ``dose_points`` (one row per well: concentration_um,
response, plate) and one ``dose_response`` row (precompute/dose_response.DoseFit columns). The
curve is drawn only where the fit produced parameters; the EC50 line and its interval only where
they are finite; flags (no response, poor fit, toxic) go in the title, so an untrusted fit never
looks trusted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from precompute.dose_response import four_pl

from .missing import fmt_value

POINT_COLUMNS = ("concentration_um", "response")


def dose_title(name: str, fit: dict[str, Any] | None) -> str:
    """'<name>: EC50 1.2 µM (0.5-3.1)' plus its flags; 'no fit' when there is none."""
    if fit is None:
        return f"{name}: no dose-response fit (fewer than three doses)"
    ec50 = fit.get("ec50")
    head = (f"{name}: EC50 {fmt_value(ec50)} µM (95% CI {fmt_value(fit.get('ec50_low'))}–{fmt_value(fit.get('ec50_high'))})"
            if np.isfinite(float(ec50 if ec50 is not None else np.nan)) else f"{name}: no EC50")
    flags = str(fit.get("flags") or "")
    return head + (f"<br><sup>⚠ {flags}</sup>" if flags else "<br><sup>fit trusted: no flag</sup>")


def dose_curve_figure(name: str, points: pd.DataFrame, fit: dict[str, Any] | None, *,
                      response_label: str = "distance to controls") -> go.Figure:
    """Replicate points (log dose), the controls' level, the fitted 4PL and the EC50 interval."""
    missing = [c for c in POINT_COLUMNS if c not in points.columns]
    if missing:
        raise ValueError(f"dose points lack columns {missing}; have {list(points.columns)}")
    x = points["concentration_um"].to_numpy(dtype=np.float64)
    y = points["response"].to_numpy(dtype=np.float64)
    ok = np.isfinite(x) & (x > 0) & np.isfinite(y)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x[ok], y=y[ok], mode="markers", name="wells (replicates)",
                             marker=dict(size=8, color="#444444", opacity=0.75),
                             text=points["plate"].astype(str).to_numpy()[ok] if "plate" in points else None,
                             hovertemplate="%{x:.3g} µM<br>" + response_label + " %{y:.3g}<br>%{text}<extra></extra>"))
    if fit is not None and ok.any():
        bottom = float(fit.get("bottom", np.nan))
        if np.isfinite(bottom):
            fig.add_hline(y=bottom, line=dict(color="#999999", dash="dot"), annotation_text="controls (median)",
                          annotation_position="bottom right")
        params = [float(fit.get(k, np.nan)) for k in ("top", "ec50", "hill")]
        if np.isfinite(bottom) and all(np.isfinite(params)):
            top, ec50, hill = params
            grid = np.logspace(np.log10(x[ok].min()) - 0.3, np.log10(x[ok].max()) + 0.3, 200)
            fig.add_trace(go.Scatter(x=grid, y=four_pl(grid, bottom, top, np.log10(ec50), hill), mode="lines",
                                     name="4PL fit", line=dict(color="#d62728", width=2)))
            lo, hi = float(fit.get("ec50_low", np.nan)), float(fit.get("ec50_high", np.nan))
            if np.isfinite(lo) and np.isfinite(hi) and lo > 0:
                fig.add_vrect(x0=lo, x1=hi, fillcolor="#d62728", opacity=0.12, line_width=0)
            fig.add_vline(x=ec50, line=dict(color="#d62728", dash="dash"))
    fig.update_xaxes(type="log", title_text="concentration (µM)")
    fig.update_yaxes(title_text=response_label)
    fig.update_layout(title=dict(text=dose_title(name, fit)), height=360, plot_bgcolor="#FFFFFF",
                      margin=dict(l=10, r=10, t=70, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


DOSE_COLUMNS = ("ec50", "ec50_low", "ec50_high", "dose_flags")


def with_dose_columns(table: pd.DataFrame, fits: pd.DataFrame | None) -> pd.DataFrame:
    """The activity table plus each compound's EC50, its 95% interval and the fit's flags, on the
    compound's pooled row (its per-dose rows and other perturbations: no value). ``fits`` None:
    the run has no dose-response artifacts; the columns are there, every value missing."""
    out = table.copy()
    for c in DOSE_COLUMNS:
        out[c] = np.nan if c != "dose_flags" else None
    if fits is None or fits.empty or out.empty:
        return out
    by_name = fits.set_index(fits["perturbation"].astype(str))
    pooled = (out["perturbation_type"].astype(str) == "compound").to_numpy()
    if "level" in out.columns:
        pooled &= (out["level"].astype(str) != "dose").to_numpy()
    elif "concentration_um" in out.columns:  # a dose entity has its concentration; the pooled one none
        pooled &= pd.to_numeric(out["concentration_um"], errors="coerce").isna().to_numpy()
    names = out["perturbation"].astype(str)
    hit = pooled & names.isin(by_name.index).to_numpy()
    for c in ("ec50", "ec50_low", "ec50_high"):
        out.loc[hit, c] = by_name.loc[names[hit], c].to_numpy(dtype=np.float64)
    flags = by_name.loc[names[hit], "flags"].astype(str).to_numpy()
    out.loc[hit, "dose_flags"] = np.where(flags == "", "none", flags)
    return out
