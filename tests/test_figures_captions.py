"""Whatever a figure shows a part of says so with both counts, and nothing says "sample" when
nothing was sampled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phenomix_dash.figures.activity import distance_distribution_figure
from phenomix_dash.figures.alignment import batch_correction_figure
from phenomix_dash.figures.benchmarks import batch_figure, replicate_map_figure
from phenomix_dash.figures.captions import batch_caption, replicate_caption, umap_fit_caption, with_caption
from phenomix_dash.figures.map import colour_values, embedding_figure
from phenomix_dash.figures.plates_qc import position_similarity_figure


def test_captions_name_both_counts_and_only_when_sampled():
    assert umap_fit_caption(100_000, 1_032_192, "wells") == (
        "UMAP fitted on 100,000 of 1,032,192 wells; the others placed from their nearest fitted wells")
    assert umap_fit_caption(192, 192, "wells") is None and umap_fit_caption(None, 192, "wells") is None
    info = {"replicate_map": {"with_replicates": 17_000, "queried": 2000}}
    assert replicate_caption(info, 1990) == "replicate mAP over a seeded sample of 2,000 of 17,000 perturbations with replicates"
    assert replicate_caption({"replicate_map": {"with_replicates": 60, "queried": 60}}, 60) is None
    old = {"replicate_map_sample": "at most 2000 perturbations (seeded) query; see docs/artifacts.md"}
    assert "2,000 perturbations, a seeded sample" in replicate_caption(old, 2000)
    assert replicate_caption(old, 300) is None and replicate_caption({}, 5000) is None
    assert batch_caption(3000, 310_000) == "batch metrics on a stratified sample of 3,000 of 310,000 wells"
    assert batch_caption(192, 192) is None and batch_caption(None, 192) is None
    assert with_caption("T", None, "a", "b") == "T<br><sup>a<br>b</sup>" and with_caption("T", None) == "T"


def test_map_title_says_drawn_sample_and_umap_fit_or_neither():
    rng = np.random.default_rng(0)
    small = pd.DataFrame({"v": rng.random(50)})
    fig = embedding_figure(rng.normal(size=(50, 2)), colour_values(small, "v"), title="Raw",
                           notes=(umap_fit_caption(50, 50, "wells"),))
    assert "sample" not in fig.layout.title.text and "of" not in fig.layout.title.text.split("<sup>")[1]
    big = pd.DataFrame({"v": rng.random(3000)})
    note = umap_fit_caption(1000, 3000, "wells")
    fig = embedding_figure(rng.normal(size=(3000, 2)), colour_values(big, "v"), title="Raw", max_points=1000,
                           sample_size=400, notes=(note,))
    assert "400 of 3,000 wells drawn" in fig.layout.title.text and "UMAP fitted on 1,000 of 3,000 wells" in fig.layout.title.text


def test_violins_say_how_many_wells_they_were_drawn_from():
    rng = np.random.default_rng(1)
    v = rng.random(1300)
    t = np.array(["negative_control"] * 300 + ["crispr"] * 1000)
    fig = distance_distribution_figure(v, t, max_per_group=500)
    assert "violins from a seeded sample of 800 of 1,300 wells" in fig.layout.title.text
    assert [len(tr.y) for tr in fig.data] == [300, 500]
    full = distance_distribution_figure(v, t, max_per_group=5000)
    assert "sample" not in full.layout.title.text
    assert "sample" not in distance_distribution_figure(v, t, kind="ecdf", max_per_group=500).layout.title.text


def test_position_statistic_names_its_control_count():
    stats = pd.DataFrame({"space": ["raw"], "same_position": [0.5], "different_position": [0.1]})
    assert "from a seeded sample of 50,000 of 80,000 negative-control wells" in position_similarity_figure(
        stats, 50_000, 80_000).layout.title.text
    text = position_similarity_figure(stats, 96, 96).layout.title.text
    assert "from all 96 negative-control wells" in text and "sample" not in text


def test_benchmark_figures_carry_their_sampling_caption():
    rep = pd.DataFrame({"embedder": ["mae"], "space": ["raw"], "map": [0.2]})
    cap = replicate_caption({"replicate_map": {"with_replicates": 5000, "queried": 2000}}, 2000)
    assert "2,000 of 5,000" in replicate_map_figure(rep, cap).layout.title.text
    assert replicate_map_figure(rep).layout.title.text is None
    batch = pd.DataFrame({"embedder": ["mae"], "space": ["raw"], "label": ["batch"], "accuracy": [0.9]})
    assert "3,000 of 9,000 wells" in batch_figure(batch, batch_caption(3000, 9000)).layout.title.text
    assert batch_figure(batch).layout.title.text is None
    summary = pd.DataFrame({"metric": ["batch_accuracy"], "label": ["batch"], "group": ["mixing"], "raw": [0.9],
                            "aligned": [0.5], "chance": [0.33]})
    fig = batch_correction_figure(summary, captions=(cap, None))
    assert "2,000 of 5,000" in fig.layout.title.text
    assert batch_correction_figure(summary).layout.title.text == "Effect of alignment"


def test_part_of_says_all_when_nothing_is_left_out():
    from phenomix_dash.figures.captions import part_of

    assert part_of(40, 240, "gene") == "40 of 240 genes" and part_of(24, 24, "compound") == "all 24 compounds"
    assert part_of(1, 1, "well") == "1 well" and part_of(4, 47, "well") == "4 of 47 wells"
