"""The dashboard's one cache: `memoize`, with a lock per key and two tiers.

Callbacks repeat the same costly steps (a colour table, hover texts, a benchmark figure), often
at the same time in several threads and several gunicorn workers. `memoize` answers them:

- **per-key locks**: two different keys compute at the same time; callers of the same key wait
  for the one computing it; a hit in memory takes no lock at all;
- **in-process tier** (every memoized function): a bounded LRU of the results themselves, for
  cheap-to-keep or unpicklable objects (memory maps, the data reader, figure traces);
- **disk tier** (``disk=True``): a size-bounded `diskcache.Cache` folder shared by every worker
  process, for costly picklable results (figure dicts, tables, texts), so one worker's work
  serves the others and survives a worker being recycled. A key missing on disk is computed by
  one process at a time: the others wait for its result (an expiring claim in the same folder).

A function memoized with ``store=True`` takes the data reader (``PhenomixData``) as its first
argument; its key holds the store's identity (path, run, the run's stage keys and finish time,
see `store_identity`) instead of the object, so a store rebuilt under the same path is a miss,
never a stale hit. Disk keys also hold `CODE_VERSION`, so a new version of the dashboard never
reads what an older one computed. This module reads no store and imports nothing of the
dashboard, so figures/ may use it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import wraps
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from phenomix.settings import phenomix_home
from phenomix_dash.security import private_dir

log = logging.getLogger(__name__)
DISK_LIMIT_BYTES = 2**30  # the shared folder's size limit; diskcache evicts least recently used
_MISSING = object()


class CacheInfo(NamedTuple):
    hits: int  # answered from memory
    misses: int  # not in memory: read from disk or computed
    maxsize: int | None
    currsize: int
    disk_hits: int  # misses answered from the disk tier


def _code_version() -> str:
    """Names, sizes and modification times of the dashboard's source files: changes with any edit."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


CODE_VERSION = _code_version()


# -- the store's identity ----------------------------------------------------------------------

_identities: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def store_identity(d: Any) -> tuple[str, ...]:
    """(store path, run name, the run's stage keys as JSON, when the run finished) of a data reader
    (any object with ``store_root``, ``run_name`` and the ``run`` index, i.e. PhenomixData).
    Computed once per reader object."""
    ident = _identities.get(d)
    if ident is None:
        run = d.run if isinstance(d.run, dict) else {}
        ident = (str(Path(d.store_root).resolve()), str(d.run_name),
                 json.dumps(run.get("stages", {}), sort_keys=True, default=str), str(run.get("finished")))
        _identities[d] = ident
    return ident


# -- the disk tier -----------------------------------------------------------------------------

_disk: Any = None
_disk_dir: Path | None = None
_disk_guard = threading.Lock()


def default_disk_dir() -> Path:
    """PHENOMIX_CACHE_DIR, else PHENOMIX_HOME/cache/dashboard."""
    explicit = os.environ.get("PHENOMIX_CACHE_DIR")
    return Path(explicit) if explicit else phenomix_home() / "cache" / "dashboard"


def configure_disk(directory: str | Path | None = None, size_limit: int = DISK_LIMIT_BYTES) -> Any:
    """Use ``directory`` (default `default_disk_dir`) for the shared tier from now on; returns the
    `diskcache.Cache`, which Dash's background callbacks share too."""
    import diskcache

    global _disk, _disk_dir
    directory = Path(directory) if directory is not None else default_disk_dir()
    with _disk_guard:
        if _disk is None or _disk_dir != directory:
            private_dir(directory)  # cached results are screen data: owner only
            _disk, _disk_dir = diskcache.Cache(str(directory), size_limit=size_limit), directory
        return _disk


def disk_cache() -> Any:
    """The shared `diskcache.Cache` (opened at `default_disk_dir` on first use if not configured)."""
    return _disk if _disk is not None else configure_disk()


# -- one process computes a key at a time ---------------------------------------------------------

CLAIM_WAIT_S = 120.0  # the longest a process waits for another's result before computing it itself
CLAIM_POLL_S = 0.05


def _claim_key(dkey: str) -> str:
    return f"computing:{dkey}"


def _claim(cache: Any, dkey: str) -> bool:
    """Claim ``dkey`` for this process (atomic across processes); the claim expires by itself, so a
    worker killed while computing does not block the others for longer than CLAIM_WAIT_S."""
    try:
        return bool(cache.add(_claim_key(dkey), os.getpid(), expire=CLAIM_WAIT_S))
    except Exception as err:  # the shared tier unusable: compute here, as without it
        log.warning("shared cache claim failed, computing here: %r", err)
        return True


def _claimed(cache: Any, dkey: str) -> bool:
    try:
        return _claim_key(dkey) in cache
    except Exception:
        return False


def _release(cache: Any, dkey: str) -> None:
    try:
        cache.delete(_claim_key(dkey))
    except Exception as err:
        log.warning("shared cache claim not released (it expires by itself): %r", err)


# -- values handed out to many callers ----------------------------------------------------------

def freeze(value: Any) -> Any:
    """Make arrays in a cached value read-only (also inside tuples, lists and dict values)."""
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, (tuple, list)):
        for v in value:
            freeze(v)
    elif isinstance(value, dict):
        for v in value.values():
            freeze(v)
    return value


def thaw_frames(value: Any) -> Any:
    """DataFrames cannot be made read-only: hand out shallow copies (top level, or directly inside
    a tuple/dict) so callers cannot rebind or add columns of the cached one. Other values are
    returned as they are, so a hit costs no copying."""
    def one(v: Any) -> Any:
        return v.copy(deep=False) if isinstance(v, pd.DataFrame) else v

    if isinstance(value, tuple):
        return tuple(one(v) for v in value)
    if isinstance(value, dict) and any(isinstance(v, pd.DataFrame) for v in value.values()):
        return {k: one(v) for k, v in value.items()}
    return one(value)


