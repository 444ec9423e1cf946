"""Missing values look missing: every map colouring, at well and perturbation level, draws rows with
no value as grey "no value" points (own trace, legend entry, hover) and never gives them a number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures.map import colour_values, embedding_figure, split_positions
from phenomix_dash.figures.palette import NO_VALUE, NO_VALUE_COLOUR

N = 40
MISSING = np.zeros(N, dtype=bool)
MISSING[[0, 3, 4, 17, 39]] = True  # first and last rows included


def _with_gaps(values) -> pd.Series:
    s = pd.Series(values)
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        s = s.astype("Float64" if pd.api.types.is_integer_dtype(s) else "boolean")
    return s.mask(MISSING)


@pytest.fixture
def wells() -> pd.DataFrame:
    """A wells + well-metrics table, every column with the same rows missing."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "well_id": [f"w{i}" for i in range(N)],
        "batch": _with_gaps(rng.choice(["b1", "b2", "b3"], N)),
        "plate": _with_gaps([f"P{i % 4}" for i in range(N)]),
        "row": _with_gaps(rng.integers(1, 17, N)),
        "col": _with_gaps(rng.integers(1, 25, N)),
        "perturbation_type": _with_gaps(rng.choice(["negative_control", "crispr", "compound"], N)),
        "perturbation": _with_gaps([f"G{i % 7}" for i in range(N)]),
        "concentration_um": _with_gaps(rng.choice([0.1, 1.0, 10.0], N)),
        "cell_count": _with_gaps(rng.integers(100, 900, N)),
        "distance_to_controls_aligned": _with_gaps(rng.random(N) * 10),
    })


@pytest.fixture
def perts() -> pd.DataFrame:
    """Perturbations + activity as the map colours them (controls and single-well ones unscored)."""
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "pert_id": [f"p{i}" for i in range(N)],
        "perturbation_type": _with_gaps(rng.choice(["crispr", "orf", "compound"], N)),
        "perturbation": [f"G{i}" for i in range(N)],
        "n_wells": _with_gaps(rng.integers(1, 6, N)),
        "concentration_um": _with_gaps(rng.choice([0.3, 3.0], N)),
        "mean_average_precision": _with_gaps(rng.random(N)),
        "q_value": _with_gaps(rng.random(N) * 0.2 + 0.007),
        "active": _with_gaps(rng.random(N) < 0.5),
    })


WELL_COLOURINGS = ["batch", "plate", "row", "col", "edge_distance", "perturbation_type", "control", "perturbation",
                   "concentration_um", "cell_count", "distance_to_controls_aligned"]
PERT_COLOURINGS = ["perturbation_type", "control", "n_wells", "concentration_um", "mean_average_precision", "q_value",
                   "active"]


def _check_missing_drawn_as_missing(table: pd.DataFrame, color_by: str, unit: str) -> None:
    spec = colour_values(table, color_by)
    np.testing.assert_array_equal(spec.missing, MISSING)
    xy = np.column_stack([np.arange(N), np.arange(N) % 5]).astype(np.float32)
    fig = embedding_figure(xy, spec, hover_text=[f"{unit} {i}" for i in range(N)], unit=unit)
    points, grey = fig.data[0], fig.data[-1]
    # The grey trace holds exactly the rows without a value, named and coloured as such, in the legend.
    assert grey.name == NO_VALUE and grey.showlegend and grey.marker.color == NO_VALUE_COLOUR
    assert list(grey.customdata) == np.flatnonzero(MISSING).tolist()
    assert list(grey.x) == xy[MISSING, 0].tolist() and list(grey.text) == [f"{unit} {i}" for i in np.flatnonzero(MISSING)]
    assert "no value" in grey.hovertemplate and "marker.color" not in grey.hovertemplate
    # The coloured trace keeps every point in order (pointIndex = row) but does not draw the rows
    # without a value (x = NaN); the rows it draws carry their own value, no number is invented.
    assert points.customdata is None and len(points.x) == len(points.marker.color) == N
    x = np.asarray(points.x, dtype=float)
    np.testing.assert_array_equal(np.isnan(x), MISSING)
    np.testing.assert_array_equal(x[~MISSING], xy[~MISSING, 0])
    colours = np.asarray(points.marker.color, dtype=float)[~MISSING]
    assert np.isfinite(colours).all()
    if spec.kind == "numeric":
        np.testing.assert_array_equal(colours, spec.values[~MISSING])  # the measured values, nothing else
        assert np.isnan(np.asarray(points.marker.color, dtype=float)[MISSING]).all()
        assert points.marker.cmin >= np.nanmin(spec.values) and points.marker.cmax <= np.nanmax(spec.values) + 1
    else:
        names = spec.categories
        assert not {"missing", "nan", "<NA>", "None", "other"} & set(names), names
        ticktext = points.marker.colorbar.ticktext
        assert ticktext is None or NO_VALUE not in ticktext
    assert fig.layout.legend is not None


