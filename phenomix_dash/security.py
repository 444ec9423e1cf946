"""Input validation for callbacks and URLs, plus the hardening every Phenomix server gets.

Pages call the small helpers (`safe_id`, `bounded_list`, `parse_query`, `safe_int`, ...) on
everything a browser sends: a callback's inputs come from the network and may be anything
JSON can say. The helpers never raise; they return None/defaults so a page can show a plain
message instead of a traceback.

`harden(app)` adds, for the whole app: a size limit on requests, a structural check of callback
requests (unknown callbacks, wrong shapes, wrong counts: 400 with a one-line reason), a global
callback error handler (a crashing callback is logged server-side and answered with 204, never
with a traceback), guarded page layouts (query strings sanitised; a layout that fails shows a
message), plain 404/500 pages, and security headers.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger("phenomix_dash")

MAX_ID_LEN = 256
MAX_QUERY_LEN = 4096
MAX_LIST = 10_000
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # figures sent back as State can be a few MB
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_QUERY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Dash renders from inline config and Plotly needs eval; what this still buys: nothing is
    # loaded from, or sent to, another origin, and no other site can frame the dashboard.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
        "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'self'"
    ),
}


# -- helpers for pages ---------------------------------------------------------------------------
def safe_str(value: Any, max_len: int = MAX_ID_LEN) -> str | None:
    """A string of at most ``max_len`` characters without control characters, else None."""
    if not isinstance(value, str) or len(value) > max_len or _CONTROL.search(value):
        return None
    return value


def safe_id(value: Any, allowed: Iterable[str] | Callable[[str], bool] | None = None,
            max_len: int = MAX_ID_LEN) -> str | None:
    """``value`` if it is a plausible identifier that ``allowed`` knows (a set, or a predicate
    such as ``data.well_index.__contains__``), else None. Never raises."""
    s = safe_str(value, max_len)
    if s is None or allowed is None:
        return s
    try:
        ok = allowed(s) if callable(allowed) else s in allowed
    except Exception:  # a predicate that fails on odd input says no
        return None
    return s if ok else None


def safe_choice(value: Any, choices: Iterable[Any], default: Any = None) -> Any:
    """``value`` if it is one of ``choices`` (hashable scalars), else ``default``."""
    if isinstance(value, (list, dict, set)):
        return default
    try:
        return value if value in set(choices) else default
    except TypeError:
        return default


def safe_int(value: Any, lo: int, hi: int, default: int | None = None) -> int | None:
    """An integer within [lo, hi] (numeric strings accepted), else ``default``."""
    if isinstance(value, bool):
        return default
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    if not math.isfinite(f) or f != int(f):
        return default
    i = int(f)
    return i if lo <= i <= hi else default


def bounded_list(values: Any, max_len: int = MAX_LIST,
                 allowed: Iterable[str] | Callable[[str], bool] | None = None) -> list:
    """A list of at most ``max_len`` scalars (str/int/float, strings checked as `safe_id` with
    ``allowed``); anything else (None, a dict, nested lists) is dropped. A single scalar becomes
    a one-element list. Longer input is cut, not refused."""
    if values is None:
        return []
    if isinstance(values, (str, int, float)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)):
        return []
    out: list = []
    allowed_set = None if allowed is None or callable(allowed) else set(allowed)
    for v in values[: max_len * 2]:
        if isinstance(v, str):
            v = safe_id(v, allowed if callable(allowed) else allowed_set)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            v = None
        if v is not None:
            out.append(v)
            if len(out) >= max_len:
                break
    return out


def click_value(click: Any, key: str = "customdata", index: int = 0) -> Any:
    """The ``key`` of the ``index``-th point of Plotly clickData/selectedData, or None."""
    try:
        point = click["points"][index]
        return point.get(key) if isinstance(point, dict) else None
    except (TypeError, KeyError, IndexError, AttributeError):
        return None


def parse_query(search: Any, allowed_keys: Iterable[str] | None = None,
                max_value_len: int = MAX_ID_LEN) -> dict[str, str]:
    """``?a=1&b=x`` -> {'a': '1', 'b': 'x'}: first value of each key; keys not plain names, values
    too long or with control characters, and keys outside ``allowed_keys`` are dropped. Never raises."""
    if not isinstance(search, str) or len(search) > MAX_QUERY_LEN:
        return {}
    qs = search[1:] if search.startswith("?") else search
    try:
        parsed = parse_qs(qs, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        return {}
    keys = set(allowed_keys) if allowed_keys is not None else None
    out: dict[str, str] = {}
    for k, vals in parsed.items():
        if not _QUERY_KEY.match(k) or (keys is not None and k not in keys):
            continue
        v = safe_str(vals[0], max_value_len) if vals else None
        if v is not None:
            out[k] = v
    return out


def sanitise_query_args(kwargs: dict[str, Any], max_value_len: int = MAX_ID_LEN) -> tuple[dict[str, str], list[str]]:
    """Layout keyword arguments from a URL -> (clean kwargs, names dropped). Repeated keys keep
    their first value."""
    clean: dict[str, str] = {}
    dropped: list[str] = []
    for k, v in kwargs.items():
        if isinstance(v, list):
            v = v[0] if v else None
        s = safe_str(v, max_value_len) if _QUERY_KEY.match(str(k)) else None
        if s is None:
            dropped.append(str(k)[:40])
        else:
            clean[k] = s
    return clean, dropped


def private_dir(path: str | os.PathLike) -> Path:
    """Create (or tighten) a folder only its owner can read: caches may hold screen data."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o700)
    return p


