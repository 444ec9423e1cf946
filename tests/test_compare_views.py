"""The two-map page's overlap table at screen scale: the grid gets a part, the CSV download all of it."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from phenomix_dash import compare_views as cv


def _rows(n: int, selected: list[int] | None = None) -> pd.DataFrame:
    rows = pd.DataFrame({"pert_id": [f"p{i:05d}" for i in range(n)], "jaccard_10": np.linspace(0, 1, n)})
    if selected is not None:
        rows["in_selection"] = rows.index.isin(selected)
    return rows


def test_the_grid_gets_the_lowest_overlaps_and_every_selected_perturbation() -> None:
    rows = _rows(30_000, selected=[5, 20_000, 29_999])
    shown = cv.grid_rows(rows, limit=2_000)
    assert len(shown) == 2_002  # the 2,000 lowest (which hold p00005) + the two selected beyond them
    assert shown["pert_id"].iloc[0] == "p00000"
    assert {"p20000", "p29999"} <= set(shown["pert_id"])
    assert shown["jaccard_10"].is_monotonic_increasing  # table order kept
    assert len(cv.grid_rows(_rows(500), limit=2_000)) == 500  # small screens: everything


def test_the_overlap_caption_and_csv_on_a_store(app_data) -> None:
    d = app_data
    left, right = cv.default_pair(d, cv.run_spaces(d))
    fig, grid, caption = cv.overlap_view(d, left, right, 10, None, None)
    text = cv.overlap_csv(d, left, right, 10, None, None)
    table = pd.read_csv(io.StringIO(text))
    # The tiny screen fits in the grid: grid and CSV list the same perturbations, no "lists N of M" caption.
    assert len(table) == len(grid) > 0 and "Download CSV holds all" not in caption
    assert {"pert_id", "perturbation", "jaccard_10", "shared_of_10"} <= set(table.columns)
    assert table["jaccard_10"].is_monotonic_increasing
