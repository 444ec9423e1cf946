"""Bounded load test of the dashboard under gunicorn, on loopback only.

    .venv/bin/python benchmarks/load_test.py --store var/store/tiny            # starts gunicorn itself
    .venv/bin/python benchmarks/load_test.py --store var/store/million --users 200 --duration 60
    .venv/bin/python benchmarks/load_test.py --url http://127.0.0.1:8050       # an already running one

N simulated users (threads, one keep-alive connection each, asking for compressed answers as a
browser does) replay the map, neighbour and heatmap callbacks (ids discovered from the app's
/_dash-dependencies; the overview's when those pages are missing) with input values taken from
the pages' own controls, for a fixed time and at most a fixed number of requests.

A 503 with Retry-After is the server shedding load on purpose (phenomix_dash/admission.py): it is
counted as "shed", apart from errors. Any other status than 200/204, a traceback in a body, or a
failed connection is an error. When this script starts gunicorn it keeps its log and counts the
workers that died or were replaced ("WORKER TIMEOUT", boots beyond the first ones). Latency
percentiles (answered requests) go to benchmarks/results/load_test_<store>_<users>.json.
The server it starts gets a fresh shared cache, so what it answers from its shared answers
(phenomix_dash/shared_answers.py, counted as ``shared_hits``) was computed during the run;
``--no-shared-answers`` serves without them, for the side-by-side figure.
Only 127.0.0.1 / localhost / ::1 are accepted as targets.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import brotli

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: benchmarks/ is a package of the checkout
    sys.path.insert(0, str(REPO))

from benchmarks._gunicorn import free_port, start_gunicorn, wait_ready, worker_events  # noqa: E402,F401

ROUTER = ".._pages_content.children..._pages_store.data.."
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# (label, a fragment of the callback's output key, the page that holds its controls)
TARGETS = [("map", "map-raw-figure.figure", "/map"),
           ("neighbours", "perturbation-neighbour-figure.figure", "/perturbation"),
           ("heatmap", "similarity-heatmap.figure", "/similarity")]
FALLBACK = [("overview-plate", "overview-plate-figure.figure", "/"),
            ("overview-well", "overview-images.children", "/")]
BROWSER_ENCODINGS = "gzip, deflate, br"  # what Chromium and Firefox offer (zstd aside)


# -- Dash request bodies -------------------------------------------------------------------------
def split_output(output: str) -> list[tuple[str, str]]:
    """'a.figure' or '..a.figure...b.data@hash..' -> [(id, property), ...] (the @hash kept)."""
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    return [tuple(p.rsplit(".", 1)) for p in parts]  # type: ignore[misc]


def concrete_id(id_str: str, index: int = 0) -> tuple[Any, str | None]:
    """A declared id -> (the id a request names, wildcard kind or None)."""
    if not id_str.startswith("{"):
        return id_str, None
    d = json.loads(id_str)
    kind = next((v[0] for v in d.values() if isinstance(v, list)), None)
    return {k: (index if isinstance(v, list) else v) for k, v in d.items()}, kind


def build_payload(cb: dict, values: dict[tuple[str, str], Any] | None = None, changed: list[str] | None = None) -> dict:
    """The /_dash-update-component body the browser would send for one callback.

    ``cb`` is an entry of /_dash-dependencies or of ``app.callback_map`` (output, inputs, state);
    ``values`` maps (declared id, property) -> value (missing: None).
    """
    values = values or {}

    def props(items: list[dict]) -> list:
        out = []
        for item in items:
            cid, kind = concrete_id(item["id"])
            entry = {"id": cid, "property": item["property"], "value": values.get((item["id"], item["property"]))}
            out.append([entry] if kind in ("ALL", "ALLSMALLER") else entry)
        return out

    outs = []
    for oid, prop in split_output(cb["output"]):
        cid, kind = concrete_id(oid)
        entry = {"id": cid, "property": prop.split("@")[0]}
        outs.append([entry] if kind in ("ALL", "ALLSMALLER") else entry)
    inputs = props(cb["inputs"])
    return {
        "output": cb["output"],
        "outputs": outs if cb["output"].startswith("..") else outs[0],
        "inputs": inputs,
        "state": props(cb.get("state", [])),
        "changedPropIds": changed if changed is not None else [f"{i['id']}.{i['property']}" for i in cb["inputs"][:1]],
    }


def response_props(body: bytes) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(body).get("response", {})
    except (ValueError, AttributeError):
        return {}


# -- a keep-alive client -------------------------------------------------------------------------
class Client:
    def __init__(self, host: str, port: int, timeout: float = 60.0, headers: dict[str, str] | None = None) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.headers = headers or {}
        self.conn: http.client.HTTPConnection | None = None
        self.last_retry_after: str | None = None  # the last answer's Retry-After header
        self.last_shared = False  # the last answer came from the server's shared answers

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {**self.headers, **({"Content-Type": "application/json"} if data is not None else {})}
        for attempt in (0, 1):  # a keep-alive connection the server closed is retried once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                self.last_retry_after = resp.getheader("Retry-After")
                self.last_shared = resp.getheader("X-Phenomix-Shared-Answer") == "hit"
                return resp.status, decoded(resp.read(), resp.getheader("Content-Encoding"))
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def decoded(raw: bytes, encoding: str | None) -> bytes:
    """A body sent with Content-Encoding gzip, deflate or br, uncompressed (the client pays for it
    as a browser does, and the traceback check reads the text)."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return raw
    if enc == "gzip":
        return gzip.decompress(raw)
    if enc == "deflate":
        return zlib.decompress(raw)
    if enc == "br":
        return brotli.decompress(raw)
    raise ValueError(f"unexpected Content-Encoding {encoding!r}")


