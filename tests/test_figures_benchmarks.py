"""Benchmark figures on hand-made evaluate tables (the columns the evaluate stage writes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures.benchmarks import (
    batch_figure,
    compound_gene_figure,
    recall_figure,
    recall_matrix,
    replicate_map_figure,
)


def _recall() -> pd.DataFrame:
    rows = []
    for emb, base in (("mae", 0.5), ("random", 0.1), ("pixelstats", 0.3)):
        for space in ("raw", "tvn"):
            for src, n in (("CORUM", 84), ("StringDB", 220)):
                rows.append((emb, space, src, n, base + (0.05 if space == "tvn" else 0) + (0.01 if src == "CORUM" else 0)))
    return pd.DataFrame(rows, columns=["embedder", "space", "source", "n_pairs", "recall"])


def test_recall_matrix_is_table3_layout():
    m = recall_matrix(_recall(), "tvn")
    assert list(m.index) == ["random", "pixel statistics", "MAE"], "rows in the paper's order"
    assert list(m.columns) == ["CORUM (n=84)", "StringDB (n=220)"]
    assert m.loc["MAE", "CORUM (n=84)"] == pytest.approx(0.56)
    with pytest.raises(ValueError, match="space 'nope'"):
        recall_matrix(_recall(), "nope")
    with pytest.raises(ValueError, match="lacks columns"):
        recall_matrix(_recall().drop(columns="recall"), "tvn")


def test_recall_figure_bars_and_random_line():
    j = recall_figure(recall_matrix(_recall(), "raw")).to_plotly_json()
    assert [t["name"] for t in j["data"]] == ["random", "pixel statistics", "MAE"]
    assert all(t["type"] == "bar" for t in j["data"])
    assert j["layout"]["barmode"] == "group"
    assert j["layout"]["yaxis"]["title"]["text"] == "relationship recall"
    line = [s for s in j["layout"]["shapes"] if s.get("type") == "line"]
    assert line and line[0]["y0"] == pytest.approx(0.10)


def test_replicate_map_figure_orders_raw_first():
    rep = pd.DataFrame({"embedder": ["mae", "mae", "random", "random"], "space": ["tvn", "raw", "tvn", "raw"],
                        "map": [0.6, 0.4, 0.05, 0.06], "fraction_q05": [0.7, 0.5, 0.0, 0.0]})
    j = replicate_map_figure(rep).to_plotly_json()
    assert [t["name"] for t in j["data"]] == ["raw (before alignment)", "TVN"]
    assert list(j["data"][0]["x"]) == ["random", "MAE"]
    assert j["layout"]["yaxis"]["title"]["text"] == "replicate retrieval mAP"


def test_batch_figure_has_a_panel_per_label_with_chance():
    b = pd.DataFrame({"embedder": ["mae"] * 4, "space": ["raw", "tvn"] * 2, "label": ["batch"] * 2 + ["plate_row"] * 2,
                      "accuracy": [0.9, 0.55, 0.3, 0.14], "chance": [0.5, 0.5, 0.125, 0.125]})
    j = batch_figure(b).to_plotly_json()
    titles = [a["text"] for a in j["layout"]["annotations"] if "predicting" in a["text"]]
    assert titles == ["predicting the batch", "predicting the plate row"]
    chance = sorted(s["y0"] for s in j["layout"]["shapes"])
    assert chance == pytest.approx([0.125, 0.5])
    assert sum(t["showlegend"] for t in j["data"]) == 2, "one legend entry per space"


def test_compound_gene_figure_one_box_per_embedder():
    cg = pd.DataFrame({"embedder": ["random"] * 3 + ["mae"] * 3, "compound": list("abcabc"),
                       "roc_auc": [0.4, 0.5, 0.6, 0.9, 0.8, np.nan], "average_precision": [0.1] * 6})
    j = compound_gene_figure(cg).to_plotly_json()
    assert [t["name"] for t in j["data"]] == ["random", "MAE"]
    assert all(t["type"] == "box" and t["boxpoints"] == "all" for t in j["data"])
    assert j["layout"]["shapes"][0]["y0"] == 0.5
    j = compound_gene_figure(cg, "average_precision").to_plotly_json()
    assert not j["layout"].get("shapes"), "no chance line for AP (it depends on the positives)"
