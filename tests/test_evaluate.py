"""Benchmarks: relationship recall (vs EFAAR), compound-gene retrieval, mAP (copairs), batch metrics."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from precompute.evaluation import (
    batch_metrics,
    compound_gene_benchmark,
    phenotypic_activity,
    relationship_recall,
    replicate_retrieval_map,
)


@pytest.fixture(scope="module")
def bench():
    """EFAAR's benchmarking module; missing or another version is an error naming the fix, not a skip."""
    import reference_efaar

    return reference_efaar.load()[1]


@pytest.fixture(scope="module")
def annot(shared_data) -> Path:
    """The real relationship annotations (EFAAR's benchmark sources) in the shared data folder."""
    return shared_data / "relationship_annotations"


def reference_recall(bench, x, genes, data_dir, sources, pct):
    from sklearn.utils import Bunch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bench.known_relationship_benchmark(
            Bunch(features=pd.DataFrame(x), metadata=pd.DataFrame({"gene": list(genes)})),
            "gene",
            benchmark_sources=sources,
            recall_thr_pairs=[(pct / 100, (100 - pct) / 100)],
            benchmark_data_dir=str(data_dir),
        )
    col = [c for c in res.columns if c.startswith("recall_")][0]
    return res.set_index("source")[[col, "query_distribution_size"]].set_axis(["recall", "n_pairs"], axis=1)


# ----------------------------------------------------------------------------- relationship recall
def test_random_embeddings_give_recall_one_tenth():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(2000)]
    x = rng.normal(size=(2000, 32))
    i, j = rng.integers(0, 2000, 30000), rng.integers(0, 2000, 30000)
    pairs = pd.DataFrame({"entity1": np.array(genes)[i], "entity2": np.array(genes)[j], "source": "random"})
    res = relationship_recall(x, genes, pairs)
    assert res.loc[0, "recall"] == pytest.approx(0.10, abs=0.01)
    assert res.loc[0, "n_pairs"] < 30000  # self pairs and duplicates dropped
    assert res.loc[0, "lower_threshold"] < 0 < res.loc[0, "upper_threshold"]


def test_ground_truth_embeddings_give_near_perfect_recall():
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(2000)]
    x = rng.normal(size=(2000, 32))
    complexes = np.arange(1500).reshape(300, 5)  # 300 complexes of 5 genes, 500 loners
    for members in complexes:
        x[members] = rng.normal(size=32) + 0.3 * rng.normal(size=(5, 32))
    pairs = pd.DataFrame(
        [(genes[a], genes[b], "complexes") for m in complexes for a in m for b in m if a != b],
        columns=["entity1", "entity2", "source"],
    )
    res = relationship_recall(x, genes, pairs)
    assert res.loc[0, "n_pairs"] == 3000  # both directions listed, counted once
    assert res.loc[0, "recall"] > 0.9


def test_recall_equals_efaar_on_real_annotations(bench, annot):
    """Real CORUM/Reactome/SIGNOR pairs; embeddings with some complex structure."""
    rng = np.random.default_rng(2)
    sources = ["CORUM", "Reactome", "SIGNOR"]  # HuMAP and StringDB only make the reference slower
    tables = {s: pd.read_csv(annot / f"{s}.txt").assign(source=s) for s in sources}
    all_pairs = pd.concat(tables.values(), ignore_index=True)
    universe = np.array(sorted(set(all_pairs["entity1"]) | set(all_pairs["entity2"])))
    genes = rng.choice(universe, 1200, replace=False)
    x = rng.normal(size=(1200, 24))
    pos = {g: k for k, g in enumerate(genes)}
    corum = tables["CORUM"]
    for e1, e2 in corum.loc[corum.entity1.isin(pos) & corum.entity2.isin(pos), ["entity1", "entity2"]].itertuples(
        index=False, name=None
    ):
        x[pos[e2]] += 0.5 * x[pos[e1]]  # correlate annotated partners
    ref = reference_recall(bench, x, genes, annot, sources, 5.0)
    assert ref.loc["CORUM", "recall"] > 0.2  # the structure is visible, so the cut-offs matter
    for dtype in (np.float64, np.float32):
        ours = relationship_recall(x, genes, all_pairs, dtype=dtype).set_index("source")
        assert list(ours.index) == sources
        np.testing.assert_array_equal(ours.loc[ref.index, "n_pairs"], ref["n_pairs"])
        if dtype is np.float64:
            np.testing.assert_array_equal(ours.loc[ref.index, "recall"], ref["recall"])
        else:  # float32 sims may move a pair sitting on a cut-off by one ulp
            np.testing.assert_allclose(ours.loc[ref.index, "recall"], ref["recall"], atol=2 / ref["n_pairs"].min())


