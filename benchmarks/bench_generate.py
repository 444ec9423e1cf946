"""Time the synthetic-screen generator: the demo screen with images, and embeddings-only at scale.

    python benchmarks/bench_generate.py                      # demo + 1M-well embeddings
    python benchmarks/bench_generate.py --only demo --preview /tmp/synth_preview.png
    python benchmarks/bench_generate.py --wells 200000       # smaller embeddings run

Reports wall-clock seconds and CPU seconds (this process + its workers) per stage as JSON lines;
on a shared machine CPU seconds are the steadier figure. Screens go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from precompute.synth import SynthConfig  # noqa: E402


def _timed(label: str, fn, **info) -> dict:
    c0, t0 = os.times(), time.perf_counter()
    fn()
    c1, wall = os.times(), time.perf_counter() - t0
    cpu = (
        (c1.user - c0.user)
        + (c1.system - c0.system)
        + (c1.children_user - c0.children_user)
        + (c1.children_system - c0.children_system)
    )
    row = {
        "stage": label,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        **info,
    }
    print(json.dumps(row), flush=True)
    return row


def bench_demo(out: Path, preview: str | None) -> None:
    from precompute.synth import generate_screen

    cfg = SynthConfig.preset("demo")
    from precompute.synth.generate import build_model

    n = len(build_model(cfg).wells)
    _timed(
        "demo screen with images (render + PNG + truth)",
        lambda: generate_screen(cfg, out / "demo", progress=False),
        wells=n,
        sites=cfg.n_sites,
        channels=cfg.n_channels,
        image_size=cfg.image_size,
        workers=cfg.workers,
    )
    if preview:
        from precompute.synth.preview import save_screen_preview

        picks = save_screen_preview(out / "demo", preview)
        print(json.dumps({"preview": preview, "rows": picks}))


def bench_embeddings(out: Path, n_wells: int, write: bool) -> None:
    from precompute.synth import generate_embeddings, write_embeddings_screen

    cfg = SynthConfig.preset("large", n_wells=n_wells)
    holder = {}
    _timed(
        "embeddings-only: generate_embeddings",
        lambda: holder.update(r=generate_embeddings(cfg)),
        requested_wells=n_wells,
        dim=cfg.embedding_dim,
    )
    wells, feats, _ = holder.pop("r")
    print(json.dumps({"wells": len(wells), "features": list(feats.shape), "dtype": str(feats.dtype)}))
    del wells, feats
    if write:
        _timed(
            "embeddings-only: write_embeddings_screen (incl. CSV + npy)",
            lambda: write_embeddings_screen(cfg, out / "emb"),
            requested_wells=n_wells,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("demo", "embeddings"))
    ap.add_argument("--wells", type=int, default=1_000_000, help="embeddings-only screen size")
    ap.add_argument("--no-write", action="store_true", help="embeddings: skip writing the screen")
    ap.add_argument("--preview", help="save a control/active composite PNG of the demo screen here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        if args.only in (None, "demo"):
            bench_demo(Path(tmp), args.preview)
        if args.only in (None, "embeddings"):
            bench_embeddings(Path(tmp), args.wells, not args.no_write)


if __name__ == "__main__":
    main()
