"""Channel attribution (precompute.channel_attribution) on synthetic arrays whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute import channel_attribution as ca

CHANNELS = ["DNA", "ER", "RNA", "Mito"]


class ChannelMeanEmbedder:
    """A toy channel-agnostic embedder: tiles (n, C, t, t) -> the mean of each channel's pixels
    along a fixed random direction per *channel identity*, summed: leaving a channel out removes
    exactly its contribution, as a CA-MAE ideally would. A tile's top-left pixel says which
    channel it is (channel index / 10), so the embedder knows which channels it was given."""

    def __init__(self, n_channels: int, dim: int = 16, seed: int = 0) -> None:
        self.directions = np.random.default_rng(seed).normal(size=(n_channels, dim))
        self.keep_calls: list[int] = []
        self.dim = dim

    def embed_tiles(self, tiles: np.ndarray) -> np.ndarray:
        self.keep_calls.append(tiles.shape[1])
        means = tiles.mean(axis=(2, 3))  # (n, C present)
        ids = np.rint(tiles[:, :, 0, 0] * 10).astype(int)
        return np.einsum("nc,ncd->nd", means, self.directions[ids]).astype(np.float32)


def synthetic_sets(effect_channel: int | None, n_ctrl: int = 40, n_pert: int = 6, n_plates: int = 2,
                   dim: int = 16, effect: float = 3.0, seed: int = 0):
    """Embeddings per channel set for controls and one perturbation whose phenotype lives only
    in ``effect_channel`` (None: a perturbation that is just more controls)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(CHANNELS), dim))
    n = n_ctrl + n_pert
    values = rng.normal(size=(n, len(CHANNELS)))  # per well, each channel's (noisy) signal
    plates = np.array([f"P{i % n_plates}" for i in range(n)])
    values += np.where(plates == "P1", 0.5, 0.0)[:, None]  # a plate offset the controls must cancel
    if effect_channel is not None:
        values[n_ctrl:, effect_channel] += effect
    sets = {ca.ALL: values @ directions}
    for i, c in enumerate(CHANNELS):
        keep = [j for j in range(len(CHANNELS)) if j != i]
        sets[c] = values[:, keep] @ directions[keep]
    is_control = np.arange(n) < n_ctrl
    return sets, plates, is_control, [np.arange(n_ctrl, n)]


@pytest.mark.parametrize("channel", range(len(CHANNELS)))
def test_phenotype_in_one_channel_is_attributed_to_it(channel):
    sets, plates, ctrl, groups = synthetic_sets(channel)
    table = ca.channel_attribution(sets, plates, ctrl, groups, CHANNELS)
    row = table.iloc[0]
    assert row["has_phenotype"] and row["beyond_controls"]
    assert row["top_channel"] == CHANNELS[channel]
    # without that channel the phenotype is (nearly) gone: it moves by about its whole size, far
    # more than groups of control wells move without it
    assert row[f"shift_{CHANNELS[channel]}"] > 0.8 and row[CHANNELS[channel]] > 5
    others = [c for c in CHANNELS if c != CHANNELS[channel]]
    assert max(row[c] for c in others) < row[CHANNELS[channel]]


def test_controls_only_gives_no_phenotype_and_nan():
    sets, plates, ctrl, groups = synthetic_sets(None)
    table = ca.channel_attribution(sets, plates, ctrl, groups, CHANNELS)
    row = table.iloc[0]
    assert not row["has_phenotype"]
    assert all(np.isnan(row[c]) for c in CHANNELS)
    assert row["top_channel"] == "" and row["second_channel"] == ""
    assert row["phenotype"] <= row["null"]


def test_known_active_overrides_the_noise_test_but_not_a_zero_phenotype():
    sets, plates, ctrl, groups = synthetic_sets(None)
    table = ca.channel_attribution(sets, plates, ctrl, groups, CHANNELS, known_active=[True])
    assert table.loc[0, "has_phenotype"] and not table.loc[0, "beyond_controls"]
    assert np.isfinite(table.loc[0, CHANNELS].astype(float)).all()
    with pytest.raises(ValueError, match="known_active has 2 values for 1 groups"):
        ca.channel_attribution(sets, plates, ctrl, groups, CHANNELS, known_active=[True, False])


def test_a_channel_that_moves_every_embedding_is_not_ranked_first_for_it():
    """Dropping a channel may move every well, controls included (the demo MAE and DNA): the raw
    shift then ranks it first for any perturbation; calibrated against control groups it is not."""
    sets, plates, ctrl, groups = synthetic_sets(2, effect=2.0)
    rng = np.random.default_rng(5)
    noisy = sets["DNA"] + rng.normal(0, 6.0, sets["DNA"].shape)  # without DNA every well scatters
    table = ca.channel_attribution({**sets, "DNA": noisy}, plates, ctrl, groups, CHANNELS)
    row = table.iloc[0]
    assert max(CHANNELS, key=lambda c: row[f"shift_{c}"]) == "DNA", "raw shift: DNA first"
    assert row["top_channel"] == "RNA", "calibrated: the channel the phenotype lives in"


