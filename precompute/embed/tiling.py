"""Cut site images into square tiles and convert pixel integers to floats in [0, 1].

Both functions are pure numpy; no torch import here so the baselines stay light.
"""

from __future__ import annotations

import numpy as np


class TilingError(ValueError):
    """Images that cannot be tiled or converted as asked; the message names the sizes at fault."""


def to_float01(images: np.ndarray) -> np.ndarray:
    """Pixel integers -> float32 in [0, 1], any shape.

    uint8 is divided by 255 and uint16 by 65535: a plain full-range rescale. Real 16-bit
    microscopy rarely fills its range, so the screen loader rescales it by percentiles upstream;
    this function does not guess. Floating input is taken to be in [0, 1] already, is cast to
    float32, and is checked (values outside [0, 1] beyond 1e-3 raise, since they mean the caller
    skipped a rescale and the models would see data unlike their training data).
    """
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32, copy=False)
        if out.size:
            lo, hi = float(np.nanmin(out)), float(np.nanmax(out))
            if lo < -1e-3 or hi > 1.0 + 1e-3:
                raise TilingError(
                    f"float images must lie in [0, 1]; got values in [{lo:.4g}, {hi:.4g}] "
                    "(rescale them first, e.g. by percentiles)"
                )
        return out
    raise TilingError(f"images must be uint8, uint16 or float in [0, 1]; got dtype {arr.dtype}")


def tile_grid(length: int, tile: int, stride: int) -> np.ndarray:
    """Start offsets of tiles along one axis of ``length`` pixels.

    The grid of ``(length - tile) // stride + 1`` tiles is centred: the pixels it cannot use are
    split between both borders (the extra pixel, if odd, goes to the far border), because
    illumination falls off towards the edges and dropping both borders evenly keeps tiles alike.
    """
    n = (length - tile) // stride + 1
    used = (n - 1) * stride + tile
    offset = (length - used) // 2
    return offset + stride * np.arange(n)


def tile_sites(images: np.ndarray, tile: int = 256, *, stride: int | None = None) -> np.ndarray:
    """Sites -> square tiles covering each site.

    images: (S, C, H, W) any dtype. Returns (S * ny * nx, C, tile, tile) in the same dtype, ordered
    site, then tile row, then tile column. ``stride`` defaults to ``tile`` (non-overlapping tiles);
    a smaller stride gives overlapping tiles. Remainder pixels are dropped symmetrically (see
    :func:`tile_grid`). Raises :class:`TilingError` when a site is smaller than one tile.
    """
    arr = np.asarray(images)
    if arr.ndim != 4:
        raise TilingError(f"images must be 4-D (sites, channels, H, W); got shape {arr.shape}")
    if tile < 1:
        raise TilingError(f"tile must be a positive number of pixels; got {tile}")
    stride = tile if stride is None else stride
    if stride < 1:
        raise TilingError(f"stride must be a positive number of pixels; got {stride}")
    s, c, h, w = arr.shape
    if h < tile or w < tile:
        raise TilingError(
            f"site images of {h}x{w} pixels are smaller than one {tile}x{tile} tile; choose a smaller tile"
        )
    ys, xs = tile_grid(h, tile, stride), tile_grid(w, tile, stride)
    if stride == tile:
        # Non-overlapping: one reshape of the used window, no per-tile copies.
        window = arr[:, :, ys[0] : ys[-1] + tile, xs[0] : xs[-1] + tile]
        ny, nx = len(ys), len(xs)
        out = window.reshape(s, c, ny, tile, nx, tile).transpose(0, 2, 4, 1, 3, 5)
        return np.ascontiguousarray(out.reshape(s * ny * nx, c, tile, tile))
    crops = [arr[:, :, y : y + tile, x : x + tile] for y in ys for x in xs]
    out = np.stack(crops, axis=1)  # (S, ny*nx, C, tile, tile)
    return out.reshape(s * len(crops), c, tile, tile)


def check_float_tiles(tiles: np.ndarray) -> np.ndarray:
    """Tiles as an embedder takes them, (n, C, t, t) float in [0, 1] -> float32; other shapes or
    integer pixels (not yet converted by :func:`to_float01`) raise."""
    arr = np.asarray(tiles)
    if arr.ndim != 4:
        raise ValueError(f"tiles must be 4-D (n, channels, H, W); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"tiles must be float in [0, 1] (see to_float01); got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)
