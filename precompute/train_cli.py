"""`python -m precompute train-mae`: train the channel-agnostic MAE on a screen's tiles."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from phenomix.settings import resolve_screen
from precompute.embed.mae_config import CONFIG_FACTORIES
from precompute.screen import Screen, load_screen

# --model name -> MAE config factory: CONFIG_FACTORIES' keys without the 'mae_' and '_patch16' that
# every one repeats (tiny, vit_small, vit_base).
MODELS = {name.removeprefix("mae_").removesuffix("_patch16"): factory for name, factory in CONFIG_FACTORIES.items()}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--screen", default="demo", help="'demo' or a screen folder with images")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--model", default="tiny", choices=sorted(MODELS))
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
    from precompute.embed.checkpoint import save_checkpoint
    from precompute.embed.runtime import limit_torch_threads
    from precompute.embed.train import train_mae

    limit_torch_threads()
    screen = load_screen(resolve_screen(a.screen))
    # The decoder paints one stack per channel, so it is sized to this screen's channels.
    overrides = {"decoder_channels": len(screen.channels), **({"patch_size": a.patch_size} if a.patch_size else {}),
                 **({"img_size": a.img_size} if a.img_size else {})}
    config = MODELS[a.model](**overrides)  # default img_size: the factory's (64 tiny, 256 ViT)
    size = config.img_size
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