def test_missing_channel_set_is_named():
    sets, plates, ctrl, groups = synthetic_sets(0)
    del sets["ER"]
    with pytest.raises(ValueError, match="without \\['ER'\\]"):
        ca.channel_attribution(sets, plates, ctrl, groups, CHANNELS)


def test_control_residuals_leave_the_control_itself_out():
    emb = np.array([[1.0], [3.0], [5.0], [10.0]])
    res = ca.control_residuals(emb, np.array(["A"] * 4), np.array([True, True, True, False]))
    np.testing.assert_allclose(res[:, 0], [1 - 4, 3 - 3, 5 - 2, 10 - 3])
    lone = ca.control_residuals(emb, np.array(["A", "B", "B", "B"]), np.array([True, True, False, False]))
    assert np.isnan(lone).all()  # neither plate has 2 controls


def test_rank_channels_and_summary():
    table = pd.DataFrame({"has_phenotype": [True, True, False], "DNA": [0.2, 0.9, np.nan],
                          "ER": [0.5, 0.1, np.nan], "RNA": [np.nan, 0.3, np.nan]})
    ranked = ca.rank_channels(table, ["DNA", "ER", "RNA"])
    assert ranked["top_channel"].tolist() == ["ER", "DNA", ""]
    assert ranked["second_channel"].tolist() == ["DNA", "RNA", ""]
    summary = ca.channel_summary(pd.concat([table, ranked], axis=1), ["DNA", "ER", "RNA"]).set_index("channel")
    assert summary.loc["DNA", "n_top"] == 1 and summary.loc["ER", "n_top"] == 1 and summary.loc["RNA", "n_top"] == 0


def test_sample_counts_and_caption():
    plates = np.array(["P1"] * 10 + ["P2"] * 10)
    ctrl = np.zeros(20, bool)
    ctrl[[0, 1, 2, 3, 10, 11, 12, 13]] = True
    members = [np.array([4, 5, 6, 14, 15]), np.array([7, 8]), np.array([16, 17, 18]), np.array([9, 19])]
    drawn = ca.sample_wells(["a", "b", "c", "d"], members, plates, ctrl, priority=np.array([0.5, 0.01, np.nan, 0.2]),
                            max_perturbations=2, max_wells_per_perturbation=3, controls_per_plate=2,
                            tiles_per_well=4, tiles_per_well_total=16, seed=3)
    assert drawn.perturbations == ("b", "d")  # smallest priority first, NaN last
    assert all(len(g) <= 3 for g in drawn.treated_rows)
    assert len(drawn.control_rows) == 4 and ctrl[drawn.control_rows].all()
    info = drawn.describe()
    assert info == {"perturbations": 2, "perturbations_total": 4, "wells": 8, "wells_total": 20,
                    "control_wells": 4, "tiles_per_well": 4, "tiles_per_well_total": 16, "seed": 3}
    assert ca.sampling_caption(info) == ("sampled: 2 of 4 perturbations, 8 of 20 wells (4 controls), "
                                         "4 of 16 tiles per well")
    again = ca.sample_wells(["a", "b", "c", "d"], members, plates, ctrl, priority=np.array([0.5, 0.01, np.nan, 0.2]),
                            max_perturbations=2, max_wells_per_perturbation=3, controls_per_plate=2, seed=3)
    assert np.array_equal(again.rows, drawn.rows)  # seeded
    everything = ca.sample_wells(["a", "b", "c", "d"], members, plates, ctrl, max_perturbations=None,
                                 max_wells_per_perturbation=None, controls_per_plate=None)
    assert ca.sampling_caption(everything.describe()) == ("sampled: 4 of 4 perturbations, 20 of 20 wells "
                                                          "(8 controls), all tiles")


def test_embed_channel_sets_leaves_each_channel_out_of_the_same_tiles():
    rng = np.random.default_rng(0)
    images = {}
    for w in ("w0", "w1", "w2"):
        img = rng.uniform(0.2, 0.8, size=(1, len(CHANNELS), 32, 32)).astype(np.float32)
        for t_y in (0, 16):  # mark every tile's top-left pixel with its channel id
            for t_x in (0, 16):
                img[0, :, t_y, t_x] = np.arange(len(CHANNELS)) / 10
        images[w] = img
    embedder = ChannelMeanEmbedder(len(CHANNELS))
    sets = ca.embed_channel_sets(embedder, images.__getitem__, ["w0", "w1", "w2"], 16, CHANNELS,
                                 tiles_per_well=2, seed=0, wells_per_batch=2)
    assert sorted(sets) == sorted([ca.ALL, *CHANNELS])
    assert all(v.shape == (3, embedder.dim) and v.dtype == np.float32 for v in sets.values())
    assert sorted(set(embedder.keep_calls)) == [len(CHANNELS) - 1, len(CHANNELS)]
    # the toy embedder is additive over channels, so all-channels minus leave-c-out is c's part alone,
    # and the parts add back up to the whole
    parts = sum(sets[ca.ALL] - sets[c] for c in CHANNELS)
    np.testing.assert_allclose(parts, sets[ca.ALL], rtol=1e-4, atol=1e-5)


