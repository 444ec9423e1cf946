"""PCA-TVN, EFAAR's map recipe: equal to the reference composition, and honest with few controls."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_align import efaar, gaussian_screen  # noqa: F401  (fixture and generator shared)

from precompute.align import tvn_on_controls
from precompute.align_recipe import pca_tvn, tvn_components
from precompute.evaluation import batch_metrics


def _reference_pca_tvn(efaar, x, ctrl, batches, k):  # noqa: F811
    md = pd.DataFrame({"pert": np.where(ctrl, "CTRL", "TRT"), "batch": batches})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return efaar.tvn_on_controls(efaar.embed_by_pca(x, md, k, "batch"), md, "pert", "CTRL", "batch")


@pytest.mark.parametrize("n,d,k", [(3000, 40, 12), (400, 60, 10)])
def test_pca_tvn_equals_efaar_embed_by_pca_then_tvn(efaar, n, d, k):  # noqa: F811
    # (3000, 40): sklearn's covariance solver (n >= 10 d); (400, 60): its exact 'full' SVD. Between
    # those (n < 10 d and n > 500) sklearn picks a randomized solver with no seed, so the
    # reference itself is not reproducible there and is not compared.
    x, ctrl, batches = gaussian_screen(n=n, d=d, seed=3)
    ref = _reference_pca_tvn(efaar, x, ctrl, batches, k)
    out, info = pca_tvn(x, ctrl, batches, n_components=k)
    assert info["pca_components"] == k and out.shape == (n, k)
    # A PCA axis may come out with the opposite sign when the fit differs in the last bits; TVN is
    # equivariant to that, so compare column by column up to sign.
    sign = np.sign((ref * out).sum(axis=0))
    np.testing.assert_allclose(out * sign, ref, atol=1e-9)


def _demo_sized_batches(rng, n_per=384, n_ctrl=47):
    """The demo screen's layout: 3 batches x 384 wells (1,152), 47 negative controls per batch."""
    batches = np.repeat(["b0", "b1", "b2"], n_per)
    ctrl = np.zeros(batches.size, bool)
    for i in range(3):
        ctrl[i * n_per + rng.choice(n_per, n_ctrl, replace=False)] = True
    return ctrl, batches


def _screen_of_exact_rank(k, d=384, seed=0):
    """Demo-sized wells whose batch-standardised matrix has rank exactly k (a spectral gap of ~1e12).

    Every batch is sqrt(n-1) Q_b S V^T + shift_b with Q_b orthonormal and centred, so all batches
    share the feature covariance V S^2 V^T / (n-1) exactly: standardising per batch divides every
    batch by the same feature scales and keeps the stacked matrix at rank k.
    """
    rng = np.random.default_rng(seed)
    ctrl, batches = _demo_sized_batches(rng)
    v = np.linalg.qr(rng.normal(size=(d, k)))[0]
    s = np.geomspace(10, 1, k)  # distinct, so each principal axis is defined
    parts = []
    for b in np.unique(batches):
        u = rng.normal(size=((batches == b).sum(), k))
        q = np.linalg.qr(u - u.mean(axis=0))[0]
        parts.append(np.sqrt(len(q) - 1) * (q * s) @ v.T + 5 * rng.normal(size=d))
    return np.vstack(parts), ctrl, batches


def _embed_by_pca_seeded(efaar, x, batches, k, seed):  # noqa: F811
    """The reference's PCA step; sklearn's randomized solver draws from numpy's global generator."""
    np.random.seed(seed)
    return efaar.embed_by_pca(x, pd.DataFrame({"batch": batches}), k, "batch")


@pytest.mark.parametrize("k", [15, 128], ids=["auto_width_15", "efaar_width_128"])
def test_pca_tvn_equals_efaar_where_sklearn_picks_its_randomized_solver(efaar, k, monkeypatch):  # noqa: F811
    # 1,152 wells x 384 features (the demo's size): n < 10 d and k < 0.8 min(n, d), so sklearn's
    # PCA takes its randomized solver (unseeded: numpy's global state). We solve exactly. On a
    # matrix of rank k the randomized range finder captures the top-k subspace to rounding
    # error, so the reference is deterministic here (checked: two seeds agree) and ours must
    # equal it, with the same signs (no sign alignment below).
    from sklearn.decomposition import PCA

    solvers = []

    class SpiedPCA(PCA):  # the reference's own PCA, recording the solver sklearn chose
        def fit_transform(self, *a, **kw):
            out = super().fit_transform(*a, **kw)
            solvers.append(self._fit_svd_solver)
            return out

    monkeypatch.setattr(efaar, "PCA", SpiedPCA)
    x, ctrl, batches = _screen_of_exact_rank(k)
    emb = _embed_by_pca_seeded(efaar, x, batches, k, seed=0)
    assert solvers == ["randomized"]
    np.testing.assert_allclose(_embed_by_pca_seeded(efaar, x, batches, k, seed=1), emb, atol=1e-9)
    md = pd.DataFrame({"pert": np.where(ctrl, "CTRL", "TRT"), "batch": batches})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = efaar.tvn_on_controls(emb, md, "pert", "CTRL", "batch")
    out, info = pca_tvn(x, ctrl, batches, n_components=k)
    assert out.shape == ref.shape == (x.shape[0], k) and np.abs(ref).max() > 1
    np.testing.assert_allclose(out, ref, atol=1e-8 * np.abs(ref).max())
    if k == 15:
        assert pca_tvn(x, ctrl, batches)[1]["pca_components"] == 15  # the demo's own width (47 // 3)


