"""Tiling, float conversion, the random and pixel-statistics embedders, and embed_well."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.embed import embed_well, get_embedder, tile_sites, to_float01
from precompute.embed.embedders.pixelstats import FEATURES_PER_CHANNEL, PixelStatsEmbedder
from precompute.embed.embedders.random_vectors import RandomEmbedder
from precompute.embed.tiling import TilingError

NF = len(FEATURES_PER_CHANNEL)


def test_tile_sites_shapes_order_and_centering():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(2, 3, 100, 130), dtype=np.uint8)
    tiles = tile_sites(images, 32)
    # 100 -> 3 tiles (offset 2), 130 -> 4 tiles (offset 1); order site, row, column
    assert tiles.shape == (2 * 3 * 4, 3, 32, 32)
    assert tiles.dtype == np.uint8
    np.testing.assert_array_equal(tiles[0], images[0, :, 2:34, 1:33])
    np.testing.assert_array_equal(tiles[1], images[0, :, 2:34, 33:65])
    np.testing.assert_array_equal(tiles[4], images[0, :, 34:66, 1:33])
    np.testing.assert_array_equal(tiles[12], images[1, :, 2:34, 1:33])


def test_tile_sites_overlapping_stride_and_exact_fit():
    images = np.arange(1 * 1 * 64 * 64, dtype=np.uint16).reshape(1, 1, 64, 64)
    assert tile_sites(images, 32, stride=16).shape == (9, 1, 32, 32)
    np.testing.assert_array_equal(tile_sites(images, 64)[0], images[0])


def test_tile_sites_errors_name_sizes():
    with pytest.raises(TilingError, match=r"50x80.*64x64"):
        tile_sites(np.zeros((1, 5, 50, 80), np.uint8), 64)
    with pytest.raises(TilingError, match="4-D"):
        tile_sites(np.zeros((5, 50, 80), np.uint8), 16)
    assert issubclass(TilingError, ValueError)


def test_to_float01_scales_by_dtype():
    np.testing.assert_allclose(to_float01(np.array([0, 255], np.uint8)), [0.0, 1.0])
    np.testing.assert_allclose(to_float01(np.array([0, 65535], np.uint16)), [0.0, 1.0])
    out = to_float01(np.array([0.25], np.float64))
    assert out.dtype == np.float32 and out[0] == 0.25
    with pytest.raises(TilingError, match="in \\[0, 1\\]"):
        to_float01(np.array([0.0, 3.0], np.float32))
    with pytest.raises(TilingError, match="int32"):
        to_float01(np.array([1], np.int32))


def test_random_embedder_is_deterministic_per_tile_content():
    rng = np.random.default_rng(1)
    tiles = rng.random((6, 3, 16, 16), dtype=np.float32)
    tiles[5] = tiles[2]
    emb = RandomEmbedder(dim=32, seed=0)
    a, b = emb.embed_tiles(tiles), RandomEmbedder(dim=32, seed=0).embed_tiles(tiles)
    assert a.shape == (6, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # a rerun writes identical artifacts
    np.testing.assert_array_equal(a[2], a[5])  # same bytes -> same vector
    assert not np.allclose(a[0], a[1])
    assert not np.allclose(a, RandomEmbedder(dim=32, seed=1).embed_tiles(tiles))


def test_random_embedder_carries_no_intensity_signal():
    rng = np.random.default_rng(2)
    brightness = rng.random(300).astype(np.float32)
    tiles = rng.random((300, 2, 8, 8), dtype=np.float32) * 0.1 + brightness[:, None, None, None] * 0.9
    vecs = RandomEmbedder(dim=64).embed_tiles(tiles)
    corr = [abs(np.corrcoef(brightness, vecs[:, j])[0, 1]) for j in range(64)]
    # |r| of independent samples of 300 is ~0.05 on average; a leak would push it towards 1
    assert np.mean(corr) < 0.1


def test_pixelstats_dim_and_names():
    emb = PixelStatsEmbedder()
    out = emb.embed_tiles(np.random.default_rng(3).random((4, 5, 24, 24), dtype=np.float32))
    assert out.shape == (4, NF * 5) and emb.dim == NF * 5 and np.isfinite(out).all()
    names = emb.feature_names(["DNA", "ER", "RNA", "AGP", "Mito"])
    assert names[0] == "DNA_mean" and names[-1] == "Mito_otsu_fraction" and len(names) == emb.dim
    with pytest.raises(ValueError, match="5 channels"):
        emb.embed_tiles(np.zeros((1, 3, 24, 24), np.float32))


def test_pixelstats_separates_tiles_differing_in_one_channel():
    rng = np.random.default_rng(4)
    base = rng.random((40, 3, 32, 32), dtype=np.float32) * 0.5
    dimmer, brighter = base[:20].copy(), base[20:].copy()
    brighter[:, 1] += 0.3  # only channel 1 differs
    emb = PixelStatsEmbedder(n_channels=3)
    a, b = emb.embed_tiles(dimmer), emb.embed_tiles(brighter)
    feats = np.vstack([a, b])
    z = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    za, zb = z[:20], z[20:]
    centroid_a, centroid_b = za.mean(0), zb.mean(0)
    closer_to_own = (np.linalg.norm(za - centroid_a, axis=1) < np.linalg.norm(za - centroid_b, axis=1)).all() and (
        np.linalg.norm(zb - centroid_b, axis=1) < np.linalg.norm(zb - centroid_a, axis=1)
    ).all()
    assert closer_to_own
    # the same tiles, brightened in channel 1: only channel 1's intensity features move
    same = base[:20].copy()
    same[:, 1] += 0.3
    c = emb.embed_tiles(same)
    mean_col = FEATURES_PER_CHANNEL.index("mean")
    np.testing.assert_allclose(c[:, NF + mean_col] - a[:, NF + mean_col], 0.3, atol=1e-5)
    np.testing.assert_array_equal(c[:, :NF], a[:, :NF])
    np.testing.assert_array_equal(c[:, 2 * NF :], a[:, 2 * NF :])


def test_pixelstats_texture_features_behave():
    half = np.zeros((1, 1, 32, 32), np.float32)
    half[..., 16:] = 1.0
    flat = np.full((1, 1, 32, 32), 0.4, np.float32)
    f_half, f_flat = (PixelStatsEmbedder().embed_tiles(x)[0] for x in (half, flat))
    col = {name: i for i, name in enumerate(FEATURES_PER_CHANNEL)}
    assert f_half[col["otsu_fraction"]] == pytest.approx(0.5)
    bands = [f_half[col[f"fft_band{i}"]] for i in range(4)]
    assert sum(bands) == pytest.approx(1.0, abs=1e-5) and bands[0] > bands[-1]
    assert (
        f_flat[col["std"]] == pytest.approx(0, abs=1e-6)
        and f_flat[col["otsu_fraction"]] == 0
        and np.isfinite(f_flat).all()
    )


def test_embed_well_is_mean_over_tiles_and_registry():
    rng = np.random.default_rng(5)
    images = rng.integers(0, 255, size=(2, 3, 64, 64), dtype=np.uint8)
    emb = get_embedder("pixelstats")
    well = embed_well(emb, images, tile=32)
    tiles = to_float01(tile_sites(images, 32))
    np.testing.assert_allclose(well, emb.embed_tiles(tiles).mean(0), rtol=1e-5, atol=1e-6)
    assert well.shape == (NF * 3,) and well.dtype == np.float32
    assert get_embedder("random", dim=8).dim == 8
    with pytest.raises(ValueError, match="unknown embedder"):
        get_embedder("cellprofiler")
    with pytest.raises(ValueError, match="checkpoint"):
        get_embedder("mae")