# -- discovery -----------------------------------------------------------------------------------
def walk(node: Any):
    """Every component dict of a serialised Dash layout."""
    if isinstance(node, dict):
        if "props" in node and "type" in node:
            yield node
            node = node["props"]
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def page_components(client: Client, deps: list[dict], path: str) -> dict[str, dict]:
    """id -> props of every component in one page's layout (via the pages router callback)."""
    router = next((d for d in deps if d["output"] == ROUTER), None)
    if router is None:
        return {}
    path, _, query = path.partition("?")  # a page opened from a link carries its view in the query
    body = build_payload(router, {("_pages_location", "pathname"): path,
                                  ("_pages_location", "search"): "?" + query if query else ""})
    status, raw = client.request("POST", "/_dash-update-component", body)
    if status != 200:
        return {}
    layout = response_props(raw).get("_pages_content", {}).get("children")
    return {c["props"]["id"]: c["props"] for c in walk(layout) if isinstance(c["props"].get("id"), str)}


def option_values(options: Any) -> list:
    if not isinstance(options, list):
        return []
    out = []
    for o in options:
        if isinstance(o, dict) and not o.get("disabled"):
            out.append(o.get("value"))
        elif isinstance(o, (str, int, float)):
            out.append(o)
    return out


def harvest_options(client: Client, deps: list[dict], comps: dict[str, dict], cid: str) -> list:
    """Values a searchable dropdown offers: its layout options, else what its options callback returns."""
    found = option_values(comps.get(cid, {}).get("options"))
    if found:
        return found
    for d in deps:
        if d["output"] != f"{cid}.options" or (cid, "search_value") not in {(i["id"], i["property"]) for i in d["inputs"]}:
            continue
        for q in ("", "a", "e", "G", "C", "1", "s"):
            vals = {(i["id"], i["property"]): comps.get(i["id"], {}).get(i["property"]) for i in d["inputs"] + d.get("state", [])}
            vals[(cid, "search_value")] = q
            status, raw = client.request("POST", "/_dash-update-component", build_payload(d, vals, [f"{cid}.search_value"]))
            if status == 200:
                found += option_values(response_props(raw).get(cid, {}).get("options"))
            if len(found) >= 20:
                break
    return list(dict.fromkeys(v for v in found if isinstance(v, (str, int, float))))


