"""First paint and bytes over the wire of every page, in headless Chromium driving the real app.

    .venv/bin/python benchmarks/bench_browser_paint.py --screen demo                 # -> browser_paint_demo.json
    .venv/bin/python benchmarks/bench_browser_paint.py --store var/store/million     # -> browser_paint_million.json

For each page the app is started afresh (``python app.py --store ... --port ...``, its own empty
dashboard cache, so nothing from an earlier run answers), and:

- ready: seconds from launching the process to the first 200 on ``/`` (target 5 s).
- first visit: as soon as the app is ready (its background warm-up may still be running, as for
  the first user after a restart), a new Chromium (empty cache) opens the page's URL.
- warm visits: once the server is idle (its background warm-up done: under 10% of a CPU for 2 s,
  read from /proc), --warm more visits of the same URL by a new visitor (browser cache cleared
  before each: every bundle and response is downloaded again).

Per visit:

- paint_s: seconds from navigation start until the page has drawn and settled: the time of the
  last change to the document (a DOM mutation: React rendering a callback's output, plotly drawing
  a figure's layers) or the last callback response read, after which nothing changes for QUIET_MS
  with no callback (POST to /_dash-update-component) in flight and the page container
  (#_pages_content) holding content. An injected script (CDP Page.addScriptToEvaluateOnNewDocument)
  watches from the document's start, so the figure does not depend on when selenium looks.
  Target: 2 s.
- fcp_s: the browser's own first-contentful-paint (the navbar: it says little about the page).
- bytes: sum of ``transferSize`` (compressed body plus headers, as received) over the navigation
  and every resource entry (scripts, CSS, the layout, each /_dash-update-component response) up
  to the end of the quiet window; ``callback_bytes`` and ``decoded_bytes`` split it. Target for the
  map page: 4 MB.
- callbacks: number of callback requests made.

Writes benchmarks/results/browser_paint_<store>.json (run record: benchmarks/_meta.py). Software
rendering (--disable-gpu, SwiftShader WebGL), window 1400 x 1000 like the browser tests.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402

PAGES = ["/", "/map", "/plates", "/activity", "/similarity", "/perturbation", "/images", "/benchmarks",
         "/sets", "/compare"]
PAINT_TARGET_S, READY_TARGET_S, MAP_BYTES_TARGET = 2.0, 5.0, 4_000_000
QUIET_MS = 1000
CALLBACK = "/_dash-update-component"

# Runs in every new document before the page's own scripts (see the docstring for the definition).
WATCHER = """
(() => {
  performance.setResourceTimingBufferSize(5000);
  const QUIET = %(quiet)d;
  let inflight = 0, calls = 0, last = 0;
  const s = window.__phenomixPaint = {done: false, paint: null, calls: 0, end: null};
  const touch = () => { last = performance.now(); };
  // A callback is in flight until its body has been read (Dash reads it with .json()).
  const origFetch = window.fetch;
  window.fetch = function(input, init) {
    const url = typeof input === 'string' ? input : (input && input.url) || '';
    if (!url.includes('%(callback)s')) return origFetch.apply(this, arguments);
    inflight++; calls++; touch();
    let open = true;
    const done = () => { if (open) { open = false; inflight--; touch(); } };
    return origFetch.apply(this, arguments).then(res => {
      if (res.status !== 200) { done(); return res; }
      for (const m of ['json', 'text']) {
        const orig = res[m].bind(res);
        res[m] = () => orig().finally(done);
      }
      setTimeout(done, 60000);  // a body nobody reads must not hold the page open forever
      return res;
    }, err => { done(); throw err; });
  };
  // Every change to the document (React commits, plotly drawing its layers) is activity.
  new MutationObserver(touch).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  const settled = () => {
    const c = document.getElementById('_pages_content');
    return c && calls > 0 && inflight === 0 && (c.textContent.trim() || c.querySelector('.js-plotly-plot'))
      && performance.now() - last >= QUIET;
  };
  const timer = setInterval(() => {
    if (settled()) { s.done = true; s.paint = last; s.calls = calls; s.end = performance.now(); clearInterval(timer); }
  }, 50);
})();
"""

COLLECT = """
const s = window.__phenomixPaint || {};
const nav = performance.getEntriesByType('navigation')[0] || {};
const res = performance.getEntriesByType('resource').filter(r => r.startTime <= (s.end || Infinity));
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
const cb = res.filter(r => r.name.includes(arguments[0]));
const sum = (xs, k) => xs.reduce((n, r) => n + (r[k] || 0), 0);
return {done: !!s.done, paint_ms: s.paint, calls: s.calls, fcp_ms: fcp ? fcp.startTime : null,
        bytes: (nav.transferSize || 0) + sum(res, 'transferSize'), decoded_bytes: (nav.decodedBodySize || 0) + sum(res, 'decodedBodySize'),
        callback_bytes: sum(cb, 'transferSize'), callback_decoded_bytes: sum(cb, 'decodedBodySize'),
        largest_callback_bytes: Math.max(0, ...cb.map(r => r.transferSize || 0)), resources: res.length};
