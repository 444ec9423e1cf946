"""RunConfig: everything that decides what a pipeline run computes.

Below the pipeline and the stage modules alike (both read it), so neither imports the other for it.
Every field a stage reads goes into that stage's key, so changing one recomputes what depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunConfig:
    """Everything that decides what a run computes (hashed into the stage keys)."""

    embedders: tuple[str, ...] = ("random", "pixelstats", "mae")
    primary_embedder: str = "mae"
    align_methods: tuple[str, ...] = ("centerscale", "tvn")
    primary_align: str = "tvn"
    tile: int = 256
    checkpoint: str | None = None
    device: str = "auto"
    # MAE embeddings: encoder block 1..depth, "last" (OpenPhenom's predict), "best" (every block
    # scored on the screen's annotations in the embed stage, the best kept; see
    # precompute/stages/embed.py) or "auto" (the checkpoint's embedding.json, else last);
    # channelwise: one mean per channel, concatenated (C x D); None = the checkpoint's
    # embedding.json, else pooled.
    block: str = "auto"
    channelwise: bool | None = None
    aggregate_method: str = "mean"
    top_k: int = 50
    umap_sample: int = 100_000
    umap_neighbors: int = 15
    pca_components: int = 50
    seed: int = 0
    tvn_fallback: str = "error"
    # TVN runs on a PCA of this width (EFAAR's map recipe); "auto" = what the controls support,
    # "none" = EFAAR's tvn_on_controls on the full embedding (see precompute/align_recipe.py).
    tvn_components: int | str = "auto"
    stage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def align_run_methods(self) -> list[str]:
        """The alignment methods a run computes: the configured ones, plus the primary if missing."""
        return list(dict.fromkeys([*self.align_methods, self.primary_align]))
