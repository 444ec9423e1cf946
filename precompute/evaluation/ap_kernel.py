"""Average precision per query without one global sort (numba, every core).

copairs ranks each query's list of (similarity, positive?) pairs by ``1 - sim`` in float32,
positives before negatives on ties, and averages the precision at each positive. The rank of the
i-th positive (1-based, in that order) is i plus the number of negatives whose key is strictly
lower, so a query needs only its positives and its negatives sorted apart and one merge. The
previous way ordered every pair of the screen by (plate, query) and then sorted each block's
pairs under one uint64 key (query | key | positive?): at 10^6 wells, ~1.4e8 pairs, that was
most of the relate stage; a query's own lists are a few dozen values each.

Same ranks as copairs (the same float32 keys, compared the same way); the precision terms
``i / rank`` are float64 as in copairs' ``ap_contiguous``, summed in rank order.
"""

from __future__ import annotations

import numba
import numpy as np


def similarity_keys(sims: np.ndarray) -> np.ndarray:
    """copairs' rank key, ``1 - sim`` in float32 (a new array)."""
    return np.float32(1.0) - np.asarray(sims).astype(np.float32)


@numba.njit(parallel=True, cache=False, nogil=True)
def _ap_rows(pos_key, pos_lo, pos_hi, neg_key, neg_mask, use_mask, ap, n_pos, n_neg):  # pragma: no cover - compiled
    b, c = neg_key.shape
    for r in numba.prange(b):
        p = pos_key[pos_lo[r]:pos_hi[r]]
        p.sort()  # in place: each query owns its run of positives
        row = neg_key[r]
        m = 0
        for j in range(c):
            if not use_mask or neg_mask[r, j]:
                row[m] = row[j]
                m += 1
        negs = row[:m]
        negs.sort()
        j = 0
        total = 0.0
        for i in range(p.size):
            while j < m and negs[j] < p[i]:  # a negative tied with a positive ranks after it
                j += 1
            total += (i + 1) / (i + 1 + j)
        ap[r] = total / p.size if p.size else np.nan
        n_pos[r] = p.size
        n_neg[r] = m


def average_precision_rows(
    pos_key: np.ndarray,
    pos_lo: np.ndarray,
    pos_hi: np.ndarray,
    neg_key: np.ndarray,
    neg_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP of ``b`` queries, exactly as copairs ranks, from rank keys (``similarity_keys``).

    Args:
        pos_key: float32 keys of the positives of all queries; query r's are
            ``pos_key[pos_lo[r]:pos_hi[r]]`` (runs must not overlap). Sorted in place, run by run.
        pos_lo, pos_hi: (b,) run bounds.
        neg_key: (b, c) float32 keys of each query's candidate negatives; overwritten.
        neg_mask: optional (b, c) bool, True where the candidate is a negative of that query.

    Returns:
        (ap float64 (b,), n_pos int64 (b,), n_neg int64 (b,)); ap is NaN for a query without positives.
    """
    b = neg_key.shape[0]
    lo = np.ascontiguousarray(pos_lo, dtype=np.int64)
    hi = np.ascontiguousarray(pos_hi, dtype=np.int64)
    if lo.shape != (b,) or hi.shape != (b,):
        raise ValueError(f"pos_lo and pos_hi must have {b} entries, one per query; got {lo.shape} and {hi.shape}")
    for name, arr in (("pos_key", pos_key), ("neg_key", neg_key)):
        if arr.dtype != np.float32 or not arr.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous float32 array (similarity_keys), got {arr.dtype}")
    mask = np.ones((1, 1), dtype=np.bool_) if neg_mask is None else np.ascontiguousarray(neg_mask, dtype=np.bool_)
    if neg_mask is not None and mask.shape != neg_key.shape:
        raise ValueError(f"neg_mask has shape {mask.shape}, expected {neg_key.shape}")
    ap = np.empty(b, dtype=np.float64)
    n_pos = np.empty(b, dtype=np.int64)
    n_neg = np.empty(b, dtype=np.int64)
    if b:
        _ap_rows(pos_key, lo, hi, neg_key, mask, neg_mask is not None, ap, n_pos, n_neg)
    return ap, n_pos, n_neg
