"""The precompute pipeline: the registered stages (precompute/stages/) run over the artifact store.

Each stage is a thin runner around pure functions (embed/, align.py, aggregate.py, relate.py,
projection.py, evaluation/). A stage's key hashes its config, the keys of its inputs and its code
version; a rerun skips every stage whose directory is complete, and ``force`` redoes a stage and
everything after it. The order, versions and fan-out (per embedder, per alignment method) come
from the stage registry. The run index (``runs/{name}.json``) is written last, so the dashboard
only ever sees a run whose stages all exist.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from precompute.artifacts import ArtifactStore
from precompute.contract import ContractError
from precompute.executors import parse_executor
from precompute.preflight import preflight
from precompute.run_config import RunConfig
from precompute.screen import Screen, load_screen
from precompute.stages.registry import REGISTRY, Runner, Stage, StageContext, Target


def stage_order() -> tuple[str, ...]:
    """Stage names in run order (from the registry)."""
    return REGISTRY.names()


def stage_versions() -> dict[str, str]:
    """Stage name -> code version; bump a stage's version (in its module) when its code changes
    what it writes: old artifacts are then not reused."""
    return REGISTRY.versions()


def run_stage_everywhere(stage: Stage, ctx: StageContext) -> Any:
    """Run one stage over its scope; returns what the run index files under its name: a key, or
    {embedder: key}, or {embedder: {align method: key}}."""
    if stage.scope == "run":
        return stage.run(ctx, Target())
    if stage.scope == "embedder":
        return {e: stage.run(ctx, Target(e)) for e in ctx.embedders if stage.applies(ctx, Target(e))}
    return {e: {m: stage.run(ctx, Target(e, m)) for m in ctx.config.align_run_methods if stage.applies(ctx, Target(e, m))}
            for e in ctx.embedders}


def screen_summary(screen: Screen) -> dict[str, Any]:
    return {
        "name": screen.name,
        "path": str(screen.root.resolve()),
        "channels": list(screen.channels),
        "sites": screen.n_sites,
        "plate_format": screen.plate_format,
        "image_size": list(screen.image_size) if screen.image_size else None,
        "bit_depth": screen.bit_depth,
        "n_wells": len(screen.wells),
        "has_images": screen.has_images,
    }


def run_pipeline(
    screen_path: str | Path,
    store_root: str | Path,
    config: RunConfig | None = None,
    *,
    run_name: str = "default",
    force: set[str] | None = None,
    progress: bool = True,
    verify_images: str = "header",
    executor: str = "local",
) -> dict[str, Any]:
    """Run every stage for one screen into one store; returns the run index it wrote.

    The whole input is checked first (`precompute.preflight`; ``verify_images="full"`` decodes
    every image): a bad screen raises a ContractError before anything is written to the store.
    ``executor`` says where the embed stage's per-plate work runs (`precompute.executors`:
    ``local``, ``dask://HOST:PORT``, ``dask-local:N``); it is deliberately not in RunConfig, so it
    changes no stage key: the artifacts are the same whichever executor computed them.
    """
    config = config or RunConfig()
    forced = _expand_force(force)  # a typo in --force is an input error too: before any write
    spec = parse_executor(executor)  # so is a bad --executor
    screen = load_screen(screen_path)
    preflight(screen, config, verify_images=verify_images)
    check_store_target(Path(store_root))
    store = ArtifactStore(store_root)
    with store.lock():
        store.clean_temporaries()
        runner = Runner(store, force=forced, progress=progress)
        t0 = time.time()
        ctx = StageContext(runner, screen, config, executor=spec)
        for stage in REGISTRY.ordered():
            ctx.keys[stage.name] = run_stage_everywhere(stage, ctx)
        run = {
            "name": run_name,
            "screen": screen_summary(screen),
            "config": _jsonable(asdict(config)),
            "primary": ctx.run_info.get("primary", {}),
            "checkpoint": ctx.run_info.get("checkpoint"),
            "stages": ctx.keys,
            "seconds": round(time.time() - t0, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "reports": [asdict(r) for r in runner.reports],
        }
        store.set_run(run_name, run)
    return run


def check_store_target(root: Path) -> None:
    """Refuse to turn an unrelated folder into a store (it would be chmod 700 and filled with stages)."""
    if root.exists() and not root.is_dir():
        raise ContractError(f"{root}: --store must be a folder, this is a file")
    if root.is_dir() and not (root / "STORE.json").exists() and any(root.iterdir()):
        raise ContractError(f"{root}: not an artifact store and not empty; give a new or empty folder as --store")


def _expand_force(force: set[str] | None) -> set[str]:
    """--force names -> every stage from the earliest one named on ("all": every stage)."""
    if not force:
        return set()
    order = stage_order()
    unknown = set(force) - set(order) - {"all"}
    if unknown:
        raise ValueError(f"--force: unknown stage(s) {sorted(unknown)}; stages are {', '.join(order)}")
    if "all" in force:
        return set(order)
    first = min(order.index(s) for s in force)
    return set(order[first:])


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
