"""Plates and Activity pages in headless Chromium: they open cleanly, and an activity row opens its
perturbation."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import wait_until as _wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))




def test_plates_page_opens_with_all_views(dash_duo, app, tiny_store):
    from phenomix_dash.data import PhenomixData

    # Known answer: the tiny screen has two plates, and a robust z-score needs three to measure a
    # spread, so no plate can be an outlier (the known-answer test with a drifting plate is
    # tests/test_pages_map_plates_activity.py::test_outlier_list_names_the_drifting_plate_and_only_it).
    assert PhenomixData(tiny_store).plates["plate"].nunique() == 2
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/plates", timeout=20)
    for graph in ("#plates-heatmap", "#plates-profiles", "#plates-position-similarity", "#plates-similarity",
                  "#plates-drift", "#plates-batch-metrics"):
        dash_duo.wait_for_element(f"{graph} .main-svg", timeout=30)
    _wait_until(lambda: dash_duo.driver.execute_script(
        "const g = document.querySelector('#plates-heatmap .js-plotly-plot');"
        "return g && g.data && g.data[0].type === 'heatmap';"), "plate heatmap drawn")
    assert "median over" in dash_duo.find_element("#plates-heatmap .gtitle").text
    _wait_until(lambda: dash_duo.find_element("#plates-outliers").text, "outlier verdict")
    verdict = dash_duo.find_element("#plates-outliers").text
    assert verdict.startswith("No plate drifts beyond z >") and "outlier" not in verdict
    assert dash_duo.get_logs() == [], "browser console errors on the plates page"


def test_plates_link_selects_a_plate(dash_duo, app, tiny_store):
    from phenomix_dash.data import PhenomixData

    plate = PhenomixData(tiny_store).plates["plate"].iloc[-1]
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/plates?metric=pc1_raw&plate={plate}", timeout=20)
    _wait_until(lambda: plate in dash_duo.find_element("#plates-heatmap .gtitle").text, "heatmap of the linked plate")
    assert "first principal component" in dash_duo.find_element("#plates-heatmap .gtitle").text
    assert dash_duo.get_logs() == []


def test_activity_page_opens_and_a_row_opens_the_perturbation(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/activity", timeout=20)
    dash_duo.wait_for_element("#activity-volcano .main-svg", timeout=30)
    dash_duo.wait_for_element("#activity-distances .main-svg", timeout=30)
    dash_duo.wait_for_element("#activity-grid .ag-row", timeout=30)
    assert "perturbations" in dash_duo.find_element("#activity-count").text
    assert dash_duo.get_logs() == [], "browser console errors on the activity page"
    first = dash_duo.find_element("#activity-grid .ag-row[row-index='0'] [col-id='perturbation']")
    # The id column sits at the right, beyond what the grid renders at this width: read the row's id
    # (the grid keys rows by pert_id).
    pert_id = dash_duo.find_element("#activity-grid .ag-row[row-index='0']").get_attribute("row-id")
    first.click()
    _wait_until(lambda: "/perturbation" in dash_duo.driver.current_url, "navigation to the perturbation page")
    assert parse_qs(urlparse(dash_duo.driver.current_url).query)["pert"] == [pert_id]


def test_activity_filters_narrow_the_table_and_go_into_the_url(dash_duo, app, tiny_store):
    from phenomix_dash.data import PhenomixData

    expected = int(PhenomixData(tiny_store).activity()["active"].sum())
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/activity?active=1", timeout=20)
    _wait_until(lambda: "perturbations" in dash_duo.find_element("#activity-count").text, "row count")
    assert dash_duo.find_element("#activity-count").text.startswith(f"{expected:,} perturbations")
    search = dash_duo.find_element("#activity-search")
    search.send_keys("zzz-no-such-perturbation\n")
    _wait_until(lambda: dash_duo.find_element("#activity-count").text.startswith("0 "), "empty result")
    assert "q=zzz-no-such-perturbation" in dash_duo.driver.current_url and "active=1" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []


def test_activity_export_downloads_the_filtered_table(dash_duo, app, tiny_store):
    """The export runs as a background callback (phenomix_dash/__init__.py): the browser polls it
    and saves the CSV."""
    from pathlib import Path

    import pandas as pd

    from phenomix_dash.data import PhenomixData

    expected = int(PhenomixData(tiny_store).activity()["active"].sum())
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/activity?active=1", timeout=20)
    _wait_until(lambda: "perturbations" in dash_duo.find_element("#activity-count").text, "row count")
    dash_duo.find_element("#activity-export").click()
    csv = Path(dash_duo.download_path) / "phenomix_activity.csv"
    _wait_until(lambda: csv.exists() and csv.stat().st_size > 0, "the exported CSV", timeout=60)
    table = pd.read_csv(csv)
    assert len(table) == expected and table["active"].all()
    assert dash_duo.get_logs() == []
