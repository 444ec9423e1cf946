"""Time relationship recall (ours vs the EFAAR reference) and the single-query neighbour path.

- relationship_recall on --genes genes (default 5,000, drawn from the annotation universe) x 384
  against all five real annotation sources, vs efaar_benchmarking 1.0
  ``known_relationship_benchmark`` (which builds a dense genes x genes DataFrame); recalls compared.
- relationship_recall alone at --big-genes (default 17,000; gene labels beyond the annotation
  universe are synthetic) -- the whole-genome case the reference cannot hold comfortably.
- relate.neighbours_of on --nn-n rows (default 100,000 x 384 float32): median / p95 ms per query.

Prints a table and writes benchmarks/results/recall.json.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_recall.py [--genes 5000 --big-genes 17000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from precompute.evaluate import relationship_recall  # noqa: E402
from precompute.relate import l2_normalise, neighbours_of  # noqa: E402

ANNOT = Path("/work/shared/data/relationship_annotations")
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


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genes", type=int, default=5000)
    p.add_argument("--big-genes", type=int, default=17000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--nn-n", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--no-reference", action="store_true")
    args = p.parse_args(argv)
    pairs = load_pairs()
    result: dict = {}

    genes, x = gene_map(pairs, args.genes, args.dim)
    t = time.perf_counter()
    ours = relationship_recall(x, genes, pairs)
    ours_s = time.perf_counter() - t
    result["recall"] = {
        "n_genes": args.genes,
        "dim": args.dim,
        "ours_s": round(ours_s, 2),
        "recall": dict(zip(ours["source"], ours["recall"].round(4), strict=True)),
    }
    if not args.no_reference:
        import reference_efaar
        from sklearn.utils import Bunch

        _, bench = reference_efaar.load()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = bench.known_relationship_benchmark(
                Bunch(features=pd.DataFrame(x), metadata=pd.DataFrame({"gene": genes})),
                "gene",
                benchmark_sources=SOURCES,
                recall_thr_pairs=[(0.05, 0.95)],
                benchmark_data_dir=str(ANNOT),
            )
        ref_s = time.perf_counter() - t
        diff = np.abs(ref.set_index("source")["recall_0.05_0.95"] - ours.set_index("source")["recall"]).max()
        result["recall"].update(
            reference_s=round(ref_s, 2), speedup=round(ref_s / ours_s, 1), max_recall_diff=float(diff)
        )

    big_genes, big_x = gene_map(pairs, args.big_genes, args.dim, seed=1)
    t = time.perf_counter()
    relationship_recall(big_x, big_genes, pairs)
    result["recall_big"] = {
        "n_genes": args.big_genes,
        "dim": args.dim,
        "ours_s": round(time.perf_counter() - t, 2),
        "null_pairs": args.big_genes * (args.big_genes - 1) // 2,
    }
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
    result["env"] = {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }

    r = result["recall"]
    print(f"{'step':<36}{'ours':>10}{'reference':>12}{'speedup':>9}")
    print(
        f"{'recall ' + str(args.genes) + ' genes (s)':<36}{r['ours_s']:>10}{r.get('reference_s', '-'):>12}{r.get('speedup', '-'):>9}"
    )
    print(f"{'recall ' + str(args.big_genes) + ' genes (s)':<36}{result['recall_big']['ours_s']:>10}")
    nn = result["neighbours_of"]
    print(f"{'neighbours_of ' + str(args.nn_n) + ' median/p95 (ms)':<36}{nn['median_ms']:>10} / {nn['p95_ms']}")
    out = ROOT / "benchmarks" / "results" / "recall.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
