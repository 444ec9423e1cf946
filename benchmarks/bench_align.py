"""Time TVN (ours vs the EFAAR reference) and well -> entity aggregation.

- TVN on n wells x d dims (default 20,000 x 384, 20% controls, 4 batches): precompute.align vs
  efaar_benchmarking 1.0 ``tvn_on_controls`` in float64 and in float32 on both sides, each side
  warmed up once on a small screen and timed --repeats times (best and median), with the max abs
  difference. (At screen scale and against pycytominer: bench_align_scale.py.)
- aggregate_perturbations on --agg-n wells (default 200,000 x 384 float32; 60% CRISPR over
  17,000 genes, 30% compounds over 1,700 ids x 8 doses, 10% controls).

Prints a table and writes benchmarks/results/align.json.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_align.py [--n 20000 --dim 384 --agg-n 200000]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._meta import RESULTS, save_result, start_run, timed_runs  # noqa: E402
from precompute.aggregate import aggregate_perturbations  # noqa: E402
from precompute.align import tvn_on_controls  # noqa: E402


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

    meta = start_run(repeats=args.repeats, warmup=1, warmup_what="both sides once on 2,000 x 32, each dtype")
    x, ctrl, batches = tvn_screen(args.n, args.dim)
    result: dict = {"tvn": {"n_wells": args.n, "dim": args.dim, "n_controls": int(ctrl.sum()), "n_batches": 4}}
    ours_fn = lambda x, c, b: tvn_on_controls(x, c, b)  # noqa: E731
    ref_fn = None
    if not args.no_reference:
        import reference_efaar

        efaar, _ = reference_efaar.load()

        def ref_fn(x, c, b):
            md = pd.DataFrame({"pert": np.where(c, "CTRL", "TRT"), "batch": b})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return efaar.tvn_on_controls(x, md, "pert", "CTRL", "batch")
    xs, cs, bs = tvn_screen(2000, 32, seed=1)
    for dt in ("float64", "float32"):
        ours_fn(xs.astype(dt), cs, bs), ref_fn and ref_fn(xs.astype(dt), cs, bs)
        xd = x.astype(dt)
        ours, t_ours = timed_runs(ours_fn, args.repeats, xd, ctrl, batches)
        cell = result["tvn"][dt] = {"ours": t_ours}
        if ref_fn:
            ref, t_ref = timed_runs(ref_fn, args.repeats, xd, ctrl, batches)
            cell.update(reference=t_ref, ratio_best=round(t_ref["best_s"] / t_ours["best_s"], 2),
                        max_abs_diff=float(np.abs(np.asarray(ref, np.float64) - ours).max()))

    wells = wells_table(args.agg_n)
    emb = np.random.default_rng(1).normal(size=(args.agg_n, args.dim)).astype(np.float32)
    agg = {"n_wells": args.agg_n, "dim": args.dim}
    for method in ("mean", "median"):
        t = time.perf_counter()
        _, table = aggregate_perturbations(emb, wells, method=method)
        agg[f"{method}_s"] = round(time.perf_counter() - t, 2)
    agg["n_entities"] = len(table)
    result["aggregate"] = agg
    print(f"{'step':<34}{'ours best (s)':>14}{'reference':>11}{'ratio':>7}")
    for dt in ("float64", "float32"):
        c = result["tvn"][dt]
        ref = c.get("reference", {}).get("best_s", "-")
        print(f"{'TVN ' + str(args.n) + 'x' + str(args.dim) + ' ' + dt:<34}{c['ours']['best_s']:>14}{ref:>11}{c.get('ratio_best', '-'):>7}")
    print(f"{'aggregate mean ' + str(args.agg_n):<34}{agg['mean_s']:>14}")
    print(f"{'aggregate median ' + str(args.agg_n):<34}{agg['median_s']:>14}")
    save_result(RESULTS / "align.json", result, meta)
    return result


if __name__ == "__main__":
    main()
