"""Server time of every dashboard callback on a store, measured in-process (no network).

    .venv/bin/python benchmarks/bench_callbacks.py --screen demo      # -> benchmarks/results/callbacks_demo.json

For each page, the layout is rendered through Dash's page router and every callback whose inputs
live on that page is replayed with the values the layout starts with (the first interaction a user
makes), several times; the median and maximum server time are reported against the 300 ms target.
Payloads are built the way the browser builds them (see benchmarks/load_test.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAGES = ["/", "/map", "/plates", "/activity", "/similarity", "/perturbation", "/images", "/benchmarks"]


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


def main() -> int:
    from benchmarks.load_test import build_payload, page_components
    from phenomix_dash import create_app
    from phenomix_dash.settings import Settings, default_store

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--screen", default="demo")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    app = create_app(Settings(store=default_store(a.screen)))
    client = InProcess(app.server)
    deps = json.loads(client.request("GET", "/_dash-dependencies")[1])
    rows, seen = [], set()
    for path in PAGES:
        comps = page_components(client, deps, path)
        for cb in deps:
            ids = {i["id"] for i in cb["inputs"]}
            if cb.get("clientside_function") or cb["output"] in seen or not ids or not ids <= set(comps):
                continue
            seen.add(cb["output"])
            values = {(i["id"], i["property"]): comps[i["id"]].get(i["property"])
                      for i in cb["inputs"] + cb.get("state", []) if i["id"] in comps}
            body = build_payload(cb, values)
            times, status = [], None
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                status, _ = client.request("POST", "/_dash-update-component", body)
                times.append((time.perf_counter() - t0) * 1000)
            rows.append({"page": path, "callback": cb["output"][:90], "status": status,
                         "median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
                         "first_ms": round(times[0], 1)})
    print(f"{'page':<14}{'status':>7}{'median ms':>11}{'max ms':>9}  callback")
    for r in rows:
        print(f"{r['page']:<14}{r['status']:>7}{r['median_ms']:>11.1f}{r['max_ms']:>9.1f}  {r['callback']}")
    worst = max(r["median_ms"] for r in rows)
    print(f"{len(rows)} callbacks; slowest median {worst:.0f} ms (target 300 ms)")
    import os
    out = REPO / "benchmarks" / "results" / f"callbacks_{a.screen}.json"
    out.write_text(json.dumps({"screen": a.screen, "repeats": a.repeats, "load_average": os.getloadavg(),
                               "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
