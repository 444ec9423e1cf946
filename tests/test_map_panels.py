"""A clicked perturbation's side panel links to the images of one of its own wells."""

from __future__ import annotations

from page_helpers import page

from phenomix_dash.map_panels import first_wells


def _hrefs(component) -> list[str]:
    out = [getattr(component, "href", None)] if getattr(component, "href", None) else []
    kids = getattr(component, "children", None)
    for k in kids if isinstance(kids, list) else [kids] if kids is not None else []:
        out += _hrefs(k)
    return out


def test_a_perturbation_panel_links_to_the_images_of_its_first_well(app_data):
    d, m = app_data, page("map")
    perts = d.perturbations()
    r = perts.iloc[3]
    panel = m.point_panel(d, "perturbations", str(r["pert_id"]))
    wells = d.wells[(d.wells["perturbation_type"] == r["perturbation_type"]) & (d.wells["perturbation"] == r["perturbation"])]
    images = [h for h in _hrefs(panel) if "images" in h]
    assert len(wells) and images and str(wells["well_id"].iloc[0]) in images[0]
    assert first_wells(d)[(str(r["perturbation_type"]), str(r["perturbation"]))] == wells["well_id"].iloc[0]
