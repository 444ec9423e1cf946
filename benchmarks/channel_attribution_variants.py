"""Which channel-attribution measure agrees best with the generator? Every variant tried, one table.

    .venv/bin/python benchmarks/channel_attribution_variants.py [--demo var/store/demo] [--cache FILE.npz]

On the demo store's active perturbations (MAE activity q < 0.05), every well, all controls and all
tiles (the validation's ``--full`` setting), the MAE embeds the wells with all channels, with each
channel left out (**removal**, the stage's occlusion) and with each channel replaced by its plate's
mean control tile (**replacement**: the model's input stays in distribution). Measures of channel
``c`` on each, in the all-channels control-noise units of precompute.channel_attribution:
``shift`` |d_all - d_c| (version 1; ranking by shift / |d_all| is the same), ``projection``
(d_all - d_c) . d_all / |d_all|^2 (the move along the phenotype), ``control ratio`` shift / the
mean shift of 300 groups of as many control wells, ``control z`` (shift - that mean) / their sd
(version 2, the stage's), and the raw shift or projection standardised per channel across the
perturbations (``/ median over perturbations``, ``z over perturbations``). Scored as
benchmarks/channel_attribution_validation.py scores (top channel = the programme's dominant one).
``--cache``: embeddings saved by an earlier run (written there when absent). Writes
benchmarks/results/channel_attribution_variants.json.
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
from benchmarks.channel_attribution_validation import demo_inputs, score  # noqa: E402
from precompute import channel_attribution as ca  # noqa: E402
from precompute.artifacts import ArtifactStore  # noqa: E402
from precompute.embed import tile_sites, to_float01  # noqa: E402
from precompute.significance import entity_wells  # noqa: E402

HOME = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))


def embed_variants(store: ArtifactStore, run: dict, seed: int) -> dict[str, np.ndarray]:
    """Removal and replacement embeddings of the active perturbations' wells and all controls."""
    wells, entities, activity, _, screen, channels, model, tile = demo_inputs(store, run)
    ctrl = (wells["perturbation_type"].astype(str) == "negative_control").to_numpy()
    pooled = entities[(entities["level"].astype(str) == "pooled")
                      & (entities["perturbation_type"].astype(str) != "negative_control")].reset_index(drop=True)
    members = entity_wells(wells, pooled)
    q = activity.set_index("pert_id")["q_value"].reindex(pooled["pert_id"].astype(str)).to_numpy(float)
    drawn = ca.sample_wells(pooled["pert_id"].astype(str).tolist(), [members.of(i) for i in range(len(pooled))],
                            wells["plate"].to_numpy(), ctrl, priority=q, max_perturbations=int((q < 0.05).sum()),
                            max_wells_per_perturbation=None, controls_per_plate=None, seed=seed)
    rows = drawn.rows
    plates = wells["plate"].astype(str).to_numpy()[rows]
    tiles = [to_float01(tile_sites(screen.load_images(w), tile)) for w in wells["well_id"].astype(str).to_numpy()[rows]]
    is_ctrl = ctrl[rows]
    ctrl_tile = {p: np.concatenate([t for t, c, q_ in zip(tiles, is_ctrl, plates) if c and q_ == p]).mean(axis=0)
                 for p in pd.unique(plates)}

    def embed(edit) -> np.ndarray:
        out = []
        for s in range(0, len(tiles), 32):
            batch = [edit(i, tiles[i]) for i in range(s, min(s + 32, len(tiles)))]
            vecs = np.asarray(model.embed_tiles(np.ascontiguousarray(np.concatenate(batch))), np.float64)
            bounds = np.cumsum([0] + [len(b) for b in batch])
            out += [vecs[bounds[k]:bounds[k + 1]].mean(axis=0) for k in range(len(batch))]
        return np.stack(out).astype(np.float32)

    def replaced(ci: int):
        def edit(i: int, t: np.ndarray) -> np.ndarray:
            t = t.copy()
            t[:, ci] = ctrl_tile[plates[i]][ci]
            return t
        return edit

    out: dict[str, np.ndarray] = {}
    for name, keep in ca.channel_sets(channels).items():
        out[f"rm_{name}"] = embed(lambda i, t, keep=keep: t[:, keep])
    for ci, c in enumerate(channels):
        out[f"rep_{c}"] = embed(replaced(ci))
    groups = [np.searchsorted(rows, g) if np.all(np.diff(rows) > 0) else np.array([list(rows).index(r) for r in g])
              for g in drawn.treated_rows]
    return {**out, "plates": plates, "ctrl": is_ctrl, "perts": np.array(drawn.perturbations),
            "glen": np.array([len(g) for g in groups]), "gidx": np.concatenate(groups)}


