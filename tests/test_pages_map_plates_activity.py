"""Map, Plates and Activity callbacks called as plain functions on the tiny store."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest
from dash import Patch, no_update
from page_helpers import page

from phenomix_dash.selection import (
    SelectionError,
    decode_region,
    encode_region,
    points_in_polygon,
    region_from_selected_data,
    region_rows,
    selected_wells,
)
from precompute.aggregate import pert_id_for


def _text(component) -> str:
    """All text inside a Dash component tree."""
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


def _box(xy: np.ndarray, lo: float = 10, hi: float = 70) -> dict:
    a, b = np.percentile(xy, lo, axis=0), np.percentile(xy, hi, axis=0)
    return {"range": {"x": [float(a[0]), float(b[0])], "y": [float(a[1]), float(b[1])]}, "points": []}


# -- selection helpers -----------------------------------------------------------------------------

def test_points_in_polygon_box_and_concave_shape():
    xy = np.array([[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [1.5, 1.5], [3, 3]])
    box = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    assert points_in_polygon(xy, box).tolist() == [True, True, True, True, False]
    ell = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]])  # an L: the top-right quarter is out
    assert points_in_polygon(xy, ell).tolist() == [True, True, True, False, False]


def test_regions_round_trip_through_the_url_and_junk_is_refused():
    poly = region_from_selected_data({"lassoPoints": {"x": list(np.cos(np.linspace(0, 6, 300))),
                                                      "y": list(np.sin(np.linspace(0, 6, 300)))}})
    assert len(poly) == 64  # long lassos are thinned
    space, back = decode_region(encode_region("aligned", poly))
    assert space == "aligned" and np.allclose(back, poly, atol=1e-3)
    assert region_from_selected_data({"points": [{"pointIndex": 1}]}) is None  # a click, not a region
    for junk in ("raw", "xyz:1,2;3,4;5,6", "raw:1,2;3", "raw:a,b;c,d;e,f", "raw:1,2;3,4", "raw:" + "1,1;" * 900):
        with pytest.raises(SelectionError):
            decode_region(junk)


# -- map -----------------------------------------------------------------------------------------

def test_map_layout_validates_every_url_parameter(app_data):
    m = page("map")
    text = _text(m.layout(level="junk", space="nope", color="<script>", well="no-such-well", sel="raw:1,2"))
    assert "cannot colour by '<script>'" in text and "unknown well 'no-such-well'" in text
    assert "at least 3 vertices" in text
    assert "unknown" not in _text(m.layout(color="batch", space="raw"))


def test_map_full_draw_then_patches_for_colour_click_and_selection(app_data):
    m, d = page("map"), app_data
    raw, aligned, raw_style, al_style, drawn = m.map_update(d, "wells", "both", "perturbation_type", None, None, None, None)
    assert raw.data[0].type == "scattergl" and len(raw.data[0].x) == len(d.wells)
    assert aligned.layout.title.text.startswith("Aligned") and raw_style["display"] == "block"
    assert drawn == {"level": "wells", "color": "perturbation_type", "spaces": ["aligned", "raw"]}
    out = m.map_update(d, "wells", "both", "batch", None, None, drawn, m.MAP_COLOR)
    assert isinstance(out[0], Patch) and isinstance(out[1], Patch)
    ops = out[0].to_plotly_json()["operations"]
    assert ops[0]["location"] == ["data", 0, "marker"] and ops[0]["params"]["value"]["colorbar"]["title"]["text"] == "batch"
    colours = ops[0]["params"]["value"]["color"]  # a base64 typed array, decoded by plotly.js
    assert colours["dtype"] == "u1" and len(base64.b64decode(colours["bdata"])) == len(d.wells)
    well = d.wells["well_id"].iloc[7]
    out = m.map_update(d, "wells", "both", "batch", well, None, out[-1], m.MAP_POINT)
    ops = out[1].to_plotly_json()["operations"]
    assert ops[0]["location"] == ["data", 1, "x"] and ops[0]["params"]["value"] == [float(d.umap("aligned")[7, 0])]
    only_raw = m.map_update(d, "wells", "raw", "batch", None, None, out[-1], m.MAP_SPACE)
    assert only_raw[0] is no_update and only_raw[3]["display"] == "none"


def test_clicking_a_point_maps_its_index_back_to_the_well(app_data):
    m, d = page("map"), app_data
    click = {"points": [{"curveNumber": 0, "pointIndex": 11, "pointNumber": 11}]}
    assert m.clicked_point(d, "wells", click, "raw") == d.wells["well_id"].iloc[11]
    assert m.clicked_point(d, "perturbations", click, "aligned") == d.perturbations()["pert_id"].iloc[11]
    assert m.clicked_point(d, "wells", {"points": [{"curveNumber": 1, "pointIndex": 0}]}, "raw") is None
    assert m.clicked_point(d, "wells", {"points": [{"curveNumber": 0, "pointIndex": 10**7}]}, "raw") is None
    assert m.clicked_point(d, "wells", {"junk": 1}, "raw") is None


def test_side_panel_puts_activity_first_then_neighbours_and_links(app_data):
    m, d = page("map"), app_data
    act = d.activity().set_index("pert_id")
    crispr = d.wells[d.wells["perturbation_type"] == "crispr"]
    scored = crispr[[pert_id_for("crispr", p) in act.index for p in crispr["perturbation"]]]
    assert len(scored), "the tiny store scores its CRISPR perturbations for activity"
    treated = scored["well_id"].iloc[0]
    r = act.loc[pert_id_for("crispr", scored["perturbation"].iloc[0])]
    panel = m.point_panel(d, "wells", treated)
    text = _text(panel)
    assert f"mAP {r['mean_average_precision']:.3f} · q {r['q_value']:.3g}" in text and "not scored" not in text
    assert ("not active" in text) == bool(r["q_value"] >= 0.05)  # the badge follows the q-value
    control = d.wells.loc[d.wells["perturbation_type"] == "negative_control", "well_id"].iloc[0]
    control_text = _text(m.point_panel(d, "wells", control))
    assert "not scored for activity" in control_text and "mAP" not in control_text  # controls are the null
    assert "Most similar perturbations" in text
    assert text.index("Most similar") > text.index("Perturbation page")
    hrefs = [c.href for c in _walk(panel) if getattr(c, "href", None)]
    assert any(h.startswith("/perturbation?pert=crispr%3A") for h in hrefs)
    assert f"/images?well={treated}" in hrefs
    assert sum(h.startswith("/perturbation?") for h in hrefs) >= 2  # the page link and neighbour links
    assert "Click a point" in _text(m.show_point(None, "wells"))
    assert "unknown well" in _text(m.show_point("nope", "wells"))


def _walk(c):
    yield c
    ch = getattr(c, "children", None)
    for x in ch if isinstance(ch, list | tuple) else [ch] if ch is not None and not isinstance(ch, str) else []:
        yield from _walk(x)


def test_a_box_selection_is_summarised_highlighted_on_its_plate_and_exported(app_data):
    m, d = page("map"), app_data
    sel = m.selection_from_event(_box(d.umap("raw")), "raw")
    assert sel.startswith("raw:")
    rows = region_rows(d, "wells", sel)
    assert 0 < len(rows) < len(d.wells)
    summary, options, plate, fig, tiles = m.selection_views(d, "wells", sel, None)
    assert f"{len(rows):,} wells selected" in _text(summary)
    assert options and plate == options[0]["value"]
    picked = set(d.wells["well_id"].iloc[rows])
    outlined = {w for t in fig.data if t.customdata is not None
                for w, lw in zip(t.customdata, t.marker.line.width, strict=True) if lw == 3}
    on_plate = picked & set(d.plate_wells(plate)["well_id"])
    assert outlined == on_plate and on_plate
    csv = m.download_selection(1, sel, "wells")
    assert csv["filename"] == "phenomix_selection.csv"
    assert csv["content"].count("\n") == len(rows) + 1 and "distance_to_controls_raw" in csv["content"]
    patch = m.map_update(d, "wells", "both", "batch", None, sel, {"level": "wells", "color": "batch",
                                                                 "spaces": ["aligned", "raw"]}, m.MAP_SEL)[1]
    assert patch.to_plotly_json()["operations"][0]["params"]["value"] == sorted(rows.tolist())
    assert m.selection_from_event(None, "raw") == ""  # double-click clears
    assert m.selection_from_event({"points": [{"pointIndex": 3}]}, "raw") is None  # a click leaves it alone


def test_selecting_perturbations_selects_their_wells(app_data):
    d = app_data
    sel = encode_region("aligned", np.array([[-1e3, -1e3], [1e3, -1e3], [1e3, 1e3], [-1e3, 1e3]]))
    wells = selected_wells(d, "perturbations", sel)
    assert len(wells) == len(d.wells)  # every perturbation selected -> every well


def test_map_url_holds_the_state():
    m = page("map")
    assert m.url_params("wells", "raw", "batch", "w1", "raw:0,0;1,0;1,1", "P1") == {
        "level": "wells", "space": "raw", "color": "batch", "well": "w1", "sel": "raw:0,0;1,0;1,1", "plate": "P1"}
    assert m.url_params("perturbations", "both", "control", "crispr:A", None, "P1")["pert"] == "crispr:A"


# -- plates --------------------------------------------------------------------------------------

def test_plates_callbacks(app_data):
    p, d = page("plates"), app_data
    assert "unknown metric 'junk'" in _text(p.layout(metric="junk", plate="nope"))
    heat, prof = p.update_metric_views("distance_to_controls_aligned", p.ALL_PLATES)
    assert heat.data[0].type == "heatmap" and "median over" in heat.layout.title.text
    plate = d.plates["plate"].iloc[0]
    heat, _ = p.update_metric_views("pc1_raw", plate)
    assert heat.data[0].zmid == 0 and plate in heat.layout.title.text
    # Each cell of one plate's map is that plate's well at that position, with its own value.
    z = np.asarray(heat.data[0].z, dtype=float)
    values = d.well_metrics()["pc1_raw"].to_numpy()
    on_plate = np.flatnonzero((d.wells["plate"] == plate).to_numpy())
    rows, cols = d.wells["row"].to_numpy()[on_plate], d.wells["col"].to_numpy()[on_plate]
    np.testing.assert_allclose(z[rows - 1, cols - 1], values[on_plate])  # rows and columns count from 1
    assert np.isnan(z).sum() == z.size - len(on_plate)  # the empty positions show no value
    assert "unknown well metric" in p.update_metric_views("nope", plate)[0]["layout"]["title"]["text"]
    pos, bench, sim = p.update_static_views("/plates")  # figure dicts, cached per store
    assert {t["name"] for t in pos["data"]} == {"same position", "different position"}
    assert len(sim["data"]) == 2 and len(sim["data"][0]["x"]) == len(d.plates)
    assert p.update_static_views("/plates")[0] is pos  # the second visit costs a lookup
    drift, outliers = p.update_drift("raw")
    assert len(drift.data[0].x) == len(d.plates)
    flagged = p.plate_stats(d)["drift_raw"].query("outlier")["plate"]  # the verdict the data gives
    if len(flagged):
        assert f"{len(flagged)} outlier plate(s)" in _text(outliers) and all(x in _text(outliers) for x in flagged)
    else:
        assert "No plate drifts" in _text(outliers)
    assert p.plate_from_click({"points": [{"x": plate}]}, set(d.plates["plate"])) == plate
    assert p.plate_from_click({"points": [{"x": "evil"}]}, set(d.plates["plate"])) is None
    stats = p.control_position_stats(d)
    assert stats["space"].tolist() == ["raw", "aligned"] and stats["n_same_pairs"].iloc[0] > 0


def test_outlier_list_names_the_drifting_plate_and_only_it():
    """Known answers: one plate's controls far from the rest is flagged; even drifts flag none."""
    from phenomix_dash.figures.plates_qc import plate_drift

    p = page("plates")
    info = pd.DataFrame({"plate": [f"P{i}" for i in range(8)], "batch": ["b1"] * 8})
    centroids = np.random.default_rng(0).normal(scale=0.1, size=(8, 16))
    calm = _text(p.outlier_list(plate_drift(info, centroids)))
    assert "No plate drifts" in calm and "outlier" not in calm
    centroids[5] += 10.0
    text = _text(p.outlier_list(plate_drift(info, centroids)))
    assert "1 outlier plate(s)" in text and "(batch b1, z = " in text
    assert [x for x in info["plate"] if x in text] == ["P5"]


