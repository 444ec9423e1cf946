"""How much two embedding spaces agree on each perturbation's nearest neighbours: Jaccard at k.

For every perturbation, its k nearest perturbations by cosine similarity in space A and in space B
(exact: blocked float32 matmul + argpartition, `precompute.relate.top_k_neighbours`) are two sets
of k; their Jaccard index |A ∩ B| / |A ∪ B| is 1 when both spaces name the same neighbours and
about k / n for two unrelated spaces (`random_jaccard` gives the exact expectation).

Pure functions over numpy arrays; the knn_overlap stage (precompute/stages/knn_overlap.py) runs
them over every (embedder, space) of a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

from precompute.relate import top_k_neighbours

DEFAULT_K: tuple[int, ...] = (5, 10, 20)


def usable_k(ks: Sequence[int], n: int) -> list[int]:
    """The k of ``ks`` that a set of ``n`` points supports (1 <= k <= n - 2: with k = n - 1 every
    point's neighbours are all the others and the overlap is 1 whatever the space), ascending."""
    bad = [k for k in ks if not isinstance(k, int | np.integer) or k < 1]
    if bad:
        raise ValueError(f"k must be positive integers, got {bad!r}")
    return sorted({int(k) for k in ks if k <= n - 2})


def neighbour_sets(emb: np.ndarray, k: int, *, block_rows: int = 4096) -> np.ndarray:
    """(n, k) int64: each row's k nearest other rows by cosine similarity, most similar first
    (exact; ties broken by the lower index)."""
    return top_k_neighbours(np.asarray(emb, dtype=np.float32), k, block_rows=block_rows)["top_idx"]


def jaccard_at_k(idx_a: np.ndarray, idx_b: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64 Jaccard index of the first ``k`` columns of two neighbour lists, row by row.

    Each row of ``idx_a[:, :k]`` and ``idx_b[:, :k]`` is a set (no repeats), so after sorting the
    two rows side by side, an element present in both appears exactly twice in a row: the number
    of equal adjacent pairs is the intersection."""
    a, b = np.asarray(idx_a), np.asarray(idx_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"neighbour lists must be (n, k) with the same n, got {a.shape} and {b.shape}")
    if not 1 <= k <= min(a.shape[1], b.shape[1]):
        raise ValueError(f"k = {k} is outside 1..{min(a.shape[1], b.shape[1])} (the lists' width)")
    both = np.sort(np.concatenate([a[:, :k], b[:, :k]], axis=1), axis=1)
    inter = np.count_nonzero(both[:, 1:] == both[:, :-1], axis=1)
    return inter / (2 * k - inter)


def random_jaccard(n: int, k: int) -> float:
    """Expected Jaccard at k of two spaces that share nothing: each row's k neighbours drawn at
    random from the other n - 1 rows, independently (hypergeometric intersection I; E[I / (2k - I)])."""
    if not 1 <= k <= n - 1:
        raise ValueError(f"k = {k} is outside 1..{n - 1} for {n} points")
    i = np.arange(0, k + 1)
    p = hypergeom(n - 1, k, k).pmf(i)
    return float(np.sum(p * i / (2 * k - i)))


def overlap_table(neighbours: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]], ks: Sequence[int],
                  ids: Sequence[str]) -> pd.DataFrame:
    """One row per (pair of spaces, perturbation): ``left``, ``right``, ``pert_id`` and
    ``jaccard_{k}`` for each k. ``neighbours``: space -> (n, >= max k) neighbour lists over the
    same n perturbations, in the order of ``ids``."""
    unknown = sorted({s for p in pairs for s in p} - set(neighbours))
    if unknown:
        raise ValueError(f"pairs name spaces {unknown} that are not among {sorted(neighbours)}")
    n = len(ids)
    parts = []
    for left, right in pairs:
        cols: dict[str, object] = {"left": left, "right": right, "pert_id": np.asarray(ids, dtype=object)}
        for k in ks:
            cols[f"jaccard_{k}"] = jaccard_at_k(neighbours[left], neighbours[right], k).astype(np.float32)
        parts.append(pd.DataFrame(cols, index=pd.RangeIndex(n)))
    columns = ["left", "right", "pert_id", *(f"jaccard_{k}" for k in ks)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def overlap_summary(table: pd.DataFrame, ks: Sequence[int], n: int) -> list[dict[str, object]]:
    """Per pair: mean, median, 10th percentile and the fraction of perturbations with no shared
    neighbour at each k, beside what two unrelated spaces would give."""
    out = []
    for (left, right), sub in table.groupby(["left", "right"], sort=False):
        row: dict[str, object] = {"left": left, "right": right, "n_perturbations": int(len(sub))}
        for k in ks:
            v = sub[f"jaccard_{k}"].to_numpy(dtype=np.float64)
            row[f"k{k}"] = {"mean": float(v.mean()), "median": float(np.median(v)),
                            "p10": float(np.quantile(v, 0.1)), "none_shared": float(np.mean(v == 0)),
                            "random": random_jaccard(n, k)}
        out.append(row)
    return out


def all_pairs(spaces: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of distinct spaces, in the order the spaces are given."""
    return [(a, b) for i, a in enumerate(spaces) for b in spaces[i + 1:]]
