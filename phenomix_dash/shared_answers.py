"""Whole callback answers shared by every gunicorn worker: one computes, the others read it back.

Under the 50-user load test at the million-well store the server, not the network, was the limit:
2 cores answered ~20 requests/s while the users asked for ~80, because every request recomputed
(and re-serialised, re-hashed) an answer some worker had already given. Most of what users ask
for is the same few views of a read-only store (the default maps, a popular perturbation's
neighbours, the most-active heatmap block). So the answers of callbacks that are pure functions of
their request (what the browser sent, the screen and the store) are kept, compressed as they were
sent, on disk where every worker reads them (`answers_cache`); a repeat, from any worker, is a key
lookup and a file read instead of the callback, its JSON and its compression.

What makes an answer shareable is declared next to its callback with `shareable` (the callback's
first output): only callbacks that read nothing but their inputs and states, the screen's data
and the request's screen (never the user, the Referer's page, the time or randomness) and start
no job. The key holds the request body byte for byte, the screen the request resolved to and the
name it asked for, the store's identity (path, run, stage keys, finish time: a rebuilt store is a
miss) and the dashboard's code version, and the encoding sent; so a different question can never
get this answer. They are kept in their own folder inside the shared cache's (`cache.disk_cache`),
with their own size bound (least recently stored go first), so a burst of large answers cannot
push out the memoized tables and figures the workers share. A request is only looked up after
authentication and the screen check have let it through (a forbidden or unavailable screen is
answered by Dash as before, never from here), and only 200 answers are kept.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

from . import cache, data, screens
from .compressed_answers import chosen_encoding

log = logging.getLogger(__name__)
UPDATE_PATH = "/_dash-update-component"
MAX_BODY_BYTES = 64 * 1024  # a larger request (a long pasted list) is answered by Dash as usual
SIZE_LIMIT_BYTES = 512 * 2**20  # the answers' folder; the maps are 1-3 MB compressed at a million wells
_shareable: set[str] = set()


def shareable(component_id: str, prop: str) -> None:
    """Declare that the callback whose first output is ``component_id.prop`` is a pure function of
    its request, its screen and the store (see the module docstring), so its answers may be shared."""
    _shareable.add(f"{component_id}.{prop}")


def first_output(output: Any) -> str | None:
    """'a.figure' or '..a.figure...b.data..' (Dash's request field) -> 'a.figure'."""
    if not isinstance(output, str):
        return None
    if output.startswith(".."):
        return output[2:].split("...", 1)[0].rstrip(".") or None
    return output


class SharedAnswers:
    """What happened to this process's shareable requests (hits, misses, stored, skipped); the
    answers themselves live in `answers_cache`."""

    def __init__(self) -> None:
        self.hits = self.misses = self.stored = self.skipped = 0
        self._lock = threading.Lock()

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "stored": self.stored, "skipped": self.skipped}


def answer_key(body: bytes, screen: str, requested: str | None, identity: tuple[str, ...],
               encoding: str | None) -> str:
    """The shared cache's key of one answer (hex digest)."""
    h = hashlib.sha256()
    for part in ("shared-answer", cache.CODE_VERSION, screen, requested or "", repr(identity), encoding or "identity"):
        h.update(part.encode())
        h.update(b"\0")
    h.update(body)
    return "answer:" + h.hexdigest()


def _request_key(request: Any) -> str | None:
    """The key of this request's answer, or None when it is not one to share."""
    if request.method != "POST" or request.path != UPDATE_PATH:
        return None
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return None
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or first_output(payload.get("output")) not in _shareable:
        return None
    reg = screens.registry()
    if reg is None:
        return None
    try:
        name = screens.current_screen(reg)  # the user's screens: a forbidden one raises here
        d = data.get_data(name)  # an unavailable screen raises: Dash answers it as before
    except (screens.ScreenError, data.DataUnavailable):
        return None
    return answer_key(request.get_data(cache=True), name, screens.requested_screen(), cache.store_identity(d),
                      chosen_encoding(request.headers.get("Accept-Encoding")))


def answers_cache(size_limit: int = SIZE_LIMIT_BYTES) -> Any:
    """The `diskcache.Cache` of shared answers: ``answers/`` inside the dashboard's shared cache folder."""
    import diskcache

    from .security import private_dir

    directory = Path(cache.disk_cache().directory) / "answers"
    private_dir(directory)  # answers are screen data: owner only
    return diskcache.Cache(str(directory), size_limit=size_limit)


def install(server: Any, size_limit: int = SIZE_LIMIT_BYTES) -> SharedAnswers:
    """Answer ``server``'s (the Dash app's Flask server) shareable callbacks from the shared cache.

    Call after authentication is installed (create_app does that): Flask runs before_request hooks in
    the order they were added, so the lookup comes after the user and the screen are checked. The
    answer is stored by an after_request hook that runs after every other (compression included),
    so what is kept is what was sent.
    """
    from flask import Response, g, request

    shared = SharedAnswers()
    store = answers_cache(size_limit)

    def _lookup():
        try:
            key = _request_key(request)
        except Exception as err:  # never fail a request over the cache: Dash answers it
            log.warning("shared answer key not made: %r", err)
            key = None
        if key is None:
            return None
        try:
            found = store.get(key)
        except Exception as err:
            log.warning("shared answer unreadable, answering afresh: %r", err)
            found = None
        if found is None:
            g.phenomix_shared_answer = key
            shared.count("misses")
            return None
        shared.count("hits")
        body, headers = found
        resp = Response(body, status=200, headers=headers)
        resp.headers["X-Phenomix-Shared-Answer"] = "hit"
        return resp

    def _keep(response):
        key = g.pop("phenomix_shared_answer", None)
        if key is None:
            return response
        if response.status_code != 200 or response.direct_passthrough or response.is_streamed:
            shared.count("skipped")
            return response
        headers = {k: v for k, v in response.headers.items() if k in ("Content-Type", "Content-Encoding", "Vary")}
        try:
            store.set(key, (response.get_data(), headers))
            shared.count("stored")
        except Exception as err:  # disk full: served as computed, kept nowhere
            log.warning("shared answer not kept: %r", err)
        return response

    server.before_request_funcs.setdefault(None, []).append(_lookup)
    # after_request hooks run last-added first: at the front of the list, this one runs last.
    server.after_request_funcs.setdefault(None, []).insert(0, _keep)
    server.phenomix_shared_answers = shared
    return shared