def test_pca_tvn_on_demo_like_noise_equals_efaar_solved_exactly(efaar, monkeypatch):  # noqa: F811
    # Pure-noise wells (the `random` embedder) have no spectral gap: there sklearn's randomized
    # PCA is an approximation that changes with numpy's global seed (two seeds below give maps
    # that differ by as much as their own spread), so no exact comparison with it can exist.
    # What the recipe must equal is the recipe with PCA solved exactly: the reference with
    # sklearn's exact 'full' solver forced, at the same size and width.
    from functools import partial

    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    ctrl, batches = _demo_sized_batches(rng)
    x = rng.normal(size=(batches.size, 384))
    out, info = pca_tvn(x, ctrl, batches)
    k = info["pca_components"]
    randomized = [_reference_pca_tvn_seeded(efaar, x, ctrl, batches, k, seed) for seed in (0, 1)]
    assert np.abs(randomized[0] - randomized[1]).max() > 0.1 * np.abs(randomized[0]).max()
    monkeypatch.setattr(efaar, "PCA", partial(PCA, svd_solver="full"))
    ref = _reference_pca_tvn(efaar, x, ctrl, batches, k)
    sign = np.sign((ref * out).sum(axis=0))  # exact solvers may still differ in an axis' sign (see above)
    np.testing.assert_allclose(out * sign, ref, atol=1e-9 * np.abs(ref).max())


def _reference_pca_tvn_seeded(efaar, x, ctrl, batches, k, seed):  # noqa: F811
    np.random.seed(seed)
    return _reference_pca_tvn(efaar, x, ctrl, batches, k)


def test_auto_width_follows_the_smallest_batch_of_controls():
    ctrl = np.zeros(1000, bool)
    batches = np.repeat(["a", "b"], 500)
    ctrl[:300] = True  # batch a: 300 controls
    ctrl[500:548] = True  # batch b: 48 controls -> 16 components
    assert tvn_components(ctrl, batches, dim=384) == 16
    assert tvn_components(ctrl, batches, dim=8) == 8
    ctrl[500:1000] = True
    assert tvn_components(ctrl, batches, dim=384) == 100  # 300 // 3, below EFAAR's 128 cap
    assert tvn_components(np.ones(3000, bool), None, dim=384) == 128


def test_with_few_controls_per_batch_full_tvn_invents_batch_signal_and_pca_tvn_much_less():
    # Wells of pure noise (no batch effect at all, like the `random` embedder) in 3 batches x 47
    # controls, 384 dimensions, as on the demo screen. Whitening every direction from 47 controls
    # gives each batch its own random distortion, which a neighbour classifier reads as batch;
    # the PCA width chosen from the control count distorts far less.
    rng = np.random.default_rng(0)
    n_per, d = 384, 384
    batches = np.repeat(["b0", "b1", "b2"], n_per)
    ctrl = np.zeros(batches.size, bool)
    for i in range(3):
        ctrl[i * n_per + rng.choice(n_per, 47, replace=False)] = True
    x = rng.normal(size=(batches.size, d))
    acc = {name: batch_metrics(emb, batches, classifier="knn", seed=0)["accuracy"] for name, emb in {
        "raw": x,
        "tvn": tvn_on_controls(x, ctrl, batches),
        "pca_tvn": pca_tvn(x, ctrl, batches)[0],
    }.items()}
    assert acc["raw"] < 0.45  # chance is 1/3
    assert acc["tvn"] > 0.6
    assert acc["pca_tvn"] < acc["tvn"] - 0.15


def test_bad_width_is_a_clear_error():
    x, ctrl, batches = gaussian_screen()
    with pytest.raises(ValueError, match="n_components"):
        pca_tvn(x, ctrl, batches, n_components=0)
    with pytest.raises(ValueError, match="n_components"):
        pca_tvn(x, ctrl, batches, n_components="many")
