"""Import a pinned reference package for the equality tests, or fail saying how to install it.

The references (requirements-reference.txt) are installed by ``make test-install``. A missing or
different version is an ImportError naming the package and the fix, never a skip: an equality
test that does not run must not look like one that passed.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def import_pinned(importer: Callable[[], T], dist: str, version: str, role: str) -> T:
    """Run ``importer`` (which imports from ``dist``) and check that ``dist`` is at ``version``."""
    try:
        loaded = importer()
    except ImportError as err:
        raise ImportError(
            f"{role} ({dist}=={version}, requirements-reference.txt) cannot be imported: {err}. "
            "The equality tests need it; install it with `make test-install`."
        ) from err
    installed = importlib.metadata.version(dist)
    if installed != version:
        raise ImportError(f"{dist} {installed} is installed; the equality tests pin {version}")
    return loaded