# -- memoize ------------------------------------------------------------------------------------

class Memo:
    """A memoized function (see the module docstring); call it like the function it wraps."""

    def __init__(self, fn: Callable, maxsize: int | None, disk: bool, store: bool,
                 key: Callable[..., Hashable] | None) -> None:
        if maxsize is not None and maxsize < 1:
            raise ValueError(f"maxsize must be a positive number or None, got {maxsize!r}")
        self.fn, self.maxsize, self.disk, self.store, self._key_fn = fn, maxsize, disk, store, key
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()  # held only to find a key's lock or to insert/evict, never to compute
        self.hits = self.misses = self.disk_hits = 0
        wraps(fn)(self)
        _memos.add(self)

    def key(self, *args: Any, **kwargs: Any) -> Hashable:
        if self._key_fn is not None:
            return self._key_fn(*args, **kwargs)
        if self.store:
            return (store_identity(args[0]), args[1:], tuple(sorted(kwargs.items())))
        return (args, tuple(sorted(kwargs.items())))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = self.key(*args, **kwargs)
        value = self._values.get(key, _MISSING)
        if value is not _MISSING:  # the common case: no lock
            self.hits += 1
            try:
                self._values.move_to_end(key)
            except KeyError:  # evicted meanwhile by another thread; the value in hand is still good
                pass
            return thaw_frames(value)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            value = self._values.get(key, _MISSING)
            if value is not _MISSING:  # another caller computed it while we waited
                self.hits += 1
                return thaw_frames(value)
            self.misses += 1
            try:
                value = self._compute(key, args, kwargs)
                with self._guard:
                    self._values[key] = value
                    while self.maxsize is not None and len(self._values) > self.maxsize:
                        self._values.popitem(last=False)
            finally:
                with self._guard:
                    self._locks.pop(key, None)
        return thaw_frames(value)

    def _compute(self, key: Hashable, args: tuple, kwargs: dict) -> Any:
        if not self.disk:
            return freeze(self.fn(*args, **kwargs))
        dkey = self.disk_key(key)
        cache = disk_cache()
        value = self._read(cache, dkey)
        if value is _MISSING:
            # One process computes a key at a time: the others wait for its result on disk rather
            # than burn the same CPU (4 workers warming the same table at once, measured at the
            # million store, took minutes on 2 cores).
            claimed = _claim(cache, dkey)
            try:
                if not claimed:
                    value = self._await_other(cache, dkey)
                if value is _MISSING:
                    value = freeze(self.fn(*args, **kwargs))
                    try:
                        cache.set(dkey, value)
                    except Exception as err:  # unpicklable or disk full: still served from memory
                        log.warning("result of %s not kept in the shared cache: %r", self.name, err)
                    return value
            finally:
                if claimed:
                    _release(cache, dkey)
        self.disk_hits += 1
        return freeze(value)

    def _read(self, cache: Any, dkey: str) -> Any:
        try:
            return cache.get(dkey, default=_MISSING)
        except Exception as err:  # an unreadable entry (e.g. written by other library versions): a miss
            log.warning("shared cache entry of %s unreadable, recomputing: %r", self.name, err)
            return _MISSING

    def _await_other(self, cache: Any, dkey: str) -> Any:
        """Another process computes ``dkey``: its result once on disk; _MISSING when that process
        gave up (its claim vanished or expired) or CLAIM_WAIT_S passed, and this one computes."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        while time.monotonic() < deadline:
            time.sleep(CLAIM_POLL_S)
            value = self._read(cache, dkey)
            if value is not _MISSING:
                return value
            if not _claimed(cache, dkey):
                return self._read(cache, dkey)  # written just before the claim was released
        return _MISSING

    def disk_key(self, key: Hashable) -> str:
        """The disk tier's key: this function, the code version and the call's key, hashed."""
        return hashlib.sha256(repr((self.name, CODE_VERSION, key)).encode()).hexdigest()

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, self.maxsize, len(self._values), self.disk_hits)

    def cache_clear(self) -> None:
        """Forget the in-process tier (the shared disk tier is keyed on the store and code: it stays)."""
        with self._guard:
            self._values.clear()
            self.hits = self.misses = self.disk_hits = 0


_memos: weakref.WeakSet[Memo] = weakref.WeakSet()


def _unlock_after_fork() -> None:
    """A forked child (a Dash background callback) inherits the locks of keys other threads were
    computing at the fork, but not those threads: with fresh locks it computes such keys itself
    instead of waiting forever."""
    for memo in list(_memos):
        memo._guard, memo._locks = threading.Lock(), {}


os.register_at_fork(after_in_child=_unlock_after_fork)


def memoize(maxsize: int | None = 32, *, disk: bool = False, store: bool = False,
            key: Callable[..., Hashable] | None = None) -> Callable[[Callable], Memo]:
    """Decorator: cache ``fn``'s results per key (see the module docstring).

    Args:
        maxsize: results kept in memory (least recently used go first); None: unbounded.
        disk: also keep results in the shared on-disk tier (they must pickle).
        store: the first argument is the data reader; the key holds its store identity instead.
        key: a function of the call's arguments giving its key (default: the arguments, which
            must then be hashable and have a stable repr when ``disk``).

    Arrays in results are made read-only; DataFrames are handed out as shallow copies.
    """
    def deco(fn: Callable) -> Memo:
        return Memo(fn, maxsize, disk, store, key)

    return deco
