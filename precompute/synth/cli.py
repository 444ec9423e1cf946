"""Command-line glue: ``python -m precompute generate ...`` (wired by the lead) or
``python -m precompute.synth.cli ...`` on its own."""

from __future__ import annotations

import argparse
import sys
import time

from precompute.synth.config import SynthConfig, SynthConfigError, log_concentrations

# CLI option -> SynthConfig field, for the plain integer overrides.
_INT_OVERRIDES = {
    "batches": "n_batches",
    "plates_per_batch": "plates_per_batch",
    "plate_format": "plate_format",
    "n_wells": "n_wells",
    "sites": "n_sites",
    "channels": "n_channels",
    "image_size": "image_size",
    "genes": "n_genes",
    "guides_per_gene": "guides_per_gene",
    "orfs": "n_orf_genes",
    "compounds": "n_compounds",
    "embedding_dim": "embedding_dim",
    "workers": "workers",
}


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the synthetic-screen options to ``parser`` (used by ``python -m precompute generate``)."""
    parser.add_argument("--out", required=True, help="screen folder to write (replaced if it exists)")
    parser.add_argument(
        "--preset",
        default="demo",
        choices=SynthConfig.PRESETS,
        help="starting point: demo (images, <1 min), tiny (tests), large (~1M wells, embeddings)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's, 0)")
    parser.add_argument("--name", default=None, help="screen name recorded in screen.json")
    parser.add_argument(
        "--embeddings-only",
        action="store_true",
        help="write well feature vectors (well_features.npy) instead of images",
    )
    g = parser.add_argument_group("dimensions (override the preset)")
    g.add_argument("--n-wells", type=int, help="about this many wells: sets plates, scales replicates to fill")
    g.add_argument("--batches", type=int)
    g.add_argument("--plates-per-batch", type=int)
    g.add_argument("--plate-format", type=int, choices=(96, 384, 1536))
    g.add_argument("--sites", type=int, help="fields of view per well")
    g.add_argument("--channels", type=int, choices=(5, 6), help="5 = DNA ER RNA AGP Mito; 6 adds PM")
    g.add_argument("--image-size", type=int, help="pixels per side of each site")
    g.add_argument("--genes", type=int)
    g.add_argument("--guides-per-gene", type=int)
    g.add_argument("--orfs", type=int, help="genes also overexpressed as ORFs")
    g.add_argument("--compounds", type=int)
    g.add_argument("--concentrations", type=int, help="log-spaced doses from 0.01 to 10 uM")
    g.add_argument("--embedding-dim", type=int)
    g.add_argument("--workers", type=int, help="render processes (output does not depend on it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    """The SynthConfig an argparse namespace asks for (preset + overrides)."""
    overrides = {}
    for opt, fld in _INT_OVERRIDES.items():
        v = getattr(args, opt, None)
        if v is not None:
            overrides[fld] = v
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "name", None):
        overrides["name"] = args.name
    if getattr(args, "concentrations", None) is not None:
        overrides["concentrations_um"] = log_concentrations(args.concentrations)
    return SynthConfig.preset(args.preset, **overrides)


def run_generate(args: argparse.Namespace) -> int:
    """Generate the screen ``args`` describe; returns a process exit code (0 ok, 2 bad settings)."""
    from precompute.synth.embeddings import write_embeddings_screen
    from precompute.synth.generate import generate_screen

    try:
        cfg = config_from_args(args)
    except SynthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        if args.embeddings_only:
            path = write_embeddings_screen(cfg, args.out)
        else:
            path = generate_screen(cfg, args.out, progress=not args.no_progress)
    except SynthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import json

    desc = json.loads((path / "screen.json").read_text())  # not load_screen: a 1M-row table is slow
    kind = (
        "embeddings-only"
        if args.embeddings_only
        else (f"{cfg.n_sites} site(s) x {len(cfg.channels)} channels x {cfg.image_size}x{cfg.image_size}")
    )
    print(
        f"wrote {path}: {desc['n_wells']:,} wells, {cfg.n_batches} batches x "
        f"{desc['synthetic']['plates_per_batch']} plate(s) of {cfg.plate_format} ({kind}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m precompute.synth.cli",
        description="Generate a synthetic Cell Painting screen with known ground truth.",
    )
    add_generate_arguments(parser)
    return run_generate(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
