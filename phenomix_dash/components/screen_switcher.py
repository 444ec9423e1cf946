"""The navbar's screen switcher: the screens this user may see, unavailable ones with the reason.

Choosing a screen loads the same page of that screen (``/map?screen=B``) in a full page load, so
every component, cache key and footer of the page is the new screen's; page-specific parameters
(a perturbation, a well) are dropped, since they name things of the old screen.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, html

from phenomix_dash import ids

# Reasons are file paths and checksum messages: the menu shows their start, the title all of it.
_REASON_CHARS = 90


def local_path(pathname: object) -> str:
    """``pathname`` if it is a plain local path (no scheme, no '//host', printable), else "/": a
    switcher link must stay on this server whatever a URL or header said."""
    ok = isinstance(pathname, str) and len(pathname) <= 200 and pathname.startswith("/") \
        and not pathname.startswith("//") and pathname.isprintable()
    return pathname if ok else "/"


def page_path_of_request() -> str:
    """The path of the page the current layout request is for, from its Referer ("/" without one).

    Dash fetches the layout with a request of its own (``/_dash-layout``); its Referer is the page's
    URL (the app sends ``Referrer-Policy: same-origin``). Building the links from it means the switcher
    points at this page from the first render: before, they pointed at "/" until `_follow_page`
    answered, and a click in between (a loaded server answers late) left the page being viewed.
    """
    try:
        from flask import has_request_context, request

        if not has_request_context() or not request.referrer:
            return "/"
        return local_path(urlsplit(request.referrer[:4096]).path)
    except ValueError:
        return "/"


def screen_href(path: str, name: str) -> str:
    """The URL of page ``path`` on screen ``name``."""
    return (path or "/") + "?" + urlencode({"screen": name})


def screen_switcher(current: str | None, entries: list[tuple[str, str | None]], path: str = "/") -> dbc.DropdownMenu | None:
    """A navbar dropdown over ``entries`` ((name, why it is unavailable or None)); None for a server
    of one healthy screen (nothing to switch to)."""
    if not entries or (len(entries) == 1 and entries[0][1] is None):
        return None
    items = []
    for name, problem in entries:
        if problem:
            short = problem if len(problem) <= _REASON_CHARS else problem[:_REASON_CHARS] + "…"
            items.append(dbc.DropdownMenuItem(
                html.Span([html.B(name), f" — unavailable: {short}"], title=problem),
                disabled=True, className="text-wrap small", id={"type": ids.SCREEN_ITEM, "name": name}))
        else:
            items.append(dbc.DropdownMenuItem(name, href=screen_href(path, name), external_link=True,
                                              active=name == current, id={"type": ids.SCREEN_ITEM, "name": name}))
    return dbc.DropdownMenu(items, label=f"Screen: {current}" if current else "Screen", nav=True, in_navbar=True,
                            align_end=True, id=ids.SCREEN_MENU)


@callback(Output({"type": ids.SCREEN_ITEM, "name": ALL}, "href"), Input(ids.URL, "pathname"),
          State({"type": ids.SCREEN_ITEM, "name": ALL}, "id"))
def _follow_page(pathname, item_ids):
    """Keep each screen's link on the page being viewed, as the user moves between pages."""
    path = local_path(pathname)
    items = item_ids if isinstance(item_ids, list) else []
    return [screen_href(path, str(i.get("name", ""))[:64] if isinstance(i, dict) else "") for i in items]
