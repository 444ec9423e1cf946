"""Time TVN (ours vs the EFAAR reference) and well -> entity aggregation.

- TVN on n wells x d dims (default 20,000 x 384, 20% controls, 4 batches): precompute.align vs
  efaar_benchmarking 1.0 ``tvn_on_controls`` (best of --repeats), plus the max abs difference.
- aggregate_perturbations on --agg-n wells (default 200,000 x 384 float32; 60% CRISPR over
  17,000 genes, 30% compounds over 1,700 ids x 8 doses, 10% controls).

Prints a table and writes benchmarks/results/align.json.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_align.py [--n 20000 --dim 384 --agg-n 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from precompute.aggregate import aggregate_perturbations  # noqa: E402
from precompute.align import tvn_on_controls  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def tvn_screen(n: int, d: int, n_batches: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, n_batches, n)
    ctrl = rng.random(n) < 0.2
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + 2 * rng.normal(size=(n_batches, d))[batch]
    return x, ctrl, np.array([f"b{b}" for b in batch])


def wells_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kind = rng.choice(["crispr", "compound", "negative_control"], n, p=[0.6, 0.3, 0.1])
    gene = np.array([f"G{i:05d}" for i in range(17000)])[rng.integers(0, 17000, n)]
    cpd = np.array([f"CPD{i:04d}" for i in range(1700)])[rng.integers(0, 1700, n)]
    pert = np.where(kind == "crispr", gene, np.where(kind == "compound", cpd, "EMPTY"))
    return pd.DataFrame(
        {
            "perturbation_type": kind,
            "perturbation": pert,
            "plate": rng.integers(0, max(1, n // 1500), n).astype(str),
            "batch": rng.integers(0, 20, n).astype(str),
            "guide": np.where(kind == "crispr", np.char.add(pert, rng.integers(0, 6, n).astype(str)), None),
            "gene": np.where(kind == "crispr", pert, None),
            "concentration_um": np.where(
                kind == "compound", rng.choice([0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10], n), np.nan
            ),
        }
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--agg-n", type=int, default=200_000)
    p.add_argument("--no-reference", action="store_true", help="skip the EFAAR reference timing")
    args = p.parse_args(argv)

    x, ctrl, batches = tvn_screen(args.n, args.dim)
    ours_s = best_of(lambda: tvn_on_controls(x, ctrl, batches), args.repeats)
    result: dict = {
        "tvn": {
            "n_wells": args.n,
            "dim": args.dim,
            "n_controls": int(ctrl.sum()),
            "n_batches": 4,
            "ours_s": round(ours_s, 3),
        }
    }
    if not args.no_reference:
        import reference_efaar

        efaar, _ = reference_efaar.load()
        md = pd.DataFrame({"pert": np.where(ctrl, "CTRL", "TRT"), "batch": batches})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = efaar.tvn_on_controls(x, md, "pert", "CTRL", "batch")
            ref_s = best_of(lambda: efaar.tvn_on_controls(x, md, "pert", "CTRL", "batch"), max(1, args.repeats - 1))
        result["tvn"].update(
            reference_s=round(ref_s, 3),
            speedup=round(ref_s / ours_s, 1),
            max_abs_diff=float(np.abs(ref - tvn_on_controls(x, ctrl, batches)).max()),
        )

    wells = wells_table(args.agg_n)
    emb = np.random.default_rng(1).normal(size=(args.agg_n, args.dim)).astype(np.float32)
    agg = {"n_wells": args.agg_n, "dim": args.dim}
    for method in ("mean", "median"):
        t = time.perf_counter()
        _, table = aggregate_perturbations(emb, wells, method=method)
        agg[f"{method}_s"] = round(time.perf_counter() - t, 2)
    agg["n_entities"] = len(table)
    result["aggregate"] = agg
    result["env"] = {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }

    print(f"{'step':<28}{'ours (s)':>10}{'reference (s)':>15}{'speedup':>9}")
    tv = result["tvn"]
    print(
        f"{'TVN ' + str(args.n) + 'x' + str(args.dim):<28}{tv['ours_s']:>10}{tv.get('reference_s', '-'):>15}{tv.get('speedup', '-'):>9}"
    )
    print(f"{'aggregate mean ' + str(args.agg_n):<28}{agg['mean_s']:>10}")
    print(f"{'aggregate median ' + str(args.agg_n):<28}{agg['median_s']:>10}")
    out = ROOT / "benchmarks" / "results" / "align.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
