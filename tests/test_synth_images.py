"""Synthetic screens with images: determinism, realism of pixels, and nuisance/biology visible in them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from precompute.screen import load_screen
from precompute.synth import SynthConfig, generate_screen, render_site
from precompute.synth.biology import AXIS, K
from precompute.synth.nuisance import edge_ring
from precompute.synth.preview import composite_rgb

# 3 batches x 2 plates x 96 wells, 128x128 sites: enough cells per well for statistics, fast.
STATS_CFG = SynthConfig.preset("tiny", n_batches=3, plates_per_batch=2, image_size=128, seed=3)


def _screen_hash(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def stats_screen(tmp_path_factory):
    root = generate_screen(STATS_CFG, tmp_path_factory.mktemp("synth") / "stats", progress=False)
    screen = load_screen(root)
    images = np.stack([screen.load_images(w)[0] for w in screen.wells["well_id"]]).astype(np.float32)
    return screen, images  # images: (n_wells, C, H, W)


def _well_features(images: np.ndarray) -> np.ndarray:
    """Per-channel mean, std and percentiles of each well: the crudest image statistics."""
    flat = images.reshape(images.shape[0], images.shape[1], -1)
    pct = np.percentile(flat, [10, 50, 90, 99], axis=2)  # (4, n, C)
    return np.concatenate([flat.mean(2), flat.std(2)] + list(pct), axis=1)


def test_same_seed_same_bytes_whatever_the_worker_count_and_other_seed_differs(tmp_path):
    cfg = SynthConfig.preset("tiny")
    a = generate_screen(cfg.replace(workers=2), tmp_path / "a", progress=False)
    b = generate_screen(cfg.replace(workers=1), tmp_path / "b", progress=False)
    c = generate_screen(cfg.replace(seed=1), tmp_path / "c", progress=False)
    assert _screen_hash(a) == _screen_hash(b)
    assert _screen_hash(a) != _screen_hash(c)


def test_screen_loads_with_truth_and_per_well_arrays(stats_screen):
    screen, images = stats_screen
    assert screen.channels == ("DNA", "ER", "RNA", "AGP", "Mito", "PM")
    assert images.shape[1:] == (6, 128, 128) and screen.bit_depth == 8
    assert screen.array("latent_program").shape == (len(screen.wells), K)
    assert screen.array("nuisance").shape[0] == len(screen.wells)
    assert screen.ground_truth("relationships") is not None
    assert screen.ground_truth("compound_targets") is not None
    assert screen.descriptor["synthetic"]["program_axes"][0] == "cell_count"


def test_pixels_look_like_fluorescence_dim_background_no_saturation(stats_screen):
    _, images = stats_screen
    flat = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1)
    median = np.median(flat, axis=1)
    top = np.percentile(flat, 99.9, axis=1)
    assert np.all(median < 40), median  # mostly dark background
    assert np.all(top > 3 * median), (top, median)  # bright structures on it
    assert (flat >= 255).mean() < 1e-3  # not saturated
    assert (flat == 0).mean() < 0.01  # camera offset: no clipped black


def test_batch_is_predictable_from_raw_image_statistics(stats_screen):
    screen, images = stats_screen
    X = _well_features(images)
    y = screen.wells["batch"].to_numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    acc = cross_val_score(clf, X, y, cv=5).mean()
    assert acc > 0.9, acc  # chance is 1/3


def test_edge_wells_hold_fewer_brighter_cells(stats_screen):
    screen, images = stats_screen
    w = screen.wells
    ring = edge_ring(w["row"].to_numpy(), w["col"].to_numpy(), (8, 12))
    dna = images[:, 0]
    thr = np.median(dna) + 20
    nuclear_area = (dna > thr).mean(axis=(1, 2))  # cell-count proxy
    # Compare within plates so batch gain does not leak into the comparison.
    area_ratio, bright_ratio = [], []
    for plate in w["plate"].unique():
        m = (w["plate"] == plate).to_numpy()
        e, i = m & (ring == 0), m & (ring >= 2)
        area_ratio.append(nuclear_area[e].mean() / nuclear_area[i].mean())
        bright = np.array([d[d > thr].mean() if (d > thr).any() else np.nan for d in dna[m]])
        bright_ratio.append(np.nanmean(bright[ring[m] == 0]) / np.nanmean(bright[ring[m] >= 2]))
    assert np.mean(area_ratio) < 0.85, area_ratio
    assert np.mean(bright_ratio) > 1.03, bright_ratio


def test_inactive_genes_look_like_controls_but_positive_controls_do_not(stats_screen):
    screen, images = stats_screen
    w = screen.wells
    genes = screen.ground_truth("genes").set_index("gene")
    X = _well_features(images)
    # Remove plate effects the usual way: centre and scale on each plate's negative controls.
    for plate in w["plate"].unique():
        m = (w["plate"] == plate).to_numpy()
        ctrl = m & (w["perturbation_type"] == "negative_control").to_numpy()
        X[m] = (X[m] - X[ctrl].mean(0)) / (X[ctrl].std(0) + 1e-6)
    neg = (w["perturbation_type"] == "negative_control").to_numpy()
    crispr = (w["perturbation_type"] == "crispr").to_numpy()
    gene_active = w["gene"].map(genes["active"].to_dict())
    inactive = crispr & (gene_active == False).to_numpy()  # noqa: E712 - NaN for non-genes
    pos = (w["perturbation_type"] == "positive_control").to_numpy()
    assert inactive.sum() >= 15
    rng = np.random.default_rng(0)
    negs = rng.choice(np.flatnonzero(neg), inactive.sum(), replace=False)

    def separable(a_idx, b_idx):
        Xab = np.concatenate([X[a_idx], X[b_idx]])
        yab = np.r_[np.zeros(len(a_idx)), np.ones(len(b_idx))]
        return cross_val_score(
            make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)), Xab, yab, cv=3
        ).mean()

    assert separable(negs, np.flatnonzero(inactive)) < 0.7  # indistinguishable within noise
    assert separable(negs[: pos.sum()], np.flatnonzero(pos)) > 0.85
    # The latent truth agrees: inactive genes have exactly zero program.
    assert np.all(screen.array("latent_program")[inactive] == 0)


def test_program_axes_change_what_a_biologist_would_see():
    base = np.zeros(K)

    def site(axis=None, value=0.0, seed=0):
        p = base.copy()
        if axis:
            p[AXIS[axis]] = value
        return render_site(p, np.random.default_rng(seed), image_size=192, blur=0.6).astype(np.float32)

    ctrl = [site(seed=s) for s in range(4)]

    def mean_over(fn, sites):
        return np.mean([fn(s) for s in sites])

    def nuclear_area(s):
        return (s[0] > 40).mean()

    big = [site("nucleus_size", 2.5, s) for s in range(4)]
    assert mean_over(nuclear_area, big) > 1.25 * mean_over(nuclear_area, ctrl)
    few = [site("cell_count", -2.5, s) for s in range(4)]
    assert mean_over(nuclear_area, few) < 0.6 * mean_over(nuclear_area, ctrl)
    er = [site("er_intensity", 2.5, s) for s in range(4)]

    def er_signal(s):
        return s[1].mean() - 8.0  # render_site's default camera background

    assert mean_over(er_signal, er) > 1.5 * mean_over(er_signal, ctrl)


def test_render_site_shapes_and_composite():
    img = render_site(np.zeros(K), np.random.default_rng(0), image_size=96, n_channels=5)
    assert img.shape == (5, 96, 96) and img.dtype == np.uint8
    rgb = composite_rgb(img)
    assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8 and rgb.max() > 100
    with pytest.raises(ValueError, match="program"):
        render_site(np.zeros(3), np.random.default_rng(0))