# -- the app-wide layer --------------------------------------------------------------------------
def callback_error_handler(err: Exception) -> None:
    """Dash's global on_error: log the failure with its inputs server-side, send nothing (204)."""
    try:
        from flask import request

        body = request.get_json(silent=True) or {}
        where = f"{str(body.get('output'))[:200]} (changed: {str(body.get('changedPropIds'))[:200]})"
    except Exception:
        where = "?"
    log.error("callback failed (%s: %.300s) for %s", type(err).__name__, err, where, exc_info=err)
    return None


def _valid_prop(item: Any) -> bool:
    return (isinstance(item, dict) and isinstance(item.get("property"), str)
            and isinstance(item.get("id"), (str, dict)) and len(item["property"]) <= 100)


def _valid_prop_list(items: Any, declared: list) -> str | None:
    if not isinstance(items, list):
        return "must be a list"
    if len(items) != len(declared):
        return f"has {len(items)} entries, the callback takes {len(declared)}"
    for item, want in zip(items, declared):
        if isinstance(item, list):  # pattern-matching (ALL/ALLSMALLER): a list of matches
            if len(item) > MAX_LIST or not all(_valid_prop(i) for i in item):
                return "has a malformed pattern-matching entry"
            continue
        if not _valid_prop(item):
            return "has a malformed entry"
        if isinstance(item["id"], str) and (item["id"] != want.get("id") or item["property"] != want.get("property")):
            return f"names {item['id'][:60]!r}.{item['property'][:30]!r}, not what the callback declares"
    return None


