"""MAE on the demo screen, block by block: relationship recall and replicate mAP of every encoder
block's embeddings, pooled (one mean over all tokens, OpenPhenom's predict) and channel-wise (one
mean per channel, concatenated), against pixel statistics under the same recipe.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/mae_blocks.py [--checkpoint models/mae_tiny_demo]
        [--screen var/screens/demo] [--store var/store/demo]

Every space is scored by precompute.evaluation.score_blocks, the function `--block best` uses: PCA +
TVN on the negative controls (the align stage's recipe), aggregate to genes, recall per annotation
source (5th/95th percentile tails), replicate mAP (seeded sample of at most 2,000 perturbations).
Pixel statistics are read from the store's pixelstats embed stage (the raw well embeddings the
pipeline made) and scored by the same function, so both sides go through identical code.
MAE embeddings are computed here (all blocks in one forward pass, 64 px crops of the 256 px sites
averaged per well, as the embed stage does). Writes benchmarks/results/mae_blocks.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _meta import RESULTS, save_result, start_run  # noqa: E402

from precompute.artifacts import ArtifactStore  # noqa: E402
from precompute.evaluation import choose_block, score_blocks  # noqa: E402
from precompute.screen import load_screen  # noqa: E402
from precompute.stages.embed import embed_screen  # noqa: E402


def table(scores) -> list[dict]:
    return json.loads(scores.to_json(orient="records"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=REPO / "models" / "mae_tiny_demo")
    p.add_argument("--screen", type=Path, default=REPO / "var" / "screens" / "demo")
    p.add_argument("--store", type=Path, default=REPO / "var" / "store" / "demo")
    p.add_argument("--out", type=Path, default=RESULTS / "mae_blocks.json")
    a = p.parse_args()
    meta = start_run(repeats=1, warmup=0, checkpoint=str(a.checkpoint), screen=str(a.screen))
    screen = load_screen(a.screen)
    wells, rels = screen.wells, screen.ground_truth("relationships")
    n_channels = len(screen.channels)

    t0 = time.perf_counter()
    build = {"checkpoint": str(a.checkpoint), "device": "auto", "block": "all", "channelwise": True,
             "n_channels": n_channels}
    from precompute.embed import get_embedder

    probe = get_embedder("mae", **build)
    size = probe.config.img_size
    every = embed_screen(screen, "mae", build, size, progress=False)  # (wells, depth * C * D)
    embed_s = time.perf_counter() - t0
    depth, dim = probe.config.depth, probe.config.embed_dim
    per = every.reshape(len(every), depth, n_channels, dim)
    blocks = list(range(1, depth + 1))

    t1 = time.perf_counter()
    pooled = score_blocks({b: per[:, b - 1].mean(axis=1) for b in blocks}, wells, rels)
    channelwise = score_blocks({b: per[:, b - 1].reshape(len(per), -1) for b in blocks}, wells, rels)
    score_s = time.perf_counter() - t1

    store = ArtifactStore(a.store, create=False)
    run = store.get_run("default")
    pix_key = run["stages"]["embed"]["pixelstats"]
    pix = np.asarray(store.open_stage("embed", pix_key).array("embeddings", mmap=False), dtype=np.float32)
    pixel = score_blocks({0: pix}, wells, rels).drop(columns=["block"])

    variants = {"pooled": pooled, "channelwise": channelwise}
    best = {k: choose_block(v) for k, v in variants.items()}
    complex_col = "recall_synthetic_complex"
    summary = {
        "pixelstats_complex_recall": float(pixel[complex_col].iloc[0]) if complex_col in pixel else None,
        **{f"{k}_best_block": best[k] for k in variants},
        **{f"{k}_best_block_complex_recall": float(v.set_index("block").loc[best[k], complex_col])
           for k, v in variants.items() if complex_col in v},
        **{f"{k}_last_block_complex_recall": float(v.set_index("block").loc[depth, complex_col])
           for k, v in variants.items() if complex_col in v},
    }
    ckpt_meta = {k: v for k, v in probe.meta.items() if k in ("weights_sha256", "command", "final_loss", "steps", "wall_s")}
    result = {
        "what": "per-block relationship recall and replicate mAP of the MAE on the demo screen, after PCA+TVN, "
                "vs pixel statistics through the same scoring function",
        "checkpoint": {"path": str(a.checkpoint), **ckpt_meta, "config": probe.config.to_dict()},
        "screen": screen.name, "n_wells": int(len(wells)), "channels": list(screen.channels),
        "pixelstats_embed_stage": pix_key,
        "seconds": {"embed_all_blocks": round(embed_s, 1), "score": round(score_s, 1)},
        "summary": summary,
        "pixelstats": table(pixel)[0],
        "blocks": {k: table(v) for k, v in variants.items()},
    }
    save_result(a.out, result, meta)
    print(json.dumps(summary, indent=2))
    for k, v in variants.items():
        print(f"\n{k}:\n{v.round(3).to_string(index=False)}")
    print(f"\npixel statistics:\n{pixel.round(3).to_string(index=False)}\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