def test_recall_equals_efaar_on_tiny_maps_where_cutoffs_hit_annotated_pairs(bench, tmp_path):
    """Small nulls make annotated pairs sit exactly on the cut-offs: tie rules must agree."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(6, 50))
        genes = [f"G{k}" for k in rng.permutation(n)]
        x = rng.normal(size=(n, 6))
        k = int(rng.integers(3, 3 * n))
        pairs = pd.DataFrame({"entity1": rng.choice(genes, k), "entity2": rng.choice(genes + ["ABSENT"], k)})
        pairs.to_csv(tmp_path / "S.txt", index=False)
        for pct in (5.0, 10.0, 30.0):
            ref = reference_recall(bench, x, genes, tmp_path, ["S"], pct)
            ours = relationship_recall(x, genes, pairs.assign(source="S"), pct=pct, dtype=np.float64, block_rows=5)
            assert ours.loc[0, "n_pairs"] == ref.loc["S", "n_pairs"]
            assert ours.loc[0, "recall"] == ref.loc["S", "recall"], (seed, pct)


def test_recall_input_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="appears twice"):
        relationship_recall(x, ["A", "B", "A"], pd.DataFrame({"entity1": ["A"], "entity2": ["B"]}))
    res = relationship_recall(
        np.eye(3), ["A", "B", "C"], pd.DataFrame({"entity1": ["A", "X"], "entity2": ["A", "Y"], "source": ["s1", "s2"]})
    )
    assert list(res["n_pairs"]) == [0, 0] and res["recall"].isna().all()


# ----------------------------------------------------------------------------- compound-gene benchmark
def test_compound_gene_benchmark_finds_targets_at_the_active_dose():
    rng = np.random.default_rng(3)
    genes = [f"G{k}" for k in range(40)]
    gene_emb = rng.normal(size=(40, 64))
    truth = pd.DataFrame(
        {
            "treatment": ["C1", "C1", "C1", "C2", "C2"] + ["C1"] * 30,
            "gene_symbol": ["G0", "G1", "G2", "G5", "G6"] + genes[10:40],
            "nM_value": [10.0, 500.0, 5000.0, 100.0, 20000.0] + [50000.0] * 30,
        }
    )
    # C1 looks like G0 and -G1 at 10 uM (|cos| counts anti-correlation), noise at 0.1 uM.
    comp = pd.DataFrame({"perturbation": ["C1", "C1", "C2", "C3"], "concentration_um": [0.1, 10.0, 1.0, 1.0]})
    comp_emb = np.stack(
        [rng.normal(size=64), gene_emb[0] - gene_emb[1] + 0.05 * rng.normal(size=64), gene_emb[5], rng.normal(size=64)]
    )
    res = compound_gene_benchmark(comp_emb, comp, gene_emb, genes, truth, per_dose=True)
    c1 = res[res["compound"] == "C1"].set_index("concentration_um", drop=False)
    assert c1["n_positives"].iloc[0] == 2
    # pool = 35 genes of the file; G2 is grey (500 < 5000 <= 10000 nM) so left out
    assert c1["n_negatives"].iloc[0] == 35 - 2 - 1
    best = c1[c1["concentration_um"].isna()].iloc[0]
    assert best["average_precision"] == 1.0 and best["roc_auc"] == 1.0 and best["n_concentrations"] == 2
    assert c1.loc[c1["concentration_um"] == 10.0, "roc_auc"].iloc[0] == 1.0
    c2 = res[(res["compound"] == "C2") & res["concentration_um"].isna()].iloc[0]
    assert c2["average_precision"] == 1.0  # G5 found; G6 (20 uM) is a negative
    assert "C3" not in set(res["compound"])  # no truth for it


def test_compound_gene_benchmark_reads_the_real_file(annot):
    truth = pd.read_csv(annot / "compound_gene_interactions.csv")
    genes = sorted(set(truth["gene_symbol"]))
    rng = np.random.default_rng(4)
    gene_emb = rng.normal(size=(len(genes), 32))
    cpds = sorted(set(truth["treatment"]))[:20]
    comp = pd.DataFrame({"perturbation": np.repeat(cpds, 2), "concentration_um": np.tile([0.1, 1.0], len(cpds))})
    res = compound_gene_benchmark(rng.normal(size=(len(comp), 32)), comp, gene_emb, genes, truth)
    assert len(res) > 5 and res["roc_auc"].between(0, 1).all()
    assert res["roc_auc"].mean() == pytest.approx(0.5, abs=0.2)  # random embeddings: chance level


# ----------------------------------------------------------------------------- mAP
def screen_with_effects(seed=0, n_plates=6, d=32, no_ctrl_plate=False):
    rng = np.random.default_rng(seed)
    rows, x = [], []
    centers = {g: rng.normal(size=d) * (3.0 if g < 6 else 0.0) for g in range(20)}
    for p in range(n_plates):
        n_ctrl = 0 if (no_ctrl_plate and p == 0) else 12
        for _ in range(n_ctrl):
            rows.append(("negative_control", "DMSO", f"P{p}"))
            x.append(rng.normal(size=d))
        for g in range(20):
            for _ in range(2):
                rows.append(("crispr", f"G{g:02d}", f"P{p}"))
                x.append(centers[g] + rng.normal(size=d))
    return np.array(x), pd.DataFrame(rows, columns=["perturbation_type", "perturbation", "plate"])


def test_strong_perturbations_active_null_ones_not():
    x, wells = screen_with_effects()
    res = phenotypic_activity(x, wells, null_size=2000).set_index("perturbation")
    assert len(res) == 20 and "DMSO" not in res.index
    assert res.loc[[f"G{g:02d}" for g in range(6)], "active"].all()
    assert res.loc[[f"G{g:02d}" for g in range(6, 20)], "active"].mean() <= 0.15
    assert (res["q_value"] >= res["p_value"] - 1e-12).all()


def test_queries_without_negatives_are_dropped_and_chunking_is_invisible():
    x, wells = screen_with_effects(no_ctrl_plate=True)
    res = phenotypic_activity(x, wells, null_size=500).set_index("pert_id")
    assert (res["n_wells"] == 12).all() and (res["n_queries"] == 10).all()  # plate P0 has no controls
    chunked = phenotypic_activity(x, wells, null_size=500, max_pairs_per_call=100).set_index("pert_id")
    pd.testing.assert_frame_equal(res, chunked)


def copairs_activity_aps(x: np.ndarray, wells: pd.DataFrame) -> pd.DataFrame:
    """copairs' APs of treated queries against the controls of their plate (queries with a
    positive and a negative), the reference phenotypic_activity reproduces."""
    from copairs.map import average_precision

    meta = wells.assign(negcon=(wells["perturbation_type"] == "negative_control").astype(int))
    meta["key"] = np.where(meta["negcon"] == 1, [f"ctrl{i}" for i in range(len(meta))], meta["perturbation"])
    ap = average_precision(meta, x, pos_sameby=["key"], pos_diffby=[], neg_sameby=["plate"],
                           neg_diffby=["negcon"], progress_bar=False)
    return ap[(ap["negcon"] == 0) & (ap["n_pos_pairs"] > 0) & (ap["n_total_pairs"] > ap["n_pos_pairs"])]


def test_phenotypic_activity_ap_equals_copairs():
    """Our per-plate ranking gives copairs' APs (controls of the query's plate as negatives)."""
    x, wells = screen_with_effects(seed=3, no_ctrl_plate=True)
    ap = copairs_activity_aps(x, wells)
    expected = ap.groupby("perturbation")["average_precision"].mean()
    res = phenotypic_activity(x, wells, null_size=0).set_index("perturbation")
    np.testing.assert_allclose(res.loc[expected.index, "mean_average_precision"], expected, atol=1e-5)
    assert (res.loc[expected.index, "n_queries"] == ap.groupby("perturbation").size()).all()


def test_ap_with_tied_similarities_equals_copairs():
    """Sign vectors in 6-D give only a handful of distinct cosines, so most ranks are ties: each
    query's positives still rank before the negatives they tie with, as copairs ranks them."""
    x, wells = screen_with_effects(seed=4)
    x = np.sign(x[:, :6])
    expected = copairs_activity_aps(x, wells).groupby("perturbation")["average_precision"].mean()
    res = phenotypic_activity(x, wells, null_size=0).set_index("perturbation")
    np.testing.assert_allclose(res.loc[expected.index, "mean_average_precision"], expected, atol=1e-12)


