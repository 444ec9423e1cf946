"""Several screens behind one server: which stores are served, which one a request is for.

A server serves either one artifact store (``--store`` / PHENOMIX_STORE: one screen, as before) or
every store under a root folder (``--store-root`` / PHENOMIX_STORE_ROOT): each sub-folder holding
a ``STORE.json`` is a screen named after the folder. The screen is part of every URL
(``?screen=NAME``; absent: the default screen, so links made before screens existed still work).

Dash callbacks do not see the page's URL, so a request names its screen in two ways, read in this
order: the ``X-Phenomix-Screen`` header, which ``assets/screen_header.js`` adds to every request the
page makes (from ``window.location`` at the time of the request), and else the ``Referer`` (the
page's URL: the app sends ``Referrer-Policy: same-origin``, so same-origin requests carry it whole).
Page loads (``GET /map?screen=B``) name it in their own query string. Background callbacks run in
a child process without a Flask request; Dash hands them the original request's headers, which are
read the same way. What a request names is only a wish: `phenomix_dash.data.get_data` checks it
against the screens served and the user's allowed screens, so a crafted header or Referer cannot
reach another screen's data.

A screen whose store cannot be opened, or whose artifacts fail their manifest checksums, is
listed as unavailable with the reason and its pages show it; the others keep working.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from phenomix_dash.cache import memoize
from phenomix_dash.request_headers import request_headers
from phenomix_dash.security import safe_str
from precompute.artifacts import ArtifactError, ArtifactStore

log = logging.getLogger("phenomix_dash")

SCREEN_PARAM = "screen"
SCREEN_HEADER = "X-Phenomix-Screen"
# Folder names that can be screen names: they appear in URLs, headers and the auth file.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_screen_name(name: str) -> bool:
    return bool(_NAME.match(name))


def discover_stores(root: Path) -> dict[str, Path]:
    """name -> store folder for every artifact store directly under ``root`` (sorted by name).
    Folders whose names cannot be screen names are skipped with a warning."""
    found: dict[str, Path] = {}
    try:
        children = sorted(p for p in Path(root).iterdir() if p.is_dir())
    except OSError as err:
        raise ValueError(f"store root {root}: cannot list it ({err})") from None
    for p in children:
        if not (p / "STORE.json").is_file():
            continue
        if not valid_screen_name(p.name):
            log.warning("store %s skipped: %r cannot be a screen name (letters, digits, . _ -)", p, p.name)
            continue
        found[p.name] = p
    return found


@dataclass(frozen=True)
class ScreenRegistry:
    """The screens a server serves: name -> store folder, the default one and the run served."""

    stores: dict[str, Path]
    default: str
    run: str = "default"
    root: Path | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.stores)

    @classmethod
    def from_settings(cls, settings: Any) -> ScreenRegistry:
        """Every store under ``settings.store_root`` (when set), else the one ``settings.store``."""
        store = Path(settings.store)
        root = getattr(settings, "store_root", None)
        if root is None:
            return cls({_single_name(store): store}, _single_name(store), settings.run)
        stores = discover_stores(Path(root))
        if not stores:  # nothing built yet: serve the one store, whose page says what to run
            log.warning("no artifact stores under %s", root)
            return cls({_single_name(store): store}, _single_name(store), settings.run, Path(root))
        default = store.name if store.name in stores else next(iter(stores))
        return cls(stores, default, settings.run, Path(root))


def _single_name(store: Path) -> str:
    return store.name if valid_screen_name(store.name) else "default"


# -- availability --------------------------------------------------------------------------------

@dataclass
class _Verdicts:
    """Why a screen is unavailable, per (store, run); filled by cheap checks and checksum failures."""

    problems: dict[tuple[str, str], str] = field(default_factory=dict)
    checked: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


_verdicts = _Verdicts()


def _key(store: Path | str, run: str) -> tuple[str, str]:
    return (str(Path(store).resolve()), run)


def mark_unavailable(store: Path | str, run: str, reason: str) -> None:
    """Record that a screen cannot be served (e.g. a stage failed its checksum); the first reason stays."""
    with _verdicts.lock:
        _verdicts.problems.setdefault(_key(store, run), reason)


def store_problem(store: Path | str, run: str) -> str | None:
    """Why the screen of ``store`` cannot be served, or None. The first call checks cheaply (the store
    opens, the run exists, every stage of the run has its manifest); checksum failures found later
    (`mark_unavailable`) are reported from then on."""
    key = _key(store, run)
    with _verdicts.lock:
        known, checked = _verdicts.problems.get(key), key in _verdicts.checked
    if known is not None or checked:
        return known
    problem = _cheap_problem(Path(store), run)
    with _verdicts.lock:
        _verdicts.checked.add(key)
        if problem is not None:
            _verdicts.problems.setdefault(key, problem)
        return _verdicts.problems.get(key)


def _cheap_problem(store: Path, run: str) -> str | None:
    try:
        st = ArtifactStore(store, create=False)
        index = st.get_run(run)
        for name, key in stage_keys(index.get("stages", {})):
            st.open_stage(name, key)
    except (ArtifactError, OSError, ValueError) as err:
        return str(err)
    return None


def stage_keys(stages: Any, name: str | None = None) -> list[tuple[str, str]]:
    """(stage name, key) of every stage in a run index's ``stages`` (nested per embedder/alignment)."""
    out: list[tuple[str, str]] = []
    if isinstance(stages, str) and name is not None:
        return [(name, stages)]
    if isinstance(stages, dict):
        for k, v in stages.items():
            out += stage_keys(v, name or k)
    return out


