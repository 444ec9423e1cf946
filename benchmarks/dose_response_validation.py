"""Dose-response fits against the truth of the synthetic screen, and on the real LINCS plate.

    .venv/bin/python benchmarks/dose_response_validation.py [--demo var/store/demo] [--real var/store/real]

Response: each well's Euclidean distance to its plate's negative-control mean in the primary
aligned space (with TVN, a distance in units of control variation). For each store and embedder,
the 4PL fit of precompute/dose_response.py per compound with three or more doses. On the
synthetic screen, against the generator's EC50: the absolute error in log10 units for active
compounds that are not toxic within the tested doses (toxicity adds its own curve at its own
potency), for the fits without a flag and for all, and how many inactive non-toxic compounds are
flagged "no response". On the real plate there is no true EC50: the counts of fits and flags.
Writes benchmarks/results/dose_response.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402
from precompute.artifacts import ArtifactStore  # noqa: E402
from precompute.dose_response import dose_response_table  # noqa: E402
from precompute.relate import distance_to_plate_controls  # noqa: E402

HOME = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))


def fits(store: ArtifactStore, run: dict, embedder: str) -> pd.DataFrame:
    keys = run["stages"]
    wells = store.open_stage("ingest", keys["ingest"]).table("wells")
    aligned = store.open_stage("align", keys["align"][embedder][run["config"]["primary_align"]]).array("embeddings")
    ctrl = (wells["perturbation_type"].astype(str) == "negative_control").to_numpy()
    response = distance_to_plate_controls(aligned, wells["plate"].astype(str).to_numpy(), ctrl, metric="euclidean")
    return dose_response_table(wells, response, ctrl)


def log_error(table: pd.DataFrame, mask: pd.Series) -> dict:
    err = (np.log10(table["ec50"]) - np.log10(table["ec50_um"])).abs()[mask]
    return {"n": int(mask.sum()), "median_abs_log10_error": float(err.median()) if mask.any() else None}


def synthetic(store_path: Path) -> list[dict]:
    store = ArtifactStore(store_path, create=False)
    run = store.get_run("default")
    truth = pd.read_csv(Path(run["screen"]["path"]) / "ground_truth" / "compounds.csv").set_index("compound")
    top_dose = None
    out = []
    for emb in run["stages"]["align"]:
        t = fits(store, run, emb).set_index("perturbation").join(truth[["active", "ec50_um", "toxic_um"]])
        top_dose = top_dose or float(pd.to_numeric(store.open_stage("ingest", run["stages"]["ingest"]).table("wells")
                                                   ["concentration_um"], errors="coerce").max())
        clean = t["active"].astype(bool) & (t["toxic_um"].isna() | (t["toxic_um"] > top_dose))
        silent = ~t["active"].astype(bool) & t["toxic_um"].isna()
        trusted = t["flags"] == ""
        out.append({"embedder": emb, "n_compounds": int(len(t)), "n_trusted": int(trusted.sum()),
                    "n_doses": int(t["n_doses"].max()) if len(t) else 0,
                    "active_nontoxic_trusted": log_error(t, clean & trusted),
                    "active_nontoxic_all": log_error(t, clean),
                    "inactive_flagged_no_response": int((silent & t["flags"].str.contains("no response")).sum()),
                    "inactive_nontoxic": int(silent.sum())})
    return out


def real(store_path: Path) -> list[dict]:
    store = ArtifactStore(store_path, create=False)
    run = store.get_run("default")
    out = []
    for emb in run["stages"]["align"]:
        t = fits(store, run, emb)
        flags = t["flags"].str.split("; ").explode()
        out.append({"embedder": emb, "n_compounds": int(len(t)), "n_trusted": int((t["flags"] == "").sum()),
                    "n_doses_max": int(t["n_doses"].max()) if len(t) else 0,
                    "flag_counts": {k: int(v) for k, v in flags[flags != ""].value_counts().items()},
                    "median_ec50_trusted_um": float(t.loc[t["flags"] == "", "ec50"].median()) if len(t) else None})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, default=HOME / "store" / "demo")
    ap.add_argument("--real", type=Path, default=HOME / "store" / "real")
    args = ap.parse_args()
    meta = start_run(repeats=1)
    result = {"demo_store": str(args.demo), "synthetic": synthetic(args.demo)}
    if (args.real / "runs" / "default.json").exists():
        result["real_store"] = str(args.real)
        result["real"] = real(args.real)
    else:
        result["real"] = None
        print(f"{args.real}: no store (make demo SCREEN=real builds it); real-plate figures left out")
    for r in result["synthetic"]:
        print(f"synthetic {r['embedder']:>10}: {r['n_trusted']}/{r['n_compounds']} trusted; |log10 EC50 error| trusted "
              f"{r['active_nontoxic_trusted']} all {r['active_nontoxic_all']}; inactive flagged "
              f"{r['inactive_flagged_no_response']}/{r['inactive_nontoxic']}")
    for r in result["real"] or []:
        print(f"real {r['embedder']:>10}: {r['n_trusted']}/{r['n_compounds']} trusted, flags {r['flag_counts']}")
    save_result(RESULTS / "dose_response.json", result, meta)


if __name__ == "__main__":
    main()
