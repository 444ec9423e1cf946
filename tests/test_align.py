"""Alignment on controls: center/scale, TVN (against the EFAAR reference), spherize."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from precompute.align import (
    ALIGN_METHODS,
    AlignmentError,
    _pca_fit,
    align,
    centerscale_on_controls,
    spherize,
    tvn_on_controls,
)

LINCS = "profiles_lincs_compound/SQ00015054_normalized_feature_select.csv.gz"  # under the shared data folder
JUMP_DIR = "profiles_jump_moa_scope"


def gaussian_screen(n=1500, d=12, n_batches=3, frac_ctrl=0.25, seed=0):
    """Correlated Gaussian wells with a strong additive shift and scaling per batch."""
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, n_batches, n)
    ctrl = rng.random(n) < frac_ctrl
    mix = rng.normal(size=(d, d))
    x = rng.normal(size=(n, d)) @ mix * 0.5
    x = x * rng.uniform(0.5, 2.0, size=(n_batches, d))[batch] + 3 * rng.normal(size=(n_batches, d))[batch]
    x[~ctrl] += rng.normal(size=(5, d))[rng.integers(0, 5, (~ctrl).sum())]  # "treatment" effects
    return x, ctrl, np.array([f"batch{b}" for b in batch])


@pytest.fixture(scope="module")
def efaar():
    """EFAAR's efaar module; missing or another version is an error naming the fix, not a skip."""
    import reference_efaar

    return reference_efaar.load()[0]


def reference_tvn(efaar, x, ctrl, batches):
    md = pd.DataFrame({"pert": np.where(ctrl, "CTRL", "TRT"), "batch": batches})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fractional_matrix_power returns complex; the reference casts
        return efaar.tvn_on_controls(x, md, "pert", "CTRL", None if batches is None else "batch")


# ----------------------------------------------------------------------------- center / scale
def test_centerscale_gives_controls_mean0_std1_per_batch():
    x, ctrl, batches = gaussian_screen()
    out = centerscale_on_controls(x, ctrl, batches)
    for b in np.unique(batches):
        c = out[(batches == b) & ctrl]
        np.testing.assert_allclose(c.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(c.std(axis=0, ddof=0), 1, atol=1e-12)
    assert not np.shares_memory(out, x)


def test_centerscale_matches_reference(efaar):
    x, ctrl, batches = gaussian_screen(seed=3)
    md = pd.DataFrame({"p": np.where(ctrl, "C", "T"), "b": batches})
    np.testing.assert_allclose(
        centerscale_on_controls(x, ctrl, batches), efaar.centerscale_on_controls(x, md, "p", "C", "b"), atol=1e-12
    )
    np.testing.assert_allclose(
        centerscale_on_controls(x, ctrl), efaar.centerscale_on_controls(x, md, "p", "C"), atol=1e-12
    )


# ----------------------------------------------------------------------------- TVN known answers
def test_tvn_whitened_controls_have_the_regularised_covariance():
    """cov of batch-k controls after TVN = C^-1/2 S C^-1/2 with C = S + reg*I, i.e. S (S + reg I)^-1."""
    x, ctrl, batches = gaussian_screen(n=3000, d=8, seed=1)
    steps_abc = tvn_on_controls(x, ctrl, None)  # steps (a)-(c) only
    for reg in (0.5, 2.0):
        out = tvn_on_controls(x, ctrl, batches, reg=reg)
        for b in np.unique(batches):
            m = (batches == b) & ctrl
            s = np.cov(steps_abc[m], rowvar=False, ddof=1)
            expected = s @ np.linalg.inv(s + reg * np.eye(s.shape[0]))
            np.testing.assert_allclose(np.cov(out[m], rowvar=False, ddof=1), expected, atol=1e-10)


def test_tvn_without_regulariser_gives_identity_covariance_per_batch():
    x, ctrl, batches = gaussian_screen(n=3000, d=8, seed=2)
    out = tvn_on_controls(x, ctrl, batches, reg=0.0)
    for b in np.unique(batches):
        m = (batches == b) & ctrl
        np.testing.assert_allclose(np.cov(out[m], rowvar=False, ddof=1), np.eye(8), atol=1e-9)


def test_pca_matches_sklearn_including_signs():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(4)
    for n, d in ((500, 20), (60, 40), (30, 50)):  # covariance_eigh branch, full branch, n < d
        x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        ref = PCA().fit(x)
        mean, comps, sing = _pca_fit(x)
        keep = ref.singular_values_ > 1e-8 * ref.singular_values_[0]  # null-space directions are arbitrary
        np.testing.assert_allclose(comps[keep], ref.components_[keep], atol=1e-8)
        np.testing.assert_allclose(sing, ref.singular_values_, atol=1e-8)
        np.testing.assert_allclose(mean, ref.mean_, atol=1e-12)


# ----------------------------------------------------------------------------- TVN vs EFAAR reference
@pytest.mark.parametrize("seed", [0, 1])
def test_tvn_equals_reference_on_gaussian_with_batch_shifts(efaar, seed):
    x, ctrl, batches = gaussian_screen(n=2000, d=16, n_batches=4, seed=seed)
    for b in (batches, None):
        ref = reference_tvn(efaar, x, ctrl, b)
        ours = tvn_on_controls(x, ctrl, b)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-9 * np.abs(ref).max())


