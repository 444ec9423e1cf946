"""gunicorn settings for Phenomix: ``gunicorn app:server`` (run from the repository root).

Everything comes from PHENOMIX_* variables (see docs/team.md):

    PHENOMIX_STORE / PHENOMIX_SCREEN / PHENOMIX_RUN   which artifacts to serve
    PHENOMIX_STORE_ROOT                                every store under it, one screen each
    PHENOMIX_HOST (127.0.0.1) PHENOMIX_PORT (8050)    where to listen; loopback unless you say so
    PHENOMIX_WORKERS (cores + 1)                       processes, forked from one warmed app
    PHENOMIX_THREADS (96)                              threads per worker: requests it holds at once
    PHENOMIX_MAX_IN_FLIGHT (2)                         of those, requests computing at once
    PHENOMIX_MAX_WAIT (5) / PHENOMIX_RETRY_AFTER (2)   seconds a request waits for its turn before a
                                                       503 with Retry-After (phenomix_dash/admission.py)
    PHENOMIX_PRELOAD (1)                               0: every worker builds and warms its own app
    PHENOMIX_SHARED_ANSWERS (1)                        0: pure callbacks' answers not shared by workers
    PHENOMIX_WARM_WAIT (600)                           seconds the master waits for the warm-up
    PHENOMIX_TIMEOUT (120)                             seconds before a stuck worker is replaced
    PHENOMIX_AUTH_FILE / PHENOMIX_TRUST_HEADER         authentication (phenomix_dash/auth.py)
    PHENOMIX_SCREEN_ACCESS                             per-user screens in header mode
    PHENOMIX_HOME (./var)                              its cache/dashboard/ folder is the cache the
                                                       workers share (phenomix_dash/cache.py), unless
    PHENOMIX_CACHE_DIR                                 names another

A ``--bind`` on the command line wins over PHENOMIX_HOST/PORT; the exposure check runs on
whatever is finally bound.

Why these defaults (profiled at the million-well store, benchmarks/results/load_test_*.json):
the app is built and warmed ONCE, in the master, and the workers are forked from it
(``preload_app``), so they share the memory maps and the warmed tables copy-on-write and the
first visitor meets warm workers. Before, each of 4 workers warmed its own copy of the same
tables at the same time (4 x 2.6 GB, minutes of CPU on 2 cores) while serving. A worker runs
Python one thread at a time, so more workers than cores only slice the CPU thinner; many threads
hold the connections while the admission bound lets 2 per worker compute and sheds, with a 503,
what would wait too long, so a burst never runs a worker into its timeout.
"""

from __future__ import annotations

import os
import sys
import threading
import time

_host = os.environ.get("PHENOMIX_HOST", "127.0.0.1")
_port = int(os.environ.get("PHENOMIX_PORT", "8050"))

wsgi_app = "app:server"
WARM_UP_THREAD = "phenomix-warm-up"  # the thread phenomix_dash.create_app starts
bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]
workers = int(os.environ.get("PHENOMIX_WORKERS", (os.cpu_count() or 1) + 1))
# Threads are cheap while they wait; a request without a free thread waits in gunicorn's queue,
# where the admission bound cannot see it to shed it (200 users on 3 x 32 threads: 503s after 20 s).
threads = int(os.environ.get("PHENOMIX_THREADS", "96"))
worker_class = "gthread"
preload_app = os.environ.get("PHENOMIX_PRELOAD", "1") != "0"
backlog = 2048  # connections the kernel holds while every worker is busy (a burst queues, never refused)
WARM_WAIT_S = float(os.environ.get("PHENOMIX_WARM_WAIT", "600"))
timeout = int(os.environ.get("PHENOMIX_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Files the server creates (logs, caches) are readable by the user only.
umask = 0o077
# Bounded request sizes: long query strings and header floods are refused before Dash sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Workers are recycled now and then, so a slow leak cannot grow without bound.
max_requests = int(os.environ.get("PHENOMIX_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
accesslog = os.environ.get("PHENOMIX_ACCESS_LOG", "-") or None  # PHENOMIX_ACCESS_LOG= (empty): none
errorlog = "-"
loglevel = os.environ.get("PHENOMIX_LOG_LEVEL", "info")
proc_name = "phenomix"
# Only trust X-Forwarded-* from a proxy on this machine.
forwarded_allow_ips = "127.0.0.1,::1"


def _bound_hosts(server) -> list[str]:
    hosts = []
    for addr in server.cfg.bind:
        if addr.startswith("unix:"):
            continue
        if addr.startswith("["):
            host = addr[1 : addr.index("]")]
        else:
            host = addr.rsplit(":", 1)[0] if ":" in addr else addr
        hosts.append(host or "0.0.0.0")
    return hosts


def pre_fork(server, worker) -> None:
    """With ``preload_app``: let the master's warm-up thread finish before forking, so every worker
    starts with the warmed tables (and no half-held lock of a thread that does not exist in it)."""
    if not server.cfg.preload_app:
        return
    started = time.monotonic()
    for thread in threading.enumerate():
        if thread.name == WARM_UP_THREAD and thread.is_alive():
            server.log.info("waiting for the warm-up to finish before forking workers")
            thread.join(timeout=max(0.0, WARM_WAIT_S - (time.monotonic() - started)))
            if thread.is_alive():
                server.log.warning("warm-up still running after %.0f s: forking anyway (workers warm "
                                   "what they need on first use)", WARM_WAIT_S)
            else:
                server.log.info("warm-up done in the master (waited %.1f s)", time.monotonic() - started)
    _freeze_heap(server)


_frozen = False


def _freeze_heap(server) -> None:
    """Once, before the first fork: move everything the warm-up built (millions of objects at a
    million wells: the well lookups, hover texts, tables) out of the garbage collector's reach, so
    no worker's full collection walks them again mid-request and the walk does not touch (and
    copy) the pages the workers share with the master. Instagram's gunicorn practice; Python's
    gc.freeze documents it for exactly this."""
    global _frozen
    if _frozen:
        return
    import gc

    gc.collect()
    gc.freeze()
    _frozen = True
    server.log.info("heap frozen before forking: %d objects kept out of the collector", gc.get_freeze_count())


def when_ready(server) -> None:
    """Loud warning (stderr + error log) when listening beyond loopback without authentication."""
    sys.path.insert(0, os.getcwd())
    from phenomix_dash.auth import auth_mode
    from phenomix_dash.security import exposure_warning

    try:
        mode = auth_mode()
    except ValueError as err:
        server.log.error("authentication settings: %s", err)
        mode = None
    for host in _bound_hosts(server):
        msg = exposure_warning(host, mode)
        if msg:
            print(msg, file=sys.stderr, flush=True)
            server.log.warning(msg)
    server.log.info("Phenomix ready: %s, %d workers x %d threads, auth %s", ", ".join(server.cfg.bind),
                    server.cfg.workers, server.cfg.threads, mode or "none")
