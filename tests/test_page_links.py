"""The session-wide parts of every view (#16), called as plain functions on the tiny store: each page's
URL keeps the screen and gene set it was opened with, links carry them, pages that show one
perturbation or well say whether it is in the chosen set, the navbar marks the page on any screen,
and a selection's perturbations download as CSV."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
from page_helpers import page

from phenomix_dash.selection import encode_region, point_coordinates, selected_well_rows

SET_LINK = "ann:complex:{}"


@pytest.fixture(scope="module")
def key(app_data) -> str:
    """An annotation set of the tiny screen (a complex)."""
    from phenomix_dash import set_data

    complexes = sorted(set_data.screen_sets(app_data).get("complex", {}))
    assert complexes, "the tiny screen has annotated complexes"
    return SET_LINK.format(complexes[0])


@pytest.fixture(scope="module")
def members(app_data, key) -> set[str]:
    from phenomix_dash.set_data import member_pert_ids

    m = member_pert_ids(app_data, key)
    assert m, "the set has members on this screen"
    return m


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_every_page_keeps_screen_and_set_when_it_writes_its_url(app_data, key):
    d = app_data
    current = "?" + "&".join(["screen=beta", f"set={key}", "old=1"])
    well = str(d.wells["well_id"].iloc[0])
    pert = str(d.perturbations()["pert_id"].iloc[0])
    plate = str(d.wells["plate"].iloc[0])
    written = {
        "overview": page("overview").sync_url(plate, well, current),
        "activity": page("activity").sync_url(["crispr"], ["active"], "", "raw", "ecdf", current),
        "perturbation": page("perturbation").sync_url(pert, 20, plate, current),
        "images": page("images").sync_url(well, 1, 0.5, current),
    }
    own = {"overview": {"plate": [plate], "well": [well]},
           "activity": {"types": ["crispr"], "active": ["1"], "space": ["raw"], "kind": ["ecdf"]},
           "perturbation": {"pert": [pert], "k": ["20"], "plate": [plate]},
           "images": {"well": [well], "site": ["2"], "ratio": ["0.5"]}}
    for name, url in written.items():
        q = _query(url)
        assert q.pop("screen") == ["beta"] and q.pop("set") == [key], (name, url)
        assert q == own[name], (name, url)  # its own view, and nothing of the previous page's


def test_a_crafted_query_string_carries_nothing_and_raises_nothing(app_data):
    crafted = "?" + "&".join(f"k{i}=v" for i in range(500))
    well = str(app_data.wells["well_id"].iloc[0])
    assert page("images").sync_url(well, 0, 0.75, crafted) == f"?well={well}&site=1"
    for junk in (None, 3, ["?screen=x"], {"screen": "x"}):
        assert page("images").sync_url(well, 0, 0.75, junk) == f"?well={well}&site=1"


def test_activity_links_to_a_perturbation_keep_screen_and_set(app_data, key):
    a = page("activity")
    pid = str(a.ranked_table(app_data)["pert_id"].iloc[0])
    href = a.open_perturbation({"rowId": pid}, f"?screen=beta&set={key}&types=crispr")
    assert urlsplit(href).path == "/perturbation"
    assert _query(href) == {"pert": [pid], "screen": ["beta"], "set": [key]}  # not the Activity page's filters
    assert a.pert_href(pid) == a.open_perturbation({"rowId": pid}) == "/perturbation?" + f"pert={pid.replace(':', '%3A')}"


def test_activity_table_marks_the_sets_members(app_data, key, members):
    a = page("activity")
    rows, count, _ = a.update_table([], [], "", key)
    marked = {r["pert_id"] for r in rows if r["in_set"]}
    assert marked == {r["pert_id"] for r in rows} & members and marked
    assert all(r["in_set"] is None for r in rows if r["pert_id"] not in members)  # blank, not False
    assert f"{len(marked):,} in set complex" in count
    rows, count, _ = a.update_table([], [], "", None)
    assert not any(r["in_set"] for r in rows) and "in set" not in count
    rows_junk, _, _ = a.update_table([], [], "", "ann:complex:NO_SUCH_COMPLEX")  # said by the bar, not here
    assert len(rows_junk) == len(rows) and not any(r["in_set"] for r in rows_junk)


def test_perturbation_and_images_pages_say_whether_it_is_in_the_set(app_data, key, members):
    from phenomix_dash.set_data import member_well_ids

    P, Img = page("perturbation"), page("images")
    member = sorted(members)[0]
    other = next(p for p in app_data.perturbations()["pert_id"].astype(str) if p not in members)
    assert str(P.show_membership(member, key).children).startswith("in set complex")
    assert str(P.show_membership(other, key).children).startswith("not in set")
    well_in = sorted(member_well_ids(app_data, key))[0]
    well_out = next(w for w in app_data.wells["well_id"].astype(str) if w not in member_well_ids(app_data, key))
    assert str(Img.show_membership(well_in, key).children).startswith("in set complex")
    assert str(Img.show_membership(well_out, key).children).startswith("not in set")
    # No set, a set not on this screen, no perturbation or crafted values: nothing is said.
    for args in ((member, None), (member, "ann:complex:NO_SUCH"), (None, key), ({"a": 1}, key), (member, ["x"])):
        assert P.show_membership(*args) is None and Img.show_membership(*args) is None


def test_navbar_marks_the_page_being_viewed_on_any_screen(app_data):
    import dash

    from phenomix_dash.components import active_links, navbar
    from phenomix_dash.ids import NAV_LINK

    ids = [{"type": NAV_LINK, "path": p} for p in ("/", "/map", "/sets")]
    assert active_links("/map", ids) == [False, True, False]
    assert active_links("/", ids) == [True, False, False]
    assert active_links(None, ids) == [False] * 3 and active_links("/map", "junk") == []
    # The links carry ?screen= (their href is not the path), so the mark cannot come from the href.
    bar = str(navbar(href=lambda p: p + "?screen=beta"))
    paths = [p["relative_path"] for p in dash.page_registry.values() if not p.get("hidden")]
    assert all(f"'path': '{p}'" in bar and f"{p}?screen=beta" in bar for p in paths)


def test_a_selection_downloads_its_perturbations_as_csv(app_data):
    from dash import no_update

    download = page("map").download_selection_perturbations
    d = app_data
    xy = point_coordinates(d, "wells", "aligned")
    a, b = np.percentile(xy, 10, axis=0), np.percentile(xy, 60, axis=0)
    sel = encode_region("aligned", np.array([[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]]))
    rows = selected_well_rows(d, "wells", sel)
    sent = download(1, sel, "wells")
    assert sent["filename"] == "phenomix_selection_perturbations.csv"
    t = pd.read_csv(io.StringIO(sent["content"]))
    assert {"pert_id", "perturbation", "perturbation_type", "wells_selected", "wells_total", "fraction_selected"} <= set(t.columns)
    assert t["wells_selected"].sum() == rows.size and t["pert_id"].is_unique  # every selected well, once
    w = d.wells.iloc[rows]
    assert len(t) == len(w.groupby(["perturbation_type", "perturbation"]))
    assert (t["wells_selected"] <= t["wells_total"]).all() and np.allclose(t["fraction_selected"], t["wells_selected"] / t["wells_total"])
    for junk in ((None, sel, "wells"), (1, None, "wells"), (1, {"x": 1}, "wells"), (1, "raw:nonsense", ["wells"])):
        assert download(*junk) is no_update