@pytest.mark.parametrize("color_by", WELL_COLOURINGS)
def test_well_colourings_draw_missing_values_as_no_value(wells, color_by):
    _check_missing_drawn_as_missing(wells, color_by, "wells")


@pytest.mark.parametrize("color_by", PERT_COLOURINGS)
def test_perturbation_colourings_draw_missing_values_as_no_value(perts, color_by):
    _check_missing_drawn_as_missing(perts, color_by, "perturbations")


def test_q_value_missing_is_not_the_most_significant(perts):
    """The issue's case: controls have no q-value; they must not show as the smallest q (0.007)."""
    fig = embedding_figure(np.zeros((N, 2)), colour_values(perts, "q_value"))
    drawn = np.isfinite(np.asarray(fig.data[0].x, dtype=float))
    coloured = np.asarray(fig.data[0].marker.color, dtype=float)[drawn]
    assert drawn.sum() == N - MISSING.sum() and np.isfinite(coloured).all()
    assert coloured.min() >= perts["q_value"].min()
    assert fig.data[0].marker.cmin == pytest.approx(np.percentile(perts["q_value"].dropna(), 1))


def test_no_missing_means_no_split_and_no_legend(wells):
    full = wells.dropna().reset_index(drop=True)
    fig = embedding_figure(np.zeros((len(full), 2)), colour_values(full, "concentration_um"))
    assert fig.data[0].customdata is None and len(fig.data[0].x) == len(full)
    assert np.isfinite(np.asarray(fig.data[0].x, dtype=float)).all()
    assert len(fig.data[-1].x) == 0 and not fig.data[-1].showlegend


def test_all_missing_draws_every_point_grey():
    df = pd.DataFrame({"v": [np.nan] * 5})
    fig = embedding_figure(np.zeros((5, 2)), colour_values(df, "v"))
    assert np.isnan(np.asarray(fig.data[0].x, dtype=float)).all() and len(fig.data[-1].x) == 5


def test_missing_points_in_a_drawn_sample_keep_their_sample_positions():
    """Beyond max_points the customdata of both traces indexes the drawn sample (what clicks map back)."""
    from phenomix_dash.figures.map import sample_indices

    rng = np.random.default_rng(5)
    n = 3000
    v = rng.random(n)
    v[rng.random(n) < 0.3] = np.nan
    spec = colour_values(pd.DataFrame({"v": v}), "v")
    fig = embedding_figure(rng.normal(size=(n, 2)), spec, max_points=1000, sample_size=400)
    rows = sample_indices(n, 1000, 400)
    assert [t.type for t in fig.data] == ["scattergl", "scattergl", "heatmap", "scattergl"]
    grey = np.asarray(fig.data[3].customdata, dtype=int)
    x = np.asarray(fig.data[0].x, dtype=float)
    assert len(x) == 400 and fig.data[0].customdata is None
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(x)), grey)  # pointIndex and customdata: sample positions
    assert np.isnan(v[rows[grey]]).all() and np.isfinite(v[rows[np.isfinite(x)]]).all()


def test_selection_positions_split_between_the_two_traces():
    split = (np.array([1, 2, 5]), np.array([0, 3, 4]))
    assert split_positions(np.array([0, 2, 4, 5]), split) == ([0, 2, 4, 5], [0, 2])
    assert split_positions(np.array([0, 2]), None) == ([0, 2], [])


# -- other builders ---------------------------------------------------------------------------------

def _plate_wells(values) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({"well_id": [f"w{i}" for i in range(n)], "well": [f"A{i + 1:02d}" for i in range(n)],
                         "plate": "P1", "row": 1, "col": np.arange(1, n + 1), "guide": None,
                         "perturbation_type": ["negative_control"] + ["compound"] * (n - 1),
                         "perturbation": [f"C{i}" for i in range(n)], "concentration_um": np.nan, "v": values})


@pytest.mark.parametrize("values", [[np.nan, 1.0, 2.0, np.nan, 5.0], [None, "a", "b", None, "a"]],
                         ids=["numeric", "categorical"])
