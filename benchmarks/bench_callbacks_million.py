"""The dashboard's heavy interactions at a million wells: server time cold and warm, and bytes sent.

    .venv/bin/python benchmarks/bench_callbacks_million.py            # store var/store/million
    .venv/bin/python benchmarks/bench_callbacks_million.py --store var/store/million_200000

Run bench_million.py first (it builds the store). In-process (Flask test client, no network), each
interaction is sent as the browser sends it. Per interaction:

- cold: the first call in a fresh process (one process per interaction: the app starts on the store
  as a server does, its background warm-up is waited for, then this one request). The 300 ms target
  is for this figure.
- first in process: the first call of it in this long-lived process (after the other interactions).
- new inputs: in the warm process, the first call with inputs not seen before (another well,
  perturbation or plate; --new-inputs of them, median and max): what a cache miss costs. Left empty
  for interactions whose inputs have nothing new to pick (a colour change, a page layout).
- warm: median and maximum of --repeats calls with the same inputs (cache hits).
- bytes: the JSON response (what the browser downloads) against 10 MB for the map page.

Writes benchmarks/results/callbacks_<store>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402
from benchmarks.bench_callbacks import TARGET_MS, InProcess, cold_calls, start_app, timed_call, warm_calls  # noqa: E402
from benchmarks.load_test import ROUTER, build_payload, page_components  # noqa: E402


def find_callback(deps: list[dict], output_part: str) -> dict:
    return next(cb for cb in deps if output_part in cb["output"])


def scenarios(client: InProcess, deps: list[dict], variant: int = 0) -> list[tuple[str, dict]]:
    """(label, request body) for each interaction, with values a user would produce; another
    ``variant`` picks another well, perturbation and plate (new inputs: per-process caches miss)."""
    from phenomix_dash.data import get_data

    d = get_data()
    perts = d.perturbations()["pert_id"]
    well = str(d.wells["well_id"].iloc[(len(d.wells) // 2 + variant * 104_729) % len(d.wells)])
    plate = str(d.plates["plate"].iloc[variant % len(d.plates)])
    pert = str(perts.iloc[(len(perts) // 3 + variant * 1_009) % len(perts)])
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
    from phenomix_dash.ids import PERT_SEARCH, PL_HEATMAP, PL_PLATE

    # Type-ahead on any of name, id, InChIKey or synonym (#16): the index is built in the warm-up.
    search = find_callback(deps, f"{PERT_SEARCH}.options")
    typed = str(d.perturbations()["perturbation"].iloc[(len(perts) // 5 + variant * 7_919) % len(perts)])[:7]
    out.append(("perturbation search: type a name", build_payload(
        search, {(PERT_SEARCH, "search_value"): typed, (PERT_SEARCH, "value"): None}, [f"{PERT_SEARCH}.search_value"])))

    plates_cb = find_callback(deps, f"{PL_HEATMAP}.figure")
    pl_comps = page_components(client, deps, "/plates")
    pl_vals = {(i["id"], i["property"]): pl_comps.get(i["id"], {}).get(i["property"]) for i in plates_cb["inputs"]}
    out.append(("plate heatmap: all plates", build_payload(plates_cb, pl_vals)))
    out.append(("plate heatmap: one plate", build_payload(plates_cb, {**pl_vals, (PL_PLATE, "value"): plate},
                                                               [f"{PL_PLATE}.value"])))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path(os.environ.get("PHENOMIX_HOME", REPO / "var")) / "store" / "million")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--new-inputs", type=int, default=3, help="first calls with unseen inputs, per interaction")
    p.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/callbacks_<store name>.json")
    a = p.parse_args()
    meta = start_run(repeats=a.repeats, warmup=0, store=str(a.store), new_inputs=a.new_inputs,
                     cold="one fresh process per interaction, after the app's start-up warm-up")
    client, warm_up_s = start_app(a.store)
    deps = json.loads(client.request("GET", "/_dash-dependencies")[1])
    base = scenarios(client, deps)
    variants = [dict(scenarios(client, deps, v)) for v in range(1, a.new_inputs + 1)]
    rows: list[dict[str, Any]] = []
    for label, body in base:
        cold = cold_calls(a.store, [body])
        row = {"interaction": label, "cold_ms": cold["ms"][0], "cold_status": cold["status"][0],
               "cold_process_startup_s": cold["startup_s"], "cold_warm_up_wait_s": cold["warm_up_wait_s"],
               **warm_calls(client, body, a.repeats)}
        fresh = [timed_call(client, v[label])[0] for v in variants if v[label] != body]
        row["new_inputs_median_ms"] = round(statistics.median(fresh), 1) if fresh else None
        row["new_inputs_max_ms"] = round(max(fresh), 1) if fresh else None
        row["new_inputs_n"] = len(fresh)
        row["load_avg_1min"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print(f"{label:<42} cold {row['cold_ms']:>7.0f}  first {row['first_in_process_ms']:>7.0f}  new "
              f"{'-' if not fresh else format(row['new_inputs_median_ms'], '.0f'):>6}  warm {row['warm_median_ms']:>7.1f}"
              f"  {row['bytes']:>11,} B", flush=True)
    from phenomix_dash.data import get_data

    n = len(get_data().wells)
    over = [r["interaction"] for r in rows if r["cold_ms"] > TARGET_MS]
    page = sum(r["bytes"] for r in rows if r["interaction"].startswith("map page"))
    print(f"{n:,} wells; map page (layout + figures) {page / 1e6:.2f} MB (target 10 MB); over {TARGET_MS} ms cold: {over or 'none'}")
    out = save_result(a.out or RESULTS / f"callbacks_{a.store.name}.json",
                      {"store": str(a.store), "n_wells": n, "warm_up_at_start_s": round(warm_up_s, 2),
                       "targets": {"cold_ms": TARGET_MS, "map_page_bytes": 10_000_000}, "map_page_bytes": page,
                       "over_target_cold": over, "rows": rows}, meta)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
