"""What every benchmark result records about how it was produced, and how it is written.

    meta = start_run(repeats=3, warmup=1)      # first thing in main(): load average before
    ...
    save_result(RESULTS / "x.json", result, meta)   # load average after, then an atomic write

The record (``result["meta"]``): the exact command line, repeats and warm-up, the git commit and
whether the tree differed from it (the paths that did), the thread pools in use (threadpoolctl:
OpenMP, OpenBLAS, MKL; the *_NUM_THREADS variables; torch's intra-op threads when torch is
loaded), the 1/5/15-minute load average before and after, package versions, machine and time.
The machine is shared, so load is part of the measurement: a figure is read with its load.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# Packages whose version can move a figure; missing ones are left out.
PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "umap-learn", "pynndescent", "numba", "copairs",
            "pycytominer", "efaar-benchmarking", "torch", "dash", "plotly", "flask", "gunicorn", "threadpoolctl")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
# Only these folders change what a benchmark measures; edits elsewhere do not make a figure "dirty".
CODE_PATHS = ("precompute", "phenomix_dash", "benchmarks", "models", "app.py", "tests/reference_efaar.py",
              "tests/reference_pycytominer.py", "requirements.txt", "constraints.txt")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.rstrip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_state() -> dict[str, Any]:
    """Commit, and the code files that differed from it when the run started (the tree is shared)."""
    changed = [line[3:] for line in _git("status", "--porcelain", "--", *CODE_PATHS).splitlines()
               if not line[3:].startswith("benchmarks/results/")]
    return {"commit": _git("rev-parse", "HEAD").strip() or None, "dirty": bool(changed), "changed_paths": changed[:40]}


def threads() -> dict[str, Any]:
    """Thread counts actually in use, not only what the environment asked for."""
    out: dict[str, Any] = {"env": {v: os.environ.get(v) for v in THREAD_VARS}, "cpu_count": os.cpu_count()}
    try:
        from threadpoolctl import threadpool_info

        out["pools"] = [{"api": p.get("user_api"), "library": p.get("internal_api"), "num_threads": p.get("num_threads")}
                        for p in threadpool_info()]
    except ImportError:
        out["pools"] = None
    if "torch" in sys.modules:
        out["torch_threads"] = sys.modules["torch"].get_num_threads()
    return out


def versions() -> dict[str, str]:
    found = {}
    for p in PACKAGES:
        try:
            found[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return found


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "processor": platform.processor() or platform.machine(), "node": platform.node()}
    try:
        import psutil

        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def start_run(repeats: int, warmup: int = 0, **extra: Any) -> dict[str, Any]:
    """The record's first half, taken before anything is timed."""
    return {"command": shlex.join([Path(sys.executable).name, *sys.argv]) if sys.argv else None,
            "argv": list(sys.argv), "cwd": os.getcwd(), "repeats": repeats, "warmup": warmup, **extra,
            **git_state(), "load_before": load(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "_t0": time.time()}


def finish_run(meta: dict[str, Any]) -> dict[str, Any]:
    """The record completed after the run: load after, threads (pools exist only once used), versions."""
    done = {k: v for k, v in meta.items() if k != "_t0"}
    done.update(load_after=load(), finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                wall_s=round(time.time() - meta.get("_t0", time.time()), 1), threads=threads(),
                versions=versions(), machine=machine())
    return done


def save_result(path: Path, result: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``{"meta": ..., **result}`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = _strict({"meta": finish_run(meta), **{k: v for k, v in result.items() if k != "meta"}})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def _strict(obj: Any) -> Any:
    """NaN and infinity become null: strict JSON, and a missing figure looks missing."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def timed_runs(fn, repeats: int, *args: Any, warmup: int = 0) -> tuple[Any, dict[str, float]]:
    """Call ``fn(*args)`` ``warmup`` times untimed, then ``repeats`` times; (last output, best/median/all s).

    Both sides of a comparison go through this with the same repeats and warm-up."""
    import statistics

    out = None
    for _ in range(warmup):
        out = fn(*args)
    times = []
    for _ in range(repeats):
        out = None  # let the previous output go before the next call allocates its own
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return out, {"best_s": round(min(times), 4), "median_s": round(statistics.median(times), 4),
                 "runs_s": [round(t, 4) for t in times]}
