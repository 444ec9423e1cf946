"""Dose-response fits (precompute/dose_response.py): known curves are recovered, flat ones are
flagged, and a compound with too few doses gets no invented EC50."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.dose_response import dose_response_table, fit_dose_response, four_pl

DOSES = np.array([0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0])


def _wells(ec50: float, hill: float, noise: float, seed: int, doses=DOSES, reps: int = 3):
    rng = np.random.default_rng(seed)
    conc = np.repeat(doses, reps)
    y = four_pl(conc, 1.0, 4.0, np.log10(ec50), hill) + rng.normal(0, noise, conc.size)
    ctrl = 1.0 + rng.normal(0, noise, 24)
    return conc, y, ctrl


@pytest.mark.parametrize("ec50,hill", [(0.05, 1.0), (0.5, 1.5), (2.0, 0.8)])
def test_known_curve_is_recovered_with_its_interval(ec50, hill):
    conc, y, ctrl = _wells(ec50, hill, noise=0.15, seed=1)
    fit = fit_dose_response(conc, y, ctrl)
    assert fit.flags == ""
    assert abs(np.log10(fit.ec50) - np.log10(ec50)) < 0.15
    assert fit.ec50_low < ec50 < fit.ec50_high
    assert fit.r2 > 0.9 and fit.p_flat < 1e-6


def test_flat_response_is_flagged_not_fitted_into_a_potency():
    conc, _, ctrl = _wells(1.0, 1.0, noise=0.15, seed=2)
    y = 1.0 + np.random.default_rng(3).normal(0, 0.15, conc.size)
    fit = fit_dose_response(conc, y, ctrl)
    assert "no response" in fit.flags


def test_two_doses_give_no_ec50():
    conc, y, ctrl = _wells(1.0, 1.0, noise=0.1, seed=4, doses=np.array([0.1, 1.0]))
    fit = fit_dose_response(conc, y, ctrl)
    assert np.isnan(fit.ec50) and "fewer than 3 doses" in fit.flags


def test_toxicity_flag_needs_a_cell_count_and_reads_the_top_dose():
    conc, y, ctrl = _wells(0.3, 1.0, noise=0.1, seed=5)
    counts = np.where(conc >= 10.0, 20.0, 100.0)
    assert fit_dose_response(conc, y, ctrl).toxic is None
    fit = fit_dose_response(conc, y, ctrl, cell_count=counts, control_cell_count=np.full(24, 100.0))
    assert fit.toxic is True and "toxic at the top dose" in fit.flags


def test_table_fits_each_compound_against_its_plates_controls():
    rows, resp = [], []
    for name, ec50 in (("A", 0.1), ("B", 3.0)):
        conc, y, _ = _wells(ec50, 1.0, noise=0.1, seed=6)
        rows += [{"perturbation_type": "compound", "perturbation": name, "concentration_um": c, "plate": "P1"} for c in conc]
        resp += list(y)
    rows += [{"perturbation_type": "compound", "perturbation": "C", "concentration_um": 1.0, "plate": "P1"}] * 3
    resp += [2.0, 2.1, 1.9]
    rows += [{"perturbation_type": "negative_control", "perturbation": "DMSO", "concentration_um": np.nan, "plate": "P1"}] * 16
    resp += list(1.0 + np.random.default_rng(7).normal(0, 0.1, 16))
    wells = pd.DataFrame(rows)
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    table = dose_response_table(wells, np.array(resp), ctrl).set_index("perturbation")
    assert list(table.index) == ["A", "B"]  # C has one dose: no curve
    assert table.loc["A", "ec50"] < table.loc["B", "ec50"]
    with pytest.raises(ValueError, match="one value per well"):
        dose_response_table(wells, np.array(resp[:-1]), ctrl)


def _table_with_isin(wells: pd.DataFrame, response: np.ndarray, ctrl: np.ndarray) -> pd.DataFrame:
    """The first implementation (each compound's plates found by a string isin over every well)."""
    conc = wells["concentration_um"].to_numpy(dtype=float)
    plates = wells["plate"].astype(str).to_numpy()
    out = []
    for name in sorted(set(wells.loc[wells["perturbation_type"] == "compound", "perturbation"])):
        idx = np.flatnonzero(((wells["perturbation"] == name) & np.isfinite(conc)).to_numpy())
        if np.unique(conc[idx]).size < 4:
            continue
        rows = np.flatnonzero(ctrl & np.isin(plates, np.unique(plates[idx])))
        rows = rows if rows.size else np.flatnonzero(ctrl)
        out.append({"perturbation": name, **fit_dose_response(conc[idx], response[idx], response[rows]).as_dict()})
    return pd.DataFrame(out)


def test_each_compound_is_compared_with_the_controls_of_its_own_plates():
    rng = np.random.default_rng(3)
    rows, resp = [], []
    for plate, shift in (("P1", 0.0), ("P2", 0.8), ("P3", -0.5)):  # controls differ by plate
        rows += [{"perturbation_type": "negative_control", "perturbation": "DMSO", "concentration_um": np.nan,
                  "plate": plate}] * 12
        resp += list(1.0 + shift + rng.normal(0, 0.1, 12))
    for name, plates, ec50 in (("A", ("P1", "P2"), 0.1), ("B", ("P3",), 3.0), ("D", ("P4",), 1.0)):  # P4: no controls
        conc, y, _ = _wells(ec50, 1.0, noise=0.1, seed=len(resp))
        rows += [{"perturbation_type": "compound", "perturbation": name, "concentration_um": c,
                  "plate": plates[i % len(plates)]} for i, c in enumerate(conc)]
        resp += list(y)
    wells = pd.DataFrame(rows)
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    got = dose_response_table(wells, np.array(resp), ctrl)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), _table_with_isin(wells, np.array(resp), ctrl))