def measures(z: dict[str, np.ndarray], ctrl: np.ndarray, groups: list[np.ndarray], channels: list[str],
             n_null: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """(perturbations x channels) per measure (see the module doc)."""
    rng = np.random.default_rng(seed)
    cidx = np.flatnonzero(ctrl)
    out: dict[str, list] = {"shift": [], "projection": [], "control ratio": [], "control z": []}
    nulls: dict[int, np.ndarray] = {}
    for g in groups:
        d_all = z[ca.ALL][g].mean(axis=0)
        size = np.linalg.norm(d_all)
        moved = np.stack([d_all - z[c][g].mean(axis=0) for c in channels])
        shift = np.linalg.norm(moved, axis=1)
        if len(g) not in nulls:
            draws = [rng.choice(cidx, min(len(g), cidx.size), replace=False) for _ in range(n_null)]
            nulls[len(g)] = np.array([[np.linalg.norm(z[ca.ALL][d].mean(0) - z[c][d].mean(0)) for c in channels]
                                      for d in draws])
        null = nulls[len(g)]
        out["shift"].append(shift / size)
        out["projection"].append(moved @ d_all / size ** 2)
        out["control ratio"].append(shift / null.mean(axis=0))
        out["control z"].append((shift - null.mean(axis=0)) / null.std(axis=0, ddof=1))
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, default=HOME / "store" / "demo")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    meta = start_run(repeats=1)
    store = ArtifactStore(args.demo, create=False)
    run = store.get_run("default")
    channels = list(run["screen"]["channels"])
    if args.cache is not None and args.cache.exists():
        f = dict(np.load(args.cache, allow_pickle=True))
    else:
        f = embed_variants(store, run, args.seed)
        if args.cache is not None:
            np.savez(args.cache, **f)
    keys = run["stages"]
    entities = store.open_stage("aggregate", keys["aggregate"]["mae"]).table("perturbations")
    activity = store.open_stage("relate", keys["relate"]["mae"]).table("activity")
    prog = pd.read_csv(Path(run["screen"]["path"]) / "ground_truth" / "latent_programs.csv")
    groups = np.split(f["gidx"], np.cumsum(f["glen"])[:-1])
    transforms = {"": lambda v: v, "/ median over perturbations": lambda v: v / np.median(v, axis=0),
                  "z over perturbations": lambda v: (v - v.mean(axis=0)) / v.std(axis=0)}
    rows = []
    for occlusion, prefix in (("removal", "rm_"), ("replacement", "rep_")):
        sets = {c: f[prefix + c] for c in channels}
        sets[ca.ALL] = f["rm_all"]
        res = {n: ca.control_residuals(x, f["plates"], f["ctrl"]) for n, x in sets.items()}
        sd = np.nanstd(res[ca.ALL][f["ctrl"]], axis=0, ddof=1)
        scale = np.where(sd > 0, 1 / np.where(sd > 0, sd, 1), 0.0)
        z = {n: r * scale for n, r in res.items()}
        for name, vals in measures(z, f["ctrl"], groups, channels, seed=args.seed).items():
            for label, fn in transforms.items():
                table = pd.DataFrame(fn(vals), columns=channels)
                table = pd.concat([table, ca.rank_channels(table, channels)], axis=1)
                table.insert(0, "pert_id", f["perts"])
                table["has_phenotype"], table["beyond_controls"] = True, False
                s = score(table, entities, activity, prog)
                rows.append({"occlusion": occlusion, "measure": f"{name} {label}".strip(), "n_scored": s["n_scored"],
                             "top_channel_is_dominant": s["top_channel_is_dominant"],
                             "top_channel_in_truth_top2": s["top_channel_in_truth_top2"],
                             "dominant_in_attributed_top2": s["dominant_in_attributed_top2"]})
                r = rows[-1]
                print(f"{occlusion:>11} {r['measure']:<42} n={r['n_scored']} top = dominant "
                      f"{r['top_channel_is_dominant']:.2f}, top in truth's two {r['top_channel_in_truth_top2']:.2f}, "
                      f"dominant in attributed two {r['dominant_in_attributed_top2']:.2f}")
    save_result(RESULTS / "channel_attribution_variants.json",
                {"store": str(args.demo), "perturbations": int(len(groups)), "wells": int(len(f["plates"])),
                 "control_wells": int(np.sum(f["ctrl"])), "cache": str(args.cache) if args.cache else None,
                 "variants": rows}, meta)


if __name__ == "__main__":
    main()
