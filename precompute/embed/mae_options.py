"""What a CA-MAE checkpoint embedder (``mae``, ``openphenom``) is built with and keyed by.

Light (no torch): the embed stage decides its key before any model is loaded, and a run checks a
checkpoint exists before it starts. The model loads in :mod:`precompute.embed.mae_embedder`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phenomix.settings import DEFAULT_CHECKPOINT  # the shipped tiny demo model, when no --checkpoint is given
from precompute.artifacts import file_sha256

EMBEDDING_CHOICE = "embedding.json"  # beside a checkpoint: the block / channel-wise choice measured for it


def checkpoint_fingerprint(path: Path) -> str:
    """The first 16 hex digits of the checkpoint's weights' SHA-256: what keys its embed stage."""
    weights = Path(path) / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(
            f"{weights}: MAE checkpoint missing; train one with `python -m precompute train-mae` or pass --checkpoint"
        )
    return file_sha256(weights)[:16]


def resolve_embedding_choice(ckpt: Path, block: Any, channelwise: bool | None) -> tuple[str, bool]:
    """--block auto / no --channelwise: what the checkpoint's embedding.json records (the shipped demo
    model's choice, measured by benchmarks/mae_blocks.py), else the last block, pooled."""
    recorded: dict[str, Any] = {}
    if block in (None, "auto") or channelwise is None:
        path = Path(ckpt) / EMBEDDING_CHOICE
        if path.exists():
            try:
                recorded = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: not a readable JSON object ({err})") from None
    chosen = str(recorded.get("block", "last")) if block in (None, "auto") else str(block)
    wise = bool(recorded.get("channelwise", False)) if channelwise is None else bool(channelwise)
    return chosen, wise


def checkpoint_stage_options(screen: Any, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(build options, stage-key config) for a CA-MAE checkpoint: the run's --checkpoint (else the
    shipped demo model), keyed by the weights' fingerprint and the block / channel-wise choice."""
    ckpt = Path(config.checkpoint) if config.checkpoint else DEFAULT_CHECKPOINT
    fp = checkpoint_fingerprint(ckpt)
    block, channelwise = resolve_embedding_choice(ckpt, getattr(config, "block", "auto"),
                                                  getattr(config, "channelwise", None))
    build = {"checkpoint": str(ckpt), "device": config.device, "block": "all" if block == "best" else block,
             "channelwise": channelwise, "n_channels": len(screen.channels) if channelwise else None}
    key = {"checkpoint_sha": fp, "block": block, "channelwise": channelwise}
    if block == "best":  # the choice depends on how blocks are aligned and scored
        key.update(tvn_components=config.tvn_components, tvn_fallback=config.tvn_fallback, seed=config.seed)
    return build, key


def build_checkpoint_embedder(name: str, **options: Any) -> Any:
    """A :class:`precompute.embed.mae_embedder.MAEEmbedder` named ``name``; options are its own plus
    ``checkpoint`` (or ``checkpoint_dir``), the folder to load. Imports torch."""
    from .mae_embedder import MAEEmbedder

    opts = dict(options)
    checkpoint = opts.pop("checkpoint", None) or opts.pop("checkpoint_dir", None)
    if checkpoint is None:
        raise ValueError(f"the {name!r} embedder needs checkpoint='path/to/checkpoint_dir'")
    embedder = MAEEmbedder(checkpoint, **opts)
    embedder.name = name
    return embedder
