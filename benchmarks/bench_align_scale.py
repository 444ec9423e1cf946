"""Alignment at screen scale: ours against the field's tools, like for like, same data, same process.

For each size (default 20,000, 200,000 and 1,000,000 wells x 384 dims, 10% controls, one batch
per 40,000 wells and at least 4):
- TVN: ``precompute.align.tvn_on_controls`` vs EFAAR's ``tvn_on_controls`` (efaar-benchmarking 1.0);
- spherize (ZCA-cor, epsilon 1e-6, per batch): ``precompute.align.spherize`` vs pycytominer 1.7.1
  ``normalize(method="spherize")`` called once per batch, as one normalises per plate or batch;
- PCA-TVN (EFAAR's map recipe, the pipeline's default TVN): ``precompute.align_recipe.pca_tvn``
  vs ``efaar.tvn_on_controls(efaar.embed_by_pca(...))`` at the same width.
Like for like: every comparison runs in each input dtype on BOTH sides (float64 vs float64, and
float32 vs float32 -- the references accept float32 input; what they compute in internally is
theirs), with the same warm-up (every function of both sides called once on a small screen in
both dtypes before timing) and the same number of timed repeats; best and median are reported for
both sides, with the largest absolute difference of the two outputs (TVN columns up to sign).
Each size runs in its own child process (a reference that runs out of memory costs only its own
row). ``--large-repeats`` (default: --repeats) applies to both sides above 200,000 wells.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_align_scale.py [--sizes 20000,200000]

Prints a table and writes benchmarks/results/align_scale.json.

``--paired N`` measures only TVN float64 at one size (default 200,000 wells), the like-for-like
row of issue #17, robustly: after a warm-up call of both sides on the full-size screen, N rounds
each time both sides once, interleaved (the order alternating round by round), and each round's
ratio is reference time / ours from that round. The worst round is the figure; per-round times,
ratios and the load average of each round are kept. Writes benchmarks/results/align_tvn_paired.json.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_align_scale.py --paired 5 --sizes 200000
"""

from __future__ import annotations

import argparse
import json
import subprocess
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

DTYPES = ("float64", "float32")
COMPARISONS = ("tvn", "spherize", "pca_tvn")