def test_ap_kernel_equals_copairs_ap_contiguous_on_lists_with_ties():
    """The per-query merge gives copairs' AP for every query, with and without a negatives mask."""
    from copairs.compute import ap_contiguous

    from precompute.evaluation.ap_kernel import average_precision_rows, similarity_keys

    rng = np.random.default_rng(8)
    b, c = 300, 40
    n_pos = rng.integers(1, 12, b)
    offsets = np.r_[0, np.cumsum(n_pos)]
    pos = rng.integers(-4, 5, offsets[-1]).astype(np.float32) / 4  # 9 values: ties everywhere
    neg = rng.integers(-4, 5, (b, c)).astype(np.float32) / 4
    mask = rng.random((b, c)) < 0.7
    for m in (None, mask):
        got, got_pos, got_neg = average_precision_rows(similarity_keys(pos), offsets[:-1], offsets[1:],
                                                       similarity_keys(neg), m)
        for r in range(b):
            p = 1 - pos[offsets[r]:offsets[r + 1]]
            q = 1 - (neg[r] if m is None else neg[r][m[r]])
            key, is_pos = np.r_[p, q], np.r_[np.ones(p.size, bool), np.zeros(q.size, bool)]
            order = np.lexsort((~is_pos, key))  # by 1 - sim, positives first on ties
            ref, confs = ap_contiguous(is_pos[order].astype(np.uint32), np.array([key.size], np.uint32))
            assert got[r] == pytest.approx(ref[0], abs=1e-12)
            assert (got_pos[r], got_pos[r] + got_neg[r]) == tuple(confs[0])


