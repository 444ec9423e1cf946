"""The screen overview in headless Chromium: loads cleanly, clicking a well shows its images."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains

pytestmark = pytest.mark.browser


@pytest.fixture
def overview_app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


def _click_point(dash_duo, index: int) -> None:
    points = dash_duo.find_elements("#overview-plate-figure .scatterlayer .point")
    assert len(points) > index, f"only {len(points)} wells drawn"
    # Plotly's drag layer sits above the markers: move to the point and click there.
    ActionChains(dash_duo.driver).move_to_element(points[index]).click().perform()


def test_overview_loads_without_console_errors(dash_duo, overview_app):
    dash_duo.start_server(overview_app)
    dash_duo.wait_for_element("#overview-plate-figure .scatterlayer .point", timeout=20)
    points = dash_duo.find_elements("#overview-plate-figure .scatterlayer .point")
    assert len(points) >= 80, "the plate shows (almost) all its wells"
    assert "wells" in dash_duo.find_element("#overview-summary").text
    assert dash_duo.get_logs() == [], "browser console errors on the overview page"


def test_clicking_a_well_shows_its_images(dash_duo, overview_app):
    dash_duo.start_server(overview_app)
    dash_duo.wait_for_element("#overview-plate-figure .scatterlayer .point", timeout=20)
    _click_point(dash_duo, 5)
    dash_duo.wait_for_element("#overview-images img.composite-image", timeout=20)
    channels = dash_duo.find_elements("#overview-images img.channel-image")
    assert len(channels) >= 5, "each channel is shown in grey beside the composite"
    src = dash_duo.find_element("#overview-images img.composite-image").get_attribute("src")
    assert src.startswith("data:image/png;base64,") and len(src) > 2000
    info = dash_duo.find_element("#overview-well-info").text
    assert "plate" in info and "batch" in info
    # The URL now carries the well, so the view can be shared.
    assert "well=" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []
