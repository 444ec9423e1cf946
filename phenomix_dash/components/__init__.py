"""Small layout pieces shared by pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, html

from phenomix_dash.ids import NAV_LINK, URL


def navbar(screen_menu: Any = None, href: Callable[[str], str] = str) -> dbc.Navbar:
    """Top bar built from the page registry, in registration order; ``href`` turns a page's path
    into its link (create_app: links.page_href, which carries the screen), ``screen_menu`` (the
    screen switcher) sits at its right. The page being viewed is marked by `active_links`: the
    NavLink's own active="exact" compares the whole href, which holds ``?screen=`` on a
    non-default screen, with the path alone, so it would mark nothing there."""
    links = [
        dbc.NavItem(dbc.NavLink(page["name"], href=href(page["relative_path"]),
                                id={"type": NAV_LINK, "path": page["relative_path"]}))
        for page in dash.page_registry.values()
        if not page.get("hidden")
    ]
    if screen_menu is not None:
        links.append(screen_menu)
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("Phenomix", href=href("/"), className="fw-bold"),
                dbc.Nav(links, navbar=True, className="me-auto"),
            ],
            fluid=True,
        ),
        color="primary",
        dark=True,
        className="mb-3",
    )


def active_links(pathname: object, link_ids: object) -> list[bool]:
    """For each navbar link (its pattern id), whether it is the page at ``pathname``."""
    items = link_ids if isinstance(link_ids, list) else []
    return [isinstance(i, dict) and isinstance(pathname, str) and i.get("path") == pathname for i in items]


def register_navbar(app: dash.Dash) -> None:
    """Mark the page being viewed in ``app``'s navbar as the user moves between pages (create_app
    calls it: the navbar is the app's layout, not a page's, so its callback belongs to each app)."""
    app.callback(Output({"type": NAV_LINK, "path": ALL}, "active"), Input(URL, "pathname"),
                 State({"type": NAV_LINK, "path": ALL}, "id"))(active_links)


def message(text: str, kind: str = "warning") -> dbc.Alert:
    """A plain message in place of a view that cannot be shown (never a traceback)."""
    return dbc.Alert(text, color=kind, className="my-2")


def provenance_footer(info: dict[str, Any] | None) -> html.Footer:
    """What produced every view: screen, embedder and checkpoint, alignment, artifact versions."""
    if not info:
        return html.Footer("No artifact store loaded.", className="text-muted small mt-4")
    primary = info.get("primary") or {}
    parts = [
        f"screen: {info.get('screen')}",
        f"embedder: {primary.get('embedder', '—')}",
        f"alignment: {primary.get('align', '—')}",
    ]
    if info.get("checkpoint"):
        parts.append(f"checkpoint: {info['checkpoint']}")
    block = primary.get("mae_block") or {}
    if block.get("chosen"):
        best = " (best of every block on this screen's annotations)" if block.get("scored") else (
            f" ({block['how']})" if block.get("how") else "")
        wise = ", channel-wise" if block.get("channelwise") else ""
        parts.append(f"MAE block: {block['chosen']} of {block.get('depth')}{best}{wise}")
    parts.append(f"run: {info.get('run')} ({info.get('finished') or 'unfinished'})")
    keys = []
    for stage, node in (info.get("stages") or {}).items():
        if isinstance(node, str):
            keys.append(f"{stage}-{node[:8]}")
    return html.Footer(
        [html.Span(" · ".join(parts)), html.Br(), html.Span("artifacts: " + ", ".join(keys), className="font-monospace")],
        className="text-muted small mt-4 border-top pt-2",
    )
