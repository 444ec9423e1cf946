"""The null of match significance in closed form: what a pair's p-value is measured against.

A pseudo-perturbation of a target ``b`` replaces each of its ``n`` wells (a *slot*) by a control
well of the matching kind drawn at random from that well's plate (its *pool*) and averages them
(precompute/significance.py's module doc and docs/significance.md say why). Along a query's unit
direction ``u`` its projection has, exactly,

- mean ``sum_p (c_p / n) u.mu_p`` (``c_p`` slots draw from pool ``p``, whose control mean is ``mu_p``);
- variance ``sum_p c_p s_p^2 (|p| - 1 + c_p) / (|p| n^2)``, ``s_p^2`` the pool's variance along
  ``u`` (ddof 1): ``c_p`` draws with replacement, each of variance ``s_p^2 (|p| - 1) / |p|``,
  plus the error of the pool's finite mean, which the ``c_p`` slots share
  (``(c_p / n)^2 s_p^2 / |p|``).

Monte-Carlo draws estimated these two numbers per query and *plate signature* (the multiset of a
target's pools), which cost (entities x signatures x draws) and stored an (entities x signatures)
matrix: on the million-well screen nearly every entity has a signature of its own (33,401 of
33,405), so hours and 4.5 GB. In closed form the null needs only each query's projection of every
pool's mean and variance, ``(entities x pools)``, and each signature's pools and slot counts; a
pair's moments are sums over its target's pools (:meth:`MatchNull.moments`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

VEHICLE_NAMES = frozenset({"dmso", "vehicle", "water", "h2o", "pbs", "empty", "untreated", "mock"})
_BLOCK = 1 << 22  # elements of a temporary (x 8 bytes): bounds memory at any screen size


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


def _pool_key(wanted: str, plate, batch, pools: dict[tuple, np.ndarray]) -> tuple:
    """The controls a well of this kind is compared with: the matching control kind on its plate,
    else in its batch, else any control on its plate / batch / the screen."""
    for ck in (wanted, "any"):
        for key in ((ck, "plate", plate), (ck, "batch", batch)):
            if key in pools:
                return key
    return ("any", "all")


def slot_pools(wells: pd.DataFrame, is_control: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each well's pool index (the controls a pseudo-perturbation draws its slot from) and the
    pools' control rows. Compounds are compared with vehicle controls, genetic perturbations with
    genetic ones: a CRISPR well differs from a DMSO well by cutting and transduction alone."""
    plates = wells["plate"].astype(str).to_numpy()
    batches = (wells["batch"] if "batch" in wells.columns else wells["plate"]).astype(str).to_numpy()
    pools = _control_pools(plates, batches, control_kind(wells, is_control))
    wanted = np.where(wells["perturbation_type"].astype(str).to_numpy() == "compound", "vehicle", "genetic")
    inverse, labels = pd.factorize(pd.Series(wanted, dtype=object) + "\x1f" + pd.Series(plates, dtype=object),
                                   sort=True)
    batch_of_plate = dict(zip(plates, batches))
    index: dict[tuple, int] = {}
    rows: list[np.ndarray] = []
    of_label = np.empty(labels.size, dtype=np.int64)
    for i, label in enumerate(labels):  # sorted labels: the same pool order for the same screen
        kind, plate = str(label).split("\x1f", 1)
        key = _pool_key(kind, plate, batch_of_plate[plate], pools)
        if key not in index:
            index[key] = len(rows)
            rows.append(pools[key])
        of_label[i] = index[key]
    return of_label[inverse], rows


