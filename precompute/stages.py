"""Stage runners after ingest: embed, align, aggregate, relate, project, evaluate.

Each runner decides its config and inputs (which key it), then calls pure functions and saves
their outputs through the store's writer. Nothing here knows about Dash.
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

from precompute.artifacts import file_sha256
from precompute.embed import MAE_EMBEDDERS, get_embedder, tile_sites, to_float01
from precompute.executors import ExecutorSpec, PlateExecutor, executor_spec, map_plates
from precompute.screen import Screen, load_screen

log = logging.getLogger("precompute")


def checkpoint_fingerprint(path: Path) -> str:
    weights = Path(path) / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(
            f"{weights}: MAE checkpoint missing; train one with `python -m precompute train-mae` or pass --checkpoint"
        )
    return file_sha256(weights)[:16]


def embedder_options(name: str, screen: Screen, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options to build the embedder, config that keys the stage)."""
    if name == "random":
        return {"dim": 384, "seed": config.seed}, {"dim": 384, "seed": config.seed, "tile": config.tile}
    if name == "pixelstats":
        return {}, {"tile": config.tile}
    if name in MAE_EMBEDDERS:
        from precompute.pipeline import DEFAULT_CHECKPOINT

        if name == "openphenom" and not config.checkpoint:
            raise FileNotFoundError("the openphenom embedder needs --checkpoint DIR (a folder with config.json and "
                                    "model.safetensors as Recursion distributes OpenPhenom; nothing is downloaded)")
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
    raise ValueError(f"unknown embedder {name!r}")


EMBEDDING_CHOICE = "embedding.json"  # beside a checkpoint: the block / channel-wise choice measured for it


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


def limit_torch_threads() -> None:
    """On CPU give torch half the cores: the other half decodes images for it. With all cores,
    OpenMP threads spin against the loader threads and a small model runs several times slower
    (measured 8x on this 2-core machine under load)."""
    import os

    import torch

    if not torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))


def _tile_size(embedder: Any, screen: Screen, default: int) -> int:
    size = getattr(getattr(embedder, "config", None), "img_size", None) or default
    h, w = screen.image_size or (size, size)
    return min(size, h, w)


# Per-process caches for embed_plate. A Dask worker embeds many plates and must not reread the
# wells table or reload the model for each; the local executor goes through the same caches so it
# runs exactly the code a worker runs. Keys carry file stamps (inode, size, mtime) so a screen or
# checkpoint rewritten at the same path in a long-lived process is reloaded, not served stale.
_CACHE_ENTRIES = 4  # a process rarely sees more than one screen and a few embedders at once
_SCREENS: dict[tuple, tuple[Screen, dict[str, np.ndarray]]] = {}
_EMBEDDERS: dict[tuple, Any] = {}


def _stamp(*paths: Path) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            out.append(None)  # missing: the loader below raises the clear error
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _cached(cache: dict, key: tuple, make: Callable[[], Any]) -> Any:
    if key not in cache:
        while len(cache) >= _CACHE_ENTRIES:
            cache.pop(next(iter(cache)))  # oldest first
        cache[key] = make()
    return cache[key]


def plate_rows(screen: Screen) -> dict[str, np.ndarray]:
    """plate id -> row positions of its wells in the wells table, plates in order of first appearance."""
    return {str(k): np.asarray(v, dtype=np.int64) for k, v in screen.wells.groupby("plate", sort=False).indices.items()}


def _screen_for(screen_path: str | Path) -> tuple[Screen, dict[str, np.ndarray]]:
    root = Path(screen_path)
    files = sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else [root]

    def make() -> tuple[Screen, dict[str, np.ndarray]]:
        screen = load_screen(root)
        return screen, plate_rows(screen)

    return _cached(_SCREENS, (str(root), _stamp(*files)), make)


def cached_embedder(name: str, build: dict[str, Any]) -> Any:
    """The embedder ``get_embedder(name, **build)``, built once per process (see the caches above)."""
    ckpt = build.get("checkpoint")
    stamp = _stamp(Path(ckpt) / "model.safetensors", Path(ckpt) / "config.json") if ckpt else ()
    key = (name, json.dumps(build, sort_keys=True, default=str), stamp)

    def make() -> Any:
        if name in MAE_EMBEDDERS:
            limit_torch_threads()
        return get_embedder(name, **build)

    return _cached(_EMBEDDERS, key, make)


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
    if torch_threads is not None and embedder_name in MAE_EMBEDDERS:
        import torch

        torch.set_num_threads(torch_threads)
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


