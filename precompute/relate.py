"""Relate: cosine similarities between embeddings, nearest / farthest neighbours, null samples.

All functions take (n, d) arrays; similarities are computed on L2-normalised rows (a zero row
stays zero, so its cosine with anything is 0). Block-wise matmuls keep memory at
O(block_rows x n) rather than O(n^2).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from precompute import topk_select

logger = logging.getLogger(__name__)


def _check_finite(x: np.ndarray, name: str) -> None:
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise ValueError(f"{name} has NaN or inf values: first bad row is index {int(np.argmin(finite))}")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero. (n, d) -> (n, d), float dtype kept
    (float32 for non-float input)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array (n, d), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1).astype(x.dtype)


def cosine_similarity(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity matrix (n_a, n_b) between rows of a and rows of b (b=None: a with itself).

    Dense output: use top_k_neighbours for large n. Values are clipped to [-1, 1].
    """
    an = l2_normalise(a)
    bn = an if b is None else l2_normalise(b)
    return np.clip(an @ bn.T, -1.0, 1.0)


def top_k_neighbours(
    emb: np.ndarray,
    k: int,
    *,
    queries: np.ndarray | None = None,
    exclude_self: bool = True,
    block_rows: int = 4096,
) -> dict[str, np.ndarray]:
    """Most similar and most anti-similar rows for each query row, by cosine similarity (exact).

    Args:
        emb: (n, d) embeddings (normalised here; float32 arithmetic).
        k: neighbours per query. Clipped to the number of candidates (n, or n-1 when
            excluding self), so the returned width may be smaller than k.
        queries: optional (n_queries,) integer row indices into emb; default all rows.
        exclude_self: drop each query's own row from its lists.
        block_rows: queries per matmul block (memory ~ block_rows x n x 4 bytes).

    Returns:
        dict with ``top_idx``/``top_sim`` (n_queries, k) sorted by descending similarity and
        ``bottom_idx``/``bottom_sim`` (n_queries, k) sorted ascending (most anti-similar first);
        idx int64, sim float32. Ties, also at the k-th place, go to the lower row index.
    """
    x = l2_normalise(np.asarray(emb)).astype(np.float32, copy=False)
    _check_finite(x, "emb")
    n = x.shape[0]
    q_idx = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64).ravel()
    if q_idx.size and (q_idx.min() < 0 or q_idx.max() >= n):
        bad = q_idx[(q_idx < 0) | (q_idx >= n)][0]
        raise IndexError(f"query index {bad} is outside 0..{n - 1}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k_eff = max(0, min(k, n - 1 if exclude_self else n))
    out = {
        "top_idx": np.empty((q_idx.size, k_eff), dtype=np.int64),
        "top_sim": np.empty((q_idx.size, k_eff), dtype=np.float32),
        "bottom_idx": np.empty((q_idx.size, k_eff), dtype=np.int64),
        "bottom_sim": np.empty((q_idx.size, k_eff), dtype=np.float32),
    }
    if k_eff == 0:
        return out
    for lo in range(0, q_idx.size, block_rows):
        qb = q_idx[lo : lo + block_rows]
        sims = x[qb] @ x.T  # (b, n) float32, BLAS on every core
        # one scan per row picks both lists (numba, every core): see precompute/topk_select.py
        picked = topk_select.extremes(sims, qb if exclude_self else np.full(qb.size, -1), k_eff)
        for name, arr in zip(("top_idx", "top_sim", "bottom_idx", "bottom_sim"), picked, strict=True):
            out[name][lo : lo + qb.size] = arr
    return out


def similarity_matrix_f16(unit: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, block_rows: int = 2048) -> np.ndarray:
    """(len(rows), len(cols)) float16 dot products of already-normalised rows, filled block by block:
    at 19,000 x 19,000 the float32 matrix alone is 1.4 GB, its float16 copy 0.7 GB; only the latter is kept."""
    out = np.empty((len(rows), len(cols)), dtype=np.float16)
    right = np.ascontiguousarray(unit[cols].T)
    for lo in range(0, len(rows), block_rows):
        out[lo : lo + block_rows] = unit[rows[lo : lo + block_rows]] @ right
    return out


def neighbours_of(
    emb_normalised: np.ndarray, query_index: int, k: int, *, most_similar: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Fast path for one query (dashboard clicks): k nearest (or farthest) rows, self excluded.

    Args:
        emb_normalised: (n, d) rows already L2-normalised (see l2_normalise), ideally float32 and
            C-contiguous so the matvec streams memory once.
        query_index: row of the query.
        k: number of neighbours (clipped to n-1).
        most_similar: True for descending similarity, False for the most anti-similar ascending.

    Returns:
        (idx int64 (k,), sim (k,)) sorted as requested; ties broken by lower index.
    """
    n = emb_normalised.shape[0]
    if not 0 <= query_index < n:
        raise IndexError(f"query index {query_index} is outside 0..{n - 1}")
    sims = emb_normalised @ emb_normalised[query_index]
    key = -sims if most_similar else sims.copy()
    key[query_index] = np.inf
    k = max(0, min(k, n - 1))
    if k == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=sims.dtype)
    part = np.argpartition(key, k - 1)[:k] if k < n else np.arange(n)
    idx = part[np.lexsort((part, key[part]))].astype(np.int64)
    return idx, sims[idx]


def distance_to_plate_controls(
    emb: np.ndarray, plates: np.ndarray, is_control: np.ndarray, metric: str = "cosine"
) -> np.ndarray:
    """Distance of each well to the centroid (mean) of its plate's negative-control wells.

    Args:
        emb: (n, d); plates: (n,) plate labels; is_control: (n,) bool negative controls.
        metric: "cosine" (1 - cosine similarity; 0..2) or "euclidean".

    Returns:
        (n,) float64; NaN for wells on plates without controls (a warning names those plates),
        so the dashboard can show the gap instead of crashing.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    x = np.asarray(emb)
    _check_finite(x, "emb")
    plates = np.asarray(plates)
    is_control = np.asarray(is_control, dtype=bool)
    if plates.shape != (x.shape[0],) or is_control.shape != (x.shape[0],):
        raise ValueError(f"plates and is_control must have shape ({x.shape[0]},)")
    codes, labels = pd.factorize(plates, sort=False)
    n_plates = len(labels)
    counts = np.bincount(codes[is_control], minlength=n_plates)
    sums = np.zeros((n_plates, x.shape[1]))
    np.add.at(sums, codes[is_control], x[is_control].astype(np.float64))  # controls are few: add.at is fine here
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = sums / counts[:, None]
    missing = counts == 0
    if missing.any():
        names = [str(p) for p in labels[missing]]
        logger.warning(
            "%d plate(s) have no negative-control wells; their distances are NaN: %s%s",
            len(names),
            ", ".join(names[:10]),
            " ..." if len(names) > 10 else "",
        )
    dist = np.empty(x.shape[0])
    # float64 arithmetic in row chunks: a float64 copy of 10^6 x 384 wells (and of their centroids) is 3 GB each
    for lo in range(0, x.shape[0], 65536):
        xb = np.asarray(x[lo : lo + 65536], dtype=np.float64)
        c = centroids[codes[lo : lo + 65536]]
        if metric == "euclidean":
            dist[lo : lo + 65536] = np.linalg.norm(xb - c, axis=1)
            continue
        num = np.einsum("ij,ij->i", xb, c)
        den = np.linalg.norm(xb, axis=1) * np.linalg.norm(c, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        dist[lo : lo + 65536] = 1.0 - np.clip(cos, -1.0, 1.0)
    if metric == "cosine":
        dist[missing[codes]] = np.nan
    return dist


def null_similarity_sample(emb: np.ndarray, n_pairs: int, seed: int = 0) -> np.ndarray:
    """Sorted (ascending) cosine similarities of ``n_pairs`` random pairs of distinct rows.

    Pairs are drawn uniformly with replacement from the ordered pairs (i, j), i != j.
    Returns float32 (n_pairs,). Deterministic for a given seed.
    """
    x = l2_normalise(np.asarray(emb)).astype(np.float32, copy=False)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 rows to sample pairs, got {n}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = rng.integers(0, n - 1, n_pairs)
    j += j >= i  # skip the diagonal without rejection sampling
    out = np.empty(n_pairs, dtype=np.float32)
    for lo in range(0, n_pairs, 65536):
        a, b = i[lo : lo + 65536], j[lo : lo + 65536]
        out[lo : lo + 65536] = np.einsum("ij,ij->i", x[a], x[b])
    out.sort()
    return np.clip(out, -1.0, 1.0)


def similarity_percentile(sim_values: np.ndarray | float, null_sorted: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each similarity within a sorted null sample (mid-rank for ties).

    100 * (#null < v + #null <= v) / (2 * len(null)): a value equal to the null median gets 50.
    """
    null_sorted = np.asarray(null_sorted)
    if null_sorted.size == 0:
        raise ValueError("null sample is empty")
    v = np.asarray(sim_values)
    below = np.searchsorted(null_sorted, v, side="left")
    at_or_below = np.searchsorted(null_sorted, v, side="right")
    return 100.0 * (below + at_or_below) / (2.0 * null_sorted.size)


def first_pc(emb: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
    """Score on the first principal component of all wells (sign fixed: controls' mean below 0).
    The component comes from every (n // 20000)-th well; scores are (emb - mean) @ pc computed as
    emb @ pc - mean @ pc, so no centred copy of the wells is made."""
    mean = np.asarray(emb.mean(axis=0, dtype=np.float64), dtype=np.float32)
    sub = np.asarray(emb[:: max(1, len(emb) // 20000)]) - mean
    _, _, vt = np.linalg.svd(sub, full_matrices=False)
    pc = np.asarray(emb @ vt[0]) - mean @ vt[0]
    if ctrl.any() and pc[ctrl].mean() > 0:
        pc = -pc
    return pc.astype(np.float32)
