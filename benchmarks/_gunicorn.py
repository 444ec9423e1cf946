"""Start the dashboard under gunicorn for a benchmark or a test, wait until it answers, and read
what its log says about its workers (benchmarks/load_test.py, tests/test_security.py)."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(store: Path, port: int, workers: int | None = None, log: Path | None = None,
                   cache_dir: Path | None = None, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    """gunicorn with the project's gunicorn.conf.py on ``store`` (``workers`` None: its default),
    its shared cache in ``cache_dir`` (None: the default folder), ``env_extra`` added to its environment.
    Its log goes to ``log`` (default: discarded), never to a pipe nobody reads, which fills and
    stalls the server once it has logged 64 KB."""
    env = {**os.environ, "PHENOMIX_STORE": str(store), "PHENOMIX_HOST": "127.0.0.1", "PHENOMIX_PORT": str(port),
           "PHENOMIX_ACCESS_LOG": "", "PYTHONPATH": str(REPO)}
    if workers is not None:
        env["PHENOMIX_WORKERS"] = str(workers)
    if cache_dir is not None:
        env["PHENOMIX_CACHE_DIR"] = str(cache_dir)
    env.update(env_extra or {})
    env.pop("PHENOMIX_AUTH_FILE", None)
    env.pop("PHENOMIX_TRUST_HEADER", None)
    err = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (the child holds it)
    try:
        return subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), "app:server"],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    finally:
        if log is not None:
            err.close()


def worker_events(log_text: str) -> dict[str, Any]:
    """What gunicorn's log says about its workers: how many were configured, booted, timed out,
    were killed or exited abnormally; ``replaced``: boots beyond the first round."""
    ready = re.search(r"Phenomix ready: .*?, (\d+) workers x (\d+) threads", log_text)
    configured = int(ready.group(1)) if ready else None
    lines = log_text.splitlines()

    def count(pattern: str) -> int:  # lines, so one line naming two symptoms counts once
        return sum(1 for line in lines if re.search(pattern, line))

    boots = count(r"Booting worker with pid")
    return {"workers": configured, "threads": int(ready.group(2)) if ready else None, "boots": boots,
            "replaced": max(0, boots - configured) if configured is not None else None,
            "worker_timeouts": count(r"WORKER TIMEOUT"),
            "worker_killed": count(r"was sent SIG(?:KILL|ABRT)|Perhaps out of memory"),
            "worker_exited_abnormally": count(r"Worker \(pid:\d+\) exited with code [1-9]")}


def wait_ready(host: str, port: int, timeout: float = 600.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=5)
            try:
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.3)
    raise SystemExit(f"the dashboard on {host}:{port} did not answer within {timeout:.0f} s")
