"""Every page opens on the built-in REAL screen (LINCS + JUMP-MOA profiles, no well images)."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser

PAGES = ["/", "/map", "/plates", "/activity", "/similarity", "/perturbation", "/images", "/benchmarks"]


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, shared_data):
    from precompute.pipeline import RunConfig, run_pipeline
    from precompute.real_screen import build_real_screen

    root = tmp_path_factory.mktemp("real")
    screen = build_real_screen(root / "screen")
    run_pipeline(screen, root / "store", RunConfig(), progress=False)
    return root / "store"


def test_every_page_opens_on_the_real_screen(dash_duo, real_store):
    from phenomix_dash import create_app
    from phenomix_dash.settings import Settings

    dash_duo.start_server(create_app(Settings(store=real_store)))
    for path in PAGES:
        dash_duo.driver.get(dash_duo.server_url + path)
        dash_duo.wait_for_element("h3", timeout=30)
        time.sleep(2)  # let the page's first callbacks answer
        body = dash_duo.find_element("body").text
        assert "Traceback" not in body and "Internal Server Error" not in body, path
        assert dash_duo.get_logs() == [], f"browser console errors on {path}"
    dash_duo.driver.get(dash_duo.server_url + "/")
    dash_duo.wait_for_text_to_equal("h3", "Screen overview", timeout=20)
    assert "wells" in dash_duo.find_element("#overview-summary").text
