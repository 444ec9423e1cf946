"""The ``mae`` embedder: a channel-agnostic MAE checkpoint in Phenomix's layout (default: the
shipped tiny demo model, models/mae_tiny_demo), or any folder ``train-mae`` wrote."""

from __future__ import annotations

from typing import Any

from ..mae_options import build_checkpoint_embedder, checkpoint_stage_options
from ..registry import EmbedderSpec, register


def build(**options: Any) -> Any:
    """``checkpoint=DIR`` plus MAEEmbedder's options (device, batch_size, block, channelwise, n_channels)."""
    return build_checkpoint_embedder("mae", **options)


SPEC = register(EmbedderSpec(
    name="mae", label="MAE", build=build, stage_options=checkpoint_stage_options, order=30, is_mae=True,
    help="a CA-MAE checkpoint (--checkpoint; default the shipped tiny demo model)",
))
