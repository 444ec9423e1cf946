"""Serve the Phenomix dashboard with Flask's development server (``phenomix serve``, ``python app.py``).

One user on this machine. For a team, a production WSGI server: ``gunicorn app:server`` (settings
from PHENOMIX_* variables and gunicorn.conf.py; docs/team.md). Both bind 127.0.0.1 unless told
otherwise, run without Dash's debug mode unless asked, and warn loudly when reachable from other
machines without authentication.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from phenomix.settings import Settings, default_store_in

log = logging.getLogger("phenomix_dash")


def add_serve_arguments(p: argparse.ArgumentParser, base: Settings) -> None:
    """The serving options; their defaults come from ``base`` (the PHENOMIX_* variables)."""
    p.add_argument("--screen", default=None, help="built-in screen name; its store is var/store/NAME "
                   "(with --store-root: the default screen, ROOT/NAME)")
    p.add_argument("--store", type=Path, default=None, help="artifact store folder (overrides --screen)")
    p.add_argument("--store-root", type=Path, default=base.store_root,
                   help="serve every artifact store under this folder, one screen each, with a screen "
                        "switcher (default: PHENOMIX_STORE_ROOT; unset: one store)")
    p.add_argument("--run", default=base.run)
    p.add_argument("--host", default=base.host, help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=base.port)
    p.add_argument("--debug", action="store_true", help="Dash debug mode (loopback only; never on a shared host)")


def settings_from_args(a: argparse.Namespace, base: Settings) -> Settings:
    root = getattr(a, "store_root", None)
    if a.store:
        store = a.store
    elif a.screen:
        store = default_store_in(a.screen, root)
    elif root is not None and base.store_root is None:  # --store-root on the command line only
        store = default_store_in(os.environ.get("PHENOMIX_SCREEN", "demo"), root)
    else:
        store = base.store
    return Settings(store=store, run=a.run, host=a.host, port=a.port, debug=a.debug or base.debug, store_root=root)


def parse_args(argv: list[str] | None = None) -> Settings:
    base = Settings.from_env()
    p = argparse.ArgumentParser(description="Phenomix dashboard (development server; for a team use gunicorn)")
    add_serve_arguments(p, base)
    return settings_from_args(p.parse_args(argv), base)


def warn_if_exposed(host: str, mode: str | None) -> str | None:
    """Print the exposure warning to stderr and the log; returns it (None when there is none)."""
    from phenomix_dash.security import exposure_warning

    msg = exposure_warning(host, mode)
    if msg:
        print(msg, file=sys.stderr, flush=True)
        log.warning(msg)
    return msg


def serve(settings: Settings) -> int:
    """Build the app for ``settings`` and serve it until interrupted; 2 for a refused configuration."""
    # Imported here, not at the top: `phenomix --help` and the pipeline's commands need no Dash.
    from phenomix_dash import create_app, limit_blas_for_serving
    from phenomix_dash.auth import AuthConfigError, auth_mode
    from phenomix_dash.security import is_loopback

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
    if settings.store_root is not None:
        os.environ["PHENOMIX_STORE_ROOT"] = str(settings.store_root)
    limit_blas_for_serving()
    try:
        app = create_app(settings)
    except AuthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = (f"screens under {settings.store_root}, default {settings.store.name}" if settings.store_root
             else f"store {settings.store}")
    print(f"Phenomix (development server): http://{settings.host}:{settings.port}  ({where})", flush=True)
    app.run(host=settings.host, port=settings.port, debug=settings.debug)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    return serve(parse_args(argv))
