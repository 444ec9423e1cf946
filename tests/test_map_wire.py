"""The map page sends its figures pre-serialised (phenomix_dash/wire.py): what the browser receives
must be exactly the figure, with clicks, selections and gene sets, and the sample still labelled."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from page_helpers import page

from phenomix_dash import gene_sets as gs
from phenomix_dash.map_views import full_figure, wire_figure
from phenomix_dash.selection import encode_region
from phenomix_dash.wire import frozen_figure, thawed


def test_a_frozen_figure_sends_the_same_json_and_keeps_typed_arrays():
    xy = np.random.default_rng(0).normal(size=(3000, 2)).astype(np.float32)
    fig = go.Figure(go.Scattergl(x=xy[:, 0], y=xy[:, 1], text=np.array([f"well {i}<br>x" for i in range(3000)], dtype=object)))
    frozen = frozen_figure(fig)
    assert thawed(frozen) == thawed(fig.to_plotly_json())
    sent = thawed(frozen)["data"][0]
    assert sent["x"]["dtype"] == "f4" and isinstance(sent["x"]["bdata"], str)  # base64, not a list of numbers
    assert sent["text"][5] == "well 5<br>x"
    assert frozen["data"][0]["type"] == "scattergl"  # small properties stay readable


@pytest.mark.parametrize("level", ["wells", "perturbations"])
def test_the_map_page_sends_exactly_the_full_figure(app_data, level):
    d = app_data
    m = page("map")
    table = d.wells if level == "wells" else d.perturbations()
    point = str(table["well_id" if level == "wells" else "pert_id"].iloc[5])
    xy = d.umap("aligned" if level == "wells" else "perturbations")
    lo, hi = np.percentile(xy, 20, axis=0), np.percentile(xy, 70, axis=0)
    sel = encode_region("aligned", np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]))
    genes = sorted(d.wells.loc[d.wells["perturbation_type"] == "crispr", "gene"].dropna().astype(str).unique())[:3]
    key = gs.encode_list(genes)
    for color in ("perturbation_type", "control"):
        for args in ((None, None, None), (point, None, None), (None, sel, None), (point, sel, key), (None, None, key)):
            want = thawed(full_figure(d, level, "aligned", color, *args).to_plotly_json())
            got = thawed(wire_figure(d, level, "aligned", color, *args))
            assert got == want, (color, args)
    raw, aligned, *_ = m.map_update(d, level, "both", "perturbation_type", None, None, None, None, wire=True)
    assert isinstance(aligned, dict) and thawed(aligned)["layout"]["title"]["text"]


def test_a_sampled_map_still_says_how_many_points_it_draws(app_data, monkeypatch):
    import phenomix_dash.figures.map as fm

    d = app_data
    n = len(d.wells)
    monkeypatch.setattr(fm, "MAX_POINTS", n // 2)  # the tiny store is small: make it "large"
    sent = thawed(frozen_figure(fm.embedding_figure(d.umap("aligned"), fm.colour_values(d.wells, "batch"),
                                                    max_points=n // 2, unit="wells")))
    assert f"of {n:,} wells drawn" in sent["layout"]["title"]["text"]
    assert sent["data"][2]["type"] == "heatmap" and sent["data"][2]["name"] == "density of all points"
