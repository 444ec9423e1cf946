"""Plate layout figures: one marker per well at its physical position."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from precompute.contract import PLATE_FORMATS, row_letters

from .palette import (
    NO_VALUE,
    NO_VALUE_COLOUR,
    PERTURBATION_TYPE_COLOURS,
    PERTURBATION_TYPE_LABELS,
    SEQUENTIAL,
    categorical_colours,
)

_SYMBOLS = {"negative_control": "diamond", "positive_control": "star"}


def _hover_text(wells: pd.DataFrame) -> list[str]:
    parts = []
    for r in wells.itertuples(index=False):
        label = PERTURBATION_TYPE_LABELS.get(r.perturbation_type, r.perturbation_type)
        extra = ""
        if isinstance(r.guide, str) and r.guide:
            extra += f"<br>guide {r.guide}"
        if r.perturbation_type == "compound" and np.isfinite(r.concentration_um):
            extra += f"<br>{r.concentration_um:g} µM"
        parts.append(f"<b>{r.well}</b> · {r.plate}<br>{r.perturbation} ({label}){extra}")
    return parts


def _base_layout(fig: go.Figure, plate_format: int, title: str | None) -> go.Figure:
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    fig.update_layout(
        title=title,
        xaxis=dict(
            title="column",
            range=[0.4, n_cols + 0.6],
            tickmode="array",
            tickvals=list(range(1, n_cols + 1, 1 if n_cols <= 24 else 4)),
            side="top",
            showgrid=False,
            zeroline=False,
            constrain="domain",
        ),
        yaxis=dict(
            title="row",
            range=[n_rows + 0.6, 0.4],
            tickmode="array",
            tickvals=list(range(1, n_rows + 1, 1 if n_rows <= 16 else 2)),
            ticktext=[row_letters(r) for r in range(1, n_rows + 1, 1 if n_rows <= 16 else 2)],
            showgrid=False,
            zeroline=False,
            scaleanchor="x",
            scaleratio=1,
        ),
        plot_bgcolor="#FAFAFA",
        margin=dict(l=50, r=20, t=70 if title else 40, b=20),
        legend=dict(orientation="h", yanchor="top", y=-0.02, x=0),
        clickmode="event+select",
        dragmode="lasso",
    )
    return fig


def plate_layout_figure(
    wells: pd.DataFrame,
    *,
    plate_format: int = 384,
    color_by: str = "perturbation_type",
    title: str | None = None,
    highlight: Iterable[str] | None = None,
    selected_well: str | None = None,
) -> go.Figure:
    """Wells of one plate at their positions, coloured by a column of the wells table.

    Categorical columns get one legend entry per value (controls also get their own marker
    shape, so they stay visible whatever the colouring); numeric columns get a colour bar.
    Wells with no value for ``color_by`` are a grey "no value" trace (legend entry and hover),
    never a colour of the scale or a category.
    ``customdata`` holds the well_id of every point, which click callbacks read back.
    ``highlight`` (well ids) are drawn with a thick outline, e.g. a lasso selection elsewhere.
    """
    if plate_format not in PLATE_FORMATS:
        raise ValueError(f"unknown plate format {plate_format}")
    if color_by not in wells.columns:
        raise ValueError(f"cannot colour by {color_by!r}: not a column of the wells table")
    size = 17 if plate_format <= 384 else 8
    fig = go.Figure()
    hl = set(highlight) if highlight is not None else set()
    numeric = pd.api.types.is_numeric_dtype(wells[color_by]) and color_by not in ("row", "col")
    missing = wells[color_by].isna().to_numpy()
    if numeric:
        missing |= ~np.isfinite(wells[color_by].to_numpy(dtype=float, na_value=np.nan))
    no_value, wells = wells[missing], wells[~missing]
    values = wells[color_by]
    if numeric:
        fig.add_trace(_wells_trace(wells, size, hl, values, color_by,
                                   "%{text}<br>" + color_by + " = %{marker.color:.3g}<extra></extra>", showlegend=False,
                                   scale={"colorscale": SEQUENTIAL, "colorbar": {"title": color_by.replace("_", " ")}}))
    else:
        cats = values.astype(str)
        order = sorted(cats.unique())
        if color_by == "perturbation_type":
            order = [t for t in PERTURBATION_TYPE_COLOURS if t in set(order)]
            colours = PERTURBATION_TYPE_COLOURS
        else:
            colours = categorical_colours(order)
        for cat in order:
            name = PERTURBATION_TYPE_LABELS.get(cat, cat) if color_by == "perturbation_type" else cat
            fig.add_trace(_wells_trace(wells[cats == cat], size, hl, colours[cat], name, "%{text}<extra></extra>"))
    if len(no_value):
        fig.add_trace(_wells_trace(no_value, size, hl, NO_VALUE_COLOUR, NO_VALUE, "%{text}<br>" + color_by.replace("_", " ")
                                   + ": " + NO_VALUE + "<extra></extra>", showlegend=True))
    if selected_well is not None:
        sel = wells[wells["well_id"] == selected_well]
        if not sel.empty:
            fig.add_trace(
                go.Scatter(
                    x=sel["col"],
                    y=sel["row"],
                    mode="markers",
                    marker=dict(size=size + 10, color="rgba(0,0,0,0)", line=dict(width=3, color="#000")),
                    hoverinfo="skip",
                    name="selected well",
                )
            )
    return _base_layout(fig, plate_format, title)


def _wells_trace(sub: pd.DataFrame, size: int, hl: set, colour: Any, name: str, hovertemplate: str,
                 scale: dict | None = None, **kw) -> go.Scatter:
    """Wells in one colour (or coloured by values on ``scale``); controls keep their marker shape,
    highlighted wells get a thick outline."""
    return go.Scatter(
        x=sub["col"],
        y=sub["row"],
        mode="markers",
        marker=dict(
            size=size,
            color=colour,
            symbol=[_SYMBOLS.get(t, "circle") for t in sub["perturbation_type"]],
            line=dict(width=[3 if w in hl else 0.5 for w in sub["well_id"]], color="#000"),
            **(scale or {}),
        ),
        customdata=sub["well_id"].tolist(),
        text=_hover_text(sub),
        hovertemplate=hovertemplate,
        name=name,
        **kw,
    )


def plate_grid(wells: pd.DataFrame, values: np.ndarray, plate_format: int = 384) -> np.ndarray:
    """Scatter per-well values of ONE plate into a (rows, cols) grid; empty wells are NaN."""
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    grid = np.full((n_rows, n_cols), np.nan)
    grid[wells["row"].to_numpy() - 1, wells["col"].to_numpy() - 1] = values
    return grid
