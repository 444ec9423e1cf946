"""MAE reconstructions of one tile for the Images page, and fixed-range channel composites.

The run's provenance names the MAE checkpoint that embedded the screen; it is loaded once per
process on the CPU (``precompute.embed.checkpoint.load_checkpoint``) and kept read-only. One
tile of the model's input size is cut from a site (centre, or around a chosen point), masked at
the user's ratio and reconstructed (``precompute.embed.train.reconstruct_tile``).

Composites here scale every image with the SAME per-channel range (taken from a reference,
e.g. the unmasked input or a plate's controls), so a masked input, a reconstruction, or a well
next to its controls are compared on one intensity scale rather than each stretched to its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable, PhenomixData
from phenomix_dash.figures.images import DEFAULT_PERCENTILES, channel_colour


class ReconstructionUnavailable(DataUnavailable):
    """No model to reconstruct with (no checkpoint in the run, or it cannot be loaded)."""


# -- the model ---------------------------------------------------------------------------------

def checkpoint_of(d: PhenomixData) -> Path | None:
    """The MAE checkpoint folder recorded in the run's provenance, or None."""
    ckpt = d.provenance().get("checkpoint")
    return Path(ckpt) if ckpt else None


@memoize(2)
def _load(path: str) -> tuple[Any, Any, dict]:
    from precompute.embed.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path, "cpu")
    except CheckpointError as err:
        raise ReconstructionUnavailable(f"the run's MAE checkpoint cannot be loaded: {err}") from None


def load_model(d: PhenomixData) -> tuple[Any, Any, dict]:
    """(model in eval mode on CPU, MAEConfig, training metadata), loaded once per process."""
    ckpt = checkpoint_of(d)
    if ckpt is None:
        raise ReconstructionUnavailable(
            "this run has no MAE checkpoint (it was embedded without the MAE), so there is no model to "
            "reconstruct with; rerun precompute with the 'mae' embedder to see reconstructions")
    return _load(str(ckpt))


def model_input_size(d: PhenomixData) -> int:
    """The checkpoint's tile size, read from its config.json (no torch import, no weights); for a folder
    laid out as OpenPhenom is distributed, the public model's 256 px unless its config says otherwise."""
    import json

    from precompute.embed.openphenom_io import input_size

    ckpt = checkpoint_of(d)
    if ckpt is None:
        raise ReconstructionUnavailable("this run has no MAE checkpoint")
    try:
        return input_size(json.loads((ckpt / "config.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReconstructionUnavailable(f"cannot read the model's tile size from {ckpt / 'config.json'}: {err}") from None


def crop_origin(height: int, width: int, size: int, centre: Sequence[float] | None = None) -> tuple[int, int]:
    """Top-left (y, x) of a size x size tile centred on ``centre`` (y, x), kept inside the site;
    the site's centre when ``centre`` is None. Raises ValueError if the site is smaller."""
    if height < size or width < size:
        raise ValueError(f"site of {height}x{width} pixels is smaller than the model's {size}x{size} input")
    cy, cx = (height / 2, width / 2) if centre is None else (float(centre[0]), float(centre[1]))
    y = int(round(cy - size / 2))
    x = int(round(cx - size / 2))
    return min(max(y, 0), height - size), min(max(x, 0), width - size)


def reconstruct_site(model: Any, site: np.ndarray, *, centre: Sequence[float] | None = None,
                     mask_ratio: float | None = None, seed: int = 0) -> dict[str, Any]:
    """One site (C, H, W) -> the model's reconstruction of one tile of it.

    Returns reconstruct_tile's arrays (input, masked_input, reconstruction,
    reconstruction_pasted, mask: (C, s, s); per_channel_mse: (C,)) plus ``origin`` (y, x) and
    ``size`` of the tile within the site, and the mask ratio used.
    """
    from precompute.embed.train import reconstruct_tile

    size = int(model.config.img_size)
    site = np.asarray(site)
    if site.ndim != 3:
        raise ValueError(f"expected one site (channels, H, W), got shape {site.shape}")
    ratio = float(model.config.mask_ratio if mask_ratio is None else mask_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    y, x = crop_origin(site.shape[1], site.shape[2], size, centre)
    out = reconstruct_tile(model, site[:, y:y + size, x:x + size], mask_ratio=ratio, seed=int(seed))
    return {**out, "origin": (y, x), "size": size, "mask_ratio": ratio}


# -- fixed-range composites ------------------------------------------------------------------

def channel_ranges(images: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (lo, hi) intensity range of (C, H, W) or (N, C, H, W) images, pooled over N."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected (C, H, W) or (N, C, H, W), got shape {x.shape}")
    flat = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    lo, hi = np.percentile(flat, percentiles, axis=1)
    return lo.astype(np.float32), np.maximum(hi, lo + 1e-6).astype(np.float32)


def composite_fixed(images: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, enabled: Sequence[bool] | None = None,
                    colours: Sequence[tuple[int, int, int]] | None = None,
                    gains: Sequence[float] | None = None) -> np.ndarray:
    """(C, H, W) -> RGB uint8 (H, W, 3) with each channel scaled by the given (lo, hi), coloured,
    summed and clipped (the rxrx convention with a shared range)."""
    x = np.asarray(images, dtype=np.float32)
    n = x.shape[0]
    enabled = list(enabled) if enabled is not None else [True] * n
    colours = list(colours) if colours is not None else [channel_colour(i) for i in range(n)]
    gains = list(gains) if gains is not None else [1.0] * n
    rgb = np.zeros(x.shape[1:] + (3,), dtype=np.float32)
    for c in range(n):
        if enabled[c]:
            v = np.clip((x[c] - lo[c]) / (hi[c] - lo[c]) * gains[c], 0.0, 1.0)
            rgb += v[..., None] * (np.asarray(colours[c], dtype=np.float32) / 255.0)
    return (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def grey_fixed(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """One channel -> grey uint8 with a given range."""
    return (np.clip((np.asarray(img, dtype=np.float32) - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def error_maps(result: dict[str, Any]) -> np.ndarray:
    """|reconstruction - input| per channel (C, s, s), zero on visible patches (the loss only
    asks the model to paint the masked ones)."""
    err = np.abs(np.asarray(result["reconstruction"], dtype=np.float32) - np.asarray(result["input"], dtype=np.float32))
    return np.where(result["mask"], err, 0.0)
