"""PCA-TVN: the way EFAAR builds its maps, with the PCA width chosen from the control count.

EFAAR's ``tvn_on_controls`` (precompute.align.tvn_on_controls, equal to the reference) whitens
each batch with the covariance of that batch's negative controls. It does not re-center batches,
and its covariance is only as good as the number of controls behind it. EFAAR's own map-building
recipe therefore runs it on a PCA embedding (``efaar.embed_by_pca``: StandardScaler per batch over
*all* wells, then PCA, 128 components by default), and its published maps are "128-dimensional
PCA-TVN maps" of screens with hundreds of controls per batch.

With few controls per batch (the demo screen has about 47) whitening 128 or more directions
estimated from 47 wells adds batch-specific noise: the per-batch transforms differ at random and
a nearest-neighbour classifier then tells batches apart *better* than before alignment
(measured on the demo: random embeddings 0.31 -> 0.83, chance 0.33). Keeping only as many
components as the smallest batch's controls can estimate (``n_controls / 3``, capped at EFAAR's
128) avoids that. The choice is returned so the stage can record it.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from precompute.align import (
    AlignmentError,
    _apply_affines,
    _batch_groups,
    _check_inputs,
    _flip_signs,
    _out_dtype,
    _pca_fit,
    _scaler_stats,
    tvn_on_controls,
)

logger = logging.getLogger(__name__)

EFAAR_COMPONENTS = 128  # efaar.embed_by_pca's default width
CONTROLS_PER_COMPONENT = 3  # a batch covariance needs several controls per direction it whitens
_CHUNK = 65536


def tvn_components(is_control: np.ndarray, batches: np.ndarray | None, dim: int,
                   *, cap: int = EFAAR_COMPONENTS, per_component: int = CONTROLS_PER_COMPONENT) -> int:
    """Principal components whose per-batch control covariance the controls can estimate:
    ``min(cap, dim, smallest batch's controls // per_component)``, at least 2."""
    is_control = np.asarray(is_control, dtype=bool)
    groups = _batch_groups(None if batches is None else np.asarray(batches), is_control.size)
    fewest = min(int(is_control[rows].sum()) for _, rows in groups)
    return int(max(2, min(cap, dim, fewest // per_component)))


def _batch_stats(emb: np.ndarray, batches: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, mean, std) per batch over all its wells (StandardScaler: ddof 0, constant -> 1)."""
    return [(rows, *_scaler_stats(emb[rows])) for _, rows in _batch_groups(batches, emb.shape[0])]


def pca_tvn(
    emb: np.ndarray,
    is_control: np.ndarray,
    batches: np.ndarray | None,
    *,
    n_components: int | Literal["auto"] = "auto",
    reg: float = 0.5,
    fallback: Literal["error", "pooled"] = "error",
) -> tuple[np.ndarray, dict]:
    """EFAAR's map recipe: ``tvn_on_controls(embed_by_pca(emb, batch_col), batch_col)``.

    (1) each batch standardised over all its wells; (2) PCA with ``n_components`` fitted on all
    wells (sklearn's covariance solver and sign convention); (3) TVN exactly as EFAAR.

    Args:
        emb: (n_wells, d) embeddings; is_control: (n_wells,) bool; batches: (n_wells,) labels.
        n_components: PCA width, or "auto" for :func:`tvn_components`.
        reg, fallback: passed to :func:`precompute.align.tvn_on_controls`.

    Returns:
        (aligned (n_wells, k') array in the input's float dtype, info dict with the width used).
    """
    emb, is_control, batches = _check_inputs(emb, is_control, batches)
    d = emb.shape[1]
    if n_components == "auto":
        k = tvn_components(is_control, batches, d)
    elif isinstance(n_components, (int, np.integer)) and 1 <= int(n_components):
        k = int(min(int(n_components), d))
    else:
        raise ValueError(f"n_components must be a positive integer or 'auto', got {n_components!r}")
    if k > emb.shape[0]:
        raise AlignmentError(f"PCA-TVN: {k} components asked for but only {emb.shape[0]} wells")
    stats = _batch_stats(emb, batches)
    n = emb.shape[0]
    if n >= 10 * d:
        # sklearn's covariance_eigh branch, from a Gram matrix accumulated in chunks so a million
        # wells never need a float64 copy of the whole matrix.
        gram, total = np.zeros((d, d)), np.zeros(d)
        for rows, mean, scale in stats:
            for lo in range(0, rows.size, _CHUNK):
                z = (emb[rows[lo:lo + _CHUNK]].astype(np.float64) - mean) / scale
                gram += z.T @ z
                total += z.sum(axis=0)
        mu = total / n
        evals, evecs = np.linalg.eigh((gram - n * np.outer(mu, mu)) / (n - 1))
        comps = _flip_signs(evecs[:, ::-1].T[:k])
    else:  # small screens: exact SVD of the standardised wells, as sklearn's 'full' solver
        z = np.empty((n, d))
        for rows, mean, scale in stats:
            z[rows] = (emb[rows].astype(np.float64) - mean) / scale
        mu, comps, _ = _pca_fit(z)
        comps = comps[:k]
    # standardise-then-project is one affine map per batch: x @ (comps.T / scale) - (mean / scale + mu) @ comps.T
    reduced = np.empty((n, k))
    _apply_affines(emb, [(rows, comps.T / scale[:, None], -(mean / scale + mu) @ comps.T)
                         for rows, mean, scale in stats], reduced)
    out = tvn_on_controls(reduced, is_control, batches, reg=reg, fallback=fallback)
    info = {"recipe": "pca_tvn", "pca_components": k, "input_dim": d,
            "n_components_rule": "auto" if n_components == "auto" else "given"}
    logger.info("PCA-TVN: %d of %d dimensions kept before TVN", k, d)
    return out.astype(_out_dtype(emb), copy=False), info
