"""Serve the Phenomix dashboard.

Development (one user, this machine): ``python app.py``. For a team, a production WSGI server:
``gunicorn app:server`` (settings from PHENOMIX_* variables and gunicorn.conf.py; docs/team.md).
Both bind 127.0.0.1 unless told otherwise, run without Dash's debug mode unless asked, and warn
loudly when reachable from other machines without authentication.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from phenomix_dash import create_app
from phenomix_dash.auth import AuthConfigError, auth_mode
from phenomix_dash.security import exposure_warning, is_loopback
from phenomix_dash.settings import Settings, default_store

log = logging.getLogger("phenomix_dash")


def parse_args(argv: list[str] | None = None) -> Settings:
    base = Settings.from_env()
    p = argparse.ArgumentParser(description="Phenomix dashboard (development server; for a team use gunicorn)")
    p.add_argument("--screen", default=None, help="built-in screen name; its store is var/store/NAME")
    p.add_argument("--store", type=Path, default=None, help="artifact store folder (overrides --screen)")
    p.add_argument("--run", default=base.run)
    p.add_argument("--host", default=base.host, help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=base.port)
    p.add_argument("--debug", action="store_true", help="Dash debug mode (loopback only; never on a shared host)")
    a = p.parse_args(argv)
    store = a.store or (default_store(a.screen) if a.screen else base.store)
    return Settings(store=store, run=a.run, host=a.host, port=a.port, debug=a.debug or base.debug)


def warn_if_exposed(host: str, mode: str | None) -> str | None:
    """Print the exposure warning to stderr and the log; returns it (None when there is none)."""
    msg = exposure_warning(host, mode)
    if msg:
        print(msg, file=sys.stderr, flush=True)
        log.warning(msg)
    return msg


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    settings = parse_args(argv)
    try:
        mode = auth_mode()
    except AuthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if settings.debug and not is_loopback(settings.host):
        # Debug mode serves tracebacks and dev tools to whoever connects.
        print(f"error: --debug only on a loopback address, not {settings.host}", file=sys.stderr)
        return 2
    warn_if_exposed(settings.host, mode)
    os.environ["PHENOMIX_STORE"] = str(settings.store)
    try:
        app = create_app(settings)
    except AuthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Phenomix (development server): http://{settings.host}:{settings.port}  (store {settings.store})", flush=True)
    app.run(host=settings.host, port=settings.port, debug=settings.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:
    # `gunicorn app:server` imports this module: settings come from PHENOMIX_* variables;
    # gunicorn.conf.py binds 127.0.0.1:8050 by default and warns when exposed without auth.
    app = create_app()
    server = app.server
