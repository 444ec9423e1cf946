"""The screen's names (phenomix_dash/names.py) read from the store once per process: the perturbation
table with name, MOA, InChIKey and synonyms, its search index, and dropdown options built from it."""

from __future__ import annotations

import pandas as pd

from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable, PhenomixData
from phenomix_dash.names import NameIndex, dropdown_options, entity_names, with_names

# Ground-truth tables that may carry names, MOAs or InChIKeys (each optional).
NAME_TABLES = ("compound_annotation_join", "compound_moa", "compounds", "genes")


@memoize(4, store=True, disk=True)
def entity_name_table(d: PhenomixData) -> pd.DataFrame:
    """One row per named entity of the screen (see names.entity_names); empty when none is."""
    tables = {}
    for name in NAME_TABLES:
        try:
            tables[name] = d.ground_truth(name)
        except DataUnavailable:
            tables[name] = None
    return entity_names(d.wells, tables, d.perturbations())


@memoize(4, store=True)
def named_perturbations(d: PhenomixData, embedder: str | None = None) -> pd.DataFrame:
    """perturbations() with the name columns (a dose row carries its compound's names); shared read-only."""
    return with_names(d.perturbations(embedder), entity_name_table(d))


@memoize(4, store=True)
def name_index(d: PhenomixData) -> NameIndex:
    return NameIndex.build(named_perturbations(d))


def search_options(d: PhenomixData, text: str | None, kinds: tuple[str, ...], keep: list[str] | None,
                   limit: int = 50, *, doses: bool = False) -> list[dict]:
    """names.dropdown_options over the screen's named perturbations and their cached search index."""
    return dropdown_options(named_perturbations(d), text, kinds, keep, limit, doses=doses, index=name_index(d))
