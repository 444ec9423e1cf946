"""The relate stage's exact neighbour lists at the million-well store's 33,405 perturbations, new
against the previous implementation, side by side in one process on the same arrays.

Both sides compute the same float32 similarity blocks (4,096 rows); the previous one then ran two
``argpartition`` per block (tests/test_relate.py keeps it as ``argpartition_top_k``), the current
one scans each row once in numba (precompute/topk_select.py). Runs alternate (old, new, old, new,
...) so machine load hits both alike; the ratio per pair and its worst are reported, with whether
the lists are identical.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_topk.py [--repeats 3]

Writes benchmarks/results/relate_topk.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(ROOT / "var/store/million"))
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    from test_relate import argpartition_top_k

    from precompute.artifacts import ArtifactStore
    from precompute.relate import top_k_neighbours

    store = ArtifactStore(Path(args.store), create=False)
    key = next(r["key"] for r in store.get_run("default")["reports"] if r["stage"] == "aggregate")
    unit = store.open_stage("aggregate", key).array("unit_embeddings", mmap=False)
    meta = start_run(repeats=args.repeats, warmup=1, note="old and new alternate; numba compiled before timing")
    top_k_neighbours(unit[:1000], args.k)  # numba compile, not timed
    pairs, same = [], True
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        old = argpartition_top_k(unit, args.k, block_rows=4096)
        t_old = time.perf_counter() - t0
        t0 = time.perf_counter()
        new = top_k_neighbours(unit, args.k)
        t_new = time.perf_counter() - t0
        pairs.append({"old_s": round(t_old, 2), "new_s": round(t_new, 2), "ratio": round(t_old / t_new, 2)})
        print(pairs[-1], flush=True)
        same = same and all(np.array_equal(old[n], new[n]) for n in ("top_sim", "bottom_sim"))
        rows_differ = int((old["top_idx"] != new["top_idx"]).any(axis=1).sum()
                          + (old["bottom_idx"] != new["bottom_idx"]).any(axis=1).sum())
    result = {"n": int(len(unit)), "dim": int(unit.shape[1]), "k": args.k, "pairs": pairs,
              "worst_ratio": min(p["ratio"] for p in pairs), "similarities_identical": bool(same),
              "rows_with_other_lists": rows_differ,
              "note": "rows_with_other_lists: exact ties at the k-th place, now given to the lower index"}
    save_result(RESULTS / "relate_topk.json", result, meta)
    return result


if __name__ == "__main__":
    main()
