"""CA-MAE throughput: tiles/s for embedding and training, parameter counts, FLOPs and MFU.

    python benchmarks/bench_mae_throughput.py --device cpu --model mae_tiny --model mae_vit_small_patch16
    python benchmarks/bench_mae_throughput.py --device cuda --model mae_vit_small_patch16 --batch-size 256 --with-loader

--no-loader (default) times the model alone on tensors already on the device; --with-loader
times the real paths: MAEEmbedder.embed_tiles on uint8 numpy tiles (conversion + transfer
included) and train_mae (DataLoader, crops, flips, pinned memory on CUDA). FLOPs are an
analytic count of matrix multiplies (2 per multiply-add; training = 3 x forward); MFU divides the
achieved FLOP/s by the GPU's dense bf16 peak and is left empty on CPUs. Prints a table and writes
benchmarks/results/mae_throughput_<device>.json (..._<device>_loader.json with --with-loader).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._meta import save_result, start_run  # noqa: E402
from precompute.embed.lion import Lion  # noqa: E402
from precompute.embed.mae import ChannelAgnosticMAE, autocast_for, count_parameters, resolve_device  # noqa: E402
from precompute.embed.mae_config import CONFIG_FACTORIES, MAEConfig, config_by_name  # noqa: E402
from precompute.embed.mae_embedder import MAEEmbedder  # noqa: E402
from precompute.embed.train import train_mae  # noqa: E402

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data sheets.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
    "RTX 3090": 71.0,
    "V100": 125.0,
}


def peak_bf16_tflops(device: torch.device) -> tuple[str | None, float | None]:
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_TFLOPS.items():  # ordered: specific names before generic ones
        if key in name:
            return name, peak
    return name, None


def _transformer_flops(tokens: int, dim: int, depth: int, mlp_ratio: float) -> float:
    # per token per block: qkv 6D^2 + proj 2D^2 + MLP 4*r*D^2, attention scores and mix 4*T*D
    return depth * tokens * ((8 + 4 * mlp_ratio) * dim * dim + 4 * tokens * dim)


def flops_per_tile(cfg: MAEConfig, channels: int) -> dict[str, float]:
    """Forward FLOPs of one tile: 'embed' (no masking, encoder only) and 'train' (3 x forward)."""
    p2 = cfg.patch_size**2
    n = channels * cfg.grid_size**2
    patch = 2 * p2 * cfg.embed_dim * n
    embed = patch + _transformer_flops(1 + n, cfg.embed_dim, cfg.depth, cfg.mlp_ratio)
    kept = 1 + max(1, round(n * (1 - cfg.mask_ratio)))
    fwd = (
        patch
        + _transformer_flops(kept, cfg.embed_dim, cfg.depth, cfg.mlp_ratio)
        + 2 * cfg.embed_dim * cfg.decoder_embed_dim * kept
        + _transformer_flops(1 + n, cfg.decoder_embed_dim, cfg.decoder_depth, cfg.mlp_ratio)
        + 2 * cfg.decoder_embed_dim * p2 * (1 + n)
    )
    return {"embed": float(embed), "train": float(3 * fwd)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, warmup: int, iters: int, min_seconds: float = 0.0) -> float:
    """Median seconds per call after ``warmup`` untimed calls.

    Runs at least ``iters`` calls and keeps going until ``min_seconds`` have passed: a median over
    many short calls resists the bursts of other work on a shared machine.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    cfg = config_by_name(name, **({"img_size": args.img_size} if args.img_size else {}))
    torch.manual_seed(0)
    model = ChannelAgnosticMAE(cfg).to(device)
    b, c, s = args.batch_size, args.channels, cfg.img_size
    rng = np.random.default_rng(0)
    tiles_u8 = rng.integers(0, 256, size=(max(b, 64) if args.with_loader else b, c, s, s), dtype=np.uint8)
    x = torch.from_numpy(tiles_u8[:b]).to(device).float() / 255.0

    model.eval()
    if args.with_loader:
        emb = MAEEmbedder.from_model(model, batch_size=b)
        per_call = _timed(
            lambda: emb.embed_tiles(tiles_u8[:b]), device, args.warmup_steps, args.steps, args.min_seconds
        )
    else:

        def embed_once():
            with torch.inference_mode(), autocast_for(device):
                model.embed(x)

        per_call = _timed(embed_once, device, args.warmup_steps, args.steps, args.min_seconds)
    embed_tps = b / per_call

    if args.with_loader:
        _, hist = train_mae(
            tiles_u8,
            cfg,
            steps=args.warmup_steps + args.steps,
            batch_size=b,
            device=str(device),
            log_every=1,
            progress=False,
            compile=args.compile,
        )
        rates = [row["tiles_per_s"] for row in hist["curve"][args.warmup_steps :]]
        train_tps = statistics.median(rates)
    else:
        model.train()
        fwd = torch.compile(model) if args.compile else model
        opt = Lion(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)

        def step_once():
            with autocast_for(device):
                loss, _, _ = fwd(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        train_tps = b / _timed(step_once, device, args.warmup_steps, args.steps, args.min_seconds)

    flops = flops_per_tile(cfg, c)
    _, peak = peak_bf16_tflops(device)
    row = {
        "model": name,
        "img_size": s,
        "patch_size": cfg.patch_size,
        "channels": c,
        "batch_size": b,
        "params": count_parameters(model),
        "embed_tiles_per_s": embed_tps,
        "train_tiles_per_s": train_tps,
        "embed_gflop_per_tile": flops["embed"] / 1e9,
        "train_gflop_per_tile": flops["train"] / 1e9,
        "embed_tflops_achieved": embed_tps * flops["embed"] / 1e12,
        "train_tflops_achieved": train_tps * flops["train"] / 1e12,
    }
    row["embed_mfu"] = row["embed_tflops_achieved"] / peak if peak else None
    row["train_mfu"] = row["train_tflops_achieved"] / peak if peak else None
    return row


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument(
        "--model",
        action="append",
        choices=sorted(CONFIG_FACTORIES),
        help="repeatable; default: mae_tiny and mae_vit_small_patch16",
    )
    ap.add_argument("--img-size", type=int, default=None, help="override the factory's tile size")
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed iterations")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=5.0, help="keep timing until this long has passed")
    ap.add_argument("--with-loader", dest="with_loader", action="store_true")
    ap.add_argument("--no-loader", dest="with_loader", action="store_false")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    ap.set_defaults(with_loader=False)
    args = ap.parse_args(argv)
    meta = start_run(repeats=args.steps, warmup=args.warmup_steps, min_seconds=args.min_seconds)
    device = resolve_device(args.device)
    models = args.model or ["mae_tiny", "mae_vit_small_patch16"]
    gpu, peak = peak_bf16_tflops(device)
    # CPU figures on a shared machine mean little without the load they were taken under.
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = [bench_model(m, args, device) for m in models]
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    print(
        f"device {device} ({gpu or _cpu_name()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, loader={'on' if args.with_loader else 'off'}, "
        f"load avg {load_before} -> {load_after}"
    )
    print(
        f"{'model':24s} {'params(M)':>9s} {'img':>4s} {'C':>2s} {'B':>4s} {'embed t/s':>10s} "
        f"{'train t/s':>10s} {'GF/t emb':>9s} {'GF/t trn':>9s} {'TF/s trn':>9s} {'MFU trn':>8s}"
    )
    for r in rows:
        mfu = f"{r['train_mfu']:.1%}" if r["train_mfu"] is not None else "-"
        print(
            f"{r['model']:24s} {r['params']['total'] / 1e6:9.2f} {r['img_size']:4d} {r['channels']:2d} "
            f"{r['batch_size']:4d} {r['embed_tiles_per_s']:10.2f} {r['train_tiles_per_s']:10.2f} "
            f"{r['embed_gflop_per_tile']:9.2f} {r['train_gflop_per_tile']:9.2f} "
            f"{r['train_tflops_achieved']:9.4f} {mfu:>8s}"
        )

    result = {
        "benchmark": "mae_throughput",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "node": platform.node(),
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": gpu,
            "peak_bf16_tflops": peak,
            "python": platform.python_version(),
            "load_average_1min": {"before": load_before, "after": load_after},
        },
        "torch_version": torch.__version__,
        "device": str(device),
        "settings": {
            "with_loader": args.with_loader,
            "compile": args.compile,
            "steps": args.steps,
            "warmup_steps": args.warmup_steps,
            "min_seconds": args.min_seconds,
            "precision": "bf16 autocast" if device.type == "cuda" else "float32",
        },
        "results": rows,
    }
    suffix = "_loader" if args.with_loader else ""
    out = (
        Path(args.out)
        if args.out
        else (Path(__file__).resolve().parent / "results" / f"mae_throughput_{device.type}{suffix}.json")
    )
    save_result(out, result, meta)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