def test_replicate_retrieval_ap_equals_copairs():
    from copairs.map import average_precision

    x, wells = screen_with_effects(seed=5)
    treated = (wells["perturbation_type"] != "negative_control").to_numpy()
    ap = average_precision(
        wells[treated].reset_index(drop=True),
        x[treated],
        pos_sameby=["perturbation"],
        pos_diffby=[],
        neg_sameby=["plate"],
        neg_diffby=["perturbation"],
        progress_bar=False,
    )
    expected = ap.groupby("perturbation")["average_precision"].mean()
    overall, res = replicate_retrieval_map(x, wells, null_size=500)
    got = res.set_index("perturbation")["mean_average_precision"]
    np.testing.assert_allclose(got.loc[expected.index], expected, atol=1e-5)
    assert overall == pytest.approx(expected.mean(), abs=1e-5)
    assert res.set_index("perturbation").loc[[f"G{g:02d}" for g in range(6)], "active"].all()


def test_replicate_retrieval_on_a_sample_of_entities_is_exact_for_those():
    """Large screens query a seeded sample of entities; every well still competes as a negative."""
    x, wells = screen_with_effects(seed=5)
    _, full = replicate_retrieval_map(x, wells, null_size=0)
    _, part = replicate_retrieval_map(x, wells, null_size=0, max_entities=5, seed=1)
    assert len(part) == 5
    got = part.set_index("pert_id")["mean_average_precision"]
    np.testing.assert_allclose(got, full.set_index("pert_id").loc[got.index, "mean_average_precision"], atol=1e-6)


