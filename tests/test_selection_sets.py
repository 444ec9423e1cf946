"""Selections (issue #16): tables, composition against the screen with a batch-artefact flag, A/B
effect sizes and annotation enrichment, and the selection as AnnData read back with anndata."""

from __future__ import annotations

import io

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from dash import no_update
from page_helpers import page

from phenomix_dash.figures.selection import composition_figure, effect_size_figure
from phenomix_dash.selection import (
    decode_region,
    encode_region,
    point_coordinates,
    selected_well_rows,
    stored_selection,
)
from phenomix_dash.selection_compare import (
    CompareError,
    annotation_enrichment,
    annotation_terms,
    compare_selections,
    effect_sizes,
    pc_effects,
)
from phenomix_dash.selection_stats import (
    artefact_flags,
    composition,
    perturbation_counts,
    selection_composition,
    selection_h5ad,
    selection_tables,
)


def _screen(n_per_plate: int = 100) -> pd.DataFrame:
    """3 batches x 2 plates; perturbations p0..p9 spread evenly, every tenth well a control."""
    rows = []
    for b in range(3):
        for pl in range(2):
            for i in range(n_per_plate):
                rows.append({"well_id": f"b{b}p{pl}w{i}", "batch": f"B{b}", "plate": f"B{b}_P{pl}",
                             "perturbation_type": "negative_control" if i % 10 == 0 else "crispr",
                             "perturbation": "NTC" if i % 10 == 0 else f"G{i % 7}"})
    return pd.DataFrame(rows)


def _box(sel_xy: np.ndarray, lo: float, hi: float, space: str = "aligned") -> str:
    a, b = np.percentile(sel_xy, lo, axis=0), np.percentile(sel_xy, hi, axis=0)
    return encode_region(space, np.array([[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]]))


# -- composition and tables ----------------------------------------------------------------------

def test_a_selection_dominated_by_one_batch_is_flagged_as_an_artefact():
    w = _screen()
    in_b1 = np.flatnonzero(w["batch"] == "B1")
    elsewhere = np.flatnonzero(w["batch"] != "B1")
    rows = np.concatenate([in_b1[:160], elsewhere[::40]])  # 160 of B1's 200 wells + 10 others
    comp = composition(w, rows)
    b1 = comp[(comp["column"] == "batch") & (comp["value"] == "B1")].iloc[0]
    assert b1["selected"] == 160 and b1["total"] == 200
    assert b1["expected"] == pytest.approx(len(rows) / 3)
    assert b1["ratio"] == pytest.approx(160 / (len(rows) / 3)) and b1["q"] < 1e-10
    flags = artefact_flags(comp)
    assert any(f.startswith("batch B1 holds 160 of the 170 selected wells") for f in flags)
    # Every category is listed, the absent ones with 0 selected (an under-represented batch shows).
    assert set(comp.loc[comp["column"] == "plate", "value"]) == set(w["plate"])


def test_an_evenly_spread_selection_is_not_flagged():
    w = _screen()
    comp = composition(w, np.arange(0, len(w), 3))
    assert artefact_flags(comp) == []
    assert (comp.loc[comp["column"] == "batch", "ratio"].between(0.9, 1.1)).all()


def test_perturbation_table_counts_selected_and_total_wells():
    w = _screen()
    rows = np.flatnonzero((w["plate"] == "B0_P0").to_numpy())
    t = perturbation_counts(w, rows)
    ntc = t[t["pert_id"] == "negative_control:NTC"].iloc[0]
    assert ntc["wells_selected"] == 10 and ntc["wells_total"] == 60 and ntc["fraction_selected"] == pytest.approx(1 / 6)
    assert t["wells_selected"].sum() == len(rows)
    assert t["wells_selected"].is_monotonic_decreasing


# -- A vs B --------------------------------------------------------------------------------------

