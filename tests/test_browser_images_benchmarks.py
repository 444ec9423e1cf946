"""Images and Benchmarks pages in headless Chromium: a shared /images URL opens the well with its
composite, single channels and MAE reconstruction; a control tile on the Perturbation page opens
that well; channel toggles redraw; the Benchmarks page plots the store's scores in every section."""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser




@pytest.fixture
def app(ckpt_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=ckpt_store))


@pytest.fixture(scope="module")
def screen(ckpt_store):
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(ckpt_store)
    return d.wells, d.perturbations(), d.channels


def test_shared_images_url_shows_well_and_reconstruction(dash_duo, app, screen):
    wells, _, channels = screen
    well = wells["well_id"].iloc[10]
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + f"/images?well={quote(well)}&site=1")
    dash_duo.wait_for_element("#images-view img.composite-image", timeout=30)
    info = dash_duo.find_element("#images-well-info").text
    assert wells["well"].iloc[10] in info and "site 1" in info
    assert len(dash_duo.find_elements("#images-view img.channel-image")) == len(channels)
    dash_duo.wait_for_element("#images-reconstruction img.recon-output", timeout=60)
    for cls in ("recon-original", "recon-masked"):
        assert dash_duo.find_element(f"#images-reconstruction img.{cls}").get_attribute("src").startswith("data:image/png")
    assert "75% of patches hidden" in dash_duo.find_element("#images-reconstruction").text
    assert len(dash_duo.find_elements("#images-reconstruction table.per-channel-error tbody tr")) == len(channels)
    # Turning a channel off redraws the composite.
    before = dash_duo.find_element("#images-view img.composite-image").get_attribute("src")
    dash_duo.find_element("#images-view").location_once_scrolled_into_view  # noqa: B018
    switch = dash_duo.driver.find_elements("css selector", "input[id*='images-channel-on']")[0]
    dash_duo.driver.execute_script("arguments[0].click()", switch)
    # The composite is replaced while we look: a stale element just means "look again".
    WebDriverWait(dash_duo.driver, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda drv: drv.find_element("css selector", "#images-view img.composite-image").get_attribute("src") != before)
    assert f"well={well}" in dash_duo.driver.current_url and "site=1" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == [], "browser console errors on the images page"


def test_control_tile_opens_the_well_in_images(dash_duo, app, screen):
    _, table, _ = screen
    pid = table.loc[table["perturbation_type"] == "compound", "pert_id"].iloc[0]
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/perturbation?pert=" + quote(pid, safe=""))
    tile = dash_duo.wait_for_element("#perturbation-tiles .control-tiles a", timeout=40)
    href = tile.get_attribute("href")
    assert "/images?well=" in href

    def click_tile(drv) -> bool:  # the tiles may be redrawn once more while we click
        el = drv.find_element("css selector", "#perturbation-tiles .control-tiles a")
        drv.execute_script("arguments[0].scrollIntoView(); arguments[0].click()", el)
        return True

    WebDriverWait(dash_duo.driver, 20, ignored_exceptions=(StaleElementReferenceException,)).until(click_tile)
    dash_duo.wait_for_element("#images-view img.composite-image", timeout=30)
    assert "/images" in dash_duo.driver.current_url
    assert "negative control" in dash_duo.find_element("#images-well-info").text
    dash_duo.wait_for_element("#images-reconstruction img.recon-output", timeout=60)
    assert dash_duo.get_logs() == []


def _plotted_values(dash_duo, graph: str, trace_type: str) -> list[float]:
    """Every finite y value of the ``trace_type`` traces plotly.js drew in ``graph`` (decoded data)."""
    values = dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "if (!g || !g._fullData) return null;"
        "return g._fullData.filter(t => t.type === arguments[1]).flatMap(t => Array.from(t.y || []));",
        graph, trace_type)
    assert values is not None, f"{graph} has no plotly figure"
    return sorted(v for v in values if v is not None and np.isfinite(v))


def _stored(table, column: str) -> list[float]:
    return sorted(table[column].dropna().astype(float))


def test_benchmarks_page_shows_the_stores_scores_in_every_section(dash_duo, app, ckpt_store):
    # Each section must plot this store's numbers, all of them: a section that only kept its title
    # (a missing table, an empty figure) fails.
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(ckpt_store)
    rep, batch, cg = (d.benchmark_table(n) for n in ("replicate_map", "batch", "compound_gene"))
    assert len(rep) and len(batch) and len(cg), "the tiny store scores replicates, batches and compound targets"
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/benchmarks")
    dash_duo.wait_for_element("#benchmarks-recall table.recall-table", timeout=30)
    header = dash_duo.find_element("#benchmarks-recall table.recall-table").text
    assert "random" in header and "pixel statistics" in header
    for graph in ("#benchmarks-replicate-figure .barlayer", "#benchmarks-batch-figure .barlayer",
                  "#benchmarks-compound-gene-figure .boxlayer"):
        dash_duo.wait_for_element(graph, timeout=30)
    np.testing.assert_allclose(_plotted_values(dash_duo, "#benchmarks-replicate-figure", "bar"), _stored(rep, "map"))
    np.testing.assert_allclose(_plotted_values(dash_duo, "#benchmarks-batch-figure", "bar"), _stored(batch, "accuracy"))
    np.testing.assert_allclose(_plotted_values(dash_duo, "#benchmarks-compound-gene-figure", "box"),
                               _stored(cg, "roc_auc"))
    # The numbers behind each figure are in its table, one row per stored row (AG Grid renders only
    # the visible rows; its aria-rowcount counts them all, plus the header row).
    for key, table in (("replicate", rep), ("batch", batch), ("compound-gene", cg)):
        grid = dash_duo.find_element(f"#benchmarks-{key} [role='treegrid'], #benchmarks-{key} [role='grid']")
        assert int(grid.get_attribute("aria-rowcount")) - 1 == len(table), key
    assert dash_duo.get_logs() == [], "browser console errors on the benchmarks page"
