"""The demo screen's scorecard (the pipeline's evaluate stage) as a tracked results file.

    .venv/bin/python benchmarks/demo_scorecard.py [--store var/store/demo] [--run default]

Reads the evaluate stage of the store's run (it computes nothing: run ``python -m precompute run
--screen demo`` first) and writes benchmarks/results/demo_scorecard.json, from which
scripts/render_readme.py renders the README's scorecard table. The file keeps the evaluate stage's
tables in long form (one record per embedder x space x source/label), so new embedders, spaces or
metrics (e.g. per-block MAE recall) arrive as extra records, not a new format.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402
from precompute.embed.registry import embedder_labels  # noqa: E402

# How the README names the pipeline's embedders: the registry's labels, the demo's MAE being the
# shipped tiny checkpoint.
LABELS = {**embedder_labels(), "mae": "CA-MAE (tiny, shipped)"}


def records(df: pd.DataFrame, columns: list[str]) -> list[dict]:
    keep = [c for c in columns if c in df.columns]
    out = df[keep].replace({np.nan: None}).to_dict("records")
    return [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in out]


def scorecard(store_path: Path, run_name: str) -> dict:
    from precompute.artifacts import ArtifactStore

    store = ArtifactStore(store_path, create=False)
    run = store.get_run(run_name)
    ev = next((r for r in run["reports"] if r["stage"] == "evaluate"), None)
    if ev is None:
        raise SystemExit(f"{store_path}: run {run_name!r} has no evaluate stage (run `python -m precompute run` first)")
    stage = store.open_stage("evaluate", ev["key"])
    summary = stage.json("benchmarks")["summary"]
    tables = {name: stage.table(name) for name in ("recall", "replicate_map", "batch", "compound_gene")}
    cg = tables["compound_gene"]
    if "concentration_um" in cg.columns:
        cg = cg[cg["concentration_um"].isna()]  # max over doses: one row per compound
    cg_summary = (cg.groupby(["embedder", "space"], sort=False)
                  .agg(mean_auc=("roc_auc", "mean"), mean_ap=("average_precision", "mean"), n_compounds=("compound", "size"))
                  .reset_index())
    # tables the evaluate stage gains later (e.g. per-block MAE recall) are kept as they come
    known = {"recall", "replicate_map", "batch", "compound_gene"}
    extra = {Path(f).stem: records(stage.table(Path(f).stem), list(stage.table(Path(f).stem).columns))
             for f in stage.manifest.get("checksums", {}) if f.endswith(".parquet") and Path(f).stem not in known}
    embedders = list(dict.fromkeys(tables["recall"]["embedder"].tolist() + tables["replicate_map"]["embedder"].tolist()))
    return {
        "store": str(store_path), "run": run_name, "screen": run.get("screen"),
        "evaluate_key": ev["key"], "primary_align": summary.get("primary_align"),
        "embedders": [{"embedder": e, "label": LABELS.get(e, e)} for e in embedders],
        "recall": records(tables["recall"], ["embedder", "space", "source", "n_pairs", "recall"]),
        "replicate_map": records(tables["replicate_map"], ["embedder", "space", "map", "fraction_q05", "n_perturbations"]),
        "batch": records(tables["batch"], ["embedder", "space", "label", "accuracy", "chance", "silhouette", "n_samples"]),
        "compound_gene": records(cg_summary, ["embedder", "space", "mean_auc", "mean_ap", "n_compounds"]),
        "extra_tables": extra,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    home = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))
    p.add_argument("--store", type=Path, default=home / "store" / "demo")
    p.add_argument("--run", default="default")
    p.add_argument("--out", type=Path, default=RESULTS / "demo_scorecard.json")
    a = p.parse_args()
    meta = start_run(repeats=1, warmup=0, store=str(a.store), note="reads the evaluate stage; times nothing")
    card = scorecard(a.store, a.run)
    out = save_result(a.out, card, meta)
    for r in card["recall"]:
        if r["space"] == card["primary_align"]:
            print(f"{r['embedder']:<12}{r['source']:<22}{r['recall']:.3f}")
    print(f"saved {out} (evaluate {card['evaluate_key']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