def test_effect_sizes_find_the_one_separating_dimension():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)).astype(np.float32)
    a, b = np.arange(0, 200), np.arange(200, 400)
    x[a, 5] += 2.0  # A is shifted by two SDs along dim 5 only
    x[:, 9] = 1.0  # constant: no effect size can be measured
    eff = effect_sizes(x, a, b, [f"dim {i}" for i in range(12)])
    top = eff.iloc[0]
    assert top["name"] == "dim 5" and top["cohen_d"] == pytest.approx(2.0, abs=0.3) and top["q"] < 1e-20
    from scipy.stats import ttest_ind

    ref = ttest_ind(x[a][:, 5].astype(float), x[b][:, 5].astype(float), equal_var=False)
    assert top["welch_t"] == pytest.approx(ref.statistic, rel=1e-4) and top["p"] == pytest.approx(ref.pvalue, rel=1e-3)
    others = eff[~eff["name"].isin(["dim 5", "dim 9"])]
    assert (others["q"] > 0.01).all()
    const = eff[eff["name"] == "dim 9"].iloc[0]
    assert np.isnan(const["cohen_d"]) and np.isnan(const["q"])
    pcs = pc_effects(x, a, b, n_pcs=3)
    assert pcs.table.iloc[0]["name"] == "PC1" and abs(pcs.table.iloc[0]["cohen_d"]) > 1.5
    assert pcs.fitted_on == pcs.of == 400
    small = pc_effects(x, a, b, n_pcs=2, max_fit=50)
    assert (small.fitted_on, small.of) == (50, 400)  # the sample is reported with both counts
    with pytest.raises(CompareError, match="at least 2"):
        effect_sizes(x, a[:1], b, [str(i) for i in range(12)])


def test_annotations_enriched_in_each_selection():
    from scipy.stats import fisher_exact

    perts = pd.DataFrame({"perturbation_type": ["compound"] * 6 + ["crispr"] * 6,
                          "perturbation": [f"C{i}" for i in range(6)] + [f"G{i}" for i in range(6)],
                          "gene": [None] * 6 + [f"G{i}" for i in range(6)]})
    moa = pd.DataFrame({"compound": [f"C{i}" for i in range(6)], "moa": ["HDAC inhibitor"] * 3 + ["other"] * 3})
    targets = pd.DataFrame({"compound": ["C0"], "gene": ["G0"]})
    genes = pd.DataFrame({"gene": [f"G{i}" for i in range(6)], "complex": ["CX1"] * 3 + ["CX2"] * 3})
    terms = annotation_terms(perts, moa=moa, targets=targets, genes=genes)
    c0 = set(map(tuple, terms.loc[terms["key"] == "compound:C0", ["category", "term"]].to_numpy()))
    assert c0 == {("perturbation type", "compound"), ("MOA", "HDAC inhibitor"), ("target", "G0"), ("complex", "CX1")}
    a = {"compound:C0", "compound:C1", "compound:C2", "crispr:G0", "crispr:G1", "crispr:G2"}
    b = {"compound:C3", "compound:C4", "compound:C5", "crispr:G3", "crispr:G4", "crispr:G5"}
    enr = annotation_enrichment(terms, a, b)
    hdac = enr[enr["term"] == "HDAC inhibitor"].iloc[0]
    assert (hdac["in_a"], hdac["n_a"], hdac["in_b"], hdac["n_b"], hdac["enriched_in"]) == (3, 6, 0, 6, "A")
    assert hdac["p"] == pytest.approx(fisher_exact([[3, 3], [0, 6]]).pvalue)
    assert enr[enr["term"] == "CX2"].iloc[0]["enriched_in"] == "B"
    ptype = enr[enr["term"] == "compound"].iloc[0]
    assert ptype["p"] == pytest.approx(1.0)  # half of each side: nothing enriched
    assert annotation_enrichment(terms, a, set()).empty


# -- figures -------------------------------------------------------------------------------------

def test_figures_show_ratios_and_effects_with_missing_as_grey():
    comp = composition(_screen(), np.arange(0, 200))
    fig = composition_figure(comp)
    assert len(fig.data) == 1 and "batch · B0" in list(fig.data[0].y)
    eff = pd.DataFrame({"name": ["a", "b"], "cohen_d": [1.2, np.nan], "q": [0.001, np.nan]})
    fig = effect_size_figure(eff, "t")
    assert list(fig.data[0].marker.color) == ["#D55E00", "#B0B0B0"]
    with pytest.raises(ValueError, match="lacks columns"):
        effect_size_figure(pd.DataFrame({"x": [1]}), "t")


# -- on the tiny store ---------------------------------------------------------------------------

