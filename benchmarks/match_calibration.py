"""Is match significance calibrated? Measured on the synthetic screen, whose truth is known.

    .venv/bin/python benchmarks/match_calibration.py [--store var/store/demo] [--run default]

For every embedder of the store's run, on the primary alignment (what the neighbour lists show):
- null uniformity: pairs in which one member has no phenotype by construction (a gene whose
  knockout does nothing or whose guides are all dead, an inactive ORF, an inactive non-toxic
  compound at any dose, a negative control): the fraction of p < 0.05, for the directed test the
  pair's p rests on (that member's profile on its partner's direction; should be 0.05) and for the
  pair's p (the larger of both directions; at most 0.05), each with its binomial standard error;
- FDR: of the pairs called at q < 0.05, the fraction with a no-phenotype member, over all pairs
  and over the pairs the stored top-k neighbour lists show;
- power: the fraction of true complex pairs and compound-target pairs (both members with a
  phenotype) called at q < 0.05.
Writes benchmarks/results/match_calibration.json. Method: precompute/significance.py and
docs/significance.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402
from precompute import significance as sig  # noqa: E402
from precompute.artifacts import ArtifactStore  # noqa: E402


def no_phenotype(entities: pd.DataFrame, truth: Path) -> np.ndarray:
    """True where the generator gave the entity no phenotype at all."""
    genes = pd.read_csv(truth / "genes.csv")
    guides = pd.read_csv(truth / "guides.csv")
    orfs = pd.read_csv(truth / "orfs.csv")
    cpds = pd.read_csv(truth / "compounds.csv")
    all_dead = guides.groupby("gene")["efficiency"].max() < 0.1
    has = {("crispr", g): bool(a) and not bool(all_dead.get(g, False)) for g, a in zip(genes["gene"], genes["active"])}
    has |= {("orf", g): bool(a) for g, a in zip(orfs["gene"], orfs["active"])}
    has |= {("compound", c): bool(a) or pd.notna(t) for c, a, t in zip(cpds["compound"], cpds["active"], cpds["toxic_um"])}
    has |= {("positive_control", p): True for p in entities["perturbation"]}
    return np.array([not has.get((t, p), False) for t, p in zip(entities["perturbation_type"], entities["perturbation"])])


def true_pairs(entities: pd.DataFrame, truth: Path, silent: np.ndarray) -> dict[str, set[tuple[int, int]]]:
    pooled = {(t, p): i for i, (t, p, lev) in enumerate(zip(entities["perturbation_type"], entities["perturbation"],
                                                            entities["level"])) if lev == "pooled"}

    def pairs(rows, kind1, kind2) -> set[tuple[int, int]]:
        out = set()
        for x, y in rows:
            i, j = pooled.get((kind1, x)), pooled.get((kind2, y))
            if i is not None and j is not None and not silent[i] and not silent[j]:
                out.add((min(i, j), max(i, j)))
        return out

    rel = pd.read_csv(truth / "relationships.csv")
    cx = rel[rel["source"] == "synthetic_complex"]
    ct = pd.read_csv(truth / "compound_targets.csv")
    return {"complex": pairs(zip(cx["entity1"], cx["entity2"]), "crispr", "crispr"),
            "compound_target": pairs(zip(ct["compound"], ct["gene"]), "compound", "crispr")}


def frac_below(p: np.ndarray, level: float = 0.05) -> dict:
    n = int(p.size)
    return {"n": n, "fraction_below_0.05": float((p < level).mean()) if n else None,
            "binomial_se": float(np.sqrt(level * (1 - level) / n)) if n else None}


def family_p_values(store: ArtifactStore, run: dict, embedder: str, seed: int) -> dict:
    """Null and family of one embedder on the primary alignment; every family pair's p."""
    keys = run["stages"]
    wells = store.open_stage("ingest", keys["ingest"]).table("wells")
    agg = store.open_stage("aggregate", keys["aggregate"][embedder])
    entities = agg.table("perturbations")
    unit = np.asarray(agg.array("unit_embeddings", mmap=False))
    means = np.asarray(agg.array("embeddings", mmap=False))
    aligned = np.asarray(store.open_stage("align", keys["align"][embedder][run["config"]["primary_align"]])
                         .array("embeddings", mmap=False))
    ctrl = (wells["perturbation_type"].astype(str) == "negative_control").to_numpy()
    t0 = time.perf_counter()
    null = sig.match_null(unit, aligned, wells, entities, ctrl, seed=seed)
    fam = sig.pair_family(unit, means, entities, null)
    seconds = time.perf_counter() - t0
    a, b = sig.family_pairs(entities)
    return {"entities": entities, "unit": unit, "means": means, "null": null, "fam": fam, "seconds": seconds,
            "a": a, "b": b, "p": sig.pair_pvalue(unit, means, a, b, null), "align": run["config"]["primary_align"]}


