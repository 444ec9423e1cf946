"""Server start warms the pages' caches in the background, and a failing warm-up never stops the app."""

from __future__ import annotations

import logging
import sys
import threading


def _wait_for_warm_up() -> None:
    for t in threading.enumerate():
        if t.name == "phenomix-warm-up":
            t.join(timeout=120)


def test_start_draws_the_map_once_so_the_first_visitor_finds_it_cached(tiny_store, monkeypatch):
    from phenomix_dash import create_app
    from phenomix_dash.settings import Settings

    create_app(Settings(store=tiny_store))
    map_page = sys.modules["phenomix_dash.pages.map"]
    calls = []
    real = map_page.map_update
    monkeypatch.setattr(map_page, "map_update", lambda *a, **k: calls.append(a[1:4]) or real(*a, **k))
    _wait_for_warm_up()
    map_page.warm_up()  # what the thread ran: the page's default first view
    assert calls == [("wells", "both", "perturbation_type")]


def test_a_failing_warm_up_is_logged_not_raised(tiny_store, monkeypatch, caplog):
    from phenomix_dash import _warm_pages, create_app
    from phenomix_dash.settings import Settings

    create_app(Settings(store=tiny_store))
    _wait_for_warm_up()

    map_page = sys.modules["phenomix_dash.pages.map"]

    def boom() -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(map_page, "warm_up", boom)
    with caplog.at_level(logging.ERROR):
        _warm_pages()
    assert "warm-up of page /map failed" in caplog.text
