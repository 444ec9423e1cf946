"""Server-side neighbour search: exact against brute force, groups, exclusions, annotations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.annotations import Annotations
from phenomix_dash.neighbours import (
    NeighbourError,
    NeighbourIndex,
    entity_label,
    extremes,
    neighbour_frame,
    overlay_kind,
    pair_overlays,
    percentile_of,
    search,
    search_options,
    unit_labels,
)


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _table() -> pd.DataFrame:
    rows = [("crispr", f"G{i}", "pooled", np.nan, f"G{i}") for i in range(6)]
    rows += [("orf", "G0", "pooled", np.nan, "G0")]
    for c in ("C1", "C2"):
        rows += [("compound", c, "pooled", np.nan, None)]
        rows += [("compound", c, "dose", conc, None) for conc in (0.1, 1.0, 10.0)]
    rows += [("negative_control", "DMSO", "pooled", np.nan, None)]
    t = pd.DataFrame(rows, columns=["perturbation_type", "perturbation", "level", "concentration_um", "gene"])
    t["pert_id"] = [f"{a}:{b}@{c!r}" if lvl == "dose" else f"{a}:{b}"
                    for a, b, lvl, c in zip(t.perturbation_type, t.perturbation, t.level, t.concentration_um, strict=True)]
    return t


def _brute(sims: np.ndarray, cand: np.ndarray, exclude: set[int], k: int, top: bool) -> np.ndarray:
    keep = np.array([c for c in cand if c not in exclude])
    key = -sims[keep] if top else sims[keep]
    order = np.lexsort((keep, key))
    return keep[order[:k]]


@pytest.mark.parametrize("k", [1, 5, 40])
def test_search_agrees_with_brute_force(k):
    unit = _unit(400, 16)
    groups = {"a": np.arange(0, 400, 2), "b": np.arange(1, 400, 2)}
    for q in (0, 7, 399):
        exclude = np.array([q + 1]) if q + 1 < 400 else None
        res = search(unit, q, k, groups, exclude=exclude)
        sims = unit @ unit[q]
        ex = {q} | (set(exclude.tolist()) if exclude is not None else set())
        for name, cand in groups.items():
            np.testing.assert_array_equal(res[name].top_idx, _brute(sims, cand, ex, k, True))
            np.testing.assert_array_equal(res[name].bottom_idx, _brute(sims, cand, ex, k, False))
            np.testing.assert_allclose(res[name].top_sim, sims[res[name].top_idx])
            assert np.all(np.diff(res[name].top_sim) <= 0) and np.all(np.diff(res[name].bottom_sim) >= 0)


def test_extremes_handles_small_candidate_sets_and_ties():
    sims = np.array([0.5, 0.5, -0.2, 0.9, 0.5], dtype=np.float32)
    r = extremes(sims, 10, candidates=np.array([0, 1, 4, 3]), exclude=np.array([3]))
    assert r.top_idx.tolist() == [0, 1, 4]  # ties broken by lower row
    assert r.bottom_idx.tolist() == [0, 1, 4]
    assert extremes(sims, 0).top_idx.size == 0
    with pytest.raises(NeighbourError):
        extremes(sims, -1)


def test_search_rejects_bad_query():
    with pytest.raises(NeighbourError, match="outside"):
        search(_unit(5, 3), 9, 2, {"all": np.arange(5)})


def test_index_groups_exclude_own_doses():
    t = _table()
    unit = _unit(len(t), 8, seed=1)
    idx = NeighbourIndex.build(unit, t)
    # Compounds are searched among per-dose entities; genes among CRISPR and ORF entities.
    assert set(t.loc[idx.groups["compound"], "level"]) == {"dose"}
    assert set(t.loc[idx.groups["gene"], "perturbation_type"]) == {"crispr", "orf"}
    res = idx.query("compound:C1@1.0", k=10)
    got = t.loc[res["compound"].top_idx, "perturbation"]
    assert "C1" not in set(got), "a compound's own doses are not its neighbours"
    assert len(res["compound"].top_idx) == 3
    with pytest.raises(NeighbourError, match="unknown"):
        idx.query("crispr:NOPE")


def test_index_rejects_mismatched_rows():
    with pytest.raises(NeighbourError, match="rows"):
        NeighbourIndex.build(_unit(3, 4), _table())


def _ann() -> Annotations:
    rel = pd.DataFrame({"entity1": ["G1", "G2"], "entity2": ["G2", "G3"], "source": ["CORUM", "StringDB"]})
    tgt = pd.DataFrame({"compound": ["C1", "C2"], "gene": ["G1", "G1"], "source": ["chembl", "chembl"]})
    return Annotations(rel, tgt, {"G1": "CPLX_A", "G2": "CPLX_A", "G4": "CPLX_B"})


def test_annotation_flags_cover_relationships_targets_and_complexes():
    ann = _ann()
    g1 = {"perturbation_type": "crispr", "perturbation": "G1", "gene": "G1"}
    g2 = {"perturbation_type": "crispr", "perturbation": "G2", "gene": "G2"}
    g3 = {"perturbation_type": "orf", "perturbation": "G3", "gene": "G3"}
    c1 = {"perturbation_type": "compound", "perturbation": "C1", "gene": None}
    c2 = {"perturbation_type": "compound", "perturbation": "C2", "gene": None}
    assert ann.pair_flags(g1, g2) == ["CORUM", "same complex (CPLX_A)"]
    assert ann.pair_flags(g3, g2) == ["StringDB"]  # relationships are undirected
    assert ann.pair_flags(g1, g3) == []
    assert ann.pair_flags(c1, g1) == ["compound target"] == ann.pair_flags(g1, c1)
    assert ann.pair_flags(c1, c2) == ["shared target G1"]
    assert overlay_kind(["CORUM", "same complex (CPLX_A)"]) == "same complex"
    assert overlay_kind(["compound target"]) == "compound target"
    assert overlay_kind([]) is None
    assert ann.genes_in_complex("CPLX_A") == ["G1", "G2"]


def test_pair_overlays_positions():
    t = _table()
    ann = _ann()
    rows = np.flatnonzero((t.perturbation_type == "crispr").to_numpy())[:3]  # G0, G1, G2
    cols = np.flatnonzero((t.level == "dose").to_numpy())  # C1 x3, C2 x3
    marks = pair_overlays(ann, t, rows, cols)
    assert marks and all(k == "compound target" for *_, k in marks)
    assert {(i, j) for i, j, _ in marks} == {(1, j) for j in range(6)}


def test_neighbour_frame_and_labels():
    t = _table()
    null = np.sort(np.random.default_rng(0).uniform(-1, 1, 1000)).astype(np.float32)
    f = neighbour_frame(t, np.array([1, 2]), np.array([0.9, -0.95]), 0, null, _ann())
    assert list(f.columns) == ["rank", "pert_id", "entity", "type", "cosine", "percentile", "known"]
    assert f["entity"].tolist() == ["G1 (CRISPR)", "G2 (CRISPR)"]
    assert f["percentile"].iloc[0] > 90 and f["percentile"].iloc[1] < 5
    assert entity_label(t.iloc[9].to_dict()) == "C1 @ 1 µM"
    assert entity_label(t.iloc[7].to_dict()) == "C1 (all doses)"
    assert np.isnan(percentile_of(0.3, None))


def test_search_options_filters_on_the_server():
    t = _table()
    opts = search_options(t, "c1", ("compound",), None)
    assert [o["value"] for o in opts] == ["compound:C1"]
    opts = search_options(t, "c1", ("compound",), ["compound:C2"], doses=True)
    assert opts[0]["value"] == "compound:C2" and len(opts) == 5  # kept value first, then C1 and its doses
    assert len(search_options(t, None, ("crispr",), None, limit=3)) == 3
    assert unit_labels(t)[9] == "compound:C1"


def test_neighbour_bars_and_grid():
    from phenomix_dash.figures.neighbours import neighbour_bars, neighbour_grid

    t = _table()
    top = neighbour_frame(t, np.array([1, 2]), np.array([0.8, 0.4]), 0, None, _ann())
    bottom = neighbour_frame(t, np.array([3]), np.array([-0.6]), 0, None, _ann())
    fig = neighbour_bars({"genes": (top, bottom)}, title="GENE")
    bar = fig.data[0]
    assert bar.type == "bar" and bar.orientation == "h"
    assert list(bar.customdata) == ["crispr:G1", "crispr:G2", "crispr:G3"], "clicks carry the pert_id"
    assert list(bar.marker.color) == [bar.marker.color[0]] * 2 + [bar.marker.color[2]] and bar.marker.color[0] != bar.marker.color[2]
    labels = fig.layout.yaxis.ticktext
    assert labels[0] == "G1 (CRISPR)" and fig.layout.xaxis.range == (-1, 1)
    g = neighbour_grid("g", top)
    assert g.getRowId == "params.data.pert_id" and g.csvExportParams["fileName"] == "neighbours.csv"
    assert [r["entity"] for r in g.rowData] == ["G1 (CRISPR)", "G2 (CRISPR)"]
    with pytest.raises(ValueError, match="lacks columns"):
        neighbour_bars({"x": (top.drop(columns="known"), bottom)})
