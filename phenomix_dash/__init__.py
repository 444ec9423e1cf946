"""Phenomix dashboard: a multi-page Dash app over a precompute artifact store."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from threadpoolctl import threadpool_limits

from phenomix.settings import ASSETS_DIR, Settings

from . import cache, data, ids, screens, security
from .auth import install_auth
from .components import navbar, provenance_footer, register_navbar
from .components.screen_switcher import page_path_of_request, screen_switcher
from .links import page_href
from .set_chooser import register as register_sets
from .set_chooser import set_bar

ASSETS = ASSETS_DIR  # the checkout's assets/, or the copy installed with the package
PAGES = Path(__file__).resolve().parent / "pages"


def create_app(settings: Settings | None = None, environ: dict[str, str] | None = None) -> dash.Dash:
    """Build the app for one artifact store, or every store under ``settings.store_root`` (one
    screen each, phenomix_dash/screens.py); pages read the request's screen through `data.get_data()`.

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
    # A function: built per page load, for the screen (and user) of that request.
    app.layout = _layout
    register_sets(app)  # the gene-set chooser's callbacks (its layout is the app's)
    register_navbar(app)  # marks the page being viewed
    security.harden(app)  # before auth: it rejects malformed callback requests dash-auth would choke on
    app.phenomix_auth = install_auth(app, environ)
    _guard_screens(app)  # after auth: it needs the user
    # Dash moves the pages' callbacks into app.callback_map on the first request and marks that
    # done before it finishes: two concurrent first requests to a fresh gunicorn worker then see a
    # half-filled map ("unknown callback"). One request here, in one thread, does it up front.
    app.server.test_client().get("/_dash-dependencies")
    threading.Thread(target=_verify_and_warm, name="phenomix-warm-up", daemon=True).start()
    return app


def limit_blas_for_serving() -> None:
    """One BLAS thread for the whole process, for the processes that serve (app.py, `phenomix serve`,
    gunicorn workers, the callback benchmark).

    Requests already run in parallel (threads, workers), and OpenBLAS's spinning threads on a busy
    2-core machine turned a 60,000 x 128 covariance from 0.4 s into 8-12 s (load 8, measured side by
    side). Not done by `create_app`: the limit is process-wide and outlives the call, so a test or a
    notebook that builds the app would silently run everything after it (a pipeline, its float32
    sums) with other BLAS threads than a fresh process.
    """
    threadpool_limits(1, user_api="blas")


def _layout() -> html.Div:
    """The frame of every page for the request's screen: navbar with its switcher, page, footer."""
    reg = screens.registry()
    current, entries = None, []
    if reg is not None:
        try:
            current = screens.current_screen(reg)
        except screens.ScreenError:
            current = None
        entries = [(n, screens.store_problem(reg.stores[n], reg.run)) for n in screens.visible_screens(reg)]
    try:
        prov = data.get_data().provenance()
    except data.DataUnavailable:
        prov = None
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            navbar(screen_switcher(current, entries, page_path_of_request()), href=page_href),
            set_bar(),  # the gene-set chooser: on every page, its set in the URL
            dbc.Container(dash.page_container, fluid=True),
            dbc.Container(html.Div(provenance_footer(prov), id=ids.PROVENANCE), fluid=True),
        ]
    )


def _guard_screens(app: dash.Dash) -> None:
    """A page load naming a screen that does not exist (404) or is not the user's (403) is answered
    with one line; callbacks are refused the same screens by `data.get_data()`."""
    from flask import Response, request

    @app.server.before_request
    def _check_screen():
        if request.method != "GET" or screens.SCREEN_PARAM not in request.args:
            return None
        reg = screens.registry()
        if reg is None:
            return None
        try:
            screens.current_screen(reg)
        except screens.ScreenError as err:
            return Response(f"{err}.", status=err.status, mimetype="text/plain")
        return None


def _verify_and_warm() -> None:
    """Check small screens against their checksums (a damaged one is then listed unavailable before
    anyone opens it), then warm the pages."""
    reg = screens.registry()
    if reg is not None and len(reg.names) > 1:
        try:
            screens.verify_small_stores(reg)
        except Exception:  # never take the server down; pages verify what they read anyway
            logging.getLogger(__name__).exception("checking the screens failed")
    _warm_pages()


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
