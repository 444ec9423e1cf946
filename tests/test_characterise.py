"""The characterise stage: match significance, dose-response and feature drivers written per
embedder, aligned with relate's neighbour lists, and read back by the dashboard unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from precompute.artifacts import ArtifactStore
from precompute.pipeline import RunConfig, run_pipeline

FAST = RunConfig(embedders=("random", "pixelstats"), primary_embedder="pixelstats")


@pytest.fixture(scope="module")
def store(tiny_screen, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("characterise") / "store"
    run_pipeline(tiny_screen, root, FAST, progress=False)
    return root


def _stage(store: Path, what: str, emb: str):
    s = ArtifactStore(store, create=False)
    return s.open_stage(what, s.get_run()["stages"][what][emb])


def test_neighbour_p_and_q_line_up_with_relates_lists(store):
    rel, ch = _stage(store, "relate", "pixelstats"), _stage(store, "characterise", "pixelstats")
    for side in ("top", "bottom"):
        idx, p, q = (np.asarray(a) for a in (rel.array(f"neighbours_{side}_idx"), ch.array(f"neighbours_{side}_p"),
                                             ch.array(f"neighbours_{side}_q")))
        assert p.shape == q.shape == idx.shape
        tested = np.isfinite(p)
        assert tested.mean() > 0.5, "most neighbour pairs are tested"
        assert np.all((p[tested] >= 0) & (p[tested] <= 1)) and np.all(q[tested] >= p[tested] - 1e-12)
        assert np.array_equal(tested, np.isfinite(q))
    fam = np.asarray(ch.array("family_sorted_p"))
    assert np.all(np.diff(fam) >= 0) and fam.size == ch.manifest["info"]["significance"]["family_pairs"]


def test_pairs_that_share_wells_are_not_tested(store):
    """A compound's pooled entity and its own doses share wells: no p, no q (never a made-up value)."""
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(store)
    table = d.perturbations()
    cpd = table[(table["perturbation_type"] == "compound") & (table["level"] == "pooled")].index[0]
    doses = table.index[(table["perturbation"] == table.loc[cpd, "perturbation"]) & (table["level"] == "dose")]
    assert len(doses)
    p, q = d.pair_significance(int(cpd), np.asarray(doses))
    assert np.isnan(p).all() and np.isnan(q).all()


def test_on_demand_significance_equals_the_stored_lists(store):
    """The dashboard's on-demand p/q for an opened pair is the precomputed one for listed pairs."""
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(store)
    nb, sig = d.neighbours(), d.neighbour_significance()
    for row in (0, 7, len(nb["top_idx"]) - 1):
        p, q = d.pair_significance(row, np.asarray(nb["top_idx"][row]))
        np.testing.assert_allclose(p, sig["top_p"][row], rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(q, sig["top_q"][row], rtol=1e-9, equal_nan=True)


def test_feature_drivers_only_for_named_features(store):
    from phenomix_dash.data import DataUnavailable, PhenomixData

    d = PhenomixData(store)
    assert d.driver_embedder == "pixelstats"
    features, effect, q = d.feature_drivers()
    assert effect.shape == q.shape == (len(d.perturbations("pixelstats")), len(features))
    assert set(features["channel"]) <= set(d.channels) and features["kind"].ne("").all()
    assert effect.dtype == np.float32
    with pytest.raises(DataUnavailable, match="no named features"):
        d.feature_drivers("random")


def test_dose_response_fits_every_compound_with_three_doses(store, tiny_screen):
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(store)
    fits, points = d.dose_response(), d.dose_points()
    w = d.wells
    cpd = w[w["perturbation_type"] == "compound"]
    want = set(cpd.groupby("perturbation")["concentration_um"].nunique().loc[lambda s: s >= 3].index)
    assert set(fits["perturbation"]) == want
    assert set(points["perturbation"]) == want and len(points) == int(cpd["perturbation"].isin(want).sum())
    assert np.isfinite(points["response"]).all()
    assert set(d.dose_controls()["plate"]) == set(w.loc[w["perturbation_type"] == "negative_control", "plate"])


def test_pair_view_says_the_pairs_q_and_sorts_features_into_shared_and_differing(store):
    from phenomix_dash.data import PhenomixData
    from phenomix_dash.perturbation_character import pair_view

    d = PhenomixData(store)
    nb, sig = d.neighbours(), d.neighbour_significance()
    ids = d.perturbations()["pert_id"].astype(str)
    row = int(np.flatnonzero(np.isfinite(sig["top_q"][:, 0]))[0])
    text = str(pair_view(d, ids.iloc[row], ids.iloc[int(nb["top_idx"][row, 0])]))
    assert f"q = {sig['top_q'][row, 0]:.2g}" in text, "the pair's q is the stored one"
    assert "features moved at q < 0.05 by either" in text


def test_large_families_keep_a_seeded_sample_and_say_so(store):
    """Above the cap the family's p-values are a sample (its q an estimate), labelled with both counts."""
    from phenomix_dash.data import PhenomixData
    from precompute.characterisation import sampled_family
    from precompute.significance import MatchNull, PairFamily

    d = PhenomixData(store)
    e = d.primary_embedder
    st = d.stage("characterise", e)  # the stored null and family, as the stage wrote them
    null = MatchNull.load(lambda n: st.array(f"null_{n}", mmap=False))
    full = PairFamily(np.asarray(st.array("family_sorted_p", mmap=False)))
    unit = np.asarray(d.unit_embeddings(e))
    means = np.asarray(d.stage("aggregate", e).array("embeddings", mmap=False))
    fam, info = sampled_family(unit, means, d.perturbations(), null, max_pairs=500, seed=0)
    assert info == {"family_pairs": full.size, "p_values_kept": 500, "sampled": True, "note": info["note"]}
    assert fam.size == 500 and np.all(np.diff(fam.sorted_p) >= 0)
    assert set(np.round(fam.sorted_p, 12)) <= set(np.round(full.sorted_p, 12)), "a sample of the family's own p"
    exact, exact_info = sampled_family(unit, means, d.perturbations(), null, max_pairs=full.size)
    assert not exact_info["sampled"] and np.array_equal(exact.sorted_p, full.sorted_p)


def test_families_too_large_to_list_are_sampled_uniformly_without_listing_them():
    """The million-well screen's family (5.6e8 pairs) cannot be listed: the sample is drawn from
    linear indices into the upper triangle, and equals the listed family when it takes every pair."""
    from precompute.characterisation import _sample_pairs
    from precompute.significance import family_pairs

    for n in (2, 3, 7, 60):
        entities = pd.DataFrame({"perturbation_type": ["compound"] * n, "perturbation": [f"C{i // 3}" for i in range(n)]})
        a, b, size = _sample_pairs(entities, 10 ** 6, seed=0)
        fa, fb = family_pairs(entities)
        assert size == fa.size and np.array_equal(a, fa) and np.array_equal(b, fb)
    entities = pd.DataFrame({"perturbation_type": ["crispr"] * 3000, "perturbation": [f"G{i}" for i in range(3000)]})
    a, b, size = _sample_pairs(entities, 20_000, seed=1)
    assert size == 3000 * 2999 // 2 and a.size == 20_000 and np.all(a < b) and np.all(b < 3000)
    assert abs(np.mean(a) - 1000) < 30, "row a holds 3000 - a - 1 pairs: E[a] = (n - 2) / 3"
