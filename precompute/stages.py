"""Stage runners after ingest: embed, align, aggregate, relate, project, evaluate.

Each runner decides its config and inputs (which key it), then calls pure functions and saves
their outputs through the store's writer. Nothing here knows about Dash.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from precompute.artifacts import file_sha256
from precompute.embed import get_embedder, tile_sites, to_float01
from precompute.screen import Screen

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
    if name == "mae":
        from precompute.pipeline import DEFAULT_CHECKPOINT

        ckpt = Path(config.checkpoint) if config.checkpoint else DEFAULT_CHECKPOINT
        fp = checkpoint_fingerprint(ckpt)
        return {"checkpoint": str(ckpt), "device": config.device}, {"checkpoint_sha": fp}
    raise ValueError(f"unknown embedder {name!r}")


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


def embed_screen(screen: Screen, embedder: Any, tile: int, *, progress: bool = True, wells_per_batch: int = 32) -> np.ndarray:
    """Well embeddings (n_wells, dim): mean over every tile of every site of each well.

    Images are read by a small thread pool ahead of the embedder; tiles of several wells go to
    the embedder together so a model sees full batches.
    """
    ids = screen.wells["well_id"].tolist()
    out: np.ndarray | None = None
    with ThreadPoolExecutor(max_workers=2) as pool:
        images_iter = pool.map(screen.load_images, ids)
        bar = tqdm(total=len(ids), desc=f"embed {embedder.name}", disable=not progress, unit="well")
        start = 0
        while start < len(ids):
            stop = min(start + wells_per_batch, len(ids))
            tiles, counts = [], []
            for _ in range(start, stop):
                t = tile_sites(next(images_iter), tile)
                tiles.append(t)
                counts.append(len(t))
            vecs = np.asarray(embedder.embed_tiles(to_float01(np.concatenate(tiles))), dtype=np.float32)
            if out is None:
                out = np.empty((len(ids), vecs.shape[1]), dtype=np.float32)
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for i in range(stop - start):
                out[start + i] = vecs[bounds[i]:bounds[i + 1]].mean(axis=0, dtype=np.float64)
            bar.update(stop - start)
            start = stop
        bar.close()
    assert out is not None
    return out


def stage_embed(runner: Any, screen: Screen, config: Any, ingest_key: str, name: str) -> tuple[str, dict]:
    """Embed every well with one embedder; 'features' takes the screen's precomputed well features."""
    if name == "features":
        feats = screen.array("well_features")
        if feats is None:
            raise ValueError(f"screen {screen.name!r} has no precomputed well features (arrays.well_features)")

        def compute_features(w) -> None:
            w.save_array("embeddings", np.asarray(feats, dtype=np.float32))
            w.info["embedder"] = "features"

        return runner.run_stage("embed", name, {"embedder": "features"}, {"ingest": ingest_key}, compute_features), {}

    build, key_cfg = embedder_options(name, screen, config)

    def compute(w) -> None:
        if name == "mae":
            limit_torch_threads()
        embedder = get_embedder(name, **build)
        tile = _tile_size(embedder, screen, config.tile)
        emb = embed_screen(screen, embedder, tile, progress=runner.progress)
        w.save_array("embeddings", emb)
        w.info.update({"embedder": name, "tile": tile, "dim": int(emb.shape[1])})

    key = runner.run_stage("embed", name, {"embedder": name, **key_cfg}, {"ingest": ingest_key}, compute)
    return key, build


def run_all(runner: Any, screen: Screen, config: Any, ingest_key: str) -> dict[str, Any]:
    """Run the stages after ingest for every configured embedder; returns run-index entries."""
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
    for name in embedders:
        if name == "mae" and screen.has_images:
            try:
                embedder_options("mae", screen, config)
            except FileNotFoundError as err:
                log.warning("skipping the MAE embedder: %s", err)
                continue
        key, build = stage_embed(runner, screen, config, ingest_key, name)
        embed_keys[name] = key
        if name == "mae":
            checkpoint = build.get("checkpoint")
    primary = config.primary_embedder if config.primary_embedder in embed_keys else next(iter(embed_keys))
    result: dict[str, Any] = {"embed": embed_keys, "_primary": {"embedder": primary, "align": config.primary_align},
                              "_checkpoint": checkpoint}
    try:
        from precompute import downstream
    except ImportError:  # downstream stages arrive with the numerical core
        return result
    result.update(downstream.run_downstream(runner, screen, config, ingest_key, embed_keys, primary))
    return result
