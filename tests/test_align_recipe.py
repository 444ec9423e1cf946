"""PCA-TVN, EFAAR's map recipe: equal to the reference composition, and honest with few controls."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_align import efaar, gaussian_screen  # noqa: F401  (fixture and generator shared)

from precompute.align import tvn_on_controls
from precompute.align_recipe import pca_tvn, tvn_components
from precompute.evaluate import batch_metrics


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
