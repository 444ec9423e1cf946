"""Server time of every dashboard callback on a store, cold and warm, measured in-process (no network).

    .venv/bin/python benchmarks/bench_callbacks.py --screen demo      # -> benchmarks/results/callbacks_demo.json

For each page, the layout is rendered through Dash's page router and every callback whose inputs
live on that page is replayed with the values the layout starts with (the first interaction a user
makes). Payloads are built the way the browser builds them (see benchmarks/load_test.py).

- cold: a fresh Python process per page starts the app on the store (as a server start does, incl.
  its background warm-up, which it waits for), then sends the page's layout request and each of its
  callbacks once, in page order: the first visitor of that page after a restart. The 300 ms target
  applies to this figure.
- first in process: the first call in this (long-lived) process, after other pages' calls.
- warm: median and maximum of --repeats further calls with the same inputs (per-process caches hit).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402

PAGES = ["/", "/map", "/plates", "/activity", "/similarity", "/perturbation", "/images", "/benchmarks"]
TARGET_MS = 300
UPDATE = "/_dash-update-component"


class InProcess:
    """The load test's client interface over Flask's test client."""

    def __init__(self, server: Any) -> None:
        self.client = server.test_client()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if method == "GET":
            r = self.client.get(path)
        else:
            r = self.client.post(path, data=json.dumps(body), content_type="application/json")
        return r.status_code, r.data


def start_app(store: Path) -> tuple[InProcess, float]:
    """The app on ``store`` as a server starts it; returns once its background warm-up is done."""
    from phenomix.settings import Settings
    from phenomix_dash import cache, create_app, limit_blas_for_serving

    # A fresh shared cache: the workers' disk tier would otherwise answer "cold" calls from an earlier run.
    cache.configure_disk(tempfile.mkdtemp(prefix="phenomix-bench-cache-"))
    limit_blas_for_serving()  # as every serving process does (app.py, gunicorn workers)
    app = create_app(Settings(store=store))
    t0 = time.perf_counter()
    for t in threading.enumerate():
        if t.name == "phenomix-warm-up":
            t.join()
    return InProcess(app.server), time.perf_counter() - t0


def timed_call(client: InProcess, body: dict) -> tuple[float, int, int]:
    """(server ms, status, response bytes) of one callback request."""
    t0 = time.perf_counter()
    status, data = client.request("POST", UPDATE, body)
    return (time.perf_counter() - t0) * 1000, status, len(data)


def cold_calls(store: Path, bodies: list[dict]) -> dict[str, Any]:
    """Send ``bodies`` once each, in order, from a fresh process on ``store``: ms per call."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(bodies, f)
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--cold-child", f.name, "--store", str(store)],
                              capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - t0
    finally:
        Path(f.name).unlink(missing_ok=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COLD ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"cold child failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return {**json.loads(lines[-1][5:]), "process_wall_s": round(wall, 1)}


def _cold_child(payloads: Path, store: Path) -> int:
    bodies = json.loads(payloads.read_text())
    t0 = time.perf_counter()
    client, warm_up_s = start_app(store)
    start_s = time.perf_counter() - t0
    out = [timed_call(client, b) for b in bodies]
    print("COLD " + json.dumps({"startup_s": round(start_s, 2), "warm_up_wait_s": round(warm_up_s, 2),
                                "ms": [round(ms, 1) for ms, _, _ in out], "status": [s for _, s, _ in out]}))
    return 0


def n_wells(store: Path) -> int:
    from phenomix_dash.data import PhenomixData

    return int(PhenomixData(store).run.get("screen", {}).get("n_wells", 0))


def wait_for_jobs(timeout: float = 300.0) -> None:
    """Until the background jobs this process started (child processes) have finished."""
    import psutil

    def running() -> list:
        # A finished job stays a zombie until the manager reaps it (at its next job): it is done.
        out = []
        for child in psutil.Process().children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    out.append(child)
            except psutil.NoSuchProcess:
                pass
        return out

    t0 = time.perf_counter()
    while running() and time.perf_counter() - t0 < timeout:
        time.sleep(0.2)


def warm_calls(client: InProcess, body: dict, repeats: int) -> dict[str, Any]:
    """The first call in this process, then ``repeats`` more with the same inputs (none: no warm figures)."""
    calls = [timed_call(client, body) for _ in range(repeats + 1)]
    warm = [ms for ms, _, _ in calls[1:]]
    return {"status": calls[-1][1], "first_in_process_ms": round(calls[0][0], 1),
            "warm_median_ms": round(statistics.median(warm), 1) if warm else None,
            "warm_max_ms": round(max(warm), 1) if warm else None,
            "bytes": calls[-1][2]}


def shell_components(client: InProcess) -> dict[str, dict]:
    """id -> props of the app shell around every page (navbar, set chooser, the set store)."""
    from benchmarks.load_test import walk

    layout = json.loads(client.request("GET", "/_dash-layout")[1])
    return {c["props"]["id"]: c["props"] for c in walk(layout) if isinstance(c["props"].get("id"), str)}


def page_callbacks(client: InProcess, deps: list[dict], path: str, seen: set, *, values: dict | None = None,
                   clicks: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
    """(callback output, request body) of each callback first fired by ``path``'s layout (with the app
    shell's components, ``values`` {"id.prop": value} overriding what the layout starts with), then of
    each callback a click on one of ``clicks`` (button ids on this page) fires."""
    from benchmarks.load_test import build_payload, page_components, split_output

    comps = {**shell_components(client), **page_components(client, deps, path)}
    for key, value in (values or {}).items():
        cid, _, prop = key.partition(".")
        comps.setdefault(cid, {})[prop] = value
    out = []
    for cb in deps:
        ids = {i["id"] for i in cb["inputs"]}
        clicked = [i["id"] for i in cb["inputs"] if i["property"] == "n_clicks" and i["id"] in clicks]
        if cb.get("clientside_function") or not ids or not ids <= set(comps):
            continue
        outs = {oid for oid, _ in split_output(cb["output"]) if not oid.startswith("{")}
        if outs and not outs & set(comps):  # its outputs live on another page (the shell's inputs are everywhere)
            continue
        if not clicked and (cb["output"] in seen or cb.get("prevent_initial_call")):
            continue
        seen.add(cb["output"])
        vals = {(i["id"], i["property"]): comps[i["id"]].get(i["property"])
                for i in cb["inputs"] + cb.get("state", []) if i["id"] in comps}
        vals.update({(cid, "n_clicks"): 1 for cid in clicked})
        label = cb["output"] + (f" (click {', '.join(clicked)})" if clicked else "")
        out.append((label, build_payload(cb, vals, [f"{c}.n_clicks" for c in clicked] if clicked else None)))
    return out


def view_placeholders(store: Path) -> dict[str, str]:
    """Values for {A}, {B} (two box selections on the raw well map, each a tenth of its x range and
    the middle 60% of its y range, URL-encoded) and {SET} (the screen's largest annotation set), so
    a page list can name views of any store: ``/map?sel={A}&selA={A}&selB={B}&set={SET}``."""
    from urllib.parse import quote

    import numpy as np

    from phenomix_dash import set_data
    from phenomix_dash.data import PhenomixData
    from phenomix_dash.gene_sets import encode_annotation
    from phenomix_dash.selection import encode_region

    d = PhenomixData(store)
    xy = d.umap("raw")
    y0, y1 = np.quantile(xy[:, 1], [0.2, 0.8])

    def box(q0: float, q1: float) -> str:
        x0, x1 = np.quantile(xy[:, 0], [q0, q1])
        return quote(encode_region("raw", np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])), safe="")

    sets = [(len(m), src, name) for src, named in set_data.screen_sets(d).items() for name, m in named.items()]
    _, src, name = max(sets) if sets else (0, None, None)
    return {"A": box(0.1, 0.2), "B": box(0.6, 0.7), "SET": quote(encode_annotation(src, name), safe="") if src else ""}


