"""Embed: Cell Painting site images -> one vector per well.

Every embedder turns tiles (n, C, t, t) float32 in [0, 1] into (n, dim) float32; a well's
embedding is the mean over all tiles of all its sites (Kraus et al. 2024). The embedders are
registered in :mod:`.registry`, one module each in :mod:`.embedders`:

- ``random``: content-independent but deterministic vectors, the floor of every benchmark.
- ``pixelstats``: per-channel intensity and texture statistics, the classical baseline.
- ``mae``: a channel-agnostic masked autoencoder (CA-MAE) checkpoint, see :mod:`.mae`.
- ``openphenom``: the same CA-MAE from a folder laid out as Recursion's public OpenPhenom is
  distributed (config.json + model.safetensors); see :mod:`.openphenom_io`. Never downloaded.

Heavy imports (torch) happen only when a CA-MAE embedder is built.
"""

from __future__ import annotations

import numpy as np

from .registry import Embedder, embedder_names, get_embedder
from .tiling import TilingError, tile_sites, to_float01

__all__ = [
    "Embedder",
    "TilingError",
    "embed_well",
    "embedder_names",
    "get_embedder",
    "tile_sites",
    "to_float01",
]


def embed_well(embedder: Embedder, images: np.ndarray, tile: int = 256) -> np.ndarray:
    """One well's images (sites, C, H, W), uint8/uint16 or float in [0, 1] -> (dim,) float32.

    Sites are cut into ``tile`` x ``tile`` tiles (see :func:`tile_sites`), converted to [0, 1]
    (see :func:`to_float01`) and embedded; the well's vector is the mean over all tiles.
    Tiling happens before the float conversion so only the tiles kept are converted.
    """
    tiles = to_float01(tile_sites(images, tile))
    vectors = np.asarray(embedder.embed_tiles(tiles), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != tiles.shape[0]:
        raise ValueError(
            f"embedder {getattr(embedder, 'name', embedder)!r} returned shape {vectors.shape} "
            f"for {tiles.shape[0]} tiles; expected ({tiles.shape[0]}, dim)"
        )
    return vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
