"""Match significance: is the similarity of two perturbations more than replicate noise explains?

The question a biologist asks of a neighbour list is "is this match real?". A cosine of 0.4 means
little for two perturbations of three wells each and a lot for two of fifty, and less along
directions in which the negative controls themselves vary. The test uses the replicate structure
(method, assumptions and measured calibration: docs/significance.md):

- **Pseudo-perturbations.** For a perturbation ``b``, a pseudo-perturbation replaces each of its
  wells by a negative-control well of the same kind (vehicle for compounds, non-targeting for
  genetic perturbations) drawn at random from the same plate (batch, then screen, when the plate
  has none) and averages them as aggregate does. It is ``b`` as it would look with no phenotype:
  same number of wells, same plates, same noise.
- **One direction.** The statistic is ``t_ab = <u_a, x_b>``: ``b``'s mean profile projected on
  ``a``'s unit direction. A cosine alone cannot be significant in a low-dimensional map (in the 15
  dimensions TVN keeps on the demo, no cosine is beyond 4 null standard deviations); the
  projection keeps how far ``b`` moved. ``t_ab`` is standardised by the mean and standard
  deviation of ``t_ab*`` over pseudo-perturbations ``b*`` of ``b``'s plates.
- **Empirical null.** Alignment is fitted on the very controls the null is drawn from, so they
  are tighter than any other well (TVN from 47 controls in 15 dimensions: on the demo, twice as
  many no-phenotype pairs fell below p = 0.05 as should). Each query's z-scores over all
  candidates are therefore re-centred and re-scaled by their median and MAD (Efron's empirical
  null: most candidates of any query are unrelated to it), never narrower than the theoretical
  null. Two-sided p from the normal tail, so the family can reach far below ``1 / n_draws``.
- **Both members.** A match is real only if *both* members have a phenotype: the null is "a has
  none OR b has none", tested by the intersection-union rule ``p = max(p_ab, p_ba)``.
- **Family.** Neighbour lists are chosen by similarity out of all pairs, so q-values count every
  pair that could have been shown: Benjamini-Hochberg over all unordered entity pairs except
  those that share wells (a compound's pooled entity and its own doses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from precompute.aggregate import pert_id_for


@dataclass(frozen=True)
class EntityWells:
    """Which wells make up each entity, in the entity table's row order (CSR layout)."""

    offsets: np.ndarray  # (n_entities + 1,) int64
    wells: np.ndarray  # (n_memberships,) int64 row indices into the wells table

    def of(self, entity: int) -> np.ndarray:
        return self.wells[self.offsets[entity] : self.offsets[entity + 1]]


def entity_wells(wells: pd.DataFrame, entities: pd.DataFrame) -> EntityWells:
    """Map each entity (aggregate's ``pert_id``) to its wells: pooled ids and, for compounds with a
    concentration, per-dose ids. Raises naming the first entity with no well."""
    ptype = wells["perturbation_type"].astype(str).to_numpy()
    pert = wells["perturbation"].astype(str).to_numpy()
    conc = (pd.to_numeric(wells["concentration_um"], errors="coerce").to_numpy(dtype=float)
            if "concentration_um" in wells.columns else np.full(len(wells), np.nan))
    pooled = np.array([pert_id_for(t, p) for t, p in zip(ptype, pert)], dtype=object)
    dose = np.array([pert_id_for(t, p, c) if t == "compound" and not np.isnan(c) else ""
                     for t, p, c in zip(ptype, pert, conc)], dtype=object)
    row_of = {pid: i for i, pid in enumerate(entities["pert_id"].astype(str))}
    ent = np.concatenate([[row_of.get(p, -1) for p in pooled], [row_of.get(p, -1) if p else -1 for p in dose]])
    well = np.concatenate([np.arange(len(wells)), np.arange(len(wells))])
    keep = ent >= 0
    order = np.argsort(ent[keep], kind="stable")
    counts = np.bincount(ent[keep], minlength=len(entities))
    if (counts == 0).any():
        bad = int(np.argmin(counts))
        raise ValueError(f"entity {entities['pert_id'].iloc[bad]!r} (row {bad}) has no well in the wells table")
    return EntityWells(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), well[keep][order].astype(np.int64))


VEHICLE_NAMES = frozenset({"dmso", "vehicle", "water", "h2o", "pbs", "empty", "untreated", "mock"})


def control_kind(wells: pd.DataFrame, is_control: np.ndarray) -> np.ndarray:
    """'vehicle' for control wells named like a compound vehicle (DMSO, water, ...), 'genetic' for the
    other negative controls (non-targeting guides, empty vectors), '' for treated wells."""
    name = wells["perturbation"].astype(str).str.strip().str.lower().to_numpy()
    vehicle = np.isin(name, list(VEHICLE_NAMES))
    return np.where(~np.asarray(is_control, dtype=bool), "", np.where(vehicle, "vehicle", "genetic"))