def discover(client: Client) -> list[dict]:
    """The callbacks to load, each with its base values and the choices per input."""
    status, raw = client.request("GET", "/_dash-dependencies")
    if status != 200:
        raise SystemExit(f"/_dash-dependencies answered {status}; is this a Phenomix dashboard (auth)?")
    deps = json.loads(raw)
    chosen = []
    for targets in (TARGETS, FALLBACK):
        for label, fragment, path in targets:
            cb = next((d for d in deps if fragment in d["output"] and not d.get("clientside_function")), None)
            if cb is None:
                continue
            comps = page_components(client, deps, path)
            base, choices = {}, {}
            for item in cb["inputs"] + cb.get("state", []):
                key = (item["id"], item["property"])
                base[key] = comps.get(item["id"], {}).get(item["property"])
                if item["property"] == "value" and not item["id"].startswith("{"):
                    opts = harvest_options(client, deps, comps, item["id"])
                    if len(opts) > 1 or (opts and base[key] is None):
                        choices[key] = opts
            if label.startswith("overview-well"):
                well_ids = [v for v in harvest_well_ids(client, deps, comps)]
                if well_ids:
                    choices[("overview-well-store", "data")] = well_ids
            chosen.append({"label": label, "callback": cb, "base": base, "choices": choices})
        if chosen:
            break
    if not chosen:
        raise SystemExit("none of the map/neighbour/heatmap/overview callbacks exist in this app")
    return chosen


def harvest_well_ids(client: Client, deps: list[dict], comps: dict[str, dict]) -> list[str]:
    """Well ids from the overview plate figure's customdata (for the fallback image callback)."""
    cb = next((d for d in deps if d["output"] == "overview-plate-figure.figure"), None)
    if cb is None:
        return []
    vals = {(i["id"], i["property"]): comps.get(i["id"], {}).get(i["property"]) for i in cb["inputs"]}
    status, raw = client.request("POST", "/_dash-update-component", build_payload(cb, vals))
    fig = response_props(raw).get("overview-plate-figure", {}).get("figure", {}) if status == 200 else {}
    ids = [c for tr in fig.get("data", []) for c in (tr.get("customdata") or []) if isinstance(c, str)]
    return ids[:200]


# -- the load ------------------------------------------------------------------------------------
def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))]


def run_load(host: str, port: int, targets: list[dict], users: int, duration: float, max_requests: int,
             think: tuple[float, float], seed: int = 0, headers: dict[str, str] | None = None,
             first_window: float = 15.0) -> dict:
    lock = threading.Lock()
    results: dict[str, list[float]] = {t["label"]: [] for t in targets}
    sent_at: list[tuple[float, float]] = []  # (seconds after the load began, latency) of every answer
    errors: list[str] = []
    shed: dict[str, list[float]] = {t["label"]: [] for t in targets}
    shared_hits: dict[str, int] = {t["label"]: 0 for t in targets}
    sent = [0]
    deadline = time.monotonic() + duration

    def user(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        client = Client(host, port, headers=headers)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= max_requests:
                        return
                    sent[0] += 1
                t = rng.choice(targets)
                values = dict(t["base"])
                for key, opts in t["choices"].items():
                    values[key] = rng.choice(opts)
                changed_key = rng.choice(list(t["choices"]) or [None])
                changed = [f"{changed_key[0]}.{changed_key[1]}"] if changed_key else None
                body = build_payload(t["callback"], values, changed)
                t0 = time.perf_counter()
                status = None
                try:
                    status, raw = client.request("POST", "/_dash-update-component", body)
                    ok = status in (200, 204) and b"Traceback" not in raw
                    why = f"{t['label']}: HTTP {status} {raw[:200]!r}"
                except (OSError, http.client.HTTPException, ValueError) as err:
                    ok, why = False, f"{t['label']}: {type(err).__name__}: {err}"
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        results[t["label"]].append(dt)
                        sent_at.append((t0 - t_begin, dt))
                        shared_hits[t["label"]] += client.last_shared
                    elif status == 503 and client.last_retry_after is not None:
                        shed[t["label"]].append(dt)
                    else:
                        errors.append(why)
                if think[1] > 0:
                    time.sleep(rng.uniform(*think))
        finally:
            client.close()

    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(users)]
    t_begin = time.perf_counter()
    t_start = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=duration + 120)
    wall = time.monotonic() - t_start

    def stats(xs: list[float]) -> dict:
        ms = [x * 1000 for x in xs]
        return {"requests": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None,
                "mean_ms": statistics.fmean(ms) if ms else None}

    everything = [x for xs in results.values() for x in xs]
    shed_s = [x for xs in shed.values() for x in xs]
    n_all = len(everything) + len(errors) + len(shed_s)
    return {"wall_s": round(wall, 1), "requests": n_all, "answered": len(everything), "errors": len(errors),
            "error_examples": errors[:5], "shed": len(shed_s), "shed_per_callback": {k: len(v) for k, v in shed.items()},
            "shed_wait_ms_max": round(max(shed_s) * 1000, 1) if shed_s else None,
            "throughput_rps": round(n_all / wall, 1), "answered_rps": round(len(everything) / wall, 1),
            "overall": stats(everything), "per_callback": {k: stats(v) for k, v in results.items()},
            # the first seconds, when no worker has answered anything yet, apart from the rest
            "first_window_s": first_window,
            "first_window": stats([dt for at, dt in sent_at if at < first_window]),
            "after_first_window": stats([dt for at, dt in sent_at if at >= first_window]),
            # answers read back from the server's shared answers (computed by a worker before, in this run)
            "shared_hits": sum(shared_hits.values()), "shared_hits_per_callback": shared_hits}


