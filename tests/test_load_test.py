"""benchmarks/load_test.py: shedding (503 + Retry-After) counted apart from errors, compressed answers
read as a browser reads them, worker deaths read from gunicorn's log, one result file per store
and user count."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli
import pytest

from benchmarks._gunicorn import worker_events
from benchmarks.load_test import decoded, result_path, run_load


class _Handler(BaseHTTPRequestHandler):
    """Answers every third request with a shedding 503, one with a plain 500, the rest gzip JSON."""
    count = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            _Handler.count += 1
            n = _Handler.count
        if n == 2:
            self._send(500, b"oops", [])
        elif n % 3 == 0:
            self._send(503, b"busy", [("Retry-After", "2")])
        else:
            assert "gzip" in self.headers.get("Accept-Encoding", "")
            self._send(200, gzip.compress(json.dumps({"response": {}}).encode()), [("Content-Encoding", "gzip")])

    def _send(self, status, body, headers):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_shed_503s_are_counted_apart_from_errors_and_gzip_answers_are_read():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = {"label": "map", "callback": {"output": "a.figure", "inputs": [{"id": "a", "property": "value"}]},
                  "base": {}, "choices": {}}
        r = run_load("127.0.0.1", server.server_address[1], [target], users=2, duration=5, max_requests=12,
                     think=(0, 0), headers={"Accept-Encoding": "gzip, deflate, br"})
    finally:
        server.shutdown()
    assert r["requests"] == 12
    assert r["shed"] == 4 and r["shed_per_callback"] == {"map": 4}  # requests 3, 6, 9, 12
    assert r["errors"] == 1 and "HTTP 500" in r["error_examples"][0]  # a 503 without Retry-After would be too
    assert r["answered"] == 7 and r["per_callback"]["map"]["requests"] == 7


def test_bodies_are_decoded_by_their_content_encoding():
    body = b'{"response": {}}'
    assert decoded(gzip.compress(body), "gzip") == body and decoded(brotli.compress(body), "br") == body
    assert decoded(body, None) == body and decoded(body, "identity") == body
    with pytest.raises(ValueError, match="'zstd'"):
        decoded(body, "zstd")


def test_worker_deaths_are_read_from_gunicorns_log():
    log = """[INFO] Phenomix ready: 127.0.0.1:9350, 3 workers x 32 threads, auth none
[INFO] Booting worker with pid: 11
[INFO] Booting worker with pid: 12
[INFO] Booting worker with pid: 13
[CRITICAL] WORKER TIMEOUT (pid:12)
[ERROR] Worker (pid:12) was sent SIGKILL! Perhaps out of memory?
[INFO] Booting worker with pid: 14
[ERROR] Worker (pid:13) exited with code 1
"""
    ev = worker_events(log)
    assert ev["workers"] == 3 and ev["threads"] == 32 and ev["boots"] == 4 and ev["replaced"] == 1
    assert ev["worker_timeouts"] == 1 and ev["worker_killed"] == 1 and ev["worker_exited_abnormally"] == 1
    calm = worker_events("[INFO] Phenomix ready: x:1, 2 workers x 8 threads, auth none\n"
                         "[INFO] Booting worker with pid: 1\n[INFO] Booting worker with pid: 2\n")
    assert calm["replaced"] == 0 and calm["worker_timeouts"] == calm["worker_killed"] == 0


def test_one_result_file_per_store_and_user_count():
    assert result_path("million", 50).name == "load_test_million_50.json"
    assert result_path("million", 200).name == "load_test_million_200.json"
