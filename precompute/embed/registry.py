"""The embedder registry: every embedder the pipeline, the command line and the benchmarks know.

Each embedder is ONE module in :mod:`precompute.embed.embedders` that calls :func:`register` with an
:class:`EmbedderSpec`; :func:`discover` imports every module of that package, so adding an embedder
is adding one file there (and its tests). The command line's ``--embedder`` choices, the embed
stage's build options and stage key, and the figures' and benchmarks' labels all come from here.

``features`` is not an embedder: the embed stage copies a screen's precomputed well features
instead of embedding images. It is listed beside the registered names where a user picks one
(:func:`cli_choices`) or reads a label (:func:`embedder_labels`).

This module imports no embedder and no torch: listing the embedders stays cheap (the command line,
the dashboard's figures); an embedder module imports its heavy parts only when it builds one.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

EMBEDDERS_PACKAGE = "precompute.embed.embedders"  # one module per embedder, imported by discover()
FEATURES = "features"  # the embed stage's pseudo-embedder: the screen's precomputed well features
FEATURES_LABEL = "precomputed features"


@runtime_checkable
class Embedder(Protocol):
    """Tiles -> vectors. ``name`` identifies the method in artifacts; ``dim`` is the output width."""

    name: str
    dim: int

    def embed_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """(n, C, t, t) float32 in [0, 1] -> (n, dim) float32."""
        ...


# (screen, run config) -> (options for build, the config that keys the embed stage). The key config
# must stay byte-for-byte what it was for a given embedder: it names the stored artifacts.
StageOptions = Callable[[Any, Any], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class EmbedderSpec:
    """One embedder, as the rest of the code base sees it.

    - ``name``: the ``--embedder`` value and the name stored in artifacts (lower case).
    - ``label``: how figures and benchmark tables name it.
    - ``build(**options)``: the :class:`Embedder`; heavy imports belong inside it.
    - ``stage_options(screen, config)``: (build options, stage-key config) for the embed stage.
    - ``order``: position in listings (figures show rows in this order: the paper's random,
      pixel statistics, MAE).
    - ``is_mae``: a CA-MAE checkpoint (torch threads, block choice and channel-wise embeddings are
      recorded; a run skips it when its checkpoint is missing).
    - ``help``: one line for the command line's ``--embedder`` help.
    """

    name: str
    label: str
    build: Callable[..., Embedder]
    stage_options: StageOptions
    order: int = 100
    is_mae: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or self.name == FEATURES:
            raise ValueError(f"embedder name {self.name!r}: must be non-empty, lower case and not {FEATURES!r}")


_REGISTRY: dict[str, EmbedderSpec] = {}
_discovered: set[str] = set()


def register(spec: EmbedderSpec, *, replace: bool = False) -> EmbedderSpec:
    """Add ``spec`` to the registry (an embedder module calls this at import). The same name from
    another module raises, unless ``replace``; the same module imported again (reloaded) replaces."""
    old = _REGISTRY.get(spec.name)
    if old is not None and not replace and old.build.__module__ != spec.build.__module__:
        raise ValueError(f"embedder {spec.name!r} is registered twice ({old.build.__module__} and {spec.build.__module__})")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove an embedder (tests register throwaway ones); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def discover(package: str = EMBEDDERS_PACKAGE) -> None:
    """Import every module of ``package`` once, so each registers its embedder."""
    if package in _discovered:
        return
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    _discovered.add(package)


def specs() -> list[EmbedderSpec]:
    """Every registered embedder, in listing order."""
    discover()
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def embedder_names() -> tuple[str, ...]:
    """The registered embedders' names, in listing order."""
    return tuple(s.name for s in specs())


def mae_embedder_names() -> tuple[str, ...]:
    """The registered CA-MAE checkpoint embedders (``is_mae``)."""
    return tuple(s.name for s in specs() if s.is_mae)


def is_mae(name: str) -> bool:
    """True for a registered CA-MAE embedder; False for the others and for ``features``."""
    return name in mae_embedder_names()


def get_spec(name: str) -> EmbedderSpec:
    """The spec registered as ``name`` (case-insensitive); an unknown name raises a ValueError
    listing the registered ones."""
    discover()
    spec = _REGISTRY.get(str(name).lower())
    if spec is None:
        raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(embedder_names())}")
    return spec


def get_embedder(name: str, **options: Any) -> Embedder:
    """Build an embedder by name: ``get_embedder("random", dim=384, seed=0)``,
    ``get_embedder("pixelstats")``, ``get_embedder("mae", checkpoint="path/to/ckpt_dir",
    device="auto", batch_size=256, block="last", channelwise=False, n_channels=None)``; the
    options are the embedder module's ``build``'s."""
    return get_spec(name).build(**options)


def stage_options(name: str, screen: Any, config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options to build the embedder, config that keys the embed stage) for ``name`` on ``screen``
    under the run ``config``."""
    return get_spec(name).stage_options(screen, config)


def cli_choices() -> list[str]:
    """``--embedder`` values: the registered embedders and ``features``."""
    return [*embedder_names(), FEATURES]


def cli_help() -> str:
    """One line per registered embedder and ``features``, for ``--embedder``'s help."""
    lines = [f"{s.name}: {s.help or s.label}" for s in specs()]
    return "; ".join([*lines, f"{FEATURES}: the screen's {FEATURES_LABEL} (no images needed)"])


def embedder_labels() -> dict[str, str]:
    """name -> label for figures and benchmark tables, ``features`` included, in listing order."""
    return {**{s.name: s.label for s in specs()}, FEATURES: FEATURES_LABEL}
