"""The embed stage: one vector per well for every embedder of the run (or the screen's precomputed
well features when it has no images).

The per-plate work (``embed_plate``) runs on the run's executor (precompute.executors): it is
top-level and picklable so a Dask worker can run it from the screen's path. The embedders
themselves are in precompute/embed/ (their registry decides build options and stage-key config).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from precompute.artifacts import StageWriter
from precompute.embed import get_embedder, tile_sites, to_float01
from precompute.embed.mae_options import EMBEDDING_CHOICE
from precompute.embed.registry import is_mae, stage_options
from precompute.embed.runtime import cached_embedder, set_torch_threads
from precompute.evaluation.blocks import choose_block, score_blocks
from precompute.executors import ExecutorSpec, PlateExecutor, executor_spec, map_plates
from precompute.process_cache import ProcessCache, file_stamp
from precompute.run_config import RunConfig
from precompute.screen import Screen, load_screen
from precompute.stages.registry import Runner, Stage, StageContext, Target, register

log = logging.getLogger("precompute")


def _tile_size(embedder: Any, screen: Screen, default: int) -> int:
    size = getattr(getattr(embedder, "config", None), "img_size", None) or default
    h, w = screen.image_size or (size, size)
    return min(size, h, w)


# The screen, cached per process for embed_plate (a Dask worker embeds many plates; see
# precompute.process_cache); the embedder's cache is precompute.embed.runtime's.
_SCREENS = ProcessCache()


def plate_rows(screen: Screen) -> dict[str, np.ndarray]:
    """plate id -> row positions of its wells in the wells table, plates in order of first appearance."""
    return {str(k): np.asarray(v, dtype=np.int64) for k, v in screen.wells.groupby("plate", sort=False).indices.items()}


def _screen_for(screen_path: str | Path) -> tuple[Screen, dict[str, np.ndarray]]:
    root = Path(screen_path)
    files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else [root]

    def make() -> tuple[Screen, dict[str, np.ndarray]]:
        screen = load_screen(root)
        return screen, plate_rows(screen)

    return _SCREENS.get((str(root), file_stamp(*files)), make)


def embed_wells(screen: Screen, embedder: Any, well_ids: list[str], tile: int, *,
                on_wells: Callable[[int], Any] | None = None, wells_per_batch: int = 32) -> np.ndarray:
    """Embeddings (len(well_ids), dim) float32: mean over every tile of every site of each well,
    accumulated in float64.

    Images are read by a small thread pool ahead of the embedder; tiles of several wells go to
    the embedder together so a model sees full batches. ``on_wells(n)`` reports progress.
    """
    out: np.ndarray | None = None
    with ThreadPoolExecutor(max_workers=2) as pool:
        images_iter = pool.map(screen.load_images, well_ids)
        for start in range(0, len(well_ids), wells_per_batch):
            stop = min(start + wells_per_batch, len(well_ids))
            tiles = [tile_sites(next(images_iter), tile) for _ in range(start, stop)]
            vecs = np.asarray(embedder.embed_tiles(to_float01(np.concatenate(tiles))), dtype=np.float32)
            if out is None:
                out = np.empty((len(well_ids), vecs.shape[1]), dtype=np.float32)
            bounds = np.concatenate([[0], np.cumsum([len(t) for t in tiles])])
            for i in range(stop - start):
                out[start + i] = vecs[bounds[i]:bounds[i + 1]].mean(axis=0, dtype=np.float64)
            if on_wells is not None:
                on_wells(stop - start)
    if out is None:
        raise ValueError(f"screen {screen.name!r}: no wells to embed")
    return out


def embed_plate(screen_path: str | Path, plate_id: str, embedder_name: str, build_options: dict[str, Any],
                tile: int, *, torch_threads: int | None = None, on_wells: Callable[[int], Any] | None = None,
                wells_per_batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """One plate's wells -> (their row positions in the wells table, embeddings float32).

    The unit of work of the embed stage on every executor (precompute.executors): top-level and
    given only picklable arguments, so a Dask worker can run it from the screen's path; the
    screen and the embedder are cached per process. ``torch_threads`` pins torch's thread count
    (1 on Dask workers, where parallelism comes from worker processes).
    """
    screen, plates = _screen_for(screen_path)
    if plate_id not in plates:
        raise ValueError(f"screen {screen.name!r} at {screen_path}: no plate {plate_id!r}")
    embedder = cached_embedder(embedder_name, build_options)
    if torch_threads is not None:
        set_torch_threads(embedder_name, torch_threads)
    rows = plates[plate_id]
    ids = screen.wells["well_id"].to_numpy()[rows].tolist()
    return rows, embed_wells(screen, embedder, ids, tile, on_wells=on_wells, wells_per_batch=wells_per_batch)


def embed_screen(screen: Screen, name: str, build: dict[str, Any], tile: int, *,
                 executor: str | ExecutorSpec | PlateExecutor = "local", progress: bool = True) -> np.ndarray:
    """Well embeddings (n_wells, dim) float32 in the screen's well order, one embed_plate call per
    plate on the executor; local and Dask runs give byte-identical arrays."""
    spec = executor_spec(executor)
    root = str(screen.root.resolve())  # workers may run elsewhere: never a path relative to our cwd
    calls = [(root, plate, name, build, tile) for plate in plate_rows(screen)]
    if spec.is_local:
        with tqdm(total=len(screen.wells), desc=f"embed {name}", disable=not progress, unit="well") as bar:
            parts = map_plates(embed_plate, calls, executor, kwargs={"on_wells": bar.update})
    else:
        parts = map_plates(embed_plate, calls, executor, kwargs={"torch_threads": 1}, progress=progress,
                           desc=f"embed {name} on {spec}")
    out = np.empty((len(screen.wells), parts[0][1].shape[1]), dtype=np.float32)
    seen = np.zeros(len(screen.wells), dtype=bool)
    for rows, emb in parts:
        out[rows] = emb
        seen[rows] = True
    if not seen.all():  # a worker read a different wells table (screen changed under the run?)
        raise RuntimeError(f"screen {screen.name!r}: {int((~seen).sum())} wells got no embedding from the plates")
    return out


def stage_embed(runner: Runner, screen: Screen, config: RunConfig, ingest_key: str, name: str, *,
                executor: str | ExecutorSpec | PlateExecutor = "local") -> tuple[str, dict]:
    """Embed every well with one embedder; 'features' takes the screen's precomputed well features.

    ``executor`` says where the per-plate work runs; it is not part of the stage key (the arrays do
    not depend on it) and is recorded in the manifest's info only.
    """
    if name == "features":
        feats = screen.array("well_features")
        if feats is None:
            raise ValueError(f"screen {screen.name!r} has no precomputed well features (arrays.well_features)")

        def compute_features(w: StageWriter) -> None:
            w.save_array("embeddings", np.asarray(feats, dtype=np.float32))
            w.info["embedder"] = "features"

        return runner.run_stage("embed", name, {"embedder": "features"}, {"ingest": ingest_key}, compute_features), {}

    spec = executor_spec(executor)
    build, key_cfg = stage_options(name, screen, config)

    def compute(w: StageWriter) -> None:
        probe = _probe_embedder(name, build, spec)
        tile = _tile_size(probe, screen, config.tile)
        emb = embed_screen(screen, name, build, tile, executor=executor, progress=runner.progress)
        if build.get("block") == "all":
            emb = _choose_block(w, screen, config, emb, probe.blocks)
        elif is_mae(name):
            asked = config.block not in (None, "auto")
            recorded = (Path(build["checkpoint"]) / EMBEDDING_CHOICE).exists()
            how = "asked for (--block)" if asked else (f"recorded with the checkpoint ({EMBEDDING_CHOICE})"
                                                      if recorded else "the last block (OpenPhenom's predict)")
            w.info["block"] = {"chosen": probe.block, "how": how, "depth": probe.config.depth}
        if is_mae(name):
            w.info["channelwise"] = bool(build.get("channelwise"))
        w.save_array("embeddings", emb)
        w.info.update({"embedder": name, "tile": tile, "dim": int(emb.shape[1]), "executor": str(spec)})

    key = runner.run_stage("embed", name, {"embedder": name, **key_cfg}, {"ingest": ingest_key}, compute)
    return key, build


def _choose_block(w: StageWriter, screen: Screen, config: RunConfig, emb: np.ndarray, blocks: list[int]) -> np.ndarray:
    """--block best: split the side-by-side block embeddings, score every block on the screen's
    annotations (precompute.evaluation.blocks.score_blocks: aligned as the align stage aligns), keep the best
    block's embeddings and record every block's scores in the manifest and as a table."""
    per = emb.reshape(len(emb), len(blocks), -1)
    scores = score_blocks({b: per[:, i] for i, b in enumerate(blocks)}, screen.wells, screen.ground_truth("relationships"),
                          tvn_components=config.tvn_components, tvn_fallback=config.tvn_fallback, seed=config.seed)
    chosen = choose_block(scores)
    w.save_table("block_scores", scores)
    w.info["block"] = {"chosen": chosen, "how": "best mean relationship recall after PCA-TVN (--block best)",
                       "depth": len(blocks), "scores": json.loads(scores.to_json(orient="records"))}
    log.info("embed     block %d of %d chosen (mean recall %.3f)", chosen, len(blocks),
             float(scores.set_index("block").loc[chosen, "recall_mean"]))
    return np.ascontiguousarray(per[:, blocks.index(chosen)])


def _probe_embedder(name: str, build: dict[str, Any], spec: ExecutorSpec) -> Any:
    """The embedder whose input size decides the tile. Locally it is the one embed_plate then uses
    (cached); for a cluster run it is a throwaway CPU copy, since the machine driving the run (a
    login node, say) may have no GPU even when the workers do."""
    if spec.is_local:
        return cached_embedder(name, build)
    return get_embedder(name, **({**build, "device": "cpu"} if "device" in build else build))


def run(ctx: StageContext, target: Target) -> dict[str, str]:
    """Embed with every configured embedder; returns {embedder: key} and records on ``ctx`` which
    embedders the later stages fan out over, the primary one and the MAE checkpoint used."""
    screen, config, runner = ctx.screen, ctx.config, ctx.runner
    embedders = list(config.embedders)
    if not screen.has_images:
        if screen.array("well_features") is None:
            n_img = len(screen.wells_with_images) if screen.has_any_images else 0
            raise ValueError(
                f"screen {screen.name!r}: only {n_img} of {len(screen.wells)} wells have images and there are no "
                "precomputed well features; give every well images or import features"
            )
        embedders = ["features"]
    embed_keys: dict[str, str] = {}
    checkpoint = None
    mae_block: dict[str, Any] | None = None
    # One executor for every embedder (a LocalCluster starts once, workers keep the screen cached),
    # closed before the later stages so idle workers do not hold memory through them.
    owned = not isinstance(ctx.executor, PlateExecutor)
    plates_on = PlateExecutor(ctx.executor) if owned else ctx.executor
    try:
        for name in embedders:
            if is_mae(name) and screen.has_images:
                try:
                    stage_options(name, screen, config)
                except FileNotFoundError as err:
                    log.warning("skipping the MAE embedder: %s", err)
                    continue
            key, build = stage_embed(runner, screen, config, ctx.key("ingest"), name, executor=plates_on)
            embed_keys[name] = key
            if is_mae(name):
                checkpoint = build.get("checkpoint")
                info = runner.store.open_stage("embed", key).manifest.get("info", {})
                mae_block = {"embedder": name, "chosen": info.get("block", {}).get("chosen"),
                             "depth": info.get("block", {}).get("depth"), "scored": "scores" in info.get("block", {}),
                             "how": info.get("block", {}).get("how"),
                             "channelwise": bool(info.get("channelwise"))}
    finally:
        if owned:
            plates_on.close()
    ctx.embedders = list(embed_keys)
    ctx.primary = config.primary_embedder if config.primary_embedder in embed_keys else next(iter(embed_keys))
    ctx.run_info["primary"] = {"embedder": ctx.primary, "align": config.primary_align,
                               **({"mae_block": mae_block} if mae_block else {})}
    ctx.run_info["checkpoint"] = checkpoint
    return embed_keys


STAGE = register(Stage(name="embed", version="1", after="ingest", inputs=("ingest",),
                       outputs={"embeddings": "array", "block_scores": "table"}, run=run, scope="run",
                       description="well embeddings (n_wells, dim) float32 per embedder"))
