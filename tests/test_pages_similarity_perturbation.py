"""Callback logic of the Similarity, Perturbation, Images and Benchmarks pages, called as plain
functions on the tiny store (no browser). Inputs a user can send (unknown ids, junk strings,
huge lists) must give a message, never a traceback."""

from __future__ import annotations

import importlib
import re
import shutil

import numpy as np
import pytest
from dash import html

from phenomix.settings import Settings
from phenomix_dash import data


@pytest.fixture(scope="module")
def app(tiny_store):
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


def page(name: str):
    return importlib.import_module(f"phenomix_dash.pages.{name}")


@pytest.fixture(scope="module")
def d(app):
    return data.get_data()


def _text(component) -> str:
    return str(component)


def first(d, ptype: str) -> str:
    t = d.perturbations()
    return str(t.loc[t["perturbation_type"] == ptype, "pert_id"].iloc[0])


# -- similarity ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gene_compound", "gene_gene", "compound_compound"])
def test_heatmap_callback_every_view(app, d, kind):
    S = page("similarity")
    fig, block, note = S.update_heatmap(kind, "active", [], None, None, ["dose"], 20, 0.5, None)
    assert block["rows"] and block["cols"] and len(block["rows"]) <= 20
    hm = fig.data[0]
    assert hm.type == "heatmap" and hm.zmid == 0 and hm.zmin == -0.5
    assert np.asarray(hm.z).shape == (len(block["rows"]), len(block["cols"]))
    if kind != "gene_compound":
        assert block["rows"] == block["cols"], "gene x gene and compound x compound are square"
    assert "Showing" in note
    # Values are the stored float16 similarities of exactly the pairs labelled.
    mat, r_idx, c_idx = d.similarity(kind)
    t = d.perturbations()
    row_of = {p: i for i, p in enumerate(t["pert_id"])}
    i, j = row_of[block["rows"][0]], row_of[block["cols"][-1]]
    want = float(mat[int(np.searchsorted(r_idx, i)), int(np.searchsorted(c_idx, j))])
    assert float(np.asarray(hm.z)[0, -1]) == pytest.approx(want, abs=1e-3)


def test_heatmap_note_names_both_counts_or_all(app, d):
    """A block shows a part of the matrix: the note says how much of it ("8 of 40 genes"), and
    "all" when nothing was left out."""
    import re

    S = page("similarity")
    _, r_idx, _ = d.similarity("gene_gene")
    _, block, note = S.update_heatmap("gene_gene", "active", [], None, None, [], 5, 0.5, None)
    m = re.match(r"Showing (\d+) of (\d+) genes × (\d+) of (\d+) genes", note)
    assert m, note
    assert int(m[1]) == len(block["rows"]) and int(m[2]) == len(r_idx) > int(m[1])
    _, block, note = S.update_heatmap("gene_gene", "active", [], None, None, [], S.MAX_SIDE, 0.5, None)
    if len(r_idx) <= S.MAX_SIDE:
        assert note.startswith(f"Showing all {len(r_idx)} genes × all {len(r_idx)} genes"), note
        assert " of " not in note.split(":")[0]


def test_heatmap_modes_seed_the_block(app, d):
    S = page("similarity")
    gene = first(d, "crispr")
    _, block, note = S.update_heatmap("gene_compound", "search", [gene], None, None, [], 10, 0.5, None)
    assert gene in block["rows"] and "searched" in note
    assert not any("@" in c for c in block["cols"]), "pooled compounds when 'by dose' is off"
    cpd = first(d, "compound")
    _, block, note = S.update_heatmap("gene_compound", "targets", [], None, cpd, ["dose"], 60, 0.5, None)
    ann = S.annotations(d)
    name = cpd.split(":", 1)[1]
    targets = {f"crispr:{g}" for g in ann.targets_of(name)}
    assert targets & set(block["rows"]), "the compound's annotated targets are on the rows"
    assert any(c.startswith(cpd + "@") for c in block["cols"])
    cx = ann.complex_names[0]
    _, block, note = S.update_heatmap("gene_gene", "complex", [], cx, None, [], 30, 0.5, None)
    assert {f"crispr:{g}" for g in ann.genes_in_complex(cx)} <= set(block["rows"])


def test_heatmap_junk_inputs_give_messages(app):
    S = page("similarity")
    fig, block, _ = S.update_heatmap("drop table", "??", ["nope"] * 500, 3, {"x": 1}, "x", "big", "huge", None)
    assert block is not None  # junk kind/mode fall back to the default view
    fig, block, _ = S.update_heatmap("gene_gene", "search", ["crispr:NOT_A_GENE"], None, None, [], 10, 0.5, None)
    assert block is None and "pick perturbations" in fig.layout.annotations[0].text.lower()


