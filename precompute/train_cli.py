"""`python -m precompute train-mae`: train the channel-agnostic MAE on a screen's tiles."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from precompute.screen import Screen, load_screen


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--screen", default="demo", help="'demo' or a screen folder with images")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--model", default="tiny", choices=["tiny", "vit_small", "vit_base"])
    p.add_argument("--img-size", type=int, default=None, help="crop size the model sees (default: 64 tiny, 256 ViT)")
    p.add_argument("--patch-size", type=int, default=None, help="patch size (default: the model's; 16 keeps CPU training fast)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="default 1e-4 (Lion) / 5e-4 (AdamW)")
    p.add_argument("--optimizer", default="lion", choices=["lion", "adamw"])
    p.add_argument("--max-wells", type=int, default=1500, help="wells sampled for training tiles")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")


def screen_tiles(screen: Screen, size: int, max_wells: int, seed: int) -> tuple[np.ndarray, dict]:
    """Non-overlapping size x size tiles from a random sample of wells (all sites), uint8/16."""
    from precompute.embed import tile_sites

    if not screen.has_images:
        raise ValueError(f"screen {screen.name!r} has no images to train on")
    rng = np.random.default_rng(seed)
    ids = screen.wells["well_id"].to_numpy()
    chosen = np.sort(rng.choice(len(ids), size=min(max_wells, len(ids)), replace=False))
    tiles = np.concatenate([tile_sites(screen.load_images(ids[i]), size) for i in chosen])
    desc = {"screen": screen.name, "screen_path": str(screen.root), "wells": int(len(chosen)),
            "tiles": int(len(tiles)), "tile_size": size, "channels": list(screen.channels)}
    return tiles, desc


def train_mae_command(a: argparse.Namespace) -> int:
    from precompute.__main__ import resolve_screen
    from precompute.embed.checkpoint import save_checkpoint
    from precompute.embed.mae import mae_tiny, mae_vit_base_patch16, mae_vit_small_patch16
    from precompute.embed.train import train_mae
    from precompute.stages import limit_torch_threads

    limit_torch_threads()
    factories = {"tiny": (mae_tiny, 64), "vit_small": (mae_vit_small_patch16, 256), "vit_base": (mae_vit_base_patch16, 256)}
    factory, default_size = factories[a.model]
    size = a.img_size or default_size
    screen = load_screen(resolve_screen(a.screen))
    # The decoder paints one stack per channel, so it is sized to this screen's channels.
    overrides = {"decoder_channels": len(screen.channels), **({"patch_size": a.patch_size} if a.patch_size else {})}
    config = factory(img_size=size, **overrides)
    t0 = time.time()
    tiles, data_desc = screen_tiles(screen, size, a.max_wells, a.seed)
    print(f"training {a.model} on {len(tiles)} tiles of {size}px from {data_desc['wells']} wells of {screen.name}", flush=True)
    lr = a.lr or (1e-4 if a.optimizer == "lion" else 5e-4)
    model, history = train_mae(tiles, config, steps=a.steps, batch_size=a.batch_size, lr=lr, optimizer=a.optimizer,
                               device=a.device, seed=a.seed, progress=not a.quiet, compile=a.compile)
    command = "python -m precompute " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    save_checkpoint(model, config, a.out, history=history,
                    extra_meta={"command": command, "data": data_desc, "wall_seconds": round(time.time() - t0, 1)})
    print(f"saved {a.out}: final loss {history.get('final_loss'):.4f} after {a.steps} steps "
          f"({time.time() - t0:.0f} s)", flush=True)
    return 0
