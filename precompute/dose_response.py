"""Dose-response: a four-parameter logistic fit of a compound's phenotype against its dose.

The response is how far each well sits from its plate's negative controls (relate's
``distance_to_controls_aligned``), so the curve reads "how much does this compound change the
cells, as the dose rises". The model, with x the concentration::

    y(x) = bottom + (top - bottom) / (1 + (EC50 / x) ** hill)

- ``bottom`` is fixed at the negative controls' median response: the controls are dose zero, and
  with 4 to 8 doses a free bottom trades off against the EC50. ``top``, ``log10 EC50`` and
  ``hill`` are fitted by least squares on every replicate well (scipy ``curve_fit``, bounded:
  hill 0.3-5, EC50 within two decades of the tested range). With fewer than six doses the Hill
  slope is fixed at 1 (it trades off against the EC50 otherwise, and the interval spans decades).
- The EC50's 95% interval comes from the fit's covariance on log10 EC50 (t quantile on the
  residual degrees of freedom), so it is symmetric in log dose.
- Flags, each with its reason: ``no response`` (a flat line at the controls' level fits as well:
  F-test p > 0.05), ``poor fit`` (R^2 < 0.5, EC50 outside the tested range, or an interval wider
  than two decades), ``toxic`` (a cell count, where the screen has one, below half the controls'
  at the top dose: the distance there may be dying cells rather than the mechanism).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

MIN_DOSES = 3
FREE_HILL_DOSES = 6  # with fewer doses the Hill slope is fixed at 1: four doses cannot pin four parameters


def four_pl(conc: np.ndarray, bottom: float, top: float, log_ec50: float, hill: float) -> np.ndarray:
    """The four-parameter logistic at concentrations ``conc`` (> 0), EC50 given as log10."""
    logx = np.log10(np.asarray(conc, dtype=np.float64))
    return bottom + (top - bottom) / (1.0 + np.power(10.0, (log_ec50 - logx) * hill))


@dataclass(frozen=True)
class DoseFit:
    """One compound's fit; NaN where a figure was not measured (too few doses, failed fit)."""

    n_doses: int
    n_points: int
    bottom: float
    top: float
    ec50: float
    ec50_low: float
    ec50_high: float
    hill: float
    r2: float
    p_flat: float  # F-test of the curve against a flat line at the controls' level
    toxic: bool | None  # None: the screen has no cell count
    flags: str  # ';'-joined reasons, '' when the fit is trusted

    def as_dict(self) -> dict:
        return asdict(self)


def _unfitted(n_doses: int, n_points: int, bottom: float, reason: str, toxic: bool | None) -> DoseFit:
    nan = float("nan")
    return DoseFit(n_doses, n_points, bottom, nan, nan, nan, nan, nan, nan, nan, toxic, reason)


def fit_dose_response(
    conc: np.ndarray,
    response: np.ndarray,
    control_response: np.ndarray,
    *,
    cell_count: np.ndarray | None = None,
    control_cell_count: np.ndarray | None = None,
) -> DoseFit:
    """Fit one compound: ``conc`` and ``response`` per well (replicates as separate points),
    ``control_response`` the same measure on its plates' negative controls."""
    conc = np.asarray(conc, dtype=np.float64)
    y = np.asarray(response, dtype=np.float64)
    ok = np.isfinite(conc) & (conc > 0) & np.isfinite(y)
    conc, y = conc[ok], y[ok]
    ctrl = np.asarray(control_response, dtype=np.float64)
    ctrl = ctrl[np.isfinite(ctrl)]
    if ctrl.size == 0:
        raise ValueError("dose-response needs the negative controls' response: none is finite")
    bottom = float(np.median(ctrl))
    doses = np.unique(conc)
    toxic = _toxic(conc, cell_count, control_cell_count, ok)
    if doses.size < MIN_DOSES:
        return _unfitted(int(doses.size), int(y.size), bottom, f"fewer than {MIN_DOSES} doses", toxic)
    lo, hi = np.log10(doses[0]), np.log10(doses[-1])
    span = float(np.max(y) - bottom) if np.max(y) > bottom else float(np.std(y) + 1e-9)

    free_hill = doses.size >= FREE_HILL_DOSES

    def model(x, top, log_ec50, *hill):
        return four_pl(x, bottom, top, log_ec50, hill[0] if free_hill else 1.0)

    top0 = float(np.mean(y[conc == doses[-1]]))
    p0, low_b, high_b = [top0, (lo + hi) / 2], [bottom - 4 * span, lo - 2], [bottom + 4 * span, hi + 2]
    if free_hill:
        p0, low_b, high_b = p0 + [1.0], low_b + [0.3], high_b + [5.0]
    p0 = np.clip(p0, np.add(low_b, 1e-9), np.subtract(high_b, 1e-9))  # the top dose's mean may lie outside
    try:
        params, cov = optimize.curve_fit(model, conc, y, p0=p0, bounds=(low_b, high_b), maxfev=20000)
    except (RuntimeError, ValueError) as err:
        return _unfitted(int(doses.size), int(y.size), bottom, f"fit failed: {err}", toxic)
    top, log_ec50 = float(params[0]), float(params[1])
    hill = float(params[2]) if free_hill else 1.0
    resid = y - model(conc, *params)
    ss_res = float(resid @ resid)
    flat = y - bottom
    ss_flat = float(flat @ flat)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    dof = y.size - len(params)
    if dof > 0 and ss_res > 0:
        f = ((ss_flat - ss_res) / len(params)) / (ss_res / dof)
        p_flat = float(stats.f.sf(f, len(params), dof))
        se = float(np.sqrt(cov[1, 1])) if np.isfinite(cov[1, 1]) else float("inf")
        half = stats.t.ppf(0.975, dof) * se
    else:
        p_flat, half = float("nan"), float("inf")
    flags = []
    if not p_flat <= 0.05:
        flags.append("no response")
    if not r2 >= 0.5:
        flags.append("poor fit: R2 < 0.5")
    if not lo <= log_ec50 <= hi:
        flags.append("poor fit: EC50 outside the tested doses")
    if not half <= 1.0:
        flags.append("poor fit: EC50 interval wider than two decades")
    if toxic:
        flags.append("toxic at the top dose")
    with np.errstate(over="ignore"):  # an unbounded interval is (0, inf), said as such
        low, high = float(np.power(10.0, log_ec50 - half)), float(np.power(10.0, log_ec50 + half))
    return DoseFit(int(doses.size), int(y.size), bottom, top, 10.0**log_ec50, low, high, hill, r2, p_flat, toxic,
                   "; ".join(flags))


