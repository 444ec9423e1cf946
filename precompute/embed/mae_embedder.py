"""The Embedder over a CA-MAE checkpoint (the ``mae`` and ``openphenom`` embedders).

Tiles -> one vector per tile from any encoder block, pooled or channel-wise; the model is loaded
by :func:`precompute.embed.checkpoint.load_checkpoint` (Phenomix's own layout or OpenPhenom's).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .mae import ChannelAgnosticMAE, autocast_for, resolve_blocks, resolve_device
from .tiling import tile_grid, tile_sites, to_float01
from .train import reconstruct_tile


class MAEEmbedder:
    """Embedder protocol over a CA-MAE checkpoint: tiles (n, C, t, t) -> (n, dim) float32.

    A tile larger than the model's input is cut into a centred grid of model-sized crops (see
    :func:`tile_sites`) whose embeddings are averaged, the same mean-over-crops a well gets;
    a smaller tile raises. Any channel count up to the model's ``max_in_chans`` works.

    ``block``: 1..depth or 'last' (OpenPhenom's ``predict`` uses the last). ``channelwise``: one
    mean per channel, concatenated (dim = C x embed_dim; ``n_channels`` must then be given so the
    width is known before the first tile). :meth:`embed_tiles_blocks` returns several blocks from
    one forward pass (``--block best`` scores them all).
    """

    name = "mae"

    def __init__(self, checkpoint_dir: str | os.PathLike, device: str = "auto", batch_size: int = 256,
                 block: int | str | None = "last", channelwise: bool = False, n_channels: int | None = None) -> None:
        self.device = resolve_device(device)
        self.model, self.config, self.meta = load_checkpoint(checkpoint_dir, self.device)
        self.checkpoint = Path(checkpoint_dir)
        self._setup(batch_size, block, channelwise, n_channels)

    def _setup(self, batch_size: int, block: int | str | None, channelwise: bool, n_channels: int | None) -> None:
        self.batch_size = int(batch_size)
        # 'all': every block's embedding side by side, block 1 first (dim = depth x block width),
        # so per-plate workers and tile means run unchanged; the embed stage splits them to score.
        depth = self.config.depth
        self.blocks = list(range(1, depth + 1)) if block == "all" else [resolve_blocks(depth, block)]
        self.block = "all" if block == "all" else self.blocks[0]
        self.channelwise = bool(channelwise)
        if self.channelwise and not n_channels:
            raise ValueError("channel-wise embeddings need n_channels (their width is channels x embed_dim)")
        self.n_channels = n_channels
        self.block_dim = self.config.embed_dim * (int(n_channels) if self.channelwise else 1)
        self.dim = self.block_dim * len(self.blocks)

    @classmethod
    def from_model(cls, model: ChannelAgnosticMAE, batch_size: int = 256, block: int | str | None = "last",
                   channelwise: bool = False, n_channels: int | None = None) -> MAEEmbedder:
        """Wrap an in-memory model (e.g. straight after train_mae) without a checkpoint."""
        self = cls.__new__(cls)
        self.model, self.config, self.meta = model.eval(), model.config, {}
        self.device = next(model.parameters()).device
        self.checkpoint = None
        self._setup(batch_size, block, channelwise, n_channels)
        return self

    def embed_tiles_blocks(self, tiles: np.ndarray, blocks: list[int]) -> dict[int, np.ndarray]:
        """(n, C, t, t) in [0, 1] (uint8/uint16 also taken) -> {block: (n, dim) float32}."""
        arr = np.asarray(tiles)
        if arr.ndim != 4:
            raise ValueError(f"tiles must be 4-D (n, channels, t, t); got shape {arr.shape}")
        if self.channelwise and arr.shape[1] != self.n_channels:
            raise ValueError(f"channel-wise embedder set up for {self.n_channels} channels; tiles have {arr.shape[1]}")
        n = arr.shape[0]
        s = self.config.img_size
        per_tile = 1
        if arr.shape[-2:] != (s, s):
            per_tile = len(tile_grid(arr.shape[-2], s, s)) * len(tile_grid(arr.shape[-1], s, s))
            arr = tile_sites(arr, s)  # (n * per_tile, C, s, s), tile-major
        out = {b: np.empty((arr.shape[0], self.block_dim), dtype=np.float32) for b in blocks}
        pin = self.device.type == "cuda"
        with torch.inference_mode(), autocast_for(self.device):
            for i in range(0, arr.shape[0], self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(to_float01(arr[i : i + self.batch_size])))
                if pin:
                    x = x.pin_memory()
                embs = self.model.embed_blocks(x.to(self.device, non_blocking=True), blocks, self.channelwise)
                for b, emb in embs.items():
                    out[b][i : i + len(x)] = emb.float().cpu().numpy()
        return {b: v.reshape(n, per_tile, self.block_dim).mean(axis=1) for b, v in out.items()}

    def embed_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """(n, C, t, t) float32 in [0, 1] (uint8/uint16 also taken) -> (n, dim) float32."""
        per_block = self.embed_tiles_blocks(tiles, self.blocks)
        return np.concatenate([per_block[b] for b in self.blocks], axis=1)

    def reconstruct(self, tile: np.ndarray, mask_ratio: float | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        """One tile (C, t, t) -> see :func:`reconstruct_tile`."""
        return reconstruct_tile(self.model, tile, mask_ratio=mask_ratio, seed=seed)
