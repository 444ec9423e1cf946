"""The chosen gene set on one screen: its annotation sets, names and members, read through the data
object and cached per store (the science is in gene_sets.py). Every function takes the data object
first, so pages, benchmarks and tests call the same code."""

from __future__ import annotations

import numpy as np
import pandas as pd

from phenomix_dash import gene_sets as gs
from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable, PhenomixData

MAX_MAP_MEMBERS = 20_000  # member points outlined on a map; more is said, not drawn


def _table(d: PhenomixData, name: str) -> pd.DataFrame | None:
    try:
        return d.ground_truth(name)
    except DataUnavailable:
        return None


@memoize(4, store=True)
def screen_sets(d: PhenomixData) -> dict[str, dict[str, list[str]]]:
    """source -> set name -> member names, from the screen's annotation tables."""
    return gs.annotation_sets(_table(d, "genes"), _table(d, "compound_targets"), _table(d, "compound_moa"))


@memoize(4, store=True)
def set_options(d: PhenomixData) -> list[dict[str, str]]:
    """The chooser's options: one per annotation set, labelled with its source and size."""
    return [{"label": f"{gs.SOURCES[src]}: {name} ({len(members)})", "value": gs.encode_annotation(src, name)}
            for src, sets in screen_sets(d).items() for name, members in sets.items()]


def _aliases(d: PhenomixData) -> dict[str, list[str]] | None:
    """Other names of each perturbation (a compound's common name, InChIKey, synonyms), from the
    names module (phenomix_dash/name_data.py); None when the screen or the module has none."""
    try:
        from phenomix_dash.name_data import named_perturbations
    except ImportError:  # the names module is optional: ids and gene symbols still resolve
        return None
    try:
        named = named_perturbations(d)
    except (DataUnavailable, KeyError, ValueError):
        return None
    cols = [c for c in ("name", "inchikey", "synonyms", "aliases") if c in named.columns]
    out: dict[str, list[str]] = {}
    for pid, *vals in zip(named["pert_id"].astype(str), *(named[c] for c in cols), strict=True):
        names = [t for v in vals for t in (v if isinstance(v, tuple) else (v,)) if isinstance(t, str) and t]
        if names:
            out[pid] = names
    return out


@memoize(4, store=True)
def screen_name_index(d: PhenomixData) -> dict[str, np.ndarray]:
    return gs.name_index(d.perturbations(), _aliases(d))


@memoize(64, store=True)
def current_set(d: PhenomixData, key: str | None) -> gs.GeneSet | None:
    """The set a URL value names on this screen; SetError says why it cannot be used."""
    if not key:
        return None
    return gs.resolve_set(key, d.perturbations(), screen_sets(d), screen_name_index(d))


def try_set(d: PhenomixData, key: object) -> tuple[gs.GeneSet | None, str | None]:
    """(the set, None) or (None, why it cannot be shown): for callbacks, which never raise."""
    if not isinstance(key, str) or not key:
        return None, None
    try:
        return current_set(d, key), None
    except gs.SetError as err:
        return None, str(err)
    except DataUnavailable as err:
        return None, f"sets are unavailable on this screen: {err}"


@memoize(64, store=True)
def set_stats(d: PhenomixData, key: str, n_null: int = gs.N_NULL) -> gs.SetStats:
    """Within-set cosine of the members' aggregated embeddings against same-size random sets."""
    s = current_set(d, key)
    if s is None:
        raise gs.SetError("no set chosen")
    perts = d.perturbations()
    return gs.set_statistics(_unit_in_memory(d), s.rows, gs.null_pool(perts, s.rows), n_null=n_null)


@memoize(4, store=True)
def _unit_in_memory(d: PhenomixData) -> np.ndarray:
    """The unit embeddings read into memory once, in float64 (what the set statistics sum in): the
    null's 1,000 random sets gather rows all over them, which from the memory map cost ~0.2 s on a
    fresh process at 33,405 perturbations; 34 MB there."""
    return np.array(d.unit_embeddings(), dtype=np.float64)


