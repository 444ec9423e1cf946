"""gunicorn settings for Phenomix: ``gunicorn app:server`` (run from the repository root).

Everything comes from PHENOMIX_* variables (see docs/team.md):

    PHENOMIX_STORE / PHENOMIX_SCREEN / PHENOMIX_RUN   which artifacts to serve
    PHENOMIX_STORE_ROOT                                every store under it, one screen each
    PHENOMIX_HOST (127.0.0.1) PHENOMIX_PORT (8050)    where to listen; loopback unless you say so
    PHENOMIX_WORKERS (min(4, 2 x cores))               processes; each memory-maps the store
    PHENOMIX_THREADS (2)                               threads per worker
    PHENOMIX_TIMEOUT (120)                             seconds before a stuck worker is replaced
    PHENOMIX_AUTH_FILE / PHENOMIX_TRUST_HEADER         authentication (phenomix_dash/auth.py)
    PHENOMIX_SCREEN_ACCESS                             per-user screens in header mode
    PHENOMIX_HOME (./var)                              its cache/dashboard/ folder is the cache the
                                                       workers share (phenomix_dash/cache.py)

A ``--bind`` on the command line wins over PHENOMIX_HOST/PORT; the exposure check runs on
whatever is finally bound.
"""

from __future__ import annotations

import os
import sys

_host = os.environ.get("PHENOMIX_HOST", "127.0.0.1")
_port = int(os.environ.get("PHENOMIX_PORT", "8050"))

wsgi_app = "app:server"
bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]
workers = int(os.environ.get("PHENOMIX_WORKERS", min(4, 2 * (os.cpu_count() or 1))))
threads = int(os.environ.get("PHENOMIX_THREADS", "2"))
worker_class = "gthread"
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
