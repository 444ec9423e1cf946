"""The ingest stage: the screen's wells table, keyed by the screen's content."""

from __future__ import annotations

import hashlib

from precompute.artifacts import StageWriter, file_sha256
from precompute.screen import Screen
from precompute.stages.registry import Runner, Stage, StageContext, Target, parquet_safe, register


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
    def compute(w: StageWriter) -> None:
        w.save_table("wells", parquet_safe(screen.wells))
        w.info["screen"] = screen.name

    return runner.run_stage("ingest", screen.name, {"screen": screen_fingerprint(screen)}, {}, compute)


def run(ctx: StageContext, target: Target) -> str:
    return stage_ingest(ctx.runner, ctx.screen)


STAGE = register(Stage(name="ingest", version="1", after=None, inputs=(), outputs={"wells": "table"},
                       run=run, scope="run", description="the screen's wells table"))
