"""Match significance in the neighbour tables: a q column and a call mark, and a filter.

p and q come from the characterise stage (precompute/significance.py, docs/significance.md); a
pair that was not tested (a compound and its own doses share wells) has no value and no mark.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .missing import js_number_formatter

ALPHA = 0.05
CALL_MARK = "✔"


def with_significance(frame: pd.DataFrame, p: np.ndarray | None, q: np.ndarray | None, alpha: float = ALPHA) -> pd.DataFrame:
    """The neighbour frame plus ``p``, ``q`` and ``match`` (the call mark where q < alpha, '' where
    not, 'not tested' where the pair was not tested). ``p``/``q`` None: significance was not computed
    for this run ('not computed')."""
    out = frame.copy()
    n = len(out)
    if p is None or q is None:
        out["p"], out["q"], out["match"] = np.nan, np.nan, "not computed"
        return out
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != (n,) or q.shape != (n,):
        raise ValueError(f"p {p.shape} and q {q.shape} need one value per neighbour ({n},)")
    out["p"], out["q"] = p, q
    out["match"] = np.where(~np.isfinite(q), "not tested", np.where(q < alpha, CALL_MARK, ""))
    return out


def significant_only(frame: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """The rows called at q < alpha (rank kept, so gaps show what was dropped)."""
    if "q" not in frame.columns:
        raise ValueError("the neighbour frame has no q column: add it with with_significance first")
    return frame[frame["q"].to_numpy(dtype=np.float64) < alpha]


def significance_columns(alpha: float = ALPHA) -> list[dict]:
    """AG Grid column definitions for q and the call mark (missing shows as 'no value')."""
    return [
        {"field": "q", "width": 90, "flex": 0, "type": "numericColumn", "valueFormatter": js_number_formatter(".2g"),
         "headerTooltip": "Benjamini-Hochberg q of the match over all pairs (docs/significance.md)"},
        {"field": "match", "headerName": "call", "width": 90, "flex": 0,
         "headerTooltip": f"{CALL_MARK} = significant match (q < {alpha}); 'not tested': the pair shares wells"},
        {"field": "p", "hide": True},
    ]


def calibration_table(result: dict) -> pd.DataFrame:
    """One row per embedder of a match_calibration.json result: null uniformity (fraction of
    no-phenotype pairs below p = 0.05, directed test and pair), the false fraction of calls at
    q < 0.05 (all pairs, shown neighbours) and the power on true pairs; then the real screen's
    proxies (null: pairs with DMSO; false: calls with DMSO; power: same-MOA pairs). Missing stays
    missing."""
    rows = []
    for r in result.get("embedders", []):
        power = r.get("power", {})
        rows.append({
            "embedder": r.get("embedder"), "space": r.get("space"),
            "null p<0.05 directed": r.get("null_directed", {}).get("fraction_below_0.05"),
            "null p<0.05 pair": r.get("null_pair", {}).get("fraction_below_0.05"),
            "null pairs": r.get("null_pair", {}).get("n"),
            "calls q<0.05": r.get("fdr_all_pairs", {}).get("n_called"),
            "false fraction (all)": r.get("fdr_all_pairs", {}).get("false_fraction"),
            "false fraction (shown)": r.get("fdr_shown_neighbours", {}).get("false_fraction"),
            **{f"power {k.replace('_', '-')}": v.get("fraction_called") for k, v in power.items()},
        })
    for r in result.get("real") or []:  # no truth there: the proxies, named as such
        proxy = r.get("power_proxy", {})
        rows.append({
            "embedder": f"{r.get('embedder')} (real screen: proxies)", "space": r.get("space"),
            "null p<0.05 pair": r.get("null_dmso_pair", {}).get("fraction_below_0.05"),
            "null pairs": r.get("null_dmso_pair", {}).get("n"), "calls q<0.05": r.get("calls"),
            "false fraction (all)": r.get("dmso_fraction_of_calls"),
            "power same-MOA (proxy)": proxy.get("same_moa", {}).get("fraction_called"),
            "called different-MOA": proxy.get("different_moa", {}).get("fraction_called"),
        })
    return pd.DataFrame(rows)
