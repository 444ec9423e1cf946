"""Large callback answers compressed once per distinct body, not once per request.

The map's answer is megabytes of JSON; flask-compress compresses it again for every request
(brotli quality 4: ~90 ms of CPU for the 7.9 MB map answer at the million-well store, about a
tenth of all request CPU under the 50-user load test). Many requests get byte-identical answers
(the same view of the same screen), so this keeps the compressed bytes in a bounded in-process LRU
keyed by a digest of the uncompressed body and the encoding: a repeated answer costs one hash
(~8 ms) instead. The key is the content itself, so a changed answer can never be served stale.

Runs as an ``after_request`` registered after Dash's flask-compress, so it runs first; the
answers it compresses carry Content-Encoding, which flask-compress then leaves alone. Small
answers and encodings other than br/gzip are left to flask-compress as before.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from typing import Any

import brotli

MIN_BYTES = 256 * 1024  # below this compressing is cheap: flask-compress does it as before
COMPRESSIBLE = ("application/json",)
# Brotli quality for these large answers: the 7.9 MB map answer at the million-well store takes
# 41 ms at quality 4 (flask-compress's default) and 19 ms at 2, for 1.25 vs 1.28 MB (median of 5,
# one thread, side by side); on a CPU-bound server the 2% more bytes are the better trade.
LARGE_BR_QUALITY = 2


def chosen_encoding(accept_encoding: str | None) -> str | None:
    """'br' or 'gzip' when the client accepts it (q > 0; br first, as flask-compress prefers), else None."""
    accepted = {}
    for part in (accept_encoding or "").split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        accepted[name.strip().lower()] = q
    for enc in ("br", "gzip"):
        if accepted.get(enc, accepted.get("*", 0.0)) > 0:
            return enc
    return None


class CompressedAnswers:
    """Bounded (bytes) LRU of compressed bodies keyed by (encoding, digest of the body)."""

    def __init__(self, max_bytes: int, br_quality: int = 4, gzip_level: int = 6) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")
        self.max_bytes, self.br_quality, self.gzip_level = max_bytes, br_quality, gzip_level
        self._items: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def compress(self, body: bytes, encoding: str) -> bytes:
        key = (encoding, hashlib.blake2b(body, digest_size=20).digest())
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        out = brotli.compress(body, quality=self.br_quality) if encoding == "br" else gzip.compress(body, self.gzip_level)
        if len(out) <= self.max_bytes:
            with self._lock:
                if key not in self._items:
                    self._items[key] = out
                    self._size += len(out)
                while self._size > self.max_bytes:
                    _, dropped = self._items.popitem(last=False)
                    self._size -= len(dropped)
        return out

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._items), "bytes": self._size}


def install(server: Any, max_bytes: int, min_bytes: int = MIN_BYTES) -> CompressedAnswers | None:
    """Compress ``server``'s (a Flask app's) large JSON answers through a `CompressedAnswers` of
    ``max_bytes`` (0: not installed, flask-compress does everything as before)."""
    if max_bytes <= 0:
        return None
    from flask import request

    cache = CompressedAnswers(max_bytes, LARGE_BR_QUALITY, int(server.config.get("COMPRESS_LEVEL", 6)))

    def _compress_large(response):
        if (response.status_code != 200 or response.direct_passthrough or response.is_streamed
                or response.mimetype not in COMPRESSIBLE or "Content-Encoding" in response.headers):
            return response
        encoding = chosen_encoding(request.headers.get("Accept-Encoding"))
        if encoding is None or (response.content_length or 0) < min_bytes:
            return response
        response.set_data(cache.compress(response.get_data(), encoding))
        response.headers["Content-Encoding"] = encoding
        vary = response.headers.get("Vary")
        if not vary:
            response.headers["Vary"] = "Accept-Encoding"
        elif "accept-encoding" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Accept-Encoding"
        return response

    # Appended by hand: Flask refuses new hooks once the app has answered a request (create_app
    # answers one), and it runs after_request hooks last-registered first, so this runs before
    # flask-compress's.
    server.after_request_funcs.setdefault(None, []).append(_compress_large)
    server.phenomix_compressed_answers = cache
    return cache
