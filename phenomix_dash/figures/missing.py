"""Numbers as text, where a value that was not measured reads "no value" and never "nan" or 0."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .palette import NO_VALUE


def fmt_value(v: Any, spec: str = ".3g", missing: str = NO_VALUE) -> str:
    """``format(v, spec)`` for a finite number; ``missing`` for None, NaN, pd.NA or non-numbers."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return missing
    return format(x, spec) if math.isfinite(x) else missing


def is_true(v: Any) -> bool:
    """True only for a real True: NaN / None / pd.NA (not scored) are not 'active'."""
    return isinstance(v, bool | np.bool_) and bool(v)


def js_number_formatter(spec: str, missing: str = NO_VALUE) -> dict[str, str]:
    """An AG Grid valueFormatter: d3.format(spec) for numbers; ``missing`` for null (d3 would print 0)."""
    return {"function": f"params.value == null || Number.isNaN(params.value) ? '{missing}' : d3.format('{spec}')(params.value)"}
