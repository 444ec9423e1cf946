"""The precompute after embedding at a million wells: seconds, CPU seconds and peak memory per stage.

    .venv/bin/python benchmarks/bench_million.py                   # ~1M wells -> benchmarks/results/million.json
    .venv/bin/python benchmarks/bench_million.py --wells 200000    # try smaller first (million_200000.json)

The embeddings-only screen (the ``large`` preset) is generated once and kept under
$PHENOMIX_HOME/screens/million[_N] (default var/); its store sits beside it. The pipeline runs as
``python -m precompute run --embedder features`` in a child process with align and everything after
it forced, so every stage after embedding is recomputed. While it runs, this script samples the
child's resident memory (with its own children) every 0.2 s and follows the log lines to know
which stage is running: per stage it reports wall seconds (from the run report), CPU seconds,
peak resident memory and the 1-minute load average (the machine is shared: contention shows there).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._meta import RESULTS, save_result, start_run  # noqa: E402


def _stage_words() -> tuple[str, ...]:
    """Every registered stage's name (the sampler attributes CPU and memory by them)."""
    from precompute.pipeline import stage_versions

    return tuple(stage_versions())


def ensure_screen(path: Path, wells: int) -> dict:
    """Generate the embeddings-only screen once; later runs reuse it (the generator is not timed here)."""
    if (path / "screen.json").exists():
        return {"generated": False}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "precompute", "generate", "--preset", "large", "--embeddings-only",
                    "--n-wells", str(wells), "--out", str(path)], check=True, cwd=REPO)
    return {"generated": True, "generate_s": round(time.perf_counter() - t0, 1)}


class Sampler(threading.Thread):
    """Resident memory (process tree) and CPU seconds of a child, attributed to the current stage."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.stage = "startup"
        self.stats: dict[str, dict] = {}
        self.peak = 0
        self.done = threading.Event()
        self._cpu0 = 0.0
        self._last_cpu = 0.0

    def _tree(self) -> tuple[int, float]:
        import psutil

        rss, cpu = 0, 0.0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:  # the child has exited: keep the last figures
            return 0, self._last_cpu
        for p in procs:
            try:
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        self._last_cpu = max(self._last_cpu, cpu)
        return rss, self._last_cpu

    def switch(self, stage: str) -> None:
        """Close the running stage's CPU account and open one for ``stage``."""
        _, cpu = self._tree()
        cur = self.stats.setdefault(self.stage, {"peak_rss_gb": 0.0, "cpu_s": 0.0, "load_avg_1min": []})
        cur["cpu_s"] += cpu - self._cpu0
        self._cpu0, self.stage = cpu, stage
        self.stats.setdefault(stage, {"peak_rss_gb": 0.0, "cpu_s": 0.0, "load_avg_1min": []})

    def run(self) -> None:
        while not self.done.is_set():
            try:
                rss, _ = self._tree()
            except Exception:  # the child exited between two samples
                break
            s = self.stats.setdefault(self.stage, {"peak_rss_gb": 0.0, "cpu_s": 0.0, "load_avg_1min": []})
            s["peak_rss_gb"] = max(s["peak_rss_gb"], rss / 2**30)
            s["load_avg_1min"].append(os.getloadavg()[0])
            self.peak = max(self.peak, rss)
            time.sleep(0.2)


