"""The ``openphenom`` embedder: the CA-MAE from a folder laid out as Recursion distributes its public
OpenPhenom (config.json + model.safetensors; see :mod:`precompute.embed.openphenom_io`). Never
downloaded: the user points --checkpoint at it."""

from __future__ import annotations

from typing import Any

from ..mae_options import build_checkpoint_embedder, checkpoint_stage_options
from ..registry import EmbedderSpec, register


def build(**options: Any) -> Any:
    """``checkpoint=DIR`` plus MAEEmbedder's options (device, batch_size, block, channelwise, n_channels)."""
    return build_checkpoint_embedder("openphenom", **options)


def stage_options(screen: Any, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """As ``mae``'s, but there is no shipped default to fall back on."""
    if not config.checkpoint:
        raise FileNotFoundError("the openphenom embedder needs --checkpoint DIR (a folder with config.json and "
                                "model.safetensors as Recursion distributes OpenPhenom; nothing is downloaded)")
    return checkpoint_stage_options(screen, config)


SPEC = register(EmbedderSpec(
    name="openphenom", label="OpenPhenom", build=build, stage_options=stage_options, order=40, is_mae=True,
    help="Recursion's public OpenPhenom from a local folder (--checkpoint DIR)",
))