def test_tvn_equals_reference_with_more_features_than_fit_by_covariance(efaar):
    """d large enough that PCA takes sklearn's 'full' SVD branch (n_controls < 10 d)."""
    x, ctrl, batches = gaussian_screen(n=1200, d=60, n_batches=2, frac_ctrl=0.3, seed=5)
    np.testing.assert_allclose(tvn_on_controls(x, ctrl, batches), reference_tvn(efaar, x, ctrl, batches), atol=1e-8)


def _real_profiles(shared_data):
    lincs = pd.read_csv(shared_data / LINCS)
    jump = pd.concat([pd.read_csv(p) for p in sorted((shared_data / JUMP_DIR).glob("*.csv.gz"))], ignore_index=True)
    assert len(jump), f"no JUMP-MOA plates under {shared_data / JUMP_DIR}"
    out = []
    for df, ctrl in (
        (lincs, lincs["Metadata_broad_sample"].eq("DMSO")),
        (jump, jump["Metadata_control_type"].eq("negcon")),
    ):
        feats = [c for c in df.columns if not c.startswith("Metadata_")]
        col = df["Metadata_Well"].str[1:].astype(int)
        pseudo_batch = np.where(col <= 8, "cols01-08", np.where(col <= 16, "cols09-16", "cols17-24"))
        out.append((df[feats].to_numpy(dtype=float), ctrl.to_numpy(), pseudo_batch))
    return out


