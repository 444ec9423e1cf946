"""Helpers shared by the browser tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], object], what: str, timeout: float = 20) -> None:
    """Poll ``cond`` until truthy; exceptions count as 'not yet' (the DOM may be mid-update)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            if cond():
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}")


def points_drawn(dash_duo, graph: str) -> int | None:
    """Points plotly.js drew in the scattergl traces of ``graph`` (decoded data), None before it draws."""
    return dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "if (!g || !g._fullData) return null;"
        "return g._fullData.filter(t => t.type === 'scattergl').reduce((n, t) => n + (t.x ? t.x.length : 0), 0);",
        graph)
