"""Embed: Cell Painting site images -> one vector per well.

Every embedder turns tiles (n, C, t, t) float32 in [0, 1] into (n, dim) float32; a well's
embedding is the mean over all tiles of all its sites (Kraus et al. 2024). Embedders:

- ``random``: content-independent but deterministic vectors, the floor of every benchmark.
- ``pixelstats``: per-channel intensity and texture statistics, the classical baseline.
- ``mae``: a channel-agnostic masked autoencoder (CA-MAE) checkpoint, see :mod:`.mae`.
- ``openphenom``: the same CA-MAE from a folder laid out as Recursion's public OpenPhenom is
  distributed (config.json + model.safetensors); see :mod:`.openphenom_io`. Never downloaded.

Heavy imports (torch) happen only when the MAE embedder is asked for.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .tiling import TilingError, tile_sites, to_float01

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "TilingError",
    "embed_well",
    "get_embedder",
    "tile_sites",
    "to_float01",
]

EMBEDDERS: tuple[str, ...] = ("random", "pixelstats", "mae", "openphenom")
MAE_EMBEDDERS: tuple[str, ...] = ("mae", "openphenom")  # CA-MAE checkpoints, same model class


@runtime_checkable
class Embedder(Protocol):
    """Tiles -> vectors. ``name`` identifies the method in artifacts; ``dim`` is the output width."""

    name: str
    dim: int

    def embed_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """(n, C, t, t) float32 in [0, 1] -> (n, dim) float32."""
        ...


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


def get_embedder(name: str, **options: Any) -> Embedder:
    """Build an embedder by name.

    - ``get_embedder("random", dim=384, seed=0)``
    - ``get_embedder("pixelstats", n_channels=5)``
    - ``get_embedder("mae", checkpoint="path/to/ckpt_dir", device="auto", batch_size=256,
      block="last", channelwise=False, n_channels=None)``; ``block`` 1..depth, 'last' or 'all'
    - ``get_embedder("openphenom", checkpoint="path/to/OpenPhenom", ...)``: same options
    """
    key = name.lower()
    if key == "random":
        from .baselines import RandomEmbedder

        return RandomEmbedder(**options)
    if key == "pixelstats":
        from .baselines import PixelStatsEmbedder

        return PixelStatsEmbedder(**options)
    if key in MAE_EMBEDDERS:
        from .train import MAEEmbedder

        opts = dict(options)
        checkpoint = opts.pop("checkpoint", None) or opts.pop("checkpoint_dir", None)
        if checkpoint is None:
            raise ValueError(f"the {key!r} embedder needs checkpoint='path/to/checkpoint_dir'")
        embedder = MAEEmbedder(checkpoint, **opts)
        embedder.name = key
        return embedder
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