def test_channel_sets_need_two_channels():
    assert ca.channel_sets(["A", "B"]) == {ca.ALL: [0, 1], "A": [1], "B": [0]}
    with pytest.raises(ValueError, match="at least 2 channels"):
        ca.channel_sets(["DNA"])


# -- the dashboard figure ---------------------------------------------------------------------
SAMPLE = {"perturbations": 2, "perturbations_total": 4, "wells": 8, "wells_total": 20, "control_wells": 4,
          "tiles_per_well": 4, "tiles_per_well_total": 16, "seed": 0,
          "caption": "sampled: 2 of 4 perturbations, 8 of 20 wells (4 controls), 4 of 16 tiles per well"}


def test_figure_bars_per_channel_with_the_sample_caption_and_missing_as_missing():
    from phenomix_dash.figures.channel_attribution import TOP_COLOUR, channel_attribution_figure

    row = {"pert_id": "crispr:G1", "n_wells": 3, "phenotype": 12.0, "null": 8.0, "has_phenotype": True,
           "DNA": 0.2, "ER": 0.9, "RNA": np.nan, "Mito": 0.4, "top_channel": "ER", "second_channel": "Mito",
           "shift_DNA": 0.3, "shift_ER": 0.8, "shift_RNA": np.nan, "shift_Mito": 0.35}
    fig = channel_attribution_figure(row, {"channels": CHANNELS, "sample": SAMPLE})
    bar = fig.data[0]
    assert list(bar.y) == CHANNELS
    assert bar.x[2] is None and bar.x[1] == 0.9  # RNA: no bar, not a zero one
    assert "no value" in bar.hovertext[2]
    assert "+0.9 sd beyond control groups' move" in bar.hovertext[1] and "80% of its size" in bar.hovertext[1]
    assert bar.marker.color[1] == TOP_COLOUR
    assert "sampled: 2 of 4 perturbations, 8 of 20 wells" in fig.layout.title.text
    assert "3 sampled wells" in fig.layout.title.text


def test_figure_says_not_sampled_and_no_phenotype():
    from phenomix_dash.figures.channel_attribution import channel_attribution_figure

    fig = channel_attribution_figure(None, {"channels": CHANNELS, "sample": SAMPLE})
    assert not fig.data and "not among the sampled perturbations" in fig.layout.annotations[0].text
    assert "sampled: 2 of 4" in fig.layout.title.text
    flat = pd.Series({"has_phenotype": False, **{c: np.nan for c in CHANNELS}})
    fig = channel_attribution_figure(flat, {"channels": CHANNELS, "sample": None})
    assert not fig.data and "no phenotype" in fig.layout.annotations[0].text
    assert "not recorded" in fig.layout.title.text
    with pytest.raises(ValueError, match="needs options\\['channels'\\]"):
        channel_attribution_figure(None, {})


# -- the stage, on the tiny screen's full pipeline (conftest's tiny_store, MAE included) --------
def test_stage_writes_a_sampled_table_for_the_mae_only(tiny_store):
    from precompute.artifacts import ArtifactStore
    from precompute.stages.registry import REGISTRY

    assert REGISTRY.get("channel_attribution").after == "characterise"
    store = ArtifactStore(tiny_store, create=False)
    run = store.get_run("default")
    assert set(run["stages"]["channel_attribution"]) == {"mae"}  # the CA-MAE only: random/pixelstats have no channels
    stage = store.open_stage("channel_attribution", run["stages"]["channel_attribution"]["mae"])
    table = stage.table("channel_attribution")
    channels = run["screen"]["channels"]
    assert {"pert_id", "has_phenotype", "top_channel", *channels} <= set(table.columns)
    sample = stage.manifest["info"]["sample"]
    assert sample["perturbations"] == len(table) <= sample["perturbations_total"]
    assert sample["wells"] <= sample["wells_total"] == len(store.open_stage("ingest", run["stages"]["ingest"]).table("wells"))
    assert sample["caption"].startswith(f"sampled: {sample['perturbations']} of {sample['perturbations_total']}")
    no_phenotype = table[~table["has_phenotype"].astype(bool)]
    assert no_phenotype[channels].isna().all().all()


def test_perturbation_page_shows_the_attribution_above_the_feature_groups(app_data, tiny_store):
    from dash import dcc

    from phenomix_dash.perturbation_character import show_drivers

    table = app_data.artifact("channel_attribution", "channel_attribution", "mae")
    sampled = str(table["pert_id"].iloc[0])
    children, _, _ = show_drivers(sampled)
    graphs = [c for c in getattr(children, "children", []) if isinstance(c, dcc.Graph)]
    assert graphs and graphs[0].id == "perturbation-channel-attribution-figure"
    assert "sampled:" in graphs[0].figure.layout.title.text
    others = app_data.perturbations("mae")["pert_id"].astype(str)
    unsampled = next(p for p in others if p not in set(table["pert_id"].astype(str)))
    children, _, _ = show_drivers(unsampled)
    graph = next(c for c in children.children if isinstance(c, dcc.Graph))
    assert "not among the sampled perturbations" in graph.figure.layout.annotations[0].text