def test_the_selection_as_anndata_reads_back_as_its_rows(app_data):
    d = app_data
    sel = _box(point_coordinates(d, "wells", "aligned"), 10, 60)
    rows = selected_well_rows(d, "wells", sel)
    assert 0 < rows.size < len(d.wells)
    a = ad.read_h5ad(io.BytesIO(selection_h5ad(d, "wells", sel)))
    assert a.obs_names.tolist() == d.wells["well_id"].iloc[rows].astype(str).tolist()
    np.testing.assert_array_equal(a.X, np.asarray(d.well_embeddings("aligned"))[rows])
    np.testing.assert_array_equal(a.obsm["X_raw"], np.asarray(d.well_embeddings("raw"))[rows])
    np.testing.assert_array_equal(a.obsm["X_umap"], np.asarray(d.umap("aligned"))[rows])
    sub = a.uns["phenomix"]["subset"]
    assert (sub["selection"], sub["n_obs"], sub["of"]) == (sel, rows.size, len(d.wells))
    assert a.obs["plate"].astype(str).tolist() == d.wells["plate"].iloc[rows].astype(str).tolist()


def test_store_tables_composition_and_compare(app_data):
    d = app_data
    xy = point_coordinates(d, "wells", "aligned")
    sel_a, sel_b = _box(xy, 0, 45), _box(xy, 55, 100)
    perts, wells, n = selection_tables(d, "wells", sel_a)
    assert n == len(selected_well_rows(d, "wells", sel_a)) and perts["wells_selected"].sum() == n
    assert wells["well_id"].tolist() == d.wells["well_id"].iloc[selected_well_rows(d, "wells", sel_a)[:2000]].tolist()
    comp = selection_composition(d, "wells", sel_a)
    assert comp.groupby("column")["selected"].sum().eq(n).all()
    c = compare_selections(d, sel_a, sel_b)
    assert (c.n_a, c.n_b) == (len(selected_well_rows(d, "wells", sel_a)), len(selected_well_rows(d, "wells", sel_b)))
    assert len(c.directions) == d.well_embeddings("aligned").shape[1]
    assert c.directions["q"].min() < 0.05  # two far-apart regions of the map differ somewhere
    if d.driver_embedder is not None:
        assert c.features is not None and len(c.features) == len(d.feature_drivers()[0])
    assert set(c.annotations["category"]) >= {"perturbation type"}


def test_stored_selections_keep_their_level():
    poly = np.array([[0, 0], [1, 0], [1, 1]], float)
    assert stored_selection("wells", encode_region("raw", poly)).startswith("raw:")
    stored = stored_selection("perturbations", encode_region("aligned", poly))
    assert stored.startswith("perturbations:") and decode_region(stored)[0] == "perturbations"
    assert stored_selection("wells", None) is None


def test_a_perturbation_region_stored_as_a_selects_their_wells(app_data):
    d = app_data
    everything = encode_region("perturbations", np.array([[-1e3, -1e3], [1e3, -1e3], [1e3, 1e3], [-1e3, 1e3]]))
    assert len(selected_well_rows(d, "wells", everything)) == len(d.wells)


def test_map_page_a_b_callbacks_and_url(app_data):
    m = page("map")
    d = app_data
    xy = point_coordinates(d, "wells", "aligned")
    sel = _box(xy, 0, 45)
    from phenomix_dash.selection_panels import ab_update

    assert ab_update("A", "wells", sel) == (sel, no_update)
    assert ab_update("B", "perturbations", sel)[1].startswith("perturbations:")
    assert ab_update("clear", "wells", sel) == (None, None)
    assert ab_update("A", "wells", "junk") == (no_update, no_update)
    assert ab_update(None, "wells", sel) == (no_update, no_update)
    # A link with both slots reproduces them; screen and gene set in the link survive a rewrite.
    url = m.sync_url("wells", "both", "batch", None, sel, None, sel, _box(xy, 55, 100), "?screen=demo&set=CPLX_1")
    assert "screen=demo" in url and "set=CPLX_1" in url and "selA=aligned" in url and "selB=aligned" in url
    text = str(m.layout(selA=sel, selB="nonsense"))
    assert "selection B" in text
    compare, status = m.show_compare(sel, _box(xy, 55, 100))
    assert "A: a 4-vertex region of the aligned map" in status and "map-compare-content" in str(compare)
    compare, _ = m.show_compare(sel, None)
    assert "Store a selection as B" in str(compare)
    for junk in ({"x": 1}, ["a"], "raw:1,2", "perturbations:" + "9," * 3000):
        m.show_compare(junk, junk)  # crafted values become a message, never an exception
        m.show_selection_tables(junk, "wells")
