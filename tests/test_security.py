"""The dashboard under attack: crafted callback payloads, malformed requests, path traversal,
security headers, a production server on loopback, private files."""

from __future__ import annotations

import http.client
import json
import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest

from benchmarks.load_test import build_payload, free_port, page_components, start_gunicorn, wait_ready
from phenomix_dash import security
from phenomix_dash.security import bounded_list, click_value, parse_query, safe_choice, safe_id, safe_int

REPO = Path(__file__).resolve().parents[1]
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "site-packages")
SECRET_MARKERS = ("root:x:0:0", "gunicorn app:server", "def create_app", "checksums")
JUNK = [
    None,
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'; DROP TABLE wells; --",
    "A" * 100_000,
    "\x00\x1b[31m",
    -1,
    1e308,
    True,
    ["x"] * 20_000,
    [[[[]]]],
    {"points": [{"customdata": "../../etc/passwd", "x": "NaN", "pointIndex": -5}]},
    {"__proto__": {"admin": True}},
]


class FlaskClient:
    """The load test's client interface over Flask's test client."""

    def __init__(self, client) -> None:
        self.client = client

    def request(self, method: str, path: str, body=None):
        r = self.client.open(path, method=method, json=body)
        return r.status_code, r.data


@pytest.fixture(scope="module")
def app(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app

    app = create_app(Settings(store=tiny_store), environ={})
    assert app.server.test_client().get("/").status_code == 200  # claims the pages' callbacks
    return app


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


@pytest.fixture(scope="module")
def layout_values(app, client) -> dict[str, dict]:
    """id -> props of every component of every page, as a browser would first see them."""
    import dash

    deps = json.loads(client.get("/_dash-dependencies").data)
    comps: dict[str, dict] = {}
    for page in dash.page_registry.values():
        comps.update(page_components(FlaskClient(client), deps, page["path"]))
    return comps


def _server_callbacks(app) -> list[dict]:
    return [{"output": k, "inputs": v["inputs"], "state": v.get("state", [])}
            for k, v in app.callback_map.items() if v.get("callback") is not None]


def _assert_plain(resp, allowed=(200, 204)) -> None:
    body = resp.get_data().decode("utf-8", "replace")
    assert resp.status_code in allowed, (resp.status_code, body[:300])
    for marker in TRACEBACK_MARKERS:
        assert marker not in body, body[:500]


class NetHits(logging.Handler):
    """Counts callbacks that raised and were caught by the app-wide safety net."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("callback failed"):
            self.records.append(record.getMessage()[:300])


@pytest.fixture(scope="module")
def fuzz_results(app, client, layout_values):
    """POST every server callback with each junk value in each input/state slot (others as laid out)."""
    hits = NetHits()
    logger = logging.getLogger("phenomix_dash")
    logger.addHandler(hits)
    responses, unsafe = [], {}
    try:
        for cb in _server_callbacks(app):
            slots = cb["inputs"] + cb["state"]
            base = {(i["id"], i["property"]): layout_values.get(i["id"], {}).get(i["property"]) for i in slots}
            for slot in slots:
                key = (slot["id"], slot["property"])
                for junk in JUNK:
                    values = {**base, key: junk}
                    before = len(hits.records)
                    resp = client.post("/_dash-update-component", json=build_payload(cb, values, [f"{key[0]}.{key[1]}"]))
                    responses.append((cb["output"], key, junk, resp))
                    if len(hits.records) > before:
                        unsafe.setdefault(cb["output"], (key, repr(junk)[:60], hits.records[-1]))
    finally:
        logger.removeHandler(hits)
    return responses, unsafe


def test_every_callback_answers_junk_without_a_traceback(fuzz_results):
    responses, _ = fuzz_results
    assert len(responses) > 100
    for output, key, junk, resp in responses:
        body = resp.get_data(as_text=True)
        assert resp.status_code in (200, 204), (output, key, repr(junk)[:60], resp.status_code, body[:300])
        for marker in TRACEBACK_MARKERS:
            assert marker not in body, (output, key, repr(junk)[:60], body[:300])


def test_no_callback_needs_the_safety_net(fuzz_results):
    _, unsafe = fuzz_results
    # Dash's own page router raises UnsupportedRelativePath for a pathname without the prefix;
    # that code is Dash's, answers 204 through the safety net, and reveals nothing.
    unsafe = {out: v for out, v in unsafe.items() if not out.startswith(".._pages_content")}
    lines = [f"{out}: {key[0]}.{key[1]} = {junk} -> {msg}" for out, (key, junk, msg) in sorted(unsafe.items())]
    assert not unsafe, "\n".join(lines)


@pytest.mark.parametrize("search", ["?plate=../../etc/passwd&well=../../etc/passwd", "?plate=a&plate=b&well=x",
                                    "?" + "x=1&" * 500, "?well=%00%0a<script>", "?k=-1e308&pert=" + "A" * 5000,
                                    "?__class__=1&self=2&pathname_=3", "not-a-query"])
@pytest.mark.parametrize("path", ["/", "/map", "/perturbation", "/similarity", "/plates", "/activity", "/images",
                                  "/benchmarks", "/../../etc/passwd", "/nope"])
def test_malformed_url_state_gives_a_page_not_a_traceback(app, client, path, search):
    router = app.callback_map[".._pages_content.children..._pages_store.data.."]
    cb = {"output": ".._pages_content.children..._pages_store.data..", "inputs": router["inputs"], "state": []}
    body = build_payload(cb, {("_pages_location", "pathname"): path, ("_pages_location", "search"): search})
    resp = client.post("/_dash-update-component", json=body)
    _assert_plain(resp, allowed=(200,))
    text = resp.get_data(as_text=True)
    assert "_pages_content" in text
    for marker in SECRET_MARKERS[:2]:
        assert marker not in text


@pytest.mark.parametrize("body,status", [
    ("not json", 400), ([1, 2, 3], 400), ({}, 400), ({"output": 5}, 400),
    ({"output": "no-such.figure", "inputs": []}, 400),
    ({"output": "overview-plate-figure.figure", "inputs": "x"}, 400),
    ({"output": "overview-plate-figure.figure", "inputs": [{"id": "overview-plate", "property": "value", "value": 1}]}, 400),
    ({"output": "overview-plate-figure.figure", "inputs": [{"id": "/etc/passwd", "property": "value"}] * 3}, 400),
    ({"output": "overview-plate-figure.figure", "inputs": [None, None, None]}, 400),
    ({"output": "_pages_dummy.children", "inputs": [{"id": "_pages_store", "property": "data"}]}, 400),
])
def test_malformed_callback_requests_get_a_plain_400(client, body, status):
    if isinstance(body, str):
        resp = client.post("/_dash-update-component", data=body, content_type="application/json")
    else:
        resp = client.post("/_dash-update-component", json=body)
    _assert_plain(resp, allowed=(status,))
    assert resp.mimetype == "text/plain"


def test_oversized_and_deeply_nested_requests_are_refused(client):
    big = {"output": "overview-plate-figure.figure", "inputs": [{"id": "overview-plate", "property": "value",
                                                                 "value": "x" * (9 * 1024 * 1024)}]}
    _assert_plain(client.post("/_dash-update-component", json=big), allowed=(413,))
    deep = "[" * 100_000 + "]" * 100_000
    _assert_plain(client.post("/_dash-update-component", data=deep, content_type="application/json"), allowed=(400,))


TRAVERSALS = [
    "/assets/../app.py", "/assets/..%2fapp.py", "/assets/%2e%2e/app.py", "/assets/....//app.py", "/assets/..%5capp.py",
    "/assets//etc/passwd", "/assets/%2fetc%2fpasswd", "/assets/../../../../etc/passwd",
    "/_dash-component-suites/dash/../../../../etc/passwd", "/_dash-component-suites/dash/..%2f..%2f..%2fetc%2fpasswd",
    "/_dash-component-suites/dash/deps/..%2f..%2f__init__.py", "/_dash-component-suites/os/../../etc/passwd",
    "/_dash-component-suites/dash_bootstrap_components/_components/../../__init__.py",
    "/_dash-component-suites/precompute/artifacts.py", "/_dash-component-suites/phenomix_dash/data.py",
    "/_dash-component-suites/dash/dash_renderer.v1.js?x=../../../etc/passwd",
    "/_favicon.ico?path=../../etc/passwd", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd",
    "/map/../../etc/passwd", "/?well=../../etc/passwd", "/images?well=../../../etc/passwd&site=../1",
    "/_dash-layout?x=../../etc/passwd", "/_reload-hash", "/runs/default.json", "/STORE.json",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_route_reads_a_file_outside_the_served_assets(client, path):
    resp = client.get(path)
    body = resp.get_data().decode("utf-8", "replace")
    assert resp.status_code in (200, 301, 302, 308, 400, 404), (resp.status_code, body[:200])
    for marker in SECRET_MARKERS + TRACEBACK_MARKERS:
        assert marker not in body, (path, marker)


def test_security_headers_on_pages_and_callbacks(client):
    for resp in (client.get("/"), client.get("/_dash-dependencies")):
        for name in ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Referrer-Policy"):
            assert name in resp.headers
    assert "frame-ancestors 'self'" in client.get("/").headers["Content-Security-Policy"]


def test_debug_mode_is_off_unless_asked(app, monkeypatch):
    import app as app_module

    monkeypatch.delenv("PHENOMIX_DEBUG", raising=False)
    assert app_module.parse_args([]).debug is False
    assert app_module.parse_args([]).host == "127.0.0.1"
    assert not app.server.debug
    assert app_module.main(["--debug", "--host", "0.0.0.0"]) == 2, "debug mode is refused beyond loopback"


def test_store_and_caches_are_private(tiny_store, tmp_path):
    assert stat.S_IMODE(os.stat(tiny_store).st_mode) == 0o700
    d = security.private_dir(tmp_path / "cache" / "diskcache")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    # Any diskcache the dashboard opens must go through private_dir.
    for py in (REPO / "phenomix_dash").rglob("*.py"):
        text = py.read_text()
        if "diskcache" in text and py.name != "security.py":
            assert "private_dir" in text, f"{py}: diskcache directory not created with security.private_dir"
    from runpy import run_path

    assert run_path(str(REPO / "gunicorn.conf.py"))["umask"] == 0o077


def test_validation_helpers_never_raise():
    wells = {"W1", "W2"}
    assert safe_id("W1", wells) == "W1"
    for bad in (None, 5, ["W1"], {"a": 1}, "W3", "W1\x00", "x" * 1000):
        assert safe_id(bad, wells) is None
    assert safe_id("W2", wells.__contains__) == "W2"
    assert safe_id("W2", lambda s: 1 / 0) is None
    assert bounded_list(["a", 1, None, {"x": 1}, float("nan"), "b\x00"], 10) == ["a", 1]
    assert len(bounded_list(list(range(100_000)), 50)) == 50
    assert bounded_list("W1", 5, wells) == ["W1"] and bounded_list({"W1": 1}, 5) == []
    assert safe_int("7", 1, 10) == 7 and safe_int("1e308", 1, 10, 3) == 3 and safe_int(True, 0, 1) is None
    assert safe_int(float("inf"), 0, 10, 0) == 0 and safe_int("2.5", 0, 10) is None
    assert safe_choice(["x"], {"x"}, "d") == "d" and safe_choice("x", ["x", "y"]) == "x"
    assert click_value({"points": [{"customdata": "W1"}]}) == "W1"
    for bad in (None, "x", {"points": "x"}, {"points": []}, {"points": [5]}):
        assert click_value(bad) is None
    assert parse_query("?plate=P1&well=B07&plate=P2") == {"plate": "P1", "well": "B07"}
    assert parse_query("?well=%00x&bad key=1&" + "a" * 5000) == {}
    assert parse_query("?plate=P1&evil=1", allowed_keys={"plate"}) == {"plate": "P1"}
    assert parse_query(None) == {} and parse_query(["?a=1"]) == {}


@pytest.fixture(scope="module")
def live_server(tiny_store):
    port = free_port()
    proc = start_gunicorn(tiny_store, port, workers=2)
    try:
        wait_ready("127.0.0.1", port)
        yield port
    finally:
        proc.terminate()
        try:  # gunicorn gives busy workers graceful_timeout (30 s) before it kills them itself
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _raw_get(port: int, path: str) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)  # the path is sent as is
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace"), dict(resp.getheaders())
    finally:
        conn.close()


def test_gunicorn_serves_on_loopback_with_headers_and_no_traversal(live_server):
    status, body, headers = _raw_get(live_server, "/")
    assert status == 200 and "Phenomix" in body
    assert headers.get("Server", "").startswith("gunicorn")
    assert headers.get("X-Frame-Options") == "SAMEORIGIN"
    for path in TRAVERSALS[:12]:
        status, body, _ = _raw_get(live_server, path)
        assert status in (200, 400, 404), (path, status)
        for marker in SECRET_MARKERS + TRACEBACK_MARKERS:
            assert marker not in body, (path, marker)
    conn = http.client.HTTPConnection("127.0.0.1", live_server, timeout=30)
    conn.request("POST", "/_dash-update-component", body=b"{not json", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and b"Traceback" not in resp.read()
