"""Embeddings-only synthetic screens: shapes, determinism, and the same structure as the images."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from precompute.screen import load_screen
from precompute.synth import SynthConfig, generate_embeddings, write_embeddings_screen
from precompute.synth.nuisance import edge_ring

CFG = SynthConfig.preset("demo", n_batches=4, embedding_dim=128, seed=11)


@pytest.fixture(scope="module")
def emb():
    return generate_embeddings(CFG)


def test_shapes_and_types(emb):
    wells, feats, truth = emb
    assert feats.shape == (len(wells), 128) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert {"genes", "compounds", "relationships", "compound_targets", "guides"} <= set(truth)


def test_deterministic_and_seed_dependent():
    cfg = SynthConfig.preset("tiny")
    w1, f1, _ = generate_embeddings(cfg)
    w2, f2, _ = generate_embeddings(cfg)
    np.testing.assert_array_equal(f1, f2)
    assert w1.equals(w2)
    _, f3, _ = generate_embeddings(cfg.replace(seed=5))
    assert not np.array_equal(f1, f3)


def test_batch_is_predictable_from_features(emb):
    wells, feats, _ = emb
    acc = cross_val_score(KNeighborsClassifier(5), feats, wells["batch"], cv=5).mean()
    assert acc > 0.9, acc  # chance 0.25


def _gene_embeddings(wells, feats):
    """Per-gene mean after subtracting each batch's control mean (the simplest alignment)."""
    x = feats.astype(np.float64).copy()
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    for b in wells["batch"].unique():
        m = (wells["batch"] == b).to_numpy()
        x[m] -= x[m & ctrl].mean(0)
    crispr = (wells["perturbation_type"] == "crispr").to_numpy()
    genes = wells.loc[crispr, "gene"].to_numpy()
    names, inv = np.unique(genes, return_inverse=True)
    agg = np.zeros((len(names), x.shape[1]))
    np.add.at(agg, inv, x[crispr])
    agg /= np.bincount(inv)[:, None]
    return {g: agg[i] for i, g in enumerate(names)}


def _mean_cos(emb_by_gene, pairs):
    c = [
        np.dot(emb_by_gene[a], emb_by_gene[b]) / (np.linalg.norm(emb_by_gene[a]) * np.linalg.norm(emb_by_gene[b]))
        for a, b in pairs
    ]
    return float(np.mean(c))


def test_complex_mates_similar_and_opposing_pathways_negative_after_removing_batch_means(emb):
    wells, feats, truth = emb
    g = _gene_embeddings(wells, feats)
    active = set(truth["genes"].loc[truth["genes"]["active"], "gene"])
    rel = truth["relationships"]

    def pairs(source):
        r = rel[(rel["source"] == source) & rel["entity1"].isin(active) & rel["entity2"].isin(active)]
        return list(zip(r["entity1"], r["entity2"]))

    rng = np.random.default_rng(0)
    act = sorted(active)
    random_pairs = [tuple(rng.choice(act, 2, replace=False)) for _ in range(500)]
    complex_cos, random_cos = _mean_cos(g, pairs("synthetic_complex")), _mean_cos(g, random_pairs)
    assert complex_cos > random_cos + 0.3, (complex_cos, random_cos)
    assert _mean_cos(g, pairs("synthetic_opposing")) < random_cos - 0.1


def test_edge_wells_differ_in_features(emb):
    wells, feats, _ = emb
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    ring = edge_ring(wells["row"].to_numpy(), wells["col"].to_numpy(), (16, 24))
    x = feats - feats[ctrl].mean(0)
    gap = np.linalg.norm(x[ctrl & (ring == 0)].mean(0) - x[ctrl & (ring >= 2)].mean(0))
    spread = np.linalg.norm(x[ctrl & (ring >= 2)].std(0)) / np.sqrt((ctrl & (ring >= 2)).sum())
    assert gap > 5 * spread


def test_write_embeddings_screen_round_trips(tmp_path):
    cfg = SynthConfig.preset("tiny", n_wells=2000, plate_format=384, embedding_dim=32)
    root = write_embeddings_screen(cfg, tmp_path / "emb")
    screen = load_screen(root)
    assert not screen.has_images
    feats = screen.array("well_features")
    assert feats.shape == (len(screen.wells), 32) and feats.dtype == np.float32
    assert len(screen.wells) >= 2000
    _, again, _ = generate_embeddings(cfg)
    np.testing.assert_array_equal(np.asarray(feats), again)
    assert set(screen.ground_truth("relationships")["source"]) >= {"synthetic_complex"}
