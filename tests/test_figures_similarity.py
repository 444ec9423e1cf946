"""Similarity heatmap: block choice, clustering, and the figure a biologist reads."""

from __future__ import annotations

import numpy as np
import pytest

from phenomix_dash.figures.similarity import (
    MAX_SIDE,
    Axis,
    axis_rows,
    choose_block,
    cluster_order,
    empty_figure,
    grouped_cluster_order,
    pick_units,
    positions_in,
    similarity_heatmap,
    strongest_partners,
)


def arr(v) -> list:
    """A figure-JSON array as a list (plotly writes numpy arrays as base64 'bdata')."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        out = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return out.reshape(v["shape"]).tolist() if "shape" in v else out.tolist()
    return list(v)


def _unit(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_heatmap_is_diverging_symmetric_and_clickable_by_position():
    v = np.array([[0.2, -0.4, 0.9], [0.0, 0.1, -0.9]], dtype=np.float32)
    fig = similarity_heatmap(v, ["A (CRISPR)", "B (CRISPR)"], ["C1", "C2", "C3"], zmax=0.5,
                             overlays=[(0, 2, "compound target"), (1, 0, "relationship")], selected=(1, 2))
    j = fig.to_plotly_json()
    hm = j["data"][0]
    assert hm["type"] == "heatmap" and hm["zmid"] == 0 and hm["zmin"] == -0.5 and hm["zmax"] == 0.5
    assert hm["colorscale"][0][1] != hm["colorscale"][-1][1]
    assert hm["colorscale"][1] == [0.5, "#F7F7F7"]  # white at zero
    assert arr(hm["x"]) == [0, 1, 2] and arr(hm["y"]) == [0, 1]  # positions, names in tick text
    assert j["layout"]["xaxis"]["ticktext"] == ["C1", "C2", "C3"]
    assert j["layout"]["yaxis"]["ticktext"] == ["A (CRISPR)", "B (CRISPR)"]
    assert j["layout"]["yaxis"]["range"][0] > j["layout"]["yaxis"]["range"][1], "first row on top"
    assert "cosine" in hm["colorbar"]["title"]["text"]
    assert "A (CRISPR) × C3" in str(hm["text"][0][2])
    names = [t.get("name") for t in j["data"]]
    assert "known compound target" in names and "annotated gene relationship" in names
    target = j["data"][names.index("known compound target")]
    assert arr(target["x"]) == [2] and arr(target["y"]) == [0]
    sel = j["data"][-1]
    assert sel["name"] == "selected pair" and arr(sel["x"]) == [2] and arr(sel["y"]) == [1]


def test_heatmap_dose_axis_groups_and_separators():
    v = np.zeros((2, 4), dtype=np.float32)
    fig = similarity_heatmap(v, ["g1", "g2"], ["0.1 µM", "1 µM", "0.1 µM", "1 µM"], col_groups=["C1", "C1", "C2", "C2"])
    j = fig.to_plotly_json()
    texts = [a["text"] for a in j["layout"]["annotations"]]
    assert texts == ["C1", "C2"]
    shapes = j["layout"]["shapes"]
    assert len(shapes) == 1 and shapes[0]["x0"] == 1.5, "one separator between the two compounds"
    assert "C2 @ 1 µM" in str(j["data"][0]["text"][0][3])
    assert j["data"][-1]["name"] == "selected pair" and len(j["data"][-1]["x"]) == 0


def test_heatmap_built_unvalidated_is_what_plotly_validates():
    """The heatmap skips plotly's per-property checks for speed: every property it sets must still
    be one plotly accepts, unchanged (validating the same JSON raises on any unknown or bad value)."""
    import json

    import plotly.graph_objects as go
    import plotly.io as pio

    v = np.array([[0.2, -0.4, 0.9, 0.1], [0.0, 0.1, -0.9, 0.3]], dtype=np.float32)
    for kw in ({}, dict(col_groups=["C1", "C1", "C2", "C2"], title="genes x compounds", selected=(1, 3),
                        overlays=[(0, 2, "compound target"), (1, 0, "relationship")])):
        fig = similarity_heatmap(v, ["g1", "g2"], ["a", "b", "c", "d"], **kw)
        validated = go.Figure(fig.to_plotly_json())
        assert json.loads(pio.to_json(validated)) == json.loads(pio.to_json(fig))


def test_heatmap_rejects_bad_input():
    with pytest.raises(ValueError, match="labels"):
        similarity_heatmap(np.zeros((2, 2)), ["a"], ["b", "c"])
    with pytest.raises(ValueError, match="zmax"):
        similarity_heatmap(np.zeros((1, 1)), ["a"], ["b"], zmax=0)
    assert empty_figure("nothing").layout.annotations[0].text == "nothing"


def test_cluster_order_puts_similar_rows_together():
    a, b = np.array([1.0, 1, 0, 0]), np.array([0.0, 0, 1, 1])
    rows = np.stack([a, b, a + 0.01, b + 0.02, a - 0.01])
    order = cluster_order(rows).tolist()
    assert sorted(order) == list(range(5))
    pos = {r: order.index(r) for r in range(5)}
    group_a = sorted(pos[r] for r in (0, 2, 4))
    assert group_a[-1] - group_a[0] == 2, "the three a-like rows are contiguous"
    assert cluster_order(rows[:2]).tolist() == [0, 1]


def test_grouped_cluster_keeps_doses_together_in_order():
    vals = np.array([[0, 1], [0, 1.1], [5, 5], [5, 5.1], [0, 0.9]], dtype=float)
    groups = np.array(["C1", "C1", "C2", "C2", "C3"], dtype=object)
    order = grouped_cluster_order(vals, groups).tolist()
    assert order.index(1) == order.index(0) + 1 and order.index(3) == order.index(2) + 1
    assert abs(order.index(4) - order.index(0)) <= 2, "C3 sits next to the similar C1 block"


def test_positions_in_and_strongest_partners():
    index = np.array([2, 5, 9])
    assert positions_in(index, np.array([9, 2])).tolist() == [2, 0]
    with pytest.raises(ValueError, match="row 4"):
        positions_in(index, np.array([4]))
    unit = _unit(10)
    s = strongest_partners(unit, np.array([0, 1]), np.arange(10))
    np.testing.assert_allclose(s, np.abs(unit @ unit[[0, 1]].T).max(axis=1), rtol=1e-6)
    assert strongest_partners(unit, np.array([], dtype=int), np.arange(3)).tolist() == [0, 0, 0]


def test_pick_units_seeds_first_then_score_and_doses_not_split():
    units = np.array(["a", "b", "b", "c"], dtype=object)
    assert pick_units(units, np.array([0.1, 0.9, 0.2, 0.5]), np.array(["c"], dtype=object), 2).tolist() == ["c", "b"]
    doses = np.array(["x", "x", "y", "y"], dtype=object)
    assert pick_units(doses, np.array([0.1, 0.2, 0.9, 0.0]), np.array(["x", "q"], dtype=object), 5).tolist() == ["x", "y"]
    assert pick_units(units, np.array([0.1, 0.9, 0.2, 0.5]), np.array([], dtype=object), 2, unique=False).tolist() == ["b", "c"]
    axis = Axis(np.array([10, 11, 12, 13, 14]), np.array(["x", "x", "x", "y", "y"], dtype=object), True)
    rows, lab = axis_rows(axis, np.array(["y", "x"], dtype=object), max_rows=4)
    assert rows.tolist() == [13, 14] and lab.tolist() == ["y", "y"], "x's three doses do not fit in the 2 left"


def test_choose_block_seeded_active_and_symmetric():
    unit = _unit(30, seed=3)
    labels = np.array([f"g{i}" for i in range(20)] + [f"c{i // 2}" for i in range(10)], dtype=object)
    genes = Axis(np.arange(20), labels[:20], False)
    cmpds = Axis(np.arange(20, 30), labels[20:], True)
    rows, ru, cols, cu = choose_block(unit, labels, genes, cmpds, np.array([3]), max_side=6)
    assert rows[0] == 3 and len(rows) == 6
    assert len(cols) == 6 and len(set(cu)) == 3, "three compounds of two doses each"
    best = np.argsort(-np.abs(unit[:20] @ unit[3]))
    assert set(rows) == set(best[:6].tolist())
    score = np.arange(30, dtype=float)
    rows, *_ = choose_block(unit, labels, genes, cmpds, np.array([], dtype=int), max_side=4, score=score)
    assert rows.tolist() == [19, 18, 17, 16]
    rows, ru, cols, cu = choose_block(unit, labels, genes, cmpds, np.array([1, 2]), max_side=5, symmetric=True)
    assert rows.tolist() == cols.tolist() and rows[:2].tolist() == [1, 2]
    rows, *_ = choose_block(unit, labels, genes, cmpds, np.array([1]), max_side=500)
    assert len(rows) <= MAX_SIDE
