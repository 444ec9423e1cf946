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

Per-screen access (a server over several screens, phenomix_dash/screens.py): a users-file line may
end with ``screens=demo,real`` (after whitespace); the user then sees only those screens. A line
without it sees every screen, as before. In header mode, ``PHENOMIX_SCREEN_ACCESS=/path`` names a
file of ``name screens=a,b`` lines (``*`` for everyone not listed); when it is set, a user it does
not list (and no ``*`` line) sees no screen.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

log = logging.getLogger("phenomix_dash")

AUTH_FILE_ENV = "PHENOMIX_AUTH_FILE"
TRUST_HEADER_ENV = "PHENOMIX_TRUST_HEADER"
SCREEN_ACCESS_ENV = "PHENOMIX_SCREEN_ACCESS"
SCREENS_FIELD = "screens="
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


def _read_private(path: str | os.PathLike, what: str) -> tuple[Path, str]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AuthConfigError(f"{p}: cannot read the {what} ({err})") from None
    if os.name == "posix" and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: the %s is readable by other users; chmod 600 it", p, what)
    return p, text


def _screens_field(p: Path, n: int, fields: list[str]) -> frozenset[str] | None:
    """The ``screens=a,b`` field of a line (None: none given, every screen)."""
    if not fields:
        return None
    if len(fields) > 1 or not fields[0].startswith(SCREENS_FIELD):
        raise AuthConfigError(f"{p}, line {n}: after the entry, only 'screens=NAME[,NAME...]' may follow, "
                              f"not {' '.join(fields)[:80]!r}")
    names = [x.strip() for x in fields[0][len(SCREENS_FIELD):].split(",")]
    if not all(names):
        raise AuthConfigError(f"{p}, line {n}: 'screens=' needs comma-separated screen names, "
                              f"got {fields[0][:80]!r}")
    return frozenset(names)


