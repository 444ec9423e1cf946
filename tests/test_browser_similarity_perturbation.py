"""Similarity and Perturbation pages in headless Chromium: they open cleanly, a heatmap click
shows the pair, the type-ahead search picks a perturbation, and a shared URL reproduces a view."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from browser_helpers import pick_search_option
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser


@pytest.fixture
def app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


@pytest.fixture(scope="module")
def genes(tiny_store) -> list[str]:
    from phenomix_dash.data import PhenomixData

    t = PhenomixData(tiny_store).perturbations()
    return t.loc[t["perturbation_type"] == "crispr", "pert_id"].astype(str).tolist()


def _wait_text(dash_duo, selector: str, text: str, timeout: int = 30) -> None:
    WebDriverWait(dash_duo.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda drv: text in drv.find_element("css selector", selector).text)


def test_similarity_heatmap_click_shows_pair(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/similarity?kind=gene_compound&mode=active&n=20")
    dash_duo.wait_for_element("#similarity-heatmap .heatmaplayer", timeout=30)
    assert "Showing" in dash_duo.find_element("#similarity-note").text
    drag = dash_duo.find_element("#similarity-heatmap .nsewdrag")
    # The drag layer covers the cells: a click at its centre lands on a cell.
    ActionChains(dash_duo.driver).move_to_element(drag).click().perform()
    dash_duo.wait_for_element("#similarity-pair-info .pair-title", timeout=30)
    title = dash_duo.find_element("#similarity-pair-info .pair-title").text
    assert " × " in title
    cos = dash_duo.find_element("#similarity-pair-info .pair-cosine").text
    assert "cosine" in cos and "random pairs" in cos
    assert "Most similar to" in dash_duo.find_element("#similarity-pair-info").text
    WebDriverWait(dash_duo.driver, 10).until(lambda drv: "pair=" in drv.current_url)
    assert dash_duo.get_logs() == [], "browser console errors on the similarity page"


def test_perturbation_type_ahead_search(dash_duo, app, genes):
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/perturbation")
    dash_duo.wait_for_element("#perturbation-search", timeout=30)
    dash_duo.find_element("#perturbation-search").click()
    box = dash_duo.wait_for_element(".dash-dropdown-content input.dash-dropdown-search", timeout=10)
    name = genes[3].split(":", 1)[1]
    box.send_keys(name)
    WebDriverWait(dash_duo.driver, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda drv: [o.text for o in drv.find_elements("css selector", ".dash-dropdown-content .dash-dropdown-option")]
        == [f"{name} (CRISPR)"])  # exactly one match
    pick_search_option(dash_duo, f"{name} (CRISPR)")
    _wait_text(dash_duo, "#perturbation-summary", "Phenotypic activity")
    summary = dash_duo.find_element("#perturbation-summary").text
    assert name in summary and "Replicate consistency" in summary
    dash_duo.wait_for_element("#perturbation-neighbour-figure .barlayer", timeout=30)
    WebDriverWait(dash_duo.driver, 10).until(lambda drv: "pert=" + quote(genes[3], safe="") in drv.current_url)
    assert dash_duo.get_logs() == [], "browser console errors on the perturbation page"


def test_shared_perturbation_url_reproduces_view(dash_duo, app, genes):
    dash_duo.start_server(app)
    pid = genes[5]
    name = pid.split(":", 1)[1]
    dash_duo.wait_for_page(url=dash_duo.server_url + "/perturbation?pert=" + quote(pid, safe=""))
    _wait_text(dash_duo, "#perturbation-summary", name)
    assert name in dash_duo.find_element("#perturbation-search").text
    dash_duo.wait_for_element("#perturbation-tiles .pert-tiles img", timeout=30)
    assert len(dash_duo.find_elements("#perturbation-tiles .control-tiles img")) >= 1, "same-plate controls shown"
    dash_duo.wait_for_element("#perturbation-plate-figure .scatterlayer .point", timeout=30)
    # The neighbour table lists other perturbations with their percentile.
    dash_duo.wait_for_element("#perturbation-neighbour-tables .ag-row", timeout=30)
    assert dash_duo.get_logs() == []