def test_click_shows_the_pair_with_percentile_and_neighbours(app, d):
    S = page("similarity")
    fig, block, _ = S.update_heatmap("gene_compound", "active", [], None, None, ["dose"], 20, 0.5, None)
    pair, patch = S.select_pair({"points": [{"x": 1, "y": 2, "curveNumber": 0}]}, block)
    assert pair == {"row": block["rows"][2], "col": block["cols"][1]}
    assert S.select_pair({"points": [{"x": 999, "y": 0}]}, block) == (S.no_update, S.no_update)
    assert S.select_pair(None, block)[0] is S.no_update
    panel = S.show_pair(pair)
    text = _text(panel)
    assert "cosine" in text and "random pairs" in text and "Most similar to" in text
    assert "Known:" in text
    assert "not in the screen" in _text(S.show_pair({"row": "x", "col": "y"}))
    assert "Click a cell" in _text(S.show_pair("junk"))


def test_similarity_url_round_trip(app):
    S = page("similarity")
    url = S.sync_url("gene_gene", "search", ["crispr:A", "crispr:B"], None, None, [], 30, 0.25,
                     {"row": "crispr:A", "col": "crispr:B"}, "")
    assert "kind=gene_gene" in url and "q=crispr%3AA%2Ccrispr%3AB" in url and "pair=" in url
    lay = S.layout(kind="gene_gene", mode="search", q="crispr:A,crispr:B", n="30", range="0.25", pair="crispr:A|crispr:B")
    assert "similarity-heatmap" in _text(lay)


# -- perturbation ----------------------------------------------------------------------------

def test_perturbation_search_filters_on_server(app, d):
    P = page("perturbation")
    gene = first(d, "crispr")
    name = gene.split(":", 1)[1]
    opts = P.filter_options(name.lower(), None)
    assert opts and all(name.lower() in o["label"].lower() for o in opts)
    assert P.filter_options(None, gene)[0]["value"] == gene, "the chosen value stays among the options"
    assert P.filter_options("zzzz-no-such", None) == []


def test_perturbation_view_activity_first_then_neighbours(app, d):
    P = page("perturbation")
    gene = first(d, "crispr")
    summary, fig, tables, plate_opts, plate = P.show_perturbation(gene, 5, None)
    s = _text(summary)
    assert "Phenotypic activity" in s and "mAP" in s and "Replicate consistency" in s and "wells" in s
    names = [t.name for t in fig.data]
    assert names == ["genes", "compounds"]
    assert all(np.all(np.abs(np.asarray(t.x, dtype=float)) <= 1) for t in fig.data)
    assert plate_opts and plate == plate_opts[0]["value"]
    lists = P.neighbour_lists(d, gene, 5)
    assert set(lists) == {"genes_similar", "genes_opposite", "compounds_similar", "compounds_opposite"}
    top = lists["genes_similar"]
    assert gene not in set(top["pert_id"]) and top["cosine"].is_monotonic_decreasing
    assert top["percentile"].between(0, 100).all()
    # Exact over ALL perturbations: the best gene neighbour is the brute-force argmax.
    unit = np.asarray(d.unit_embeddings())
    t = d.perturbations()
    q = int(np.flatnonzero(t["pert_id"] == gene)[0])
    genes = np.flatnonzero(t["perturbation_type"].isin(["crispr", "orf"]).to_numpy())
    genes = genes[genes != q]
    assert t["pert_id"].iloc[genes[np.argmax(unit[genes] @ unit[q])]] == top["pert_id"].iloc[0]


def test_perturbation_plate_and_tiles(app, d):
    P = page("perturbation")
    cpd = first(d, "compound")
    _, _, _, opts, plate = P.show_perturbation(cpd, 10, None)
    fig, tiles = P.show_plate(plate, cpd), P.show_tiles(plate, cpd)
    outlined = [w for tr in fig.data for w in np.atleast_1d(tr.marker.line.width)]
    assert max(outlined) == 3, "its wells are outlined on the plate map"
    t = _text(tiles)
    assert "Negative controls on the same plate" in t and t.count("data:image/png;base64") >= 2
    # The tiles are a part of the wells: the headings say of how many ("all 3 wells", "4 of 24 wells").
    assert re.search(r"on \S+: (all \d+ wells|1 well|\d+ of \d+ wells)", t)
    assert re.search(r"Negative controls on the same plate: (all \d+ wells|1 well|\d+ of \d+ wells)", t), t
    assert "/images?well=" in t


