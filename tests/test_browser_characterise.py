"""Perturbation page in headless Chromium: q-values and call marks on the neighbour lists, the
"significant only" filter, the feature-group chart and the dose curve of a compound."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from browser_helpers import wait_until

pytestmark = pytest.mark.browser
MATCH_CELLS = "#perturbation-neighbour-tables .ag-center-cols-container [col-id='match']"


@pytest.fixture
def app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=tiny_store))


@pytest.fixture(scope="module")
def compound(tiny_store) -> str:
    """A pooled compound with a dose-response fit."""
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(tiny_store)
    table = d.perturbations()
    fitted = table["perturbation"].astype(str).isin(set(d.dose_response()["perturbation"].astype(str)))
    rows = table[(table["perturbation_type"] == "compound") & (table["level"] == "pooled") & fitted]
    assert len(rows), "the tiny screen has compounds with three or more doses"
    return str(rows["pert_id"].iloc[0])


def _marks(dash_duo) -> list[str]:
    return [c.text for c in dash_duo.find_elements(MATCH_CELLS)]


def test_perturbation_shows_q_groups_dose_and_filters_to_significant(dash_duo, app, compound):
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/perturbation?pert=" + quote(compound, safe="") + "&k=20")
    dash_duo.wait_for_element("#perturbation-neighbour-tables .ag-header-cell[col-id='q']", timeout=40)
    wait_until(lambda: len(_marks(dash_duo)) > 0, "neighbour rows with a call column", 30)
    q_texts = [c.text for c in dash_duo.find_elements("#perturbation-neighbour-tables .ag-center-cols-container [col-id='q']")]
    assert any(t and t != "no value" for t in q_texts), f"q-values shown: {q_texts[:5]}"
    before = _marks(dash_duo)
    assert set(before) <= {"✔", "", "not tested"}, before

    # Feature groups (pixel statistics on the tiny screen) and the compound's dose curve.
    dash_duo.wait_for_element("#perturbation-drivers-figure .barlayer .point", timeout=30)
    groups = dash_duo.find_element("#perturbation-drivers-figure").text
    assert "by channel" in groups and "DNA" in groups
    assert "features move at q < 0.05" in dash_duo.find_element("#perturbation-drivers").text
    dash_duo.wait_for_element("#perturbation-dose-figure .scatterlayer .point", timeout=30)
    title = dash_duo.find_element("#perturbation-dose-figure .gtitle").text
    assert compound.split(":", 1)[1] in title and "EC50" in title

    # "Significant only" keeps exactly the called rows of the list shown (none: it says so).
    dash_duo.find_element("#perturbation-significant-only input").click()
    n_called = before.count("✔")
    if n_called:
        wait_until(lambda: _marks(dash_duo) == ["✔"] * n_called, f"only the {n_called} called matches", 30)
    else:
        wait_until(lambda: "none at q < 0.05" in dash_duo.find_element("#perturbation-neighbour-tables").text,
                   "the empty filtered list says why", 30)

    # A pair: compare with its first neighbour; the pair's match q and its shared/differing features.
    chooser = dash_duo.find_element("#perturbation-pair-with")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", chooser)

    def open_options() -> bool:
        if not dash_duo.find_elements(".dash-dropdown-content .dash-dropdown-option"):
            chooser.click()
        return len(dash_duo.find_elements(".dash-dropdown-content .dash-dropdown-option")) > 0

    wait_until(open_options, "the pair chooser's options", 20)
    dash_duo.find_element(".dash-dropdown-content .dash-dropdown-option").click()
    wait_until(lambda: "q = " in dash_duo.find_element("#perturbation-pair .pair-significance").text, "the pair's q", 30)
    dash_duo.wait_for_element("#perturbation-pair-figure .barlayer .point", timeout=30)
    assert "features moved at q < 0.05 by either" in dash_duo.find_element("#perturbation-pair").text

    assert dash_duo.get_logs() == [], "browser console errors on the perturbation page"
