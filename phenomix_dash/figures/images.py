"""Microscopy image rendering: channel composites and single channels as PNG data URIs.

The composite follows the rxrx convention (PRIMER): each channel gets a colour, is scaled to its
own intensity range (robust percentiles, so a few hot pixels do not darken the image), and the
coloured channels are summed and clipped. Works for 8- and 16-bit input alike.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .palette import RXRX_CHANNEL_RGB

DEFAULT_PERCENTILES = (0.5, 99.8)


def channel_colour(index: int) -> tuple[int, int, int]:
    return RXRX_CHANNEL_RGB[index % len(RXRX_CHANNEL_RGB)]


def rescale_channel(
    img: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES, *, gain: float = 1.0
) -> np.ndarray:
    """One channel (H, W) of any bit depth -> float32 in [0, 1] by robust percentiles."""
    x = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(x, percentiles)
    if hi <= lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo) * gain, 0.0, 1.0)


def composite_rgb(
    images: np.ndarray,
    *,
    enabled: Sequence[bool] | None = None,
    colours: Sequence[tuple[int, int, int]] | None = None,
    gains: Sequence[float] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> np.ndarray:
    """Channels (C, H, W) -> RGB uint8 (H, W, 3): coloured, per-channel scaled, summed, clipped."""
    if images.ndim != 3:
        raise ValueError(f"expected (channels, H, W), got shape {images.shape}")
    n = images.shape[0]
    enabled = list(enabled) if enabled is not None else [True] * n
    colours = list(colours) if colours is not None else [channel_colour(i) for i in range(n)]
    gains = list(gains) if gains is not None else [1.0] * n
    rgb = np.zeros(images.shape[1:] + (3,), dtype=np.float32)
    for c in range(n):
        if not enabled[c]:
            continue
        scaled = rescale_channel(images[c], percentiles, gain=gains[c])
        rgb += scaled[..., None] * (np.asarray(colours[c], dtype=np.float32) / 255.0)
    return (np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def grey_rgb(img: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> np.ndarray:
    """One channel -> grey uint8 (H, W), robustly scaled."""
    return (rescale_channel(img, percentiles) * 255).astype(np.uint8)


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def png_data_uri(arr: np.ndarray) -> str:
    """uint8 (H, W) or (H, W, 3) -> 'data:image/png;base64,...' for an html.Img src."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(arr)).decode("ascii")


def site_panels(
    site: np.ndarray, channels: Sequence[str], **composite_options
) -> list[tuple[str, str]]:
    """One site (C, H, W) -> [(title, data URI)]: the composite first, then each channel in grey."""
    panels = [("composite", png_data_uri(composite_rgb(site, **composite_options)))]
    for c, name in enumerate(channels):
        panels.append((name, png_data_uri(grey_rgb(site[c]))))
    return panels
