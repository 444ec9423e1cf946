"""Gene sets in headless Chromium (#16): paste a list with one unknown name, see its members ringed on the
map and outlined on the similarity heatmap and the unknown name reported; the set lives in the URL, so
a reload, and a page reached from the navbar, show the same set."""

from __future__ import annotations

import pytest
from browser_helpers import wait_until

pytestmark = pytest.mark.browser

UNKNOWN = "NOT_A_GENE_XYZ"
TRACES = "const g = document.querySelector(arguments[0] + ' .js-plotly-plot'); return g ? g.data : null;"


@pytest.fixture
def sets_app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


@pytest.fixture
def members(tiny_store):
    """Three genes of the tiny screen and how many wells (and perturbation rows) they have."""
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(tiny_store)
    w = d.wells[d.wells["perturbation_type"] == "crispr"]
    genes = sorted(w["gene"].dropna().astype(str).unique())[:3]
    return genes, int(w["gene"].isin(genes).sum())


def _set_trace(dash_duo, graph: str) -> dict | None:
    data = dash_duo.driver.execute_script(TRACES, graph)
    return next((t for t in data or [] if str(t.get("name", "")).startswith("set member")), None)


def _ring_size(dash_duo, graph: str) -> int:
    t = _set_trace(dash_duo, graph)
    return -1 if t is None else int(dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "const t = g._fullData.find(t => String(t.name).startsWith('set member')); return t ? t._length : -1;", graph))


def _outlined_rows(dash_duo) -> list[str]:
    return dash_duo.driver.execute_script(
        "const g = document.querySelector('#similarity-heatmap .js-plotly-plot');"
        "return g ? (g.layout.shapes || []).map(s => s.name || '').filter(n => n.startsWith('set member')) : [];")


def _paste(dash_duo, text: str) -> None:
    box = dash_duo.find_element("#set-text")
    box.clear()
    box.send_keys(text)
    dash_duo.find_element("#set-apply").click()


def test_pasted_list_is_highlighted_reported_and_kept_in_the_url(dash_duo, sets_app, members):
    genes, n_wells = members
    dash_duo.start_server(sets_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/map", timeout=20)
    dash_duo.wait_for_element("#map-raw-figure .nsewdrag", timeout=30)
    wait_until(lambda: _ring_size(dash_duo, "#map-raw-figure") == 0, "the map's empty set trace")

    _paste(dash_duo, ", ".join([*genes[:2], UNKNOWN, genes[2]]))
    wait_until(lambda: dash_duo.find_element("#set-unknown-names").text == UNKNOWN, "the unknown name reported")
    # Every member well ringed on both maps (a Patch of the set trace, not a redraw).
    wait_until(lambda: _ring_size(dash_duo, "#map-raw-figure") == n_wells, f"{n_wells} member wells ringed (raw)")
    wait_until(lambda: _ring_size(dash_duo, "#map-aligned-figure") == n_wells, "member wells ringed (aligned)")
    wait_until(lambda: "set=list%3A" in dash_duo.driver.current_url, "the set in the URL")
    url = dash_duo.driver.current_url
    assert UNKNOWN in url and all(g in url for g in genes)

    # Another page from the navbar: the set travels; the heatmap restricted to it outlines its members.
    dash_duo.find_element("a.nav-link[href^='/similarity']").click()
    dash_duo.wait_for_element("#similarity-mode", timeout=20)
    wait_until(lambda: "set=list%3A" in dash_duo.driver.current_url, "the set kept on the Similarity page")
    dash_duo.find_element("#similarity-mode input[value='set']").click()
    wait_until(lambda: len(_outlined_rows(dash_duo)) >= 3, "member rows outlined on the heatmap")
    outlined = _outlined_rows(dash_duo)
    ticks = dash_duo.driver.execute_script(
        "const g = document.querySelector('#similarity-heatmap .js-plotly-plot'); return g.layout.yaxis.ticktext;")
    rows = [int(n.rsplit(" ", 1)[1]) for n in outlined if " row " in n]
    assert {t.replace("<b>", "").replace("</b>", "").split(" ")[0] for t in (ticks[i] for i in rows)} <= set(genes)
    assert "mode=set" in dash_duo.driver.current_url

    # The link reproduces the view: a reload shows the same set, unknown name and outlines.
    link = dash_duo.driver.current_url
    dash_duo.driver.get(link)
    wait_until(lambda: dash_duo.find_element("#set-unknown-names").text == UNKNOWN, "the unknown name after reload")
    wait_until(lambda: len(_outlined_rows(dash_duo)) >= 3, "outlines after reload")
    assert dash_duo.driver.current_url == link
    assert dash_duo.get_logs() == [], "browser console errors"


def test_annotation_set_from_a_link(dash_duo, sets_app, tiny_store):
    from phenomix_dash import set_data
    from phenomix_dash.data import PhenomixData

    complexes = sorted(set_data.screen_sets(PhenomixData(tiny_store)).get("complex", {}))
    assert complexes, "the tiny screen has annotated complexes"
    key = f"ann:complex:{complexes[0]}"
    dash_duo.start_server(sets_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/sets?set={key}", timeout=20)
    summary = lambda: dash_duo.find_element("#sets-summary").text  # noqa: E731
    wait_until(lambda: "mean within-set cosine" in summary().lower(), "the set's statistics", timeout=60)
    assert "1,000 random sets" in summary() and "scored members" in summary()
    assert dash_duo.get_logs() == [], "browser console errors"


def test_clear_removes_the_set(dash_duo, sets_app, tiny_store):
    from phenomix_dash import set_data
    from phenomix_dash.data import PhenomixData

    complexes = sorted(set_data.screen_sets(PhenomixData(tiny_store)).get("complex", {}))
    dash_duo.start_server(sets_app)
    dash_duo.wait_for_page(url=f"{dash_duo.server_url}/sets?set=ann:complex:{complexes[0]}", timeout=20)
    summary = lambda: dash_duo.find_element("#sets-summary").text  # noqa: E731
    wait_until(lambda: "mean within-set cosine" in summary().lower(), "the set's statistics", timeout=60)
    # A script click: in headless Chromium the first pointer click on this page's bar is not
    # delivered to the button (seen, not yet explained; a user's click is), so the test presses it directly.
    dash_duo.driver.execute_script("document.getElementById('set-clear').click()")
    wait_until(lambda: "No set chosen" in dash_duo.find_element("#sets-summary").text, "no set on the page")
    wait_until(lambda: "set=" not in dash_duo.driver.current_url, "the set gone from the URL")
    assert dash_duo.get_logs() == [], "browser console errors"