# -- activity ------------------------------------------------------------------------------------

def test_activity_callbacks(app_data):
    a, d = page("activity"), app_data
    assert "Activity" in _text(a.layout(types="crispr,junk", active="1", q="x" * 500))
    rows, count, volcano = a.update_table(None, [], "")
    assert len(rows) == len(d.activity()) and rows[0]["rank"] == 1
    assert rows[0]["mean_average_precision"] >= rows[-1]["mean_average_precision"]
    assert volcano.layout.shapes and len(volcano.data) >= 1
    only = a.update_table(["crispr"], ["active"], "")[0]
    assert all(r["type"] == "CRISPR knockout" and r["active"] for r in only)
    assert a.update_table(["<img>"], [], "")[0] == rows  # unknown types are ignored, not an error
    dist = a.update_distances("raw", "ecdf")
    assert dist.data[0].name.startswith("negative control")
    pid = rows[0]["pert_id"]
    assert a.open_perturbation({"rowId": pid}) == a.pert_href(pid)
    assert a.open_perturbation({"rowId": "../../etc"}) is no_update
    csv = a.export_csv(1, ["crispr"], [], "")
    assert csv["filename"] == "phenomix_activity.csv"
    assert "volcano" not in _text(a.volcano_click({"points": [{"customdata": pid}]}))
    assert a.volcano_click({"points": []}) is no_update


def test_inputs_changing_together_are_patched_together(app_data):
    m, d = page("map"), app_data
    drawn = {"level": "wells", "color": "perturbation_type", "spaces": ["aligned", "raw"]}
    sel = m.selection_from_event(_box(d.umap("raw")), "raw")
    out = m.map_update(d, "wells", "both", "batch", None, sel, drawn, {m.MAP_COLOR, m.MAP_POINT, m.MAP_SEL})
    where = [op["location"] for op in out[0].to_plotly_json()["operations"]]
    assert ["data", 0, "marker"] in where and ["data", 1, "x"] in where and ["data", 0, "selectedpoints"] in where
