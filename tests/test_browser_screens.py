"""Several screens behind one server, in headless Chromium: the navbar's switcher changes screen, the
URL carries it, a reload stays on it, pages and their callbacks show that screen's data, and a
screen failing its checksums is listed unavailable with the reason while the others keep working."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import points_drawn as _points_drawn
from browser_helpers import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def store_root(tiny_store, tmp_path_factory) -> Path:
    """alpha: the tiny store (2 plates, 192 wells); beta: another tiny screen with 3 plates (288
    wells); broken: the tiny store with one artifact edited after it was written."""
    from precompute.pipeline import RunConfig, run_pipeline
    from precompute.synth import SynthConfig, generate_screen

    root = tmp_path_factory.mktemp("store_root")
    shutil.copytree(tiny_store, root / "alpha")
    screen = tmp_path_factory.mktemp("screens") / "beta"
    generate_screen(SynthConfig.preset("tiny", n_batches=3, seed=5), screen, progress=False)
    run_pipeline(screen, root / "beta", RunConfig(embedders=("random",), primary_embedder="random", umap_neighbors=10),
                 progress=False)
    shutil.copytree(tiny_store, root / "broken")
    wells = next((root / "broken").glob("ingest-*")) / "wells.parquet"
    data = bytearray(wells.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wells.write_bytes(bytes(data))
    return root


@pytest.fixture
def app(store_root):
    from phenomix.settings import Settings
    from phenomix_dash import create_app, screens

    app = create_app(Settings(store=store_root / "alpha", store_root=store_root))
    screens.verify_small_stores(screens.registry())  # what the start-up thread does, done now
    return app


def _summary(dash_duo) -> str:
    return dash_duo.find_element("#overview-summary").text


def _marked_pages(dash_duo) -> set[str]:
    """The navbar links marked active."""
    return {a.text.strip() for a in dash_duo.find_elements(".navbar .nav-link")
            if "active" in (a.get_attribute("class") or "").split()}


def _switch_to(dash_duo, name: str) -> None:
    dash_duo.find_element("#screen-menu .dropdown-toggle").click()
    item = next(el for el in dash_duo.find_elements("#screen-menu .dropdown-item") if el.text.strip() == name)
    item.click()


def test_switch_screens_and_reload_the_url(dash_duo, app):
    dash_duo.start_server(app)
    wait_until(lambda: "192 wells" in _summary(dash_duo), "the default screen's overview (alpha, 192 wells)")
    assert "Screen: alpha" in dash_duo.find_element("#screen-menu").text

    # The switcher lists the damaged screen with its reason, and does not offer it.
    dash_duo.find_element("#screen-menu .dropdown-toggle").click()
    items = {el.text.split(" —")[0].strip(): el for el in dash_duo.find_elements("#screen-menu .dropdown-item")}
    assert set(items) == {"alpha", "beta", "broken"}
    assert "unavailable: " in items["broken"].text and "checksum mismatch" in items["broken"].get_attribute("innerHTML")
    assert "disabled" in items["broken"].get_attribute("class")
    items["beta"].click()

    # The screen is in the URL and the overview shows beta's wells.
    wait_until(lambda: "screen=beta" in dash_duo.driver.current_url, "screen=beta in the URL")
    wait_until(lambda: "288 wells" in _summary(dash_duo) and "3 plates" in _summary(dash_duo), "beta's overview")
    dash_duo.driver.refresh()
    wait_until(lambda: "288 wells" in _summary(dash_duo), "beta's overview after a reload")
    assert "Screen: beta" in dash_duo.find_element("#screen-menu").text

    # The navbar's links keep the screen; the map's points come from a callback, which must read beta too.
    next(a for a in dash_duo.find_elements(".navbar .nav-link") if a.text.strip() == "Map").click()
    wait_until(lambda: "/map" in dash_duo.driver.current_url and "screen=beta" in dash_duo.driver.current_url,
               "the map of beta")
    # The navbar marks the page being viewed although its links carry ?screen=beta.
    wait_until(lambda: _marked_pages(dash_duo) == {"Map"}, "the navbar marking Map (and only Map) on beta")
    wait_until(lambda: _points_drawn(dash_duo, "#map-raw-figure") == 288, "beta's 288 wells on the map", timeout=40)
    dash_duo.driver.refresh()
    wait_until(lambda: _points_drawn(dash_duo, "#map-raw-figure") == 288, "beta's map after a reload", timeout=40)

    # Switching back from the map lands on alpha's map.
    _switch_to(dash_duo, "alpha")
    wait_until(lambda: urlparse(dash_duo.driver.current_url).path == "/map"
               and parse_qs(urlparse(dash_duo.driver.current_url).query).get("screen") == ["alpha"], "alpha's map URL")
    wait_until(lambda: _points_drawn(dash_duo, "#map-raw-figure") == 192, "alpha's 192 wells on the map", timeout=40)
    assert dash_duo.get_logs() == [], "browser console errors"


def test_a_damaged_screen_shows_its_reason_and_the_others_keep_working(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?screen=broken")
    wait_until(lambda: "unavailable" in dash_duo.find_element("#_pages_content").text, "the reason on the page")
    text = dash_duo.find_element("#_pages_content").text
    assert "screen 'broken' is unavailable" in text and "checksum mismatch" in text
    dash_duo.driver.get(dash_duo.server_url + "/?screen=beta")
    wait_until(lambda: "288 wells" in _summary(dash_duo), "beta still serves")
