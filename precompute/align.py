"""Align: remove technical (batch, plate) variation from well embeddings using negative controls.

Every method takes ``emb`` (n_wells, d), a boolean ``is_control`` (n_wells,) marking negative
control wells, and optionally ``batches`` (n_wells,) labels, and returns a new (n_wells, d')
array; inputs are never modified. All statistics are computed in float64; the result has the
input's floating dtype (float32 in -> float32 out, float64 in -> float64 out, integers -> float64).

Methods
-------
- ``centerscale_on_controls``: StandardScaler fitted on control rows (ddof 0), per batch if given.
- ``tvn_on_controls``: typical variation normalisation exactly as EFAAR
  (``efaar_benchmarking.efaar.tvn_on_controls``, PyPI efaar-benchmarking 1.0).
- ``spherize``: ZCA/PCA whitening on controls as pycytominer >= 1.7.1 ``Spherize``.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits

logger = logging.getLogger(__name__)

ALIGN_METHODS: tuple[str, ...] = ("none", "centerscale", "tvn", "spherize")
_EPS = np.finfo(np.float64).eps


class AlignmentError(ValueError):
    """Alignment impossible with the given controls (names the batch and its control count)."""


# --------------------------------------------------------------------------- input checks
def _check_inputs(
    emb: np.ndarray, is_control: np.ndarray, batches: np.ndarray | None, need_controls: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"emb must be 2-D (n_wells, d), got shape {emb.shape}")
    if not _all_finite(emb):
        finite_rows = np.isfinite(emb).all(axis=1)
        first = int(np.argmin(finite_rows))
        if finite_rows.all():  # only a huge finite row overflowed the quick check
            return _check_rest(emb, is_control, batches, need_controls)
        raise ValueError(
            f"emb has NaN or inf values: first bad row is index {first} "
            f"({int((~finite_rows).sum())} bad rows in total); drop or impute them before aligning"
        )
    return _check_rest(emb, is_control, batches, need_controls)


def _all_finite(emb: np.ndarray) -> bool:
    """True when every value is finite, from one BLAS mat-vec: a NaN or inf anywhere makes its row's
    sum non-finite. (A sum can also overflow from huge finite values: the caller then checks
    value by value.) The value-by-value check costs a boolean copy of the whole screen."""
    if not np.issubdtype(emb.dtype, np.floating):
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(emb @ np.ones(emb.shape[1], dtype=emb.dtype)).all())


def _check_rest(
    emb: np.ndarray, is_control: np.ndarray, batches: np.ndarray | None, need_controls: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    is_control = np.asarray(is_control, dtype=bool)
    if is_control.shape != (emb.shape[0],):
        raise ValueError(f"is_control must have shape ({emb.shape[0]},), got {is_control.shape}")
    if need_controls and not is_control.any():
        raise AlignmentError("no control wells: alignment on controls needs at least one")
    if batches is not None:
        batches = np.asarray(batches)
        if batches.shape != (emb.shape[0],):
            raise ValueError(f"batches must have shape ({emb.shape[0]},), got {batches.shape}")
        missing = pd.isna(batches)
        if missing.any():
            raise ValueError(f"batches has missing labels: first at row index {int(np.argmax(missing))}")
    return emb, is_control, batches


def _out_dtype(emb: np.ndarray) -> np.dtype:
    return emb.dtype if np.issubdtype(emb.dtype, np.floating) else np.dtype(np.float64)


def _batch_groups(batches: np.ndarray | None, n: int) -> list[tuple[object, np.ndarray]]:
    """(label, row indices) per batch in order of first appearance (as pandas .unique())."""
    if batches is None:
        return [(None, np.arange(n))]
    codes, labels = pd.factorize(batches, sort=False)  # codes in order of first appearance
    rows_sorted = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[rows_sorted], np.arange(len(labels) + 1))
    return [(labels[g], rows_sorted[bounds[g] : bounds[g + 1]]) for g in range(len(labels))]


# --------------------------------------------------------------------------- center / scale
def _scaler_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof 0) with StandardScaler's rule: near-constant features get scale 1."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    # sklearn's _is_constant_feature: variance within floating-point error of zero -> scale 1.
    constant = var <= n * _EPS * var + (n * mean * _EPS) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def centerscale_on_controls(emb: np.ndarray, is_control: np.ndarray, batches: np.ndarray | None = None) -> np.ndarray:
    """Center and scale every feature on the control rows (per batch when ``batches`` given).

    Args:
        emb: (n_wells, d) embeddings.
        is_control: (n_wells,) bool, True for negative-control wells.
        batches: optional (n_wells,) batch labels; each batch is scaled on its own controls.

    Returns:
        (n_wells, d) array where each batch's controls have mean 0 and std 1 (ddof 0) per feature
        (features constant on the controls are only centered, as sklearn's StandardScaler does).

    Raises:
        AlignmentError: a batch has no control wells.
    """
    emb, is_control, batches = _check_inputs(emb, is_control, batches)
    out = np.empty(emb.shape, dtype=_out_dtype(emb))
    for label, rows in _batch_groups(batches, emb.shape[0]):
        ctrl = rows[is_control[rows]]
        if ctrl.size == 0:
            raise AlignmentError(f"batch '{label}' has 0 control wells; cannot center/scale it on controls")
        mean, scale = _scaler_stats(emb[ctrl])
        # float64 arithmetic in place, 65,536 rows at a time: at 10^6 wells a whole batch's float64
        # copy and its temporaries were most of the stage's memory traffic (7.5 s of it)
        contiguous = rows.size and rows[-1] - rows[0] + 1 == rows.size
        for lo in range(0, rows.size, 65536):
            part = slice(rows[0] + lo, rows[0] + min(lo + 65536, rows.size)) if contiguous else rows[lo : lo + 65536]
            block = emb[part].astype(np.float64)
            block -= mean
            block /= scale
            out[part] = block
    return out


# --------------------------------------------------------------------------- PCA as sklearn does it
def _pca_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit PCA with all components, reproducing sklearn.decomposition.PCA() (default 'auto' solver).

    Returns mean (d,), components (k, d) with k = min(n, d), singular values (k,). The sign of
    each component follows sklearn's svd_flip(u_based_decision=False): the entry of largest
    magnitude in each component is positive. Matching the solver matters only for ties and for
    the last bits; matching the sign matters because TVN's output columns flip with it.
    """
    n, d = x.shape
    mean = x.mean(axis=0)
    if d <= 1000 and n >= 10 * d:  # sklearn's 'covariance_eigh' branch (tall and skinny)
        cov = x.T @ x
        cov -= n * np.outer(mean, mean)
        cov /= n - 1
        evals, evecs = np.linalg.eigh(cov)
        evals, vt = np.clip(evals[::-1], 0.0, None), evecs[:, ::-1].T
        sing = np.sqrt(evals * (n - 1))
    else:  # 'full' branch: LAPACK SVD of the centred data
        import scipy.linalg

        _, sing, vt = scipy.linalg.svd(x - mean, full_matrices=False)
    k = min(n, d)
    return mean, _flip_signs(vt[:k]), sing[:k]


def _flip_signs(components: np.ndarray) -> np.ndarray:
    """sklearn's svd_flip(u_based_decision=False): each component's largest-magnitude entry positive."""
    k = components.shape[0]
    signs = np.sign(components[np.arange(k), np.argmax(np.abs(components), axis=1)])
    signs[signs == 0] = 1.0
    return components * signs[:, None]


def _inv_sqrt_psd(c: np.ndarray, what: str = "covariance") -> np.ndarray:
    """C^(-1/2) of a symmetric positive definite matrix via eigh (exact, fast)."""
    w, v = np.linalg.eigh(c)
    if w[0] <= w[-1] * c.shape[0] * _EPS:
        raise AlignmentError(f"{what} is singular (smallest eigenvalue {w[0]:.3g}); use reg > 0 or more controls")
    return (v / np.sqrt(w)) @ v.T


def tvn_on_controls(
    emb: np.ndarray,
    is_control: np.ndarray,
    batches: np.ndarray | None,
    *,
    reg: float = 0.5,
    fallback: Literal["error", "pooled"] = "error",
) -> np.ndarray:
    """Typical variation normalisation, step for step as EFAAR's ``tvn_on_controls``.

    (a) center-scale every feature on the controls of the whole screen (ddof 0);
    (b) PCA fitted on the control rows keeping all components, applied to every row;
    (c) center-scale again on the controls;
    (d) for each batch k (if ``batches`` given): C_k = cov(controls_k, ddof=1) + reg*I and every
        row of batch k is multiplied by C_k^(-1/2) (no per-batch re-centering).
    The four affine steps are fused into one (d x d') matrix per batch, so each well is touched
    by a single matmul; results equal the reference to float64 rounding (~1e-10).

    Args:
        emb: (n_wells, d) embeddings.
        is_control: (n_wells,) bool, negative-control wells.
        batches: (n_wells,) batch labels, or None to stop after step (c).
        reg: ridge added to each batch covariance (EFAAR uses 0.5).
        fallback: what to do for a batch with fewer than 2 controls: "error" raises
            AlignmentError; "pooled" whitens it with the pooled control covariance (warning logged).

    Returns:
        (n_wells, d') array, d' = number of principal components (= min(n_controls, d) unless
        the controls are rank deficient, see below).

    Difference from the reference: when the controls do not span all principal directions
    (n_controls <= d: the centred controls have rank n_controls-1) sklearn keeps a component
    with zero control variance and step (c) divides it by ~1e-16, so treated wells get values
    ~1e16 that whitening then smears over every column. Such components (singular value below
    numpy's matrix_rank tolerance) are dropped here with a warning.
    """
    emb, is_control, batches = _check_inputs(emb, is_control, batches)
    if fallback not in ("error", "pooled"):
        raise ValueError(f"fallback must be 'error' or 'pooled', got {fallback!r}")
    n_ctrl = int(is_control.sum())
    if n_ctrl < 2:
        raise AlignmentError(f"TVN needs at least 2 control wells in the screen, got {n_ctrl}")
    # The statistics are d x d work on the controls: single-threaded BLAS, because on a shared
    # machine two BLAS threads spin-waiting on each other make eigh and the Gram products 5-10x
    # slower, and single-threaded they cost little. Only the one pass over every well is threaded.
    with threadpool_limits(limits=1, user_api="blas"):
        maps = _tvn_maps(emb, is_control, batches, reg, fallback)
    out = np.empty((emb.shape[0], maps[0][1].shape[1]), dtype=_out_dtype(emb))
    _apply_affines(emb, maps, out)
    return out


def _tvn_maps(
    emb: np.ndarray, is_control: np.ndarray, batches: np.ndarray | None, reg: float, fallback: str
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """TVN's steps (a)-(d) fitted on the controls as one (rows, matrix, offset) affine map per batch."""
    ctrl_x = emb[is_control].astype(np.float64)
    n_ctrl = ctrl_x.shape[0]

    # (a) screen-wide scaling on controls
    mu1, s1 = _scaler_stats(ctrl_x)
    ctrl_a = (ctrl_x - mu1) / s1
    # (b) PCA on controls
    pca_mean, comps, sing = _pca_fit(ctrl_a)
    tol = sing.max(initial=0.0) * max(ctrl_a.shape) * _EPS
    keep = sing > tol
    if not keep.all():
        logger.warning(
            "TVN: %d of %d principal components have zero variance on the %d controls "
            "(controls span only %d dimensions); dropping them",
            int((~keep).sum()),
            keep.size,
            n_ctrl,
            int(keep.sum()),
        )
        comps = comps[keep]
    ctrl_b = ctrl_a @ comps.T - pca_mean @ comps.T
    # (c) second scaling on controls
    mu2, s2 = _scaler_stats(ctrl_b)
    ctrl_c = (ctrl_b - mu2) / s2

    # Fused affine map for steps (a)-(c): y = x @ A + b
    a_mat = (comps / s1[None, :]).T / s2[None, :]
    b_vec = ((-mu1 / s1) @ comps.T - pca_mean @ comps.T - mu2) / s2
    if batches is None:
        return [(np.arange(emb.shape[0]), a_mat, b_vec)]

    # (d) per-batch CORAL-style whitening, folded into the map: each well is multiplied once
    eye = reg * np.eye(a_mat.shape[1])
    ctrl_rows = np.flatnonzero(is_control)
    pos_of_ctrl = np.full(emb.shape[0], -1)
    pos_of_ctrl[ctrl_rows] = np.arange(ctrl_rows.size)
    pooled = None
    maps = []
    for label, rows in _batch_groups(batches, emb.shape[0]):
        ctrl_in_batch = pos_of_ctrl[rows[is_control[rows]]]
        if ctrl_in_batch.size < 2:
            if fallback == "error":
                raise AlignmentError(
                    f"batch '{label}' has {ctrl_in_batch.size} control well(s); TVN needs at least 2 "
                    "per batch to estimate its covariance (use fallback='pooled' to whiten it with "
                    "the pooled control covariance)"
                )
            logger.warning(
                "TVN: batch '%s' has %d control well(s); whitening it with the pooled control covariance",
                label,
                ctrl_in_batch.size,
            )
            if pooled is None:
                pooled = _inv_sqrt_psd(np.cov(ctrl_c, rowvar=False, ddof=1) + eye)
            w = pooled
        else:
            cov = np.cov(ctrl_c[ctrl_in_batch], rowvar=False, ddof=1) + eye
            w = _inv_sqrt_psd(cov, f"batch '{label}' control covariance ({ctrl_in_batch.size} controls)")
        maps.append((rows, a_mat @ w, b_vec @ w))
    return maps


def _apply_affine(emb: np.ndarray, rows: np.ndarray, m: np.ndarray, off: np.ndarray, out: np.ndarray) -> None:
    """out[rows] = emb[rows] @ m + off (one batch's map; see :func:`_apply_affines`)."""
    _apply_affines(emb, [(rows, m, off)], out)


def _apply_affines(emb: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray, np.ndarray]], out: np.ndarray) -> None:
    """out[rows] = emb[rows] @ m + off for every (rows, m, off), in 65,536-row blocks.

    The matrices are always fitted in float64. A float32 input is multiplied in float32: this
    matmul is the whole cost at screen scale, float32 halves it, and the result is stored as
    float32 anyway; the rounding it adds (~1e-6 relative) is that of the float32 input itself.

    The blocks run on as many Python threads as the BLAS pool has (OMP_NUM_THREADS), each block
    a single-threaded matmul: on a shared, oversubscribed machine BLAS's own threads spin-wait
    on each other, while whole independent blocks never wait. The blocks are the same 65,536-row
    blocks as always (the matmul's row blocking sets float32 rounding), so stored alignments stay
    byte-identical.
    """
    work = np.float32 if emb.dtype == np.float32 else np.float64
    step = 65536
    tasks = []
    for rows, m, off in maps:
        m, off = m.astype(work), off.astype(work)
        # rows that are one contiguous range (batches in row order) skip the gather and the scatter
        contiguous = rows.size > 0 and rows[-1] - rows[0] == rows.size - 1 and bool((np.diff(rows) == 1).all())
        tasks += [(rows[lo : lo + step], m, off, contiguous) for lo in range(0, rows.size, step)]
    if not tasks:
        return
    width = tasks[0][1].shape[1]
    buffers: dict[int, np.ndarray] = {}  # one reused result block per worker thread

    def block(task: tuple[np.ndarray, np.ndarray, np.ndarray, bool]) -> None:
        chunk, m, off, contiguous = task
        import threading

        res = buffers.setdefault(threading.get_ident(), np.empty((step, width), dtype=work))
        part = res[: chunk.size]
        if contiguous:
            src = emb[chunk[0] : chunk[-1] + 1]
        else:
            src = emb.take(chunk, axis=0) if isinstance(emb, np.ndarray) else np.asarray(emb)[chunk]
        np.matmul(src.astype(work, copy=False), m, out=part)
        part += off
        if contiguous:
            out[chunk[0] : chunk[-1] + 1] = part
        else:
            out[chunk] = part

    threads = min(_blas_threads(), len(tasks))
    with threadpool_limits(limits=1, user_api="blas"):
        if threads <= 1:
            for task in tasks:
                block(task)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(block, tasks))  # list(): re-raises a worker's exception here


