"""Phenotypic activity (mAP against DMSO) at JUMP plate scale: copairs' own path vs ours, where time goes.

Data: the real JUMP-MOA plate in ../shared/data (384 wells, 90 compounds x 4 replicates, DMSO, 357
features), and copies of it standing in for a JUMP batch of 10 and 40 plates (each copy gets its own
plate label and noise of 0.3 feature-std, so replicates span plates as in JUMP).

- copairs 0.5: ``copairs.map.average_precision`` (positives: same compound; negatives: DMSO of the
  query's plate) then ``mean_average_precision`` (null_size permutations, BH q-values). Its log
  messages are time-stamped, which splits its time into steps.
- ours: ``precompute.evaluation.phenotypic_activity`` (same APs, per-plate ranking, copairs' null).
Like for like: both sides run in this process on the same array, in float64 and in float32 (copairs
accepts both), each warmed up once on one plate and timed --repeats times (best and median), with
the permutation null; per-compound mAPs are compared (max difference) in each dtype.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_activity.py [--plates 1,10,40]

Prints a table and writes benchmarks/results/activity.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._meta import RESULTS, save_result, start_run, timed_runs  # noqa: E402

DTYPES = ("float64", "float32")
PLATE = ROOT.parent / "shared" / "data" / "profiles_jump_moa_scope" / "BR00117060a10x_normalized_feature_select_negcon_plate.csv.gz"


def jump_plates(n_plates: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """(features, wells table) of ``n_plates`` noisy copies of the real JUMP-MOA plate."""
    df = pd.read_csv(PLATE)
    feats = [c for c in df.columns if not c.startswith("Metadata_")]
    x0 = df[feats].to_numpy(np.float64)
    x0 = np.nan_to_num(x0)
    neg = (df["Metadata_control_type"].astype(str) == "negcon").to_numpy()
    rng = np.random.default_rng(seed)
    sd = x0.std(axis=0)
    xs, tables = [], []
    for p in range(n_plates):
        xs.append(x0 + (rng.normal(size=x0.shape) * 0.3 * sd if p else 0))
        tables.append(pd.DataFrame({
            "perturbation_type": np.where(neg, "negative_control", "compound"),
            "perturbation": np.where(neg, "DMSO", df["Metadata_broad_sample"].astype(str)),
            "plate": f"P{p:02d}",
        }))
    return np.vstack(xs).astype(np.float32), pd.concat(tables, ignore_index=True)


class _StepClock(logging.Handler):
    """Turns copairs' 'Doing X...' log lines into seconds per step."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.marks.append((time.perf_counter(), record.getMessage().rstrip(".")))

    def steps(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for (t, msg), (t_next, _) in zip(self.marks, self.marks[1:] + [(end, "")]):
            out[msg] = round(out.get(msg, 0.0) + t_next - t, 3)
        return out


def copairs_path(x: np.ndarray, wells: pd.DataFrame, null_size: int) -> tuple[pd.Series, dict]:
    """copairs' per-compound mAP and its time split by step (from its log lines)."""
    from copairs.map import average_precision, mean_average_precision

    meta = wells.assign(negcon=(wells["perturbation_type"] == "negative_control").astype(int))
    meta["key"] = np.where(meta["negcon"] == 1, [f"ctrl{i}" for i in range(len(meta))], meta["perturbation"])
    clock = _StepClock()
    logger = logging.getLogger("copairs")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(clock)
    propagate, logger.propagate = logger.propagate, False
    try:
        t0 = time.perf_counter()
        ap = average_precision(meta, x, pos_sameby=["key"], pos_diffby=[], neg_sameby=["plate"],
                               neg_diffby=["negcon"], progress_bar=False)
        ap = ap[(ap["negcon"] == 0) & (ap["n_pos_pairs"] > 0) & (ap["n_total_pairs"] > ap["n_pos_pairs"])]
        t_ap = time.perf_counter()
        res = mean_average_precision(ap, sameby=["perturbation"], null_size=null_size, threshold=0.05,
                                     seed=0, progress_bar=False)
        t1 = time.perf_counter()
    finally:
        logger.removeHandler(clock)
        logger.propagate = propagate
        logger.setLevel(level)
    steps = clock.steps(t1)
    steps["(average_precision total)"] = round(t_ap - t0, 3)
    steps["(mean_average_precision total)"] = round(t1 - t_ap, 3)
    return res.set_index("perturbation")["mean_average_precision"], steps


def ours_path(x: np.ndarray, wells: pd.DataFrame, null_size: int) -> pd.Series:
    from precompute.evaluation import phenotypic_activity

    res = phenotypic_activity(x, wells, null_size=null_size)
    return res.set_index("perturbation")["mean_average_precision"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plates", default="1,10,40")
    p.add_argument("--null-size", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, both sides")
    args = p.parse_args(argv)
    meta = start_run(repeats=args.repeats, warmup=1, warmup_what="both sides once on one plate, each dtype")
    logging.basicConfig(level=logging.WARNING)
    rows = []
    x1, w1 = jump_plates(1)
    for dt in DTYPES:  # imports, numba compilation, copairs' first calls: both sides, both dtypes
        copairs_path(x1.astype(dt), w1, 100), ours_path(x1.astype(dt), w1, 100)
    for n in (int(s) for s in args.plates.split(",")):
        x, wells = jump_plates(n)
        for dt in DTYPES:
            xd = x.astype(dt)
            (ref, steps), t_ref = timed_runs(copairs_path, args.repeats, xd, wells, args.null_size)
            got, t_ours = timed_runs(ours_path, args.repeats, xd, wells, args.null_size)
            common = ref.index.intersection(got.index)
            rows.append({"plates": n, "dtype": dt, "wells": len(wells), "features": x.shape[1], "compounds": len(common),
                         "copairs": t_ref, "ours": t_ours,
                         "ratio_best": round(t_ref["best_s"] / t_ours["best_s"], 2),
                         "ratio_median": round(t_ref["median_s"] / t_ours["median_s"], 2),
                         "max_abs_diff_map": float(np.abs(ref.loc[common] - got.loc[common]).max()),
                         "copairs_steps_s_last_run": steps})
            r = rows[-1]
            print(f"{n:>3} plates {r['wells']:>6} wells {dt}: copairs {t_ref['best_s']:>7.2f} s  ours {t_ours['best_s']:>6.2f} s "
                  f"(best of {args.repeats})  x{r['ratio_best']}  max |dmAP| {r['max_abs_diff_map']:.1e}", flush=True)
    save_result(RESULTS / "activity.json", {"rows": rows, "null_size": args.null_size}, meta)
    return {"rows": rows}


if __name__ == "__main__":
    main()
