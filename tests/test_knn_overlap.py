"""kNN overlap between two embedding spaces (precompute/knn_overlap.py) and its stage: Jaccard at k
is 1 for the same space, is what a constructed overlap says, agrees with scikit-learn's exact
neighbours, and the stage writes it for every pair of the run's spaces."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from phenomix_dash.data import PhenomixData
from precompute import knn_overlap as ko
from precompute.aggregate import aggregate_perturbations
from precompute.pipeline import run_pipeline
from precompute.run_config import RunConfig


def test_identical_spaces_overlap_completely_and_a_rescaled_copy_too() -> None:
    x = np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32)
    a = ko.neighbour_sets(x, 20)
    b = ko.neighbour_sets(3.0 * x, 20)  # cosine ignores scale
    for k in (5, 10, 20):
        assert np.array_equal(ko.jaccard_at_k(a, b, k), np.ones(200))


def test_a_constructed_overlap_gives_its_jaccard() -> None:
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [0, 1, 2, 3]])
    b = np.array([[4, 3, 9, 10], [9, 10, 11, 12], [3, 2, 1, 0]])
    np.testing.assert_allclose(ko.jaccard_at_k(a, b, 4), [2 / 6, 0.0, 1.0])
    np.testing.assert_allclose(ko.jaccard_at_k(a, b, 2), [0.0, 0.0, 0.0])  # only the first k count
    with pytest.raises(ValueError, match="k = 5 is outside 1..4"):
        ko.jaccard_at_k(a, b, 5)


def test_neighbours_agree_with_scikit_learn_on_random_data() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    ours_x, ours_y = ko.neighbour_sets(x, 10), ko.neighbour_sets(y, 10)

    def sk(z: np.ndarray) -> np.ndarray:
        nn = NearestNeighbors(n_neighbors=11, metric="cosine", algorithm="brute").fit(z)
        return nn.kneighbors(z, return_distance=False)[:, 1:]  # the first is the point itself

    assert np.array_equal(np.sort(ours_x, axis=1), np.sort(sk(x), axis=1))
    sets_x, sets_y = sk(x), sk(y)
    expected = [len(set(p) & set(q)) / len(set(p) | set(q)) for p, q in zip(sets_x, sets_y, strict=True)]
    np.testing.assert_allclose(ko.jaccard_at_k(ours_x, ours_y, 10), expected)
    # Two unrelated spaces overlap about as much as chance says.
    assert abs(float(np.mean(expected)) - ko.random_jaccard(300, 10)) < 0.01


def test_random_expectation_and_usable_k() -> None:
    assert ko.random_jaccard(3, 1) == pytest.approx(0.5 * 1.0)  # same 1 of 2 with probability 1/2
    assert ko.usable_k([20, 5, 10, 5], 12) == [5, 10]
    with pytest.raises(ValueError, match=r"positive integers, got \[0\]"):
        ko.usable_k([0, 5], 100)


def test_summary_counts_the_perturbations_with_no_shared_neighbour() -> None:
    a = np.array([[1, 2], [0, 2], [0, 1]])
    b = np.array([[1, 2], [2, 0], [1, 0]])
    table = ko.overlap_table({"s:a": a, "s:b": b, "s:c": b}, ko.all_pairs(["s:a", "s:b"]), [1], ["x", "y", "z"])
    assert table["jaccard_1"].tolist() == [1.0, 0.0, 0.0]
    (row,) = ko.overlap_summary(table, [1], 3)
    assert row["k1"]["none_shared"] == pytest.approx(2 / 3) and row["n_perturbations"] == 3
    with pytest.raises(ValueError, match=r"spaces \['s:d'\]"):
        ko.overlap_table({"s:a": a}, [("s:a", "s:d")], [1], ["x", "y", "z"])


def test_the_stage_compares_every_pair_of_spaces_of_the_tiny_store(tiny_store) -> None:
    d = PhenomixData(tiny_store)
    table = d.artifact("knn_overlap", "overlap")
    summary = d.artifact("knn_overlap", "summary")
    spaces = [f"{e}:{s}" for e in d.embedders for s in ("raw", *d.run["config"]["align_methods"])]
    assert sorted(summary["spaces"]) == sorted(spaces)
    pairs = set(zip(table["left"], table["right"], strict=True))
    assert len(pairs) == len(spaces) * (len(spaces) - 1) // 2 and all(a != b for a, b in pairs)
    pooled = d.perturbations()
    pooled_ids = pooled.loc[pooled["level"] == "pooled", "pert_id"].tolist()
    assert summary["n_perturbations"] == len(pooled_ids)
    # The primary space's neighbours are those of the aggregate stage's entities; raw ones re-aggregated.
    e, align = d.primary_embedder, d.primary_align
    keep = (pooled["level"] == "pooled").to_numpy()
    k = summary["k"][-1]
    aligned = ko.neighbour_sets(np.asarray(d.artifact("aggregate", "embeddings"))[keep], k)
    raw_agg, _ = aggregate_perturbations(d.well_embeddings("raw"), d.wells)
    raw = ko.neighbour_sets(raw_agg[keep], k)
    sub = table[(table["left"] == f"{e}:raw") & (table["right"] == f"{e}:{align}")]
    assert sub["pert_id"].tolist() == pooled_ids
    np.testing.assert_allclose(sub[f"jaccard_{k}"], ko.jaccard_at_k(raw, aligned, k), rtol=1e-6)
    row = next(p for p in summary["pairs"] if (p["left"], p["right"]) == (f"{e}:raw", f"{e}:{align}"))
    assert row[f"k{k}"]["mean"] == pytest.approx(float(sub[f"jaccard_{k}"].mean()), rel=1e-5)


def test_configured_pairs_and_k_are_honoured_and_a_bad_space_is_named(tiny_screen, tmp_path, monkeypatch) -> None:
    from precompute import projection

    monkeypatch.setattr(projection, "umap_2d", lambda x, **kw: np.asarray(x, np.float32)[:, :2].copy())
    opts = {"knn_overlap": {"k": [3], "pairs": [["pixelstats:raw", "random:tvn"]]}}
    cfg = RunConfig(embedders=("random", "pixelstats"), primary_embedder="pixelstats", stage_options=opts)
    run_pipeline(tiny_screen, tmp_path / "store", cfg, progress=False)
    d = PhenomixData(tmp_path / "store")
    table = d.artifact("knn_overlap", "overlap")
    assert set(zip(table["left"], table["right"], strict=True)) == {("pixelstats:raw", "random:tvn")}
    assert [c for c in table.columns if c.startswith("jaccard_")] == ["jaccard_3"]
    bad = RunConfig(embedders=("random", "pixelstats"), primary_embedder="pixelstats",
                    stage_options={"knn_overlap": {"pairs": [["pixelstats:raw", "mae:tvn"]]}})
    with pytest.raises(ValueError, match="unknown space 'mae:tvn'"):
        run_pipeline(tiny_screen, tmp_path / "store", bad, progress=False)