"""


def free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"no free port in {preferred}..{preferred + 49}")


def start_server(store: Path, port: int, home: Path, timeout: float) -> tuple[subprocess.Popen, float]:
    """The app as `python app.py` starts it; returns once / answers 200 (seconds since launch)."""
    env = {**os.environ, "PHENOMIX_HOME": str(home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    log = open(home / "server.log", "ab")  # noqa: SIM115 (the server writes to it until stopped)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--store", str(store), "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited ({proc.returncode}); see {home / 'server.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                if r.status == 200:
                    return proc, time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the app did not answer / within {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(proc: subprocess.Popen, timeout: float, window: float = 2.0, busy: float = 0.1) -> float:
    """Wait until the server has used under ``busy`` of a CPU for ``window`` seconds (its background
    warm-up is done); returns the seconds waited (the timeout if it never settles)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        before = cpu_seconds(proc.pid)
        time.sleep(window)
        if cpu_seconds(proc.pid) - before < busy * window:
            break
    return time.perf_counter() - t0


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def new_browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                           {"source": WATCHER % {"quiet": QUIET_MS, "callback": CALLBACK}})
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


def visit(driver: Any, url: str, timeout: float) -> dict[str, Any]:
    """One visit of ``url`` by a visitor with an empty browser cache."""
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get(url)
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if driver.execute_script("return !!(window.__phenomixPaint && window.__phenomixPaint.done)"):
            break
        time.sleep(0.1)
    r = driver.execute_script(COLLECT, CALLBACK)
    out = {"painted": r["done"], "paint_s": round(r["paint_ms"] / 1000, 3) if r["done"] else None,
           "fcp_s": round(r["fcp_ms"] / 1000, 3) if r["fcp_ms"] is not None else None,
           **{k: r[k] for k in ("calls", "bytes", "decoded_bytes", "callback_bytes", "callback_decoded_bytes",
                                "largest_callback_bytes", "resources")}}
    if not r["done"]:
        out["error"] = f"not drawn within {timeout} s"
    return out


def bench_page(store: Path, page: str, port: int, warm: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="phenomix-paint-") as home:
        proc, ready_s = start_server(store, port, Path(home), timeout)
        driver = None
        try:
            driver = new_browser()
            url = f"http://127.0.0.1:{port}{page}"
            first = visit(driver, url, timeout)
            settle_s = wait_idle(proc, timeout)
            warm_visits = [visit(driver, url, timeout) for _ in range(warm)]
        finally:
            if driver is not None:
                driver.quit()
            stop_server(proc)
    paints = [v["paint_s"] for v in warm_visits if v["paint_s"] is not None]
    return {"page": page, "ready_s": round(ready_s, 2), "first": first, "warm": warm_visits,
            "waited_for_idle_server_s": round(settle_s, 1),
            "warm_paint_median_s": round(statistics.median(paints), 3) if paints else None,
            "warm_paint_max_s": max(paints) if paints else None,
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def main() -> int:
    from phenomix.settings import default_store

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--screen", default="demo")
    p.add_argument("--store", type=Path, default=None, help="default: the screen's store")
    p.add_argument("--pages", default=",".join(PAGES), help="comma-separated page paths (query strings allowed)")
    p.add_argument("--warm", type=int, default=3, help="warm visits per page, each by a new visitor")
    p.add_argument("--port", type=int, default=int(os.environ.get("PHENOMIX_TEST_PORT", 8790)))
    p.add_argument("--timeout", type=float, default=120, help="seconds per start and per visit")
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/browser_paint_<store>.json")
    a = p.parse_args()
    store = (a.store or default_store(a.screen)).resolve()
    meta = start_run(repeats=a.warm, warmup=0, store=str(store), quiet_ms=QUIET_MS,
                     first="first visit of the page after a fresh start of the app (own empty cache)",
                     warm="new visitor (browser cache cleared) to the warm server, once it is idle")
    rows = []
    for page in a.pages.split(","):
        row = bench_page(store, page, free_port(a.port), a.warm, a.timeout)
        rows.append(row)
        f = row["first"]
        print(f"{page:<14} ready {row['ready_s']:>5.1f} s  first paint {f['paint_s'] or float('nan'):>6.2f} s "
              f"{f['bytes'] / 1e6:>6.2f} MB  warm paint {row['warm_paint_median_s'] or float('nan'):>6.2f} s "
              f"(max {row['warm_paint_max_s'] or float('nan'):.2f})  callbacks {f['calls']}  load {row['load_avg_1min']}",
              flush=True)
    slowest = max((v["paint_s"] or float("inf")) for r in rows for v in [r["first"], *r["warm"]])
    map_rows = [r for r in rows if r["page"].split("?")[0] == "/map"]
    map_bytes = max((v["bytes"] for r in map_rows for v in [r["first"], *r["warm"]]), default=None)
    summary = {"slowest_paint_s": slowest, "slowest_ready_s": max(r["ready_s"] for r in rows), "map_page_bytes": map_bytes,
               "over_paint_target": sorted({r["page"] for r in rows for v in [r["first"], *r["warm"]]
                                            if v["paint_s"] is None or v["paint_s"] > PAINT_TARGET_S})}
    print(f"slowest paint {slowest:.2f} s (target {PAINT_TARGET_S}); slowest start {summary['slowest_ready_s']:.1f} s "
          f"(target {READY_TARGET_S}); map page {map_bytes and map_bytes / 1e6:.2f} MB over the wire (target 4 MB)")
    out = save_result(a.out or RESULTS / f"browser_paint_{store.name}.json",
                      {"store": str(store), "targets": {"paint_s": PAINT_TARGET_S, "ready_s": READY_TARGET_S,
                                                        "map_page_bytes": MAP_BYTES_TARGET},
                       **summary, "rows": rows}, meta)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
