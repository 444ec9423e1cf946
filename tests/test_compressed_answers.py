"""Large callback answers are compressed once per distinct body (phenomix_dash/compressed_answers.py):
the client gets the same decompressed bytes, a repeated answer is not compressed again, a changed
one never gets the old bytes, and small answers are left to flask-compress."""

from __future__ import annotations

import gzip
import json

import brotli
from flask import Flask, Response, request
from flask_compress import Compress

from phenomix_dash.compressed_answers import CompressedAnswers, chosen_encoding, install


def _app() -> Flask:
    app = Flask(__name__)
    Compress(app)

    @app.post("/answer")
    def answer():
        n = int(request.args.get("n", "100000"))
        body = json.dumps({"response": {"x": list(range(n)), "tag": request.args.get("tag", "a")}})
        return Response(body, content_type="application/json")

    app.test_client().get("/")  # like create_app: the app has answered before hooks are added
    return app


def test_large_answers_are_compressed_once_per_distinct_body_and_read_back_the_same():
    app = _app()
    cache = install(app, max_bytes=64 * 2**20, min_bytes=5000)
    client = app.test_client()
    first = client.post("/answer", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert first.headers["Content-Encoding"] == "br" and "Accept-Encoding" in first.headers["Vary"]
    body = json.loads(brotli.decompress(first.get_data()))
    assert body["response"]["x"][-1] == 99999
    again = client.post("/answer", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert again.get_data() == first.get_data() and cache.stats()["hits"] == 1
    other = client.post("/answer?tag=b", headers={"Accept-Encoding": "gzip, deflate, br"})  # a changed answer
    assert json.loads(brotli.decompress(other.get_data()))["response"]["tag"] == "b"
    gz = client.post("/answer", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(gz.get_data()))["response"]["x"][-1] == 99999
    assert cache.stats()["misses"] == 3
    plain = client.post("/answer")  # no Accept-Encoding: sent as is
    assert "Content-Encoding" not in plain.headers and json.loads(plain.get_data())["response"]["tag"] == "a"
    small = client.post("/answer?n=300", headers={"Accept-Encoding": "br"})  # left to flask-compress
    assert small.headers.get("Content-Encoding") == "br" and cache.stats()["misses"] == 3


def test_the_cache_is_bounded_in_bytes_and_zero_installs_nothing():
    cache = CompressedAnswers(max_bytes=3000, br_quality=1)
    bodies = [bytes([i]) * 50_000 + bytes(range(256)) * 8 for i in range(20)]
    for b in bodies:
        assert brotli.decompress(cache.compress(b, "br")) == b
    assert cache.stats()["bytes"] <= 3000 and cache.stats()["entries"] < 20
    app = _app()
    assert install(app, max_bytes=0) is None


def test_the_encoding_follows_accept_encoding():
    assert chosen_encoding("gzip, deflate, br") == "br"
    assert chosen_encoding("gzip;q=1.0, br;q=0") == "gzip"
    assert chosen_encoding("deflate") is None and chosen_encoding(None) is None and chosen_encoding("") is None
    assert chosen_encoding("*") == "br" and chosen_encoding("br;q=x") is None
