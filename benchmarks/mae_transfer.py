"""The demo MAE (trained only on generated images) applied to the real TIFF fields in shared data.

Prints and saves (benchmarks/results/mae_transfer.json) the masked-patch reconstruction error on
real fields next to the error on generated tiles, both per channel:

    .venv/bin/python benchmarks/mae_transfer.py [--checkpoint models/mae_tiny_demo] [--screen demo]

Real 16-bit fields are rescaled per channel by the 0.1-99.9 percentiles (never truncated), then
cut into the model's crop size, at native resolution and 3x binned (the real 20x nuclei are about
three times larger in pixels than the generated ones).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402

# Channel order the demo model was trained with; real stains are put in the same positions.
TRAIN_ORDER = ("DNA", "ER", "RNA", "AGP", "Mito", "PM")


def bin3(field: np.ndarray) -> np.ndarray:
    c, h, w = field.shape
    h3, w3 = h // 3 * 3, w // 3 * 3
    return field[:, :h3, :w3].reshape(c, h3 // 3, 3, w3 // 3, 3).mean(axis=(2, 4))


def errors(model, tiles: np.ndarray, n_max: int = 48) -> np.ndarray:
    """Per-tile, per-channel MSE on the masked patches (mask ratio 0.75, fixed seed)."""
    from precompute.embed.train import reconstruct_tile

    rng = np.random.default_rng(0)
    pick = rng.choice(len(tiles), size=min(n_max, len(tiles)), replace=False)
    return np.stack([reconstruct_tile(model, tiles[i], 0.75, seed=int(i))["per_channel_mse"] for i in pick])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", type=Path, default=REPO / "models" / "mae_tiny_demo")
    p.add_argument("--screen", default="demo")
    a = p.parse_args()
    meta = start_run(repeats=1, warmup=0, note="errors at a fixed mask seed; times nothing")
    from phenomix.settings import resolve_screen
    from precompute.embed.checkpoint import load_checkpoint
    from precompute.embed.tiling import tile_sites, to_float01
    from precompute.readers.jump_images import field_to_mae_input, read_field, rescale_16bit, shared_example_fields
    from precompute.screen import load_screen

    model, cfg, _ = load_checkpoint(a.checkpoint, "cpu")
    size = cfg.img_size
    rows = []
    screen = load_screen(resolve_screen(a.screen))
    ids = screen.wells["well_id"].to_numpy()[:: max(1, len(screen.wells) // 24)]
    gen = np.concatenate([to_float01(tile_sites(screen.load_images(w), size)) for w in ids])
    e = errors(model, gen)
    rows.append({"data": f"generated ({screen.name})", "channels": list(screen.channels), "tiles": len(e),
                 "mse_per_channel": e.mean(axis=0).round(4).tolist(), "mse": round(float(e.mean()), 4)})
    fields = shared_example_fields()
    for source, f in fields.groupby("source"):
        stains = [c for c in TRAIN_ORDER if c in set(f["channel"])]
        field = read_field(f, stains)
        for label, arr in (("native", field), ("3x binned", bin3(rescale_16bit(field)))):
            tiles = field_to_mae_input(field, tile=size) if label == "native" else tile_sites(arr[None], size)
            e = errors(model, tiles)
            rows.append({"data": f"real {source} ({label})", "channels": stains, "tiles": len(e),
                         "mse_per_channel": e.mean(axis=0).round(4).tolist(), "mse": round(float(e.mean()), 4)})
    print(f"{'data':<42}{'tiles':>6}{'mse':>9}  per channel")
    for r in rows:
        per = ", ".join(f"{c} {v:.3f}" for c, v in zip(r["channels"], r["mse_per_channel"], strict=True))
        print(f"{r['data']:<42}{r['tiles']:>6}{r['mse']:>9.4f}  {per}")
    ckpt = str(a.checkpoint.relative_to(REPO)) if a.checkpoint.resolve().is_relative_to(REPO) else str(a.checkpoint)
    out = save_result(RESULTS / "mae_transfer.json", {"checkpoint": ckpt, "screen": a.screen, "rows": rows}, meta)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
