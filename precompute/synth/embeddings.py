"""Embeddings-only screens: well-level feature vectors straight from the latent model, no pixels.

A fixed random map plays the role of an image encoder: ``features = f(program) + T(technical) +
noise``, where ``f`` is a one-hidden-layer tanh network plus a linear part (so similarity in
feature space follows similarity of programs, not exactly linearly), ``T`` a linear map of the
well's technical parameters (stain gain, background, vignetting, focus, density - the same batch,
plate and well-position structure the images get) and the noise is per-well Gaussian. Everything
is float32 and produced in fixed-size chunks, each seeded by (seed, chunk index), so a million-well
screen takes seconds and the result does not depend on memory or machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.screen import write_rxrx_screen
from precompute.synth.biology import K
from precompute.synth.config import SynthConfig
from precompute.synth.generate import SynthModel, build_model, descriptor_extra, ground_truth_tables

CHUNK = 65_536
HIDDEN = 64
# Relative sizes, in feature-vector norm at dim 384 (measured on the demo preset): an active gene's
# effect ~16, batch-mean differences from technical parameters ~23 plus the latent batch shift,
# per-well noise ~12 (embedding_noise 0.6 x sqrt(dim)). As in real screens: batch > gene >~ noise.
BIO_SCALE = 1.0
TECH_SCALE = 0.7


def _maps(cfg: SynthConfig, n_tech: int) -> dict[str, np.ndarray]:
    """The fixed random encoder for this seed and dimension."""
    rng = np.random.default_rng([cfg.seed, 808])
    d = cfg.embedding_dim
    return {
        "w1": (rng.normal(0, 1.2 / np.sqrt(K), (K, HIDDEN))).astype(np.float32),
        "b1": rng.normal(0, 0.3, HIDDEN).astype(np.float32),
        "w2": (rng.normal(0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, d)) * np.sqrt(d / HIDDEN)).astype(np.float32),
        "lin": (rng.normal(0, 1.0 / np.sqrt(K), (K, d)) * np.sqrt(d / K) * 0.5).astype(np.float32),
        "tech": (rng.normal(0, 1.0 / np.sqrt(n_tech), (n_tech, d))).astype(np.float32),
        "base": rng.normal(0, 1.0, d).astype(np.float32),
    }


def _tech_features(model: SynthModel, lo: int, hi: int) -> np.ndarray:
    """Standardised technical parameters of wells lo..hi: log gain, background, vignette, blur, log density."""
    nz = model.nuisance
    t = np.column_stack(
        [
            np.log(nz.gain[lo:hi]) / 0.3,
            (nz.offset[lo:hi] - 9.5) / 2.6,
            (nz.vignette[lo:hi, None] - 0.22) / 0.1,
            (nz.blur[lo:hi, None] - 0.9) / 0.3,
            np.log(nz.density[lo:hi, None]) / 0.25,
        ]
    )
    return t.astype(np.float32)


def features_from_model(model: SynthModel, *, dim: int | None = None) -> np.ndarray:
    """``(n_wells, dim)`` float32 well embeddings for a built model (see module docstring)."""
    cfg = model.config if dim is None else model.config.replace(embedding_dim=dim)
    n, d = len(model.wells), cfg.embedding_dim
    n_tech = 2 * cfg.n_channels + 3
    maps = _maps(cfg, n_tech)
    out = np.empty((n, d), dtype=np.float32)
    tech_scale = np.float32(TECH_SCALE)  # nuisance draws already scale with cfg.batch_effect
    noise_sd = np.float32(cfg.embedding_noise)
    for k, lo in enumerate(range(0, n, CHUNK)):
        hi = min(n, lo + CHUNK)
        p = model.programs[lo:hi]
        x = np.tanh(p @ maps["w1"] + maps["b1"]) @ maps["w2"]
        x += p @ maps["lin"]
        if BIO_SCALE != 1.0:
            x *= np.float32(BIO_SCALE)
        x += (_tech_features(model, lo, hi) @ maps["tech"]) * tech_scale
        x += maps["base"]
        rng = np.random.default_rng([cfg.seed, 909, k])
        x += rng.standard_normal(x.shape, dtype=np.float32) * noise_sd
        out[lo:hi] = x
    return out


def generate_embeddings(config: SynthConfig) -> tuple[pd.DataFrame, np.ndarray, dict[str, pd.DataFrame]]:
    """Wells table, ``(n_wells, embedding_dim)`` float32 features and the ground-truth tables."""
    model = build_model(config)
    return model.wells, features_from_model(model), ground_truth_tables(model)


def write_embeddings_screen(config: SynthConfig, out_dir: str | os.PathLike) -> Path:
    """Generate and write an embeddings-only screen (no images); returns the screen folder.

    Arrays saved: ``well_features`` (n, dim) float32, ``latent_program`` (n, K), ``nuisance``.
    """
    model = build_model(config)
    feats = features_from_model(model)
    arrays = {"well_features": feats, "latent_program": model.pert_programs, "nuisance": model.nuisance.as_array()}
    extra = descriptor_extra(model, arrays)
    extra["synthetic"]["embedding"] = {"dim": config.embedding_dim, "kind": "synthetic random map of latent program"}
    return write_rxrx_screen(
        out_dir,
        model.wells,
        None,
        channels=config.channels,
        n_sites=config.n_sites,
        name=config.name,
        ground_truth=ground_truth_tables(model),
        extra=extra,
        arrays=arrays,
    )
