"""Admission control: a bounded number of requests computing at once per worker process, and a
clear 503 with Retry-After when a request would wait too long for its turn.

Why: a gunicorn worker runs Python one thread at a time (the GIL), and this machine has few cores.
Letting every accepted request compute at once only slices the CPU thinner, so every request gets
slower together; under a burst (200 users) requests then run past gunicorn's timeout and the
worker is killed, dropping everyone it was serving. With a bound, requests beyond it wait in line
(cheaply, blocked on a semaphore, not holding the GIL) and are answered in turn; one that would
wait longer than ``max_wait_s`` is told so at once with ``503 Service Unavailable`` and a
``Retry-After``, which Dash's renderer and any HTTP client understand, instead of hanging.

Static files (Dash's component bundles, assets/) are cheap and never wait: a page must always
load its code even when callbacks are busy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

# Cheap requests that never queue: JavaScript/CSS bundles, assets, the favicon.
DEFAULT_EXEMPT_PREFIXES = ("/_dash-component-suites/", "/assets/", "/favicon.ico", "/_favicon.ico")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


class Admission:
    """WSGI middleware: at most ``max_in_flight`` requests of this process run the app at once; a
    request that cannot start within ``max_wait_s`` gets a 503 with ``Retry-After``.

    ``stats()`` counts what it did (admitted, shed, the most that waited at once).
    """

    def __init__(self, app: WSGIApp, max_in_flight: int, max_wait_s: float, retry_after_s: int = 2,
                 exempt_prefixes: tuple[str, ...] = DEFAULT_EXEMPT_PREFIXES) -> None:
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
        if not max_wait_s >= 0:  # also refuses NaN
            raise ValueError(f"max_wait_s must be >= 0 seconds, got {max_wait_s!r}")
        if not isinstance(retry_after_s, int) or retry_after_s < 1:
            raise ValueError(f"retry_after_s must be a positive integer, got {retry_after_s!r}")
        self.app, self.max_in_flight, self.max_wait_s = app, max_in_flight, float(max_wait_s)
        self.retry_after_s, self.exempt_prefixes = retry_after_s, tuple(exempt_prefixes)
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self.admitted = self.shed = self.waiting = self.most_waiting = 0

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "")).startswith(self.exempt_prefixes):
            return self.app(environ, start_response)
        with self._lock:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            got = self._slots.acquire(timeout=self.max_wait_s)
        finally:
            with self._lock:
                self.waiting -= 1
        if not got:
            with self._lock:
                self.shed += 1
            return self._busy(start_response)
        with self._lock:
            self.admitted += 1
        try:
            # The whole body is produced inside the slot: an iterable response would otherwise
            # compute after the slot is handed on. (Dash answers with one bytes body anyway.)
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        finally:
            self._slots.release()

    def _busy(self, start_response: StartResponse) -> list[bytes]:
        body = (f"The server is busy: more than {self.max_in_flight} requests are being computed "
                f"in this worker and this one waited {self.max_wait_s:g} s for its turn. "
                f"Try again in {self.retry_after_s} s.\n").encode()
        start_response("503 Service Unavailable", [
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Retry-After", str(self.retry_after_s)), ("Cache-Control", "no-store")])
        return [body]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"admitted": self.admitted, "shed": self.shed, "waiting": self.waiting,
                    "most_waiting": self.most_waiting, "max_in_flight": self.max_in_flight}


def from_env(app: WSGIApp, environ: dict[str, str]) -> WSGIApp:
    """Wrap ``app`` as PHENOMIX_MAX_IN_FLIGHT (requests computing at once per worker; 0: no bound,
    the app is returned as it is), PHENOMIX_MAX_WAIT (seconds a request may wait for its turn
    before a 503) and PHENOMIX_RETRY_AFTER (seconds the 503 asks the client to wait) say."""
    def number(name: str, default: str, kind: type) -> Any:
        raw = environ.get(name, default)
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {raw!r}") from None

    bound = number("PHENOMIX_MAX_IN_FLIGHT", "2", int)
    if bound == 0:
        return app
    return Admission(app, bound, number("PHENOMIX_MAX_WAIT", "5", float),
                     number("PHENOMIX_RETRY_AFTER", "2", int))
