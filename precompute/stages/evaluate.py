"""The evaluate stage: one scorecard comparing every embedder and alignment of the run
(science in precompute/evaluation/)."""

from __future__ import annotations

from typing import Any

from precompute.artifacts import StageWriter
from precompute.evaluation.mean_ap import count_replicate_entities
from precompute.evaluation.scorecard import MAX_REPLICATE_ENTITIES, evaluate_run
from precompute.stages.registry import Stage, StageContext, Target, parquet_safe, register


def run(ctx: StageContext, target: Target) -> str:
    screen, config = ctx.screen, ctx.config
    # {embedder: {"embed": key, "align": {method: key}, "aggregate": key}}: every space of every embedder.
    per_embedder: dict[str, dict[str, Any]] = {
        e: {stage: ctx.keys[stage][e] for stage in STAGE.inputs} for e in ctx.embedders}
    inputs = {f"{e}/{stage}/{m}": key for e, d in per_embedder.items() for stage, node in d.items()
              for m, key in (node.items() if isinstance(node, dict) else [("-", node)])}

    def compute(w: StageWriter) -> None:
        result = evaluate_run(ctx.runner.store, screen, per_embedder, config)
        w.info["replicate_map_sample"] = f"at most {MAX_REPLICATE_ENTITIES} perturbations (seeded) query; see docs/artifacts.md"
        # Counts the dashboard shows beside the results ("over N of M perturbations", "on N of M wells").
        n_rep = count_replicate_entities(screen.wells)
        w.info["replicate_map"] = {"with_replicates": n_rep, "queried": min(n_rep, MAX_REPLICATE_ENTITIES)}
        batch = result.get("tables", {}).get("batch")
        used = int(batch["n_samples"].max()) if batch is not None and len(batch) and "n_samples" in batch else None
        w.info["batch_metrics"] = {"wells": len(screen.wells), "sampled": used}
        for name, df in result.pop("tables", {}).items():
            w.save_table(name, parquet_safe(df))
        w.save_json("benchmarks", result)

    return ctx.runner.run_stage("evaluate", "all", {"seed": config.seed}, inputs, compute)


STAGE = register(Stage(
    name="evaluate", version="2", after="characterise", inputs=("embed", "align", "aggregate"),
    outputs={"recall": "table", "replicate_map": "table", "batch": "table", "compound_gene": "table",
             "benchmarks": "json"},
    run=run, scope="run", description="the run's scorecard: recall, replicate mAP, batch metrics, compound-gene"))
# version 2: replicate mAP on a sample of perturbations.
