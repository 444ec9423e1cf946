"""Does leaving one channel out of the CA-MAE find the stain the generator drew a phenotype in?

    .venv/bin/python benchmarks/channel_attribution_validation.py [--demo var/store/demo] [--full]

On the synthetic demo store: per perturbation, the MAE (the demo checkpoint at the embed stage's
chosen block, tokens pooled over channels) embeds a seeded sample of wells with all six channels
and with each channel left out; precompute.channel_attribution ranks the channels by how far the
phenotype moves without them, beyond how far groups of control wells move (the stage's
measure; the raw shift, version 1's measure, is scored beside it). Truth: the generator's
latent programme of that perturbation (ground_truth/latent_programs.csv), each trait drawn in one stain (benchmarks/
feature_drivers_validation.py's TRAIT_CHANNEL; cell count, spread and elongation show in every
channel and are left out); the dominant channel is the one whose traits carry the largest total
absolute weight. Reported over the *active* perturbations (MAE activity q < 0.05 and a programme
with channel-specific weight >= 0.5; also for those whose sampled wells alone clear the controls'
noise): the fraction
whose top channel is the dominant one and whose top channel is among the programme's two
strongest, with chance levels and the confusion table; timed. Default: the pipeline's sample
(precompute.channel_attribution.DEFAULT_SAMPLE); ``--full``: also every active perturbation with
all its wells, all controls and all tiles. Writes benchmarks/results/channel_attribution.json.
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
from benchmarks.feature_drivers_validation import TRAIT_CHANNEL, programme  # noqa: E402
from precompute import channel_attribution as ca  # noqa: E402
from precompute.artifacts import ArtifactStore  # noqa: E402
from precompute.embed import get_embedder  # noqa: E402
from precompute.screen import load_screen  # noqa: E402

HOME = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))
CHECKPOINT = REPO / "models" / "mae_tiny_demo"
UNSAMPLED = {"max_perturbations": None, "max_wells_per_perturbation": None, "controls_per_plate": None,
             "tiles_per_well": None}


def channel_weights(prog: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    """Total absolute weight of the programme's traits drawn in each stain (None: no programme)."""
    v = programme(prog, row)
    if v is None:
        return None
    weight = pd.Series(0.0, index=sorted(set(TRAIT_CHANNEL.values())))
    for trait, channel in TRAIT_CHANNEL.items():
        weight[channel] += abs(float(v[trait]))
    return weight


def score(table: pd.DataFrame, entities: pd.DataFrame, activity: pd.DataFrame, prog: pd.DataFrame) -> dict:
    """Agreement of the top-ranked channel with the programme's, over the active perturbations."""
    ent = entities.set_index("pert_id")
    q = activity.set_index("pert_id")["q_value"]
    pairs, counts = [], {"attributed": len(table), "active_q": 0, "beyond_controls": 0}
    for _, r in table.iterrows():
        if not (q.get(r["pert_id"], np.nan) < 0.05) or not r["has_phenotype"]:
            continue
        counts["active_q"] += 1
        counts["beyond_controls"] += bool(r["beyond_controls"])
        weight = channel_weights(prog, ent.loc[r["pert_id"]])
        if weight is None or weight.sum() < 0.5:  # no channel-specific phenotype to agree with
            continue
        strongest = weight.sort_values(ascending=False).index
        pairs.append({"pert_id": r["pert_id"], "truth": strongest[0], "top": r["top_channel"],
                      "second": r["second_channel"], "beyond_controls": bool(r["beyond_controls"]),
                      "top_is_dominant": r["top_channel"] == strongest[0],
                      "top_in_truth_top2": r["top_channel"] in strongest[:2],
                      "dominant_in_top2": strongest[0] in (r["top_channel"], r["second_channel"])})
    p = pd.DataFrame(pairs)
    n_channels = len(set(TRAIT_CHANNEL.values()))
    return {**counts, "n_scored": len(p),
            "top_channel_is_dominant": float(p["top_is_dominant"].mean()) if len(p) else None,
            "top_channel_in_truth_top2": float(p["top_in_truth_top2"].mean()) if len(p) else None,
            "dominant_in_attributed_top2": float(p["dominant_in_top2"].mean()) if len(p) else None,
            "top_channel_is_dominant_beyond_controls":
                float(p.loc[p["beyond_controls"], "top_is_dominant"].mean()) if len(p) and p["beyond_controls"].any() else None,
            "n_scored_beyond_controls": int(p["beyond_controls"].sum()) if len(p) else 0,
            "chance_top1": 1 / n_channels, "chance_top2": 2 / n_channels,
            "confusion": pd.crosstab(p["truth"], p["top"]).to_dict() if len(p) else {},
            "perturbations": p.to_dict(orient="records")}


