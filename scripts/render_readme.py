"""Render the README's figure tables from benchmarks/results/*.json, between marker comments.

    .venv/bin/python scripts/render_readme.py           # rewrite the blocks in README.md (idempotent)
    .venv/bin/python scripts/render_readme.py --check   # exit 1 and show the difference if stale

A block is ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``; everything between the two
markers is generated, everything outside is hand-written (and carries no measured number). A
figure whose results file or field is missing renders as "not measured", never as an old value.
Under each table: the conditions of every results file it drew on (commit, repeats, threads, load).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
MISSING = "not measured"
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


class Results:
    """Loads results files once and remembers which ones a block used (for its conditions line)."""

    def __init__(self, folder: Path = RESULTS) -> None:
        self.folder = folder
        self.used: list[str] = []
        self.stale: list[str] = []

    def get(self, name: str) -> dict[str, Any] | None:
        """A results file's content; None when it is missing or has no run record (an older format)."""
        path = self.folder / name
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        if "meta" not in data:
            if name not in self.stale:
                self.stale.append(name)
            return None
        if name not in self.used:
            self.used.append(name)
        return data

    def conditions(self) -> str:
        lines = [f"- `{name}`: predates the run record (command, commit, load), so not shown: re-run its script"
                 for name in self.stale]
        for name in self.used:
            m = (self.get(name) or {})["meta"]
            env = (m.get("threads") or {}).get("env") or {}
            before, after = (m.get("load_before") or [None])[0], (m.get("load_after") or [None])[0]
            dirty = " + uncommitted changes" if m.get("dirty") else ""
            lines.append(f"- `{name}`: `{m.get('command')}` at {str(m.get('commit'))[:10]}{dirty}, "
                         f"repeats {m.get('repeats')}, OMP_NUM_THREADS={env.get('OMP_NUM_THREADS')}, "
                         f"load {before} → {after} (1 min), {str(m.get('finished', ''))[:16].replace('T', ' ')}")
        self.used, self.stale = [], []
        return "\n".join(lines)


def num(v: Any, fmt: str = "{:.3f}") -> str:
    return MISSING if v is None else fmt.format(v)


