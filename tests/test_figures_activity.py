"""Activity figures and the ranked table: controls first, capped payloads, correct ranking and filters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures.activity import (
    MAX_NEG_LOG10_Q,
    activity_table,
    distance_distribution_figure,
    filter_activity,
    volcano_figure,
)


@pytest.fixture
def distances():
    rng = np.random.default_rng(0)
    types = np.array(["crispr"] * 300 + ["negative_control"] * 100 + ["compound"] * 50)
    values = np.where(types == "negative_control", rng.normal(0.2, 0.05, len(types)), rng.normal(0.5, 0.1, len(types)))
    values[5] = np.nan  # wells on a plate without controls
    return values, types


def test_violins_one_per_type_controls_first_and_sampled(distances):
    values, types = distances
    fig = distance_distribution_figure(values, types, kind="violin", max_per_group=120)
    assert [t.type for t in fig.data] == ["violin"] * 3
    assert fig.data[0].name.startswith("negative control (100)")
    assert fig.data[1].name.startswith("CRISPR knockout (299)")  # NaN left out
    assert len(fig.data[1].y) == 120 and len(fig.data[0].y) == 100
    assert fig.layout.yaxis.title.text == "distance to plate controls"


def test_ecdf_is_monotone_with_201_quantiles(distances):
    values, types = distances
    fig = distance_distribution_figure(values, types, kind="ecdf", label="d")
    assert [t.type for t in fig.data] == ["scatter"] * 3
    x = np.asarray(fig.data[0].x)
    assert len(x) == 201 and np.all(np.diff(x) >= 0)
    assert fig.data[0].line.dash == "dash"  # controls stand out
    ctrl = values[types == "negative_control"]
    assert np.median(x) == pytest.approx(np.median(ctrl), abs=0.01)
    assert fig.layout.xaxis.title.text == "d"
    with pytest.raises(ValueError, match="kind must be"):
        distance_distribution_figure(values, types, kind="box")


def _activity():
    perts = pd.DataFrame({"pert_id": ["crispr:A", "crispr:B", "compound:C", "compound:C@1.0", "orf:D"],
                          "perturbation_type": ["crispr", "crispr", "compound", "compound", "orf"],
                          "perturbation": ["A", "B", "C", "C", "D"], "level": ["pooled"] * 3 + ["dose", "pooled"],
                          "concentration_um": [np.nan, np.nan, np.nan, 1.0, np.nan], "n_wells": [4, 4, 6, 2, 3],
                          "n_plates": [2, 2, 3, 1, 2], "replicate_cosine": [0.5, 0.1, 0.3, np.nan, 0.2]})
    act = pd.DataFrame({"pert_id": ["crispr:A", "crispr:B", "compound:C", "orf:D"],
                        "perturbation_type": ["crispr", "crispr", "compound", "orf"],
                        "perturbation": ["A", "B", "C", "D"], "mean_average_precision": [0.9, 0.2, 0.9, 0.5],
                        "p_value": [0.001, 0.5, 0.0, 0.03], "q_value": [0.004, 0.5, 0.0, 0.06],
                        "active": [True, False, True, False], "n_wells": [4, 4, 6, 3]})
    return perts, act


def test_activity_table_ranks_by_map_then_q_and_caps_log_q():
    t = activity_table(*_activity())
    assert t["pert_id"].tolist() == ["compound:C", "crispr:A", "orf:D", "crispr:B"]
    assert t["rank"].tolist() == [1, 2, 3, 4]
    assert t["active"].tolist() == [True, True, False, False]
    assert t.loc[0, "neg_log10_q"] == MAX_NEG_LOG10_Q  # q = 0 sits on the ceiling
    assert t.loc[1, "neg_log10_q"] == pytest.approx(-np.log10(0.004))
    assert t.loc[1, "replicate_cosine"] == 0.5 and t.loc[0, "n_plates"] == 3
    assert t.loc[1, "type"] == "CRISPR knockout"
    with pytest.raises(ValueError, match="q_value"):
        activity_table(_activity()[0], _activity()[1].drop(columns=["q_value"]))


def test_filters_by_type_activity_and_literal_search():
    t = activity_table(*_activity())
    assert filter_activity(t, types=["crispr"])["pert_id"].tolist() == ["crispr:A", "crispr:B"]
    assert filter_activity(t, active_only=True)["pert_id"].tolist() == ["compound:C", "crispr:A"]
    assert filter_activity(t, search=" b ")["pert_id"].tolist() == ["crispr:B"]  # trimmed, case-insensitive
    assert filter_activity(t, search="(").empty  # regex characters are taken literally
    assert len(filter_activity(t)) == 4


def test_volcano_has_a_trace_per_type_pert_ids_and_the_q_line():
    t = activity_table(*_activity())
    fig = volcano_figure(t, highlight="crispr:B")
    names = [tr.name for tr in fig.data]
    assert names == ["CRISPR knockout", "ORF overexpression", "compound", "selected"]
    crispr = fig.data[0]
    assert crispr.type == "scatter" and list(crispr.customdata) == ["crispr:A", "crispr:B"]
    assert fig.data[3].x == (0.2,)
    assert fig.layout.shapes[0].y0 == pytest.approx(-np.log10(0.05))
    assert fig.layout.xaxis.title.text.startswith("mAP") and "log10 q" in fig.layout.yaxis.title.text
    big = pd.concat([t] * 2000, ignore_index=True)
    assert volcano_figure(big).data[0].type == "scattergl"