def test_plate_layout_draws_wells_without_a_value_as_no_value(values):
    from phenomix_dash.figures.plate import plate_layout_figure

    fig = plate_layout_figure(_plate_wells(values), color_by="v")
    grey = [t for t in fig.data if t.name == NO_VALUE]
    assert len(grey) == 1 and grey[0].showlegend and grey[0].marker.color == NO_VALUE_COLOUR
    assert list(grey[0].customdata) == ["w0", "w3"] and "v: no value" in grey[0].hovertemplate
    others = [t for t in fig.data if t.name != NO_VALUE]
    drawn = [w for t in others for w in t.customdata]
    assert sorted(drawn) == ["w1", "w2", "w4"]  # no category "nan" and no colour for a missing value
    for t in others:
        if not isinstance(t.marker.color, str):
            assert np.isfinite(np.asarray(t.marker.color, dtype=float)).all()


def test_activity_table_leaves_unscored_neither_active_nor_inactive():
    from phenomix_dash.figures.activity import activity_table, filter_activity

    act = pd.DataFrame({"pert_id": ["a", "b", "c"], "mean_average_precision": [0.9, 0.2, np.nan],
                        "p_value": [0.001, 0.5, np.nan], "q_value": [0.01, 0.6, np.nan]})
    perts = pd.DataFrame({"pert_id": ["a", "b", "c"], "perturbation_type": ["crispr"] * 3, "perturbation": ["A", "B", "C"],
                          "n_wells": [3, 3, 1]})
    t = activity_table(perts.merge(act[["pert_id"]]), act.merge(perts))
    active = dict(zip(t["pert_id"], t["active"], strict=True))
    assert bool(active["a"]) and not bool(active["b"]) and active["c"] is pd.NA
    assert filter_activity(t, active_only=True)["pert_id"].tolist() == ["a"]


def test_plate_drift_is_undefined_not_zero_with_two_plates():
    from phenomix_dash.figures.plates_qc import plate_drift, plate_drift_figure

    info = pd.DataFrame({"plate": ["P1", "P2"], "batch": ["b", "b"], "n_controls": [4, 4]})
    d = plate_drift(info, np.array([[0.0, 1.0], [2.0, 0.0]]))
    assert d["robust_z"].isna().all() and not d["outlier"].any()
    assert NO_VALUE in plate_drift_figure(d).layout.annotations[-1].text


def test_plate_heatmap_keeps_gaps_and_says_what_blank_means():
    from phenomix_dash.figures.plates_qc import plate_heatmap_figure

    grid = np.ones((16, 24))
    grid[0, 0] = np.nan
    fig = plate_heatmap_figure(grid, title="t", colorbar_title="metric")
    assert np.isnan(np.asarray(fig.data[0].z, dtype=float)[0, 0]) and fig.data[0].hoverongaps is False
    assert "blank = no value" in fig.data[0].colorbar.title.text
    full = plate_heatmap_figure(np.ones((16, 24)), title="t", colorbar_title="metric")
    assert full.data[0].colorbar.title.text == "metric"


def test_position_bars_say_no_value_instead_of_nan():
    from phenomix_dash.figures.plates_qc import position_similarity_figure

    stats = pd.DataFrame({"space": ["raw", "aligned"], "same_position": [0.5, np.nan], "different_position": [0.1, 0.2]})
    fig = position_similarity_figure(stats)
    assert list(fig.data[0].text) == ["0.500", NO_VALUE]


def test_fmt_value_never_prints_nan_or_zero_for_missing():
    from phenomix_dash.figures.missing import fmt_value, is_true, js_number_formatter

    assert fmt_value(np.nan) == fmt_value(None) == fmt_value(pd.NA) == NO_VALUE
    assert fmt_value(0.12345, ".2f") == "0.12" and fmt_value(0) == "0"
    assert is_true(np.True_) and not is_true(np.nan) and not is_true(pd.NA) and not is_true(None)
    assert "null" in js_number_formatter(".3f")["function"] and NO_VALUE in js_number_formatter(".3f")["function"]


def test_benchmark_bars_label_a_missing_score_no_value():
    from phenomix_dash.figures.alignment import batch_correction_figure
    from phenomix_dash.figures.benchmarks import replicate_map_figure

    summary = pd.DataFrame({"metric": ["batch_accuracy"], "label": ["batch predicted"], "group": ["mixing"],
                            "raw": [0.9], "aligned": [np.nan], "chance": [0.33]})
    fig = batch_correction_figure(summary)
    aligned = next(t for t in fig.data if t.name == "aligned")
    assert list(aligned.text) == [NO_VALUE]
    rep = pd.DataFrame({"embedder": ["mae", "mae"], "space": ["raw", "tvn"], "map": [0.1, 0.2],
                        "fraction_q05": [np.nan, 0.25]})
    bars = replicate_map_figure(rep).data
    assert list(bars[0].customdata) == [NO_VALUE] and list(bars[1].customdata) == ["25%"]

