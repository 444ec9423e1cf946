"""Every page opens on the built-in REAL screen (LINCS + JUMP-MOA profiles, no well images) and
shows that screen: its 760 wells in two batches, all of them on the map, its compounds scored."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from browser_helpers import points_drawn as _points_drawn
from browser_helpers import wait_until

pytestmark = pytest.mark.browser

PAGES = ["/", "/map", "/plates", "/activity", "/similarity", "/perturbation", "/images", "/benchmarks"]


def test_every_page_opens_on_the_real_screen_and_shows_it(dash_duo, real_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app
    from phenomix_dash.data import PhenomixData
    from precompute.real_screen import LINCS_BATCH, MOA_BATCH

    d = PhenomixData(real_store)
    wells, act = d.wells, d.activity()
    # Known answers from the two real plate maps (SOURCES.md): 712 compound wells + 2 x 24 DMSO.
    assert len(wells) == 760 and set(wells["batch"]) == {LINCS_BATCH, MOA_BATCH}
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
    summary = dash_duo.find_element("#overview-summary").text
    for badge in ("760 wells", "2 plates", "2 batches", "712 compound wells", "48 negative control wells"):
        assert badge in summary, badge

    dash_duo.driver.get(dash_duo.server_url + "/map")
    for graph in ("#map-raw-figure", "#map-aligned-figure"):  # every real well, in both spaces
        wait_until(lambda g=graph: _points_drawn(dash_duo, g) == 760, f"760 wells drawn in {graph}", timeout=40)

    # Activity ranks the real compounds (Broad ids) by mAP: the count and the best one.
    dash_duo.driver.get(dash_duo.server_url + "/activity")
    wait_until(lambda: "perturbations" in dash_duo.find_element("#activity-count").text, "activity count", timeout=30)
    assert dash_duo.find_element("#activity-count").text.startswith(f"{len(act):,} perturbations")
    best = set(act.loc[act["mean_average_precision"] == act["mean_average_precision"].max(), "perturbation"])
    first = dash_duo.wait_for_element("#activity-grid .ag-row[row-index='0'] [col-id='perturbation']", timeout=30)
    assert first.text.startswith("BRD-") and first.text in best

    # A LINCS compound's page: its name, and its six dose wells on the one LINCS plate.
    lincs = wells[(wells["batch"] == LINCS_BATCH) & (wells["perturbation_type"] == "compound")]
    name = lincs["perturbation"].value_counts().index[0]
    n_wells = int((wells["perturbation"] == name).sum())
    dash_duo.driver.get(dash_duo.server_url + "/perturbation?pert=" + quote(f"compound:{name}", safe=""))
    wait_until(lambda: name in dash_duo.find_element("#perturbation-summary").text, "the compound's summary", timeout=30)
    assert f"{n_wells} wells on 1 plate in 1 batch" in dash_duo.find_element("#perturbation-summary").text
    assert dash_duo.get_logs() == []
