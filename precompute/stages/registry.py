"""The stage registry: what a pipeline stage is, how stages are ordered, and how one is run.

A stage is one module in ``precompute/stages/`` that calls :func:`register` with a :class:`Stage`:
its name (the store's directory prefix), its code version, the stage it runs ``after``, the stages
whose keys it takes as ``inputs``, its declared ``outputs`` and a ``run`` function. Every module of
the package is imported on first use of the registry (:meth:`StageRegistry.ordered`), so adding a
stage is one new file: the pipeline's order, versions, ``--force`` and its loop all come from here.

The ``scope`` says what a stage fans out over: ``"run"`` (once per run), ``"embedder"`` (once per
embedder the embed stage produced; ``applies`` may narrow it) or ``"embedder x align"`` (once per
embedder and alignment method). ``run(ctx, target)`` returns the stage key it wrote (or, for the embed
stage, one per embedder); the pipeline files it in the run index under the stage's name.

This module imports no stage runner, executor or pipeline, so the dashboard may read the declared
outputs (``phenomix_dash.data.PhenomixData.artifact``).
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from precompute import __version__
from precompute.artifacts import ArtifactStore, StageWriter
from precompute.run_config import RunConfig
from precompute.screen import Screen

log = logging.getLogger("precompute")

OutputKind = Literal["array", "table", "json"]
Scope = Literal["run", "embedder", "embedder x align"]
SCOPES: tuple[str, ...] = ("run", "embedder", "embedder x align")
OUTPUT_KINDS: tuple[str, ...] = ("array", "table", "json")
STAGES_PACKAGE = "precompute.stages"


@dataclass(frozen=True)
class Target:
    """What one call of a stage's run function is for: nothing (scope "run"), an embedder, or an
    embedder and an alignment method."""

    embedder: str | None = None
    align: str | None = None


def everywhere(ctx: StageContext, target: Target) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One pipeline stage, declared by its module (see the module docstring)."""

    name: str
    version: str
    after: str | None
    inputs: tuple[str, ...]
    outputs: Mapping[str, OutputKind]
    run: Callable[[StageContext, Target], Any]
    scope: Scope = "embedder"
    applies: Callable[[StageContext, Target], bool] = everywhere
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"stage name {self.name!r}: use letters, digits and underscores (it names store folders)")
        if self.scope not in SCOPES:
            raise ValueError(f"stage {self.name!r}: scope {self.scope!r} is not one of {', '.join(SCOPES)}")
        bad = {k: v for k, v in self.outputs.items() if v not in OUTPUT_KINDS}
        if bad:
            raise ValueError(f"stage {self.name!r}: outputs {bad} must be one of {', '.join(OUTPUT_KINDS)}")


