"""Optional authentication for a shared dashboard (see docs/team.md).

Two ways, chosen by environment variables read at start-up:

- ``PHENOMIX_AUTH_FILE=/path/users``: HTTP basic auth (dash-auth's BasicAuth) against a users
  file of ``name:password-hash`` lines (Werkzeug hashes, e.g. ``scrypt:...``). Create entries with
  ``python -m phenomix_dash.auth add-user /path/users alice``. Plain-text passwords are refused.
  Basic auth sends the password with every request: serve it over HTTPS (a reverse proxy) when it
  leaves the machine.
- ``PHENOMIX_TRUST_HEADER=X-Forwarded-User``: an authenticating reverse proxy (oauth2-proxy,
  nginx auth_request, ...) sets this header; requests without it are refused with 401. Anyone who
  can reach the app directly can set the header too, so the app must listen on 127.0.0.1 only.

Neither set: no authentication (fine on 127.0.0.1; a loud warning otherwise).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

log = logging.getLogger("phenomix_dash")

AUTH_FILE_ENV = "PHENOMIX_AUTH_FILE"
TRUST_HEADER_ENV = "PHENOMIX_TRUST_HEADER"
_HASH_METHODS = ("scrypt:", "pbkdf2:")
# Compared against for unknown users, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("phenomix-no-such-user")


class AuthConfigError(ValueError):
    """The authentication settings cannot be used; the message names the file, line or variable."""


def auth_mode(environ: dict[str, str] | None = None) -> str | None:
    """'basic', 'header' or None, from PHENOMIX_AUTH_FILE / PHENOMIX_TRUST_HEADER."""
    env = os.environ if environ is None else environ
    has_file, has_header = bool(env.get(AUTH_FILE_ENV)), bool(env.get(TRUST_HEADER_ENV))
    if has_file and has_header:
        raise AuthConfigError(f"set either {AUTH_FILE_ENV} or {TRUST_HEADER_ENV}, not both")
    return "basic" if has_file else "header" if has_header else None


def load_users(path: str | os.PathLike) -> dict[str, str]:
    """Read ``name:hash`` lines ('#' comments and blank lines allowed) -> {name: hash}."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AuthConfigError(f"{p}: cannot read the users file ({err})") from None
    if os.name == "posix" and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: the users file is readable by other users; chmod 600 it", p)
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, pw_hash = line.partition(":")
        if not sep or not name or not pw_hash:
            raise AuthConfigError(f"{p}, line {n}: expected 'name:password-hash'")
        if not pw_hash.startswith(_HASH_METHODS):
            raise AuthConfigError(f"{p}, line {n}: the password of {name!r} is not a hash; create the entry with "
                                  f"`python -m phenomix_dash.auth add-user {p} {name}`")
        users[name] = pw_hash
    if not users:
        raise AuthConfigError(f"{p}: no users; add one with `python -m phenomix_dash.auth add-user {p} NAME`")
    return users


def check_credentials(users: dict[str, str], name: str, password: str) -> bool:
    """True when ``password`` matches the stored hash of ``name``; constant work for unknown names."""
    pw_hash = users.get(name)
    ok = check_password_hash(pw_hash or _DUMMY_HASH, password)
    return ok and pw_hash is not None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(name, password) from an ``Authorization: Basic ...`` header; None for anything malformed."""
    if not header or not header.startswith("Basic ") or len(header) > 4096:
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def install_basic_auth(app: Any, users_file: str | os.PathLike) -> Any:
    """dash-auth BasicAuth over a users file of hashes (every route, every callback)."""
    import dash_auth

    users = load_users(users_file)

    class _BasicAuth(dash_auth.BasicAuth):
        # dash-auth's own check raises on malformed headers (a 500) and compares plain text.
        def is_authorized(self) -> bool:
            from flask import g, request

            cred = basic_credentials(request.headers.get("Authorization"))
            if cred is None or not check_credentials(users, *cred):
                return False
            g.phenomix_user = cred[0]
            return True

    return _BasicAuth(app, auth_func=lambda _u, _p: False)


def install_header_auth(app: Any, header: str) -> None:
    """Trust ``header`` (set by an authenticating reverse proxy); refuse requests without it."""
    from flask import Response, g, request

    from phenomix_dash.security import safe_str

    if not header.replace("-", "").isalnum():
        raise AuthConfigError(f"{TRUST_HEADER_ENV}={header!r} is not an HTTP header name")

    @app.server.before_request
    def _require_header():
        user = safe_str(request.headers.get(header, ""), 256)
        if not user:
            return Response(f"Authentication required: this dashboard is served behind a proxy that sets {header}.",
                            status=401, mimetype="text/plain")
        g.phenomix_user = user
        return None


def install_auth(app: Any, environ: dict[str, str] | None = None) -> str | None:
    """Install what the environment asks for; returns the mode ('basic', 'header') or None."""
    env = os.environ if environ is None else environ
    mode = auth_mode(env)
    if mode == "basic":
        install_basic_auth(app, env[AUTH_FILE_ENV])
    elif mode == "header":
        install_header_auth(app, env[TRUST_HEADER_ENV])
    if mode:
        log.info("authentication: %s", mode)
    return mode


def add_user(path: Path, name: str, password: str) -> None:
    """Add or replace one user in a users file (created private: 0600)."""
    if not name or ":" in name or name != name.strip():
        raise AuthConfigError(f"user name {name!r}: no ':' and no surrounding spaces")
    if len(password) < 8:
        raise AuthConfigError("the password must have at least 8 characters")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [ln for ln in lines if ln.partition(":")[0].strip() != name]
    lines.append(f"{name}:{generate_password_hash(password)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m phenomix_dash.auth", description="manage the users file for basic auth")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add-user", help="add or replace a user (the password is asked for, or read from stdin)")
    a.add_argument("file", type=Path)
    a.add_argument("name")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = p.parse_args(argv)
    try:
        pw = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.name}: ")
        add_user(args.file, args.name, pw)
    except AuthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.file}: user {args.name!r} saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
