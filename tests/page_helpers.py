"""Helpers for tests that call page callbacks in-process (no browser)."""

from __future__ import annotations

import importlib
from types import ModuleType


def page(name: str) -> ModuleType:
    """The module of a page, e.g. ``page('map')`` -> ``phenomix_dash.pages.map`` (imported by create_app)."""
    return importlib.import_module(f"phenomix_dash.pages.{name}")