class StageRegistry:
    """Stages by name; ``ordered()`` imports every module of ``package`` first (discovery)."""

    def __init__(self, package: str | None = None) -> None:
        self.package = package
        self._stages: dict[str, Stage] = {}
        self._discovered = package is None
        self._discovery_lock = threading.RLock()

    def register(self, stage: Stage) -> Stage:
        if stage.name in self._stages:
            raise ValueError(f"stage {stage.name!r} is registered twice "
                             f"({self._stages[stage.name].run.__module__} and {stage.run.__module__})")
        self._stages[stage.name] = stage
        return stage

    def unregister(self, name: str) -> None:
        """Withdraw a stage (a test's throwaway stage); unknown names raise KeyError."""
        del self._stages[name]

    def discover(self) -> None:
        """Import every module of the stage package once: each registers its stage on import."""
        # Threads (the dashboard's warm-up and its requests) may ask at once: the flag is set only
        # after every module is imported, under a lock, so nobody sees a half-filled registry.
        if self._discovered:
            return
        with self._discovery_lock:
            if self._discovered:
                return
            pkg = importlib.import_module(str(self.package))
            for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
                if mod.name != "registry" and not mod.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{mod.name}")
            self._discovered = True

    def get(self, name: str) -> Stage:
        self.discover()
        if name not in self._stages:
            raise KeyError(f"no stage {name!r}; stages are {', '.join(self.names())}")
        return self._stages[name]

    def ordered(self) -> tuple[Stage, ...]:
        """Stages in run order: each after the stage it names, siblings by name. Raises ValueError
        for an ``after`` or an input that is not a stage, or an input that does not run earlier."""
        self.discover()
        children: dict[str | None, list[Stage]] = {}
        for s in self._stages.values():
            if s.after is not None and s.after not in self._stages:
                raise ValueError(f"stage {s.name!r} runs after {s.after!r}, which is not a registered stage "
                                 f"({', '.join(sorted(self._stages))})")
            children.setdefault(s.after, []).append(s)
        order: list[Stage] = []
        todo = sorted(children.get(None, []), key=lambda s: s.name, reverse=True)
        while todo:  # depth first: a stage, then everything that runs after it
            s = todo.pop()
            order.append(s)
            todo.extend(sorted(children.get(s.name, []), key=lambda c: c.name, reverse=True))
        if len(order) != len(self._stages):
            stuck = sorted(set(self._stages) - {s.name for s in order})
            raise ValueError(f"stages {stuck} never run: their 'after' chain has no first stage (a loop?)")
        seen: set[str] = set()
        for s in order:
            unknown = [i for i in s.inputs if i not in seen]
            if unknown:
                raise ValueError(f"stage {s.name!r}: inputs {unknown} are not stages that run before it "
                                 f"(before it: {', '.join(sorted(seen)) or 'none'})")
            seen.add(s.name)
        return tuple(order)

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.ordered())

    def versions(self) -> dict[str, str]:
        return {s.name: s.version for s in self.ordered()}


REGISTRY = StageRegistry(STAGES_PACKAGE)


def register(stage: Stage) -> Stage:
    """Add a stage to the pipeline (call it at the bottom of the stage's module)."""
    return REGISTRY.register(stage)


def declared_outputs(stage: str) -> Mapping[str, OutputKind]:
    """{artifact name: "array" | "table" | "json"} that ``stage`` writes."""
    return REGISTRY.get(stage).outputs


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

    def run_stage(self, stage: str, name: str, config: dict[str, Any], inputs: dict[str, str],
                  compute: Callable[[StageWriter], None]) -> str:
        """Compute one stage unless a complete directory with the same key exists."""
        code_version = f"{__version__}/{REGISTRY.get(stage).version}"
        key = self.store.stage_key(stage, config, inputs, code_version)
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
        with self.store.write_stage(stage, key, config=config, inputs=inputs, code_version=code_version) as w:
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


@dataclass
class StageContext:
    """What a stage's run function sees: the runner, the screen, the config, and the keys of the
    stages run so far, laid out as the run index's ``stages`` (a key, {embedder: key} or
    {embedder: {align method: key}})."""

    runner: Runner
    screen: Screen
    config: RunConfig
    # Where the embed stage's per-plate work runs (a precompute.executors spec, string or
    # PlateExecutor); typed loosely so this module, which the dashboard reads, imports no executor.
    executor: Any = "local"
    keys: dict[str, Any] = field(default_factory=dict)
    embedders: list[str] = field(default_factory=list)  # those the embed stage produced, in order
    primary: str | None = None  # the embedder the pages browse first
    run_info: dict[str, Any] = field(default_factory=dict)  # extra run-index entries ("primary", ...)

    def key(self, stage: str, embedder: str | None = None) -> str:
        """The key ``stage`` wrote for ``embedder`` (for align: its primary alignment method)."""
        node = self.keys[stage]
        if isinstance(node, dict):
            node = node[embedder]
        if isinstance(node, dict):
            node = node[self.config.primary_align]
        return node

    def input_keys(self, stage: Stage, target: Target) -> dict[str, str]:
        """{input stage: its key} for ``target``, in the order the stage declares its inputs."""
        return {name: self.key(name, target.embedder) for name in stage.inputs}


def browsed_embedder(ctx: StageContext, target: Target) -> bool:
    """Relations and maps are what the pages browse: computed for the primary embedder, and for
    every embedder on small screens (<= 20,000 wells) where they are cheap (the Benchmarks page
    compares them)."""
    return target.embedder == ctx.primary or len(ctx.screen.wells) <= 20_000


def parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose object columns are strings: parquet needs one type per column."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].astype("string")
    return out
