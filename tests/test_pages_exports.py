"""CSV exports run as Dash background callbacks (a child process, results through the shared disk
cache), through the app's own request handling: security checks, signed job handles, polling."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import quote

import numpy as np


def _post(client, body: dict, end_id: str, handles: dict | None = None):
    query = f"?endId={quote(end_id)}"
    if handles:
        query += f"&cacheKey={quote(handles['cacheKey'])}&job={quote(handles['job'])}"
    return client.post("/_dash-update-component" + query, json=body)


def test_map_selection_csv_is_exported_by_a_background_job(tiny_store):
    from phenomix.settings import Settings
    from phenomix_dash import create_app
    from phenomix_dash.data import get_data
    from phenomix_dash.selection import encode_region, point_coordinates, region_rows

    app = create_app(Settings(store=tiny_store))
    for t in threading.enumerate():  # the job forks this process: not while the warm-up imports
        if t.name == "phenomix-warm-up":
            t.join(timeout=120)
    assert app._background_manager is not None
    client = app.server.test_client()
    end_id = re.search(r'"end_id":\s*"([^"]+)"', client.get("/map").get_data(as_text=True)).group(1)
    d = get_data()
    lo, hi = np.percentile(point_coordinates(d, "wells", "aligned"), [10, 70], axis=0)
    sel = encode_region("aligned", np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]))
    body = {"output": "map-selection-download.data", "outputs": {"id": "map-selection-download", "property": "data"},
            "inputs": [{"id": "map-selection-download-button", "property": "n_clicks", "value": 1}],
            "state": [{"id": "map-selection", "property": "data", "value": sel},
                      {"id": "map-level", "property": "value", "value": "wells"}],
            "changedPropIds": ["map-selection-download-button.n_clicks"]}
    started = _post(client, body, end_id)
    assert started.status_code == 200
    handles = started.get_json()
    assert {"cacheKey", "job"} <= set(handles), "the export did not start as a background job"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        polled = _post(client, body, end_id, handles)
        response = (polled.get_json() or {}).get("response") if polled.status_code == 200 else None
        if response:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the background export never answered")
    csv = response["map-selection-download"]["data"]
    assert csv["filename"] == "phenomix_selection.csv"
    assert csv["content"].count("\n") == len(region_rows(d, "wells", sel)) + 1  # header + one line per well
