"""Selections in headless Chromium (issue #16): lasso a region -> its tables and composition,
download it as CSV and as AnnData (read back with anndata), keep it as A, box another as B, see
the comparison, and reload the link to get the same A and B back."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import wait_until as _wait_until
from selenium.webdriver.common.action_chains import ActionChains

pytestmark = pytest.mark.browser

ALIGNED = "#map-aligned-figure"


@pytest.fixture
def map_app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


def _wait_for_map(dash_duo, graph: str = ALIGNED) -> None:
    dash_duo.wait_for_element(f"{graph} .nsewdrag", timeout=30)
    _wait_until(lambda: dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return !!(g && g._fullData && g._fullData.length && g._fullData[0]._length > 0);", graph), "map points drawn")


def _drag(dash_duo, start: tuple[int, int], moves: list[tuple[int, int]]) -> None:
    drag = dash_duo.find_element(f"{ALIGNED} .nsewdrag")
    chain = ActionChains(dash_duo.driver).move_to_element(drag).move_by_offset(*start).click_and_hold()
    for dx, dy in moves:
        chain = chain.move_by_offset(dx, dy)
    chain.release().perform()


def _click(dash_duo, selector: str) -> None:
    """Click a button wherever the page has scrolled it (a loading overlay may sit on top of it)."""
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()",
                                   dash_duo.find_element(selector))


def _download(dash_duo, button: str, name: str) -> Path:
    path = Path(dash_duo.download_path) / name
    if path.exists():
        path.unlink()
    _click(dash_duo, button)
    _wait_until(lambda: path.exists() and path.stat().st_size > 0, f"the downloaded {name}", timeout=60)
    return path


def test_lasso_to_tables_downloads_and_a_b_comparison_survive_a_reload(dash_duo, map_app):
    import anndata as ad
    import pandas as pd

    dash_duo.start_server(map_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/map?space=aligned", timeout=20)
    _wait_for_map(dash_duo)
    # A lasso (the default drag mode) over the upper left of the map.
    _drag(dash_duo, (-120, -120), [(40, 0)] * 5 + [(0, 40)] * 5 + [(-40, -20)] * 5 + [(0, -40)])
    _wait_until(lambda: "Perturbations:" in dash_duo.find_element("#map-selection-tables").text, "selection tables")
    summary = dash_duo.find_element("#map-selection-summary").text
    n_selected = int(summary.split(" wells selected")[0].replace(",", ""))
    assert n_selected > 0 and "sel=aligned" in dash_duo.driver.current_url
    assert dash_duo.find_element("#map-selection-composition-content .js-plotly-plot")  # the composition figure
    tables = dash_duo.find_element("#map-selection-tables").text
    assert "wells selected" in tables.lower() and "wells total" in tables.lower()

    csv = pd.read_csv(_download(dash_duo, "#map-selection-download-button", "phenomix_selection.csv"))
    h5ad = ad.read_h5ad(_download(dash_duo, "#map-selection-h5ad-button", "phenomix_selection.h5ad"))
    assert len(csv) == n_selected == h5ad.n_obs
    assert h5ad.obs_names.tolist() == csv["well_id"].astype(str).tolist()
    assert {"X_raw", "X_umap"} <= set(h5ad.obsm) and h5ad.uns["phenomix"]["subset"]["n_obs"] == n_selected
    perts = pd.read_csv(_download(dash_duo, "#map-selection-perturbations-button", "phenomix_selection_perturbations.csv"))
    assert perts["wells_selected"].sum() == n_selected and perts["pert_id"].is_unique  # each selected well once

    _click(dash_duo, "#map-store-a-button")
    _wait_until(lambda: "selA=aligned" in dash_duo.driver.current_url, "A in the URL")
    # B: a box on the lower right of the same map.
    dash_duo.driver.execute_script("window.scrollTo(0, 0)")
    dash_duo.driver.execute_script(  # the box tool (as its modebar button does; the button may sit under the navbar)
        "Plotly.relayout(document.querySelector(arguments[0] + ' .js-plotly-plot'), {dragmode: 'select'})", ALIGNED)
    _drag(dash_duo, (10, 10), [(50, 50), (60, 60)])
    _wait_until(lambda: dash_duo.find_element("#map-selection-summary").text.split(" wells")[0].replace(",", "")
                != str(n_selected), "a second selection")
    _click(dash_duo, "#map-store-b-button")
    _wait_until(lambda: "selB=aligned" in dash_duo.driver.current_url, "B in the URL")
    _wait_until(lambda: "A:" in dash_duo.find_element("#map-compare-counts").text, "the comparison", timeout=30)
    compare = dash_duo.find_element("#map-compare").text
    assert "Positive d: higher in A" in compare and "Annotations enriched in A or B" in compare
    counts = dash_duo.find_element("#map-compare-counts").text

    # The link reproduces A, B and the comparison.
    url = dash_duo.driver.current_url
    dash_duo.wait_for_page(url=url, timeout=20)
    _wait_until(lambda: dash_duo.find_element("#map-compare-counts").text == counts, "the same comparison after reload",
                timeout=30)
    status = dash_duo.find_element("#map-ab-status").text
    assert "A: a " in status and "B: a " in status and "not set" not in status
    assert dash_duo.get_logs() == [], "browser console errors on the map page"