def screen(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated wells with per-batch shifts and scales; 10% controls."""
    rng = np.random.default_rng(seed)
    n_batches = max(4, n // 40_000)
    batch = rng.integers(0, n_batches, n)
    ctrl = rng.random(n) < 0.1
    x = rng.standard_normal((n, d), dtype=np.float32) @ rng.standard_normal((d, d), dtype=np.float32) * 0.3
    x = x.astype(np.float64)
    x *= rng.uniform(0.7, 1.4, (n_batches, d))[batch]
    x += 2 * rng.normal(size=(n_batches, d))[batch]
    return x, ctrl, np.array([f"b{b:02d}" for b in batch])


def sides(ctrl: np.ndarray, batches: np.ndarray, pca_components: int) -> dict:
    """comparison -> (ours, reference): functions of the input array only."""
    import reference_efaar
    from reference_pycytominer import spherize_per_batch

    from precompute.align import spherize, tvn_on_controls
    from precompute.align_recipe import pca_tvn

    efaar, _ = reference_efaar.load()
    md = pd.DataFrame({"pert": np.where(ctrl, "CTRL", "TRT"), "batch": batches})

    def quiet(fn):
        def call(x):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(x)
        return call

    return {
        "tvn": (lambda x: tvn_on_controls(x, ctrl, batches),
                quiet(lambda x: efaar.tvn_on_controls(x, md, "pert", "CTRL", "batch"))),
        "spherize": (lambda x: spherize(x, ctrl, batches, method="ZCA-cor", epsilon=1e-6),
                     quiet(lambda x: spherize_per_batch(x, ctrl, batches, "ZCA-cor", 1e-6))),
        "pca_tvn": (lambda x: pca_tvn(x, ctrl, batches, n_components=pca_components)[0],
                    quiet(lambda x: efaar.tvn_on_controls(efaar.embed_by_pca(x, md, pca_components, "batch"),
                                                          md, "pert", "CTRL", "batch"))),
    }


def max_diff(ref: np.ndarray, ours: np.ndarray, up_to_sign: bool) -> float:
    ref, ours = np.asarray(ref, np.float64), np.asarray(ours, np.float64)
    if up_to_sign:  # PCA axes have no sign: flip ours column by column to match the reference
        ours = ours * np.sign((ref * ours).sum(axis=0))
    return float(np.abs(ref - ours).max())


def one_size(n: int, d: int, repeats: int) -> dict:
    """Both sides of every comparison at one size, in both dtypes (runs inside the child process)."""
    from precompute.align_recipe import tvn_components

    x, ctrl, batches = screen(n, d)
    x32 = x.astype(np.float32)
    inputs = {"float32": x32, "float64": x32.astype(np.float64)}  # the very same values in both dtypes
    del x
    k = int(tvn_components(ctrl, batches, d))  # the pipeline's default width; the reference gets the same
    row: dict = {"n_wells": n, "dim": d, "n_controls": int(ctrl.sum()), "n_batches": len(np.unique(batches)),
                 "repeats": repeats, "warmup": "every function, both sides, both dtypes, on 2,000 x dim",
                 "pca_tvn_components": k}
    _warm_up(d, k)
    fns = sides(ctrl, batches, k)
    for name in COMPARISONS:
        ours_fn, ref_fn = fns[name]
        for dt in DTYPES:
            key = f"{name}_{dt}"
            ours, t_ours = timed_runs(ours_fn, repeats, inputs[dt])
            row[key] = {"ours": t_ours, "ours_out_dtype": str(np.asarray(ours).dtype)}
            _emit(row)  # what we have so far survives a reference that runs out of memory
            ref, t_ref = timed_runs(ref_fn, repeats, inputs[dt])
            row[key].update(reference=t_ref, reference_out_dtype=str(np.asarray(ref).dtype),
                            ratio_best=round(t_ref["best_s"] / t_ours["best_s"], 2),
                            ratio_median=round(t_ref["median_s"] / t_ours["median_s"], 2),
                            max_abs_diff=max_diff(ref, ours, up_to_sign=name != "spherize"),
                            reference_output_std=float(np.asarray(ref, np.float64).std()))
            del ours, ref
            _emit(row)
    return row


def _warm_up(d: int, k: int) -> None:
    """Pay every import and first-call cost of both sides (scipy.linalg, sklearn, pycytominer) before timing."""
    x, ctrl, b = screen(2000, d, seed=1)
    for ours_fn, ref_fn in sides(ctrl, b, k).values():
        for dt in DTYPES:
            ours_fn(x.astype(dt)), ref_fn(x.astype(dt))


def _emit(row: dict) -> None:
    print("ROW " + json.dumps(row), flush=True)


def run_child(n: int, d: int, repeats: int, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--dim", str(d), "--repeats", str(repeats)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, err, code = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), "", "timeout"
    rows = [json.loads(line[4:]) for line in out.splitlines() if line.startswith("ROW ")]
    row = rows[-1] if rows else {"n_wells": n, "dim": d, "repeats": repeats}
    if code != 0:
        row["incomplete"] = f"child exit {code} (memory or time limit): {err.strip().splitlines()[-1:] or ''}"
    return row


def _fmt(cell: dict | None, side: str) -> str:
    return f"{cell[side]['best_s']:.2f}/{cell[side]['median_s']:.2f}" if cell and side in cell else "-"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20000,200000,1000000")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per size")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, both sides")
    p.add_argument("--large-repeats", type=int, default=None, help="timed repeats above 200,000 wells, both sides")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--paired", type=int, default=0, help="rounds of interleaved TVN float64 runs (see above)")
    args = p.parse_args(argv)
    if args.child:
        return one_size(args.child, args.dim, args.repeats)
    if args.paired:
        return paired_tvn(int(args.sizes.split(",")[0]), args.dim, args.paired)
    large = args.large_repeats or args.repeats
    meta = start_run(repeats=args.repeats, warmup=1, large_repeats=large)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        t0 = time.time()
        rows.append(run_child(n, args.dim, large if n > 200_000 else args.repeats, args.timeout))
        rows[-1]["wall_s"] = round(time.time() - t0, 1)
        rows[-1]["load_after"] = meta_load()
        print(f"-- {n:,} wells done in {rows[-1]['wall_s']} s", flush=True)
    print(f"{'wells':>9} {'comparison':<18} {'ours best/med s':>16} {'ref best/med s':>16} {'ratio':>6} {'max diff':>9}")
    for r in rows:
        for name in COMPARISONS:
            for dt in DTYPES:
                c = r.get(f"{name}_{dt}")
                ratio = f"{c['ratio_best']}" if c and "ratio_best" in c else "-"
                diff = f"{c['max_abs_diff']:.0e}" if c and "max_abs_diff" in c else "-"
                print(f"{r['n_wells']:>9} {name + ' ' + dt:<18} {_fmt(c, 'ours'):>16} {_fmt(c, 'reference'):>16} {ratio:>6} {diff:>9}")
        if "incomplete" in r:
            print(f"          ({r['incomplete']})")
    from importlib.metadata import version

    result = {"references": {"tvn": f"efaar-benchmarking {version('efaar-benchmarking')} tvn_on_controls",
                             "spherize": f"pycytominer {version('pycytominer')} normalize(method='spherize') per batch",
                             "pca_tvn": "efaar-benchmarking embed_by_pca + tvn_on_controls"},
              "rows": rows}
    save_result(RESULTS / "align_scale.json", result, meta)
    return result


def paired_tvn(n: int, d: int, rounds: int) -> dict:
    """TVN float64, ours vs EFAAR, ``rounds`` interleaved pairs after a full-size warm-up of both."""
    import os

    meta = start_run(repeats=rounds, warmup=1, note="paired interleaved rounds; ratio per round = reference / ours")
    x, ctrl, batches = screen(n, d)
    x = x.astype(np.float32).astype(np.float64)  # the same values as the float32 rows of the main table
    ours_fn, ref_fn = sides(ctrl, batches, 2)["tvn"]
    ours, ref = ours_fn(x), ref_fn(x)  # warm-up at full size: imports, first calls, page faults
    diff = max_diff(ref, ours, up_to_sign=True)
    del ours, ref
    runs = []
    for r in range(rounds):
        order = (("ours", ours_fn), ("reference", ref_fn)) if r % 2 == 0 else (("reference", ref_fn), ("ours", ours_fn))
        row: dict = {"first": order[0][0], "load_before": round(os.getloadavg()[0], 2)}
        for side, fn in order:
            t0 = time.perf_counter()
            fn(x)
            row[f"{side}_s"] = round(time.perf_counter() - t0, 3)
        row["ratio"] = round(row["reference_s"] / row["ours_s"], 2)
        row["load_after"] = round(os.getloadavg()[0], 2)
        runs.append(row)
        print(f"round {r + 1}: ours {row['ours_s']:.2f} s, reference {row['reference_s']:.2f} s, "
              f"ratio {row['ratio']:.2f} (load {row['load_before']} -> {row['load_after']})", flush=True)
    ratios = [r["ratio"] for r in runs]
    result = {"comparison": "tvn_on_controls float64: ours vs efaar-benchmarking tvn_on_controls",
              "n_wells": n, "dim": d, "n_controls": int(ctrl.sum()), "n_batches": len(np.unique(batches)),
              "max_abs_diff": diff, "rounds": runs, "ratio_worst": min(ratios),
              "ratio_median": float(np.median(ratios)), "target_worst_at_least": 5.0}
    print(f"worst ratio {min(ratios):.2f}, median {np.median(ratios):.2f}, max abs diff {diff:.1e}")
    save_result(RESULTS / "align_tvn_paired.json", result, meta)
    return result


def meta_load() -> list[float]:
    from benchmarks._meta import load

    return load()


if __name__ == "__main__":
    main()
