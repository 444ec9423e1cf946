"""Server-side nearest-neighbour search over ALL perturbations, and the neighbour tables pages show.

The relate stage stores only a truncated neighbour list per entity; a page that wants "the
closest compounds to this gene" must not be limited by it. One float32 mat-vec of the query's
unit embedding against every unit embedding (n x d) plus ``argpartition`` per group is exact and
takes ~10-20 ms at 100,000 x 384 on two cores (benchmarks/bench_neighbours.py), so it runs per
click. The unit matrix is read into RAM once per process (read-only; never mutated).

What is known about a pair (phenomix_dash/annotations.py) is joined to the neighbour tables and
the heatmap overlays here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from phenomix_dash.annotations import GENETIC_TYPES, Annotations
from phenomix_dash.cache import memoize
from phenomix_dash.data import PhenomixData
from phenomix_dash.name_data import named_perturbations
from phenomix_dash.names import TYPE_SHORT, dropdown_options, entity_label


class NeighbourError(ValueError):
    """A neighbour query that cannot be answered as asked (bad index, bad k)."""


@dataclass(frozen=True)
class NeighbourLists:
    """Most similar (descending) and most anti-similar (ascending) rows of one group."""

    top_idx: np.ndarray
    top_sim: np.ndarray
    bottom_idx: np.ndarray
    bottom_sim: np.ndarray


def cosine_to_all(unit: np.ndarray, query: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Cosine of a unit query (d,) with every unit row of ``unit`` (n, d) -> (n,) float32."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1 or q.shape[0] != unit.shape[1]:
        raise NeighbourError(f"query has shape {q.shape}; expected ({unit.shape[1]},)")
    return np.dot(unit, q, out=out)


def extremes(sims: np.ndarray, k: int, candidates: np.ndarray | None = None,
             exclude: np.ndarray | None = None) -> NeighbourLists:
    """The k highest and k lowest similarities among ``candidates`` (row indices; default all).

    ``exclude`` rows (e.g. the query and its other doses) never appear. Indices returned are
    rows of ``sims``; ties are broken by the lower row index.
    """
    if k < 0:
        raise NeighbourError(f"k must be >= 0, got {k}")
    cand = np.arange(sims.size) if candidates is None else np.asarray(candidates, dtype=np.int64)
    ex = np.zeros(0, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    s = sims[cand]
    # Partition once for both ends, keeping len(exclude) spare at each so the excluded rows
    # can be dropped afterwards (cheaper than filtering all candidates first).
    m = min(k + ex.size, cand.size)
    if m == 0:
        empty = np.empty(0, dtype=np.int64)
        return NeighbourLists(empty, sims[empty], empty, sims[empty])
    if 2 * m < cand.size:
        part = np.argpartition(s, (m - 1, cand.size - m))
        low, high = part[:m], part[cand.size - m:]
    else:
        low = high = np.arange(cand.size)

    def pick(pos: np.ndarray, key: np.ndarray) -> np.ndarray:
        pos = pos[~np.isin(cand[pos], ex)] if ex.size else pos
        order = np.lexsort((cand[pos], key[pos]))[:k]  # by key, then lower row index
        return cand[pos[order]]

    top = pick(high, -s)
    bottom = pick(low, s)
    return NeighbourLists(top, sims[top], bottom, sims[bottom])


def search(unit: np.ndarray, query_index: int, k: int, groups: dict[str, np.ndarray],
           exclude: np.ndarray | None = None) -> dict[str, NeighbourLists]:
    """Exact neighbours of row ``query_index`` within each group, over all n rows.

    Args:
        unit: (n, d) float32 L2-normalised rows (row order = perturbations()).
        query_index: the query's row.
        k: neighbours per list.
        groups: name -> row indices that may be returned (e.g. genes, compounds).
        exclude: rows never returned; the query itself is always excluded.
    """
    n = unit.shape[0]
    if not 0 <= int(query_index) < n:
        raise NeighbourError(f"query row {query_index} is outside 0..{n - 1}")
    sims = cosine_to_all(unit, unit[int(query_index)])
    ex = np.array([int(query_index)], dtype=np.int64)
    if exclude is not None:
        ex = np.union1d(ex, np.asarray(exclude, dtype=np.int64))
    return {name: extremes(sims, k, idx, ex) for name, idx in groups.items()}


@dataclass(frozen=True)
class NeighbourIndex:
    """Unit embeddings in RAM plus the row groups pages search within."""

    unit: np.ndarray
    table: pd.DataFrame
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    row_of: dict[str, int] = field(default_factory=dict)
    family: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    @classmethod
    def build(cls, unit: np.ndarray, table: pd.DataFrame) -> NeighbourIndex:
        """Genes = CRISPR/ORF entities; compounds = per-dose entities where doses exist, else pooled."""
        if unit.shape[0] != len(table):
            raise NeighbourError(f"unit embeddings have {unit.shape[0]} rows but the perturbation table {len(table)}")
        t = table["perturbation_type"].to_numpy()
        genes = np.flatnonzero(np.isin(t, GENETIC_TYPES))
        cmpd = t == "compound"
        dose = cmpd & (table["level"].to_numpy() == "dose")
        compounds = np.flatnonzero(dose if dose.any() else cmpd)
        unit32 = np.ascontiguousarray(unit, dtype=np.float32)
        unit32.setflags(write=False)
        # One integer per perturbation (pooled entity and its doses share it): comparing ints
        # is ~100x faster than comparing strings at 10^5 rows.
        family = pd.factorize(table["perturbation_type"].astype(str) + "\x1f" + table["perturbation"].astype(str))[0]
        return cls(unit32, table, {"gene": genes, "compound": compounds},
                   {p: i for i, p in enumerate(table["pert_id"])}, family, unit_labels(table))

    def siblings(self, row: int) -> np.ndarray:
        """Rows of the same perturbation (pooled entity and its doses): not useful as neighbours."""
        return np.flatnonzero(self.family == self.family[row])

    def query(self, pert_id: str, k: int = 10) -> dict[str, NeighbourLists]:
        row = self.row_of.get(pert_id)
        if row is None:
            raise NeighbourError(f"unknown perturbation {pert_id!r}")
        return search(self.unit, row, k, self.groups, exclude=self.siblings(row))


@memoize(4, store=True)
def _index(d: PhenomixData, embedder: str) -> NeighbourIndex:
    # The table carries each entity's name, MOA and InChIKey: every label built from it shows them.
    return NeighbourIndex.build(np.asarray(d.unit_embeddings(embedder)), named_perturbations(d, embedder))


def neighbour_index(d: PhenomixData, embedder: str | None = None) -> NeighbourIndex:
    """The process-wide, read-only index of a run's unit embeddings (loaded on first use)."""
    return _index(d, embedder or d.primary_embedder)


