"""Match significance (precompute/significance.py): BH against scipy, the family's q-values, and
calibration on a screen whose truth is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control

from precompute import significance as sig
from precompute.aggregate import aggregate_perturbations


def test_benjamini_hochberg_equals_scipy_and_keeps_nan():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=500), rng.uniform(0, 1e-4, 50)])
    np.testing.assert_allclose(sig.benjamini_hochberg(p), false_discovery_control(p, method="bh"), rtol=1e-12)
    q = sig.benjamini_hochberg(np.array([0.01, np.nan, 0.04]))
    assert np.isnan(q[1]) and np.allclose(q[[0, 2]], [0.02, 0.04])


def test_family_qvalue_of_a_member_is_its_bh_qvalue():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(size=2000), rng.uniform(0, 1e-3, 100)])
    fam = sig.PairFamily(np.sort(p))
    np.testing.assert_allclose(fam.qvalue(p), sig.benjamini_hochberg(p), rtol=1e-12)
    # The BH tail is built once and reused: a second query in another order answers the same.
    tail = fam.tail_min
    assert fam.tail_min is tail and not tail.flags.writeable
    np.testing.assert_allclose(fam.qvalue(p[::-1]), sig.benjamini_hochberg(p)[::-1], rtol=1e-12)


def _screen(seed: int = 0, n_plates: int = 4, n_ctrl: int = 40, n_null: int = 80, n_pairs: int = 20, d: int = 24):
    """Wells of a randomised screen: plate offsets, control wells, perturbations without phenotype
    (their wells are drawn exactly like controls) and pairs of perturbations sharing a phenotype."""
    rng = np.random.default_rng(seed)
    plate_offset = rng.normal(0, 0.5, (n_plates, d))
    rows, emb = [], []

    def add(name: str, ptype: str, profile: np.ndarray) -> None:
        for p in range(n_plates):
            rows.append({"plate": f"P{p}", "batch": f"B{p % 2}", "perturbation_type": ptype, "perturbation": name,
                         "concentration_um": np.nan})
            emb.append(plate_offset[p] + profile + rng.normal(0, 1, d))

    for p in range(n_plates):
        for _ in range(n_ctrl):
            rows.append({"plate": f"P{p}", "batch": f"B{p % 2}", "perturbation_type": "negative_control",
                         "perturbation": "non-targeting", "concentration_um": np.nan})
            emb.append(plate_offset[p] + rng.normal(0, 1, d))
    for i in range(n_null):
        add(f"NULL{i:03d}", "crispr", np.zeros(d))
    for i in range(n_pairs):
        direction = rng.normal(0, 1, d)
        direction *= 5.0 / np.linalg.norm(direction)
        add(f"PAIR{i:03d}a", "crispr", direction)
        add(f"PAIR{i:03d}b", "crispr", direction)
    wells = pd.DataFrame(rows)
    return np.asarray(emb, dtype=np.float32), wells


@pytest.fixture(scope="module")
def tested():
    emb, wells = _screen()
    means, entities = aggregate_perturbations(emb, wells)
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    null = sig.match_null(unit, emb, wells, entities, ctrl, seed=0)
    a, b = sig.family_pairs(entities)
    p = sig.pair_pvalue(unit, means, a, b, null)
    fam = sig.pair_family(unit, means, entities, null)
    return entities, a, b, p, fam, unit, means, null


def test_a_no_phenotype_profile_on_any_direction_has_uniform_pvalues(tested):
    """The directed test of a member without phenotype (its profile projected on its partner's
    direction) is the one the pair's p-value rests on: it must be uniform. The pair's p (the larger
    of both directions) may only be smaller than nominal less often, never more."""
    entities, a, b, p, _ = tested[:5]
    unit, means, null = tested[5:]
    name = entities["perturbation"].astype(str).to_numpy()
    null_member = np.char.startswith(name.astype(str), "NULL")
    m = null_member[a] & ~null_member[b]
    directed = sig.directed_pvalue(np.einsum("ij,ij->i", unit[b[m]], means[a[m]]), b[m], a[m], null)
    frac = (directed < 0.05).mean()
    assert abs(frac - 0.05) < max(3 * np.sqrt(0.05 * 0.95 / m.sum()), 0.015), f"{frac:.3f} of {m.sum()}"
    assert (p[m] < 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / m.sum())


def test_true_pairs_are_called_and_calls_are_rarely_false(tested):
    entities, a, b, p, fam = tested[:5]
    name = entities["perturbation"].astype(str).to_numpy()
    q = fam.qvalue(p)
    true = np.char.startswith(name[a].astype(str), "PAIR") & (np.char.rstrip(name[a].astype(str), "ab")
                                                              == np.char.rstrip(name[b].astype(str), "ab"))
    involves_null = np.char.startswith(name[a].astype(str), "NULL") | np.char.startswith(name[b].astype(str), "NULL")
    called = q < 0.05
    assert called[true].mean() >= 0.9
    assert (called & involves_null).sum() <= max(1, 0.05 * called.sum())


def test_pairs_that_share_wells_are_not_in_the_family():
    wells = pd.DataFrame({"plate": ["P0"] * 6, "perturbation_type": ["compound"] * 4 + ["negative_control"] * 2,
                          "perturbation": ["C1", "C1", "C2", "C2", "DMSO", "DMSO"],
                          "concentration_um": [1.0, 10.0, 1.0, 1.0, np.nan, np.nan]})
    _, entities = aggregate_perturbations(np.eye(6, 3, dtype=np.float32), wells)
    a, b = sig.family_pairs(entities)
    same = entities["perturbation"].to_numpy()[a] == entities["perturbation"].to_numpy()[b]
    assert not same.any()
    members = sig.entity_wells(wells, entities)
    pooled_c1 = int(np.flatnonzero(entities["pert_id"] == "compound:C1")[0])
    assert sorted(members.of(pooled_c1)) == [0, 1]


def test_no_controls_is_a_clear_error():
    emb, wells = _screen(n_null=2, n_pairs=1)
    wells = wells[wells["perturbation_type"] != "negative_control"].reset_index(drop=True)
    emb = emb[-len(wells):]
    means, entities = aggregate_perturbations(emb, wells)
    with pytest.raises(ValueError, match="no negative-control wells"):
        sig.match_null(means, emb, wells, entities, np.zeros(len(wells), bool))


def test_closed_form_null_is_the_moments_of_pseudo_perturbation_draws(tested):
    """The stored null is exact: the mean and variance of <u_a, pseudo-perturbation of b> that
    drawing one control per slot from its plate would estimate, plus the error of the pools' means."""
    from precompute.match_null import slot_pools

    entities, unit, null = tested[0], tested[5], tested[7]
    emb, wells = _screen()
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    pool_of, pools = slot_pools(wells, ctrl)
    members = sig.entity_wells(wells, entities)
    rng = np.random.default_rng(3)
    a, b = 5, 40
    slots = [pools[pool_of[w]] for w in members.of(b)]
    draws = np.mean([emb[pool[rng.integers(0, pool.size, 40_000)]] for pool in slots], axis=0) @ unit[a]
    mean, sd = null.moments(np.array([a]), np.array([b]))
    n = len(slots)
    pool_error = sum(np.var(emb[pool] @ unit[a], ddof=1) / pool.size / n ** 2 for pool in slots)
    assert abs(mean[0] - draws.mean()) < 4 * draws.std() / np.sqrt(draws.size)
    assert sd[0] ** 2 == pytest.approx(draws.var() + pool_error, rel=0.03)