# ----------------------------------------------------------------------------- batch metrics
def test_batch_metrics_near_chance_without_batch_signal_and_near_one_with_it():
    rng = np.random.default_rng(6)
    labels = rng.choice(["b1", "b2", "b3", "b4"], 1200)
    x = rng.normal(size=(1200, 16))
    clean = batch_metrics(x, labels, seed=0)
    assert clean["accuracy"] < clean["chance"] + 0.08 and abs(clean["silhouette"]) < 0.05
    shifted = x + 4 * rng.normal(size=(4, 16))[pd.factorize(labels)[0]]
    strong = batch_metrics(shifted, labels, seed=0)
    assert strong["accuracy"] > 0.97 and strong["silhouette"] > 0.3
    assert batch_metrics(shifted, labels, seed=0, classifier="knn")["accuracy"] > 0.97
    assert batch_metrics(x, labels, seed=0) == clean  # deterministic


def test_batch_metrics_subsamples_and_handles_single_label():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3000, 8))
    labels = np.where(np.arange(3000) < 2990, "big", "small")
    res = batch_metrics(x, labels, max_samples=500)
    assert res["n_samples"] == 500 and res["n_labels"] == 2 and res["chance"] > 0.99
    assert np.isnan(batch_metrics(x, np.full(3000, "one"))["accuracy"])


def test_streaming_order_statistics_equal_the_stored_ones(monkeypatch, bench, tmp_path):
    """Big maps skip storing the null; force that path on a small map and compare exactly."""
    import precompute.evaluation.recall as er

    rng = np.random.default_rng(8)
    genes = [f"G{k}" for k in range(400)]
    x = rng.normal(size=(400, 12))
    x[:60] += rng.normal(size=12)
    pairs = pd.DataFrame({"entity1": rng.choice(genes, 3000), "entity2": rng.choice(genes, 3000), "source": "S"})
    stored = relationship_recall(x, genes, pairs, dtype=np.float64)
    monkeypatch.setattr(er, "_STORE_MAX", 0)
    streamed = relationship_recall(x, genes, pairs, dtype=np.float64)
    pd.testing.assert_frame_equal(stored, streamed)
    pairs[["entity1", "entity2"]].to_csv(tmp_path / "S.txt", index=False)
    assert streamed.loc[0, "recall"] == reference_recall(bench, x, genes, tmp_path, ["S"], 5.0).loc["S", "recall"]
    # a sample too small to bracket reliably must still give the exact answer (fallback)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qi = qj = np.empty(0, dtype=np.int64)
    exact = er._order_stats_stored(xn, [3990, 75000], qi, qj, np.empty(0), 64)
    missed = 0
    for seed in range(8):  # width=0: brackets far too narrow, most must miss and say so
        got = er._order_stats_streaming(
            xn, [3990, 75000], qi, qj, np.empty(0), 64, sample_size=5000, seed=seed, width=0.0
        )
        missed += got is None
        assert got is None or got == exact
    assert missed > 0
    narrow = er._order_stats_streaming
    monkeypatch.setattr(er, "_order_stats_streaming", lambda *a, **k: narrow(*a, **k, sample_size=5000, width=0.0))
    pd.testing.assert_frame_equal(relationship_recall(x, genes, pairs, dtype=np.float64), stored)