def calibrate(store: ArtifactStore, run: dict, embedder: str, seed: int) -> dict:
    t = family_p_values(store, run, embedder, seed)
    keys, align = run["stages"], t["align"]
    entities, unit, means, null, fam, seconds = (t[k] for k in ("entities", "unit", "means", "null", "fam", "seconds"))
    a, b, p = t["a"], t["b"], t["p"]
    q = fam.qvalue(p)
    truth = Path(run["screen"]["path"]) / "ground_truth"
    silent = no_phenotype(entities, truth)
    one = silent[a] | silent[b]
    # The directed test the pair's p rests on: the silent member's profile on its partner's direction.
    qa, tb = np.where(silent[b], a, b), np.where(silent[b], b, a)
    directed = sig.directed_pvalue(np.einsum("ij,ij->i", unit[qa[one]], means[tb[one]]), qa[one], tb[one], null)
    called = q < 0.05
    row_of = {pr: i for i, pr in enumerate(zip(a.tolist(), b.tolist()))}
    shown = set()
    if "relate" in keys and embedder in keys["relate"]:
        top = np.asarray(store.open_stage("relate", keys["relate"][embedder]).array("neighbours_top_idx", mmap=False))
        for i, row in enumerate(top):
            for j in row:
                k = row_of.get((min(i, int(j)), max(i, int(j))))
                if k is not None:
                    shown.add(k)
    shown_idx = np.array(sorted(shown), dtype=np.int64)
    power = {}
    for name, pairs in true_pairs(entities, truth, silent).items():
        idx = [row_of[pr] for pr in pairs if pr in row_of]
        power[name] = {"n_pairs": len(idx), "fraction_called": float(called[idx].mean()) if idx else None}

    def fdr(mask: np.ndarray) -> dict:
        n = int(mask.sum())
        return {"n_called": n, "n_false": int((mask & one).sum()),
                "false_fraction": float((mask & one).sum() / n) if n else None,
                "binomial_se": float(np.sqrt(0.05 * 0.95 / n)) if n else None}

    shown_mask = np.zeros(p.size, dtype=bool)
    shown_mask[shown_idx] = True
    return {"embedder": embedder, "space": align, "n_entities": int(len(entities)), "n_family_pairs": fam.size,
            "null": "closed form", "seconds": round(seconds, 2),
            "inflation_median": float(np.median(null.scale.astype(np.float64) ** 2)),
            "null_directed": frac_below(directed), "null_pair": frac_below(p[one]),
            "fdr_all_pairs": fdr(called), "fdr_shown_neighbours": fdr(called & shown_mask),
            "n_shown_pairs": int(shown_idx.size), "power": power}


