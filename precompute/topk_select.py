"""Exact top-k and bottom-k per row of a similarity block, in one pass, on every core (numba).

``relate.top_k_neighbours`` computes similarities block by block with a float32 matmul; this picks
each row's k largest and k smallest. Two ``argpartition`` calls per row (the previous way) each
move all n values around; here each row is scanned once and a value is only looked at twice when
it beats the current k-th best, which after the first few hundred columns almost none do. Rows
run in parallel (numba ``prange``). Order and ties: by value, then by the lower column index,
also at the k-th place (the column scanned first wins a tie), so the result is fully determined.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _push(vals, idx, filled, k, v, j, sign):  # pragma: no cover - compiled
    """Insert (v, j) into the kept list ordered by ``sign * value`` descending (sign -1: ascending)
    when it beats the k-th kept; an equal value already kept stays first. Returns the new fill."""
    if filled == k and not sign * v > sign * vals[k - 1]:
        return filled
    pos = filled if filled < k else k - 1
    while pos > 0 and sign * vals[pos - 1] < sign * v:
        vals[pos] = vals[pos - 1]
        idx[pos] = idx[pos - 1]
        pos -= 1
    vals[pos] = v
    idx[pos] = j
    return filled + 1 if filled < k else k


@numba.njit(parallel=True, cache=False, nogil=True)
def select_extremes(sims, skip, k, top_idx, top_val, bot_idx, bot_val):  # pragma: no cover - compiled
    """For each row r of ``sims`` (b, n): the k largest (descending) and k smallest (ascending)
    values and their columns, leaving out column ``skip[r]`` (-1: none). Writes into the outputs."""
    b, n = sims.shape
    for r in numba.prange(b):
        filled_t = 0
        filled_b = 0
        s = sims[r]
        for j in range(n):
            if j != skip[r]:
                filled_t = _push(top_val[r], top_idx[r], filled_t, k, s[j], j, 1.0)
                filled_b = _push(bot_val[r], bot_idx[r], filled_b, k, s[j], j, -1.0)


def extremes(sims: np.ndarray, skip: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(b, n) similarities -> (top_idx, top_val, bottom_idx, bottom_val), each (b, k); ``skip`` (b,)
    is the column to leave out per row (-1 for none). k must be at most the columns left."""
    b = sims.shape[0]
    out = (np.empty((b, k), np.int64), np.empty((b, k), sims.dtype), np.empty((b, k), np.int64),
           np.empty((b, k), sims.dtype))
    if b and k:
        select_extremes(np.ascontiguousarray(sims), np.ascontiguousarray(skip, dtype=np.int64), k, *out)
    return out