def load_user_entries(path: str | os.PathLike) -> dict[str, tuple[str, frozenset[str] | None]]:
    """Read ``name:hash [screens=a,b]`` lines ('#' comments and blank lines allowed) ->
    {name: (hash, screens or None for every screen)}."""
    p, text = _read_private(path, "users file")
    users: dict[str, tuple[str, frozenset[str] | None]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry, *fields = line.split()
        name, sep, pw_hash = entry.partition(":")
        if not sep or not name or not pw_hash:
            raise AuthConfigError(f"{p}, line {n}: expected 'name:password-hash', optionally followed by ' screens=NAME[,NAME...]'")
        if not pw_hash.startswith(_HASH_METHODS):
            raise AuthConfigError(f"{p}, line {n}: the password of {name!r} is not a hash; create the entry with "
                                  f"`python -m phenomix_dash.auth add-user {p} {name}`")
        users[name] = (pw_hash, _screens_field(p, n, fields))
    if not users:
        raise AuthConfigError(f"{p}: no users; add one with `python -m phenomix_dash.auth add-user {p} NAME`")
    return users


def load_users(path: str | os.PathLike) -> dict[str, str]:
    """Read ``name:hash`` lines -> {name: hash} (see `load_user_entries` for the screens field)."""
    return {name: h for name, (h, _s) in load_user_entries(path).items()}


def load_screen_access(path: str | os.PathLike) -> dict[str, frozenset[str] | None]:
    """Read ``name screens=a,b`` lines (header mode; ``*`` for every user not listed) -> {name: screens}."""
    p, text = _read_private(path, "screen access file")
    access: dict[str, frozenset[str] | None] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, *fields = line.split()
        if not fields:
            raise AuthConfigError(f"{p}, line {n}: expected 'name screens=NAME[,NAME...]'")
        access[name] = _screens_field(p, n, fields)
    return access


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

    entries = load_user_entries(users_file)
    users = {name: h for name, (h, _s) in entries.items()}
    _set_access("basic", None, {name: sc for name, (_h, sc) in entries.items()})

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
    _set_access(None, None, {})
    if env.get(SCREEN_ACCESS_ENV) and mode != "header":
        raise AuthConfigError(f"{SCREEN_ACCESS_ENV} is for {TRUST_HEADER_ENV} (header) mode; with a users file, "
                              "put 'screens=...' on the users' lines")
    if mode == "basic":
        install_basic_auth(app, env[AUTH_FILE_ENV])
    elif mode == "header":
        install_header_auth(app, env[TRUST_HEADER_ENV])
        access = load_screen_access(env[SCREEN_ACCESS_ENV]) if env.get(SCREEN_ACCESS_ENV) else None
        _set_access("header", env[TRUST_HEADER_ENV], access)
    if mode:
        log.info("authentication: %s", mode)
    return mode


# -- who may see which screen ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Access:
    mode: str | None = None
    header: str | None = None
    # user -> screens (None: every screen); None instead of a dict: no per-screen limits at all.
    screens: dict[str, frozenset[str] | None] | None = None


_access = _Access()


def _set_access(mode: str | None, header: str | None, screens: dict[str, frozenset[str] | None] | None) -> None:
    global _access
    limited = screens is not None and any(v is not None for v in screens.values())
    if mode == "header" and screens is not None:
        limited = True  # an access file limits everyone it does not list
    _access = _Access(mode, header, dict(screens) if limited else None)


def screen_limits_configured() -> bool:
    """True when some user may see only some screens."""
    return _access.screens is not None


def current_user() -> str | None:
    """The authenticated user of the request being served: the Flask request's, or in a background
    callback (a child process) the one named by the original request's headers, which the server
    authenticated before starting it. None without authentication."""
    try:
        from flask import g, has_request_context

        if has_request_context():
            return getattr(g, "phenomix_user", None)
    except ImportError:  # pragma: no cover
        return None
    from phenomix_dash.request_headers import request_headers

    headers = {k.lower(): v for k, v in request_headers().items() if isinstance(k, str)}
    if _access.mode == "basic":
        cred = basic_credentials(headers.get("authorization"))
        return cred[0] if cred else None
    if _access.mode == "header" and _access.header:
        from phenomix_dash.security import safe_str

        return safe_str(headers.get(_access.header.lower(), ""), 256) or None
    return None


def allowed_screens(user: str | None) -> frozenset[str] | None:
    """The screens ``user`` may see; None: every screen (no limits configured, or none for this user)."""
    if _access.screens is None:
        return None
    if user is not None and user in _access.screens:
        return _access.screens[user]
    if _access.mode == "header":
        return _access.screens.get("*", frozenset())
    # A basic-auth user without a 'screens=' field sees every screen (files from before screens).
    return None if user is not None else frozenset()


def add_user(path: Path, name: str, password: str, screens: str | None = None) -> None:
    """Add or replace one user in a users file (created private: 0600); ``screens`` ('demo,real')
    limits the screens the user sees."""
    if not name or ":" in name or name != name.strip():
        raise AuthConfigError(f"user name {name!r}: no ':' and no surrounding spaces")
    if len(password) < 8:
        raise AuthConfigError("the password must have at least 8 characters")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [ln for ln in lines if ln.partition(":")[0].strip() != name]
    entry = f"{name}:{generate_password_hash(password)}"
    if screens:
        names = [x.strip() for x in screens.split(",")]
        if not all(names) or any(c.isspace() for c in screens.strip()):
            raise AuthConfigError(f"--screens {screens!r}: comma-separated screen names, no spaces")
        entry += f" {SCREENS_FIELD}{','.join(names)}"
    lines.append(entry)
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
    a.add_argument("--screens", default=None, help="comma-separated screens the user may see (default: every screen)")
    args = p.parse_args(argv)
    try:
        pw = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.name}: ")
        add_user(args.file, args.name, pw, args.screens)
    except AuthConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.file}: user {args.name!r} saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