@pytest.mark.parametrize("which", [0, 1], ids=["lincs_SQ00015054", "jump_moa_BR00117060"])
def test_tvn_equals_reference_on_real_profiles(efaar, shared_data, which):
    """Real plates have 24 DMSO wells: with d < 24 features PCA is full rank and results must agree."""
    x, ctrl, batches = _real_profiles(shared_data)[which]
    assert ctrl.sum() == 24 and all(((batches == b) & ctrl).sum() >= 2 for b in np.unique(batches))
    sub = x[:, :: max(1, x.shape[1] // 16)][:, :16]
    ref = reference_tvn(efaar, sub, ctrl, batches)
    np.testing.assert_allclose(tvn_on_controls(sub, ctrl, batches), ref, atol=1e-9 * np.abs(ref).max())


def test_tvn_drops_null_space_component_where_reference_explodes(efaar, shared_data, caplog):
    """All 454 features, 24 controls: the reference keeps a zero-variance PC and divides by ~1e-16."""
    x, ctrl, batches = _real_profiles(shared_data)[0]
    ref = reference_tvn(efaar, x, ctrl, batches)
    with caplog.at_level(logging.WARNING, logger="precompute.align"):
        ours = tvn_on_controls(x, ctrl, batches)
    assert np.abs(ref).max() > 1e8  # documented reference failure
    assert ours.shape == (x.shape[0], 23) and np.abs(ours).max() < 1e3
    assert "zero variance" in caplog.text


# ----------------------------------------------------------------------------- TVN errors / fallback
def test_tvn_batch_with_one_control_raises_naming_batch():
    x, ctrl, batches = gaussian_screen(seed=6)
    lonely = np.flatnonzero(batches == "batch2")
    ctrl = ctrl.copy()
    ctrl[lonely] = False
    ctrl[lonely[0]] = True
    with pytest.raises(AlignmentError, match=r"'batch2' has 1 control"):
        tvn_on_controls(x, ctrl, batches)
    assert issubclass(AlignmentError, ValueError)


def test_tvn_pooled_fallback_warns_and_uses_pooled_covariance(caplog):
    x, ctrl, batches = gaussian_screen(seed=7)
    ctrl = ctrl & (batches != "batch1")
    with caplog.at_level(logging.WARNING, logger="precompute.align"):
        out = tvn_on_controls(x, ctrl, batches, fallback="pooled")
    assert "'batch1'" in caplog.text and "pooled" in caplog.text
    abc = tvn_on_controls(x, ctrl, None)
    w = np.cov(abc[ctrl], rowvar=False, ddof=1) + 0.5 * np.eye(abc.shape[1])
    vals, vecs = np.linalg.eigh(w)
    m = batches == "batch1"
    np.testing.assert_allclose(out[m], abc[m] @ (vecs / np.sqrt(vals)) @ vecs.T, atol=1e-9)


def test_nan_input_error_names_first_bad_row():
    x, ctrl, batches = gaussian_screen()
    x[17, 3] = np.nan
    x[40, 0] = np.inf
    for fn in (tvn_on_controls, centerscale_on_controls, spherize):
        with pytest.raises(ValueError, match="first bad row is index 17"):
            fn(x, ctrl, batches)


def test_huge_finite_values_are_not_mistaken_for_nan():
    # the quick finiteness check sums each row; a sum that overflows must fall back, not raise
    x, ctrl, batches = gaussian_screen()
    x[5] = 1e308
    out = centerscale_on_controls(x, ctrl, batches)
    assert out.shape == x.shape

def test_float32_in_float32_out_and_input_untouched():
    x, ctrl, batches = gaussian_screen()
    x32 = x.astype(np.float32)
    before = x32.copy()
    for method in ALIGN_METHODS:
        out = align(x32, ctrl, batches, method)
        assert out.dtype == np.float32, method
    np.testing.assert_array_equal(x32, before)


# ----------------------------------------------------------------------------- spherize
def test_zca_whitens_controls_with_the_symmetric_inverse_square_root():
    x, ctrl, batches = gaussian_screen(n=2000, d=10, seed=8)
    out = spherize(x, ctrl, batches, epsilon=0.0)
    for b in np.unique(batches):
        m, c = batches == b, (batches == b) & ctrl
        cov = np.cov(x[c], rowvar=False, ddof=1)
        vals, vecs = np.linalg.eigh(cov)
        expected = (x[m] - x[c].mean(axis=0)) @ (vecs / np.sqrt(vals)) @ vecs.T  # ZCA = cov^-1/2
        np.testing.assert_allclose(out[m], expected, atol=1e-8)
        np.testing.assert_allclose(np.cov(out[c], rowvar=False, ddof=1), np.eye(10), atol=1e-8)


@pytest.mark.parametrize("method", ["PCA", "ZCA-cor", "PCA-cor"])
def test_other_sphering_methods_whiten_controls(method):
    x, ctrl, _ = gaussian_screen(n=2000, d=10, seed=9)
    out = spherize(x, ctrl, method=method, epsilon=0.0)
    np.testing.assert_allclose(np.cov(out[ctrl], rowvar=False, ddof=1), np.eye(10), atol=1e-8)


def test_spherize_with_fewer_controls_than_features_pads_spectrum():
    """pycytominer semantics for n <= d: no crash, controls whitened within their span."""
    rng = np.random.default_rng(10)
    x = rng.normal(size=(60, 30))
    ctrl = np.zeros(60, dtype=bool)
    ctrl[:12] = True
    out = spherize(x, ctrl)
    assert np.isfinite(out).all()
    cov = np.cov(out[ctrl], rowvar=False, ddof=1)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov))[-11:], 1.0, atol=1e-6)


def test_align_dispatch_and_unknown_method():
    x, ctrl, batches = gaussian_screen()
    np.testing.assert_array_equal(align(x, ctrl, batches, "none"), x)
    np.testing.assert_allclose(align(x, ctrl, batches, "tvn", reg=1.0), tvn_on_controls(x, ctrl, batches, reg=1.0))
    with pytest.raises(ValueError, match="unknown alignment method"):
        align(x, ctrl, batches, "harmony")


def test_unregularised_tvn_with_too_few_controls_says_so():
    x, ctrl, batches = gaussian_screen(n=600, d=12, seed=11)
    ctrl = ctrl.copy()
    few = np.flatnonzero((batches == "batch0") & ctrl)[5:]
    ctrl[few] = False  # 5 controls for 12 dimensions: covariance singular without the ridge
    with pytest.raises(AlignmentError, match=r"batch 'batch0' control covariance \(5 controls\)"):
        tvn_on_controls(x, ctrl, batches, reg=0.0)
    assert np.isfinite(tvn_on_controls(x, ctrl, batches)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alignment_bytes_do_not_depend_on_the_thread_count(dtype):
    """A rerun with another OMP_NUM_THREADS writes the same aligned embeddings, bit for bit: the
    fitted statistics run on one BLAS thread and the wells are multiplied in the same blocks."""
    from threadpoolctl import threadpool_limits

    x, ctrl, batches = gaussian_screen(n=70_000, d=24, n_batches=3, seed=5)
    x = x.astype(dtype)
    runs = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            runs[threads] = (tvn_on_controls(x, ctrl, batches), spherize(x, ctrl, batches))
    for one, two in zip(runs[1], runs[2], strict=True):
        assert one.tobytes() == two.tobytes()
