"""The map page in headless Chromium: loads cleanly, colour-by, click -> side panel, box select ->
plate highlight, and a shared URL reproduces the view."""

from __future__ import annotations

import pytest
from browser_helpers import wait_until as _wait_until
from selenium.webdriver.common.action_chains import ActionChains

pytestmark = pytest.mark.browser

RAW = "#map-raw-figure"


@pytest.fixture
def map_app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


def _wait_for_map(dash_duo, graph: str = RAW) -> None:
    dash_duo.wait_for_element(f"{graph} .nsewdrag", timeout=30)
    # Scattergl draws on a canvas; wait until plotly holds the points trace.
    _wait_until(lambda: dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return !!(g && g._fullData && g._fullData.length && g._fullData[0]._length > 0);", graph), "map points drawn")




def _choose(dash_duo, dropdown: str, label: str) -> None:
    """Pick an option of a Dash 4 dropdown by its label (type to filter, then click it)."""
    dash_duo.find_element(dropdown).click()
    search = dash_duo.wait_for_element(".dash-dropdown-search", timeout=10)
    search.send_keys(label)
    _wait_until(lambda: any(o.text.strip() == label for o in dash_duo.find_elements(".dash-dropdown-option")),
                f"option {label!r}")
    option = next(o for o in dash_duo.find_elements(".dash-dropdown-option") if o.text.strip() == label)
    dash_duo.driver.execute_script("arguments[0].click()", option)


def _point_offset(dash_duo, graph: str, index: int) -> tuple[float, float, float, float]:
    """Pixel position of point `index` of trace 0 inside the plot's drag layer, and its size."""
    return tuple(dash_duo.driver.execute_script(
        """const g = document.querySelector(arguments[0] + ' .js-plotly-plot');
           const fl = g._fullLayout, i = arguments[1];
           const t = g._fullData[0], x = fl.xaxis.d2p(t.x[i]), y = fl.yaxis.d2p(t.y[i]);
           return [x, y, fl._size.w, fl._size.h];""", graph, index))


def _move_in_plot(dash_duo, graph: str, x: float, y: float, w: float, h: float) -> ActionChains:
    drag = dash_duo.find_element(f"{graph} .nsewdrag")
    # From the element's centre: the origin of move_to_element_with_offset differs between Selenium versions.
    rect = drag.rect
    return (ActionChains(dash_duo.driver).move_to_element(drag)
            .move_by_offset(int(x - rect["width"] / 2), int(y - rect["height"] / 2)))


def test_a_shared_link_opens_the_same_view_and_colour_can_switch(dash_duo, map_app):
    dash_duo.start_server(map_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/map?color=batch&space=raw", timeout=20)
    _wait_for_map(dash_duo)
    title = "return document.querySelector('#map-raw-figure .js-plotly-plot').data[0].marker.colorbar.title.text"
    assert dash_duo.driver.execute_script(title) == "batch"
    assert dash_duo.find_element("#map-color-by").text.strip().startswith("batch")
    assert dash_duo.find_element("#map-space input[value='raw']").is_selected()
    assert not dash_duo.find_element("#map-aligned-box").is_displayed()
    _choose(dash_duo, "#map-color-by", "perturbation type")
    _wait_until(lambda: dash_duo.driver.execute_script(title) == "perturbation type", "colour bar follows the choice")
    assert "color=perturbation_type" in dash_duo.driver.current_url and "space=raw" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == [], "browser console errors on the map page"


def test_clicking_a_point_shows_its_neighbours(dash_duo, map_app):
    dash_duo.start_server(map_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/map", timeout=20)
    _wait_for_map(dash_duo)
    x, y, w, h = _point_offset(dash_duo, RAW, 3)
    _move_in_plot(dash_duo, RAW, x, y, w, h).click().perform()
    dash_duo.wait_for_element("#map-panel-content .map-neighbours li", timeout=20)
    panel = dash_duo.find_element("#map-panel").text
    assert "Most similar perturbations" in panel and "plate" in panel
    links = [a.get_attribute("href") for a in dash_duo.find_elements("#map-panel a")]
    assert any("/perturbation?pert=" in h for h in links) and any("/images?well=" in h for h in links)
    assert "well=" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []


def test_lasso_and_box_selections_link_the_maps_and_the_plate(dash_duo, map_app):
    dash_duo.start_server(map_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/map", timeout=20)
    _wait_for_map(dash_duo, "#map-aligned-figure")
    drag = dash_duo.find_element("#map-aligned-figure .nsewdrag")  # the lasso is the default drag mode
    chain = ActionChains(dash_duo.driver).move_to_element(drag).move_by_offset(-80, -80).click_and_hold()
    for dx, dy in [(40, 0)] * 4 + [(0, 40)] * 4 + [(-40, -20)] * 4 + [(0, -40)]:
        chain = chain.move_by_offset(dx, dy)
    chain.release().perform()
    _wait_until(lambda: "wells selected (on the aligned map)" in dash_duo.find_element("#map-selection-summary").text,
                "a lasso selection summary")
    assert "sel=aligned" in dash_duo.driver.current_url
    # The same wells are picked out on the raw map too (linked brushing).
    _wait_until(lambda: dash_duo.driver.execute_script(
        "const g = document.querySelector('#map-raw-figure .js-plotly-plot');"
        "const s = g.data[0].selectedpoints; return s && s.length > 0;"), "selection mirrored on the raw map")
    # Then the box tool on the raw map (deterministic where a freehand lasso is not) replaces it, and the
    # selected wells carry a thick outline on the plate layout (SVG markers: readable from the DOM).
    dash_duo.find_element(f'{RAW} .modebar-btn[data-val="select"]').click()
    x, y, w, h = _point_offset(dash_duo, RAW, 0)
    x0, y0, x1, y1 = max(x - 0.3 * w, 2), max(y - 0.3 * h, 2), min(x + 0.3 * w, w - 2), min(y + 0.3 * h, h - 2)
    (_move_in_plot(dash_duo, RAW, x0, y0, w, h).click_and_hold().move_by_offset(int((x1 - x0) / 2), int((y1 - y0) / 2))
     .move_by_offset(int((x1 - x0) / 2), int((y1 - y0) / 2)).release().perform())
    _wait_until(lambda: "(on the raw map)" in dash_duo.find_element("#map-selection-summary").text, "box selection")
    _wait_until(lambda: _outlined(dash_duo) > 0, "selected wells outlined on the plate")
    assert "sel=raw" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []


def _outlined(dash_duo) -> int:
    return dash_duo.driver.execute_script(
        "const g = document.querySelector('#map-selection-plate-figure .js-plotly-plot');"
        "if (!g || !g.data) return 0; let n = 0;"
        "for (const t of g.data) { const w = t.marker && t.marker.line && t.marker.line.width;"
        "  if (Array.isArray(w)) n += w.filter(v => v === 3).length; }"
        "return n;")

