"""Names people recognise, on the built-in REAL screen (#16): the Activity table shows each compound's
common name and MOA beside its Broad id, the Perturbation search finds a compound by its common
name, and the Similarity page (this screen has no genes) opens on a panel that has something."""

from __future__ import annotations

import pytest
from browser_helpers import pick_search_option, wait_until
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser


@pytest.fixture
def app(real_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    return create_app(Settings(store=real_store))


def test_activity_table_shows_common_names(dash_duo, app, real_store):
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(real_store)
    join = d.ground_truth("compound_annotation_join").set_index("compound")["name"]
    act = d.activity()
    best = act.sort_values("mean_average_precision", ascending=False, kind="stable").iloc[0]
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/activity")
    cell = dash_duo.wait_for_element("#activity-grid .ag-row[row-index='0'] [col-id='name']", timeout=40)
    ident = dash_duo.find_element("#activity-grid .ag-row[row-index='0'] [col-id='perturbation']").text
    assert ident.startswith("BRD-") and ident == best["perturbation"]
    assert cell.text and cell.text == join[ident]  # the annotated common name next to the Broad id
    assert dash_duo.find_element("#activity-grid .ag-row[row-index='0'] [col-id='moa']").text
    names = [c.text for c in dash_duo.find_elements("#activity-grid [col-id='name']")[1:]]  # [0]: the header
    assert sum(bool(n) for n in names) >= 0.9 * len(names), names
    assert dash_duo.get_logs() == [], "browser console errors on the activity page"


def test_perturbation_search_finds_a_compound_by_its_common_name(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/perturbation")
    dash_duo.wait_for_element("#perturbation-search", timeout=30)
    dash_duo.find_element("#perturbation-search").click()
    box = dash_duo.wait_for_element(".dash-dropdown-content input.dash-dropdown-search", timeout=10)
    box.send_keys("imatinib")
    pick_search_option(dash_duo, "imatinib · BRD-K92723993 (all doses)")
    wait_until(lambda: "Phenotypic activity" in dash_duo.find_element("#perturbation-summary").text,
               "the compound's summary", timeout=30)
    summary = dash_duo.find_element("#perturbation-summary").text
    assert "imatinib · BRD-K92723993" in summary and "MOA: Bcr-Abl kinase inhibitor" in summary
    WebDriverWait(dash_duo.driver, 10).until(lambda drv: "pert=compound%3ABRD-K92723993" in drv.current_url)
    assert dash_duo.get_logs() == [], "browser console errors on the perturbation page"


def test_similarity_on_a_screen_without_genes_opens_on_compounds(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.wait_for_page(url=dash_duo.server_url + "/similarity")
    dash_duo.wait_for_element("#similarity-heatmap .heatmaplayer", timeout=40)
    wait_until(lambda: "Showing" in dash_duo.find_element("#similarity-note").text, "the block's note", timeout=30)
    assert "compound" in dash_duo.find_element("#similarity-note").text
    cells = dash_duo.driver.execute_script(
        "const g = document.querySelector('#similarity-heatmap .js-plotly-plot');"
        "const h = g && g._fullData.find(t => t.type === 'heatmap'); return h ? h.z.length * h.z[0].length : 0;")
    assert cells > 0, "the panel shown has cells"
    # The gene panels are offered greyed, with the reason.
    kinds = dash_duo.find_element("#similarity-kind").text
    assert "gene × compound (this screen has no genes)" in kinds
    checked = dash_duo.driver.execute_script("return document.querySelector('#similarity-kind input:checked').value")
    assert checked == "compound_compound"
    # Axis labels carry the names.
    ticks = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll('#similarity-heatmap .ytick text')).map(t => t.textContent)")
    assert any(" · BRD-" in t for t in ticks), ticks[:5]
    assert dash_duo.get_logs() == [], "browser console errors on the similarity page"
