"""The import kinds of ``python -m precompute import KIND``: one module per kind in this folder.

A kind module defines ``KIND = ImportKind(...)``: its name on the command line, a one-line help,
what its input files are, its own arguments and a run function that writes a screen folder.
:func:`registered_kinds` finds every module here, so adding a reader is one new file (plus its
tests); the command line, its help and its choices follow. Modules whose name starts with ``_``
are skipped.

Every kind also gets the shared arguments: the input file(s), ``--out`` (the screen folder),
``--name`` and ``--mapping`` (already parsed to a dict, or None, when ``run`` is called).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _no_arguments(_p: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class ImportKind:
    """One importer: ``run(args)`` writes the screen folder ``args.out`` and returns its path."""

    name: str
    help: str
    inputs_help: str
    run: Callable[[argparse.Namespace], Path]
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    several_inputs: bool = False  # False: exactly one input file


def registered_kinds() -> dict[str, ImportKind]:
    """name -> ImportKind for every kind module in this package, sorted by name.

    Raises TypeError naming a module that defines no ``KIND``, ValueError for two modules
    claiming one name: a broken reader file stops the command line at once, not at its first use.
    """
    found: dict[str, ImportKind] = {}
    origin: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, ImportKind):
            raise TypeError(f"{module.__name__}: an import kind module must define KIND = ImportKind(...)")
        if kind.name in found:
            raise ValueError(f"import kind {kind.name!r} is defined twice: {origin[kind.name]} and {module.__name__}")
        found[kind.name], origin[kind.name] = kind, module.__name__
    return dict(sorted(found.items()))
