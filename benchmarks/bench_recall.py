"""Time relationship recall (ours vs the EFAAR reference) and the single-query neighbour path.

- relationship_recall on --genes genes (default 17,000, RxRx3's size: the annotation universe,
  then synthetic labels) x 384 float32 against all five real annotation sources, vs
  efaar_benchmarking 1.0 ``known_relationship_benchmark`` (which builds a dense genes x genes
  DataFrame) on the same float32 matrix; recalls compared. Both sides are warmed up once on 500
  genes and timed --repeats times (best and median).
- relationship_recall alone at --big-genes (default 0: skipped), ours only.
- relate.neighbours_of on --nn-n rows (default 100,000 x 384 float32): median / p95 ms per query.

Prints a table and writes benchmarks/results/recall.json.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_recall.py [--genes 5000 --big-genes 17000]
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
from precompute.evaluation import relationship_recall  # noqa: E402
from precompute.readers.common import shared_data_dir  # noqa: E402
from precompute.relate import l2_normalise, neighbours_of  # noqa: E402

ANNOT = shared_data_dir() / "relationship_annotations"
SOURCES = ["CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB"]


def load_pairs() -> pd.DataFrame:
    return pd.concat([pd.read_csv(ANNOT / f"{s}.txt").assign(source=s) for s in SOURCES], ignore_index=True)


def gene_map(pairs: pd.DataFrame, n: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    universe = np.array(sorted(set(pairs["entity1"]) | set(pairs["entity2"])))
    if n <= len(universe):
        genes = rng.choice(universe, n, replace=False)
    else:
        genes = np.concatenate([universe, [f"SYN{i:05d}" for i in range(n - len(universe))]])
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return genes, x


def reference_recall(x: np.ndarray, genes: np.ndarray) -> pd.DataFrame:
    import reference_efaar
    from sklearn.utils import Bunch

    _, bench = reference_efaar.load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bench.known_relationship_benchmark(
            Bunch(features=pd.DataFrame(x), metadata=pd.DataFrame({"gene": genes})), "gene",
            benchmark_sources=SOURCES, recall_thr_pairs=[(0.05, 0.95)], benchmark_data_dir=str(ANNOT))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genes", type=int, default=17000)
    p.add_argument("--big-genes", type=int, default=0)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--nn-n", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, both sides")
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--dtypes", default="float32", help="comma-separated: float32 and/or float64, both sides alike")
    p.add_argument("--out", type=Path, default=RESULTS / "recall.json")
    args = p.parse_args(argv)
    meta = start_run(repeats=args.repeats, warmup=1, warmup_what="both sides once on 500 genes")
    pairs = load_pairs()
    result: dict = {}

    genes, x32 = gene_map(pairs, args.genes, args.dim)
    small_genes, small_x = gene_map(pairs, 500, args.dim, seed=5)
    for dtype in args.dtypes.split(","):
        # float32 keeps the key 'recall' (the README's first row); other dtypes get 'recall_<dtype>'.
        key = "recall" if dtype == "float32" else f"recall_{dtype}"
        x, sx = x32.astype(dtype), small_x.astype(dtype)
        relationship_recall(sx, small_genes, pairs)
        ours, t_ours = timed_runs(relationship_recall, args.repeats, x, genes, pairs)
        result[key] = {
            "n_genes": args.genes,
            "dim": args.dim,
            "dtype": str(x.dtype),
            "repeats": args.repeats,
            "ours": t_ours,
            "recall": dict(zip(ours["source"], ours["recall"].round(4), strict=True)),
        }
        if not args.no_reference:
            reference_recall(sx, small_genes)
            ref, t_ref = timed_runs(reference_recall, args.repeats, x, genes)
            diff = np.abs(ref.set_index("source")["recall_0.05_0.95"] - ours.set_index("source")["recall"]).max()
            result[key].update(reference=t_ref, ratio_best=round(t_ref["best_s"] / t_ours["best_s"], 2),
                               ratio_median=round(t_ref["median_s"] / t_ours["median_s"], 2),
                               max_recall_diff=float(diff))
            del ref
        del x

    if args.big_genes:
        big_genes, big_x = gene_map(pairs, args.big_genes, args.dim, seed=1)
        _, t_big = timed_runs(relationship_recall, args.repeats, big_x, big_genes, pairs)
        result["recall_big"] = {"n_genes": args.big_genes, "dim": args.dim, "ours": t_big,
                                "null_pairs": args.big_genes * (args.big_genes - 1) // 2}
        del big_x

    emb = l2_normalise(np.random.default_rng(2).normal(size=(args.nn_n, args.dim)).astype(np.float32))
    for q in range(5):
        neighbours_of(emb, q, 20)  # warm caches and BLAS threads
    times = []
    for q in np.random.default_rng(3).integers(0, args.nn_n, args.queries):
        t = time.perf_counter()
        neighbours_of(emb, int(q), 20)
        times.append((time.perf_counter() - t) * 1e3)
    result["neighbours_of"] = {
        "n": args.nn_n,
        "dim": args.dim,
        "k": 20,
        "median_ms": round(float(np.median(times)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "min_ms": round(float(np.min(times)), 2),
        "target_ms": 20,
    }
    r = result.get("recall") or next(v for k, v in result.items() if k.startswith("recall_"))
    ref_best = r["reference"]["best_s"] if "reference" in r else "-"
    print(f"{'step':<36}{'ours best s':>12}{'reference':>12}{'ratio':>8}")
    print(f"{'recall ' + str(args.genes) + ' genes':<36}{r['ours']['best_s']:>12}{ref_best:>12}{r.get('ratio_best', '-'):>8}")
    nn = result["neighbours_of"]
    print(f"{'neighbours_of ' + str(args.nn_n) + ' median/p95 (ms)':<36}{nn['median_ms']:>10} / {nn['p95_ms']}")
    save_result(args.out, result, meta)
    return result


if __name__ == "__main__":
    main()
