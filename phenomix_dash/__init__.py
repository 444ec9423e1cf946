"""Phenomix dashboard: a multi-page Dash app over a precompute artifact store."""

from __future__ import annotations

from pathlib import Path

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from . import data, ids
from .components import navbar, provenance_footer
from .settings import Settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PAGES = Path(__file__).resolve().parent / "pages"


def create_app(settings: Settings | None = None) -> dash.Dash:
    """Build the app for one artifact store; pages read it through `data.get_data()`."""
    settings = settings or Settings.from_env()
    data.configure(settings)
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
    return app