@memoize(64, store=True)
def set_activity(d: PhenomixData, key: str) -> pd.DataFrame:
    s = current_set(d, key)
    if s is None:
        raise gs.SetError("no set chosen")
    try:
        act = d.activity()
    except DataUnavailable:
        act = None
    return gs.member_activity(d.perturbations(), act, s.rows)


@memoize(64, store=True)
def member_rows(d: PhenomixData, key: str, level: str) -> np.ndarray:
    """Rows of the map's table (wells or perturbations) that belong to the set's members."""
    s = current_set(d, key)
    if s is None:
        return np.empty(0, dtype=np.int64)
    perts = d.perturbations()
    if level == "wells":
        codes, code_of = _well_entities(d)
        sub = perts.iloc[s.rows]
        want = [code_of[k] for k in zip(sub["perturbation_type"].astype(str), sub["perturbation"].astype(str),
                                         strict=True) if k in code_of]
        return np.flatnonzero(np.isin(codes, np.array(want, dtype=codes.dtype)))
    return gs.member_point_rows(perts, s.rows)


@memoize(4, store=True)
def _well_entities(d: PhenomixData) -> tuple[np.ndarray, dict[tuple[str, str], int]]:
    """Each well's entity (perturbation type, name) as an integer code, once per store: a set's
    wells are then one isin over integers (a million wells: ~10 ms, not a second of string keys)."""
    w = d.wells
    codes, uniques = pd.MultiIndex.from_arrays([w["perturbation_type"].astype(str), w["perturbation"].astype(str)]
                                               ).factorize()
    return codes.astype(np.int32), {tuple(k): i for i, k in enumerate(uniques)}


def warm_up(d: PhenomixData) -> None:
    """Read what every set needs once, at server start: the annotation sets (the screen's tables),
    the name index, the wells' entity codes and the activity table."""
    screen_sets(d)
    set_options(d)
    screen_name_index(d)
    _well_entities(d)
    try:
        _unit_in_memory(d)
    except DataUnavailable:
        pass
    try:
        d.activity()
    except DataUnavailable:
        pass


def member_pert_ids(d: PhenomixData, key: str | None) -> set[str]:
    """pert_ids of every member row (entity and dose rows), for heatmap axes."""
    if not key:
        return set()
    rows = member_rows(d, key, "perturbations")
    return set(d.perturbations()["pert_id"].astype(str).to_numpy()[rows])


def member_well_ids(d: PhenomixData, key: str | None) -> set[str]:
    if not key:
        return set()
    rows = member_rows(d, key, "wells")
    return set(d.wells["well_id"].astype(str).to_numpy()[rows])


def member_wells_on(d: PhenomixData, key: str | None, plate: str | None) -> pd.DataFrame:
    """The member wells of one plate (all plates when ``plate`` is None): well_id, plate, row, col."""
    cols = ["well_id", "plate", "row", "col"]
    if not key:
        return pd.DataFrame(columns=cols)
    w = d.wells.iloc[member_rows(d, key, "wells")]
    if plate is not None:
        w = w[w["plate"] == plate]
    return w[cols].reset_index(drop=True)


def is_member(d: PhenomixData, key: str | None, *, pert_id: str | None = None, well_id: str | None = None) -> bool:
    """Whether one perturbation (any of its rows: entity or dose) or one well belongs to the set."""
    if not key or (pert_id is None) == (well_id is None):
        raise ValueError(f"is_member: give a set and exactly one of pert_id ({pert_id!r}) and well_id ({well_id!r})")
    if pert_id is not None:
        return pert_id in member_pert_ids(d, key)
    row = d.well_index.get(well_id)
    # member_rows is ascending (flatnonzero): a binary search, not a set of up to a million well ids.
    rows = member_rows(d, key, "wells")
    i = int(np.searchsorted(rows, row)) if row is not None else len(rows)
    return i < len(rows) and int(rows[i]) == row
