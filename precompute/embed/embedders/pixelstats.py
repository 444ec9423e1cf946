"""The ``pixelstats`` embedder: per-channel intensity and texture statistics, the classical baseline.

Numpy only; tiles (n, C, t, t) float32 in [0, 1] -> (n, 16 * C) float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..registry import EmbedderSpec, register
from ..tiling import check_float_tiles

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
# Radial frequency band edges in cycles/pixel; the last band also takes the corners (> 0.5).
FFT_BAND_EDGES: tuple[float, ...] = (0.0, 1 / 16, 1 / 8, 1 / 4, np.inf)
OTSU_BINS = 64
FEATURES_PER_CHANNEL: tuple[str, ...] = (
    "mean",
    "std",
    *(f"q{round(q * 100):02d}" for q in QUANTILES),
    "grad_abs_mean",
    "laplacian_var",
    *(f"fft_band{i}" for i in range(len(FFT_BAND_EDGES) - 1)),
    "otsu_fraction",
)


def _otsu_fraction(x: np.ndarray) -> np.ndarray:
    """x (m, P) -> (m,) fraction of pixels above each row's Otsu threshold (64-bin histogram).

    Vectorised over rows: one bincount for all histograms, then Otsu's between-class variance
    maximised per row. Constant rows have no threshold and give 0.
    """
    m, p = x.shape
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    idx = np.clip(((x - lo) / safe * OTSU_BINS).astype(np.int64), 0, OTSU_BINS - 1)
    idx += (np.arange(m, dtype=np.int64) * OTSU_BINS)[:, None]
    hist = np.bincount(idx.ravel(), minlength=m * OTSU_BINS).reshape(m, OTSU_BINS) / p
    omega = np.cumsum(hist, axis=1)
    mu = np.cumsum(hist * np.arange(OTSU_BINS), axis=1)
    mu_t = mu[:, -1:]
    denom = omega * (1.0 - omega)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.where(denom > 0, (mu_t * omega - mu) ** 2 / denom, -1.0)
    k = between.argmax(axis=1)[:, None]
    threshold = lo + (k + 1) * safe / OTSU_BINS
    frac = (x > threshold).mean(axis=1)
    return np.where(span[:, 0] > 0, frac, 0.0)


def _fft_band_fractions(x: np.ndarray) -> np.ndarray:
    """x (m, H, W) -> (m, n_bands) share of non-DC spectral power in each radial band.

    Shares, not absolute energies, so the texture features stay apart from the intensity ones.
    rfft2 stores interior columns once for two conjugate frequencies, hence the column weights.
    """
    m, h, w = x.shape
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.rfft2(centred)) ** 2  # (m, h, w // 2 + 1)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    weight = np.full(fx.shape[1], 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    power = power * weight
    total = power.sum(axis=(1, 2))
    bands = []
    for lo, hi in zip(FFT_BAND_EDGES[:-1], FFT_BAND_EDGES[1:]):
        sel = (radius > lo) & (radius <= hi)  # radius 0 (DC) falls in no band
        bands.append((power * sel).sum(axis=(1, 2)))
    bands_arr = np.stack(bands, axis=1)
    safe = np.where(total > 0, total, 1.0)[:, None]
    return np.where(total[:, None] > 0, bands_arr / safe, 0.0)


def pixel_stats(tiles: np.ndarray) -> np.ndarray:
    """(n, C, H, W) float32 -> (n, C, 16) per-channel statistics, in FEATURES_PER_CHANNEL order."""
    n, c, h, w = tiles.shape
    flat = tiles.reshape(n * c, h * w)
    planes = tiles.reshape(n * c, h, w)
    mean = flat.mean(axis=1)
    std = flat.std(axis=1)
    quant = np.quantile(flat, QUANTILES, axis=1).T  # (n*c, 7)
    gy = np.diff(planes, axis=1)[:, :, :-1]
    gx = np.diff(planes, axis=2)[:, :-1, :]
    grad = np.sqrt(gy**2 + gx**2).mean(axis=(1, 2))
    lap = (
        planes[:, :-2, 1:-1]
        + planes[:, 2:, 1:-1]
        + planes[:, 1:-1, :-2]
        + planes[:, 1:-1, 2:]
        - 4.0 * planes[:, 1:-1, 1:-1]
    )
    lap_var = lap.reshape(n * c, -1).var(axis=1)
    fft = _fft_band_fractions(planes)
    otsu = _otsu_fraction(flat)
    feats = np.column_stack([mean, std, quant, grad, lap_var, fft, otsu])
    return feats.reshape(n, c, len(FEATURES_PER_CHANNEL)).astype(np.float32)


class PixelStatsEmbedder:
    """Per-channel pixel statistics, the "pixel statistics" baseline of Kraus et al. 2024.

    For every channel, 16 numbers (``FEATURES_PER_CHANNEL``): mean, std, the 1/5/25/50/75/95/99 %
    quantiles, mean |gradient|, variance of the 4-neighbour Laplacian, the share of non-DC FFT
    power in 4 radial bands (< 1/16, 1/16-1/8, 1/8-1/4, > 1/4 cycles/pixel) and the fraction of
    pixels above a 64-bin Otsu threshold. ``dim = 16 * n_channels``, laid out channel by channel.
    Pass ``n_channels`` to fix ``dim`` up front; otherwise the first call sets it and later calls
    must match. Tiles need at least 3x3 pixels. Work is vectorised over ``chunk`` tiles at a time
    to bound memory.
    """

    name = "pixelstats"

    def __init__(self, n_channels: int | None = None, chunk: int = 64) -> None:
        self.n_channels = n_channels
        self.chunk = int(chunk)

    @property
    def dim(self) -> int:
        if self.n_channels is None:
            raise AttributeError(
                "PixelStatsEmbedder.dim depends on the channel count: pass n_channels= or call embed_tiles first"
            )
        return len(FEATURES_PER_CHANNEL) * self.n_channels

    def feature_names(self, channel_names: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """Column names matching embed_tiles' output, e.g. 'DNA_mean', 'DNA_std', ..."""
        if channel_names is None:
            channel_names = [f"ch{i}" for i in range(self.dim // len(FEATURES_PER_CHANNEL))]
        return [f"{ch}_{f}" for ch in channel_names for f in FEATURES_PER_CHANNEL]

    def embed_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """(n, C, t, t) float32 in [0, 1] -> (n, 16 * C) float32."""
        arr = check_float_tiles(tiles)
        n, c, h, w = arr.shape
        if h < 3 or w < 3:
            raise ValueError(f"pixel statistics need tiles of at least 3x3 pixels; got {h}x{w}")
        if self.n_channels is None:
            self.n_channels = c
        elif c != self.n_channels:
            raise ValueError(f"PixelStatsEmbedder was set up for {self.n_channels} channels; got tiles with {c}")
        parts = [pixel_stats(arr[i : i + self.chunk]) for i in range(0, n, self.chunk)]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts).reshape(n, self.dim)


def stage_options(screen: Any, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """No build options (the width follows the tiles' channels); the key holds the tile size."""
    return {}, {"tile": config.tile}


SPEC = register(EmbedderSpec(
    name="pixelstats", label="pixel statistics", build=PixelStatsEmbedder, stage_options=stage_options, order=20,
    help="16 intensity and texture statistics per channel (the classical baseline)",
))