def stage_embed(runner: Any, screen: Screen, config: Any, ingest_key: str, name: str, *,
                executor: str | ExecutorSpec | PlateExecutor = "local") -> tuple[str, dict]:
    """Embed every well with one embedder; 'features' takes the screen's precomputed well features.

    ``executor`` says where the per-plate work runs; it is not part of the stage key (the arrays do
    not depend on it) and is recorded in the manifest's info only.
    """
    if name == "features":
        feats = screen.array("well_features")
        if feats is None:
            raise ValueError(f"screen {screen.name!r} has no precomputed well features (arrays.well_features)")

        def compute_features(w) -> None:
            w.save_array("embeddings", np.asarray(feats, dtype=np.float32))
            w.info["embedder"] = "features"

        return runner.run_stage("embed", name, {"embedder": "features"}, {"ingest": ingest_key}, compute_features), {}

    spec = executor_spec(executor)
    build, key_cfg = embedder_options(name, screen, config)

    def compute(w) -> None:
        probe = _probe_embedder(name, build, spec)
        tile = _tile_size(probe, screen, config.tile)
        emb = embed_screen(screen, name, build, tile, executor=executor, progress=runner.progress)
        if build.get("block") == "all":
            emb = _choose_block(w, screen, config, emb, probe.blocks)
        elif name in MAE_EMBEDDERS:
            asked = getattr(config, "block", "auto") not in (None, "auto")
            recorded = (Path(build["checkpoint"]) / EMBEDDING_CHOICE).exists()
            how = "asked for (--block)" if asked else (f"recorded with the checkpoint ({EMBEDDING_CHOICE})"
                                                      if recorded else "the last block (OpenPhenom's predict)")
            w.info["block"] = {"chosen": probe.block, "how": how, "depth": probe.config.depth}
        if name in MAE_EMBEDDERS:
            w.info["channelwise"] = bool(build.get("channelwise"))
        w.save_array("embeddings", emb)
        w.info.update({"embedder": name, "tile": tile, "dim": int(emb.shape[1]), "executor": str(spec)})

    key = runner.run_stage("embed", name, {"embedder": name, **key_cfg}, {"ingest": ingest_key}, compute)
    return key, build


def _choose_block(w: Any, screen: Screen, config: Any, emb: np.ndarray, blocks: list[int]) -> np.ndarray:
    """--block best: split the side-by-side block embeddings, score every block on the screen's
    annotations (precompute.evaluate.score_blocks: aligned as the align stage aligns), keep the best
    block's embeddings and record every block's scores in the manifest and as a table."""
    from precompute.evaluate import choose_block, score_blocks

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


def run_all(runner: Any, screen: Screen, config: Any, ingest_key: str, *,
            executor: str | ExecutorSpec | PlateExecutor = "local") -> dict[str, Any]:
    """Run the stages after ingest for every configured embedder; returns run-index entries.
    ``executor`` runs the embed stage's per-plate work (precompute.executors)."""
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
    # closed before the downstream stages so idle workers do not hold memory through them.
    owned = not isinstance(executor, PlateExecutor)
    plates_on = PlateExecutor(executor) if owned else executor
    try:
        for name in embedders:
            if name in MAE_EMBEDDERS and screen.has_images:
                try:
                    embedder_options(name, screen, config)
                except FileNotFoundError as err:
                    log.warning("skipping the MAE embedder: %s", err)
                    continue
            key, build = stage_embed(runner, screen, config, ingest_key, name, executor=plates_on)
            embed_keys[name] = key
            if name in MAE_EMBEDDERS:
                checkpoint = build.get("checkpoint")
                info = runner.store.open_stage("embed", key).manifest.get("info", {})
                mae_block = {"embedder": name, "chosen": info.get("block", {}).get("chosen"),
                             "depth": info.get("block", {}).get("depth"), "scored": "scores" in info.get("block", {}),
                             "how": info.get("block", {}).get("how"),
                             "channelwise": bool(info.get("channelwise"))}
    finally:
        if owned:
            plates_on.close()
    primary = config.primary_embedder if config.primary_embedder in embed_keys else next(iter(embed_keys))
    result: dict[str, Any] = {"embed": embed_keys, "_primary": {"embedder": primary, "align": config.primary_align,
                                                                **({"mae_block": mae_block} if mae_block else {})},
                              "_checkpoint": checkpoint}
    try:
        from precompute import downstream
    except ImportError:  # downstream stages arrive with the numerical core
        return result
    result.update(downstream.run_downstream(runner, screen, config, ingest_key, embed_keys, primary))
    return result
