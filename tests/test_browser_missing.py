"""In headless Chromium: the map at perturbation level coloured by q-value shows the unscored
perturbations (controls have no q-value) as grey "no value" points with their own legend entry and
hover, not as the most significant colour; a click on one still opens its panel."""

from __future__ import annotations

import pytest
from browser_helpers import wait_until
from selenium.webdriver.common.action_chains import ActionChains

from phenomix_dash.figures.palette import NO_VALUE, NO_VALUE_COLOUR

pytestmark = pytest.mark.browser

ALIGNED = "#map-aligned-figure"
_GRAPH = "const g = document.querySelector('#map-aligned-figure .js-plotly-plot');"


@pytest.fixture
def map_app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


def _unscored(tiny_store) -> tuple[list[int], list[int]]:
    """Rows without a q-value, and those of them that are negative controls."""
    from phenomix_dash.data import get_data
    from phenomix_dash.selection import colour_table

    t = colour_table(get_data(), "perturbations")
    none = t["q_value"].isna().to_numpy()
    return none.nonzero()[0].tolist(), (none & (t["perturbation_type"] == "negative_control").to_numpy()).nonzero()[0].tolist()


def _traces(dash_duo) -> list[dict]:
    """Name, colour, customdata and hover template of each trace as plotly.js holds them."""
    return dash_duo.driver.execute_script(_GRAPH + """
        return g._fullData.map(t => ({name: t.name, type: t.type, n: t._length || 0,
            color: t.marker && (typeof t.marker.color === 'string' ? t.marker.color : 'array'),
            customdata: t.customdata ? Array.from(t.customdata) : null,
            hovertemplate: t.hovertemplate || '', showlegend: t.showlegend}));""")


def test_q_value_map_shows_unscored_perturbations_as_no_value(dash_duo, map_app, tiny_store):
    dash_duo.start_server(map_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/map?level=perturbations&color=q_value", timeout=20)
    dash_duo.wait_for_element(f"{ALIGNED} .nsewdrag", timeout=30)
    wait_until(lambda: dash_duo.driver.execute_script(
        _GRAPH + "return !!(g && g._fullData && g._fullData.length > 2);"), "map traces drawn")
    unscored, controls = _unscored(tiny_store)
    assert controls, "the tiny store should have negative controls, which have no q-value"
    traces = _traces(dash_duo)
    # Traces by name, not position: more follow the grey one (the clicked point, the gene set's ring).
    points = traces[0]
    grey = next((t for t in traces if t["name"] == NO_VALUE), None)
    assert grey is not None, [t["name"] for t in traces]
    # The legend names the grey points "no value" and they are exactly the unscored perturbations.
    legend = [e.text for e in dash_duo.find_elements(f"{ALIGNED} .legend .legendtext")]
    assert NO_VALUE in legend, legend
    assert grey["name"] == NO_VALUE and grey["showlegend"] and grey["color"].lower() == NO_VALUE_COLOUR.lower()
    assert sorted(grey["customdata"]) == unscored and grey["n"] == len(unscored)
    assert "no value" in grey["hovertemplate"] and "marker.color" not in grey["hovertemplate"]
    # None of them is drawn by the coloured trace (x is NaN there): no q-value was invented for them.
    undrawn = dash_duo.driver.execute_script(
        _GRAPH + "const x = g._fullData[0].x; return Array.from(x).flatMap((v, i) => Number.isFinite(v) ? [] : [i]);")
    assert points["color"] == "array" and points["customdata"] is None and undrawn == unscored
    # Clicking a grey point (a negative control) opens that perturbation, which says it was not scored.
    x, y = dash_duo.driver.execute_script(_GRAPH + """
        const fl = g._fullLayout, t = g._fullData.find(t => t.name === arguments[1]);
        const k = Array.from(t.customdata).indexOf(arguments[0]);
        return [fl.xaxis.d2p(t.x[k]), fl.yaxis.d2p(t.y[k])];""", controls[0], NO_VALUE)
    drag = dash_duo.find_element(f"{ALIGNED} .nsewdrag")
    rect = drag.rect
    (ActionChains(dash_duo.driver).move_to_element(drag)
     .move_by_offset(int(x - rect["width"] / 2), int(y - rect["height"] / 2)).click().perform())
    wait_until(lambda: "not scored for activity" in dash_duo.find_element("#map-panel").text,
               "the clicked grey point's panel")
    assert "pert=" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == [], "browser console errors on the map page"
