"""The characterise stage's science: what the dashboard says about a perturbation beyond its
neighbours (the runner, precompute/stages/characterise.py, writes it; docs/artifacts.md lists the files):

- **Match significance** (precompute/significance.py, docs/significance.md): p and BH q of every
  pair the stored neighbour lists show, plus what an on-demand p/q for any opened pair needs
  without redoing the expensive part: the pseudo-perturbation null (``MatchNull`` arrays) and the
  family's sorted p-values. Families beyond ``FAMILY_EXACT_MAX`` pairs keep the p-values of a
  seeded uniform sample of pairs (BH on the sample estimates the full family's q); the manifest
  says so, with both counts.
- **Dose-response** (precompute/dose_response.py, docs/dose-response.md): each compound's 4PL
  fit of its wells' Euclidean distance to their plate's control mean in the aligned space, and
  the per-well points the curve is drawn from.
- **Feature drivers** (precompute/feature_drivers.py, docs/feature-drivers.md), only for
  embedders with named features (pixel statistics, CellProfiler profiles): effect size and q
  per perturbation x feature, and the parsed feature names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from precompute.screen import Screen
from precompute.significance import MatchNull, PairFamily, _overlap_key, family_pairs, pair_family, pair_pvalue

FAMILY_EXACT_MAX = 4_000_000  # 32 MB of float64 p-values; larger families are sampled
LIST_PAIRS_MAX = 50_000_000  # above this many pairs the family is sampled without listing it (0.8 GB of indices)


def neighbour_significance(unit: np.ndarray, means: np.ndarray, idx: np.ndarray, entities: pd.DataFrame,
                           null: MatchNull, family: PairFamily) -> tuple[np.ndarray, np.ndarray]:
    """p and q (float64, shape of ``idx``) of each (row, idx[row, j]) neighbour pair. NaN where the
    two share wells (a compound's pooled entity and one of its doses): such pairs are not tested."""
    n, k = idx.shape
    a = np.repeat(np.arange(n), k)
    b = np.asarray(idx, dtype=np.int64).ravel()
    p = pair_pvalue(unit, means, a, b, null) if a.size else np.empty(0)
    key = _overlap_key(entities)
    p = np.where((key[a] == key[b]) | (a == b), np.nan, p)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any() and family.size:
        q[ok] = family.qvalue(p[ok])
    return p.reshape(n, k), q.reshape(n, k)


def _sample_pairs(entities: pd.DataFrame, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A seeded uniform sample of at most ``size`` family pairs (a < b, sharing no wells) without
    listing the family, and the family's size. Draws linear indices into the upper triangle and
    drops the few pairs that share wells, so slightly fewer than ``size`` may come back."""
    n = len(entities)
    key = _overlap_key(entities)
    total = n * (n - 1) // 2
    family = total - int(sum(c * (c - 1) // 2 for c in np.bincount(key)))
    k = np.sort(np.random.default_rng(seed).choice(total, min(size, total), replace=False))
    # row a holds the pairs (a, a+1..n-1): it starts at a n - a (a + 1) / 2
    a = np.floor((2 * n - 1 - np.sqrt((2 * n - 1) ** 2 - 8 * k.astype(np.float64))) / 2).astype(np.int64)
    start = a * n - a * (a + 1) // 2
    a = np.where(start > k, a - 1, a)  # the square root's rounding, either way
    start = a * n - a * (a + 1) // 2
    a = np.where(k - start >= n - 1 - a, a + 1, a)
    start = a * n - a * (a + 1) // 2
    b = k - start + a + 1
    keep = key[a] != key[b]
    return a[keep], b[keep], family


def sampled_family(unit: np.ndarray, means: np.ndarray, entities: pd.DataFrame, null: MatchNull, *,
                   max_pairs: int = FAMILY_EXACT_MAX, seed: int = 0) -> tuple[PairFamily, dict[str, Any]]:
    """The BH family's sorted p-values: every pair when there are at most ``max_pairs``, else a
    seeded uniform sample of about ``max_pairs`` of them. Returns (PairFamily, info for the manifest)."""
    n = len(entities)
    if n * (n - 1) // 2 <= LIST_PAIRS_MAX:  # small enough to list: exactly max_pairs drawn from the list
        a, b = family_pairs(entities)
        if a.size <= max_pairs:
            fam = pair_family(unit, means, entities, null)
            return fam, {"family_pairs": int(a.size), "p_values_kept": fam.size, "sampled": False}
        pick = np.sort(np.random.default_rng(seed).choice(a.size, max_pairs, replace=False))
        a, b, family = a[pick], b[pick], int(a.size)
    else:  # the million-well screen's family is 5.6e8 pairs: sampled without listing it
        a, b, family = _sample_pairs(entities, max_pairs, seed)
    chunk = 1 << 22
    p = np.concatenate([pair_pvalue(unit, means, a[i:i + chunk], b[i:i + chunk], null)
                        for i in range(0, a.size, chunk)])
    return PairFamily(np.sort(p)), {"family_pairs": family, "p_values_kept": int(a.size), "sampled": True,
                                    "note": "q from BH on a seeded uniform sample of the family's pairs"}


def dose_points(wells: pd.DataFrame, response: np.ndarray, compounds: list[str]) -> pd.DataFrame:
    """Per-well points of the fitted compounds' curves: well, perturbation, dose, plate, response."""
    conc = pd.to_numeric(wells.get("concentration_um", pd.Series(np.nan, index=wells.index)), errors="coerce")
    keep = (wells["perturbation_type"].astype(str) == "compound").to_numpy() & np.isfinite(conc.to_numpy())
    keep &= wells["perturbation"].astype(str).isin(compounds).to_numpy()
    return pd.DataFrame({"well_id": wells["well_id"].astype(str).to_numpy()[keep],
                         "perturbation": wells["perturbation"].astype(str).to_numpy()[keep],
                         "concentration_um": conc.to_numpy(dtype=np.float64)[keep],
                         "plate": wells["plate"].astype(str).to_numpy()[keep],
                         "response": np.asarray(response, dtype=np.float64)[keep]})


def control_response(wells: pd.DataFrame, response: np.ndarray, is_control: np.ndarray) -> pd.DataFrame:
    """Per plate: the negative controls' median response (the curve's dose-zero level)."""
    ctrl = np.asarray(is_control, dtype=bool)
    df = pd.DataFrame({"plate": wells["plate"].astype(str).to_numpy()[ctrl], "response": np.asarray(response)[ctrl]})
    return df.groupby("plate", sort=True)["response"].agg(["median", "size"]).reset_index().rename(
        columns={"median": "median_response", "size": "n_controls"})


def feature_names_for(emb_name: str, screen: Screen, n_features: int) -> list[str] | None:
    """Names of the embedder's features, or None for embedders without named features. Raises
    when the names do not match the embedding's width (a stale or foreign screen.json)."""
    if emb_name == "pixelstats":
        from precompute.embed.embedders.pixelstats import PixelStatsEmbedder

        names = PixelStatsEmbedder(len(screen.channels)).feature_names(list(screen.channels))
    elif emb_name == "features":
        names = screen.descriptor.get("feature_names")
        if names is None:
            # An embeddings-only screen (the large synthetic preset, an imported embedding matrix):
            # its columns are unnamed dimensions, so there are no feature drivers to name.
            return None
    else:
        return None
    if len(names) != n_features:
        raise ValueError(f"{emb_name}: {len(names)} feature names for {n_features} embedding columns "
                         f"({screen.root / 'screen.json'})")
    return [str(n) for n in names]
