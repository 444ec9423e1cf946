"""wells_of on a screen-sized wells table answers from a per-table index (#17: two string compares
over a million wells cost 0.3-0.5 s on every Perturbation page answer), with the same rows."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pandas.testing as pdt

from phenomix_dash import perturbation_views as pv


def _wells(n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    perts = np.array([f"P{i}" for i in rng.integers(0, 300, n)], dtype=object)
    perts[::97] = None  # wells without a perturbation name match nothing
    return pd.DataFrame({"perturbation_type": pd.array(rng.choice(["compound", "gene"], n), dtype="string"),
                         "perturbation": pd.array(perts, dtype="string"),
                         "concentration_um": rng.choice([0.1, 1.0, 10.0], n)}, index=pd.RangeIndex(n) + 100)


def test_indexed_lookup_gives_the_same_wells_in_the_same_order(monkeypatch):
    wells = _wells()
    entities = [{"perturbation_type": "gene", "perturbation": "P5"},
                {"perturbation_type": "compound", "perturbation": "P7", "level": "dose", "concentration_um": 1.0},
                {"perturbation_type": "gene", "perturbation": "not a perturbation"}]
    for entity in entities:
        monkeypatch.setattr(pv, "INDEX_FROM_ROWS", 10**9)
        direct = pv.wells_of(wells, entity)
        monkeypatch.setattr(pv, "INDEX_FROM_ROWS", 1)
        pdt.assert_frame_equal(pv.wells_of(wells, entity), direct)
    assert len(pv.wells_of(wells, entities[0])) > 0 and pv.wells_of(wells, entities[2]).empty


def test_the_index_goes_with_its_table(monkeypatch):
    monkeypatch.setattr(pv, "INDEX_FROM_ROWS", 1)
    wells = _wells(500)
    pv.wells_of(wells, {"perturbation_type": "gene", "perturbation": "P1"})
    key = id(wells)
    assert key in pv._row_index
    del wells
    gc.collect()
    assert key not in pv._row_index
