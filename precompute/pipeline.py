"""The precompute pipeline: stages wired together over the artifact store.

Each stage is a thin runner around pure functions (embed/, align.py, aggregate.py, relate.py,
reduce.py, evaluate.py). A stage's key hashes its config, the keys of its inputs and its code
version; a rerun skips every stage whose directory is complete, and ``force`` redoes a stage and
everything after it. The run index (``runs/{name}.json``) is written last, so the dashboard
only ever sees a run whose stages all exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phenomix.settings import DEFAULT_CHECKPOINT  # noqa: F401  (read by stages; shipped with the package)
from precompute import __version__
from precompute.artifacts import ArtifactStore, file_sha256
from precompute.contract import ContractError
from precompute.screen import Screen, load_screen

log = logging.getLogger("precompute")

STAGES: tuple[str, ...] = ("ingest", "embed", "align", "aggregate", "relate", "project", "characterise", "evaluate")
# Bump a stage's version when its code changes what it writes: old artifacts are then not reused.
STAGE_VERSIONS: dict[str, str] = {s: "1" for s in STAGES}
# relate 2: activity APs ranked per plate (was copairs' pairs); project 2: points beyond the UMAP
# sample placed from their fitted neighbours; evaluate 2: replicate mAP on a sample of perturbations;
# align 2: float32 embeddings are multiplied in float32 (TVN, spherize, the PCA-TVN projection).
STAGE_VERSIONS.update(align="2", relate="2", project="2", evaluate="2")


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
    # scored on the screen's annotations in the embed stage, the best kept; see stages._choose_block)
    # or "auto" (the checkpoint's embedding.json, else last); channelwise: one mean per channel,
    # concatenated (C x D); None = the checkpoint's embedding.json, else pooled.
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


@dataclass
class StageReport:
    stage: str
    name: str
    key: str
    skipped: bool
    seconds: float
    rows: dict[str, int]


class Runner:
    """Runs stages against one store, recording what was done for the summary."""

    def __init__(self, store: ArtifactStore, force: set[str] | None = None, progress: bool = True) -> None:
        self.store = store
        self.force = force or set()
        self.progress = progress
        self.reports: list[StageReport] = []
        self._forced_keys: set[str] = set()

    def run_stage(
        self,
        stage: str,
        name: str,
        config: dict[str, Any],
        inputs: dict[str, str],
        compute: Callable[[Any], None],
    ) -> str:
        """Compute one stage unless a complete directory with the same key exists."""
        key = self.store.stage_key(stage, config, inputs, f"{__version__}/{STAGE_VERSIONS[stage]}")
        # --force STAGE redoes that stage and everything downstream of it: a downstream stage is
        # forced when any of its inputs was recomputed in this run.
        forced = stage in self.force or any(v in self._forced_keys for v in inputs.values())
        if self.store.is_complete(stage, key) and not forced:
            m = self.store.open_stage(stage, key).manifest
            self.reports.append(StageReport(stage, name, key, True, 0.0, m.get("rows", {})))
            log.info("%-9s %-22s cached (%s)", stage, name, key[:10])
            return key
        log.info("%-9s %-22s computing ...", stage, name)
        t0 = time.time()
        with self.store.write_stage(stage, key, config=config, inputs=inputs,
                                    code_version=f"{__version__}/{STAGE_VERSIONS[stage]}") as w:
            _fault_point(stage, "compute")
            compute(w)
            _fault_point(stage, "manifest")
            rows = dict(w.rows)
        if forced:
            self._forced_keys.add(key)
        self.reports.append(StageReport(stage, name, key, False, time.time() - t0, rows))
        log.info("%-9s %-22s done in %.1f s", stage, name, time.time() - t0)
        return key


def _fault_point(stage: str, point: str) -> None:
    """Crash tests only: PHENOMIX_FAULT_INJECT=stage:point SIGKILLs this process there, i.e. with the
    stage's temporary folder open ('compute': empty; 'manifest': outputs written, manifest not)."""
    if os.environ.get("PHENOMIX_FAULT_INJECT") == f"{stage}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def screen_fingerprint(screen: Screen) -> str:
    """Identity of a screen's content: its descriptor and wells table (images are named by it)."""
    h = hashlib.sha256()
    for rel in ("screen.json", screen.descriptor.get("metadata", "metadata.csv"), screen.descriptor.get("image_index")):
        if rel is None:
            continue
        h.update(file_sha256(screen.root / rel).encode())
    for rel in screen.descriptor.get("arrays", {}).values():
        p = screen.root / rel
        h.update(f"{rel}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def stage_ingest(runner: Runner, screen: Screen) -> str:
    def compute(w) -> None:
        wells = screen.wells.copy()
        for c in wells.columns:  # parquet needs one type per column
            if wells[c].dtype == object:
                wells[c] = wells[c].astype("string")
        w.save_table("wells", wells)
        w.info["screen"] = screen.name

    return runner.run_stage("ingest", screen.name, {"screen": screen_fingerprint(screen)}, {}, compute)


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
    from precompute import stages  # the stage runners beyond ingest live there
    from precompute.executors import parse_executor
    from precompute.preflight import preflight

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
        keys: dict[str, Any] = {"ingest": stage_ingest(runner, screen)}
        keys.update(stages.run_all(runner, screen, config, keys["ingest"], executor=spec))
        run = {
            "name": run_name,
            "screen": screen_summary(screen),
            "config": _jsonable(asdict(config)),
            "primary": keys.pop("_primary", {}),
            "checkpoint": keys.pop("_checkpoint", None),
            "stages": keys,
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
    if not force:
        return set()
    unknown = set(force) - set(STAGES) - {"all"}
    if unknown:
        raise ValueError(f"--force: unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)}")
    if "all" in force:
        return set(STAGES)
    first = min(STAGES.index(s) for s in force)
    return set(STAGES[first:])


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
