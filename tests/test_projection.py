"""Projection: UMAP fitted on a sample, the other points placed from their fitted neighbours."""

from __future__ import annotations

import warnings

import numpy as np

from precompute.projection import place_by_neighbours, umap_2d


def _clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 16)) * 3
    labels = rng.integers(0, 6, n)
    return (centres[labels] + rng.normal(size=(n, 16))).astype(np.float32), labels


def test_sampled_umap_places_the_rest_where_transform_would():
    import umap

    x, labels = _clusters(3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_neighbors=15, metric="cosine", random_state=0).fit(x[:2000])
        moved = reducer.transform(x[2000:])
    placed = place_by_neighbours(reducer, x[2000:])
    spread = np.ptp(reducer.embedding_, axis=0).mean()
    assert placed.dtype == np.float32 and np.isfinite(placed).all()
    assert np.median(np.linalg.norm(placed - moved, axis=1)) < 0.05 * spread
    # every placed point lands in its own cluster: nearest fitted point has its label
    nearest = np.argmin(((placed[:, None, :] - reducer.embedding_[None]) ** 2).sum(-1), axis=1)
    assert (labels[:2000][nearest] == labels[2000:]).mean() > 0.98


def test_sampled_umap_is_deterministic_and_keeps_fitted_rows():
    x, _ = _clusters(1500, seed=1)
    a = umap_2d(x, sample=1000, seed=0)
    b = umap_2d(x, sample=1000, seed=0)
    assert a.shape == (1500, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_projecting_several_arrays_in_a_worker_gives_the_same_maps():
    from precompute.projection import project, project_many

    x, _ = _clusters(1200, seed=2)
    y, _ = _clusters(800, seed=3)
    opts = {"n_pca": 8, "n_neighbors": 10, "sample": 1000, "seed": 0}
    both = project_many({"a": x, "b": y}, parallel_from=1000, **opts)  # a goes to the worker process
    np.testing.assert_array_equal(both["a"], project(x, **opts)["umap"])
    np.testing.assert_array_equal(both["b"], project(y, **opts)["umap"])


def test_fit_from_a_placed_layout_keeps_clusters_apart_and_is_deterministic():
    """Above 2 x init_sample points the fit starts from a small fit plus placed points (not the
    spectral layout): the map still separates the clusters and a rerun writes the same bytes."""
    x, labels = _clusters(1200, seed=4)
    a = umap_2d(x, sample=5000, seed=0, init_sample=300)
    np.testing.assert_array_equal(a, umap_2d(x, sample=5000, seed=0, init_sample=300))
    assert a.shape == (1200, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    # nearly every point's nearest other point on the map is from its own cluster
    d2 = ((a[:, None, :] - a[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert (labels[np.argmin(d2, axis=1)] == labels).mean() > 0.98


def test_small_fits_are_plain_umap():
    """Up to 2 x init_sample points nothing changes: the map is umap-learn's own fit."""
    import umap

    x, _ = _clusters(600, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = umap.UMAP(n_neighbors=15, min_dist=0.3, metric="cosine", random_state=0).fit_transform(x)
    np.testing.assert_array_equal(umap_2d(x, sample=5000, seed=0, init_sample=300), plain.astype(np.float32))
