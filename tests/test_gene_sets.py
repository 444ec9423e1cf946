"""Gene sets (#16): parsing a pasted list (unknown names listed, not dropped), annotation sets, the URL
form, and the set statistics (a null of random same-size sets: calibrated, and sensitive to a true
complex of the synthetic screen)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from phenomix_dash import gene_sets as gs

PERTS = pd.DataFrame({
    "pert_id": ["crispr:TP53", "orf:TP53", "crispr:MDM2", "compound:CPD_1", "compound:CPD_1@1.0",
                "compound:CPD_2", "negative_control:DMSO"],
    "perturbation_type": ["crispr", "orf", "crispr", "compound", "compound", "compound", "negative_control"],
    "perturbation": ["TP53", "TP53", "MDM2", "CPD_1", "CPD_1", "CPD_2", "DMSO"],
    "level": ["pooled", "pooled", "pooled", "pooled", "dose", "pooled", "pooled"],
    "gene": ["TP53", "TP53", "MDM2", None, None, None, None],
})


def test_parse_names_splits_dedups_and_keeps_spelling():
    assert gs.parse_names("TP53, mdm2\nMDM2;  cpd_1\tFOO,,") == ["TP53", "mdm2", "cpd_1", "FOO"]
    assert gs.parse_names("") == [] and gs.parse_names(None) == []


@pytest.mark.parametrize("text", ["TP53 <script>", "a" * 200, "x\x00y"])
def test_parse_names_refuses_what_is_not_a_name(text):
    with pytest.raises(gs.SetError, match="not a gene or compound name"):
        gs.parse_names(text)


def test_parse_names_caps_the_list_with_a_message():
    with pytest.raises(gs.SetError, match=f"at most {gs.MAX_LIST_NAMES}"):
        gs.parse_names(" ".join(f"G{i}" for i in range(gs.MAX_LIST_NAMES + 1)))


def test_unknown_names_are_listed_not_dropped():
    index = gs.name_index(PERTS)
    rows, unknown = gs.resolve_names(["tp53", "NOPE1", "CPD_1", "crispr:MDM2", "nope2"], index)
    # A gene names its CRISPR and ORF rows; a compound its pooled row, not its doses.
    assert PERTS["pert_id"].to_numpy()[rows].tolist() == ["crispr:TP53", "orf:TP53", "crispr:MDM2", "compound:CPD_1"]
    assert unknown == ("NOPE1", "nope2")


def test_aliases_resolve_common_names():
    index = gs.name_index(PERTS, {"compound:CPD_2": ["aspirin"]})
    rows, unknown = gs.resolve_names(["Aspirin"], index)
    assert PERTS["pert_id"].to_numpy()[rows].tolist() == ["compound:CPD_2"] and unknown == ()


def test_annotation_sets_from_the_screens_tables():
    genes = pd.DataFrame({"gene": ["TP53", "MDM2", "ATM", "SOLO"], "complex": ["C1", "C1", "C2", "C3"],
                          "pathway": ["P", "P", "P", None]})
    targets = pd.DataFrame({"compound": ["CPD_1", "CPD_1"], "gene": ["TP53", "MDM2"], "source": ["x", "x"]})
    moa = pd.DataFrame({"compound": ["CPD_1", "CPD_2"], "moa": ["MDM inhibitor", "MDM inhibitor"]})
    sets = gs.annotation_sets(genes, targets, moa)
    assert sets["complex"] == {"C1": ["MDM2", "TP53"]}  # one-member complexes are left out
    assert sets["pathway"] == {"P": ["ATM", "MDM2", "TP53"]}
    assert sets["targets"] == {"CPD_1": ["CPD_1", "MDM2", "TP53"]}  # the compound with its targets
    assert sets["moa"] == {"MDM inhibitor": ["CPD_1", "CPD_2"]}
    assert gs.annotation_sets(None, None, None) == {}


def test_url_form_round_trips_and_refuses_crafted_values():
    key = gs.encode_list(["TP53", "NOPE1"])
    assert gs.decode_set(key) == ("list", ["TP53", "NOPE1"])
    assert gs.decode_set(gs.encode_annotation("complex", "C1")) == ("ann", "complex", "C1")
    assert gs.decode_set(None) is None and gs.decode_set("") is None
    for bad in ("ann:nosuch:C1", "ann:complex:", "list:", "zzz", ["list:TP53"], {"a": 1}, "list:" + "G," * 3000):
        with pytest.raises(gs.SetError):
            gs.decode_set(bad)
    with pytest.raises(gs.SetError, match="at most"):
        gs.encode_list([f"GENE_{i:05d}_LONGNAME_X" for i in range(150)])


def test_resolve_set_reports_the_unknown_names():
    sets = {"complex": {"C1": ["TP53", "MDM2", "GONE"]}}
    s = gs.resolve_set("ann:complex:C1", PERTS, sets)
    assert s.size == 3 and s.unknown == ("GONE",) and s.label == "complex C1"
    with pytest.raises(gs.SetError, match="no complex named 'C9'"):
        gs.resolve_set("ann:complex:C9", PERTS, sets)


def test_mean_pairwise_cosine_matches_the_pairs():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(20, 8))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    rows = np.array([1, 4, 7, 9])
    pairs = [u[a] @ u[b] for i, a in enumerate(rows) for b in rows[i + 1:]]
    assert gs.mean_pairwise_cosine(u, rows) == pytest.approx(np.mean(pairs))


def test_each_random_sets_null_value_is_its_mean_pairwise_cosine():
    """The null's sparse sum gives, set by set, what the observed statistic is for a real set."""
    rng = np.random.default_rng(2)
    u = rng.normal(size=(60, 8)).astype(np.float32)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    draws = gs.random_sets(np.arange(5, 60), 7, 50, seed=4)
    got = gs.random_set_cosines(u, draws)
    want = [gs.mean_pairwise_cosine(u, r) for r in draws]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_random_sets_have_distinct_members_from_the_pool():
    pool = np.arange(100, 130)
    draws = gs.random_sets(pool, 5, 400, seed=3)
    assert draws.shape == (400, 5) and np.isin(draws, pool).all()
    assert all(len(set(r)) == 5 for r in draws)
    most = gs.random_sets(pool, 20, 50, seed=3)  # most of the pool: the random-keys branch
    assert most.shape == (50, 20) and all(len(set(r)) == 20 for r in most) and np.isin(most, pool).all()