def calibrate_real(store: ArtifactStore, run: dict, embedder: str, seed: int) -> dict:
    """The real screen has no truth; proxies. Null: pairs with the DMSO entity (its profile is the
    controls' own mean, so p should be uniform there). False-call proxy: the fraction of calls at
    q < 0.05 that involve DMSO (a lower bound on false calls). Power proxy: the fraction of pooled
    compound pairs sharing an annotated mechanism of action called, against pairs of annotated
    compounds with different MOAs (a same-MOA pair need not look alike, so this is a floor)."""
    t = family_p_values(store, run, embedder, seed)
    align, entities, fam, seconds = t["align"], t["entities"], t["fam"], t["seconds"]
    a, b, p = t["a"], t["b"], t["p"]
    called = fam.qvalue(p) < 0.05
    dmso = (entities["perturbation_type"].astype(str) == "negative_control").to_numpy()
    with_dmso = dmso[a] | dmso[b]
    moa_table = pd.read_csv(Path(run["screen"]["path"]) / "ground_truth" / "compound_moa.csv")
    moas = moa_table.groupby("compound")["moa"].agg(lambda m: set(m.astype(str)))
    pooled = ((entities["perturbation_type"] == "compound") & (entities["level"] == "pooled")).to_numpy()
    ent_moa = [moas.get(str(n), set()) if pooled[i] else set() for i, n in enumerate(entities["perturbation"])]
    both = np.array([bool(ent_moa[i]) and bool(ent_moa[j]) for i, j in zip(a, b)])
    same = np.array([bool(ent_moa[i] & ent_moa[j]) for i, j in zip(a, b)]) & both
    n_called = int(called.sum())
    return {"embedder": embedder, "space": align, "n_entities": int(len(entities)), "n_family_pairs": fam.size,
            "null": "closed form", "seconds": round(seconds, 2),
            "null_dmso_pair": frac_below(p[with_dmso]),
            "calls": n_called, "calls_with_dmso": int((called & with_dmso).sum()),
            "dmso_fraction_of_calls": float((called & with_dmso).sum() / n_called) if n_called else None,
            "power_proxy": {"same_moa": {"n_pairs": int(same.sum()), "fraction_called": float(called[same].mean()) if same.any() else None},
                            "different_moa": {"n_pairs": int((both & ~same).sum()),
                                              "fraction_called": float(called[both & ~same].mean()) if (both & ~same).any() else None}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=Path(os.environ.get("PHENOMIX_HOME", REPO / "var")) / "store" / "demo")
    ap.add_argument("--run", default="default")
    ap.add_argument("--real", type=Path, default=Path(os.environ.get("PHENOMIX_HOME", REPO / "var")) / "store" / "real",
                    help="the real screen's store (proxies, no truth); skipped when it has no run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    meta = start_run(repeats=1)
    store = ArtifactStore(args.store, create=False)
    run = store.get_run(args.run)
    rows = [calibrate(store, run, e, args.seed) for e in run["stages"]["aggregate"]]
    for r in rows:
        print(f"{r['embedder']:>11} {r['space']}: null directed {r['null_directed']['fraction_below_0.05']:.3f}"
              f" pair {r['null_pair']['fraction_below_0.05']:.3f} (n={r['null_pair']['n']});"
              f" calls {r['fdr_all_pairs']['n_called']}, false {r['fdr_all_pairs']['false_fraction']};"
              f" shown calls {r['fdr_shown_neighbours']['n_called']}, false {r['fdr_shown_neighbours']['false_fraction']};"
              f" power complex {r['power']['complex']['fraction_called']}"
              f" compound-target {r['power']['compound_target']['fraction_called']}; {r['seconds']} s")
    real = []
    if (args.real / "runs" / f"{args.run}.json").exists():
        rstore = ArtifactStore(args.real, create=False)
        rrun = rstore.get_run(args.run)
        real = [calibrate_real(rstore, rrun, rrun["primary"]["embedder"], args.seed)]
        for r in real:
            print(f"real {r['embedder']}: DMSO pairs p < 0.05 {r['null_dmso_pair']['fraction_below_0.05']:.3f}"
                  f" (n={r['null_dmso_pair']['n']}); calls {r['calls']}, with DMSO {r['calls_with_dmso']};"
                  f" same-MOA called {r['power_proxy']['same_moa']['fraction_called']}"
                  f" vs different-MOA {r['power_proxy']['different_moa']['fraction_called']}")
    save_result(RESULTS / "match_calibration.json", {"store": str(args.store), "screen": run["screen"].get("name"),
                                                     "embedders": rows, "real_store": str(args.real), "real": real}, meta)


if __name__ == "__main__":
    main()
