"""The Compare page in headless Chromium (issue #16): open the two-map view, select in one map and
see the same wells highlighted in the other, the overlap table and benchmarks follow, and the link
reproduces the view."""

from __future__ import annotations

import pytest
from browser_helpers import wait_until as _wait_until
from selenium.webdriver.common.action_chains import ActionChains

pytestmark = pytest.mark.browser

LEFT, RIGHT = "#compare-left-map", "#compare-right-map"


@pytest.fixture
def compare_app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


def _drawn(dash_duo, graph: str) -> None:
    dash_duo.wait_for_element(f"{graph} .nsewdrag", timeout=30)
    _wait_until(lambda: dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return !!(g && g._fullData && g._fullData.length && g._fullData[0]._length > 0);", graph), f"{graph} drawn")


def _selected(dash_duo, graph: str) -> list[int]:
    return dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "const s = g && g.data && g.data[0].selectedpoints; return s ? Array.from(s) : [];", graph)


def _box_select(dash_duo, graph: str) -> None:
    """Box-select the middle half of a map (deterministic where a freehand lasso is not)."""
    dash_duo.find_element(f'{graph} .modebar-btn[data-val="select"]').click()
    drag = dash_duo.find_element(f"{graph} .nsewdrag")
    w, h = drag.rect["width"], drag.rect["height"]
    (ActionChains(dash_duo.driver).move_to_element(drag).move_by_offset(int(-w / 4), int(-h / 4)).click_and_hold()
     .move_by_offset(int(w / 4), int(h / 4)).move_by_offset(int(w / 4), int(h / 4)).release().perform())


def test_select_in_one_map_highlights_the_other_and_the_link_reproduces_it(dash_duo, compare_app):
    dash_duo.start_server(compare_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/compare?left=mae:tvn&right=pixelstats:tvn&k=5", timeout=20)
    _drawn(dash_duo, LEFT)
    _drawn(dash_duo, RIGHT)
    assert "MAE · TVN" in dash_duo.find_element("#compare-left-space").text
    assert "pixel statistics · TVN" in dash_duo.find_element("#compare-right-space").text
    # Neighbour overlap and benchmarks of the pair are shown before any selection.
    dash_duo.wait_for_element("#compare-overlap-grid .ag-row", timeout=20)
    _wait_until(lambda: "nearest by cosine" in dash_duo.find_element("#compare-jaccard-caption").text, "overlap caption")
    _wait_until(lambda: len(dash_duo.find_elements("#compare-benchmarks .js-plotly-plot")) >= 4, "benchmarks side by side")

    _box_select(dash_duo, LEFT)
    _wait_until(lambda: len(_selected(dash_duo, RIGHT)) > 0, "the left selection highlighted on the right map")
    picked = _selected(dash_duo, RIGHT)
    _wait_until(lambda: "wells selected on MAE · TVN" in dash_duo.find_element("#compare-selection-text").text,
                "selection summary")
    url = dash_duo.driver.current_url
    assert "on=mae%3Atvn" in url and "sel=aligned" in url and "left=mae%3Atvn" in url and "k=5" in url
    # The overlap distribution gains the selection's perturbations as a second series.
    _wait_until(lambda: dash_duo.driver.execute_script(
        "const g = document.querySelector('#compare-jaccard-figure .js-plotly-plot'); return g.data.length;") == 2,
        "selected perturbations in the overlap distribution")

    # The link reproduces the view: same spaces, same wells highlighted on both maps, region drawn on the left.
    dash_duo.driver.get(url)
    _drawn(dash_duo, LEFT)
    _drawn(dash_duo, RIGHT)
    _wait_until(lambda: _selected(dash_duo, RIGHT) == picked, "the same wells highlighted after reload")
    assert _selected(dash_duo, LEFT) == picked  # wells are the same rows in every space
    assert dash_duo.driver.execute_script(
        "return document.querySelector('#compare-left-map .js-plotly-plot').layout.shapes.length") == 1
    assert "MAE · TVN" in dash_duo.find_element("#compare-left-space").text
    assert dash_duo.get_logs() == [], "browser console errors on the compare page"


def test_a_space_without_a_map_says_so_and_a_bad_link_falls_back(dash_duo, compare_app):
    dash_duo.start_server(compare_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/compare?left=mae:centerscale&right=nope&sel=junk&on=mae:tvn",
                           timeout=20)
    _wait_until(lambda: "No UMAP of MAE · center-scale" in dash_duo.driver.execute_script(
        "const g = document.querySelector('#compare-left-map .js-plotly-plot');"
        "return g.layout.annotations[0].text;"), "the missing map explained")
    notes = dash_duo.find_element("#compare-note").text
    assert "unknown space 'nope'" in notes and "selection in the link" in notes
    _drawn(dash_duo, RIGHT)
    dash_duo.wait_for_element("#compare-overlap-grid .ag-row", timeout=20)  # centerscale still has its overlap
    assert dash_duo.get_logs() == []
