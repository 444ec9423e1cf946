"""Train a CA-MAE on tiles, and reconstruct tiles with a trained checkpoint.

``train_mae`` is what ``python -m precompute train-mae`` calls, followed by
:func:`precompute.embed.checkpoint.save_checkpoint`. ``reconstruct_tile`` feeds the dashboard's
reconstruction view; embedding tiles is :class:`precompute.embed.mae_embedder.MAEEmbedder`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from .checkpoint import load_checkpoint
from .lion import Lion
from .mae import ChannelAgnosticMAE, autocast_for, resolve_device
from .mae_config import MAEConfig
from .tiling import to_float01


class TileDataset(Dataset):
    """Tiles (n, C, t, t), uint8/uint16 or float in [0, 1] -> float32 crops (C, size, size).

    Keeping tiles as integers until a crop is drawn holds a screen's tiles in 1/4 of the memory.
    With ``augment``, crops are random and randomly flipped and rotated by multiples of 90
    degrees (microscopy has no up or left); without it, crops are centred. Randomness comes from
    torch's generator, which the DataLoader seeds per worker, so runs repeat given a seed.
    """

    def __init__(self, tiles: np.ndarray, size: int, augment: bool = True) -> None:
        if tiles.ndim != 4:
            raise ValueError(f"tiles must be 4-D (n, channels, t, t); got shape {tiles.shape}")
        h, w = tiles.shape[-2:]
        if h < size or w < size:
            raise ValueError(f"tiles of {h}x{w} pixels are smaller than the model's {size}x{size} input")
        self.tiles, self.size, self.augment = tiles, size, augment

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> torch.Tensor:
        tile = self.tiles[i]
        h, w = tile.shape[-2:]
        s = self.size
        if self.augment:
            y = int(torch.randint(0, h - s + 1, ()))
            x = int(torch.randint(0, w - s + 1, ()))
        else:
            y, x = (h - s) // 2, (w - s) // 2
        crop = torch.from_numpy(np.ascontiguousarray(to_float01(tile[:, y : y + s, x : x + s])))
        if self.augment:
            flip, k = torch.randint(0, 2, ()), int(torch.randint(0, 4, ()))
            crop = torch.rot90(crop.flip(-1) if flip else crop, k, dims=(-2, -1))
        return crop.contiguous()


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # MAE convention: no decay on biases, norms and learned tokens (1-D or token parameters).
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "token" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 (OpenPhenom: one-cycle cos)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_mae(
    tiles: np.ndarray | Dataset,
    config: MAEConfig,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-4,
    optimizer: str = "lion",
    weight_decay: float = 0.05,
    warmup: int | None = None,
    device: str = "auto",
    seed: int = 0,
    num_workers: int | None = None,
    log_every: int = 10,
    progress: bool = True,
    augment: bool = True,
    compile: bool = False,
    grad_clip: float | None = None,
) -> tuple[ChannelAgnosticMAE, dict[str, Any]]:
    """Train a fresh CA-MAE; return (model in eval mode, history).

    tiles: (n, C, t, t) uint8/uint16 or float in [0, 1] with t >= config.img_size (crops of
    img_size are drawn), or a Dataset yielding (C, img_size, img_size) float tensors in [0, 1].
    optimizer: 'lion' (default, lr ~1e-4, betas (0.9, 0.95) as OpenPhenom) or 'adamw' (lr ~3-10x
    larger). warmup defaults to 10 % of steps. num_workers None -> 0 on CPU (the cores are busy
    with the model), min(8, cores - 1) on CUDA. On CUDA batches come from pinned memory and the
    forward pass runs under bf16 autocast; ``compile`` wraps the model in torch.compile.
    history: {'curve': [{step, loss, lr, tiles_per_s, elapsed_s}], 'final_loss', settings...}.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive; got {steps}, {batch_size}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model = ChannelAgnosticMAE(config).to(dev)
    ds = tiles if isinstance(tiles, Dataset) else TileDataset(np.asarray(tiles), config.img_size, augment)
    if num_workers is None:
        num_workers = min(8, max(0, (os.cpu_count() or 1) - 1)) if dev.type == "cuda" else 0
    sampler_gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        sampler=RandomSampler(ds, replacement=True, num_samples=steps * batch_size, generator=sampler_gen),
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
        drop_last=True,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    groups = _param_groups(model, weight_decay)
    if optimizer == "lion":
        opt: torch.optim.Optimizer = Lion(groups, lr=lr, betas=(0.9, 0.95))
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))
    else:
        raise ValueError(f"optimizer must be 'lion' or 'adamw'; got {optimizer!r}")
    warmup = max(1, steps // 10) if warmup is None else max(1, warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    forward = torch.compile(model) if compile else model

    model.train()
    curve: list[dict[str, float]] = []
    loss_sum = torch.zeros((), device=dev)  # summed on device: .item() every step would sync
    t0 = t_log = time.perf_counter()
    seen = 0
    step = 0
    for step, batch in enumerate(loader, start=1):
        batch = batch.to(dev, non_blocking=True)
        with autocast_for(dev):
            loss, _, _ = forward(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        lr_now = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        loss_sum += loss.detach()
        seen += 1
        if step % log_every == 0 or step == steps:
            mean_loss = float(loss_sum) / seen
            if not math.isfinite(mean_loss):
                raise FloatingPointError(f"MAE loss became {mean_loss} by step {step}; lower lr")
            now = time.perf_counter()
            curve.append(
                dict(
                    step=step,
                    loss=mean_loss,
                    lr=lr_now,
                    tiles_per_s=seen * batch_size / (now - t_log),
                    elapsed_s=now - t0,
                )
            )
            if progress:
                print(
                    f"step {step}/{steps} loss {mean_loss:.4f} lr {lr_now:.2e} {curve[-1]['tiles_per_s']:.1f} tiles/s",
                    file=sys.stderr,
                    flush=True,
                )
            loss_sum.zero_()
            seen, t_log = 0, now
    wall = time.perf_counter() - t0
    history = dict(
        curve=curve,
        final_loss=curve[-1]["loss"] if curve else float("nan"),
        steps=step,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        seed=seed,
        device=str(dev),
        augment=augment,
        compile=compile,
        n_tiles=len(ds),
        wall_s=wall,
        tiles_per_s=step * batch_size / wall if wall > 0 else 0.0,
    )
    return model.eval(), history


def _center_crop(tile: np.ndarray, size: int) -> np.ndarray:
    h, w = tile.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"tile of {h}x{w} pixels is smaller than the model's {size}x{size} input")
    y, x = (h - size) // 2, (w - size) // 2
    return tile[..., y : y + size, x : x + size]


def reconstruct_tile(
    model: ChannelAgnosticMAE | str | os.PathLike,
    tile: np.ndarray,
    mask_ratio: float | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One tile (C, t, t), uint or float in [0, 1] -> ChannelAgnosticMAE.reconstruct's arrays
    without the batch axis: input, masked_input, reconstruction, reconstruction_pasted, mask
    (C, s, s) and per_channel_mse (C,). A larger tile is centre-cropped to the model's size s.
    ``model`` may be a checkpoint folder (loaded on CPU)."""
    if not isinstance(model, ChannelAgnosticMAE):
        model = load_checkpoint(model, "cpu")[0]
    arr = np.asarray(tile)
    if arr.ndim != 3:
        raise ValueError(f"reconstruct_tile needs one tile (C, t, t); got shape {arr.shape}")
    crop = to_float01(_center_crop(arr, model.config.img_size))
    out = model.reconstruct(crop[None], mask_ratio=mask_ratio, seed=seed)
    return {k: v[0] for k, v in out.items()}
