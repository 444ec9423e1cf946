"""Server start warms the pages' caches in the background, and a failing warm-up never stops the app."""

from __future__ import annotations

import logging
import sys
import threading


def _wait_for_warm_up() -> None:
    for t in threading.enumerate():
        if t.name == "phenomix-warm-up":
            t.join(timeout=120)


def _caches(*modules) -> list:
    """The memoized functions (phenomix_dash.cache) in ``modules``."""
    return [f for m in modules for f in vars(m).values()
            if callable(getattr(f, "cache_info", None)) and callable(getattr(f, "cache_clear", None))]


def test_start_draws_the_map_once_so_the_first_visitor_finds_it_cached(tiny_store):
    import phenomix_dash.map_views as map_views
    import phenomix_dash.selection as selection
    from phenomix.settings import Settings
    from phenomix_dash import create_app
    from phenomix_dash.data import get_data

    _wait_for_warm_up()  # an earlier test's app must not fill the caches behind our back
    for f in _caches(selection, map_views):
        f.cache_clear()  # earlier tests in this process may have drawn the map already
    create_app(Settings(store=tiny_store))  # the page module (and its own caches) is loaded afresh
    map_page = sys.modules["phenomix_dash.pages.map"]
    _wait_for_warm_up()
    caches = _caches(selection, map_views, map_page)
    warmed = [f.cache_info() for f in caches]
    assert sum(i.currsize for i in warmed) > 0, "nothing was cached at start"
    # The first visitor's view (the page's defaults): every cached step must be a hit, none computed.
    map_page.map_update(get_data(), *map_page.clean_state(None, None, None)[:3], None, None, None, set(), wire=True)
    visited = [f.cache_info() for f in caches]
    recomputed = {f.__name__: v.misses - w.misses for f, w, v in zip(caches, warmed, visited) if v.misses > w.misses}
    assert recomputed == {}, f"the first visitor recomputed {recomputed}"
    assert sum(v.hits - w.hits for w, v in zip(warmed, visited)) > 0


def test_a_failing_warm_up_is_logged_not_raised(tiny_store, monkeypatch, caplog):
    from phenomix.settings import Settings
    from phenomix_dash import _warm_pages, create_app

    create_app(Settings(store=tiny_store))
    _wait_for_warm_up()

    map_page = sys.modules["phenomix_dash.pages.map"]

    def boom() -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(map_page, "warm_up", boom)
    with caplog.at_level(logging.ERROR):
        _warm_pages()
    assert "warm-up of page /map failed" in caplog.text


def test_page_load_reads_annotations_without_opening_the_wells_table(tiny_store):
    """The frame of every page reads the screen's annotation tables (gene-set chooser); opening the
    whole screen validates its wells table, ~25 s at a million wells, before the first page."""
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(tiny_store)
    targets = d.ground_truth("compound_targets")
    assert targets is not None and len(targets) > 0
    assert "screen" not in d.__dict__, "reading an annotation table opened (and validated) the whole screen"
    assert d.ground_truth("no_such_table") is None
    assert d.screen.ground_truth("compound_targets").equals(targets)  # the same table as through the screen


def test_building_the_app_leaves_the_process_blas_threads_alone(tiny_store):
    """The one-BLAS-thread limit is the serving processes' (app.py, gunicorn): building the app in a
    test or notebook must not change how everything after it multiplies (a pipeline run in the same
    process then summed float32 in another order than a fresh process and its artifacts differed)."""
    from threadpoolctl import threadpool_info

    from phenomix.settings import Settings
    from phenomix_dash import create_app

    before = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
    create_app(Settings(store=tiny_store))
    _wait_for_warm_up()
    assert [(p["internal_api"], p["num_threads"]) for p in threadpool_info()] == before
