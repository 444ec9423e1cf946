"""Map figures: colourings a biologist can read, Scattergl points, density + sample beyond max_points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures.alignment import batch_correction_figure, benchmark_summary
from phenomix_dash.figures.map import (
    colour_marker,
    colour_values,
    density_trace,
    edge_distance,
    embedding_figure,
    sample_indices,
)


@pytest.fixture
def wells() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "well_id": [f"w{i}" for i in range(n)],
        "batch": rng.choice(["b1", "b2", "b10"], n),
        "plate": [f"P{i % 4}" for i in range(n)],
        "row": rng.integers(1, 17, n),
        "col": rng.integers(1, 25, n),
        "perturbation_type": rng.choice(["negative_control", "positive_control", "crispr", "compound"], n),
        "perturbation": [f"G{i % 30}" for i in range(n)],
        "dose": rng.random(n),
    })


def test_categorical_colours_have_codes_names_and_okabe_ito(wells):
    spec = colour_values(wells, "batch")
    assert spec.kind == "categorical"
    assert spec.categories == ("b1", "b2", "b10")  # numbers inside names sort as numbers
    assert spec.values.dtype == np.uint8 and set(spec.values) <= {0, 1, 2}
    assert [spec.categories[c] for c in spec.values[:5]] == wells["batch"].iloc[:5].tolist()
    assert spec.colours[0] == "#0072B2"


def test_perturbation_type_and_control_use_fixed_colours(wells):
    spec = colour_values(wells, "perturbation_type")
    assert spec.categories[0] == "negative control" and spec.colours[0] == "#7F7F7F"
    ctl = colour_values(wells, "control")
    assert set(ctl.categories) <= {"negative control", "positive control", "treatment"}
    treated = ~wells["perturbation_type"].str.endswith("control").to_numpy()
    assert {ctl.categories[c] for c in ctl.values[treated]} == {"treatment"}


def test_numeric_and_positional_colourings(wells):
    dose = colour_values(wells, "dose")
    assert dose.kind == "numeric" and dose.values.dtype == np.float32
    row = colour_values(wells, "row")
    assert row.kind == "numeric" and row.ticks is not None and row.ticks[1][0] == "A"
    edge = colour_values(wells, "edge_distance", plate_format=384)
    np.testing.assert_array_equal(edge.values, edge_distance(wells["row"], wells["col"], 384))


def test_edge_distance_is_zero_on_the_rim_and_largest_in_the_middle():
    d = edge_distance(np.array([1, 16, 8, 8, 2]), np.array([5, 5, 1, 12, 2]), 384)
    assert d.tolist() == [0, 0, 0, 7, 1]


def test_many_categories_fold_into_other(wells):
    spec = colour_values(wells, "perturbation", max_categories=5)
    assert len(spec.categories) == 5 and spec.categories[-1] == "other"
    assert spec.colours[-1] == "#DDDDDD"


def test_unknown_column_is_a_clear_error(wells):
    with pytest.raises(ValueError, match="cannot colour by 'nope'"):
        colour_values(wells, "nope")


def test_categorical_marker_is_a_stepped_scale_with_names_on_the_bar(wells):
    spec = colour_values(wells, "batch")
    m = colour_marker(spec)
    assert m["cmin"] == -0.5 and m["cmax"] == 2.5
    assert m["colorbar"]["ticktext"] == ["b10", "b2", "b1"]  # bars run bottom-up; first category on top
    assert len(m["colorscale"]) == 6 and m["colorscale"][-1][1] == spec.colours[0]
    # each point's value falls in the step of the scale that carries its category's colour
    for v, code in zip(m["color"], spec.values, strict=True):
        assert m["colorscale"][2 * int(v)][1] == spec.colours[code]


def test_embedding_figure_is_scattergl_with_umap_axes(wells):
    xy = np.random.default_rng(1).normal(size=(len(wells), 2))
    fig = embedding_figure(xy, colour_values(wells, "batch"), hover_text=list(wells["well_id"]), title="Raw", highlight=3)
    assert [t.type for t in fig.data] == ["scattergl", "scattergl", "scattergl"]
    assert len(fig.data[0].x) == len(wells)
    assert fig.data[2].name == "no value" and len(fig.data[2].x) == 0 and not fig.data[2].showlegend  # none missing
    assert fig.layout.xaxis.title.text == "UMAP 1" and fig.layout.yaxis.title.text == "UMAP 2"
    assert fig.data[0].marker.colorbar.title.text == "batch"
    assert fig.data[1].x == (pytest.approx(xy[3, 0]),)
    assert fig.layout.dragmode == "lasso"
    assert "60 wells" in fig.layout.title.text


def test_beyond_max_points_draw_density_and_a_seeded_sample():
    rng = np.random.default_rng(2)
    n = 5000
    xy = rng.normal(size=(n, 2))
    df = pd.DataFrame({"v": rng.random(n)})
    fig = embedding_figure(xy, colour_values(df, "v"), hover_text=[str(i) for i in range(n)], max_points=1000,
                           sample_size=400)
    assert [t.type for t in fig.data] == ["scattergl", "scattergl", "heatmap", "scattergl"]
    rows = sample_indices(n, 1000, 400)
    assert len(fig.data[0].x) == 400 and np.all(np.diff(rows) > 0)
    np.testing.assert_allclose(fig.data[0].x, xy[rows, 0].astype(np.float32))
    assert list(fig.data[0].text[:3]) == [str(i) for i in rows[:3]]  # hover follows the sample
    counts = np.nansum(np.expm1(np.asarray(fig.data[2].z, dtype=float)))
    assert counts == pytest.approx(n, rel=1e-3)  # the density counts every point
    assert "400 of 5,000" in fig.layout.title.text
    assert sample_indices(999, 1000) is None
    assert np.array_equal(sample_indices(n, 1000, 400), rows)  # callbacks recompute the same sample


def test_embedding_figure_rejects_mismatched_inputs(wells):
    with pytest.raises(ValueError, match="differ in length"):
        embedding_figure(np.zeros((3, 2)), colour_values(wells, "batch"))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        embedding_figure(np.zeros((3, 3)), colour_values(wells.head(3), "batch"))


def test_benchmark_summary_from_tables_and_from_json_summary():
    batch = pd.DataFrame({"embedder": ["mae"] * 4 + ["other"], "space": ["raw", "tvn", "raw", "tvn", "raw"],
                          "label": ["batch", "batch", "plate_row", "plate_row", "batch"],
                          "accuracy": [0.9, 0.4, 0.3, 0.1, 0.5], "chance": [0.25, 0.25, 0.0625, 0.0625, 0.25]})
    rep = pd.DataFrame({"embedder": ["mae", "mae"], "space": ["raw", "tvn"], "map": [0.3, 0.5],
                        "fraction_q05": [0.2, 0.4]})
    s = benchmark_summary(batch, rep, embedder="mae", aligned="tvn")
    assert s.set_index("metric").loc["batch_accuracy", ["raw", "aligned", "chance"]].tolist() == [0.9, 0.4, 0.25]
    assert s.set_index("metric").loc["replicate_map", "aligned"] == 0.5
    assert set(s["group"]) == {"mixing", "biology"}
    js = {"batch_accuracy": {"mae": {"raw": 0.8, "tvn": 0.3}}, "batch_chance": 0.5,
          "replicate_map": {"mae": {"raw": 0.1, "tvn": 0.2}}}
    s2 = benchmark_summary(None, None, embedder="mae", aligned="tvn", summary=js)
    assert s2["metric"].tolist() == ["batch_accuracy", "replicate_map"]
    assert s2["chance"].iloc[0] == 0.5


def test_batch_correction_figure_shows_raw_aligned_and_chance():
    s = pd.DataFrame({"metric": ["batch_accuracy", "replicate_map"], "label": ["batch", "mAP"],
                      "group": ["mixing", "biology"], "raw": [0.9, 0.3], "aligned": [0.4, 0.5], "chance": [0.25, np.nan]})
    fig = batch_correction_figure(s, aligned_label="aligned (tvn)")
    names = [t.name for t in fig.data]
    assert names.count("raw") == 2 and names.count("aligned (tvn)") == 2 and names.count("chance") == 1
    chance = next(t for t in fig.data if t.name == "chance")
    assert chance.x == (0.25,)
    assert fig.layout.xaxis.title.text == "accuracy"
    empty = batch_correction_figure(s.iloc[:0])
    assert "no batch benchmarks" in empty.layout.annotations[-1].text


def test_many_plates_cycle_the_palette_instead_of_folding():
    df = pd.DataFrame({"plate": [f"P{i}" for i in range(1, 31)] * 2})
    spec = colour_values(df, "plate", max_categories=12)
    assert spec.n_levels == 30 and spec.values.max() < 8
    assert spec.values[0] != spec.values[1]  # neighbouring plates differ
    m = colour_marker(spec)
    assert "colours repeat" in m["colorbar"]["title"]["text"] and m["colorbar"]["tickvals"] == []


def test_typed_array_round_trips_through_base64():
    import base64

    from phenomix_dash.figures.map import typed_array

    a = np.array([0.5, -1.0, 2.25], dtype=np.float32)
    spec = typed_array(a)
    assert spec["dtype"] == "f4"
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.float32), a)
    with pytest.raises(ValueError, match="dtype"):
        typed_array(np.array(["x"]))


def test_a_million_points_make_a_small_figure_that_keeps_the_clicked_point():
    """At 10^6 wells the browser gets a 50,000-point sample plus a density of all points: the figure
    stays a few MB (the map page's budget is 10 MB for two maps), and the clicked row is drawn even
    when it is not in the sample."""
    rng = np.random.default_rng(3)
    n = 1_000_000
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    df = pd.DataFrame({"perturbation_type": rng.choice(["crispr", "compound", "negative_control"], n)})
    rows = sample_indices(n)
    clicked = int(np.setdiff1d(np.arange(1000), rows)[0])  # a row outside the sample
    hover = np.array([f"W{i:07d} · plate P{i % 700}<br>GENE{i % 17000} (CRISPR)" for i in range(n)], dtype=object)
    fig = embedding_figure(xy, colour_values(df, "perturbation_type"), hover_text=hover, highlight=clicked)
    size = len(fig.to_json())
    assert size < 4_500_000, size
    assert len(fig.data[0].x) == len(rows) == 50_000
    assert (fig.data[1].x[0], fig.data[1].y[0]) == pytest.approx((xy[clicked, 0], xy[clicked, 1]))
    assert fig.data[2].type == "heatmap"


def test_a_density_computed_before_is_used_as_is():
    rng = np.random.default_rng(4)
    xy = rng.normal(size=(3000, 2))
    spec = colour_values(pd.DataFrame({"v": rng.random(3000)}), "v")
    dens = density_trace(xy, bins=40)
    fig = embedding_figure(xy, spec, max_points=1000, density=dens)
    assert np.asarray(fig.data[2].z).shape == (40, 40)
    np.testing.assert_array_equal(np.asarray(fig.data[2].z), np.asarray(dens.z))
