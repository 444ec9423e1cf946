"""Phenotypic activity (mAP against DMSO) at JUMP plate scale: copairs' own path vs ours, where time goes.

Data: the real JUMP-MOA plate in ../shared/data (384 wells, 90 compounds x 4 replicates, DMSO, 357
features), and copies of it standing in for a JUMP batch of 10 and 40 plates (each copy gets its own
plate label and noise of 0.3 feature-std, so replicates span plates as in JUMP).

- copairs 0.5: ``copairs.map.average_precision`` (positives: same compound; negatives: DMSO of the
  query's plate) then ``mean_average_precision`` (null_size permutations, BH q-values). Its log
  messages are time-stamped, which splits its time into steps.
- ours: ``precompute.evaluate.phenotypic_activity`` (same APs, per-plate ranking, copairs' null),
  timed with and without the permutation null.
Both run in this process on the same arrays; per-compound mAPs are compared.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_activity.py [--plates 1,10,40]

Prints a table and writes benchmarks/results/activity.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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


def copairs_path(x: np.ndarray, wells: pd.DataFrame, null_size: int) -> tuple[pd.Series, float, dict]:
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
    return res.set_index("perturbation")["mean_average_precision"], t1 - t0, steps


def ours_path(x: np.ndarray, wells: pd.DataFrame, null_size: int) -> tuple[pd.Series, float, float]:
    from precompute.evaluate import phenotypic_activity

    t0 = time.perf_counter()
    phenotypic_activity(x, wells, null_size=0)
    t_ap = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = phenotypic_activity(x, wells, null_size=null_size)
    return res.set_index("perturbation")["mean_average_precision"], time.perf_counter() - t0, t_ap


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plates", default="1,10,40")
    p.add_argument("--null-size", type=int, default=10_000)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = []
    ours_path(*jump_plates(1), null_size=100)  # warm up imports and numba/copairs first calls
    for n in (int(s) for s in args.plates.split(",")):
        x, wells = jump_plates(n)
        ref, ref_s, steps = copairs_path(x, wells, args.null_size)
        got, ours_s, ours_ap_s = ours_path(x, wells, args.null_size)
        common = ref.index.intersection(got.index)
        rows.append({"plates": n, "wells": len(wells), "features": x.shape[1], "compounds": len(common),
                     "copairs_s": round(ref_s, 2), "ours_s": round(ours_s, 2), "ours_ap_only_s": round(ours_ap_s, 2),
                     "speedup": round(ref_s / ours_s, 1),
                     "max_abs_diff_map": float(np.abs(ref.loc[common] - got.loc[common]).max()),
                     "copairs_steps_s": steps})
        r = rows[-1]
        print(f"{n:>3} plates {r['wells']:>6} wells: copairs {r['copairs_s']:>7} s  ours {r['ours_s']:>6} s "
              f"(AP only {r['ours_ap_only_s']} s)  x{r['speedup']}  max |dmAP| {r['max_abs_diff_map']:.1e}")
        for step, sec in steps.items():
            print(f"      copairs {step:<45} {sec:>8.3f} s")
    result = {"rows": rows, "null_size": args.null_size, "env": {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
        "load_avg": [round(v, 2) for v in os.getloadavg()], "copairs": version("copairs"), "numpy": np.__version__,
        "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}}
    (ROOT / "benchmarks" / "results" / "activity.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
