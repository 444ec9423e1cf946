"""Admission control (phenomix_dash/admission.py): a bounded number of requests compute at once per
worker; one that would wait too long gets a clear 503 with Retry-After, never a hang."""

from __future__ import annotations

import threading
import time

import pytest
from werkzeug.test import Client

from phenomix_dash.admission import Admission, from_env


def _slow_app(gate: threading.Event, running: list[int], most: list[int], lock: threading.Lock):
    def app(environ, start_response):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            gate.wait(5)
        finally:
            with lock:
                running[0] -= 1
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"ok": true}']

    return app


def _fire(client_app, path: str, n: int) -> tuple[list[threading.Thread], list]:
    answers: list = []

    def one():
        resp = Client(client_app).post(path)
        answers.append((resp.status_code, resp.headers, resp.get_data()))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, answers


def test_no_more_than_the_bound_compute_at_once_and_the_rest_are_answered_in_turn():
    gate, lock, running, most = threading.Event(), threading.Lock(), [0], [0]
    app = Admission(_slow_app(gate, running, most, lock), max_in_flight=2, max_wait_s=5)
    threads, answers = _fire(app, "/_dash-update-component", 6)
    time.sleep(0.3)
    assert running[0] == 2 and app.stats()["waiting"] == 4  # two compute, four wait their turn
    gate.set()
    for t in threads:
        t.join(10)
    assert most[0] == 2
    assert [a[0] for a in answers] == [200] * 6  # waiting is not failing
    assert app.stats()["admitted"] == 6 and app.stats()["shed"] == 0 and app.stats()["most_waiting"] >= 4


def test_a_request_that_would_wait_too_long_gets_a_clear_503_with_retry_after():
    gate, lock, running, most = threading.Event(), threading.Lock(), [0], [0]
    app = Admission(_slow_app(gate, running, most, lock), max_in_flight=1, max_wait_s=0.2, retry_after_s=3)
    threads, answers = _fire(app, "/_dash-update-component", 3)
    time.sleep(0.8)  # the two behind the first have waited past 0.2 s by now
    shed = [a for a in answers if a[0] == 503]
    assert len(shed) == 2
    for _status, headers, body in shed:
        assert headers["Retry-After"] == "3" and headers["Content-Type"].startswith("text/plain")
        assert b"busy" in body and b"Try again in 3 s" in body and b"Traceback" not in body
    gate.set()
    for t in threads:
        t.join(10)
    assert sorted(a[0] for a in answers) == [200, 503, 503]
    assert app.stats()["shed"] == 2 and most[0] == 1


def test_static_files_never_wait_behind_callbacks():
    gate, lock, running, most = threading.Event(), threading.Lock(), [0], [0]
    slow = _slow_app(gate, running, most, lock)

    def app(environ, start_response):
        if environ["PATH_INFO"].startswith("/assets/"):
            start_response("200 OK", [("Content-Type", "text/css")])
            return [b"body{}"]
        return slow(environ, start_response)

    wrapped = Admission(app, max_in_flight=1, max_wait_s=0.1)
    threads, _ = _fire(wrapped, "/_dash-update-component", 1)
    time.sleep(0.2)
    assert Client(wrapped).get("/assets/style.css").status_code == 200  # the slot is taken, yet served
    gate.set()
    for t in threads:
        t.join(10)


def test_the_response_iterable_is_closed():
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"a", b"b"])

    assert Client(Admission(app, 1, 1)).get("/").get_data() == b"ab" and closed == [True]


def test_settings_from_the_environment_and_bad_values_named():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    wrapped = from_env(app, {"PHENOMIX_MAX_IN_FLIGHT": "3", "PHENOMIX_MAX_WAIT": "1.5", "PHENOMIX_RETRY_AFTER": "4"})
    assert (wrapped.max_in_flight, wrapped.max_wait_s, wrapped.retry_after_s) == (3, 1.5, 4)
    assert from_env(app, {"PHENOMIX_MAX_IN_FLIGHT": "0"}) is app  # 0: no bound
    with pytest.raises(ValueError, match="PHENOMIX_MAX_WAIT.*'soon'"):
        from_env(app, {"PHENOMIX_MAX_WAIT": "soon"})
    for bad in ({"max_in_flight": 0, "max_wait_s": 1}, {"max_in_flight": 1, "max_wait_s": -1},
                {"max_in_flight": 1, "max_wait_s": float("nan")}, {"max_in_flight": 1, "max_wait_s": 1, "retry_after_s": 0}):
        with pytest.raises(ValueError):
            Admission(app, **bad)
