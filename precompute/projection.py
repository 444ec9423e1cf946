"""The project stage's science: PCA then UMAP to 2-D for the map pages (runner: precompute/stages/project.py).

UMAP (umap-learn) is fitted on at most ``sample`` points; every other point is placed at the
membership-weighted mean of its ``n_neighbors`` nearest fitted points (UMAP's own fuzzy
weights from its search index: exactly the starting position of ``UMAP.transform``), without
the 30 epochs of layout refinement ``transform`` then runs. That refinement was 85% of the cost
(about 200 s per 900,000 points here) and, measured, lowers neighbour preservation rather than
raising it.

A fit on more than ``2 * init_sample`` points starts from a layout rather than from UMAP's
spectral initialisation: ``init_sample`` of them are fitted as usual, the others placed as
above, and that layout is the ``init`` of the full fit, which then runs its usual epochs over
the whole neighbour graph. The spectral initialisation of a large graph is most of a plain
fit's cost, and the epochs from a placed layout reach the plain fit's neighbour preservation
(benchmarks/bench_umap_placement.py). ``random_state`` is fixed so a rerun writes identical
coordinates (umap-learn then runs single-threaded: determinism matters more here than speed,
because artifacts are compared byte for byte after a crash and rerun).
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


INIT_SAMPLE = 5_000  # points fitted plainly to lay out the start of a larger fit
LAID_OUT_EPOCHS = 200  # epochs of a fit that starts from a placed layout (umap-learn's default above 10,000 points)


def umap_2d(
    x: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.3,
    metric: str = "cosine",
    sample: int = 100_000,
    seed: int = 0,
    init_sample: int = INIT_SAMPLE,
) -> np.ndarray:
    """(n, d) -> (n, 2) float32 UMAP coordinates; fit on a seeded sample when n > sample."""
    n = x.shape[0]
    if n < 4:
        return np.zeros((n, 2), dtype=np.float32)
    opts = dict(n_neighbors=int(min(n_neighbors, n - 1)), min_dist=min_dist, metric=metric, seed=seed)
    with warnings.catch_warnings():
        # umap warns that random_state disables parallelism: that is the point (reproducible artifacts).
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        if n <= sample:
            return _fit(x, init_sample=init_sample, **opts).embedding_.astype(np.float32)
        idx = _seeded_sample(n, sample, seed)
        log.info("UMAP: fitting on %d of %d points, placing the rest", sample, n)
        reducer = _fit(x[idx], init_sample=init_sample, **opts)
        return _fill_by_placing(reducer, x, idx)


def _seeded_sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _fit(x: np.ndarray, *, n_neighbors: int, min_dist: float, metric: str, seed: int, init_sample: int,
         laid_out_epochs: int = LAID_OUT_EPOCHS):
    """A fitted umap.UMAP on all of ``x``; above ``2 * init_sample`` points its start is a placed
    layout (see the module's docstring) instead of the spectral initialisation, refined for
    ``laid_out_epochs`` epochs."""
    import umap  # heavy import (numba JIT); only precompute ever pays for it

    def reducer(init="spectral"):
        laid_out = not isinstance(init, str)
        return umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric=metric, random_state=seed,
                         n_components=2, init=init, n_epochs=laid_out_epochs if laid_out else None)

    n = x.shape[0]
    if n <= 2 * init_sample:
        return reducer().fit(x)
    idx = _seeded_sample(n, init_sample, seed)
    start = reducer().fit(x[idx])
    init = _fill_by_placing(start, x, idx).astype(np.float64)
    log.info("UMAP: %d points laid out from a fit on %d, then fitted together", n, init_sample)
    return reducer(init).fit(x)


def _fill_by_placing(reducer, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(n, 2): the fitted coordinates at rows ``idx`` (the rows ``reducer`` was fitted on), every
    other row placed from its fitted neighbours."""
    out = np.empty((x.shape[0], 2), dtype=np.float32)
    out[idx] = reducer.embedding_
    rest = np.setdiff1d(np.arange(x.shape[0]), idx)
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
    pcs = _pcs(x, n_pca, sample, seed)
    return {"pca": pcs, "umap": umap_2d(pcs, n_neighbors=n_neighbors, sample=sample, seed=seed)}


def _pcs(x: np.ndarray, n_pca: int, sample: int, seed: int) -> np.ndarray:
    n = x.shape[0]
    fit_rows = _seeded_sample(n, sample, seed) if n > sample else None
    return pca_reduce(x, n_pca, seed=seed, fit_rows=fit_rows)


def project_many(arrays: dict[str, np.ndarray], *, parallel_from: int = 200_000, **opts) -> dict[str, np.ndarray]:
    """``project(x, **opts)['umap']`` for each named array. When the largest has at least
    ``parallel_from`` rows and there are two cores, the first array is projected in a worker
    process while this one does the rest: a seeded UMAP runs on one thread only (that is what keeps
    it reproducible), so a second core otherwise idles through the longest stage. Results are the
    same either way (each projection is single-threaded with its own fixed seed)."""
    import os

    names = list(arrays)
    big = max((len(a) for a in arrays.values()), default=0) >= parallel_from
    if len(names) < 2 or not big or (os.cpu_count() or 1) < 2:
        return {k: project(arrays[k], **opts)["umap"] for k in names}
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # PCA here (BLAS, both cores), then only the (n, 50) components travel to the worker
    n_pca, sample, seed = opts.get("n_pca", 50), opts.get("sample", 100_000), opts.get("seed", 0)
    pcs = _pcs(arrays[names[0]], n_pca, sample, seed)
    umap_opts = {"n_neighbors": opts.get("n_neighbors", 15), "sample": sample, "seed": seed}
    # spawn, not fork: numba's threading layer, once started in this process, does not survive a fork
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        first = pool.submit(_umap_worker, pcs, umap_opts)
        out = {k: project(arrays[k], **opts)["umap"] for k in names[1:]}
        out[names[0]] = first.result()
    return {k: out[k] for k in names}


def _umap_worker(pcs: np.ndarray, opts: dict) -> np.ndarray:
    return umap_2d(pcs, **opts)
