"""Measured on real data: the two real plates of the shared folder (see precompute/real_screen.py).

1. Replicate retrieval on the JUMP-MOA plate (BR00117060a10x, 90 compounds x 4 wells, 24 DMSO):
   phenotypic activity (copairs mAP of a compound's wells against the plate's DMSO wells,
   permutation p, BH q; active = q < 0.05) on the file's features as published (already normalised
   to DMSO) and after centerscale / spherize (ZCA, pycytominer-style) / TVN on DMSO; all 357
   features and the 100 features the real screen keeps (the cost of the feature intersection).
   The DMSO wells that fit the alignment are also the negatives the mAP ranks against, which
   flatters any method that whitens on them (spherize most: it maps those very wells to the unit
   sphere). So the same is reported with the controls split: for each of --splits seeded halves,
   align on one half of the DMSO wells and rank against the other half only (the fitting half is
   dropped from the evaluation); mean and range over the splits.
2. MOA retrieval on the same plate: compound profiles (mean of replicate wells) ranked by cosine;
   per compound, AP of finding the other compounds with its MOA (copairs), mean over compounds,
   against a null of 1,000 random relabellings of MOAs across compounds; and per MOA copairs q.
3. Dose on the LINCS plate (SQ00015054): distance of each well to the DMSO centroid in
   DMSO-centerscaled features; per compound the Spearman correlation of distance with dose over its
   six doses. "Has an effect" = the top-dose well is farther from DMSO than the 95th percentile of
   DMSO wells (leave-one-out). Reported: fraction of effect compounds with a positive Spearman,
   the same for the others, and a one-sided sign test.

Prints a table, writes benchmarks/results/real_data.json and benchmarks/results/real_data.md.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/real_data_report.py [--null 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402
from precompute.align import align  # noqa: E402
from precompute.evaluation import phenotypic_activity  # noqa: E402
from precompute.real_screen import read_real_plates  # noqa: E402

REFERENCE = {
    "CPJUMP1 percent replicating, compounds (PRIMER; Chandrasekaran et al. 2024)": "75-88 %",
    "CPJUMP1 Compound_U2OS_24 / _48 percent replicating (2024_Chandrasekaran_NatureMethods benchmark/README)": "77.8 / 79.1 %",
}


def _is_ctrl(w: pd.DataFrame) -> np.ndarray:
    return (w["perturbation_type"] == "negative_control").to_numpy()


def replicate_retrieval(feats: np.ndarray, wells: pd.DataFrame, null: int, seed: int) -> list[dict]:
    rows = []
    for method in ("none", "centerscale", "spherize", "tvn"):
        x = align(feats, _is_ctrl(wells), wells["batch"].to_numpy(), method)
        act = phenotypic_activity(x, wells, null_size=null, seed=seed)
        act = act[act["perturbation_type"] == "compound"]
        rows.append({"space": "as published" if method == "none" else method, "dim": int(x.shape[1]),
                     "n_compounds": len(act), "mAP": float(act["mean_average_precision"].mean()),
                     "fraction_q05": float((act["q_value"] < 0.05).mean())})
    return rows


def split_controls_retrieval(feats: np.ndarray, wells: pd.DataFrame, null: int, seed: int, splits: int) -> list[dict]:
    """Replicate mAP with the DMSO wells split: align on a seeded half, rank against the other half."""
    ctrl_idx = np.flatnonzero(_is_ctrl(wells))
    rows = []
    for method in ("none", "centerscale", "spherize", "tvn"):
        maps, fracs, dims, err = [], [], [], None
        for k in range(splits):
            fit = np.random.default_rng(seed + k).choice(ctrl_idx, size=len(ctrl_idx) // 2, replace=False)
            fit_mask = np.zeros(len(wells), bool)
            fit_mask[fit] = True
            try:
                x = align(feats, fit_mask, wells["batch"].to_numpy(), method)
            except ValueError as exc:  # e.g. too few controls for the method: say so, do not guess
                err = str(exc)
                break
            keep = ~fit_mask
            act = phenotypic_activity(x[keep], wells[keep].reset_index(drop=True), null_size=null, seed=seed)
            act = act[act["perturbation_type"] == "compound"]
            maps.append(float(act["mean_average_precision"].mean()))
            fracs.append(float((act["q_value"] < 0.05).mean()))
            dims.append(int(x.shape[1]))
        row = {"space": "as published" if method == "none" else method, "splits": splits,
               "n_fit_controls": len(ctrl_idx) // 2, "n_negative_controls": len(ctrl_idx) - len(ctrl_idx) // 2}
        if err:
            row["error"] = err
        else:
            row.update(dim=dims[0], mAP=float(np.mean(maps)), mAP_min=min(maps), mAP_max=max(maps),
                       fraction_q05=float(np.mean(fracs)))
        rows.append(row)
    return rows


def moa_retrieval(feats: np.ndarray, wells: pd.DataFrame, null: int, seed: int, n_perm: int = 1000) -> dict:
    from copairs.map import average_precision, mean_average_precision

    w = wells[wells["perturbation_type"] == "compound"]
    x = align(feats, _is_ctrl(wells), wells["batch"].to_numpy(), "spherize")[w.index.to_numpy()]
    prof = pd.DataFrame(x).groupby(w["compound"].to_numpy()).mean()
    moa = w.groupby("compound")["Metadata_moa"].first().reindex(prof.index)
    keep = moa.notna() & moa.map(moa.value_counts()).gt(1)
    prof, moa = prof[keep.to_numpy()], moa[keep]
    unit = prof.to_numpy() / np.linalg.norm(prof.to_numpy(), axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)

    def mean_ap(labels: np.ndarray) -> float:
        order = np.argsort(-sims, axis=1)[:, :-1]  # self (-inf) last, dropped
        hit = labels[order] == labels[:, None]
        prec = np.cumsum(hit, axis=1) / np.arange(1, hit.shape[1] + 1)
        return float(((prec * hit).sum(axis=1) / hit.sum(axis=1)).mean())

    labels = pd.factorize(moa.to_numpy())[0]
    observed = mean_ap(labels)
    rng = np.random.default_rng(seed)
    perm = np.array([mean_ap(rng.permutation(labels)) for _ in range(n_perm)])
    meta = pd.DataFrame({"moa": moa.to_numpy(), "compound": prof.index.to_numpy()})
    ap = average_precision(meta, unit, pos_sameby=["moa"], pos_diffby=[], neg_sameby=[], neg_diffby=["moa"],
                           progress_bar=False)
    with tempfile.TemporaryDirectory() as tmp:
        per_moa = mean_average_precision(ap, sameby=["moa"], null_size=null, threshold=0.05, seed=seed,
                                         progress_bar=False, cache_dir=tmp)
    return {"space": "spherize", "n_compounds": int(len(prof)), "n_moas": int(moa.nunique()),
            "mAP": observed, "null_mean": float(perm.mean()), "null_p95": float(np.percentile(perm, 95)),
            "p_value": float((1 + (perm >= observed).sum()) / (1 + n_perm)),
            "copairs_mAP": float(ap["average_precision"].mean()),
            "fraction_moas_q05": float((per_moa["corrected_p_value"] < 0.05).mean())}


def dose_response(feats: np.ndarray, wells: pd.DataFrame) -> dict:
    from scipy.stats import binomtest, spearmanr

    ctrl = _is_ctrl(wells)
    x = align(feats, ctrl, wells["batch"].to_numpy(), "centerscale")
    dist = np.linalg.norm(x - x[ctrl].mean(axis=0), axis=1)
    c_idx = np.flatnonzero(ctrl)
    loo = np.array([np.linalg.norm(x[i] - x[np.setdiff1d(c_idx, i)].mean(axis=0)) for i in c_idx])
    thr = float(np.percentile(loo, 95))
    w = wells.assign(dist=dist)
    w = w[w["perturbation_type"] == "compound"]
    rows = []
    for cmpd, g in w.groupby("compound"):
        if g["concentration_um"].nunique() < 4:
            continue  # the two 20 µM compounds have one dose (12 wells): no series
        g = g.sort_values("concentration_um")
        rho = spearmanr(g["concentration_um"], g["dist"]).statistic
        rows.append({"compound": cmpd, "rho": float(rho), "top_dose_dist": float(g["dist"].iloc[-1]),
                     "effect": bool(g["dist"].iloc[-1] > thr)})
    r = pd.DataFrame(rows)
    eff, rest = r[r["effect"]], r[~r["effect"]]
    pos = int((eff["rho"] > 0).sum())
    by_dose = w.groupby(w["concentration_um"].round(3))["dist"].median()
    return {"n_series": len(r), "dmso_loo_p95": thr, "n_effect": len(eff),
            "fraction_positive_effect": float(pos / len(eff)) if len(eff) else float("nan"),
            "median_rho_effect": float(eff["rho"].median()) if len(eff) else float("nan"),
            "fraction_positive_other": float((rest["rho"] > 0).mean()) if len(rest) else float("nan"),
            "median_rho_other": float(rest["rho"].median()) if len(rest) else float("nan"),
            "sign_test_p": float(binomtest(pos, len(eff), 0.5, alternative="greater").pvalue) if len(eff) else float("nan"),
            "median_dist_by_dose_um": {str(k): round(float(v), 3) for k, v in by_dose.items()},
            "dmso_median_dist_loo": float(np.median(loo))}


def markdown(res: dict) -> str:
    lines = ["| JUMP-MOA plate, replicate retrieval vs DMSO | features | dim | mAP | fraction q < 0.05 |",
             "|---|---|---:|---:|---:|"]
    for r in res["replicate_retrieval"]:
        lines.append(f"| {r['space']} | {r['features']} | {r['dim']} | {r['mAP']:.3f} | {r['fraction_q05']:.1%} |")
    for k, v in REFERENCE.items():
        lines.append(f"| reference: {k} | | | | {v} |")
    lines += ["", "| DMSO split: align on half, rank against the other half (all features) | dim | mAP (range) | fraction q < 0.05 |",
              "|---|---:|---:|---:|"]
    for r in res["replicate_retrieval_split_controls"]:
        if "error" in r:
            lines.append(f"| {r['space']} | | not computed: {r['error']} | |")
        else:
            lines.append(f"| {r['space']} | {r['dim']} | {r['mAP']:.3f} ({r['mAP_min']:.3f}-{r['mAP_max']:.3f}) "
                         f"| {r['fraction_q05']:.1%} |")
    m = res["moa_retrieval"]
    lines += ["", f"MOA retrieval (JUMP-MOA plate, {m['n_compounds']} compounds, {m['n_moas']} MOAs with >= 2 compounds, "
                  f"spherized, replicate-mean profiles): mAP {m['mAP']:.3f} vs permutation null {m['null_mean']:.3f} "
                  f"(95th pct {m['null_p95']:.3f}, p = {m['p_value']:.3g}); MOAs with copairs q < 0.05: "
                  f"{m['fraction_moas_q05']:.1%}."]
    d = res["dose"]
    lines += ["", f"Dose (LINCS plate, {d['n_series']} compounds with a 6-dose series): {d['n_effect']} have an effect at the "
                  f"top dose (distance to DMSO > DMSO 95th pct); Spearman(dose, distance) > 0 for "
                  f"{d['fraction_positive_effect']:.0%} of them (median rho {d['median_rho_effect']:.2f}, sign test "
                  f"p = {d['sign_test_p']:.2g}); for the others {d['fraction_positive_other']:.0%} (median rho "
                  f"{d['median_rho_other']:.2f})."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--null", type=int, default=10000, help="copairs permutation null size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", type=int, default=5, help="seeded halves of the DMSO wells")
    ap.add_argument("--out", type=Path, default=RESULTS / "real_data.json")
    a = ap.parse_args()
    meta = start_run(repeats=1, warmup=0, splits=a.splits)
    t0 = time.time()
    lincs, moa = read_real_plates()
    common = [f for f in lincs.feature_names if f in set(moa.feature_names)]
    moa_common = moa.features[:, [moa.feature_names.index(f) for f in common]]
    rep = [dict(r, features=f"all {len(moa.feature_names)}") for r in replicate_retrieval(moa.features, moa.wells, a.null, a.seed)]
    rep += [dict(r, features=f"common {len(common)}") for r in replicate_retrieval(moa_common, moa.wells, a.null, a.seed)]
    res = {"replicate_retrieval": rep, "reference": REFERENCE,
           "replicate_retrieval_split_controls": split_controls_retrieval(moa.features, moa.wells, a.null, a.seed,
                                                                          a.splits),
           "moa_retrieval": moa_retrieval(moa.features, moa.wells, a.null, a.seed),
           "dose": dose_response(lincs.features, lincs.wells),
           "null_size": a.null, "seconds": round(time.time() - t0, 1)}
    md = markdown(res)
    print(md)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_result(a.out, res, meta)
    a.out.with_suffix(".md").write_text(md)
    print(f"wrote {a.out} and {a.out.with_suffix('.md')} ({res['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
