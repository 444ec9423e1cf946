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


def pick_search_option(dash_duo, text: str, timeout: float = 20) -> None:
    """Click the open dropdown's first option once it reads ``text``. The option list re-renders
    while a search narrows it, so an option read or clicked mid-render is stale: both are retried
    until the list holds still."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def click_first(drv) -> bool:
        found = drv.find_elements("css selector", ".dash-dropdown-content .dash-dropdown-option")
        if not found or found[0].text != text:
            return False
        found[0].click()
        return True

    WebDriverWait(dash_duo.driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(click_first)


def points_drawn(dash_duo, graph: str) -> int | None:
    """Points plotly.js drew in the scattergl traces of ``graph`` (decoded data), None before it draws."""
    return dash_duo.driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "if (!g || !g._fullData) return null;"
        "return g._fullData.filter(t => t.type === 'scattergl').reduce((n, t) => n + (t.x ? t.x.length : 0), 0);",
        graph)
