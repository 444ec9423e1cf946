"""A gene set drawn on the views marks exactly its members: map rings, heatmap outlines, plate squares."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phenomix_dash.figures.map import colour_values, embedding_figure
from phenomix_dash.figures.sets import (
    SET_NAME,
    add_member_ring,
    member_ring,
    null_figure,
    outline_members,
    outlined_positions,
    plate_member_trace,
)
from phenomix_dash.figures.similarity import similarity_heatmap


def test_map_ring_marks_exactly_the_members():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(50, 2)).astype(np.float32)
    table = pd.DataFrame({"perturbation_type": ["crispr"] * 50})
    fig = embedding_figure(xy, colour_values(table, "perturbation_type"))
    n_before = len(fig.data)
    members = np.array([3, 17, 42])
    k = add_member_ring(fig, xy, members, max_points=1000)
    assert k == n_before and len(fig.data) == n_before + 1  # appended: earlier trace indices unchanged
    ring = fig.data[k]
    assert np.array_equal(np.column_stack([ring.x, ring.y]), xy[members])
    assert ring.name == f"{SET_NAME}s (3)" and ring.showlegend


def test_map_ring_is_empty_without_a_set_and_says_when_it_draws_part():
    xy = np.arange(20, dtype=np.float32).reshape(10, 2)
    empty = member_ring(xy, np.empty(0, dtype=np.int64), max_points=5)
    assert len(empty["x"]) == 0 and not empty["showlegend"]
    part = member_ring(xy, np.arange(10), max_points=4)
    assert len(part["x"]) == 4 and part["name"] == f"{SET_NAME}s (4 of 10 drawn)"
    xy[2] = np.nan  # a member without coordinates is not drawn at a made-up place
    assert len(member_ring(xy, np.array([1, 2]), max_points=10)["x"]) == 1


def test_heatmap_outlines_exactly_the_member_rows_and_columns():
    v = np.zeros((4, 3), dtype=np.float32)
    fig = similarity_heatmap(v, ["a", "b", "c", "d"], ["x", "y", "z"], col_groups=["g1", "g1", "g2"])
    separators = len(fig.layout.shapes)
    outline_members(fig, [False, True, False, True], [True, False, False])
    assert outlined_positions(fig) == ([1, 3], [0])
    assert len(fig.layout.shapes) == separators + 3  # the dose-group separators are kept
    row = next(s for s in fig.layout.shapes if s.name == f"{SET_NAME} row 3")
    assert (row.y0, row.y1, row.x0, row.x1) == (2.5, 3.5, -0.5, 2.5)
    assert outlined_positions(outline_members(similarity_heatmap(v, list("abcd"), list("xyz")),
                                              [False] * 4, [False] * 3)) == ([], [])
    # No member on either axis: the figure is handed back as it was (its separators untouched).
    grouped = similarity_heatmap(v, ["a", "b", "c", "d"], ["x", "y", "z"], col_groups=["g1", "g1", "g2"])
    before = grouped.to_json()
    assert outline_members(grouped, [False] * 4, [False] * 3) is grouped and grouped.to_json() == before


def test_plate_trace_marks_the_member_wells():
    t = plate_member_trace([1, 3], [2, 24], ["P1_A02", "P1_C24"])
    assert list(t.x) == [2, 24] and list(t.y) == [1, 3] and list(t.text) == ["P1_A02", "P1_C24"]


def test_null_figure_shows_the_observed_value_and_counts():
    fig = null_figure(np.linspace(-0.1, 0.1, 200), 0.3, 1 / 201, 6, 280, "complex C1")
    assert len(fig.data[0].x) == 200
    assert fig.layout.shapes[0].x0 == 0.3
    assert "200 random sets of 6" in fig.layout.title.text and "280 perturbations" in fig.layout.title.text