def check_callback_request(body: Any, callback_map: dict) -> str | None:
    """Why a /_dash-update-component body is malformed (one line), or None when it is fine."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or len(output) > 2000:
        return "'output' must be a string"
    cb = callback_map.get(output)
    if cb is None or cb.get("callback") is None:  # clientside callbacks have no server function
        return "unknown callback"
    outputs = body.get("outputs")
    if outputs is not None and not (_valid_prop(outputs) or (isinstance(outputs, list) and all(
            _valid_prop(o) or (isinstance(o, list) and all(_valid_prop(x) for x in o)) for o in outputs))):
        return "'outputs' is malformed"
    for key, declared in (("inputs", cb.get("inputs", [])), ("state", cb.get("state", []))):
        problem = _valid_prop_list(body.get(key, []), declared)
        if problem:
            return f"'{key}' {problem}"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) and len(c) < 2000 for c in changed):
        return "'changedPropIds' must be a list of strings"
    return None


def guard_layout(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a page's layout(**query) so junk URL state is dropped and a failure is a message."""
    if getattr(fn, "_phenomix_guarded", False) or not callable(fn):
        return fn

    @functools.wraps(fn)
    def layout(**kwargs: Any) -> Any:
        from phenomix_dash.components import message

        clean, dropped = sanitise_query_args(kwargs)
        try:
            page = fn(**clean)
        except Exception as err:
            log.error("page layout %s failed for %r: %s", getattr(fn, "__module__", "?"), clean, err, exc_info=err)
            return message("This page could not be built from the link's parameters; "
                           "open it from the menu instead.")
        if dropped:
            from dash import html

            note = message(f"Ignored URL parameter(s) {', '.join(dropped[:5])}: not valid here.", "light")
            return html.Div([note, page])
        return page

    layout._phenomix_guarded = True  # type: ignore[attr-defined]
    return layout


def harden(app: Any) -> None:
    """Install the app-wide protections on a Dash app (call once, after pages are registered)."""
    import dash
    from dash.exceptions import DependencyException, InvalidResourceError
    from flask import Response, request
    from werkzeug.exceptions import HTTPException, InternalServerError

    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    for page in dash.page_registry.values():
        page["layout"] = guard_layout(page["layout"])

    @server.before_request
    def _check_callback_request():
        if request.path.endswith("/_dash-update-component") and request.method == "POST":
            try:
                body = request.get_json(silent=True)
            except RecursionError:  # absurdly deep JSON nesting
                body = None
            problem = check_callback_request(body, app.callback_map)
            if problem:
                return Response(f"Bad callback request: {problem}.", status=400, mimetype="text/plain")
        return None

    @server.after_request
    def _headers(resp):
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        if request.path.endswith("/_dash-update-component"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.errorhandler(InvalidResourceError)
    @server.errorhandler(DependencyException)
    def _not_found(_err):  # Dash's own messages list every registered file
        return Response("Not found.", status=404, mimetype="text/plain")

    @server.errorhandler(HTTPException)
    def _http_error(err):
        resp = err.get_response()  # keeps Location, Allow, WWW-Authenticate ...
        if (err.code or 500) >= 400:  # a plain line instead of Werkzeug's HTML page
            resp.set_data(f"{err.code} {err.name}.")
            resp.mimetype = "text/plain"
        return resp

    @server.errorhandler(InternalServerError)
    def _server_error(err):
        original = getattr(err, "original_exception", None)
        log.error("request %s %s failed: %r", request.method, request.path[:200], original, exc_info=original)
        return Response("Internal error; the server log has the details.", status=500, mimetype="text/plain")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    import ipaddress

    h = host.strip("[]")
    if h in ("localhost", ""):
        return h == "localhost"
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, auth_mode: str | None) -> str | None:
    """The loud warning for a dashboard reachable from other machines without authentication."""
    if is_loopback(host):
        return None
    if auth_mode:
        if auth_mode == "header":
            return (f"NOTE: serving on {host} trusting the header in PHENOMIX_TRUST_HEADER: only safe when the "
                    "reverse proxy that sets it is the only way to reach this port (bind 127.0.0.1 behind it).")
        return None
    return (f"WARNING: Phenomix is serving on {host} WITHOUT AUTHENTICATION: anyone who can reach this address "
            "can read the whole screen. Bind 127.0.0.1, or set PHENOMIX_AUTH_FILE (basic auth) or "
            "PHENOMIX_TRUST_HEADER (behind an authenticating reverse proxy); see docs/team.md.")
