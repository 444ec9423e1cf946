"""--block best: every encoder block is scored on the screen's annotations, the best one is kept and
recorded (manifest, run index, provenance footer), and the Benchmarks figure plots recall per block."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from phenomix_dash.components import provenance_footer
from phenomix_dash.figures.blocks import block_scores_figure
from precompute.artifacts import ArtifactStore
from precompute.embed.openphenom_io import save_openphenom_layout
from precompute.evaluation import choose_block
from precompute.run_config import RunConfig
from precompute.screen import load_screen
from precompute.stages.embed import stage_embed
from precompute.stages.ingest import stage_ingest
from precompute.stages.registry import Runner

sys.path.insert(0, str(Path(__file__).parent))
from test_openphenom import SMALL, _our_config, _randomise  # noqa: E402
from timm_oracle import reference_openphenom  # noqa: E402


def test_choose_block_takes_the_best_mean_recall_then_map_then_the_deeper_block():
    scores = pd.DataFrame({"block": [1, 2, 3], "recall_mean": [0.2, 0.3, 0.3], "replicate_map": [0.9, 0.4, 0.5]})
    assert choose_block(scores) == 3  # tie on recall: higher mAP
    assert choose_block(scores.assign(replicate_map=[0.9, 0.5, 0.5])) == 3  # full tie: the deeper block
    no_annotations = scores.assign(recall_mean=np.nan)
    assert choose_block(no_annotations) == 1  # mAP alone decides
    with pytest.raises(ValueError, match="no blocks"):
        choose_block(scores.iloc[:0])


def test_block_best_keeps_the_best_blocks_embeddings_and_records_every_score(tiny_screen, tmp_path):
    torch.manual_seed(0)
    folder = save_openphenom_layout(_randomise(reference_openphenom(**SMALL), seed=2, scale=0.2).state_dict(),
                                    _our_config(SMALL), tmp_path / "op")
    screen = load_screen(tiny_screen)
    runner = Runner(ArtifactStore(tmp_path / "store"), progress=False)
    ingest = stage_ingest(runner, screen)
    best_key, _ = stage_embed(runner, screen, RunConfig(checkpoint=str(folder), block="best"), ingest, "openphenom")
    stage = runner.store.open_stage("embed", best_key)
    info = stage.manifest["info"]["block"]
    scores = stage.table("block_scores")
    assert list(scores["block"]) == [1, 2, 3] and {"recall_mean", "replicate_map"} <= set(scores.columns)
    assert info["chosen"] == choose_block(scores) and info["depth"] == 3 and len(info["scores"]) == 3
    fixed_key, _ = stage_embed(runner, screen, RunConfig(checkpoint=str(folder), block=str(info["chosen"])),
                               ingest, "openphenom")
    assert fixed_key != best_key  # the block is part of the stage key
    np.testing.assert_allclose(stage.array("embeddings", mmap=False),
                               runner.store.open_stage("embed", fixed_key).array("embeddings", mmap=False),
                               rtol=1e-5, atol=1e-6)


def test_block_figure_plots_each_source_its_baseline_and_the_chosen_block():
    scores = pd.DataFrame({"block": [1, 2, 3, 4], "recall_synthetic_complex": [0.2, 0.35, 0.3, 0.25],
                           "recall_synthetic_pathway": [0.1, 0.2, 0.15, 0.12], "recall_mean": [0.15, 0.275, 0.225, 0.185],
                           "replicate_map": [0.3, 0.5, 0.45, 0.4]})
    fig = block_scores_figure(scores, chosen=2, baselines={"synthetic_complex": 0.32})
    names = [t.name for t in fig.data]
    assert "same complex" in names and "same pathway" in names and "mean over sources" in names
    baseline = next(t for t in fig.data if t.name == "same complex: pixel statistics")
    assert list(baseline.y) == [0.32, 0.32]
    complex_trace = next(t for t in fig.data if t.name == "same complex")
    assert list(complex_trace.x) == [1, 2, 3, 4] and list(complex_trace.y) == [0.2, 0.35, 0.3, 0.25]
    assert any(s.x0 == 2 for s in fig.layout.shapes)  # the chosen block is marked
    assert any("chosen: block 2" in (a.text or "") for a in fig.layout.annotations)
    empty = block_scores_figure(pd.DataFrame())
    assert not empty.data and "no per-block scores" in empty.layout.annotations[-1].text


def test_the_provenance_footer_names_the_block_the_map_was_embedded_from():
    info = {"screen": "demo", "run": "default", "checkpoint": "models/mae_tiny_demo",
            "primary": {"embedder": "mae", "align": "tvn",
                        "mae_block": {"chosen": 2, "depth": 4, "scored": True, "channelwise": True}}}
    text = str(provenance_footer(info).children[0].children)
    assert "MAE block: 2 of 4 (best of every block on this screen's annotations), channel-wise" in text
    info["primary"].pop("mae_block")
    assert "MAE block" not in str(provenance_footer(info).children[0].children)


def test_block_auto_takes_the_checkpoints_recorded_choice(tmp_path):
    """--block auto (the default) and no --channelwise: the checkpoint's embedding.json, else the last
    block pooled; an explicit option wins; a broken file is named."""
    from precompute.embed.mae_options import resolve_embedding_choice

    assert resolve_embedding_choice(tmp_path, "auto", None) == ("last", False)
    (tmp_path / "embedding.json").write_text('{"block": 2, "channelwise": true}')
    assert resolve_embedding_choice(tmp_path, "auto", None) == ("2", True)
    assert resolve_embedding_choice(tmp_path, "best", False) == ("best", False)
    (tmp_path / "embedding.json").write_text("{oops")
    with pytest.raises(ValueError, match="embedding.json"):
        resolve_embedding_choice(tmp_path, "auto", None)


def test_the_benchmarks_page_plots_the_runs_block_scores(tiny_store):
    """The tiny store is embedded with the shipped model, whose embedding.json asks for --block best:
    the page's section draws one point per block and names the chosen block."""
    import importlib

    from phenomix.settings import Settings
    from phenomix_dash import create_app, data

    create_app(Settings(store=tiny_store))
    d = data.get_data()
    info = d.stage_info("embed", "mae")["block"]
    section = importlib.import_module("phenomix_dash.pages.benchmarks").blocks_section(d)
    text = str(section)
    assert f"Chosen: block {info['chosen']} of 4" in text and "benchmarks-blocks-figure" in text
    graph = next(c for c in section.children if getattr(c, "id", None) == "benchmarks-blocks-figure")
    complex_trace = next(t for t in graph.figure.data if t.name == "same complex")
    assert list(complex_trace.x) == [1, 2, 3, 4]
    assert list(complex_trace.y) == [s["recall_synthetic_complex"] for s in info["scores"]]
