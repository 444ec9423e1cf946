"""Aggregation of wells into perturbation entities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.aggregate import ENTITY_COLUMNS, aggregate_perturbations, pert_id_for


@pytest.fixture
def small_screen():
    rng = np.random.default_rng(0)
    rows = []
    for plate, batch in (("P1", "B1"), ("P2", "B1"), ("P3", "B2")):
        for g, guides in (("TP53", ["g1", "g2"]), ("MTOR", ["g1"])):
            for guide in guides:
                rows.append(
                    dict(
                        perturbation_type="crispr",
                        perturbation=g,
                        gene=g,
                        guide=f"{g}_{guide}",
                        compound=None,
                        concentration_um=np.nan,
                        plate=plate,
                        batch=batch,
                    )
                )
        rows.append(
            dict(
                perturbation_type="orf",
                perturbation="TP53",
                gene="TP53",
                guide=None,
                compound=None,
                concentration_um=np.nan,
                plate=plate,
                batch=batch,
            )
        )
        for conc in (0.1, 1.0, 10.0):
            rows.append(
                dict(
                    perturbation_type="compound",
                    perturbation="CPD0012",
                    gene=None,
                    guide=None,
                    compound="CPD0012",
                    concentration_um=conc,
                    plate=plate,
                    batch=batch,
                )
            )
        for _ in range(2):
            rows.append(
                dict(
                    perturbation_type="negative_control",
                    perturbation="DMSO",
                    gene=None,
                    guide=None,
                    compound="DMSO",
                    concentration_um=np.nan,
                    plate=plate,
                    batch=batch,
                )
            )
    wells = pd.DataFrame(rows)
    wells["well_id"] = [f"w{i}" for i in range(len(wells))]
    return rng.normal(size=(len(wells), 6)), wells


def test_means_and_counts_match_pandas_groupby(small_screen):
    emb, wells = small_screen
    agg, table = aggregate_perturbations(emb, wells)
    assert list(table.columns) == list(ENTITY_COLUMNS)
    assert table["pert_id"].is_unique
    pooled = table[table["level"] == "pooled"].set_index(["perturbation_type", "perturbation"])
    keys = [wells["perturbation_type"], wells["perturbation"]]
    expected = pd.DataFrame(emb).groupby(keys).mean()
    got = pd.DataFrame(agg[table["level"].eq("pooled").to_numpy()], index=pooled.index)
    pd.testing.assert_frame_equal(got.sort_index(), expected.sort_index(), check_names=False, atol=1e-12)
    g = wells.groupby(keys)
    pd.testing.assert_series_equal(pooled["n_wells"].sort_index(), g.size().sort_index(), check_names=False)
    pd.testing.assert_series_equal(
        pooled["n_plates"].sort_index(), g["plate"].nunique().sort_index(), check_names=False
    )
    pd.testing.assert_series_equal(
        pooled["n_batches"].sort_index(), g["batch"].nunique().sort_index(), check_names=False
    )
    pd.testing.assert_series_equal(
        pooled["n_guides"].sort_index(), g["guide"].nunique().sort_index(), check_names=False
    )


def test_crispr_and_orf_of_a_gene_stay_separate(small_screen):
    emb, wells = small_screen
    _, table = aggregate_perturbations(emb, wells)
    tp53 = table[table["gene"] == "TP53"]
    assert sorted(tp53["pert_id"]) == ["crispr:TP53", "orf:TP53"]
    assert tp53.set_index("pert_id").loc["crispr:TP53", "n_guides"] == 2


def test_compounds_get_pooled_and_per_dose_entities(small_screen):
    emb, wells = small_screen
    agg, table = aggregate_perturbations(emb, wells)
    cpd = table[table["perturbation"] == "CPD0012"]
    assert list(cpd["pert_id"]) == [
        "compound:CPD0012",
        "compound:CPD0012@0.1",
        "compound:CPD0012@1.0",
        "compound:CPD0012@10.0",
    ]
    assert list(cpd["level"]) == ["pooled", "dose", "dose", "dose"]
    assert cpd["concentration_um"].isna().iloc[0] and list(cpd["concentration_um"].iloc[1:]) == [0.1, 1.0, 10.0]
    assert list(cpd["n_wells"]) == [9, 3, 3, 3]
    for _, row in cpd.iloc[1:].iterrows():
        m = ((wells["perturbation"] == "CPD0012") & (wells["concentration_um"] == row["concentration_um"])).to_numpy()
        np.testing.assert_allclose(agg[row.name], emb[m].mean(axis=0), atol=1e-12)


def test_controls_are_aggregated_too(small_screen):
    emb, wells = small_screen
    agg, table = aggregate_perturbations(emb, wells)
    row = table.index[table["pert_id"] == "negative_control:DMSO"][0]
    np.testing.assert_allclose(agg[row], emb[wells["perturbation"].eq("DMSO").to_numpy()].mean(axis=0), atol=1e-12)
    assert table.loc[row, "n_wells"] == 6 and table.loc[row, "level"] == "pooled"


def test_median_matches_pandas(small_screen):
    emb, wells = small_screen
    agg, table = aggregate_perturbations(emb, wells, method="median")
    expected = pd.DataFrame(emb).groupby([wells["perturbation_type"], wells["perturbation"]]).median()
    pooled = table["level"].eq("pooled").to_numpy()
    got = pd.DataFrame(
        agg[pooled], index=pd.MultiIndex.from_frame(table.loc[pooled, ["perturbation_type", "perturbation"]])
    )
    pd.testing.assert_frame_equal(got.sort_index(), expected.sort_index(), check_names=False, atol=1e-12)


def test_replicate_cosine_is_mean_pairwise_cosine(small_screen):
    emb, wells = small_screen
    emb[0] = 0.0  # a zero well: cosine 0 with everything, must not break the formula
    _, table = aggregate_perturbations(emb, wells)
    for _, row in table.iterrows():
        m = (wells["perturbation_type"] == row["perturbation_type"]) & (wells["perturbation"] == row["perturbation"])
        if row["level"] == "dose":
            m &= wells["concentration_um"] == row["concentration_um"]
        x = emb[m.to_numpy()]
        if len(x) < 2:
            assert np.isnan(row["replicate_cosine"])
            continue
        norms = np.linalg.norm(x, axis=1)
        u = x / np.where(norms > 0, norms, 1)[:, None]
        s = u @ u.T
        assert row["replicate_cosine"] == pytest.approx(s[np.triu_indices(len(x), 1)].mean(), abs=1e-12)


def test_ids_are_url_safe_and_unique():
    assert pert_id_for("compound", "Lorlatinib?(PF-6463922)") == "compound:Lorlatinib%3F%28PF-6463922%29"
    assert pert_id_for("compound", "a/b c", 0.003) == "compound:a%2Fb%20c@0.003"
    wells = pd.DataFrame(
        {
            "perturbation_type": ["compound"] * 4,
            "perturbation": ["a b", "a b", "a/b", "a%20b"],
            "concentration_um": [1.0, 2.0, 1.0, 1.0],
        }
    )
    _, table = aggregate_perturbations(np.eye(4), wells)
    assert table["pert_id"].is_unique and len(table) == 7


def test_float32_kept_and_shape_errors(small_screen):
    emb, wells = small_screen
    agg, _ = aggregate_perturbations(emb.astype(np.float32), wells)
    assert agg.dtype == np.float32
    with pytest.raises(ValueError, match="wells has"):
        aggregate_perturbations(emb[:-1], wells)
    bad = wells.copy()
    bad.loc[5, "perturbation"] = None
    with pytest.raises(ValueError, match="row index 5"):
        aggregate_perturbations(emb, bad)


def test_many_chunks_give_same_result(monkeypatch):
    """Group sums run in row chunks; chunk boundaries must not change anything."""
    import precompute.aggregate as agg_mod

    rng = np.random.default_rng(1)
    n = 500
    wells = pd.DataFrame(
        {
            "perturbation_type": "crispr",
            "perturbation": rng.choice(list("ABCDEFG"), n),
            "plate": rng.choice(["p1", "p2"], n),
        }
    )
    emb = rng.normal(size=(n, 4))
    ref, _ = aggregate_perturbations(emb, wells)
    monkeypatch.setattr(agg_mod, "_CHUNK", 37)
    got, _ = aggregate_perturbations(emb, wells)
    np.testing.assert_allclose(got, ref, atol=1e-12)