def result_path(store_name: str, users: int) -> Path:
    """benchmarks/results/load_test_<store>_<users>.json: one file per store and user count, so the
    50- and 200-user runs on one store sit side by side."""
    return REPO / "benchmarks" / "results" / f"load_test_{store_name}_{users}.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None, help="a running dashboard on loopback (default: start gunicorn on --store)")
    p.add_argument("--store", type=Path, default=None, help="artifact store to serve (default: PHENOMIX_HOME/store/tiny)")
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (max 600)")
    p.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests in all")
    p.add_argument("--think", type=float, nargs=2, default=(0.2, 1.0), metavar=("MIN", "MAX"),
                   help="seconds a user waits between requests (uniform; 0 0: back to back)")
    p.add_argument("--workers", type=int, default=None,
                   help="gunicorn workers when this script starts it (default: gunicorn.conf.py's)")
    p.add_argument("--auth-header", default=None, help="'Name: value' sent with every request (trusted-header auth)")
    p.add_argument("--accept-encoding", default=BROWSER_ENCODINGS,
                   help=f"Accept-Encoding sent, as a browser does (default {BROWSER_ENCODINGS!r}; '' for none)")
    p.add_argument("--no-shared-answers", action="store_true",
                   help="serve with PHENOMIX_SHARED_ANSWERS=0 (every answer computed by its worker)")
    p.add_argument("--first-window", type=float, default=15.0,
                   help="seconds at the start reported apart (a fresh server's misses) as well as overall")
    p.add_argument("--out", type=Path, default=None,
                   help="result file (default benchmarks/results/load_test_<store>_<users>.json)")
    p.add_argument("--server-log", type=Path, default=None,
                   help="gunicorn's log when this script starts it (default: next to --out, .log)")
    a = p.parse_args(argv)
    if not (1 <= a.users <= 500 and 0 < a.duration <= 600 and a.max_requests >= 1):
        p.error("--users 1-500, --duration 1-600 s, --max-requests >= 1")
    headers = dict([tuple(x.strip() for x in a.auth_header.split(":", 1))]) if a.auth_header else {}
    if a.accept_encoding:
        headers["Accept-Encoding"] = a.accept_encoding
    sys.path.insert(0, str(REPO))
    from benchmarks._meta import save_result, start_run

    meta = start_run(repeats=1, warmup=0, users=a.users, duration_s=a.duration)
    server, store, log, ready_s = None, None, None, None
    if a.url:
        parts = urlsplit(a.url)
        host, port = parts.hostname or "", parts.port or 80
        if host not in LOOPBACK:
            p.error(f"only loopback targets ({', '.join(LOOPBACK)}), not {host!r}")
    else:
        home = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))
        store = a.store or home / "store" / "tiny"
        if not (store / "STORE.json").exists():
            p.error(f"{store}: no artifact store (build one: python -m precompute demo --screen tiny)")
    store_name = store.resolve().name if store is not None else "url"
    out = a.out or result_path(store_name, a.users)
    if store is not None:
        log = a.server_log or out.with_suffix(".log")
        host, port = "127.0.0.1", free_port()
        t0 = time.monotonic()
        # A fresh shared cache: the run starts as a new server does, and earns what it reads back.
        cache_dir = Path(tempfile.mkdtemp(prefix="phenomix-load-cache-"))
        server = start_gunicorn(store, port, a.workers, log=log, cache_dir=cache_dir,
                                env_extra={"PHENOMIX_SHARED_ANSWERS": "0" if a.no_shared_answers else "1"})
    try:
        wait_ready(host, port)
        ready_s = round(time.monotonic() - t0, 1) if server is not None else None
        targets = discover(Client(host, port, headers=headers))
        for t in targets:
            print(f"target {t['label']}: {t['callback']['output'][:80]}  "
                  f"(varying {', '.join(f'{k[0]}={len(v)}' for k, v in t['choices'].items()) or 'nothing'})", flush=True)
        result = run_load(host, port, targets, a.users, a.duration, a.max_requests, tuple(a.think), headers=headers,
                          first_window=a.first_window)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
            shutil.rmtree(cache_dir, ignore_errors=True)
    events = worker_events(log.read_text(errors="replace")) if log is not None else None
    result.update({
        "store_name": store_name, "users": a.users, "duration_s": a.duration, "think_s": list(a.think),
        "max_requests": a.max_requests, "accept_encoding": a.accept_encoding or None,
        "server": "gunicorn gthread (gunicorn.conf.py)" if server is not None else a.url,
        # from gunicorn's log: workers x threads it ran, and any worker that died or was replaced
        "workers": events["workers"] if events else None, "worker_events": events,
        "first_answer_after_start_s": ready_s, "server_log": str(log) if log else None,
        "shared_answers": None if server is None else not a.no_shared_answers,
        "cache": "fresh temporary folder" if server is not None else "the running server's",
        # the store served: known when this script started the server; for --url, whatever that one serves
        "store": str(store.resolve()) if store is not None else None, "url": a.url,
        "targets": {t["label"]: t["callback"]["output"] for t in targets},
    })
    save_result(out, result, meta)
    o = result["overall"]
    print(f"{result['requests']} requests in {result['wall_s']} s ({result['throughput_rps']}/s), "
          f"{result['errors']} errors, {result['shed']} shed (503); p50 {o['p50_ms']:.0f} ms, "
          f"p95 {o['p95_ms']:.0f} ms, p99 {o['p99_ms']:.0f} ms" if o["requests"]
          else f"{result['errors']} errors, {result['shed']} shed, no request answered")
    print(f"answered from the shared answers: {result['shared_hits']} of {result['answered']}")
    for label, key in ((f"first {a.first_window:g} s", "first_window"), (f"after {a.first_window:g} s", "after_first_window")):
        w = result[key]
        if w["requests"]:
            print(f"  {label:<16}{w['requests']:>6}  p50 {w['p50_ms']:.0f}  p95 {w['p95_ms']:.0f}  p99 {w['p99_ms']:.0f} ms")
    for k, v in result["per_callback"].items():
        if v["requests"]:
            print(f"  {k:<16}{v['requests']:>6}  p50 {v['p50_ms']:.0f}  p95 {v['p95_ms']:.0f}  p99 {v['p99_ms']:.0f} ms")
    if events:
        print(f"workers: {events}")
    print(f"-> {out}")
    died = events and (events["worker_timeouts"] or events["worker_killed"] or events["worker_exited_abnormally"])
    return 0 if result["errors"] == 0 and not died else 1


if __name__ == "__main__":
    sys.exit(main())
