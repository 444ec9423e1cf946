"""Large figures made ready for the wire once, then sent many times.

Dash serialises a callback's output with plotly's `to_json_plotly`, which walks every value in
Python before orjson writes it: a 50,000-point hover-text list costs ~0.3 s per map on every call,
and building the go.Figure deep-copies it again. `frozen_figure` does that work once: each large
trace property becomes its finished JSON text (an ``orjson.Fragment``, written verbatim by orjson),
so a cached figure is sent for the cost of copying bytes. The JSON the browser receives is the same
(tests/test_figures_map.py round-trips it).
"""

from __future__ import annotations

from typing import Any

import orjson
from plotly.io.json import config as json_config
from plotly.io.json import to_json_plotly

# A property whose JSON is at least this long is frozen; small ones stay plain values, so a caller
# can still read or replace them (a clicked point, a selection).
FREEZE_CHARS = 4096


def _orjson_engine() -> bool:
    """Fragments are understood by orjson only; with plotly's json engine nothing is frozen."""
    return json_config.default_engine in ("auto", "orjson")


def frozen_figure(fig: Any, min_chars: int = FREEZE_CHARS) -> dict[str, Any]:
    """``fig`` (a go.Figure or its dict) as a plain dict, its large trace properties pre-serialised.

    Read-only: callers copy a trace (``dict(trace)``) before changing one of its small properties."""
    spec = fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else fig
    freeze = _orjson_engine()
    data = []
    for trace in spec.get("data", ()):
        out = {}
        for key, value in trace.items():
            text = to_json_plotly(value)
            out[key] = orjson.Fragment(text) if freeze and len(text) >= min_chars else orjson.loads(text)
        data.append(out)
    return {"data": data, "layout": orjson.loads(to_json_plotly(spec.get("layout", {})))}


def thawed(value: Any) -> Any:
    """Any value, frozen parts included, as the JSON value the browser receives."""
    return orjson.loads(to_json_plotly(value))
