"""The dashboard's heavy interactions at a million wells: server time AND bytes sent per call.

    .venv/bin/python benchmarks/bench_callbacks_million.py            # store var/store/million
    .venv/bin/python benchmarks/bench_callbacks_million.py --store var/store/million_200000

Run bench_million.py first (it builds the store). In-process (Flask test client, no network), each
interaction is sent as the browser sends it, several times; the table gives median and maximum
server milliseconds and the size of the JSON response (what the browser downloads) against the
targets: 300 ms per interaction, 10 MB for the map page. The first call of each is reported too
(it pays for loading the store's arrays). Writes benchmarks/results/callbacks_<store>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_callbacks import InProcess  # noqa: E402
from benchmarks.load_test import ROUTER, build_payload, page_components  # noqa: E402


def find_callback(deps: list[dict], output_part: str) -> dict:
    return next(cb for cb in deps if output_part in cb["output"])


def scenarios(client: InProcess, deps: list[dict]) -> list[tuple[str, dict]]:
    """(label, request body) for each interaction, with values a user would produce."""
    from phenomix_dash.data import get_data

    d = get_data()
    well = str(d.wells["well_id"].iloc[len(d.wells) // 2])
    plate = str(d.plates["plate"].iloc[0])
    pert = str(d.perturbations()["pert_id"].iloc[len(d.perturbations()) // 3])
    maps = find_callback(deps, "map-raw-figure.figure")
    comps = page_components(client, deps, "/map")
    base = {(i["id"], i["property"]): comps.get(i["id"], {}).get(i["property"]) for i in maps["inputs"] + maps["state"]}
    drawn = {"level": "wells", "color": "perturbation_type", "spaces": ["aligned", "raw"]}
    router = find_callback(deps, ROUTER)
    out = [("map page: layout", build_payload(router, {("_pages_location", "pathname"): "/map",
                                                       ("_pages_location", "search"): ""})),
           ("map page: both figures drawn", build_payload(maps, {**base, ("map-drawn", "data"): None},
                                                          ["map-level.value"]))]
    for colour in ("batch", "plate", "row"):
        out.append((f"map colour change -> {colour}",
                    build_payload(maps, {**base, ("map-color-by", "value"): colour, ("map-drawn", "data"): drawn},
                                  ["map-color-by.value"])))
    out.append(("map click: highlight a well", build_payload(
        maps, {**base, ("map-point", "data"): well, ("map-drawn", "data"): drawn}, ["map-point.data"])))
    panel = find_callback(deps, "map-panel.children")
    out.append(("neighbour lookup: well panel", build_payload(
        panel, {("map-point", "data"): well, ("map-level", "value"): "wells"})))
    out.append(("neighbour lookup: perturbation panel", build_payload(
        panel, {("map-point", "data"): pert, ("map-level", "value"): "perturbations"})))
    out.append(("map perturbation level drawn", build_payload(
        maps, {**base, ("map-level", "value"): "perturbations", ("map-drawn", "data"): None}, ["map-level.value"])))
    sim = find_callback(deps, "similarity-heatmap.figure")
    sim_comps = page_components(client, deps, "/similarity")
    sim_vals = {(i["id"], i["property"]): sim_comps.get(i["id"], {}).get(i["property"]) for i in sim["inputs"] + sim.get("state", [])}
    for kind in ("gene_compound", "gene_gene", "compound_compound"):
        vals = {**sim_vals, ("similarity-kind", "value"): kind}
        out.append((f"heatmap slice: {kind}", build_payload(sim, vals)))
    from phenomix_dash.pages.plates import PL_HEATMAP, PL_PLATE

    plates_cb = find_callback(deps, f"{PL_HEATMAP}.figure")
    pl_comps = page_components(client, deps, "/plates")
    pl_vals = {(i["id"], i["property"]): pl_comps.get(i["id"], {}).get(i["property"]) for i in plates_cb["inputs"]}
    out.append(("plate heatmap: all plates", build_payload(plates_cb, pl_vals)))
    out.append((f"plate heatmap: plate {plate}", build_payload(plates_cb, {**pl_vals, (PL_PLATE, "value"): plate},
                                                               [f"{PL_PLATE}.value"])))
    return out


def main() -> int:
    from phenomix_dash import create_app
    from phenomix_dash.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path(os.environ.get("PHENOMIX_HOME", REPO / "var")) / "store" / "million")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    app = create_app(Settings(store=a.store))
    client = InProcess(app.server)
    deps = json.loads(client.request("GET", "/_dash-dependencies")[1])
    load0 = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for label, body in scenarios(client, deps):
        times, sizes, status, cpu = [], [], None, []
        for _ in range(a.repeats + 1):
            c0, t0 = time.process_time(), time.perf_counter()
            status, data = client.request("POST", "/_dash-update-component", body)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            sizes.append(len(data))
        warm = times[1:]
        rows.append({"interaction": label, "status": status, "first_ms": round(times[0], 1),
                     "median_ms": round(statistics.median(warm), 1), "max_ms": round(max(warm), 1),
                     "median_cpu_ms": round(statistics.median(cpu[1:]), 1), "bytes": sizes[-1],
                     "load_avg_1min": round(os.getloadavg()[0], 2)})
    print(f"{'interaction':<42}{'status':>7}{'first ms':>10}{'median ms':>11}{'max ms':>9}{'cpu ms':>8}{'bytes':>12}")
    for r in rows:
        print(f"{r['interaction']:<42}{r['status']:>7}{r['first_ms']:>10.0f}{r['median_ms']:>11.0f}{r['max_ms']:>9.0f}"
              f"{r['median_cpu_ms']:>8.0f}{r['bytes']:>12,}")
    from phenomix_dash.data import get_data

    n = len(get_data().wells)
    slow = [r["interaction"] for r in rows if r["median_ms"] > 300]
    page = sum(r["bytes"] for r in rows if r["interaction"].startswith("map page"))
    print(f"{n:,} wells; map page (layout + figures) {page / 1e6:.2f} MB (target 10 MB); over 300 ms (median): {slow or 'none'}")
    out = REPO / "benchmarks" / "results" / f"callbacks_{a.store.name}.json"
    out.write_text(json.dumps({"store": str(a.store), "n_wells": n, "repeats": a.repeats,
                               "load_average_start": load0, "load_average_end": os.getloadavg(),
                               "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                               "targets": {"median_ms": 300, "map_page_bytes": 10_000_000}, "rows": rows}, indent=2))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