def forget_verdicts() -> None:
    """Forget every verdict (a new registry is configured, or a test starts afresh)."""
    with _verdicts.lock:
        _verdicts.problems.clear()
        _verdicts.checked.clear()


# -- the request's screen ----------------------------------------------------------------------

def _header(headers: dict[str, str], name: str) -> str | None:
    low = name.lower()
    for k, v in headers.items():
        if isinstance(k, str) and k.lower() == low:
            return v if isinstance(v, str) else None
    return None


def _named(value: Any) -> str | None:
    """A requested screen name as given; one that cannot be a name at all (too long, control
    characters) becomes a placeholder no screen has, so it is refused rather than read as 'none'."""
    if not isinstance(value, str) or not value:
        return None
    clean = safe_str(value, 64)
    return clean if clean is not None else "(invalid name)"


def requested_screen() -> str | None:
    """The screen name the request being served asks for (unchecked), or None: not in a request,
    or the default screen. Never raises."""
    try:
        from flask import has_request_context, request

        if has_request_context() and request.method == "GET" and SCREEN_PARAM in request.args:
            return _named(request.args.get(SCREEN_PARAM))
    except Exception:
        pass
    headers = request_headers()
    explicit = _header(headers, SCREEN_HEADER)
    if explicit:
        return _named(explicit)
    referer = _header(headers, "Referer")
    if referer:
        try:
            values = parse_qs(urlsplit(referer[:4096]).query, max_num_fields=100).get(SCREEN_PARAM)
        except ValueError:
            return "(invalid name)"
        return _named(values[0]) if values else None
    return None


def in_request() -> bool:
    """True while serving a request (a Flask request, or a background callback started by one)."""
    try:
        from flask import has_request_context

        if has_request_context():
            return True
    except ImportError:  # pragma: no cover
        pass
    return bool(request_headers())


# -- which screen the request may see ------------------------------------------------------------

class ScreenError(ValueError):
    """The request names a screen it cannot have; ``status`` is the HTTP answer (404 or 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


_registry: ScreenRegistry | None = None


def configure_registry(registry: ScreenRegistry | None) -> None:
    """The screens this process serves (create_app, through `phenomix_dash.data.configure`)."""
    global _registry
    _registry = registry
    forget_verdicts()


def registry() -> ScreenRegistry | None:
    return _registry


def visible_screens(reg: ScreenRegistry) -> tuple[str, ...]:
    """The screens the request's user may see, in the registry's order (all of them outside a request)."""
    from phenomix_dash.auth import allowed_screens, current_user

    if not in_request():
        return reg.names
    allowed = allowed_screens(current_user())
    return reg.names if allowed is None else tuple(n for n in reg.names if n in allowed)


def current_screen(reg: ScreenRegistry, requested: str | None = None) -> str:
    """The screen to serve: ``requested`` (default: what the request asks for), checked against the
    screens served and the user's. No screen asked for: the default one, or the user's first when
    the default is not theirs. Outside a request (warm-up, tests) every screen may be named."""
    name = requested if requested is not None else requested_screen()
    visible = visible_screens(reg)
    if not name:
        if reg.default in visible:
            return reg.default
        if not visible:
            raise ScreenError("no screen of this server is available to you", 403)
        return visible[0]
    if name not in visible:
        if name in reg.stores:  # exists, but not for this user: say so without listing others
            raise ScreenError(f"screen {name!r} is not available to you", 403)
        raise ScreenError(f"no screen named {name!r} on this server; screens: {', '.join(visible) or 'none'}", 404)
    return name


# -- checksums -------------------------------------------------------------------------------------

# Screens up to this size are checked against every manifest checksum when the server starts (in
# the background); larger ones (a million-well store is gigabytes) stage by stage on first read.
EAGER_VERIFY_BYTES = 256 * 2**20


@memoize(None, key=lambda st, store, name, node: (store, name, node))
def verify_stage(st: Any, store: str, name: str, node: str) -> bool:
    """Check one stage's files against its manifest once per process (callers of one stage wait
    for its verdict); raises ArtifactError naming the first bad file."""
    st.verify()
    return True


def store_bytes(store: Path, run: str) -> int:
    """Bytes of the files of the run's stages (what a full verification hashes)."""
    st = ArtifactStore(store, create=False)
    total = 0
    for name, key in stage_keys(st.get_run(run).get("stages", {})):
        for p in st.stage_dir(name, key).rglob("*"):
            if p.is_file():
                total += p.stat().st_size
    return total


def verify_store(store: Path, run: str) -> str | None:
    """Check every stage of the run against its checksums; a failure marks the screen unavailable.
    Returns the problem, or None when every file matches."""
    problem = store_problem(store, run)
    if problem is not None:
        return problem
    try:
        st = ArtifactStore(store, create=False)
        for name, key in stage_keys(st.get_run(run).get("stages", {})):
            verify_stage(st.open_stage(name, key), str(store), name, key)
    except (ArtifactError, OSError, ValueError) as err:
        mark_unavailable(store, run, str(err))
        return str(err)
    return None


def verify_small_stores(reg: ScreenRegistry, limit: int = EAGER_VERIFY_BYTES) -> dict[str, str | None]:
    """`verify_store` for every screen up to ``limit`` bytes (start-up, in the background); larger
    screens are checked stage by stage when read. name -> problem (None: fine; skipped: absent)."""
    out: dict[str, str | None] = {}
    for name, store in reg.stores.items():
        try:
            if store_problem(store, reg.run) is None and store_bytes(store, reg.run) > limit:
                continue
        except (ArtifactError, OSError, ValueError):
            pass  # verify_store names it
        out[name] = verify_store(store, reg.run)
    return out
