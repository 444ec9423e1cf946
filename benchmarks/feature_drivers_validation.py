"""Do the top-ranked channels of a phenotype agree with what the generator built into it?

    .venv/bin/python benchmarks/feature_drivers_validation.py [--demo var/store/demo] [--real var/store/real]

Synthetic demo: pixel-statistics features (named ``Channel_statistic``) per well, standardised
against each plate's controls; per perturbation the channel whose features moved most (root mean
square effect). Truth: the generator's latent programme of that perturbation, each trait drawn in
one stain by the renderer (nucleus traits in DNA, ER traits in ER, nucleoli and cytoplasmic RNA in
RNA, actin fibres in AGP, membrane in PM, mitochondrial traits in Mito; cell count, spread and
elongation show in every channel and are left out). Reported: for perturbations with a phenotype
and any feature at q < 0.05, the fraction whose top channel is the programme's dominant channel,
and whose top channel is among its two strongest; and the confusion table.
Real screen (CellProfiler features, no truth): how many compounds move any feature at q < 0.05,
and which compartments, kinds and channels lead. Writes benchmarks/results/feature_drivers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402
from precompute import feature_drivers as fd  # noqa: E402
from precompute.artifacts import ArtifactStore  # noqa: E402
from precompute.embed.embedders.pixelstats import PixelStatsEmbedder  # noqa: E402
from precompute.significance import entity_wells  # noqa: E402

HOME = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))
TRAIT_CHANNEL = {"nucleus_size": "DNA", "nucleus_intensity": "DNA", "nucleus_texture": "DNA", "er_intensity": "ER",
                 "er_perinuclear": "ER", "nucleoli": "RNA", "rna_cytoplasm": "RNA", "actin_fibres": "AGP",
                 "membrane": "PM", "mito_fragmentation": "Mito", "mito_perinuclear": "Mito"}
PROGRAMME_KIND = {"crispr": "crispr_gene", "orf": "orf", "compound": "compound"}


def effects(store: ArtifactStore, run: dict, embedder: str, features: np.ndarray):
    keys = run["stages"]
    wells = store.open_stage("ingest", keys["ingest"]).table("wells")
    entities = store.open_stage("aggregate", keys["aggregate"][embedder]).table("perturbations")
    ctrl = (wells["perturbation_type"].astype(str) == "negative_control").to_numpy()
    z = fd.control_standardised(features, wells["plate"].astype(str).to_numpy(), ctrl)
    return entities, *fd.feature_effects(z, entity_wells(wells, entities))


def programme(prog: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    kind = PROGRAMME_KIND.get(row["perturbation_type"])
    sel = prog[(prog["kind"] == kind) & (prog["entity"] == row["perturbation"])] if kind else prog.iloc[:0]
    if sel.empty:
        return None
    conc = sel["concentration_um"]
    if row["level"] == "dose":
        sel = sel[np.isclose(conc, row["concentration_um"])]
    elif kind == "compound":
        sel = sel[np.isclose(conc, conc.max())]  # the pooled compound: its top dose's programme
    return None if sel.empty else sel.iloc[0]


def synthetic(store_path: Path) -> dict:
    store = ArtifactStore(store_path, create=False)
    run = store.get_run("default")
    channels = run["screen"]["channels"]
    x = np.asarray(store.open_stage("embed", run["stages"]["embed"]["pixelstats"]).array("embeddings", mmap=False))
    names = [fd.parse_feature_name(n) for n in PixelStatsEmbedder(len(channels)).feature_names(channels)]
    entities, effect, _, q = effects(store, run, "pixelstats", x)
    by_channel = fd.group_effects(effect, names, "channel")
    prog = pd.read_csv(Path(run["screen"]["path"]) / "ground_truth" / "latent_programs.csv")
    pairs = []
    for i, row in entities.iterrows():
        v = programme(prog, row)
        if v is None or not (q[i] < 0.05).any():
            continue
        weight = pd.Series({c: 0.0 for c in set(TRAIT_CHANNEL.values())})
        for trait, ch in TRAIT_CHANNEL.items():
            weight[ch] += abs(float(v[trait]))
        if weight.sum() < 0.5:  # no channel-specific phenotype to agree with
            continue
        top = by_channel.iloc[i].sort_values(ascending=False).index[0]
        pairs.append((weight.idxmax(), top, top in weight.sort_values(ascending=False).index[:2]))
    truth = pd.Series([p[0] for p in pairs], name="truth")
    top = pd.Series([p[1] for p in pairs], name="top")
    return {"store": str(store_path), "features": "pixelstats", "n_perturbations": len(pairs),
            "top_channel_is_dominant": float(np.mean([t == s for t, s, _ in pairs])) if pairs else None,
            "top_channel_in_top2": float(np.mean([p[2] for p in pairs])) if pairs else None,
            "confusion": pd.crosstab(truth, top).to_dict()}


def real(store_path: Path) -> dict:
    store = ArtifactStore(store_path, create=False)
    run = store.get_run("default")
    screen = json.loads((Path(run["screen"]["path"]) / "screen.json").read_text())
    names = [fd.parse_feature_name(n, tuple(screen["channels"])) for n in screen["feature_names"]]
    embedder = run["primary"]["embedder"]
    x = np.asarray(store.open_stage("embed", run["stages"]["embed"][embedder]).array("embeddings", mmap=False))
    entities, effect, _, q = effects(store, run, embedder, x)
    pooled = ((entities["perturbation_type"] == "compound") & (entities["level"] == "pooled")).to_numpy()
    moved = pooled & (q < 0.05).any(axis=1)
    lead = {by: fd.group_effects(effect[moved], names, by).idxmax(axis=1).value_counts().to_dict()
            for by in ("compartment", "kind", "channel")}
    return {"store": str(store_path), "features": len(names), "n_compounds": int(pooled.sum()),
            "n_compounds_moving_a_feature": int(moved.sum()), "leading_group_counts": lead}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, default=HOME / "store" / "demo")
    ap.add_argument("--real", type=Path, default=HOME / "store" / "real")
    args = ap.parse_args()
    meta = start_run(repeats=1)
    result = {"synthetic": synthetic(args.demo),
              "real": real(args.real) if (args.real / "runs" / "default.json").exists() else None}
    s = result["synthetic"]
    print(f"synthetic: {s['n_perturbations']} perturbations; top channel = dominant {s['top_channel_is_dominant']:.2f},"
          f" in top two {s['top_channel_in_top2']:.2f}")
    if result["real"]:
        r = result["real"]
        print(f"real: {r['n_compounds_moving_a_feature']} of {r['n_compounds']} compounds move a feature at q < 0.05;"
              f" leading {r['leading_group_counts']}")
    save_result(RESULTS / "feature_drivers.json", result, meta)


if __name__ == "__main__":
    main()