def _blas_threads() -> int:
    """The BLAS pool's size as configured (OMP_NUM_THREADS or the cores), read outside any limit."""
    sizes = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(sizes, default=1)


# --------------------------------------------------------------------------- spherize (pycytominer)
def _sphering_matrix(ctrl: np.ndarray, epsilon: float, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (mean, scale, W) so that ((x - mean) / scale) @ W is the sphered x (pycytominer 1.7.1)."""
    n, d = ctrl.shape
    if method in ("ZCA-cor", "PCA-cor"):
        mean, var = ctrl.mean(axis=0), ctrl.var(axis=0)
        if np.any(var == 0):
            bad = int(np.flatnonzero(var == 0)[0])
            raise AlignmentError(f"spherize {method}: feature {bad} is constant on the controls")
        scale = np.sqrt(var)
    else:
        mean, scale = ctrl.mean(axis=0), np.ones(d)
    x = (ctrl - mean) / scale
    # full_matrices only when n <= d: then the null-space rows of Vt are needed (small: n is small)
    if n > d and method.startswith("ZCA"):
        # ZCA is sign-free, so the eigenvectors of the d x d Gram matrix serve: several times
        # cheaper than an SVD of the n x d controls when controls number in the thousands.
        evals, evecs = np.linalg.eigh(x.T @ x)
        sing, vt = np.sqrt(np.clip(evals[::-1], 0.0, None)), evecs[:, ::-1].T
        tol = sing.max(initial=0.0) * np.sqrt(max(n, d) * _EPS)  # eigenvalues carry eps * max error
    else:
        _, sing, vt = np.linalg.svd(x, full_matrices=n <= d)
        tol = sing.max(initial=0.0) * max(n, d) * _EPS
    rank = int((sing > tol).sum())
    if not (rank == d or rank == n - 1):
        raise AlignmentError(
            f"spherize: the {n} control rows are rank deficient (rank {rank}, d={d}); "
            "remove linearly dependent features or add controls"
        )
    if n <= d:  # pycytominer pads the spectrum with the last non-zero singular value
        sing = np.concatenate([sing[:rank], np.repeat(sing[rank - 1], d - rank)])
    w = (vt / (sing + epsilon)[:, None]).T * np.sqrt(n - 1)
    if method in ("ZCA", "ZCA-cor"):
        w = w @ vt
    return mean, scale, w


def spherize(
    emb: np.ndarray,
    is_control: np.ndarray,
    batches: np.ndarray | None = None,
    *,
    epsilon: float = 1e-6,
    method: Literal["ZCA", "PCA", "ZCA-cor", "PCA-cor"] = "ZCA",
) -> np.ndarray:
    """Whiten on the controls as pycytominer >= 1.7.1 ``normalize(method="spherize")``.

    The controls are centered (``*-cor``: also scaled to unit variance); W comes from the SVD of
    the centred controls: W = V diag(sqrt(n-1) / (s + epsilon)) (ZCA: times V^T again, the unique
    symmetric whitening). With n <= d controls the missing singular values are padded with the
    last non-zero one, as pycytominer does. Per batch when ``batches`` is given.

    Args:
        emb: (n_wells, d); is_control: (n_wells,) bool; batches: optional (n_wells,) labels.
        epsilon: added to the singular values (pycytominer's fudge factor).
        method: "ZCA" (default here), "PCA", "ZCA-cor" (pycytominer.normalize's default), "PCA-cor".

    Returns:
        (n_wells, d) array; within each batch the controls have (near) identity covariance (ddof 1).
    """
    if method not in ("ZCA", "PCA", "ZCA-cor", "PCA-cor"):
        raise ValueError(f"spherize method must be ZCA, PCA, ZCA-cor or PCA-cor, got {method!r}")
    emb, is_control, batches = _check_inputs(emb, is_control, batches)
    maps = []
    with threadpool_limits(limits=1, user_api="blas"):  # d x d statistics: see tvn_on_controls
        for label, rows in _batch_groups(batches, emb.shape[0]):
            ctrl = rows[is_control[rows]]
            if ctrl.size < 2:
                raise AlignmentError(f"batch '{label}' has {ctrl.size} control well(s); spherize needs at least 2")
            try:
                mean, scale, w = _sphering_matrix(emb[ctrl].astype(np.float64), epsilon, method)
            except AlignmentError as err:
                raise AlignmentError(f"batch '{label}': {err}") from None
            # fold centring and scaling into one affine map: ((x - mean) / scale) @ w = x @ m + off
            maps.append((rows, w / scale[:, None], -(mean / scale) @ w))
    out = np.empty(emb.shape, dtype=_out_dtype(emb))
    _apply_affines(emb, maps, out)
    return out


# --------------------------------------------------------------------------- dispatcher
def align(
    emb: np.ndarray,
    is_control: np.ndarray,
    batches: np.ndarray | None,
    method: Literal["none", "centerscale", "tvn", "spherize"],
    **kw,
) -> np.ndarray:
    """Run one alignment method by name (see ALIGN_METHODS); ``kw`` goes to that method.

    "none" returns a float copy of ``emb`` (after the same NaN/shape checks).
    """
    if method == "none":
        emb, _, _ = _check_inputs(emb, is_control, batches, need_controls=False)
        return emb.astype(_out_dtype(emb), copy=True)
    if method == "centerscale":
        return centerscale_on_controls(emb, is_control, batches, **kw)
    if method == "tvn":
        return tvn_on_controls(emb, is_control, batches, **kw)
    if method == "spherize":
        return spherize(emb, is_control, batches, **kw)
    raise ValueError(f"unknown alignment method {method!r}; choose one of {ALIGN_METHODS}")
