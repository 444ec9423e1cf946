"""What match significance costs at screen scale: the characterise stage's significance steps on
the million-well store's arrays (33,405 entities).

    .venv/bin/python benchmarks/bench_significance.py [--store var/store/million] [--run default]

Times each step the stage runs (precompute/stages/characterise.py ``significance_into``): the
entity -> wells map, the closed-form null (pools, signatures, the entities x pools projections),
the noise inflation, the BH family (a seeded sample of 4,000,000 of its pairs when larger) and the
p/q of the stored top and bottom neighbour lists; wall and CPU seconds of each (CPU: all threads;
on a shared machine the wall time says more about the neighbours than the code), with the
process's peak resident memory after each (``ru_maxrss``, which includes the arrays read). Writes benchmarks/results/bench_significance.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402
from precompute import significance as sig  # noqa: E402
from precompute.artifacts import ArtifactStore  # noqa: E402
from precompute.characterisation import neighbour_significance, sampled_family  # noqa: E402
from precompute.match_null import MatchNull, closed_form_null  # noqa: E402

HOME = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))


def peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=HOME / "store" / "million")
    ap.add_argument("--run", default="default")
    args = ap.parse_args()
    meta = start_run(repeats=1)
    store = ArtifactStore(args.store, create=False)
    run = store.get_run(args.run)
    keys = run["stages"]
    emb = run["primary"]["embedder"]
    align = run["primary"]["align"]
    wells = store.open_stage("ingest", keys["ingest"]).table("wells")
    agg = store.open_stage("aggregate", keys["aggregate"][emb])
    entities = agg.table("perturbations")
    unit = np.asarray(agg.array("unit_embeddings", mmap=False))
    means = np.asarray(agg.array("embeddings", mmap=False))
    aligned = store.open_stage("align", keys["align"][emb][align]).array("embeddings", mmap=True)
    rel = store.open_stage("relate", keys["relate"][emb])
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    steps: list[dict] = []
    base = peak_gb()

    def step(name: str, fn):
        t, cpu = time.perf_counter(), time.process_time()
        out = fn()
        steps.append({"step": name, "seconds": round(time.perf_counter() - t, 1),
                      "cpu_seconds": round(time.process_time() - cpu, 1), "peak_rss_gb": peak_gb()})
        print(f"{name:>28}: {steps[-1]['seconds']:7.1f} s wall, {steps[-1]['cpu_seconds']:7.1f} s CPU, "
              f"peak RSS {steps[-1]['peak_rss_gb']:.2f} GB", flush=True)
        return out

    members = step("entity_wells", lambda: sig.entity_wells(wells, entities))
    parts = step("closed_form_null", lambda: closed_form_null(unit, aligned, wells, members, ctrl))
    scale = step("noise_inflation", lambda: np.sqrt(sig.noise_inflation(unit, aligned, wells, ctrl)).astype(np.float32))
    signature, mean, sd, offsets, sig_pool, sig_count, pool_size = parts
    null = MatchNull(signature, mean, sd, np.zeros_like(scale), scale, offsets, sig_pool, sig_count, pool_size)
    family, fam_info = step("family (sampled p-values)", lambda: sampled_family(unit, means, entities, null))
    shown = {}
    for side in ("top", "bottom"):
        idx = np.asarray(rel.array(f"neighbours_{side}_idx", mmap=False))
        p, q = step(f"neighbours_{side} p/q ({idx.shape[1]} each)",
                    lambda idx=idx: neighbour_significance(unit, means, idx, entities, null, family))
        shown[side] = {"pairs": int(np.isfinite(p).sum()), "called_q_below_0.05": int(np.sum(q < 0.05)),
                       "median_p": float(np.nanmedian(p))}
    stored_mb = sum(getattr(null, n).nbytes for n in MatchNull.names()) / 2**20 + family.sorted_p.nbytes / 2**20
    total = sum(s["seconds"] for s in steps)
    total_cpu = sum(s["cpu_seconds"] for s in steps)
    result = {"store": str(args.store), "embedder": emb, "space": align, "entities": int(len(entities)),
              "wells": int(len(wells)), "control_wells": int(ctrl.sum()), "dim": int(unit.shape[1]),
              "pools": int(pool_size.size), "signatures": int(offsets.size - 1), "family": fam_info,
              "steps": steps, "total_seconds": round(total, 1),
              "total_cpu_seconds": round(total_cpu, 1), "peak_rss_gb": peak_gb(),
              "rss_before_gb": base, "stored_mb": round(stored_mb, 1), "neighbours": shown}
    print(f"total {total:.0f} s wall, {total_cpu:.0f} s CPU (all threads), peak RSS {peak_gb():.2f} GB (arrays read: {base:.2f} GB), stored {stored_mb:.0f} MB; "
          f"{result['pools']} pools, {result['signatures']} signatures")
    save_result(RESULTS / "bench_significance.json", result, meta)


if __name__ == "__main__":
    main()