def _control_pools(plates: np.ndarray, batches: np.ndarray, kind: np.ndarray) -> dict[tuple, np.ndarray]:
    """Control well indices by (control kind or any) x (plate, batch, screen): the fallbacks, in order."""
    ctrl = np.flatnonzero(kind != "")
    if ctrl.size == 0:
        raise ValueError("no negative-control wells: match significance needs them as its null")
    pools: dict[tuple, np.ndarray] = {}
    for ck in ("vehicle", "genetic", "any"):
        rows = ctrl if ck == "any" else ctrl[kind[ctrl] == ck]
        if rows.size == 0:
            continue
        pools[(ck, "all")] = rows
        for level, labels in (("plate", plates), ("batch", batches)):
            for lab in pd.unique(labels[rows]):
                pools[(ck, level, lab)] = rows[labels[rows] == lab]
    return pools


def _pool_for(wanted: str, plate, batch, pools: dict[tuple, np.ndarray]) -> np.ndarray:
    """The controls a well of this kind is compared with: the matching control kind on its plate,
    else in its batch, else any control on its plate / batch / the screen."""
    for ck in (wanted, "any"):
        for key in ((ck, "plate", plate), (ck, "batch", batch)):
            if key in pools:
                return pools[key]
    return pools[("any", "all")]


def pseudo_perturbations(
    aligned: np.ndarray, slot_pools: list[np.ndarray], n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_draws`` means of control wells, one drawn from each slot's pool (a slot is one of the
    perturbation's wells; its pool the control wells of that well's plate). (n_draws, d) float32,
    not normalised: the test statistic is a projection, which keeps the profile's size."""
    total = np.zeros((n_draws, aligned.shape[1]), dtype=np.float64)
    for pool in slot_pools:
        total += aligned[pool[rng.integers(0, pool.size, n_draws)]]
    return (total / max(len(slot_pools), 1)).astype(np.float32)


@dataclass(frozen=True)
class MatchNull:
    """Everything a pair's p-value needs besides the two profiles; small enough to store.

    ``mean``/``sd``: per query entity and plate signature, the pseudo-perturbation projection's
    mean and standard deviation. ``scale``: per query, the square root of ``noise_inflation``
    along its direction; ``center`` is 0 (kept so an empirical null can shift it).
    """

    signature: np.ndarray  # (n_entities,) int32: the plate signature of each entity's wells
    mean: np.ndarray  # (n_entities, n_signatures) float32
    sd: np.ndarray  # (n_entities, n_signatures) float32
    center: np.ndarray  # (n_entities,) float32
    scale: np.ndarray  # (n_entities,) float32
    n_draws: int


