"""Images and Benchmarks pages in headless Chromium: a shared /images URL opens the well with its
composite, single channels and MAE reconstruction; a control tile on the Perturbation page opens
that well; channel toggles redraw; the Benchmarks page opens with its sections."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser




@pytest.fixture
def app(ckpt_store):
    from phenomix_dash import create_app
    from phenomix_dash.settings import Settings

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


def test_benchmarks_page_opens_with_sections(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/benchmarks")
    dash_duo.wait_for_element("#benchmarks-recall table.recall-table", timeout=30)
    header = dash_duo.find_element("#benchmarks-recall table.recall-table").text
    assert "random" in header and "pixel statistics" in header
    for sid in ("#benchmarks-replicate", "#benchmarks-batch", "#benchmarks-compound-gene"):
        assert dash_duo.find_element(sid).text
    dash_duo.wait_for_element("#benchmarks-batch-figure .barlayer", timeout=30)
    assert dash_duo.get_logs() == [], "browser console errors on the benchmarks page"
