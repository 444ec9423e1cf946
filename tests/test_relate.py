"""Cosine similarities, neighbour lists, distances to plate controls, null samples."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from precompute.relate import (
    cosine_similarity,
    distance_to_plate_controls,
    l2_normalise,
    neighbours_of,
    null_similarity_sample,
    similarity_percentile,
    top_k_neighbours,
)


def brute_force(x, k, exclude_self=True):
    s = cosine_similarity(x.astype(np.float64))
    n = len(x)
    top, bottom = [], []
    for i in range(n):
        cand = [j for j in range(n) if not (exclude_self and j == i)]
        top.append(sorted(cand, key=lambda j: (-s[i, j], j))[:k])
        bottom.append(sorted(cand, key=lambda j: (s[i, j], j))[:k])
    return np.array(top), np.array(bottom), s


def test_cosine_similarity_matches_sklearn():
    from sklearn.metrics.pairwise import cosine_similarity as sk

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(cosine_similarity(a, b), sk(a, b), atol=1e-12)
    np.testing.assert_allclose(cosine_similarity(a), sk(a), atol=1e-12)
    z = l2_normalise(np.zeros((2, 3)))
    assert np.all(z == 0)


@pytest.mark.parametrize("block_rows", [1, 7, 4096])
def test_top_and_bottom_lists_agree_with_brute_force(block_rows):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    res = top_k_neighbours(x, 5, block_rows=block_rows)
    top, bottom, s = brute_force(x, 5)
    np.testing.assert_array_equal(res["top_idx"], top)
    np.testing.assert_array_equal(res["bottom_idx"], bottom)
    np.testing.assert_allclose(res["top_sim"], np.take_along_axis(s, top, 1), atol=1e-6)
    np.testing.assert_allclose(res["bottom_sim"], np.take_along_axis(s, bottom, 1), atol=1e-6)
    assert np.all(np.diff(res["top_sim"], axis=1) <= 0) and np.all(np.diff(res["bottom_sim"], axis=1) >= 0)


def test_query_subset_and_self_inclusion():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 4))
    q = np.array([3, 17, 29])
    res = top_k_neighbours(x, 4, queries=q)
    top, bottom, _ = brute_force(x, 4)
    np.testing.assert_array_equal(res["top_idx"], top[q])
    np.testing.assert_array_equal(res["bottom_idx"], bottom[q])
    with_self = top_k_neighbours(x, 1, queries=q, exclude_self=False)
    np.testing.assert_array_equal(with_self["top_idx"][:, 0], q)
    with pytest.raises(IndexError, match="query index 30"):
        top_k_neighbours(x, 2, queries=[30])


def test_k_larger_than_n_is_clipped():
    x = np.random.default_rng(3).normal(size=(5, 3))
    res = top_k_neighbours(x, 50)
    assert res["top_idx"].shape == (5, 4)
    assert all(set(row) == set(range(5)) - {i} for i, row in enumerate(res["top_idx"]))
    assert top_k_neighbours(x, 50, exclude_self=False)["top_idx"].shape == (5, 5)


def test_neighbours_of_matches_top_k():
    rng = np.random.default_rng(4)
    x = l2_normalise(rng.normal(size=(200, 16)).astype(np.float32))
    res = top_k_neighbours(x, 10)
    for q in (0, 57, 199):
        idx, sim = neighbours_of(x, q, 10)
        np.testing.assert_array_equal(idx, res["top_idx"][q])
        np.testing.assert_allclose(sim, res["top_sim"][q], atol=1e-6)
        idx, _ = neighbours_of(x, q, 10, most_similar=False)
        np.testing.assert_array_equal(idx, res["bottom_idx"][q])
    assert len(neighbours_of(x, 0, 1000)[0]) == 199


def test_distance_to_plate_controls_known_answer(caplog):
    emb = np.array(
        [
            [1.0, 0.0],
            [1.0, 0.2],
            [0.0, 1.0],  # plate A: two controls
            [0.0, 2.0],
            [1.0, 0.0],  # plate B: control [0, 2]
            [3.0, 3.0],
        ]
    )  # plate C: no control
    plates = np.array(["A", "A", "A", "B", "B", "C"])
    ctrl = np.array([True, True, False, True, False, False])
    with caplog.at_level(logging.WARNING, logger="precompute.relate"):
        d = distance_to_plate_controls(emb, plates, ctrl)
    centroid_a = np.array([1.0, 0.1])
    cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    np.testing.assert_allclose(
        d[:5], [1 - cos(emb[0], centroid_a), 1 - cos(emb[1], centroid_a), 1 - cos(emb[2], centroid_a), 0.0, 1.0]
    )
    assert np.isnan(d[5]) and "C" in caplog.text
    de = distance_to_plate_controls(emb, plates, ctrl, metric="euclidean")
    np.testing.assert_allclose(de[[2, 4]], [np.linalg.norm(emb[2] - centroid_a), np.sqrt(5)])


def test_null_sample_uses_distinct_pairs_and_is_sorted():
    null = null_similarity_sample(np.eye(20), 5000, seed=0)  # distinct rows are orthogonal
    assert null.shape == (5000,) and np.all(null == 0)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(100, 8))
    a, b = null_similarity_sample(x, 3000, seed=7), null_similarity_sample(x, 3000, seed=7)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(a) >= 0) and a.dtype == np.float32


def test_similarity_percentile():
    null = np.arange(100, dtype=float)  # 0..99
    np.testing.assert_allclose(similarity_percentile([-1, 49.5, 1000], null), [0, 50, 100])
    assert similarity_percentile(10.0, np.array([10.0, 10.0])) == 50.0


def argpartition_top_k(x, k, block_rows=None):
    """The implementation before the one-scan selection (relate stage version 2), kept as a
    reference: two argpartitions per block, then (key, index) order among the k chosen."""
    x = l2_normalise(x.astype(np.float32))
    block_rows = block_rows or len(x)
    out = {f"{s}_{v}": [] for s in ("top", "bottom") for v in ("idx", "sim")}
    for lo in range(0, len(x), block_rows):
        sims = x[lo : lo + block_rows] @ x.T
        rows = np.arange(sims.shape[0])
        for side, sign in (("top", -1.0), ("bottom", 1.0)):
            key = sims * sign
            key[rows, lo + rows] = np.inf
            part = np.argpartition(key, k - 1, axis=1)[:, :k]
            order = np.lexsort((part, np.take_along_axis(key, part, axis=1)), axis=1)
            idx = np.take_along_axis(part, order, axis=1)
            out[f"{side}_idx"].append(idx)
            out[f"{side}_sim"].append(np.take_along_axis(sims, idx, axis=1))
    return {name: np.concatenate(parts) for name, parts in out.items()}


@pytest.mark.parametrize("block_rows", [256, 4096])
def test_top_k_equals_previous_implementation_and_sklearn(block_rows):
    from sklearn.neighbors import NearestNeighbors

    x = np.random.default_rng(5).normal(size=(1500, 32)).astype(np.float32)
    res = top_k_neighbours(x, 20, block_rows=block_rows)
    old = argpartition_top_k(x, 20)
    # Equal lists, except that two neighbours whose similarities agree to float32 rounding may swap:
    # a block's product sums in another order than the whole matrix's (and BLAS's order depends on
    # its thread count), so such a pair is a tie. Then the swapped entries must be such a pair.
    s64 = cosine_similarity(x.astype(np.float64))
    for name in ("top_idx", "bottom_idx"):
        differ = res[name] != old[name]
        assert differ.mean() < 1e-3, name
        rows = np.nonzero(differ)[0]
        got = np.take_along_axis(s64, res[name], 1)[differ]
        want = np.take_along_axis(s64, old[name], 1)[differ]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=f"{name}: rows {rows}")
        assert all(sorted(res[name][r]) == sorted(old[name][r]) or differ[r, -1] for r in rows), name
    for name in ("top_sim", "bottom_sim"):  # float32 sums may differ in the last bit with the block shape
        np.testing.assert_allclose(res[name], old[name], rtol=0, atol=1e-6)
    nn = NearestNeighbors(n_neighbors=21, metric="cosine", algorithm="brute").fit(x.astype(np.float64))
    sk_dist, sk_idx = nn.kneighbors(x.astype(np.float64))
    # sklearn ranks in float64: lists equal except where two similarities are within float32 rounding
    # (sklearn lists each point first: drop it)
    assert (res["top_idx"] == sk_idx[:, 1:]).mean() > 0.999
    np.testing.assert_allclose(np.take_along_axis(s64, res["top_idx"], 1), 1 - sk_dist[:, 1:], atol=1e-6)


def test_ties_at_the_kth_place_go_to_the_lower_index():
    base = np.random.default_rng(6).normal(size=(10, 6)).astype(np.float32)
    x = np.concatenate([base, base[[3, 3, 3]]])  # rows 10-12 duplicate row 3: equal similarities
    res = top_k_neighbours(x, 2)
    np.testing.assert_array_equal(res["top_idx"][3], [10, 11])  # 10, 11, 12 tie: lowest two
    np.testing.assert_array_equal(res["top_idx"][11], [3, 10])
    far = top_k_neighbours(x, 1)["bottom_idx"][:, 0]
    assert far[0] == far[0] and all(far[i] == min(np.flatnonzero(
        cosine_similarity(x)[i] == cosine_similarity(x)[i][far[i]])) for i in range(len(x)) if i not in (3,))


def test_similarity_matrix_f16_is_the_float16_product_block_by_block():
    from precompute.relate import similarity_matrix_f16

    x = l2_normalise(np.random.default_rng(7).normal(size=(300, 12)).astype(np.float32))
    rows, cols = np.arange(0, 300, 3), np.arange(1, 300, 2)
    got = similarity_matrix_f16(x, rows, cols, block_rows=16)
    assert got.dtype == np.float16 and got.shape == (100, 150)
    np.testing.assert_allclose(got, (x[rows] @ x[cols].T).astype(np.float16), atol=1e-3)
