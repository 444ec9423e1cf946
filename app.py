"""Serve the Phenomix dashboard. Development server: `python app.py`; for a team, see README."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from phenomix_dash import create_app
from phenomix_dash.settings import Settings, default_store


def parse_args(argv: list[str] | None = None) -> Settings:
    base = Settings.from_env()
    p = argparse.ArgumentParser(description="Phenomix dashboard (development server)")
    p.add_argument("--screen", default=None, help="built-in screen name; its store is var/store/NAME")
    p.add_argument("--store", type=Path, default=None, help="artifact store folder (overrides --screen)")
    p.add_argument("--run", default=base.run)
    p.add_argument("--host", default=base.host, help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=base.port)
    p.add_argument("--debug", action="store_true", help="Dash debug mode (never on a shared host)")
    a = p.parse_args(argv)
    store = a.store or (default_store(a.screen) if a.screen else base.store)
    return Settings(store=store, run=a.run, host=a.host, port=a.port, debug=a.debug or base.debug)


# `gunicorn app:server` imports this module: settings then come from PHENOMIX_* variables.
if __name__ == "__main__":
    settings = parse_args()
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"WARNING: serving on {settings.host}: anyone who can reach this address can read the screen.",
            file=sys.stderr,
        )
    os.environ["PHENOMIX_STORE"] = str(settings.store)
    app = create_app(settings)
    print(f"Phenomix: http://{settings.host}:{settings.port}  (store {settings.store})", flush=True)
    app.run(host=settings.host, port=settings.port, debug=settings.debug)
else:
    app = create_app()
    server = app.server
