"""Take a screenshot of every dashboard page with the real app in headless Chromium.

    .venv/bin/python scripts/screenshots.py --screen demo            # -> docs/screenshots/*.png

The README embeds these pictures, so they stay true as the pages change: rerun after a change.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (file name, path with query, seconds to settle, optional CSS selector of an element to click)
PAGES = [
    ("overview", "/?well={well}", 6),
    ("map", "/map?level=wells&space=both&color=batch", 10),
    ("plates", "/plates", 8),
    ("activity", "/activity", 8),
    ("similarity", "/similarity", 8),
    ("perturbation", "/perturbation?pert={pert}", 10),
    ("images", "/images?well={well}&site=1", 10),
    ("benchmarks", "/benchmarks", 6),
    ("sets", "/sets?set={set}", 10),
    ("compare", "/compare", 12),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the app did not answer at {url}")


def _examples(screen: str) -> dict[str, str]:
    """A treated well with images and an active perturbation, so the pictures show something."""
    sys.path.insert(0, str(REPO))
    from phenomix.settings import default_store
    from phenomix_dash.data import PhenomixData

    d = PhenomixData(default_store(screen))
    wells = d.wells
    treated = wells[wells["perturbation_type"] != "negative_control"]
    act = d.activity().sort_values("mean_average_precision", ascending=False)
    pert = act["pert_id"].iloc[0] if "pert_id" in act.columns and len(act) else ""
    from urllib.parse import quote

    from phenomix_dash import set_data
    from phenomix_dash.gene_sets import encode_annotation

    # The complex with the most active members (then the largest): a set worth looking at.
    complexes = set_data.screen_sets(d).get("complex", {})
    active = set(act.loc[act["active"].astype(bool), "perturbation"].astype(str)) if "active" in act.columns else set()
    best = max(complexes, key=lambda n: (len(active & set(complexes[n])), len(complexes[n])), default=None)
    return {"well": treated["well_id"].iloc[len(treated) // 3], "pert": pert,
            "set": quote(encode_annotation("complex", best), safe="") if best else ""}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--screen", default="demo")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    p.add_argument("--width", type=int, default=1500)
    p.add_argument("--height", type=int, default=1100)
    a = p.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    a.out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    app = subprocess.Popen([sys.executable, "app.py", "--screen", a.screen, "--port", str(port)], cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/")
        ex = _examples(a.screen)
        opts = Options()
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={a.width},{a.height}", "--disable-background-networking", "--no-first-run",
                     "--hide-scrollbars"):
            opts.add_argument(flag)
        driver = webdriver.Chrome(options=opts)
        try:
            for name, path, settle in PAGES:
                driver.get(base + path.format(**ex))
                time.sleep(settle)
                driver.save_screenshot(str(a.out / f"{name}.png"))
                print(f"{name:<13} {path.format(**ex)}")
        finally:
            driver.quit()
    finally:
        app.terminate()
        app.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
