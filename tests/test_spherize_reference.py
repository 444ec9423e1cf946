"""Our spherize against pycytominer 1.7.1's (the cytomining reference), same input."""

from __future__ import annotations

import numpy as np
import pytest
from test_align import gaussian_screen

from precompute.align import AlignmentError, spherize


@pytest.fixture(scope="module")
def reference():
    import reference_pycytominer

    reference_pycytominer.load()  # missing or another version: an error naming the fix, not a skip
    return reference_pycytominer.spherize_per_batch


@pytest.mark.parametrize("method", ["ZCA", "ZCA-cor", "PCA", "PCA-cor"])
@pytest.mark.parametrize("n,frac_ctrl", [(3000, 0.3), (600, 0.05)])  # many controls; fewer than features
def test_spherize_equals_pycytominer(reference, method, n, frac_ctrl):
    # PCA whitening is not sign-free (each output column is a principal axis): compared without
    # any sign alignment, so our SVD must give pycytominer's axes with pycytominer's signs.
    x, ctrl, batches = gaussian_screen(n=n, d=24, frac_ctrl=frac_ctrl, seed=5)
    ref = reference(x, ctrl, batches, method)
    ours = spherize(x, ctrl, batches, method=method)
    assert np.abs(ref).max() > 1  # a real output, not zeros on both sides
    if method.startswith("ZCA") or all(((batches == b) & ctrl).sum() > 24 for b in np.unique(batches)):
        np.testing.assert_allclose(ours, ref, atol=1e-8)
        return
    # PCA with fewer controls than features (this batch: c controls, d = 24): the controls span
    # c - 1 axes, which must agree column for column. The other d - c + 1 columns are an arbitrary
    # orthonormal basis of the controls' null space (LAPACK's, which moves with the last bits of
    # the centred input), all scaled by the same padded singular value, so only the subspace they
    # project onto is defined: compare it through the rows' Gram matrix, which any rotation of
    # that basis leaves unchanged.
    for b in np.unique(batches):
        rows, k = batches == b, int((ctrl & (batches == b)).sum()) - 1
        assert 0 < k < 24
        np.testing.assert_allclose(ours[rows, :k], ref[rows, :k], atol=1e-8)
        null_ours, null_ref = ours[rows, k:], ref[rows, k:]
        gram_ref = null_ref @ null_ref.T
        np.testing.assert_allclose(null_ours @ null_ours.T, gram_ref, atol=1e-10 * np.abs(gram_ref).max())


def test_collinear_features_are_rank_deficient_not_amplified_noise():
    x, ctrl, batches = gaussian_screen(n=2000, d=10, frac_ctrl=0.5, seed=6)
    x = np.column_stack([x, x[:, 0] + x[:, 1]])  # an exact linear combination
    with pytest.raises(AlignmentError, match="rank deficient"):
        spherize(x, ctrl, batches)