def _toxic(conc, cell_count, control_cell_count, ok) -> bool | None:
    if cell_count is None or control_cell_count is None:
        return None
    counts = np.asarray(cell_count, dtype=np.float64)[ok]
    ctrl = np.asarray(control_cell_count, dtype=np.float64)
    ctrl = ctrl[np.isfinite(ctrl)]
    top = counts[conc == conc.max()] if conc.size else np.empty(0)
    top = top[np.isfinite(top)]
    if ctrl.size == 0 or top.size == 0:
        return None
    return bool(np.median(top) < 0.5 * np.median(ctrl))


CELL_COUNT_COLUMNS = ("cell_count", "Metadata_Count_Cells", "Cells_Count", "Count_Cells")


def dose_response_table(wells: pd.DataFrame, response: np.ndarray, is_control: np.ndarray) -> pd.DataFrame:
    """One row per compound with ``MIN_DOSES`` or more doses: its fit (``DoseFit`` columns).

    ``response`` is per well (row order of ``wells``); each compound is compared with the controls
    of the plates its wells are on. A cell-count column, when the wells table has one, gives the
    toxicity flag.
    """
    ctrl = np.asarray(is_control, dtype=bool)
    y = np.asarray(response, dtype=np.float64)
    if y.shape != (len(wells),):
        raise ValueError(f"response has shape {y.shape}; need one value per well ({len(wells)},)")
    count_col = next((c for c in CELL_COUNT_COLUMNS if c in wells.columns), None)
    counts = pd.to_numeric(wells[count_col], errors="coerce").to_numpy() if count_col else None
    conc = pd.to_numeric(wells.get("concentration_um", pd.Series(np.nan, index=wells.index)), errors="coerce").to_numpy()
    is_cpd = (wells["perturbation_type"].astype(str) == "compound").to_numpy() & np.isfinite(conc)
    # Each compound's plates' controls from a per-plate list, not a string isin over every well per
    # compound: that was 0.3 s x thousands of compounds (over 20 minutes) at a million wells.
    plate_code, _ = pd.factorize(wells["plate"].astype(str), sort=True)
    all_ctrl = np.flatnonzero(ctrl)
    ctrl_of_plate = pd.Series(all_ctrl).groupby(plate_code[all_ctrl]).apply(lambda r: r.to_numpy()).to_dict()
    rows = []
    for name, idx in pd.Series(np.flatnonzero(is_cpd)).groupby(wells["perturbation"].astype(str).to_numpy()[is_cpd]):
        idx = idx.to_numpy()
        if np.unique(conc[idx]).size < MIN_DOSES:
            continue
        found = [ctrl_of_plate[p] for p in np.unique(plate_code[idx]) if p in ctrl_of_plate]
        ctrl_rows = np.sort(np.concatenate(found)) if found else all_ctrl  # same rows, in well order
        fit = fit_dose_response(conc[idx], y[idx], y[ctrl_rows],
                                cell_count=None if counts is None else counts[idx],
                                control_cell_count=None if counts is None else counts[ctrl_rows])
        rows.append({"perturbation": name, **fit.as_dict()})
    columns = ["perturbation", *DoseFit.__dataclass_fields__]
    return pd.DataFrame(rows, columns=columns)
