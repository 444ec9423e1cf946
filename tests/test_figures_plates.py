"""Plate QC statistics (checked against brute force) and their figures."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures.plates_qc import (
    centroid_similarity,
    plate_control_centroids,
    plate_drift,
    plate_drift_figure,
    plate_heatmap_figure,
    plate_similarity_figure,
    pooled_plate_grid,
    position_similarity,
    position_similarity_figure,
    row_col_profile_figure,
    row_col_profiles,
)


def _plates(n_plates: int = 4, wells_per_plate: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_plates):
        pos = rng.choice(96, wells_per_plate, replace=False)
        for k in pos:
            r, c = k // 12 + 1, k % 12 + 1
            rows.append({"plate": f"P{p + 1}", "batch": f"B{p // 2 + 1}", "row": r, "col": c,
                         "well": f"{'ABCDEFGH'[r - 1]}{c:02d}",
                         "perturbation_type": "negative_control" if rng.random() < 0.6 else "crispr"})
    return pd.DataFrame(rows)


def test_pooled_grid_is_the_median_over_plates_at_each_position():
    w = pd.DataFrame({"row": [1, 1, 1, 2], "col": [1, 1, 1, 3], "plate": ["a", "b", "c", "a"]})
    grid = pooled_plate_grid(w, np.array([1.0, 5.0, 2.0, 7.0]), plate_format=96)
    assert grid.shape == (8, 12)
    assert grid[0, 0] == 2.0 and grid[1, 2] == 7.0
    assert np.isnan(grid[7, 11])


def test_row_and_column_profiles():
    w = pd.DataFrame({"row": [1, 1, 1, 1, 2], "col": [1, 2, 3, 4, 1]})
    rows, cols = row_col_profiles(w, np.array([1.0, 2.0, 3.0, 4.0, 10.0]))
    r1 = rows.set_index("position").loc[1]
    assert r1["median"] == 2.5 and r1["q25"] == 1.75 and r1["q75"] == 3.25 and r1["n"] == 4
    assert cols.set_index("position").loc[1, "median"] == 5.5


def test_position_similarity_matches_brute_force():
    w = _plates(n_plates=3, wells_per_plate=30)
    emb = np.random.default_rng(3).normal(size=(len(w), 8))
    got = position_similarity(emb, w["plate"].to_numpy(), w["well"].to_numpy())
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    same, diff = [], []
    for i, j in itertools.combinations(range(len(w)), 2):
        if w["plate"].iloc[i] == w["plate"].iloc[j]:
            continue
        (same if w["well"].iloc[i] == w["well"].iloc[j] else diff).append(u[i] @ u[j])
    assert got["n_same_pairs"] == len(same) and got["n_different_pairs"] == len(diff)
    assert got["same_position"] == pytest.approx(np.mean(same))
    assert got["different_position"] == pytest.approx(np.mean(diff))


def test_position_similarity_sees_a_planted_position_effect():
    w = _plates(n_plates=4, wells_per_plate=40, seed=1)
    rng = np.random.default_rng(0)
    offsets = {k: rng.normal(size=16) * 3 for k in w["well"].unique()}
    emb = rng.normal(size=(len(w), 16)) + np.stack([offsets[k] for k in w["well"]])
    s = position_similarity(emb, w["plate"].to_numpy(), w["well"].to_numpy())
    assert s["same_position"] > s["different_position"] + 0.3


def test_centroids_similarity_and_drift_flag_a_drifting_plate():
    rng = np.random.default_rng(4)
    w = _plates(n_plates=8, wells_per_plate=40, seed=2)
    emb = rng.normal(size=(len(w), 6))
    emb[(w["plate"] == "P5").to_numpy()] += 25.0  # plate P5's controls drift
    info, cent = plate_control_centroids(emb, w)
    assert info["plate"].tolist() == [f"P{i}" for i in range(1, 9)]  # ordered by batch, then plate
    ctrl = (w["perturbation_type"] == "negative_control").to_numpy()
    p1 = (w["plate"] == "P1").to_numpy() & ctrl
    np.testing.assert_allclose(cent[0], emb[p1].mean(axis=0))
    assert info["n_controls"].iloc[0] == p1.sum()
    sim = centroid_similarity(cent)
    np.testing.assert_allclose(np.diag(sim), 1.0)
    np.testing.assert_allclose(sim, sim.T)
    drift = plate_drift(info, cent)
    assert drift.loc[drift["outlier"], "plate"].tolist() == ["P5"]
    assert drift["robust_z"].max() > 3


def test_drift_with_two_plates_flags_nothing():
    info = pd.DataFrame({"plate": ["a", "b"], "batch": ["x", "y"], "n_controls": [3, 3]})
    d = plate_drift(info, np.array([[0.0, 0.0], [5.0, 5.0]]))
    assert not d["outlier"].any() and d["robust_z"].isna().all()  # undefined, not 0
    assert "no value" in plate_drift_figure(d).layout.annotations[-1].text


def test_plate_heatmap_has_plate_axes_and_a_symmetric_scale_for_signed_metrics():
    grid = np.arange(384, dtype=float).reshape(16, 24) - 100
    fig = plate_heatmap_figure(grid, title="pc1", colorbar_title="pc1", diverging=True, plate_format=384)
    h = fig.data[0]
    assert h.type == "heatmap" and h.zmid == 0 and h.colorscale[0][1] == "#0072B2"
    assert fig.layout.yaxis.ticktext[:2] == ("A", "B") and fig.layout.xaxis.title.text == "column"
    assert fig.layout.yaxis.autorange == "reversed"
    seq = plate_heatmap_figure(np.zeros((8, 12)), title="d", colorbar_title="d", plate_format=96)
    assert seq.data[0].zmid is None
    with pytest.raises(ValueError, match="does not match a 384-well plate"):
        plate_heatmap_figure(np.zeros((8, 12)), title="x", colorbar_title="x", plate_format=384)


def test_profile_figure_draws_median_and_iqr_per_row_and_column():
    w = _plates()
    rows, cols = row_col_profiles(w, np.random.default_rng(0).random(len(w)))
    fig = row_col_profile_figure(rows, cols, label="distance")
    assert [t.name for t in fig.data] == ["interquartile range", "median"] * 2
    assert fig.data[1].x[0] == "A"  # rows are named by letter
    assert fig.layout.xaxis.title.text == "plate row" and fig.layout.xaxis2.title.text == "plate column"
    assert fig.layout.yaxis.title.text == "distance"


def test_position_and_similarity_and_drift_figures():
    stats = pd.DataFrame({"space": ["raw", "aligned"], "same_position": [0.5, 0.1], "different_position": [0.2, 0.1]})
    fig = position_similarity_figure(stats)
    assert [t.name for t in fig.data] == ["same position", "different position"]
    assert list(fig.data[0].y) == [0.5, 0.1]
    info = pd.DataFrame({"plate": ["a", "b", "c"], "batch": ["x", "x", "y"]})
    sim = plate_similarity_figure(info, np.eye(3), -np.eye(3))
    assert [t.type for t in sim.data] == ["heatmap", "heatmap"]
    assert all(t.zmid == 0 and t.zmin == -1 and t.zmax == 1 for t in sim.data)
    assert sim.data[0].x[0] == "a (x)"
    drift = info.assign(robust_z=[0.1, 5.0, -0.3], outlier=[False, True, False])
    dfig = plate_drift_figure(drift)
    assert list(dfig.data[0].marker.color) == ["#999999", "#D55E00", "#999999"]
    assert dfig.layout.yaxis.title.text.startswith("robust z")