def test_perturbation_junk_and_unknown(app):
    P = page("perturbation")
    summary, *_ = P.show_perturbation("crispr:NOT_THERE", 10, None)
    assert "not a perturbation" in _text(summary)
    summary, *_ = P.show_perturbation(None, "junk", None)
    assert "Search" in _text(summary)
    assert P.show_tiles("nope", "crispr:NOT_THERE") is None
    assert P.show_plate("nope", "crispr:NOT_THERE")["layout"]["xaxis"]["visible"] is False
    assert P.neighbour_target(None, None, None) is None
    assert P.neighbour_target(P.PERT_NB_FIG, {"points": [{"customdata": "crispr:X"}]}, None) == "crispr:X"
    grid = {"type": P.PERT_GRID, "index": "genes_similar"}
    assert P.neighbour_target(grid, None, {"colId": "entity", "rowId": "crispr:Y"}) == "crispr:Y"
    assert P.neighbour_target(grid, None, {"colId": "cosine", "rowId": "crispr:Y"}) is None
    assert "not a perturbation" in _text(P.layout(pert="crispr:NOPE<script>"))


def test_perturbation_url(app, d):
    P = page("perturbation")
    gene = first(d, "crispr")
    assert P.sync_url(gene, 10, "P1", "") == "?" + f"pert={gene.replace(':', '%3A')}&plate=P1"
    assert P.sync_url(None, 10, None, "") is P.no_update
    assert gene in _text(P.layout(pert=gene))


# -- images ----------------------------------------------------------------------------------



def test_images_view_and_channel_controls(app, d):
    Img = page("images")
    well = d.wells["well_id"].iloc[3]
    info, view = Img.show_images(well, 0, [[1]] * 6, [None] * 6, [1] * 6)
    assert well.split("_")[-1] in _text(info)
    v = _text(view)
    assert v.count("data:image/png;base64") == 1 + len(d.channels)
    _, view_off = Img.show_images(well, 0, [[]] + [[1]] * 5, ["#ff0000"] * 6, [4] * 6)
    assert _text(view_off) != v, "toggles, colours and gains change the composite"
    info, view = Img.show_images("no-such-well", 0, [], [], [])
    assert "unknown well" in _text(info) and view is None
    assert Img.hex_to_rgb("#10ff00", (0, 0, 0)) == (16, 255, 0) and Img.hex_to_rgb("red", (1, 2, 3)) == (1, 2, 3)
    assert [o["value"] for o in Img.filter_wells(well[-3:], None)][:1]
    assert Img.sync_url(well, 0, 0.75, "") == f"?well={well}&site=1"


def test_reconstruction_without_checkpoint_says_so(app, tiny_store, tmp_path, monkeypatch):
    from precompute.artifacts import ArtifactStore

    root = tmp_path / "store"
    shutil.copytree(tiny_store, root)
    st = ArtifactStore(root, create=False)
    run = st.get_run("default")
    run["checkpoint"] = None  # e.g. a run embedded with pixel statistics only
    st.set_run("default", run)
    Img = page("images")
    dd = data.PhenomixData(root)
    monkeypatch.setattr(Img, "get_data", lambda: dd)
    out = Img.show_reconstruction(dd.wells["well_id"].iloc[0], 0, None, 0.75, 0, [])
    assert "no MAE checkpoint" in _text(out)
    fig = Img.show_tile_choice(dd.wells["well_id"].iloc[0], 0, None)
    assert not fig.layout.shapes, "no tile outline without a model"


def test_reconstruction_with_checkpoint(ckpt_store):
    from phenomix_dash import reconstruction as R

    dd = data.PhenomixData(ckpt_store)
    model, cfg, _ = R.load_model(dd)
    assert R.load_model(dd)[0] is model, "loaded once per process"
    site = dd.well_images(dd.wells["well_id"].iloc[0])[0]
    res = R.reconstruct_site(model, site, centre=(0, 0), mask_ratio=0.5, seed=1)
    s = cfg.img_size
    assert res["origin"] == (0, 0) and res["reconstruction"].shape == (site.shape[0], s, s)
    assert abs(res["mask"].mean() - 0.5) < 0.1
    assert R.crop_origin(64, 64, 32, (63, 63)) == (32, 32) and R.crop_origin(64, 64, 32) == (16, 16)
    with pytest.raises(ValueError, match="smaller"):
        R.crop_origin(16, 64, 32)
    Img = page("images")
    view = _text(Img.reconstruction_view(res, dd.channels))
    assert "masked input (50% of patches hidden)" in view and "MSE" in view
    fig = Img.site_tile_figure(np.zeros((64, 64, 3), np.uint8), (0, 0), 32)
    assert fig.layout.shapes[0].x1 == pytest.approx(31.5)


# -- benchmarks ------------------------------------------------------------------------------

def test_benchmarks_page_sections(app, d):
    B = page("benchmarks")
    lay = _text(B.layout())
    for title in ("Relationship recall", "Replicate retrieval", "Batch effects", "Compound–gene"):
        assert title in lay
    out = B.show_recall(d.benchmarks()["summary"].get("primary_align", "tvn"))
    assert "recall-table" in _text(out)
    assert "Cannot show recall" in _text(B.show_recall("no-such-space"))
    assert isinstance(B.section("t", "s", html.Div(), "k"), html.Section)