def test_null_is_calibrated_random_sets_give_uniform_p():
    """Sets drawn at random from structureless embeddings: p is uniform (KS), about 5% below 0.05."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(300, 16))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pool = np.arange(300)
    ps = np.array([gs.set_statistics(u, rng.choice(300, 6, replace=False), pool, n_null=200, seed=i).p_value
                   for i in range(200)])
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert 0.01 <= (ps <= 0.05).mean() <= 0.11


def test_statistics_are_seeded_and_state_the_null():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(50, 4))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    a = gs.set_statistics(u, np.array([1, 2, 3]), np.arange(50), n_null=99)
    b = gs.set_statistics(u, np.array([1, 2, 3]), np.arange(50), n_null=99)
    assert a.p_value == b.p_value and a.n_null == 99 and a.pool_size == 50
    # (1 + random sets at least as coherent) / (1 + 99): a whole number of hundredths, never 0.
    hundredths = a.p_value * 100
    assert abs(hundredths - round(hundredths)) < 1e-9 and 1 <= round(hundredths) <= 100
    with pytest.raises(gs.SetError, match="at least 2 members"):
        gs.set_statistics(u, np.array([1]), np.arange(50))


def test_member_activity_keeps_unscored_members_empty():
    act = pd.DataFrame({"pert_id": ["crispr:TP53", "crispr:MDM2"], "mean_average_precision": [0.2, 0.9],
                        "q_value": [0.5, 0.01], "active": [False, True]})
    table = gs.member_activity(PERTS, act, np.array([0, 1, 2]))
    assert table["pert_id"].tolist() == ["crispr:MDM2", "crispr:TP53", "orf:TP53"]
    assert pd.isna(table.loc[2, "mean_average_precision"])  # not scored: no made-up number
    assert gs.fraction_active(table) == (1, 2)


def test_member_wells_and_points_cover_every_dose():
    wells = pd.DataFrame({"perturbation_type": ["compound", "compound", "crispr", "compound"],
                          "perturbation": ["CPD_1", "CPD_1", "TP53", "CPD_2"]})
    assert gs.member_well_rows(wells, PERTS, np.array([3])).tolist() == [0, 1]
    assert gs.member_point_rows(PERTS, np.array([3])).tolist() == [3, 4]


# -- on a generated screen, whose truth is known ------------------------------------------------

def test_true_complexes_cluster_inactive_ones_do_not():
    """The synthetic demo screen's truth: complexes whose genes all have a phenotype give small p;
    complexes whose genes have none are spread like the null. Embeddings straight from the
    generator (no images), normalised to each plate's negative controls, averaged per gene."""
    from precompute.synth import SynthConfig
    from precompute.synth.embeddings import generate_embeddings

    wells, x, truth = generate_embeddings(SynthConfig.preset("demo"))
    x = x.astype(np.float64)
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    for plate in wells["plate"].unique():
        m = (wells["plate"] == plate).to_numpy()
        x[m] = (x[m] - x[m & ctrl].mean(axis=0)) / (x[m & ctrl].std(axis=0) + 1e-6)
    crispr = (wells["perturbation_type"] == "crispr").to_numpy()
    genes = sorted(wells.loc[crispr, "gene"].unique())
    means = np.stack([x[crispr & (wells["gene"] == g).to_numpy()].mean(axis=0) for g in genes])
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    perts = pd.DataFrame({"pert_id": [f"crispr:{g}" for g in genes], "perturbation_type": "crispr",
                          "perturbation": genes, "level": "pooled", "gene": genes})
    index = gs.name_index(perts)
    share = truth["genes"].groupby("complex")["active"].mean()
    p = {}
    for name, members in gs.annotation_sets(truth["genes"])["complex"].items():
        rows, unknown = gs.resolve_names(members, index)
        assert unknown == ()
        p[name] = gs.set_statistics(unit, rows, gs.null_pool(perts, rows), n_null=200).p_value
    active = [p[c] for c in p if share[c] == 1]
    inactive = [p[c] for c in p if share[c] == 0]
    assert len(active) >= 10 and len(inactive) >= 10
    assert np.median(active) < 0.01 and np.mean(np.array(active) < 0.05) > 0.8
    assert np.median(inactive) > 0.2  # no structure: no small p beyond chance
    assert np.mean(np.array(inactive) < 0.05) < 0.2


