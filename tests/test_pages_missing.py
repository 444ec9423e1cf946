"""Pages on the tiny store never show a number that was not measured: the map at perturbation level
coloured by q-value draws the unscored perturbations (controls, single-well ones) as "no value",
clicks on them still open their panel, and a colour change moves points between the traces."""

from __future__ import annotations

import base64

import numpy as np
from page_helpers import page

from phenomix_dash.figures.palette import NO_VALUE
from phenomix_dash.selection import colour_table


def _unscored(d) -> np.ndarray:
    return np.flatnonzero(colour_table(d, "perturbations")["q_value"].isna().to_numpy())


def test_unscored_perturbations_are_no_value_on_the_q_value_map(app_data):
    m, d = page("map"), app_data
    unscored = _unscored(d)
    perts = d.perturbations()
    assert len(unscored) and (perts["perturbation_type"].iloc[unscored] == "negative_control").any()
    fig = m.map_update(d, "perturbations", "both", "q_value", None, None, None, None)[1]
    grey = fig.data[-2]  # the last trace rings the chosen gene set's members (none here)
    assert grey.name == NO_VALUE and grey.showlegend and list(grey.customdata) == unscored.tolist()
    assert all("q value: no value" in t for t in [grey.hovertemplate])
    x = np.asarray(fig.data[0].x, dtype=float)
    assert len(x) == len(perts) and np.flatnonzero(np.isnan(x)).tolist() == unscored.tolist()  # not drawn in colour
    assert np.isfinite(np.asarray(fig.data[0].marker.color, dtype=float)[np.isfinite(x)]).all()
    # A click on a grey point opens that perturbation (customdata, not the index within its trace).
    i = len(unscored) - 1
    click = {"points": [{"curveNumber": len(fig.data) - 2, "pointIndex": i, "customdata": int(unscored[i])}]}
    assert m.clicked_point(d, "perturbations", click, "aligned") == perts["pert_id"].iloc[unscored[i]]
    click = {"points": [{"curveNumber": 0, "pointIndex": 2}]}  # the coloured trace: pointIndex is the row
    assert m.clicked_point(d, "perturbations", click, "aligned") == perts["pert_id"].iloc[2]


def _ops(patch) -> dict[tuple, object]:
    return {tuple(op["location"]): op["params"].get("value") for op in patch.to_plotly_json()["operations"]}


def _decode(v, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(v["bdata"]), dtype=dtype)


def test_a_colour_change_moves_unscored_points_to_the_grey_trace_and_back(app_data):
    m, d = page("map"), app_data
    n = len(d.perturbations())
    unscored = _unscored(d)
    out = m.map_update(d, "perturbations", "both", "perturbation_type", None, None, None, None)
    assert len(out[1].data[-2].x) == 0  # every perturbation has a type: nothing grey
    patch = m.map_update(d, "perturbations", "both", "q_value", None, None, out[-1], m.MAP_COLOR)[1]
    ops = _ops(patch)
    grey = len(out[1].data) - 2  # before the gene-set trace
    assert ops[("data", grey, "customdata")] == unscored.tolist()  # JSON numbers: clicks read them back
    assert ops[("data", grey, "name")] == NO_VALUE and ops[("data", grey, "showlegend")] is True
    x = _decode(ops[("data", 0, "x")], np.float32)
    assert len(x) == n and np.flatnonzero(np.isnan(x)).tolist() == unscored.tolist()
    colours = _decode(ops[("data", 0, "marker")]["color"], np.float32)
    assert len(colours) == n and np.isfinite(colours[~np.isnan(x)]).all()
    assert ("data", 0, "text") not in ops and ("data", 0, "y") not in ops  # never resent
    assert len(ops[("data", grey, "text")]) == len(unscored)
    # Same missing rows (q-value -> mAP): only colours change, nothing resent.
    drawn = {"level": "perturbations", "color": "q_value", "spaces": ["aligned"]}
    ops = _ops(m.map_update(d, "perturbations", "both", "mean_average_precision", None, None, drawn, m.MAP_COLOR)[1])
    assert ("data", 0, "x") not in ops and ("data", 0, "marker") in ops
    assert "no value" in ops[("data", grey, "hovertemplate")]
    # Back to a colouring without gaps: every point in the coloured trace again.
    drawn["color"] = "mean_average_precision"
    ops = _ops(m.map_update(d, "perturbations", "both", "perturbation_type", None, None, drawn, m.MAP_COLOR)[1])
    assert np.isfinite(_decode(ops[("data", 0, "x")], np.float32)).all()
    assert ops[("data", grey, "showlegend")] is False and len(_decode(ops[("data", grey, "x")], np.float32)) == 0


def test_a_selection_is_split_between_the_coloured_and_grey_points(app_data):
    from phenomix_dash.selection import encode_region, region_rows

    m, d = page("map"), app_data
    xy = d.umap("perturbations")
    lo, hi = xy.min(axis=0) - 1, xy.max(axis=0) + 1
    sel = encode_region("aligned", np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]))
    assert len(region_rows(d, "perturbations", sel)) == len(xy)  # everything
    fig = m.map_update(d, "perturbations", "both", "q_value", None, sel, None, None)[1]
    assert len(fig.data[0].selectedpoints) == len(fig.data[0].x)
    assert len(fig.data[-2].selectedpoints) == len(fig.data[-2].x) == len(_unscored(d))


def test_outlier_list_says_drift_is_undefined_with_two_plates(app_data):
    """Two plates give no spread to measure a robust z against: the verdict says so rather than
    reading as 'all plates calm'."""
    import pandas as pd

    from phenomix_dash.figures.plates_qc import plate_drift

    info = pd.DataFrame({"plate": ["P1", "P2"], "batch": ["b", "b"], "n_controls": [4, 4]})
    div = page("plates").outlier_list(plate_drift(info, np.array([[0.0, 1.0], [2.0, 0.0]])))
    assert "not defined for these 2 plates" in div.children and "outlier" not in div.children