def run_pipeline(screen: Path, store: Path, log_path: Path) -> tuple[dict, Sampler, float]:
    """Run the pipeline in a child, following its log to attribute memory and CPU to stages."""
    cmd = [sys.executable, "-m", "precompute", "run", "--screen", str(screen), "--store", str(store),
           "--embedder", "features", "--quiet", "--run-name", "default"]
    if (store / "STORE.json").exists():
        cmd += ["--force", "align"]  # ingest and embed stay cached: time only what comes after embedding
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    stage_words = _stage_words()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        sampler = Sampler(child.pid)
        sampler.start()
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            log.flush()
            words = line.split()
            # log lines look like "12:00:01 relate    features   computing ..."
            if len(words) >= 3 and words[1] in stage_words and "computing" in line:
                sampler.switch(f"{words[1]} {words[2]}")
        rc = child.wait()
    wall = time.perf_counter() - t0
    sampler.switch("done")
    sampler.done.set()
    if rc != 0:
        raise SystemExit(f"pipeline failed (exit {rc}); see {log_path}")
    from precompute.artifacts import ArtifactStore

    return ArtifactStore(store, create=False).get_run("default"), sampler, wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wells", type=int, default=1_000_000, help="about this many wells (large preset)")
    p.add_argument("--fresh", action="store_true", help="delete the store first (ingest and embed recomputed)")
    a = p.parse_args()
    home = Path(os.environ.get("PHENOMIX_HOME", REPO / "var"))
    tag = "million" if a.wells == 1_000_000 else f"million_{a.wells}"
    screen, store = home / "screens" / tag, home / "store" / tag
    gen = ensure_screen(screen, a.wells)
    if a.fresh and store.exists():
        import shutil

        shutil.rmtree(store)
    meta = start_run(repeats=1, warmup=0, note="one pipeline run; ingest and embed cached when the store exists")
    cpu0 = os.times()
    from precompute import __version__
    from precompute.pipeline import stage_versions

    versions = {s: f"{__version__}/{v}" for s, v in stage_versions().items()}  # what the child runs
    run, sampler, wall = run_pipeline(screen, store, REPO / "var" / f"bench_{tag}.log")
    rows = []
    for r in run["reports"]:
        label = f"{r['stage']} {r['name']}"
        s = sampler.stats.get(label, {})
        loads = s.get("load_avg_1min") or []  # none sampled for a cached stage: null, not NaN (strict JSON)
        rows.append({"stage": r["stage"], "name": r["name"], "cached": r["skipped"], "seconds": round(r["seconds"], 1),
                     "cpu_s": round(s.get("cpu_s", 0.0), 1), "peak_rss_gb": round(s.get("peak_rss_gb", 0.0), 2),
                     "load_avg_1min_mean": round(sum(loads) / len(loads), 2) if loads else None, "rows": r["rows"]})
    after = [r for r in rows if r["stage"] in ("align", "aggregate", "relate", "project") and not r["cached"]]
    goal_s = sum(r["seconds"] for r in after)
    result = {
        "benchmark": "precompute after embedding, embeddings-only large preset",
        "screen": str(screen), "store": str(store),
        "n_wells": run["screen"]["n_wells"], "generation": gen,
        "stage_versions": versions, "stage_keys": {f"{r['stage']} {r['name']}": r["key"] for r in run["reports"]},
        "stages": rows,
        "align_to_project_s": round(goal_s, 1),
        "align_to_project_peak_rss_gb": max((r["peak_rss_gb"] for r in after), default=None),
        "evaluate_s": round(sum(r["seconds"] for r in rows if r["stage"] == "evaluate"), 1),
        "pipeline_wall_s": round(wall, 1),
        "peak_rss_gb": round(sampler.peak / 2**30, 2),
        "goal": {"seconds": 150, "peak_rss_gb": 6},  # issue #17, for align -> project
        "this_process_cpu_s": round(sum(os.times()[:4]) - sum(cpu0[:4]), 1),
    }
    print(f"{'stage':<14}{'name':<22}{'seconds':>9}{'cpu s':>8}{'peak GiB':>10}{'load':>6}")
    for r in rows:
        sec = "cached" if r["cached"] else f"{r['seconds']:.1f}"
        print(f"{r['stage']:<14}{r['name']:<22}{sec:>9}{r['cpu_s']:>8.1f}{r['peak_rss_gb']:>10.2f}"
              f"{'-' if r['load_avg_1min_mean'] is None else format(r['load_avg_1min_mean'], '.2f'):>6}")
    print(f"{result['n_wells']:,} wells: align..project {goal_s:.0f} s (goal 150), peak there "
          f"{result['align_to_project_peak_rss_gb']:.2f} GiB (goal 6); evaluate {result['evaluate_s']:.0f} s, "
          f"pipeline peak {result['peak_rss_gb']:.2f} GiB, pipeline wall {wall:.0f} s")
    out = save_result(RESULTS / f"{tag}.json", result, meta)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
