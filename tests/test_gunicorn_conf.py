"""gunicorn.conf.py: the serving defaults (one warmed app forked into the workers, threads that hold
connections while the admission bound limits what computes) and the pre-fork wait for the warm-up."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from runpy import run_path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _unfreeze():
    """pre_fork freezes the heap (for a gunicorn master): give this test process its collector back."""
    yield
    gc.unfreeze()


def _conf(monkeypatch, **env: str) -> dict:
    for var in ("PHENOMIX_WORKERS", "PHENOMIX_THREADS", "PHENOMIX_PRELOAD", "PHENOMIX_WARM_WAIT"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return run_path(str(REPO / "gunicorn.conf.py"))


def _server(preload: bool) -> tuple[SimpleNamespace, list[str]]:
    logged: list[str] = []
    log = SimpleNamespace(info=lambda m, *a: logged.append(m % a if a else m),
                          warning=lambda m, *a: logged.append(m % a if a else m))
    return SimpleNamespace(cfg=SimpleNamespace(preload_app=preload), log=log), logged


def test_defaults_preload_one_warmed_app_with_threads_for_waiting_connections(monkeypatch):
    conf = _conf(monkeypatch)
    assert conf["preload_app"] is True and conf["worker_class"] == "gthread"
    assert 2 <= conf["workers"] <= 64 and conf["threads"] >= 8 and conf["backlog"] >= 1024
    conf = _conf(monkeypatch, PHENOMIX_PRELOAD="0", PHENOMIX_WORKERS="2", PHENOMIX_THREADS="4")
    assert conf["preload_app"] is False and conf["workers"] == 2 and conf["threads"] == 4


def test_pre_fork_waits_for_the_warm_up_so_workers_start_warm(monkeypatch):
    conf = _conf(monkeypatch)
    done = threading.Event()
    warm = threading.Thread(target=lambda: done.wait(0.3) or done.set(), name=conf["WARM_UP_THREAD"], daemon=True)
    warm.start()
    server, logged = _server(preload=True)
    conf["pre_fork"](server, None)
    assert done.is_set() and not warm.is_alive() and any("warm-up done" in m for m in logged)


def test_pre_fork_gives_up_waiting_after_the_limit_and_without_preload_never_waits(monkeypatch):
    conf = _conf(monkeypatch, PHENOMIX_WARM_WAIT="0.2")
    stop = threading.Event()
    warm = threading.Thread(target=stop.wait, args=(10,), name=conf["WARM_UP_THREAD"], daemon=True)
    warm.start()
    try:
        server, logged = _server(preload=True)
        conf["pre_fork"](server, None)
        assert warm.is_alive() and any("forking anyway" in m for m in logged)
        server, logged = _server(preload=False)
        conf["pre_fork"](server, None)
        assert logged == []
    finally:
        stop.set()
        warm.join(5)


def test_the_heap_is_frozen_once_before_the_first_fork(monkeypatch):
    conf = _conf(monkeypatch)
    server, logged = _server(preload=True)
    conf["pre_fork"](server, None)
    assert gc.get_freeze_count() > 0  # what the warm-up built is out of the workers' collections
    conf["pre_fork"](server, None)  # the next worker (or a replaced one): not again
    assert sum("heap frozen" in m for m in logged) == 1
