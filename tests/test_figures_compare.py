"""Compare page figures (phenomix_dash/figures/compare.py): the linked map highlights the selected
wells and outlines the region, the overlap table puts the lowest overlap first, the distribution
counts shared neighbours, and benchmarks are restricted to the space shown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures import compare as fc
from phenomix_dash.figures.map import colour_values


def _wells(n: int) -> pd.DataFrame:
    return pd.DataFrame({"perturbation_type": np.where(np.arange(n) % 3 == 0, "negative_control", "crispr")})


def test_the_linked_map_highlights_the_selected_wells_and_outlines_the_region() -> None:
    xy = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    spec = colour_values(_wells(50), "perturbation_type")
    poly = np.array([[0, 0], [1, 0], [1, 1]], dtype=float)
    fig = fc.linked_map_figure(xy, spec, hover_text=None, title="MAE · TVN", selected=np.array([3, 7, 9]), region=poly)
    assert list(fig.data[0].selectedpoints) == [3, 7, 9]
    assert fig.data[0].unselected.marker.opacity == fc.UNSELECTED_OPACITY
    assert fig.layout.shapes[0].path.startswith("M 0,0 L 1,0 L 1,1") and fig.layout.shapes[0].path.endswith("Z")
    plain = fc.linked_map_figure(xy, spec, hover_text=None, title="x")
    assert plain.data[0].selectedpoints is None and not plain.layout.shapes
    assert fc.selection_positions(50, spec, None) is None


def test_a_space_without_a_map_says_why() -> None:
    fig = fc.no_map_figure("No UMAP of MAE · center-scale")
    assert fig.layout.annotations[0].text == "No UMAP of MAE · center-scale" and not fig.data


def test_space_names_are_checked_and_labelled() -> None:
    assert fc.parse_space("mae:tvn") == ("mae", "tvn")
    assert fc.space_label("pixelstats:raw") == "pixel statistics · raw (before alignment)"
    with pytest.raises(ValueError, match="'mae' is not of the form embedder:space"):
        fc.parse_space("mae")


def _table() -> pd.DataFrame:
    return pd.DataFrame({"left": ["a:raw"] * 3 + ["a:raw"] * 3, "right": ["b:raw"] * 3 + ["c:raw"] * 3,
                         "pert_id": ["p1", "p2", "p3"] * 2,
                         "jaccard_2": [1.0, 0.0, 1 / 3, 0.0, 0.0, 0.0], "jaccard_4": [0.6, 0.0, 1.0, 0.0, 0.0, 0.0]})


def test_the_overlap_table_reads_either_order_and_puts_the_lowest_first() -> None:
    pair = fc.pair_rows(_table(), "b:raw", "a:raw")  # the stage stored (a, b)
    assert fc.k_values(pair) == [2, 4]
    perts = pd.DataFrame({"pert_id": ["p1", "p2", "p3"], "perturbation": ["TP53", "MDM2", "CPD1"],
                          "perturbation_type": ["crispr", "crispr", "compound"]})
    rows = fc.overlap_rows(pair, 4, perts, selected={"p3"})
    assert rows["pert_id"].tolist() == ["p2", "p1", "p3"]
    assert rows["shared_of_4"].tolist() == [0, 3, 4]  # J = s / (2k - s)
    assert rows["perturbation"].tolist() == ["MDM2", "TP53", "CPD1"] and rows["in_selection"].tolist() == [False, False, True]
    with pytest.raises(ValueError, match="did not compare 'b:raw' with 'c:raw'"):
        fc.pair_rows(_table(), "b:raw", "c:raw")
    with pytest.raises(ValueError, match="both sides show 'a:raw'"):
        fc.pair_rows(_table(), "a:raw", "a:raw")
    with pytest.raises(ValueError, match="no Jaccard at k = 3; .* k = 2, 4"):
        fc.overlap_rows(pair, 3)


def test_the_distribution_counts_shared_neighbours_and_marks_the_random_expectation() -> None:
    j = np.array([0.0, 0.0, 1.0, 1 / 3, np.nan])  # shared 0, 0, 2, 1 of k=2; NaN not counted
    fig = fc.jaccard_distribution_figure(j, 2, random=0.05, selected=np.array([1.0]))
    assert list(fig.data[0].x) == [0, 1, 2] and np.allclose(fig.data[0].y, [0.5, 0.25, 0.25])
    assert fig.data[1].name == "in the selection (n=1)" and np.allclose(fig.data[1].y, [0, 0, 1])
    assert any(a.text.startswith("unrelated spaces") for a in fig.layout.annotations)
    assert "over 4 perturbations" in fig.layout.title.text


def test_benchmarks_are_those_of_the_space_shown() -> None:
    rec = pd.DataFrame({"embedder": ["mae", "mae", "random"], "space": ["tvn", "raw", "tvn"],
                        "source": ["s", "s", "s"], "recall": [0.3, 0.2, 0.1], "n_pairs": [10, 10, 10]})
    rep = pd.DataFrame({"embedder": ["mae", "mae"], "space": ["tvn", "raw"], "map": [0.5, 0.1]})
    figs = fc.benchmark_figures({"recall": rec, "replicate_map": rep, "batch": None}, "mae:tvn")
    assert [t.name for t in figs["recall"].data] == ["MAE"] and list(figs["recall"].data[0].y) == [0.3]
    assert list(figs["replicate_map"].data[0].y) == [0.5]
    assert figs["batch"] == "Batch metrics not measured for MAE · TVN."
    assert isinstance(fc.benchmark_figures({"recall": rec}, "pixelstats:raw")["recall"], str)
