"""Serve the Phenomix dashboard: ``python app.py`` (what ``make demo`` and ``phenomix serve`` run;
the serving itself is :mod:`phenomix.serve`) or, for a team, ``gunicorn app:server``
(settings from PHENOMIX_* variables and gunicorn.conf.py; docs/team.md).
"""

from __future__ import annotations

import os
import sys

from phenomix.serve import main, parse_args  # noqa: F401  (parse_args: what `python app.py` accepts)

if __name__ == "__main__":
    sys.exit(main())
else:
    # `gunicorn app:server` imports this module: settings come from PHENOMIX_* variables;
    # gunicorn.conf.py binds 127.0.0.1:8050 by default and warns when exposed without auth.
    from phenomix_dash import admission, compressed_answers, create_app, limit_blas_for_serving, shared_answers

    limit_blas_for_serving()
    app = create_app()
    server = app.server
    # Requests beyond a few computing at once per worker wait their turn, or get a clear 503 with
    # Retry-After when the wait would be too long (PHENOMIX_MAX_IN_FLIGHT / PHENOMIX_MAX_WAIT).
    server.wsgi_app = admission.from_env(server.wsgi_app, os.environ)
    # Large answers (the maps) compressed once per distinct body (PHENOMIX_COMPRESSED_CACHE_MB per
    # worker; 0: every time, by flask-compress).
    compressed_answers.install(server, int(os.environ.get("PHENOMIX_COMPRESSED_CACHE_MB", "128")) * 2**20)
    # Answers of pure callbacks (maps, neighbours, heatmaps) kept in the cache every worker shares:
    # a view one user asked for is a file read for the next, from any worker (PHENOMIX_SHARED_ANSWERS=0: off).
    if os.environ.get("PHENOMIX_SHARED_ANSWERS", "1") != "0":
        shared_answers.install(server)