def secs(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def best_median(t: dict | None) -> str:
    return "–" if not t else f"{secs(t['best_s'])} ({secs(t['median_s'])})"


# ---------------------------------------------------------------------------------------- blocks

def scorecard(res: Results) -> str:
    card = res.get("demo_scorecard.json")
    if not card:
        return f"Demo scorecard: {MISSING} (run `benchmarks/demo_scorecard.py`).\n\n" + res.conditions() + "\n"
    align = card["primary_align"]
    sources = list(dict.fromkeys(r["source"] for r in card["recall"]))
    pairs = {r["source"]: r["n_pairs"] for r in card["recall"]}

    def pick(table: str, **match: Any) -> dict | None:
        return next((r for r in card[table] if all(r.get(k) == v for k, v in match.items())), None)

    chance = next((r["chance"] for r in card["batch"] if r["label"] == "batch"), None)
    best = {s: max((r["recall"] for r in card["recall"] if r["source"] == s and r["space"] == align), default=None)
            for s in sources}
    head = (f"| embedder (after {align.upper()}) | " + " | ".join(sources)
            + f" | replicate mAP raw → {align.upper()} | batch kNN accuracy raw → {align.upper()} (chance {num(chance, '{:.2f}')})"
            " | compound–gene AUC (mean AP) |")
    lines = [f"Measured by the pipeline's evaluate stage on that screen (tables in `var/store/demo/evaluate-{card['evaluate_key']}/`; "
             + ", ".join(f"{pairs[s]:,} {s.removeprefix('synthetic_')} pairs" for s in sources) + "):", "",
             head, "|---|" + "---:|" * (len(sources) + 3)]
    for e in card["embedders"]:
        name = e["embedder"]
        cells = []
        for s in sources:
            r = pick("recall", embedder=name, space=align, source=s)
            v = num(r and r["recall"])
            cells.append(f"**{v}**" if r and r["recall"] == best[s] else v)
        rep_raw, rep_al = pick("replicate_map", embedder=name, space="raw"), pick("replicate_map", embedder=name, space=align)
        b_raw = pick("batch", embedder=name, space="raw", label="batch")
        b_al = pick("batch", embedder=name, space=align, label="batch")
        cg = pick("compound_gene", embedder=name, space=align)
        cells += [f"{num(rep_raw and rep_raw['map'])} → {num(rep_al and rep_al['map'])}",
                  f"{num(b_raw and b_raw['accuracy'], '{:.2f}')} → {num(b_al and b_al['accuracy'], '{:.2f}')}",
                  f"{num(cg and cg['mean_auc'], '{:.2f}')} ({num(cg and cg['mean_ap'], '{:.2f}')})"]
        lines.append(f"| {e['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + res.conditions() + "\n"


def real_data(res: Results) -> str:
    rd = res.get("real_data.json")
    if not rd:
        return f"Real-data report: {MISSING} (run `benchmarks/real_data_report.py`).\n\n" + res.conditions() + "\n"
    labels = {"as published": "profiles as published (plate-normalised, feature-selected)",
              "centerscale": "+ center-scale on DMSO", "spherize": "+ spherize (ZCA on DMSO)", "tvn": "+ TVN on DMSO"}
    split = {r["space"]: r for r in rd.get("replicate_retrieval_split_controls", [])}
    rows = [r for r in rd["replicate_retrieval"] if r["features"].startswith("all")]
    n_ctrl = next(iter(split.values()), {})
    lines = ["| JUMP-MOA plate, replicate retrieval vs DMSO (copairs), all features | dim | mAP, DMSO both fit and negatives | "
             "fraction q < 0.05 | mAP, DMSO split (fit on half, rank against the other half) | fraction q < 0.05, split |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = split.get(r["space"])
        if s is None:
            sp = (MISSING, MISSING)
        elif "error" in s:
            sp = (f"not computed ({s['error']})", "")
        else:
            sp = (f"{s['mAP']:.3f} ({s['mAP_min']:.3f}–{s['mAP_max']:.3f})", f"{s['fraction_q05']:.1%}")
        lines.append(f"| {labels.get(r['space'], r['space'])} | {r['dim']} | {r['mAP']:.3f} | {r['fraction_q05']:.1%} | {sp[0]} | {sp[1]} |")
    for k, v in rd.get("reference", {}).items():
        lines.append(f"| reference: {k} (a different metric) | | | {v} | | |")
    if n_ctrl:
        lines += ["", f"The first mAP column fits each alignment on the same DMSO wells that then serve as the negatives, "
                      f"which flatters the methods fitted on them; the split columns fit on {n_ctrl['n_fit_controls']} DMSO "
                      f"wells and rank against the other {n_ctrl['n_negative_controls']} (mean and range over "
                      f"{n_ctrl['splits']} seeded splits). Compare rows within a column: with fewer negatives every mAP "
                      f"is higher."]
    m, d = rd.get("moa_retrieval"), rd.get("dose")
    lines.append("")
    if m:
        lines.append(f"- MOA retrieval ({m['n_compounds']} compounds, {m['n_moas']} MOAs, replicate-mean profiles, spherized): "
                     f"mAP {m['mAP']:.3f} against a permutation null of {m['null_mean']:.3f} (p = {m['p_value']:.2g}).")
    if d:
        lines.append(f"- Dose (LINCS): of {d['n_effect']} compounds with an effect at the top dose, "
                     f"{d['fraction_positive_effect']:.0%} move further from DMSO as the dose rises (median Spearman "
                     f"{d['median_rho_effect']:.2f}; sign test p = {d['sign_test_p']:.2g}), against "
                     f"{d['fraction_positive_other']:.0%} of the others.")
    mt = res.get("mae_transfer.json")
    if mt:
        by = {r["data"]: r["mse"] for r in mt["rows"]}
        gen = [v for k, v in by.items() if k.startswith("generated")]
        native = [v for k, v in by.items() if k.endswith("(native)")]
        binned = [v for k, v in by.items() if "binned" in k]
        lines.append(f"- The demo MAE (`{mt['checkpoint']}`, trained only on generated images) on the real TIFF fields "
                     f"(`benchmarks/mae_transfer.py`): masked-patch error {_span(native)} on native crops and "
                     f"{_span(binned)} on 3×-binned crops, against {_span(gen)} on generated tiles.")
    return "\n".join(lines) + "\n\n" + res.conditions() + "\n"


def _span(values: list[float]) -> str:
    if not values:
        return MISSING
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}"


ALIGN_NAMES = {"tvn": "TVN (`tvn_on_controls`) vs EFAAR 1.0",
               "spherize": "spherize (ZCA-cor, per batch) vs pycytominer 1.7.1",
               "pca_tvn": "PCA-TVN (the pipeline's `tvn`) vs EFAAR's `embed_by_pca` + `tvn_on_controls`"}


def performance(res: Results) -> str:
    lines = ["| what | size | input | ours, best (median) s | reference, best (median) s | ratio, best (median) | max difference |",
             "|---|---|---|---:|---:|---:|---|"]
    al = res.get("align_scale.json")
    if al:
        rows = [r for r in al["rows"]]
        for name in ("tvn", "spherize", "pca_tvn"):
            for dt in ("float64", "float32"):
                cells = [r.get(f"{name}_{dt}") or {} for r in rows]
                sizes = " / ".join(size_label(r["n_wells"]) for r in rows) + f" × {rows[0]['dim']}" if rows else MISSING
                extra = f", {rows[0].get('pca_tvn_components')} components" if name == "pca_tvn" and rows else ""
                lines.append(
                    f"| {ALIGN_NAMES[name]}{extra} | {sizes} | {dt} | " + " / ".join(best_median(c.get("ours")) for c in cells)
                    + " | " + " / ".join(best_median(c.get("reference")) for c in cells)
                    + " | " + " / ".join(_ratio(c) for c in cells)
                    + " | " + " / ".join(num(c.get("max_abs_diff"), "{:.0e}") for c in cells) + " |")
    recall_rows = [(res.get(f) or {}).get(k) for f, k in (("recall_float64.json", "recall_float64"), ("recall.json", "recall"))]
    for r in recall_rows:
        if not r:
            continue
        lines.append(f"| relationship recall vs EFAAR (five real annotation sources) | {r['n_genes']:,} genes × {r['dim']} | "
                     f"{r.get('dtype', '')} | {best_median(r.get('ours'))} | {best_median(r.get('reference'))} | {_ratio(r)} | "
                     f"recall {num(r.get('max_recall_diff'), '{:.0e}')} |")
    ac = res.get("activity.json")
    if ac:
        for dt in ("float64", "float32"):
            rows = [r for r in ac["rows"] if r.get("dtype") == dt]
            if rows:
                lines.append("| phenotypic activity mAP vs copairs 0.5 (real JUMP-MOA plate; copies as plates) | "
                             + " / ".join(str(r["plates"]) for r in rows) + " plates | " + dt + " | "
                             + " / ".join(best_median(r["ours"]) for r in rows) + " | "
                             + " / ".join(best_median(r["copairs"]) for r in rows) + " | "
                             + " / ".join(_ratio(r) for r in rows) + " | mAP "
                             + " / ".join(num(r["max_abs_diff_map"], "{:.0e}") for r in rows) + " |")
    lines += ["", "| what | size | figure | goal |", "|---|---|---|---|"]
    mi = res.get("million.json")
    if mi:
        steps = [r for r in mi["stages"] if r["stage"] in ("align", "aggregate", "relate", "project") and not r["cached"]]
        cpu = sum(r["cpu_s"] for r in steps)
        loads = [r["load_avg_1min_mean"] for r in steps if r.get("load_avg_1min_mean") is not None]
        load = f", mean 1-min load {min(loads):.1f}–{max(loads):.1f}" if loads else ""
        peak = mi.get("align_to_project_peak_rss_gb", mi["peak_rss_gb"])
        lines.append(f"| precompute after embedding (align → aggregate → relate → UMAP) | {mi['n_wells']:,} wells | "
                     f"{mi['align_to_project_s']:.0f} s wall ({cpu:.0f} CPU s{load}), peak {peak:.1f} GiB; "
                     f"evaluate stage +{mi['evaluate_s']:.0f} s (pipeline peak {mi['peak_rss_gb']:.1f} GiB) | "
                     f"{mi['goal']['seconds']} s, {mi['goal']['peak_rss_gb']} GiB |")
    else:
        lines.append(f"| precompute after embedding at a million wells | | {MISSING} | |")
    nb = res.get("neighbours.json")
    if nb:
        lines.append(f"| neighbour query (top {nb['k']} by cosine, exact) | {nb['n_perturbations']:,} perturbations × {nb['dim']} | "
                     f"{nb['query_ms']['median']:.1f} ms median, p95 {nb['query_ms']['p95']:.1f} ms | {nb['target_ms']} ms |")
    for name, label in (("mae_throughput_cpu.json", "model alone"), ("mae_throughput_cpu_loader.json", "with the data loader")):
        mt = res.get(name)
        if not mt:
            lines.append(f"| MAE embedding / training throughput, CPU ({label}) | | {MISSING} | |")
        else:
            cells = "; ".join(f"{r['model']} {r['img_size']} px, {r['channels']} ch: {_rate(r['embed_tiles_per_s'])} / "
                              f"{_rate(r['train_tiles_per_s'])} tiles/s" for r in mt["results"])
            lines.append(f"| MAE embedding / training throughput, CPU ({mt['machine']['torch_threads']} threads, {label}) | "
                         f"batch {mt['results'][0]['batch_size']} | {cells} | GPU (bf16, MFU): {MISSING} |")
    return "\n".join(lines) + "\n\n" + res.conditions() + "\n"


def _ratio(c: dict) -> str:
    if c.get("ratio_best") is None:
        return "–"
    return f"{c['ratio_best']:.1f}× ({c['ratio_median']:.1f}×)" if c.get("ratio_median") is not None else f"{c['ratio_best']:.1f}×"


def callbacks(res: Results) -> str:
    cb = res.get("callbacks_million.json")
    if not cb:
        return f"Dashboard callbacks at a million wells: {MISSING} (run `make bench-million`).\n\n" + res.conditions() + "\n"
    lines = [f"Server time per interaction on the {cb['n_wells']:,}-well store (in-process, no network); the "
             f"{cb['targets']['cold_ms']} ms goal is for the cold call:", "",
             "| interaction | cold: fresh process, ms | first in this process, ms | new inputs (cache miss), median ms | "
             "warm median (max), ms | response |", "|---|---:|---:|---:|---:|---:|"]
    for r in cb["rows"]:
        new = "–" if r.get("new_inputs_median_ms") is None else f"{r['new_inputs_median_ms']:.0f}"
        lines.append(f"| {r['interaction']} | {r['cold_ms']:.0f} | {r['first_in_process_ms']:.0f} | {new} | "
                     f"{r['warm_median_ms']:.0f} ({r['warm_max_ms']:.0f}) | {_size(r['bytes'])} |")
    over = cb.get("over_target_cold") or []
    lines += ["", f"Map page (layout + both figures): {cb['map_page_bytes'] / 1e6:.1f} MB (goal "
                  f"{cb['targets']['map_page_bytes'] / 1e6:.0f} MB). Over {cb['targets']['cold_ms']} ms cold: "
                  + (", ".join(over) if over else "none") + "."]
    return "\n".join(lines) + "\n\n" + res.conditions() + "\n"


def set_callbacks(res: Results) -> str:
    """The callbacks of gene sets, selections and the two-map page at 100,000 wells (make bench-100k)."""
    cb = res.get("callbacks_wells_100k_sets.json")
    if not cb:
        return f"Set, selection and two-map callbacks at 100,000 wells: {MISSING} (run `make bench-100k`).\n\n" \
            + res.conditions() + "\n"
    target = cb["targets"]["cold_ms"]
    n_cold = len(cb["rows"][0].get("cold_ms_samples", [0])) if cb["rows"] else 1
    lines = [f"Server time of every callback a view with a gene set, a selection and A/B stored fires, then the "
             f"Sets and Compare pages, on the {cb.get('n_wells', 110_592):,}-well store (in-process; goal: cold "
             f"under {target} ms; a background callback's row is the request that starts its job"
             + (f"; cold is the median (worst) of {n_cold} fresh processes" if n_cold > 1 else "") + "):", "",
             "| page | callback | cold, ms | warm median (max), ms | response |", "|---|---|---:|---:|---:|"]
    def label(r: dict) -> str:
        name = r["callback"] if not r["callback"].startswith("/") else "layout"
        return re.sub(r"@[0-9a-f]{16,}", "", name).replace("|", "/").replace("...", ", ").strip(". ")[:70]

    for r in cb["rows"]:
        name = label(r)
        warm = "–" if r.get("warm_median_ms") is None else f"{r['warm_median_ms']:.0f} ({r['warm_max_ms']:.0f})"
        bg = " (background job)" if r.get("background") else ""
        cold = f"{r['cold_ms']:.0f}" + (f" ({r['cold_ms_max']:.0f})" if n_cold > 1 else "")
        lines.append(f"| {r['page'].split('?')[0]} | {name[:70]}{bg} | {cold} | {warm} | {_size(r['bytes'])} |")
    over = [r for r in cb["rows"] if r["cold_ms"] > target]
    worst = [r for r in cb["rows"] if r.get("cold_ms_max", r["cold_ms"]) > target and r not in over]
    lines += ["", f"Over {target} ms cold{' (median)' if n_cold > 1 else ''}: "
              + (", ".join(f"{r['page'].split('?')[0]} {label(r)} ({r['cold_ms']:.0f} ms)" for r in over) if over else "none") + "."]
    if n_cold > 1:
        lines[-1] += " Over it in the worst process only: " + (
            ", ".join(f"{r['page'].split('?')[0]} {label(r)} ({r['cold_ms_max']:.0f} ms)" for r in worst) if worst else "none") + "."
    return "\n".join(lines) + "\n\n" + res.conditions() + "\n"


def _ms(v: float | None) -> str:
    return "–" if v is None else (f"{v / 1000:.1f} s" if v >= 1000 else f"{v:.0f} ms")


def serving(res: Results) -> str:
    """Load tests (50 and 200 users) and browser paint, from load_test_<store>_<users>.json and
    browser_paint_<store>.json."""
    lines = ["| store | users | shared answers | answered / s | p50 | p95 | p99 | p95 / p99 first seconds | p95 / p99 after | "
             "errors | shed (503) | workers lost | first answer after start |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    files = sorted(res.folder.glob("load_test_*_*.json"), key=lambda f: (f.stem.rsplit("_", 1)[0], int(f.stem.rsplit("_", 1)[1])))
    for f in files:
        lt = res.get(f.name)
        if not lt:
            continue
        o, ev = lt["overall"], lt.get("worker_events") or {}
        lost = sum(ev.get(k) or 0 for k in ("worker_timeouts", "worker_killed", "worker_exited_abnormally"))
        first = lt.get("first_answer_after_start_s")
        shared = {True: f"on: {lt.get('shared_hits', 0):,} of {lt['answered']:,} read back", False: "off"}.get(
            lt.get("shared_answers"), "–")
        window = lt.get("first_window_s")

        def part(key: str, lt: dict = lt) -> str:
            w = lt.get(key) or {}
            return "–" if not w.get("requests") else f"{_ms(w['p95_ms'])} / {_ms(w['p99_ms'])}"

        first_part = "–" if window is None else f"{part('first_window')} (first {window:g} s)"
        lines.append(f"| {lt['store_name']} | {lt['users']} | {shared} | {lt['answered_rps']} | {_ms(o['p50_ms'])} | {_ms(o['p95_ms'])} | "
                     f"{_ms(o['p99_ms'])} | {first_part} | {part('after_first_window')} | "
                     f"{lt['errors']} | {lt['shed']} of {lt['requests']} | {lost} | "
                     f"{'–' if first is None else f'{first:.0f} s'} |")
    if len(lines) == 2:
        lines = [f"Load tests: {MISSING} (run `benchmarks/load_test.py`)."]
    lines += ["", "Goals: 50 users p95 ≤ 1 s and p99 ≤ 2 s with 0 errors and nothing shed; 200 users no errors and no "
                  "worker lost (a clear 503 allowed). Shared answers: a callback answer one worker computed during the "
                  "run, read back by any worker for the same request (the server starts on an empty cache; "
                  "`–`: a run from before they existed). First seconds: the answers in the first seconds after the "
                  "load began, when nothing is cached yet, apart from those after (both are in p95 and p99).", ""]
    paint = sorted(res.folder.glob("browser_paint_*.json"))
    for f in paint:
        bp = res.get(f.name)
        if not bp:
            continue
        lines += [f"Browser (headless Chromium, software rendering) on `{Path(bp['store']).name}`: first paint after a "
                  f"start and for new visitors to the warm server (goal {bp['targets']['paint_s']:.0f} s), start-up to "
                  f"the first answer (goal {bp['targets']['ready_s']:.0f} s), bytes over the wire:", "",
                  "| page | start-up | first visit paint | new visitor paint, median (max) | over the wire |",
                  "|---|---:|---:|---:|---:|"]
        for r in bp["rows"]:
            first = r.get("first") or {}
            fp = f"{first['paint_s']:.1f} s" if first.get("painted") else "not painted"
            warm = ("–" if r.get("warm_paint_median_s") is None else
                    f"{r['warm_paint_median_s']:.1f} s ({r['warm_paint_max_s']:.1f} s)")
            lines.append(f"| {r['page']} | {r['ready_s']:.1f} s | {fp} | {warm} | {_size(first.get('bytes') or 0)} |")
        lines.append("")
    if not paint:
        lines += [f"Browser paint: {MISSING} (run `benchmarks/bench_browser_paint.py`).", ""]
    return "\n".join(lines) + "\n" + res.conditions() + "\n"


def mae_blocks(res: Results) -> str:
    mb = res.get("mae_blocks.json")
    if not mb:
        return f"MAE block by block: {MISSING} (run `benchmarks/mae_blocks.py`).\n\n" + res.conditions() + "\n"
    summary = mb["summary"]
    chosen = summary.get("channelwise_best_block")
    lines = ["| MAE embedding | block | complex | pathway | opposing | mean | replicate mAP |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, label in (("pooled", "pooled (OpenPhenom's predict)"), ("channelwise", "channel-wise")):
        rows = mb["blocks"].get(kind) or []
        last = max((r["block"] for r in rows), default=None)
        for i, r in enumerate(rows):
            block = f"{r['block']} (last)" if r["block"] == last else str(r["block"])
            if kind == "channelwise" and r["block"] == chosen:
                block = f"**{r['block']} (best)**"
            lines.append(f"| {label if i == 0 else kind.replace('channelwise', 'channel-wise')} | {block} | "
                         f"{num(r.get('recall_synthetic_complex'))} | {num(r.get('recall_synthetic_pathway'))} | "
                         f"{num(r.get('recall_synthetic_opposing'))} | {num(r.get('recall_mean'))} | {num(r.get('replicate_map'))} |")
    px = mb["pixelstats"]
    lines.append(f"| pixel statistics (same scoring) | – | **{num(px.get('recall_synthetic_complex'))}** | "
                 f"{num(px.get('recall_synthetic_pathway'))} | {num(px.get('recall_synthetic_opposing'))} | "
                 f"{num(px.get('recall_mean'))} | {num(px.get('replicate_map'))} |")
    gap = (px.get("recall_synthetic_complex") or 0) - (summary.get("channelwise_best_block_complex_recall") or 0)
    ck = mb.get("checkpoint") or {}
    lines += ["", f"Best block, channel-wise, against pixel statistics on complex recall: "
                  f"{num(summary.get('channelwise_best_block_complex_recall'))} vs {num(summary.get('pixelstats_complex_recall'))}"
                  + (f" ({gap:.3f} short of the goal)." if gap > 0 else " (goal reached).")
                  + f" Model: {ck.get('steps')} steps, final loss {num(ck.get('final_loss'))}, weights "
                  f"`{str(ck.get('weights_sha256'))[:12]}`."]
    return "\n".join(lines) + "\n\n" + res.conditions() + "\n"


def _rate(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


RENDERERS: dict[str, Callable[[Results], str]] = {
    "scorecard": scorecard, "real-data": real_data, "performance": performance, "callbacks": callbacks,
    "mae-blocks": mae_blocks, "set-callbacks": set_callbacks, "serving": serving}


def render(text: str, folder: Path = RESULTS) -> str:
    """``text`` with every known block re-rendered from the results in ``folder``."""
    res = Results(folder)

    def sub(m: re.Match) -> str:
        fn = RENDERERS.get(m.group("name"))
        if fn is None:
            raise SystemExit(f"README block {m.group('name')!r} has no renderer (known: {', '.join(RENDERERS)})")
        return m.group(1) + fn(res) + m.group(4)

    return BLOCK.sub(sub, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md differs from what the results render")
    p.add_argument("--readme", type=Path, default=README)
    a = p.parse_args(argv)
    old = a.readme.read_text()
    new = render(old)
    if a.check:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "README.md", "rendered"))
            print("\nREADME figures differ from benchmarks/results: run `make readme`", file=sys.stderr)
            return 1
        print("README figures match benchmarks/results")
        return 0
    if new != old:
        a.readme.write_text(new)
    print(f"rendered {len(BLOCK.findall(new))} blocks into {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