def demo_inputs(store: ArtifactStore, run: dict) -> tuple:
    """(wells, MAE entities, MAE activity, embed info, screen, channels, the MAE at the embed stage's
    block with tokens pooled over channels, tile) of a demo store's run."""
    keys = run["stages"]
    wells = store.open_stage("ingest", keys["ingest"]).table("wells")
    entities = store.open_stage("aggregate", keys["aggregate"]["mae"]).table("perturbations")
    activity = store.open_stage("relate", keys["relate"]["mae"]).table("activity")
    info = store.open_stage("embed", keys["embed"]["mae"]).manifest["info"]
    screen = load_screen(run["screen"]["path"])
    embedder = get_embedder("mae", checkpoint=str(CHECKPOINT), block=info["block"]["chosen"], channelwise=False)
    return wells, entities, activity, info, screen, list(run["screen"]["channels"]), embedder, int(info["tile"])


def run_one(label: str, store_path: Path, sample: dict, seed: int) -> dict:
    store = ArtifactStore(store_path, create=False)
    run = store.get_run("default")
    wells, entities, activity, info, screen, channels, embedder, tile = demo_inputs(store, run)
    h, w = screen.image_size or (tile, tile)
    tiles_total = screen.n_sites * (h // tile) * (w // tile)  # tile_sites' grid, non-overlapping
    started = time.perf_counter()
    table, drawn = ca.attribute_screen(wells, entities, embedder, screen.load_images, tile, channels,
                                      q_values=activity.set_index("pert_id")["q_value"], tiles_total=tiles_total,
                                      seed=seed, **sample)
    seconds = time.perf_counter() - started
    prog = pd.read_csv(Path(run["screen"]["path"]) / "ground_truth" / "latent_programs.csv")
    raw = table.drop(columns=[*channels, "top_channel", "second_channel"]).rename(
        columns={f"shift_{c}": c for c in channels})
    raw = pd.concat([raw, ca.rank_channels(raw, channels)], axis=1)  # version 1's ranking: the raw shift
    uncalibrated = score(raw, entities, activity, prog)
    result = {"label": label, "sample": drawn, "caption": ca.sampling_caption(drawn), "seconds": round(seconds, 1),
              "block": info["block"]["chosen"], "tile": tile,
              "summary": ca.channel_summary(table, channels).to_dict(orient="records"),
              **score(table, entities, activity, prog),
              "raw_shift": {k: uncalibrated[k] for k in ("n_scored", "top_channel_is_dominant", "top_channel_in_truth_top2",
                                                         "dominant_in_attributed_top2", "confusion")}}
    print(f"{label:>8}: {result['caption']}; {seconds:.0f} s")
    print(f"{'':>8}  {result['n_scored']} active perturbations scored: top channel = dominant "
          f"{result['top_channel_is_dominant']:.2f} (chance {result['chance_top1']:.2f}), in the programme's top two "
          f"{result['top_channel_in_truth_top2']:.2f}, dominant in the attributed top two "
          f"{result['dominant_in_attributed_top2']:.2f} (chance {result['chance_top2']:.2f}); ranked by the raw "
          f"shift instead: {uncalibrated['top_channel_is_dominant']:.2f} / {uncalibrated['top_channel_in_truth_top2']:.2f}"
          f" / {uncalibrated['dominant_in_attributed_top2']:.2f}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, default=HOME / "store" / "demo")
    ap.add_argument("--full", action="store_true", help="also run unsampled (every active perturbation, all wells)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    meta = start_run(repeats=1)
    result = {"store": str(args.demo), "checkpoint": str(CHECKPOINT.relative_to(REPO)),
              "sampled": run_one("sampled", args.demo, {}, args.seed)}
    if args.full:
        # every active perturbation (q < 0.05 sorts first; the rest would be scored out anyway)
        store = ArtifactStore(args.demo, create=False)
        run = store.get_run("default")
        act = store.open_stage("relate", run["stages"]["relate"]["mae"]).table("activity")
        full = {**UNSAMPLED, "max_perturbations": int((act["q_value"] < 0.05).sum())}
        result["full"] = run_one("full", args.demo, full, args.seed)
    save_result(RESULTS / "channel_attribution.json", result, meta)


if __name__ == "__main__":
    main()
