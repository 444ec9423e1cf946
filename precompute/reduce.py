"""Project: PCA then UMAP to 2-D for the map pages.

UMAP (umap-learn) is fitted on at most ``sample`` points; every other point is placed at the
membership-weighted mean of its ``n_neighbors`` nearest fitted points (UMAP's own fuzzy
weights from its search index: exactly the starting position of ``UMAP.transform``), without
the 30 epochs of layout refinement ``transform`` then runs. That refinement was 85% of the cost
(about 200 s per 900,000 points here) and only moves points locally; for a map drawn as a
density plus a sample it changes nothing visible, and a million-well screen now costs a fitted
sample plus a nearest-neighbour query. ``random_state`` is fixed so a
rerun writes identical coordinates (umap-learn then runs single-threaded: determinism matters
more here than speed, because artifacts are compared byte for byte after a crash and rerun).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.decomposition import PCA

log = logging.getLogger("precompute")


def pca_reduce(x: np.ndarray, n_components: int = 50, *, seed: int = 0, fit_rows: np.ndarray | None = None) -> np.ndarray:
    """(n, d) -> (n, min(n_components, d, n_fit)) float32; PCA fitted on ``fit_rows`` (default all)."""
    x = np.asarray(x, dtype=np.float32)
    fit = x if fit_rows is None else x[fit_rows]
    k = int(min(n_components, x.shape[1], max(fit.shape[0] - 1, 1)))
    if k >= x.shape[1]:
        return (x - fit.mean(axis=0)).astype(np.float32)
    pca = PCA(n_components=k, svd_solver="randomized" if fit.shape[0] > 20_000 else "full", random_state=seed)
    pca.fit(fit)
    return pca.transform(x).astype(np.float32)


def umap_2d(
    x: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.3,
    metric: str = "cosine",
    sample: int = 100_000,
    seed: int = 0,
) -> np.ndarray:
    """(n, d) -> (n, 2) float32 UMAP coordinates; fit on a seeded sample when n > sample."""
    import umap  # heavy import (numba JIT); only precompute ever pays for it

    n = x.shape[0]
    if n < 4:
        return np.zeros((n, 2), dtype=np.float32)
    nn = int(min(n_neighbors, n - 1))
    reducer = umap.UMAP(n_neighbors=nn, min_dist=min_dist, metric=metric, random_state=seed, n_components=2)
    with warnings.catch_warnings():
        # umap warns that random_state disables parallelism: that is the point (reproducible artifacts).
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        if n <= sample:
            return reducer.fit_transform(x).astype(np.float32)
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=sample, replace=False))
        log.info("UMAP: fitting on %d of %d points, transforming the rest", sample, n)
        out = np.empty((n, 2), dtype=np.float32)
        out[idx] = reducer.fit_transform(x[idx])
        rest = np.setdiff1d(np.arange(n), idx)
        for start in range(0, len(rest), 200_000):
            chunk = rest[start:start + 200_000]
            out[chunk] = place_by_neighbours(reducer, x[chunk])
        return out


def place_by_neighbours(reducer, x: np.ndarray) -> np.ndarray:
    """(m, d) new points -> (m, 2): the weighted mean of their fitted neighbours' coordinates, with
    the weights ``UMAP.transform`` starts from; a point with no neighbour in reach (cosine
    distance 2) goes to the centre of the map instead of NaN."""
    import scipy.sparse as sp

    mode = reducer.transform_mode
    reducer.transform_mode = "graph"  # umap-learn >= 0.5.4: transform returns the fuzzy graph only
    try:
        graph = sp.csr_matrix(reducer.transform(x))
    finally:
        reducer.transform_mode = mode
    fitted = np.asarray(reducer.embedding_, dtype=np.float64)
    weight = np.asarray(graph.sum(axis=1)).ravel()
    out = np.asarray(graph @ fitted) / np.where(weight > 0, weight, 1.0)[:, None]
    out[weight <= 0] = fitted.mean(axis=0)
    return out.astype(np.float32)


def project(
    x: np.ndarray, *, n_pca: int = 50, n_neighbors: int = 15, sample: int = 100_000, seed: int = 0
) -> dict[str, np.ndarray]:
    """PCA (fit on the UMAP sample when large) then UMAP. Returns {'pca': (n,k), 'umap': (n,2)}."""
    n = x.shape[0]
    fit_rows = None
    if n > sample:
        fit_rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    pcs = pca_reduce(x, n_pca, seed=seed, fit_rows=fit_rows)
    return {"pca": pcs, "umap": umap_2d(pcs, n_neighbors=n_neighbors, sample=sample, seed=seed)}
