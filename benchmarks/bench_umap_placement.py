"""UMAP fitted on part of a sample and the rest placed, against a full fit on the whole sample.

The project stage fits umap-learn on a seeded subset and places every other point at the
membership-weighted mean of its fitted neighbours (precompute/projection.py). This checks what
that costs in map quality on real-size data: a 100,000-well subset of the million-well store's
raw embeddings (PCA to 50 as the stage does) is mapped (a) by a full umap-learn fit on all
100,000 points and (b) by the stage's route with a smaller fit (``--fit-sizes``), and both are
scored by neighbour preservation: for each of ``--eval`` random points, the fraction of its k=15
nearest neighbours in the 50-D space (cosine, exact) that are among its 15 nearest on the 2-D map
(euclidean, exact). Placed points and fitted points are also scored separately.

Routes: ``--fit-sizes`` (the stage's route with a fit on that many and the rest placed; a fit
above 2 x init_sample points itself starts from a placed layout) and ``--laid-out`` (the stage's
fit of the whole subset: a plain fit on ``init_sample`` points, the rest placed, then the full
fit from that layout, precompute.projection._fit).

The full fit (spectral initialisation, 10-16 minutes at 100,000 on this machine) is cached under
var/cache/umap_placement/ keyed by store, subset, seed and k, and reused when present;
``--skip-full`` compares with the full-fit score recorded in a previous result file instead
(same store, subset, seed, eval and k: the same points and the same seeded fit).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_umap_placement.py [--fit-sizes 25000,50000]
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_umap_placement.py --fit-sizes "" --laid-out \
        --skip-full benchmarks/results/umap_placement.json

Writes benchmarks/results/umap_placement.json.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402


def neighbour_preservation(high_nn: np.ndarray, emb2d: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``rows``: |kNN in high-dim ∩ kNN on the map| / k (self excluded on both sides)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1).fit(emb2d)
    _, low = nn.kneighbors(emb2d[rows])
    low = [set(r[r != q][:k]) for r, q in zip(low, rows, strict=True)]
    return np.array([len(lo & set(hi)) / k for lo, hi in zip(low, high_nn, strict=True)])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(ROOT / "var/store/million"))
    p.add_argument("--subset", type=int, default=100_000)
    p.add_argument("--fit-sizes", default="25000,50000")
    p.add_argument("--eval", type=int, default=10_000)
    p.add_argument("--k", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--laid-out", action="store_true", help="also the whole-subset fit from a placed layout")
    p.add_argument("--init-sample", type=int, default=None, help="points fitted plainly for the layout")
    p.add_argument("--laid-out-epochs", default=None,
                   help="comma-separated epoch counts for the fit from the layout (default: the stage's)")
    p.add_argument("--skip-full", default=None, help="result file whose full-fit score to reuse")
    args = p.parse_args(argv)
    import umap

    from precompute.artifacts import ArtifactStore
    from precompute.projection import INIT_SAMPLE, LAID_OUT_EPOCHS, _fit, _pcs, umap_2d
    from precompute.relate import top_k_neighbours

    meta = start_run(repeats=1, warmup=0, note="one fit per route; single-threaded UMAP (seeded)")
    store = ArtifactStore(Path(args.store), create=False)
    embed_key = next(r["key"] for r in store.get_run("default")["reports"] if r["stage"] == "embed")
    emb = store.open_stage("embed", embed_key).array("embeddings", mmap=True)
    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(len(emb), size=min(args.subset, len(emb)), replace=False))
    x = _pcs(np.asarray(emb[subset]), 50, args.subset, args.seed)  # the stage's PCA, on the subset
    n = len(x)
    eval_rows = np.sort(rng.choice(n, size=min(args.eval, n), replace=False))
    high = top_k_neighbours(x, args.k, queries=eval_rows)["top_idx"]
    result: dict = {"store": args.store, "n_subset": n, "dim": int(x.shape[1]), "k": args.k,
                    "n_eval": int(eval_rows.size), "metric": "mean fraction of the k nearest (50-D cosine) kept "
                    "among the k nearest on the 2-D map (euclidean)", "routes": []}

    full_score = None
    cache = ROOT / "var/cache/umap_placement" / f"full_{Path(args.store).name}_{n}_{args.seed}_{args.k}.npy"
    if cache.exists():
        full = np.load(cache)
        full_score = neighbour_preservation(high, full, eval_rows, args.k)
        result["routes"].append({"route": f"full fit on {n}", "seconds": None, "cached": str(cache),
                                 "preservation": round(float(full_score.mean()), 4)})
    elif args.skip_full:
        import json

        prev = json.loads(Path(args.skip_full).read_text())
        same = all(prev.get(key) == result[key] for key in ("store", "n_subset", "k", "n_eval"))
        prev_argv = prev["meta"].get("argv", [])
        prev_seed = int(prev_argv[prev_argv.index("--seed") + 1]) if "--seed" in prev_argv else 0
        if not same or prev_seed != args.seed:
            raise SystemExit(f"{args.skip_full} was measured on other points; run the full fit")
        rec = next(r for r in prev["routes"] if r["route"].startswith("full fit"))
        full_mean = rec["preservation"]
        result["routes"].append({**rec, "reused_from": f"{args.skip_full} ({prev['meta'].get('started')}, "
                                 f"commit {prev['meta'].get('commit', '')[:10]})"})
        print(f"full fit: reusing the recorded score {full_mean}", flush=True)
    else:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = umap.UMAP(n_neighbors=args.k, min_dist=0.3, metric="cosine",
                             random_state=args.seed).fit_transform(x)
        full_s = time.perf_counter() - t0
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, full)
        full_score = neighbour_preservation(high, full, eval_rows, args.k)
        result["routes"].append({"route": f"full fit on {n}", "seconds": round(full_s, 1),
                                 "preservation": round(float(full_score.mean()), 4)})
        print(f"full fit on {n}: {full_s:.0f} s, preservation {full_score.mean():.4f}", flush=True)
    if full_score is not None:
        full_mean = float(full_score.mean())
    epoch_counts = [int(e) for e in (args.laid_out_epochs or str(LAID_OUT_EPOCHS)).split(",") if e]
    for epochs in epoch_counts if args.laid_out else []:
        init_sample = args.init_sample or INIT_SAMPLE
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            laid = _fit(x, n_neighbors=args.k, min_dist=0.3, metric="cosine", seed=args.seed,
                        init_sample=init_sample, laid_out_epochs=epochs).embedding_
        secs = time.perf_counter() - t0
        score = neighbour_preservation(high, laid, eval_rows, args.k)
        row = {"route": f"fit on {init_sample}, place {n - init_sample}, then the full fit from that layout"
                        f" ({epochs} epochs)", "laid_out_epochs": epochs, "stage_default": epochs == LAID_OUT_EPOCHS,
               "seconds": round(secs, 1), "preservation": round(float(score.mean()), 4),
               "relative_to_full_fit": round(float(score.mean() / full_mean), 4)}
        row["within_2_percent"] = bool(row["relative_to_full_fit"] >= 0.98)
        result["routes"].append(row)
        print(row, flush=True)
    for m in (int(s) for s in args.fit_sizes.split(",") if s):
        t0 = time.perf_counter()
        placed_map = umap_2d(x, n_neighbors=args.k, sample=m, seed=args.seed)
        secs = time.perf_counter() - t0
        fitted = np.zeros(n, dtype=bool)
        fitted[np.sort(np.random.default_rng(args.seed).choice(n, size=m, replace=False))] = True  # umap_2d's sample
        score = neighbour_preservation(high, placed_map, eval_rows, args.k)
        placed = ~fitted[eval_rows]
        row = {"route": f"fit on {m}, place {n - m}", "seconds": round(secs, 1),
               "preservation": round(float(score.mean()), 4),
               "preservation_placed_points": round(float(score[placed].mean()), 4),
               "full_fit_same_points": None if full_score is None else round(float(full_score[placed].mean()), 4),
               "preservation_fitted_points": round(float(score[~placed].mean()), 4),
               "relative_to_full_fit": round(float(score.mean() / full_mean), 4)}
        row["within_2_percent"] = bool(row["relative_to_full_fit"] >= 0.98)
        result["routes"].append(row)
        print(row, flush=True)
    save_result(RESULTS / "umap_placement.json", result, meta)
    return result


if __name__ == "__main__":
    main()
