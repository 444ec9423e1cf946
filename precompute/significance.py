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
  deviation of ``t_ab*`` over pseudo-perturbations ``b*`` of ``b``'s plates, computed exactly in
  closed form (precompute/match_null.py), not by drawing them: that is what lets it scale to the
  million-well screen's 33,405 entities.
- **Wider than the controls.** Alignment is fitted on the very controls the null is drawn from,
  so they are tighter than any other well (TVN from 47 controls in 15 dimensions: on the demo,
  twice as many no-phenotype pairs fell below p = 0.05 as should). Along each query direction
  the null is widened by how much more treated replicates vary than controls
  (:func:`noise_inflation`), never narrowed. Two-sided p from the normal tail.
- **Both members.** A match is real only if *both* members have a phenotype: the null is "a has
  none OR b has none", tested by the intersection-union rule ``p = max(p_ab, p_ba)``.
- **Family.** Neighbour lists are chosen by similarity out of all pairs, so q-values count every
  pair that could have been shown: Benjamini-Hochberg over all unordered entity pairs except
  those that share wells (a compound's pooled entity and its own doses).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.special import ndtr

from precompute.aggregate import pert_id_for
from precompute.match_null import MatchNull, closed_form_null


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
    row_of = {pid: i for i, pid in enumerate(entities["pert_id"].astype(str))}
    # one id per distinct (type, perturbation, dose), not per well: a million wells have a few
    # tens of thousands of them
    has = ~np.isnan(conc)
    codes, uniq = pd.factorize(pd.MultiIndex.from_arrays([ptype, pert, has, np.where(has, conc, 0.0)]))
    pooled = np.array([row_of.get(pert_id_for(t, p), -1) for t, p, _, _ in uniq], dtype=np.int64)
    dose = np.array([row_of.get(pert_id_for(t, p, c), -1) if t == "compound" and h else -1
                     for t, p, h, c in uniq], dtype=np.int64)
    ent = np.concatenate([pooled[codes], dose[codes]])
    well = np.concatenate([np.arange(len(wells)), np.arange(len(wells))])
    keep = ent >= 0
    order = np.argsort(ent[keep], kind="stable")
    counts = np.bincount(ent[keep], minlength=len(entities))
    if (counts == 0).any():
        bad = int(np.argmin(counts))
        raise ValueError(f"entity {entities['pert_id'].iloc[bad]!r} (row {bad}) has no well in the wells table")
    return EntityWells(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), well[keep][order].astype(np.int64))


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
                    *, max_groups: int = 2000, seed: int = 0, block: int = 1024) -> np.ndarray:
    """Per entity direction u: how much more a treated well varies along u than a control well.

    Alignment is fitted on the very controls the null is drawn from, so they end up tighter than
    any well it was not fitted on (TVN from 47 controls in 15 dimensions: on the demo, twice as
    many no-phenotype pairs fell below p = 0.05 as should without this). Along u, each treated
    replicate group (same perturbation, dose, guide) gives ``sum (u . dev)^2 / (n - 1)``, a
    chi-square on n - 1 degrees of freedom times the treated variance; divided by the median of
    that chi-square and by the controls' within-plate variance along u, its median over groups
    estimates the ratio. The median, because active perturbations add spread between replicates
    (toxicity, plates) that is biology, not noise. Never below 1. (n_entities,) float64.
    Directions are taken ``block`` at a time, so memory stays (wells in the groups x block).
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
    ctrl_rows = np.flatnonzero(ctrl)
    x_ctrl = np.asarray(aligned[ctrl_rows], dtype=np.float64)
    ctrl_sum = np.zeros((plate.max() + 1, aligned.shape[1]))
    np.add.at(ctrl_sum, plate[ctrl_rows], x_ctrl)
    ctrl_n = np.bincount(plate[ctrl_rows], minlength=plate.max() + 1)
    plate_mean = np.where(ctrl_n[:, None] > 0, ctrl_sum / np.maximum(ctrl_n, 1)[:, None], 0.0)
    dev_t, g_t, n_t = _deviations(np.asarray(aligned[rows], dtype=np.float64) - plate_mean[plate[rows]],
                                  pd.factorize(codes[rows])[0])
    dev_c, _, n_c = _deviations(x_ctrl, plate[ctrl_rows])
    if dev_t.shape[0] == 0 or dev_c.shape[0] == 0:
        return np.ones(u.shape[0])
    # the controls' variance along every u at once: u' C u, C their weighted scatter matrix
    scatter = (dev_c * (n_c / (n_c - 1.0))[:, None]).T @ dev_c / dev_c.shape[0]
    ctrl_var = np.einsum("ij,jk,ik->i", u, scatter, u)
    g_t = pd.factorize(g_t)[0]  # groups of one well were dropped: renumber the rest
    size = np.bincount(g_t)
    df = size - 1.0
    norm = chi2.ppf(0.5, df)  # the chi-square median, per group
    out = np.empty(u.shape[0])
    order = np.argsort(g_t, kind="stable")  # rows grouped, so each group's sum is one reduceat segment
    dev_t32 = dev_t[order].astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(size)[:-1]])
    for s in range(0, u.shape[0], block):
        ss = np.add.reduceat(np.square(dev_t32 @ u[s:s + block].T.astype(np.float32), dtype=np.float64), starts, axis=0)
        ratio = ss / norm[:, None] / np.maximum(ctrl_var[s:s + block], 1e-300)[None, :]
        out[s:s + block] = np.median(ratio, axis=0)
    return np.maximum(out, 1.0)


def match_null(unit: np.ndarray, aligned: np.ndarray, wells: pd.DataFrame, entities: pd.DataFrame,
               is_control: np.ndarray, *, seed: int = 0) -> MatchNull:
    """The pseudo-perturbation null of every entity's direction in closed form
    (precompute/match_null.py), widened by ``noise_inflation``. ``seed`` picks its groups."""
    members = entity_wells(wells, entities)
    parts = closed_form_null(unit, aligned, wells, members, is_control)
    scale = np.sqrt(noise_inflation(unit, aligned, wells, is_control, seed=seed)).astype(np.float32)
    signature, mean, sd, offsets, sig_pool, sig_count, pool_size = parts
    return MatchNull(signature, mean, sd, np.zeros_like(scale), scale, offsets, sig_pool, sig_count, pool_size)


def directed_pvalue(proj: np.ndarray, query: np.ndarray, target: np.ndarray, null: MatchNull) -> np.ndarray:
    """Two-sided p of <u_query, x_target> against query's empirical null for target's plates."""
    mean, sd = null.moments(query, target)
    z = (np.asarray(proj, dtype=np.float64) - mean) / sd
    z = (z - null.center[query]) / null.scale[query]
    return np.minimum(1.0, 2.0 * ndtr(-np.abs(z)))


def pair_pvalue(unit: np.ndarray, means: np.ndarray, a: np.ndarray, b: np.ndarray, null: MatchNull) -> np.ndarray:
    """p of the pairs (a[i], b[i]): the larger of the two directed p-values (intersection-union)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    out = np.empty(a.size)
    step = max(1, (1 << 24) // max(unit.shape[1], 1))  # rows gathered at a time: 128 MB of float64
    for s in range(0, a.size, step):
        i, j = a[s:s + step], b[s:s + step]
        ui, uj = np.asarray(unit[i], dtype=np.float64), np.asarray(unit[j], dtype=np.float64)
        ab = np.einsum("ij,ij->i", ui, np.asarray(means[j], dtype=np.float64))
        ba = np.einsum("ij,ij->i", uj, np.asarray(means[i], dtype=np.float64))
        out[s:s + step] = np.maximum(directed_pvalue(ab, i, j, null), directed_pvalue(ba, j, i, null))
    return out


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

    @cached_property
    def tail_min(self) -> np.ndarray:
        """min over ranks >= r of p m / rank, for every rank r: the same for every query, so
        computed once (over the 4 million pairs of the million-well store's family, four passes of
        32 MB, it was 40% of the dashboard's CPU under load when redone for every neighbour list)."""
        m = self.size
        out = np.minimum.accumulate((self.sorted_p * m / np.arange(1, m + 1))[::-1])[::-1]
        out.setflags(write=False)
        return out

    def qvalue(self, p: np.ndarray) -> np.ndarray:
        """BH q of p-values that belong to this family: min over p' >= p of p' m / rank(p')."""
        at = np.searchsorted(self.sorted_p, np.asarray(p, dtype=np.float64), side="left")
        return np.minimum(1.0, self.tail_min[np.minimum(at, self.size - 1)])


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