# -- tables for the pages -------------------------------------------------------------------

_TYPE_SHORT = TYPE_SHORT


def percentile_of(sims: np.ndarray | float, null_sorted: np.ndarray | None) -> np.ndarray:
    """Percentile (0-100) of similarities among random pairs; NaN without a null sample."""
    v = np.asarray(sims, dtype=np.float64)
    if null_sorted is None or len(null_sorted) == 0:
        return np.full(v.shape, np.nan)
    from precompute.relate import similarity_percentile

    return similarity_percentile(v, np.asarray(null_sorted))


def neighbour_frame(table: pd.DataFrame, rows: np.ndarray, sims: np.ndarray, query_row: int,
                    null_sorted: np.ndarray | None = None, ann: Annotations | None = None) -> pd.DataFrame:
    """One neighbour list as a table: rank, pert_id, entity, type, cosine, percentile, known.

    ``rows`` index ``table`` (perturbations()); ``known`` joins the annotation flags of each
    neighbour with the query (relationship sources, compound targets, same complex).
    """
    sub = table.iloc[np.asarray(rows, dtype=np.int64)]
    recs = sub.to_dict("records")
    flags = ann.flags_against(table.iloc[query_row].to_dict(), recs) if ann is not None else [[] for _ in recs]
    return pd.DataFrame({
        "rank": np.arange(1, len(recs) + 1),
        "pert_id": sub["pert_id"].astype(str).to_numpy(),
        "entity": [entity_label(r) for r in recs],
        "type": [_TYPE_SHORT.get(r["perturbation_type"], r["perturbation_type"]) for r in recs],
        "cosine": np.round(np.asarray(sims, dtype=np.float64), 3),
        "percentile": np.round(percentile_of(sims, null_sorted), 1),
        "known": ["; ".join(f) for f in flags],
    })


_OVERLAY_PRIORITY = ("compound target", "same complex", "relationship", "shared target")


def overlay_kind(flags: list[str]) -> str | None:
    """The one marker a heatmap cell gets for its annotation flags (None: nothing known)."""
    kinds = set()
    for f in flags:
        if f == "compound target":
            kinds.add("compound target")
        elif f.startswith("same complex"):
            kinds.add("same complex")
        elif f.startswith("shared target"):
            kinds.add("shared target")
        elif f != "same gene":
            kinds.add("relationship")
    return next((k for k in _OVERLAY_PRIORITY if k in kinds), None)


def pair_overlays(ann: Annotations, table: pd.DataFrame, rows: np.ndarray, cols: np.ndarray) -> list[tuple[int, int, str]]:
    """(row position, column position, kind) of every heatmap cell with a known relationship."""
    col_recs = table.iloc[np.asarray(cols, dtype=np.int64)].to_dict("records")
    out = []
    for i, rec in enumerate(table.iloc[np.asarray(rows, dtype=np.int64)].to_dict("records")):
        for j, flags in enumerate(ann.flags_against(rec, col_recs)):
            kind = overlay_kind(flags)
            if kind is not None:
                out.append((i, j, kind))
    return out


def unit_labels(table: pd.DataFrame) -> np.ndarray:
    """One label per entity that its doses share: the pooled pert_id (e.g. 'compound:CPD1')."""
    return table["pert_id"].astype(str).str.split("@", n=1).str[0].to_numpy(dtype=object)


def search_options(table: pd.DataFrame, text: str | None, kinds: tuple[str, ...], keep: list[str] | None,
                   limit: int = 50, *, doses: bool = False) -> list[dict]:
    """Dropdown options of a perturbation table matching ``text`` on any of name, id, InChIKey or
    synonym (names.dropdown_options); pages use name_data.search_options, which caches the index."""
    return dropdown_options(table, text, kinds, keep, limit, doses=doses)
