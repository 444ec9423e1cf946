"""The channel_attribution stage: for CA-MAE embedders, which stains each perturbation's phenotype
lives in, by embedding a seeded sample of wells with each channel left out (science in
precompute/channel_attribution.py; method and validation in docs/channel-attribution.md).

Sampled so it stays within the issue's budget (at most 30% on the demo pipeline): the
perturbations with the smallest activity q-values first, a few wells of each, a few controls per
plate, a few tiles per well; the manifest's info says both counts of each.
"""

from __future__ import annotations

import numpy as np

from precompute import channel_attribution as ca
from precompute.artifacts import StageWriter
from precompute.embed.registry import is_mae, stage_options
from precompute.embed.runtime import cached_embedder
from precompute.stages.registry import Stage, StageContext, Target, browsed_embedder, parquet_safe, register

QUANTILE = 0.95  # a phenotype must exceed this quantile of same-size control draws (or be active)
ALPHA = 0.05  # activity q-value below which a perturbation counts as having a phenotype


def applies(ctx: StageContext, target: Target) -> bool:
    """CA-MAE embedders of a screen with images (the only ones that can leave a channel out), where
    the relate stage ran (its activity q-values choose the sample)."""
    return (is_mae(str(target.embedder)) and ctx.screen.has_images and len(ctx.screen.channels) >= 2
            and browsed_embedder(ctx, target))


def run(ctx: StageContext, target: Target) -> str:
    screen, store, name = ctx.screen, ctx.runner.store, str(target.embedder)
    keys = ctx.input_keys(STAGE, target)
    embedded = store.open_stage("embed", keys["embed"]).manifest.get("info", {})
    block = embedded.get("block", {}).get("chosen", "last")
    tile = int(embedded.get("tile", ctx.config.tile))
    h, w = screen.image_size or (tile, tile)
    tiles_total = screen.n_sites * (h // tile) * (w // tile)  # tile_sites' non-overlapping grid
    cfg = {"block": block, "channelwise": False, "tile": tile, "seed": ctx.config.seed, "quantile": QUANTILE,
           "alpha": ALPHA, **ca.DEFAULT_SAMPLE}

    def compute(wr: StageWriter) -> None:
        build, _ = stage_options(name, screen, ctx.config)
        # the embed stage's block, tokens pooled over channels: every channel set in one space
        embedder = cached_embedder(name, {**build, "block": block, "channelwise": False, "n_channels": None})
        entities = store.open_stage("aggregate", keys["aggregate"]).table("perturbations")
        activity = store.open_stage("relate", keys["relate"]).table("activity")
        table, drawn = ca.attribute_screen(screen.wells, entities, embedder, screen.load_images, tile,
                                           list(screen.channels), q_values=activity.set_index("pert_id")["q_value"],
                                           alpha=ALPHA, tiles_total=tiles_total, seed=ctx.config.seed,
                                           quantile=QUANTILE)
        wr.save_table("channel_attribution", parquet_safe(table))
        wr.save_table("channel_summary", parquet_safe(ca.channel_summary(table, list(screen.channels))))
        wr.info["sample"] = {**drawn, "caption": ca.sampling_caption(drawn),
                             "order": f"smallest activity q-value first (q < {ALPHA} counts as a phenotype)"}
        wr.info["measure"] = ("(|d_all - d_without_c| - mean) / sd over groups of as many control wells: how much "
                              "further than expected the phenotype (mean of its wells minus its plates' controls, in "
                              "control-noise units) moves when channel c is left out; shift_<c>: the move as a "
                              f"fraction of |d_all|; NaN without a phenotype (not active and within the {QUANTILE:.0%} "
                              "of control draws)")
        wr.info["block"] = block
        wr.info["with_phenotype"] = int(np.sum(table["has_phenotype"])) if len(table) else 0

    return ctx.runner.run_stage("channel_attribution", name, cfg, keys, compute)


STAGE = register(Stage(
    # 2: channels ranked by their shift calibrated against control groups (was the raw shift)
    name="channel_attribution", version="2", after="characterise", inputs=("embed", "aggregate", "relate"),
    outputs={"channel_attribution": "table", "channel_summary": "table"},
    run=run, applies=applies,
    description="leave-one-channel-out CA-MAE embeddings of a sample: which stains carry each phenotype"))

