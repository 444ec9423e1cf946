"""Our spherize against pycytominer 1.7.1's (the cytomining reference), same input."""

from __future__ import annotations

import numpy as np
import pytest
from test_align import gaussian_screen

from precompute.align import AlignmentError, spherize


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("pycytominer", reason="pycytominer==1.7.1 not installed")
    import reference_pycytominer

    return reference_pycytominer.spherize_per_batch


@pytest.mark.parametrize("method", ["ZCA", "ZCA-cor"])
@pytest.mark.parametrize("n,frac_ctrl", [(3000, 0.3), (600, 0.05)])  # many controls; fewer than features
def test_spherize_equals_pycytominer(reference, method, n, frac_ctrl):
    x, ctrl, batches = gaussian_screen(n=n, d=24, frac_ctrl=frac_ctrl, seed=5)
    ref = reference(x, ctrl, batches, method)
    np.testing.assert_allclose(spherize(x, ctrl, batches, method=method), ref, atol=1e-8)


def test_collinear_features_are_rank_deficient_not_amplified_noise():
    x, ctrl, batches = gaussian_screen(n=2000, d=10, frac_ctrl=0.5, seed=6)
    x = np.column_stack([x, x[:, 0] + x[:, 1]])  # an exact linear combination
    with pytest.raises(AlignmentError, match="rank deficient"):
        spherize(x, ctrl, batches)