@dataclass(frozen=True)
class MatchNull:
    """The pseudo-perturbation null of every (query, target) pair, in closed form; stored as is.

    ``mean[a, p]`` / ``sd[a, p]``: pool ``p``'s control mean projected on query ``a``'s direction
    and the pool's standard deviation along it (ddof 1). ``signature[b]``: target ``b``'s plate
    signature, whose pools and slot counts are ``sig_pool`` / ``sig_count`` in CSR rows
    ``sig_offsets``. ``scale``: per query, the square root of ``noise_inflation`` along its
    direction; ``center`` is 0 (kept so an empirical null can shift it).
    """

    signature: np.ndarray  # (n_entities,) int32
    mean: np.ndarray  # (n_entities, n_pools) float32
    sd: np.ndarray  # (n_entities, n_pools) float32
    center: np.ndarray  # (n_entities,) float32
    scale: np.ndarray  # (n_entities,) float32
    sig_offsets: np.ndarray  # (n_signatures + 1,) int64
    sig_pool: np.ndarray  # (nnz,) int32
    sig_count: np.ndarray  # (nnz,) int32
    pool_size: np.ndarray  # (n_pools,) int32

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The arrays a store keeps (as ``null_<name>``)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def load(cls, get: Callable[[str], np.ndarray]) -> MatchNull:
        """From stored arrays: ``get(name)`` returns the array :meth:`names` lists."""
        return cls(*(np.asarray(get(n)) for n in cls.names()))

    def moments(self, query: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (float64) of <u_query, pseudo-perturbation of target>."""
        query = np.asarray(query, dtype=np.int64)
        g = self.signature[np.asarray(target, dtype=np.int64)]
        start = self.sig_offsets[g]
        length = self.sig_offsets[g + 1] - start
        mean = np.empty(g.size)
        var = np.empty(g.size)
        cum = np.cumsum(length)
        i = 0  # pairs in blocks whose expansion over their targets' pools stays within _BLOCK elements
        while i < g.size:
            done = cum[i - 1] if i else 0
            j = max(i + 1, int(np.searchsorted(cum, done + _BLOCK, side="right")))
            ln = length[i:j]
            pair = np.repeat(np.arange(j - i), ln)
            pos = np.arange(ln.sum()) - np.repeat(np.cumsum(ln) - ln, ln) + np.repeat(start[i:j], ln)
            pool = self.sig_pool[pos]
            c = self.sig_count[pos].astype(np.float64)
            size = self.pool_size[pool].astype(np.float64)
            q = query[i:j][pair]
            n = np.bincount(pair, weights=c, minlength=j - i)
            mean[i:j] = np.bincount(pair, weights=c * self.mean[q, pool], minlength=j - i) / n
            s2 = np.asarray(self.sd[q, pool], dtype=np.float64) ** 2
            var[i:j] = np.bincount(pair, weights=c * s2 * (size - 1.0 + c) / size, minlength=j - i) / n ** 2
            i = j
        return mean, np.maximum(np.sqrt(var), 1e-12)


def _pool_projections(unit: np.ndarray, aligned: np.ndarray, pools: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(entities x pools) float32: each pool's control mean on each direction, and its standard
    deviation along it, as ``sqrt(u' S_p u)`` with the pool's covariance ``S_p`` (ddof 1).

    The quadratic forms of every direction with every covariance are one matrix product: with
    ``w = vech(u u')`` (off-diagonal terms doubled) and ``v_p = vech(S_p)``, ``u' S_p u = w . v_p``.
    That costs entities x d(d+1)/2 x pools, not entities x d x control wells."""
    u = np.asarray(unit, dtype=np.float64)
    d = u.shape[1]
    iu, ju = np.triu_indices(d)
    twice = np.where(iu == ju, 1.0, 2.0)
    mus = np.empty((len(pools), d))
    covs = np.zeros((len(pools), iu.size), dtype=np.float32)
    for p, rows in enumerate(pools):
        x = np.asarray(aligned[np.sort(rows)], dtype=np.float64)
        mus[p] = x.mean(axis=0)
        if len(rows) > 1:
            xc = x - mus[p]
            covs[p] = ((xc.T @ xc) / (len(rows) - 1))[iu, ju] * twice
    mean = (u @ mus.T).astype(np.float32)
    var = np.empty((u.shape[0], len(pools)), dtype=np.float32)
    step = max(1, _BLOCK // max(iu.size, 1))
    for s in range(0, u.shape[0], step):
        us = u[s:s + step]
        var[s:s + step] = (us[:, iu] * us[:, ju]).astype(np.float32) @ covs.T
    return mean, np.sqrt(np.maximum(var, 0.0))


def closed_form_null(unit: np.ndarray, aligned: np.ndarray, wells: pd.DataFrame, members, is_control: np.ndarray
                     ) -> tuple[np.ndarray, ...]:
    """(signature, mean, sd, sig_offsets, sig_pool, sig_count, pool_size) of :class:`MatchNull`.

    ``members``: significance.EntityWells of the entities; ``unit``: their (n_entities, d) unit
    directions; ``aligned``: the (n_wells, d) aligned wells they were averaged from. Entities whose
    wells draw from the same pools equally often share a signature."""
    pool_of_well, pools = slot_pools(wells, is_control)
    keys: dict[tuple, int] = {}
    signature = np.empty(len(members.offsets) - 1, dtype=np.int32)
    sig_pool: list[np.ndarray] = []
    sig_count: list[np.ndarray] = []
    for e in range(signature.size):
        used, count = np.unique(pool_of_well[members.of(e)], return_counts=True)
        key = (used.tobytes(), count.tobytes())
        if key not in keys:
            keys[key] = len(keys)
            sig_pool.append(used.astype(np.int32))
            sig_count.append(count.astype(np.int32))
        signature[e] = keys[key]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in sig_pool])]).astype(np.int64)
    mean, sd = _pool_projections(unit, aligned, pools)
    return (signature, mean, sd, offsets, np.concatenate(sig_pool), np.concatenate(sig_count),
            np.array([len(r) for r in pools], dtype=np.int32))
