"""Settings and paths in one place, read by the precompute CLI, the `phenomix` command and the app.

Everything comes from the environment (or the CLI's flags, which win): where generated screens and
stores live (``PHENOMIX_HOME``), which store and run the dashboard serves, and how. Nothing here
imports another part of the project, so every layer may import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Screens the project generates itself (`phenomix generate`): a name, not a path, on the CLI.
BUILTIN_SCREENS: tuple[str, ...] = ("demo", "real", "tiny")
DEFAULT_RUN = "default"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def shipped_dir(name: str) -> Path:
    """A data folder the project ships (``assets``, ``models``): the checkout's top-level folder,
    or, when the package is installed (no checkout around it), the copy pyproject.toml installs
    inside this package as package data."""
    installed = _PACKAGE / name
    return installed if installed.is_dir() else _CHECKOUT / name


# The dashboard's stylesheets and the MAE checkpoint the pipeline embeds with by default.
ASSETS_DIR = shipped_dir("assets")
DEFAULT_CHECKPOINT = shipped_dir("models") / "mae_tiny_demo"


def checkout_dir() -> Path | None:
    """The repository checkout this package runs from, or None when it is installed elsewhere
    (benchmarks/, scripts/ and the Makefile exist only in a checkout)."""
    return _CHECKOUT if (_CHECKOUT / "benchmarks").is_dir() and (_CHECKOUT / "pyproject.toml").is_file() else None


def phenomix_home(environ: Mapping[str, str] | None = None) -> Path:
    """Where generated screens (``screens/``) and artifact stores (``store/``) live: PHENOMIX_HOME,
    else ``./var``."""
    env = os.environ if environ is None else environ
    return Path(env.get("PHENOMIX_HOME", Path.cwd() / "var"))


def resolve_screen(name_or_path: str | Path) -> Path:
    """A built-in screen's name -> its folder under PHENOMIX_HOME; anything else is a path."""
    if str(name_or_path) in BUILTIN_SCREENS:
        return phenomix_home() / "screens" / str(name_or_path)
    return Path(name_or_path)


def default_store(screen: str | Path = "demo") -> Path:
    """The artifact store a screen's run writes to by default: ``PHENOMIX_HOME/store/<name>``, where
    <name> is the built-in screen's name or the screen folder's name."""
    name = str(screen) if str(screen) in BUILTIN_SCREENS else Path(screen).resolve().name
    return phenomix_home() / "store" / name


@dataclass(frozen=True)
class Settings:
    """How the dashboard is served: which store(s) and run, where it listens.

    ``store_root`` set: every artifact store directly under it is served as a screen named after
    its folder, ``store`` being the default one (phenomix_dash/screens.py); unset: ``store`` alone.
    """

    store: Path
    run: str = DEFAULT_RUN
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    debug: bool = False
    store_root: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        screen = env.get("PHENOMIX_SCREEN", "demo")
        root = Path(env["PHENOMIX_STORE_ROOT"]) if env.get("PHENOMIX_STORE_ROOT") else None
        return cls(
            store=Path(env.get("PHENOMIX_STORE") or default_store_in(screen, root)),
            run=env.get("PHENOMIX_RUN", DEFAULT_RUN),
            host=env.get("PHENOMIX_HOST", DEFAULT_HOST),
            port=int(env.get("PHENOMIX_PORT", str(DEFAULT_PORT))),
            debug=env.get("PHENOMIX_DEBUG", "") == "1",
            store_root=root,
        )


def default_store_in(screen: str | Path, root: Path | None) -> Path:
    """The store of ``screen``: ``root/<name>`` when serving a store root, else `default_store`."""
    if root is None:
        return default_store(screen)
    return root / (str(screen) if str(screen) in BUILTIN_SCREENS else Path(screen).name)