def layout_body(deps: list[dict], url: str) -> dict:
    """The page router's request for ``url`` (a path, optionally with its query string)."""
    from benchmarks.load_test import ROUTER, build_payload

    router = next(d for d in deps if d["output"] == ROUTER)
    path, _, query = url.partition("?")
    return build_payload(router, {("_pages_location", "pathname"): path,
                                  ("_pages_location", "search"): "?" + query if query else ""})


def main() -> int:
    from phenomix.settings import default_store

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--screen", default="demo")
    p.add_argument("--store", type=Path, default=None, help="default: the screen's store")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pages", default=None,
                   help="comma-separated page URLs, query strings allowed (a view opened from a link; "
                        "{A}, {B}: two selections, {SET}: the largest annotation set, see view_placeholders); "
                        "default: every page as opened from the navbar")
    p.add_argument("--values", default=None,
                   help='JSON {"component-id.prop": value}: what a user has set (e.g. the gene set store, a pasted list)')
    p.add_argument("--clicks", default="", help="comma-separated button ids: also time the callbacks a click fires")
    p.add_argument("--cold-processes", type=int, default=1,
                   help="fresh processes per page, each one cold sample: cold_ms is their median, cold_ms_max the worst")
    p.add_argument("--name", default=None, help="results file callbacks_NAME.json (default: the screen)")
    p.add_argument("--cold-child", type=Path, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    store = a.store or default_store(a.screen)
    if a.cold_child:
        return _cold_child(a.cold_child, store)
    meta = start_run(repeats=a.repeats, warmup=0, store=str(store),
                     cold="one fresh process per page (layout, then each callback once)")
    client, warm_up_s = start_app(store)
    deps = json.loads(client.request("GET", "/_dash-dependencies")[1])
    rows, seen = [], set()
    # A background callback's request only starts its job (the browser then polls): its row is the
    # server thread's time, not the job's.
    background = {d["output"] for d in deps if d.get("background")}
    pages = a.pages.split(",") if a.pages else PAGES
    values = json.loads(a.values) if a.values else None
    if any("{" in p for p in pages) or "{" in (a.values or ""):
        views = view_placeholders(store)
        pages = [p.format(**views) for p in pages]
        values = {k: unquote(v.format(**views)) if isinstance(v, str) else v for k, v in (values or {}).items()}
    for path in pages:
        fired = page_callbacks(client, deps, path, seen, values=values,
                               clicks=tuple(c for c in a.clicks.split(",") if c))
        # Background callbacks last, each called once: their jobs run in child processes that would
        # otherwise compete with the calls timed after them.
        fired.sort(key=lambda lb: lb[0].split(" (click")[0] in background)
        calls = [(f"{path} layout", layout_body(deps, path)), *fired]
        # Each fresh process is one cold sample; on a shared VM one sample of a first call swung
        # 120-680 ms between quiet runs, so --cold-processes N reports the median and the worst.
        colds = [cold_calls(store, [b for _, b in calls]) for _ in range(a.cold_processes)]
        cold = colds[0]
        for i, (label, body) in enumerate(calls):
            is_bg = label.split(" (click")[0] in background
            samples = [c["ms"][i] for c in colds]
            rows.append({"page": path, "callback": label[:90], "background": is_bg,
                         "cold_ms": round(statistics.median(samples), 1), "cold_ms_max": max(samples),
                         "cold_ms_samples": samples,
                         "cold_status": cold["status"][i], "cold_process_startup_s": cold["startup_s"],
                         **warm_calls(client, body, 0 if is_bg else a.repeats)})
        wait_for_jobs()
    print(f"{'page':<14}{'status':>7}{'cold ms':>9}{'first ms':>10}{'warm med':>10}{'warm max':>10}  callback")
    for r in rows:
        print(f"{r['page'].split('?')[0] + ('?' if '?' in r['page'] else ''):<14}{r['status']:>7}{r['cold_ms']:>9.0f}{r['first_in_process_ms']:>10.0f}"
              + "".join(f"{'-' if v is None else format(v, '.1f'):>10}" for v in (r["warm_median_ms"], r["warm_max_ms"]))
              + f"  {r['callback']}")
    over = [r["callback"] for r in rows if r["cold_ms"] > TARGET_MS]
    if a.cold_processes > 1:
        print(f"cold = median of {a.cold_processes} fresh processes; over target in the worst one: "
              f"{[(r['callback'][:50], r['cold_ms_max']) for r in rows if r['cold_ms_max'] > TARGET_MS] or 'none'}")
    print(f"{len(rows)} calls; slowest cold {max(r['cold_ms'] for r in rows):.0f} ms, slowest warm median "
          f"{max((r['warm_median_ms'] for r in rows if not r['background']), default=0):.0f} ms (target {TARGET_MS} ms, cold); over target cold: {over or 'none'}")
    out = save_result(RESULTS / f"callbacks_{a.name or a.screen}.json",
                      {"screen": a.screen, "pages": pages, "store": str(store), "n_wells": n_wells(store),
                       "warm_up_at_start_s": round(warm_up_s, 2),
                       "targets": {"cold_ms": TARGET_MS}, "over_target_cold": over, "rows": rows}, meta)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
