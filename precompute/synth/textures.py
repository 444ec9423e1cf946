"""Precomputed noise textures that cells sample at random offsets (fast: slicing, no per-cell FFT).

Each texture is band-passed white noise shaped into one organelle's look: mottled chromatin,
a reticular ER network (zero-crossing ridges), tubular and punctate mitochondria, oriented actin
fibres (one texture per orientation) and a slow cytoplasmic mottle. Built once per process per seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

N_ORIENTATIONS = 12
BANK_SIZE = 512


@dataclass(frozen=True)
class TextureBank:
    """All (S, S) float32 unless noted. fibres: (N_ORIENTATIONS, S, S), orientation k = k*pi/N."""

    chromatin: np.ndarray  # zero-mean, unit-ish std
    reticulum: np.ndarray  # 0..1 thin network
    tubular: np.ndarray  # 0..1 short worm-like filaments
    puncta: np.ndarray  # 0..1 isolated dots
    fibres: np.ndarray  # 0..1 long parallel streaks
    mottle: np.ndarray  # around 1, slow variation
    ruffle: np.ndarray  # zero-mean, unit std, ~3 px: ragged cell borders
    size: int


def _freq(size: int) -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    return fy, fx


def _filtered(rng: np.random.Generator, size: int, spectrum: np.ndarray) -> np.ndarray:
    """White noise shaped by a (size, size//2+1) amplitude spectrum, normalised to unit std."""
    noise = np.fft.rfft2(rng.standard_normal((size, size)))
    out = np.fft.irfft2(noise * spectrum, s=(size, size))
    out -= out.mean()
    return (out / (out.std() + 1e-12)).astype(np.float32)


def _bandpass(size: int, sigma_px: float) -> np.ndarray:
    """Gaussian low-pass at spatial scale sigma minus a wider one: blobs about sigma in size."""
    fy, fx = _freq(size)
    f2 = fy**2 + fx**2
    lo = np.exp(-2 * (np.pi * sigma_px) ** 2 * f2)
    hi = np.exp(-2 * (np.pi * sigma_px * 2.5) ** 2 * f2)
    return lo - hi


def _ridges(n: np.ndarray, width: float) -> np.ndarray:
    """Thin lines along the zero crossings of a smooth field: a connected network."""
    return np.exp(-((n / width) ** 2)).astype(np.float32)


@lru_cache(maxsize=4)
def texture_bank(seed: int, size: int = BANK_SIZE) -> TextureBank:
    """The texture bank for ``seed`` (cached per process; identical in every worker)."""
    rng = np.random.default_rng([seed, 404])
    chromatin = _filtered(rng, size, _bandpass(size, 1.1))
    reticulum = _ridges(_filtered(rng, size, _bandpass(size, 2.2)), 0.35)
    # Tubules: a fine ridge network broken into segments by a coarser on/off mask.
    fine = _ridges(_filtered(rng, size, _bandpass(size, 1.6)), 0.3)
    breaks = _filtered(rng, size, _bandpass(size, 3.0))
    tubular = (fine * np.clip(breaks + 0.3, 0, 1)).astype(np.float32)
    dots = _filtered(rng, size, _bandpass(size, 1.0))
    puncta = np.clip(dots - 1.0, 0, None)
    puncta = (puncta / (puncta.max() + 1e-12) * 2.5).clip(0, 1).astype(np.float32)
    # Fibres: noise smeared along one direction (anisotropic Gaussian in Fourier space).
    fy, fx = _freq(size)
    fibres = np.empty((N_ORIENTATIONS, size, size), dtype=np.float32)
    base = np.fft.rfft2(rng.standard_normal((size, size)))
    for k in range(N_ORIENTATIONS):
        th = np.pi * k / N_ORIENTATIONS
        along = fx * np.cos(th) + fy * np.sin(th)
        across = -fx * np.sin(th) + fy * np.cos(th)
        spec = np.exp(-2 * np.pi**2 * ((along * 14.0) ** 2 + (across * 0.9) ** 2))
        f = np.fft.irfft2(base * spec, s=(size, size))
        f = (f - f.mean()) / (f.std() + 1e-12)
        fibres[k] = np.clip(f - 0.7, 0, None) ** 1.2 / 1.5
    fibres = np.clip(fibres, 0, 1)
    fyy, fxx = _freq(size)
    slow = _filtered(rng, size, np.exp(-2 * (np.pi * 6.0) ** 2 * (fyy**2 + fxx**2)))
    mottle = (1.0 + 0.25 * slow).astype(np.float32)
    ruffle = _filtered(rng, size, _bandpass(size, 2.5))
    return TextureBank(chromatin, reticulum, tubular, puncta, fibres, mottle, ruffle, size)
