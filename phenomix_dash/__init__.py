"""Phenomix dashboard: a multi-page Dash app over a precompute artifact store."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from phenomix.settings import ASSETS_DIR, Settings

from . import cache, data, ids, security
from .auth import install_auth
from .components import navbar, provenance_footer

ASSETS = ASSETS_DIR  # the checkout's assets/, or the copy installed with the package
PAGES = Path(__file__).resolve().parent / "pages"


def create_app(settings: Settings | None = None, environ: dict[str, str] | None = None) -> dash.Dash:
    """Build the app for one artifact store; pages read it through `data.get_data()`.

    Authentication comes from PHENOMIX_AUTH_FILE / PHENOMIX_TRUST_HEADER in ``environ`` (default
    os.environ); the mode installed is ``app.phenomix_auth`` (None: no authentication).
    """
    settings = settings or Settings.from_env()
    data.configure(settings)
    shared = cache.disk_cache()  # PHENOMIX_HOME/cache/dashboard unless configured before
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder=str(PAGES),
        assets_folder=str(ASSETS),
        # Bootswatch Flatly is served from assets/ (no CDN: the app must work offline).
        serve_locally=True,
        # Maps at screen scale are megabytes of JSON: gzip/brotli them (flask-compress).
        compress=True,
        suppress_callback_exceptions=True,
        title="Phenomix",
        # A callback that raises is logged server-side and answered with "no update", never
        # with a traceback; pages still validate their inputs and show plain messages.
        on_error=security.callback_error_handler,
        # Exports run as background callbacks: in a child process, off the worker's threads, with
        # their results passed back through the dashboard's shared disk cache.
        background_callback_manager=_background_manager(str(shared.directory)),
    )
    try:
        prov = data.get_data().provenance()
    except data.DataUnavailable:
        prov = None
    app.layout = html.Div(
        [
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            navbar(),
            dbc.Container(dash.page_container, fluid=True),
            dbc.Container(html.Div(provenance_footer(prov), id=ids.PROVENANCE), fluid=True),
        ]
    )
    security.harden(app)  # before auth: it rejects malformed callback requests dash-auth would choke on
    app.phenomix_auth = install_auth(app, environ)
    # Dash moves the pages' callbacks into app.callback_map on the first request and marks that
    # done before it finishes: two concurrent first requests to a fresh gunicorn worker then see a
    # half-filled map ("unknown callback"). One request here, in one thread, does it up front.
    app.server.test_client().get("/_dash-dependencies")
    threading.Thread(target=_warm_pages, name="phenomix-warm-up", daemon=True).start()
    return app


@cache.memoize(None)
def _background_manager(directory: str) -> dash.DiskcacheManager:
    """One manager per cache folder and process: Dash registers every background callback with
    every manager ever made, so a new one per app would pile up."""
    return dash.DiskcacheManager(cache.disk_cache())


def _warm_pages() -> None:
    """Let pages fill their per-process caches (a page module's ``warm_up``) in the background, so
    the first visitor after a start does not pay for them."""
    for page in list(dash.page_registry.values()):
        warm = getattr(sys.modules.get(page.get("module", "")), "warm_up", None)
        if callable(warm):
            try:
                warm()
            except Exception:  # a warm-up must never take the server down
                logging.getLogger(__name__).exception("warm-up of page %s failed", page.get("path"))
