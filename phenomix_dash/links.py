"""Links between pages and the URL's query string: one place that knows which parameters travel.

Every page keeps its own view in the URL (``?pert=...&k=...``) so that a link reproduces it. Some
parameters belong to the whole session rather than to one page (the screen being browsed, the gene
set being highlighted): a page that rewrites its query string keeps them, and a link to another page
carries them. Build internal links with :func:`page_href` and rewrite a page's query string with
:func:`merge_search`, never with a bare ``urlencode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

# Parameters that every page keeps and every internal link carries, in this order.
SHARED_PARAMS: tuple[str, ...] = ("screen", "set")


def shared_params(search: str | None) -> dict[str, str]:
    """The session-wide parameters present in a query string (``"?a=1&screen=x"``)."""
    if not isinstance(search, str) or not search:
        return {}
    try:
        pairs = dict(parse_qsl(search.lstrip("?"), keep_blank_values=False, max_num_fields=100))
    except ValueError:  # more fields than any page writes: a crafted query string carries nothing
        return {}
    return {k: pairs[k] for k in SHARED_PARAMS if pairs.get(k)}


def merge_search(current: str | None, own: Mapping[str, object]) -> str:
    """The query string a page writes: its own parameters, plus the shared ones it was opened with.

    A shared parameter the page sets itself in ``own`` wins; ``None``/empty values are dropped.
    """
    params: dict[str, object] = dict(shared_params(current))
    params.update({k: v for k, v in own.items() if v is not None and v != ""})
    return "?" + urlencode(params)


def page_href(path: str, current: str | None = None, **params: object) -> str:
    """A link to ``path`` with ``params``, carrying the shared parameters of ``current`` (the query
    string of the page the link is on) and the screen of the request being served."""
    merged = {**_request_shared(), **shared_params(current)}
    merged.update({k: v for k, v in params.items() if v is not None and v != ""})
    return path + ("?" + urlencode(merged) if merged else "")


def _request_shared() -> dict[str, str]:
    """Shared parameters implied by the request being served: ``screen`` when it is for a screen
    other than the server's default one (links to the default screen stay as they were)."""
    from phenomix_dash import screens

    reg = screens.registry()
    if reg is None:
        return {}
    try:
        name = screens.current_screen(reg)
    except screens.ScreenError:  # an unknown or forbidden screen: its page says so; links go home
        return {}
    return {} if name == reg.default else {"screen": name}
