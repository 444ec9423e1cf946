"""Small per-process caches keyed by file stamps, for objects costly to rebuild (a screen, a model).

A Dask worker embeds many plates and must not reread the wells table or reload the model for each;
the local executor goes through the same caches so it runs exactly the code a worker runs. Keys
carry file stamps (inode, size, mtime) so a file rewritten at the same path in a long-lived process
is reloaded, not served stale.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any


def file_stamp(*paths: Path) -> tuple:
    """(inode, size, mtime) of each path; None for one that is missing (its loader raises the clear error)."""
    out = []
    for p in paths:
        try:
            st = Path(p).stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class ProcessCache:
    """At most ``entries`` values, the oldest dropped first; ``get(key, make)`` builds a value once."""

    def __init__(self, entries: int = 4) -> None:  # a process rarely sees more than one screen and a few embedders
        self.entries = int(entries)
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key not in self._values:
            while len(self._values) >= self.entries:
                self._values.pop(next(iter(self._values)))  # oldest first
            self._values[key] = make()
        return self._values[key]
