"""Figure builders for the characterise stage: feature groups, dose curve, neighbour q columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures.dose import dose_curve_figure, dose_title
from phenomix_dash.figures.drivers import driver_table, feature_group_figure, group_table
from phenomix_dash.figures.significance import CALL_MARK, significant_only, with_significance
from precompute.dose_response import four_pl

FEATURES = pd.DataFrame({"feature": ["DNA_mean", "DNA_std", "ER_mean", "Mito_grad"],
                         "compartment": ["Image"] * 4, "kind": ["Intensity", "Intensity", "Intensity", "Texture"],
                         "channel": ["DNA", "DNA", "ER", "Mito"]})


def test_group_effect_is_root_mean_square_and_counts_significant_features():
    t = group_table(FEATURES, np.array([3.0, -4.0, 1.0, np.nan]), np.array([0.01, 0.001, 0.5, np.nan]))
    dna = t[(t["grouping"] == "channel") & (t["group"] == "DNA")].iloc[0]
    assert dna["rms_effect"] == pytest.approx(np.sqrt(12.5)) and dna["n_significant"] == 2
    mito = t[(t["grouping"] == "channel") & (t["group"] == "Mito")].iloc[0]
    assert np.isnan(mito["rms_effect"]) and mito["n_measured"] == 0, "no measured feature: missing, not 0"
    kind = t[(t["grouping"] == "kind") & (t["group"] == "Intensity")].iloc[0]
    assert kind["n_features"] == 3


def test_feature_group_figure_draws_a_pair_side_by_side():
    a = group_table(FEATURES, np.array([3.0, -4.0, 1.0, 0.5]), np.array([0.01, 0.001, 0.5, 0.9]))
    b = group_table(FEATURES, np.array([0.1, 0.2, 5.0, 0.5]), np.array([0.9, 0.9, 0.001, 0.9]))
    fig = feature_group_figure({"A": a, "B": b})
    assert len(fig.data) == 6 and {t.name for t in fig.data} == {"A", "B"}
    dna_a = next(t for t in fig.data if t.name == "A" and "DNA" in list(t.y))
    assert "2 of 2 features at q < 0.05" in dna_a.hovertext[list(dna_a.y).index("DNA")]
    with pytest.raises(ValueError, match="one value per feature"):
        group_table(FEATURES, np.zeros(3), np.zeros(4))


def test_driver_table_strongest_first_missing_last():
    t = driver_table(FEATURES, np.array([1.0, -4.0, np.nan, 2.0]), np.array([0.1, 0.01, np.nan, 0.05]))
    assert t["feature"].tolist() == ["DNA_std", "Mito_grad", "DNA_mean", "ER_mean"]


def test_dose_curve_has_points_fit_and_ec50_and_says_its_flags():
    conc = np.repeat([0.1, 0.3, 1.0, 3.0, 10.0, 30.0], 2)
    pts = pd.DataFrame({"concentration_um": conc, "response": four_pl(conc, 1.0, 5.0, 0.0, 1.0), "plate": "P1"})
    fit = {"bottom": 1.0, "top": 5.0, "ec50": 1.0, "ec50_low": 0.5, "ec50_high": 2.0, "hill": 1.0, "flags": ""}
    fig = dose_curve_figure("cpd", pts, fit)
    assert [t.name for t in fig.data] == ["wells (replicates)", "4PL fit"]
    assert len(fig.data[0].x) == 12 and "EC50 1 µM" in fig.layout.title.text
    flagged = dose_curve_figure("cpd", pts, {**fit, "top": np.nan, "ec50": np.nan, "flags": "fit failed: x"})
    assert [t.name for t in flagged.data] == ["wells (replicates)"], "no parameters: no curve drawn"
    assert "no EC50" in flagged.layout.title.text and "fit failed" in flagged.layout.title.text
    assert "fewer than three doses" in dose_title("cpd", None)


def test_neighbour_significance_marks_calls_and_says_not_tested():
    frame = pd.DataFrame({"rank": [1, 2, 3], "pert_id": ["a", "b", "c"]})
    out = with_significance(frame, np.array([1e-6, 0.2, np.nan]), np.array([1e-4, 0.4, np.nan]))
    assert out["match"].tolist() == [CALL_MARK, "", "not tested"]
    assert significant_only(out)["pert_id"].tolist() == ["a"]
    assert with_significance(frame, None, None)["match"].eq("not computed").all()


def test_activity_rows_get_their_compounds_ec50_and_flags_only_on_the_pooled_row():
    from phenomix_dash.figures.dose import with_dose_columns

    table = pd.DataFrame({"pert_id": ["compound:A", "compound:A@1.0", "crispr:G", "compound:B"],
                          "perturbation": ["A", "A", "G", "B"],
                          "perturbation_type": ["compound", "compound", "crispr", "compound"],
                          "concentration_um": [np.nan, 1.0, np.nan, np.nan]})
    fits = pd.DataFrame({"perturbation": ["A", "B"], "ec50": [2.0, np.nan], "ec50_low": [1.0, np.nan],
                         "ec50_high": [4.0, np.nan], "flags": ["", "fewer than 3 doses"]})
    out = with_dose_columns(table, fits)
    assert out["ec50"].iloc[0] == 2.0 and out["dose_flags"].iloc[0] == "none"
    assert out[["ec50", "ec50_low"]].iloc[1:3].isna().all().all() and out["dose_flags"].iloc[1] is None
    assert np.isnan(out["ec50"].iloc[3]) and out["dose_flags"].iloc[3] == "fewer than 3 doses"
    assert with_dose_columns(table, None)["ec50"].isna().all()


def test_calibration_table_reads_the_tracked_results_file():
    import json
    from pathlib import Path

    from phenomix_dash.figures.significance import calibration_table

    result = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/match_calibration.json").read_text())
    t = calibration_table(result)
    assert len(t) == len(result["embedders"]) + len(result.get("real") or [])
    assert {"power complex", "false fraction (all)"} <= set(t.columns)
    mae = t[t["embedder"] == "mae"].iloc[0]
    src = next(r for r in result["embedders"] if r["embedder"] == "mae")
    assert mae["null p<0.05 pair"] == src["null_pair"]["fraction_below_0.05"]
    assert calibration_table({}).empty
