"""The ``random`` embedder: content-independent but reproducible vectors, the floor of every benchmark."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..registry import EmbedderSpec, register
from ..tiling import check_float_tiles

DIM = 384  # the width the embed stage asks for (a ViT-S width, like OpenPhenom's)


class RandomEmbedder:
    """Content-independent vectors that are nevertheless reproducible.

    Each tile's vector is standard normal noise from a generator seeded by a BLAKE2b hash of the
    tile's shape, dtype and bytes plus ``seed``: identical tiles give identical vectors (so a rerun
    writes identical artifacts) while the vectors carry no information about the image beyond
    identity. Relationship recall of this embedder is the chance level (0.10 at 5th/95th).
    """

    name = "random"

    def __init__(self, dim: int = 384, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive; got {dim}")
        self.dim = int(dim)
        self.seed = int(seed)

    def _vector(self, tile: np.ndarray) -> np.ndarray:
        h = hashlib.blake2b(digest_size=8)
        h.update(f"{self.seed}|{tile.shape}|{tile.dtype.str}|".encode())
        h.update(np.ascontiguousarray(tile).data)
        rng = np.random.default_rng(int.from_bytes(h.digest(), "little"))
        return rng.standard_normal(self.dim, dtype=np.float32)

    def embed_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """(n, C, t, t) float32 -> (n, dim) float32, one hash per tile."""
        arr = check_float_tiles(tiles)
        out = np.empty((arr.shape[0], self.dim), dtype=np.float32)
        for i, tile in enumerate(arr):
            out[i] = self._vector(tile)
        return out


def stage_options(screen: Any, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build with the run's seed; the key holds width, seed and tile size."""
    return {"dim": DIM, "seed": config.seed}, {"dim": DIM, "seed": config.seed, "tile": config.tile}


SPEC = register(EmbedderSpec(
    name="random", label="random", build=RandomEmbedder, stage_options=stage_options, order=10,
    help="deterministic vectors that carry no image content (the chance level)",
))
