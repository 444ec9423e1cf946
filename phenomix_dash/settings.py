"""Where the dashboard finds its artifacts and how it is served. Read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def phenomix_home() -> Path:
    return Path(os.environ.get("PHENOMIX_HOME", Path.cwd() / "var"))


def default_store(screen: str = "demo") -> Path:
    return phenomix_home() / "store" / screen


@dataclass(frozen=True)
class Settings:
    store: Path
    run: str = "default"
    host: str = "127.0.0.1"
    port: int = 8050
    debug: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        screen = os.environ.get("PHENOMIX_SCREEN", "demo")
        return cls(
            store=Path(os.environ.get("PHENOMIX_STORE", default_store(screen))),
            run=os.environ.get("PHENOMIX_RUN", "default"),
            host=os.environ.get("PHENOMIX_HOST", "127.0.0.1"),
            port=int(os.environ.get("PHENOMIX_PORT", "8050")),
            debug=os.environ.get("PHENOMIX_DEBUG", "") == "1",
        )