def theoretical_null(
    unit: np.ndarray,
    aligned: np.ndarray,
    wells: pd.DataFrame,
    members: EntityWells,
    is_control: np.ndarray,
    *,
    n_draws: int = 500,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pseudo-perturbation projections of every entity's direction, per plate signature.

    Entities whose wells lie on the same multiset of (control kind, plate) share one null: on a
    screen where each gene has a well on each plate of a batch, that is a handful of signatures,
    not one per entity. ``unit``: aggregate's (n_entities, d) unit embeddings; ``aligned``: the
    (n_wells, d) aligned well embeddings they were averaged from. Returns (signature, mean, sd).
    """
    plates = wells["plate"].astype(str).to_numpy()
    batches = (wells["batch"] if "batch" in wells.columns else wells["plate"]).astype(str).to_numpy()
    pools = _control_pools(plates, batches, control_kind(wells, is_control))
    # Compounds are compared with vehicle controls, genetic perturbations with genetic ones:
    # a CRISPR well differs from a DMSO well by cutting and transduction alone.
    wanted = np.where(wells["perturbation_type"].astype(str).to_numpy() == "compound", "vehicle", "genetic")
    keys: dict[tuple, int] = {}
    signature = np.empty(len(members.offsets) - 1, dtype=np.int32)
    for e in range(signature.size):
        rows = members.of(e)
        signature[e] = keys.setdefault(tuple(sorted(zip(wanted[rows], plates[rows]))), len(keys))
    rng = np.random.default_rng(seed)
    batch_of_plate = dict(zip(plates, batches))
    mean = np.empty((signature.size, len(keys)), dtype=np.float32)
    sd = np.empty_like(mean)
    u = np.asarray(unit, dtype=np.float32)
    pool_var: dict[int, np.ndarray] = {}  # variance of one control well along each direction, per pool
    for key, g in keys.items():  # insertion order: the same draws for the same seed
        slot_pools = [_pool_for(ck, p, batch_of_plate[p], pools) for ck, p in key]
        proj = u @ pseudo_perturbations(aligned, slot_pools, n_draws, rng).T
        mean[:, g] = proj.mean(axis=1)
        # The null's centre is the mean of a finite pool of controls, itself off by that pool's
        # sampling error; slots that share a pool share the error. Without this term a compound of
        # 12 wells against 9 DMSO wells a plate looked active when it was not.
        extra = np.zeros(u.shape[0])
        used: dict[int, tuple[np.ndarray, int]] = {}
        for pool in slot_pools:
            used.setdefault(id(pool), (pool, 0))
            used[id(pool)] = (pool, used[id(pool)][1] + 1)
        for pool, count in used.values():
            if id(pool) not in pool_var:
                pool_var[id(pool)] = np.var(aligned[pool] @ u.T, axis=0, ddof=1) if pool.size > 1 else np.zeros(u.shape[0])
            extra += (count / len(slot_pools)) ** 2 * pool_var[id(pool)] / pool.size
        sd[:, g] = np.maximum(np.sqrt(proj.var(axis=1, ddof=1) + extra), 1e-12)
    return signature, mean, sd


def _z(proj: np.ndarray, query: np.ndarray, target: np.ndarray, signature: np.ndarray,
       mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    g = signature[target]
    return (np.asarray(proj, dtype=np.float64) - mean[query, g]) / sd[query, g]


def _overlap_key(entities: pd.DataFrame) -> np.ndarray:
    """Entities with the same key share wells (a compound's pooled entity and its doses)."""
    return pd.factorize((entities["perturbation_type"].astype(str) + "\x1f"
                         + entities["perturbation"].astype(str)).to_numpy())[0]


def _replicate_groups(wells: pd.DataFrame) -> np.ndarray:
    """Replicate group of each well: same perturbation type, name, dose and guide."""
    parts = [wells[c].astype(str).to_numpy() for c in ("perturbation_type", "perturbation", "concentration_um", "guide")
             if c in wells.columns]
    return pd.factorize(np.array(["\x1f".join(t) for t in zip(*parts)], dtype=object))[0]


def _deviations(x: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of groups with two or more rows, minus their group mean; and (group code, group size) per row."""
    counts = np.bincount(codes)
    keep = counts[codes] >= 2
    codes, x = codes[keep], np.asarray(x[keep], dtype=np.float64)
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, codes, x)
    return x - sums[codes] / counts[codes][:, None], codes, counts[codes]


def noise_inflation(unit: np.ndarray, aligned: np.ndarray, wells: pd.DataFrame, is_control: np.ndarray,
                    *, max_groups: int = 2000, seed: int = 0) -> np.ndarray:
    """Per entity direction u: how much more a treated well varies along u than a control well.

    Alignment is fitted on the very controls the null is drawn from, so they end up tighter than
    any well it was not fitted on (TVN from 47 controls in 15 dimensions: on the demo, twice as
    many no-phenotype pairs fell below p = 0.05 as should without this). Along u, each treated
    replicate group (same perturbation, dose, guide) gives ``sum (u . dev)^2 / (n - 1)``, a
    chi-square on n - 1 degrees of freedom times the treated variance; divided by the median of
    that chi-square and by the controls' within-plate variance along u, its median over groups
    estimates the ratio. The median, because active perturbations add spread between replicates
    (toxicity, plates) that is biology, not noise. Never below 1. (n_entities,) float64.
    """
    from scipy.stats import chi2

    ctrl = np.asarray(is_control, dtype=bool)
    u = np.asarray(unit, dtype=np.float64)
    codes = _replicate_groups(wells)
    treated = np.flatnonzero(~ctrl)
    groups = np.unique(codes[treated])
    if groups.size > max_groups:  # a seeded sample of groups bounds the (wells x entities) product
        groups = np.random.default_rng(seed).choice(groups, max_groups, replace=False)
    rows = treated[np.isin(codes[treated], groups)]
    # Replicates sit on different plates; the null already follows each plate's controls, so a
    # treated well is first taken relative to its plate's control mean.
    plate = pd.factorize(wells["plate"].astype(str).to_numpy())[0]
    ctrl_sum = np.zeros((plate.max() + 1, aligned.shape[1]))
    np.add.at(ctrl_sum, plate[ctrl], np.asarray(aligned[ctrl], dtype=np.float64))
    ctrl_n = np.bincount(plate[ctrl], minlength=plate.max() + 1)
    plate_mean = np.where(ctrl_n[:, None] > 0, ctrl_sum / np.maximum(ctrl_n, 1)[:, None], 0.0)
    dev_t, g_t, n_t = _deviations(aligned[rows] - plate_mean[plate[rows]], pd.factorize(codes[rows])[0])
    dev_c, _, n_c = _deviations(aligned[ctrl], plate[ctrl])
    if dev_t.shape[0] == 0 or dev_c.shape[0] == 0:
        return np.ones(u.shape[0])
    ctrl_var = np.sum((dev_c @ u.T) ** 2 * (n_c / (n_c - 1.0))[:, None], axis=0) / dev_c.shape[0]
    g_t = pd.factorize(g_t)[0]  # groups of one well were dropped: renumber the rest
    ss = np.zeros((g_t.max() + 1, u.shape[0]))
    np.add.at(ss, g_t, (dev_t @ u.T) ** 2)
    size = np.bincount(g_t)
    df = size - 1.0
    ratio = ss / df[:, None] / (chi2.ppf(0.5, df) / df)[:, None] / np.maximum(ctrl_var, 1e-300)[None, :]
    return np.maximum(np.median(ratio, axis=0), 1.0)


def match_null(
    unit: np.ndarray,
    aligned: np.ndarray,
    wells: pd.DataFrame,
    entities: pd.DataFrame,
    is_control: np.ndarray,
    *,
    n_draws: int = 500,
    seed: int = 0,
) -> MatchNull:
    """The pseudo-perturbation null of every entity's direction, widened by ``noise_inflation``."""
    members = entity_wells(wells, entities)
    signature, mean, sd = theoretical_null(unit, aligned, wells, members, is_control, n_draws=n_draws, seed=seed)
    scale = np.sqrt(noise_inflation(unit, aligned, wells, is_control, seed=seed)).astype(np.float32)
    return MatchNull(signature, mean, sd, np.zeros_like(scale), scale, n_draws)


def directed_pvalue(proj: np.ndarray, query: np.ndarray, target: np.ndarray, null: MatchNull) -> np.ndarray:
    """Two-sided p of <u_query, x_target> against query's empirical null for target's plates."""
    z = _z(proj, query, target, null.signature, null.mean, null.sd)
    z = (z - null.center[query]) / null.scale[query]
    return np.minimum(1.0, 2.0 * ndtr(-np.abs(z)))


def pair_pvalue(unit: np.ndarray, means: np.ndarray, a: np.ndarray, b: np.ndarray, null: MatchNull) -> np.ndarray:
    """p of the pairs (a[i], b[i]): the larger of the two directed p-values (intersection-union)."""
    u = np.asarray(unit, dtype=np.float64)
    x = np.asarray(means, dtype=np.float64)
    a, b = np.asarray(a), np.asarray(b)
    ab = np.einsum("ij,ij->i", u[a], x[b])
    ba = np.einsum("ij,ij->i", u[b], x[a])
    return np.maximum(directed_pvalue(ab, a, b, null), directed_pvalue(ba, b, a, null))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH q-values (step-up, monotone), same shape as p; NaN stays NaN and is not counted."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    vals = p[ok]
    m = vals.size
    if m == 0:
        return q
    order = np.argsort(vals, kind="stable")
    ranked = vals[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


@dataclass(frozen=True)
class PairFamily:
    """Every testable pair's p-value, sorted: what a q-value for any pair is computed against."""

    sorted_p: np.ndarray  # (m,) float64 ascending

    @property
    def size(self) -> int:
        return int(self.sorted_p.size)

    def qvalue(self, p: np.ndarray) -> np.ndarray:
        """BH q of p-values that belong to this family: min over p' >= p of p' m / rank(p')."""
        m = self.size
        step = self.sorted_p * m / np.arange(1, m + 1)
        tail_min = np.minimum.accumulate(step[::-1])[::-1]
        at = np.searchsorted(self.sorted_p, np.asarray(p, dtype=np.float64), side="left")
        return np.minimum(1.0, tail_min[np.minimum(at, m - 1)])


def family_pairs(entities: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """All unordered entity pairs (a < b) that share no wells: the BH family."""
    key = _overlap_key(entities)
    a, b = np.triu_indices(len(entities), 1)
    keep = key[a] != key[b]
    return a[keep], b[keep]


def pair_family(unit: np.ndarray, means: np.ndarray, entities: pd.DataFrame, null: MatchNull,
                chunk: int = 1 << 22) -> PairFamily:
    """p-values of every pair in the family, sorted (chunked so memory stays O(chunk x d))."""
    a, b = family_pairs(entities)
    p = np.concatenate([pair_pvalue(unit, means, a[i:i + chunk], b[i:i + chunk], null)
                        for i in range(0, a.size, chunk)]) if a.size else np.empty(0)
    return PairFamily(np.sort(p))
