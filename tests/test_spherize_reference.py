"""Our spherize against pycytominer 1.7.1's (the cytomining reference), same input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from precompute.align import AlignmentError, spherize
from test_align import gaussian_screen


@pytest.fixture(scope="module")
def normalize():
    return pytest.importorskip("pycytominer", reason="pycytominer==1.7.1 not installed").normalize


def _pycytominer_per_batch(normalize, x, ctrl, batches, method):
    cols = [f"f{i}" for i in range(x.shape[1])]
    df = pd.DataFrame(x, columns=cols)
    df.insert(0, "Metadata_batch", batches)
    df.insert(1, "Metadata_ctrl", np.where(ctrl, "ctrl", "trt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [normalize(profiles=part, features=cols, meta_features=["Metadata_batch", "Metadata_ctrl"],
                           samples="Metadata_ctrl == 'ctrl'", method="spherize", spherize_method=method,
                           spherize_epsilon=1e-6, spherize_center=True)
                 for _, part in df.groupby("Metadata_batch", sort=False)]
    return pd.concat(parts).loc[df.index, cols].to_numpy()


@pytest.mark.parametrize("method", ["ZCA", "ZCA-cor"])
@pytest.mark.parametrize("n,frac_ctrl", [(3000, 0.3), (600, 0.05)])  # many controls; fewer than features
def test_spherize_equals_pycytominer(normalize, method, n, frac_ctrl):
    x, ctrl, batches = gaussian_screen(n=n, d=24, frac_ctrl=frac_ctrl, seed=5)
    ref = _pycytominer_per_batch(normalize, x, ctrl, batches, method)
    np.testing.assert_allclose(spherize(x, ctrl, batches, method=method), ref, atol=1e-8)


def test_collinear_features_are_rank_deficient_not_amplified_noise():
    x, ctrl, batches = gaussian_screen(n=2000, d=10, frac_ctrl=0.5, seed=6)
    x = np.column_stack([x, x[:, 0] + x[:, 1]])  # an exact linear combination
    with pytest.raises(AlignmentError, match="rank deficient"):
        spherize(x, ctrl, batches)
