"""The navbar's screen switcher: the screens this user may see, unavailable ones with the reason.

Choosing a screen loads the same page of that screen (``/map?screen=B``) in a full page load, so
every component, cache key and footer of the page is the new screen's; page-specific parameters
(a perturbation, a well) are dropped, since they name things of the old screen.
"""

from __future__ import annotations

from urllib.parse import urlencode

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, html

from phenomix_dash import ids

# Reasons are file paths and checksum messages: the menu shows their start, the title all of it.
_REASON_CHARS = 90


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
    # Only a plain local path is kept (no scheme, no '//host'): the link must stay on this server.
    ok = isinstance(pathname, str) and len(pathname) <= 200 and pathname.startswith("/") \
        and not pathname.startswith("//") and pathname.isprintable()
    path = pathname if ok else "/"
    items = item_ids if isinstance(item_ids, list) else []
    return [screen_href(path, str(i.get("name", ""))[:64] if isinstance(i, dict) else "") for i in items]