def test_set_views_on_the_tiny_store(tiny_store):
    from phenomix_dash import set_data as sd
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(tiny_store)
    genes = sorted(d.ground_truth("genes")["gene"])[:3]
    key = gs.encode_list([*genes, "NOT_A_GENE"])
    s, problem = sd.try_set(d, key)
    assert problem is None and s.unknown == ("NOT_A_GENE",)
    wells = d.wells.iloc[sd.member_rows(d, key, "wells")]
    assert set(wells["gene"]) == set(genes)
    assert sd.try_set(d, "ann:complex:NOPE")[1] == "this screen has no complex named 'NOPE'"
    assert sd.try_set(d, ["crafted"]) == (None, None)


def test_pages_outline_exactly_the_members(app_data):
    """The views a user sees with a set chosen: heatmap rows/columns, map ring and plate squares
    are the set's members and nothing else; a crafted set value is ignored, not raised."""
    from page_helpers import page

    from phenomix_dash import set_data as sd
    from phenomix_dash.figures.sets import outlined_positions
    from phenomix_dash.map_views import full_figure, set_trace_index

    d = app_data
    genes = sorted(d.wells.loc[d.wells["perturbation_type"] == "crispr", "gene"].dropna().astype(str).unique())[:3]
    key = gs.encode_list([*genes, "NOT_A_GENE"])
    members = sd.member_pert_ids(d, key)
    S = page("similarity")
    fig, block, note = S.update_heatmap("gene_gene", "set", [], None, None, [], 20, 0.5, None, key)
    rows, cols = outlined_positions(fig)
    assert rows and [block["rows"][i] for i in rows] == [r for r in block["rows"] if r in members]
    assert [block["cols"][j] for j in cols] == [c for c in block["cols"] if c in members]
    assert "members of the chosen set" in note

    fig = full_figure(d, "wells", "aligned", "perturbation_type", None, None, key)
    ring = fig.data[set_trace_index(d, "wells", "aligned")]
    wanted = d.wells["gene"].isin(genes) & (d.wells["perturbation_type"] == "crispr")
    assert len(ring.x) == int(wanted.sum())

    plate = str(d.wells.loc[wanted, "plate"].iloc[0])
    ov = page("overview").update_plate_figure(plate, "perturbation_type", None, key)
    squares = ov.data[-1]
    on_plate = d.wells[wanted & (d.wells["plate"] == plate)]
    assert sorted(squares.text) == sorted(on_plate["well_id"])
    heat, _ = page("plates").update_metric_views("distance_to_controls_aligned", plate, key)
    assert sorted(heat.data[-1].text) == sorted(on_plate["well_id"])

    for crafted in (["list:x"], {"a": 1}, "list:<script>", "ann:nosuch:x"):
        fig, _, _ = S.update_heatmap("gene_gene", "active", [], None, None, [], 10, 0.5, None, crafted)
        assert outlined_positions(fig) == ([], [])


def test_a_p_value_at_the_floor_of_its_null_is_shown_as_a_bound() -> None:
    from phenomix_dash.figures.sets import p_text

    assert p_text(1 / 1001, 1000) == "p < 0.001"  # no random set reached it: 0.000999 would overstate precision
    assert p_text(0.036, 1000) == "p = 0.036"
