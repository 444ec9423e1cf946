"""Neighbour lists of one perturbation: a diverging bar chart and an exportable table.

Input is the frame of :func:`phenomix_dash.neighbours.neighbour_frame` (rank, pert_id, entity,
type, cosine, percentile, known). Bars are coloured by the sign of the cosine on the same
diverging colours as the heatmaps; a neighbour with a known relationship to the query gets a
★ and a black outline, so "is the map finding what biology already knows?" reads at a glance.
"""

from __future__ import annotations

import dash_ag_grid as dag
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .palette import DIVERGING

POSITIVE, NEGATIVE = DIVERGING[-1][1], DIVERGING[0][1]
FRAME_COLUMNS = ("rank", "pert_id", "entity", "type", "cosine", "percentile", "known")


def _check(frame: pd.DataFrame) -> None:
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"neighbour frame lacks columns {missing}; has {list(frame.columns)}")


def neighbour_bars(panels: dict[str, tuple[pd.DataFrame, pd.DataFrame]], *, title: str | None = None) -> go.Figure:
    """One column per panel (e.g. 'genes', 'compounds'): most similar on top (cosine > 0 bars),
    most anti-similar below, each bar's hover giving the cosine, its percentile among random
    pairs and what is known. ``customdata`` of each bar is its pert_id (clicks open it).

    panels: name -> (most similar frame, most anti-similar frame).
    """
    names = list(panels)
    if not names:
        raise ValueError("no neighbour panels to draw")
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"nearest {n}" for n in names],
                        horizontal_spacing=0.28 if len(names) > 1 else 0.1)
    n_max = 1
    for c, name in enumerate(names, start=1):
        top, bottom = panels[name]
        for f in (top, bottom):
            _check(f)
        # Top list first (descending), then the anti-similar list from the most negative up:
        # read top to bottom it runs from "most alike" to "most opposite".
        frame = pd.concat([top, bottom.iloc[::-1]], ignore_index=True).drop_duplicates("pert_id")
        n_max = max(n_max, len(frame))
        labels = [f"★ {e}" if k else e for e, k in zip(frame["entity"], frame["known"], strict=True)]
        cos = frame["cosine"].to_numpy(dtype=float)
        pct = frame["percentile"].to_numpy(dtype=float)
        hover = [
            f"<b>{e}</b><br>cosine {v:.3f}" + (f"<br>percentile {p:.1f} among random pairs" if np.isfinite(p) else "")
            + (f"<br>known: {k}" if k else "")
            for e, v, p, k in zip(frame["entity"], cos, pct, frame["known"], strict=True)
        ]
        fig.add_trace(go.Bar(
            x=cos, y=list(range(len(frame))), orientation="h", customdata=frame["pert_id"].tolist(),
            marker=dict(color=[POSITIVE if v >= 0 else NEGATIVE for v in cos],
                        line=dict(color="#000000", width=[2 if k else 0 for k in frame["known"]])),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", showlegend=False, name=name,
        ), row=1, col=c)
        fig.update_yaxes(tickmode="array", tickvals=list(range(len(frame))), ticktext=labels,
                         autorange="reversed", row=1, col=c, tickfont=dict(size=10))
        fig.update_xaxes(title_text="cosine similarity", range=[-1, 1], zeroline=True, zerolinecolor="#555555",
                         row=1, col=c)
    fig.update_layout(title=dict(text=title) if title else None, height=max(320, 22 * n_max + 120),
                      margin=dict(l=10, r=10, t=60 if title else 40, b=40), bargap=0.25, plot_bgcolor="#FFFFFF")
    return fig


def neighbour_grid(grid_id: str | dict, frame: pd.DataFrame, *, file_name: str = "neighbours.csv",
                   height: int = 320) -> dag.AgGrid:
    """The neighbour frame as a sortable grid exporting CSV (its ``exportDataAsCsv`` prop)."""
    _check(frame)
    cols = [
        {"field": "rank", "headerName": "#", "width": 60, "flex": 0},
        {"field": "entity", "headerName": "perturbation", "minWidth": 150, "flex": 2,
         "cellStyle": {"textDecoration": "underline", "cursor": "pointer"},
         "headerTooltip": "click a name to open that perturbation"},
        {"field": "cosine", "width": 90, "flex": 0, "type": "numericColumn"},
        {"field": "percentile", "headerName": "%ile", "width": 80, "flex": 0, "type": "numericColumn",
         "headerTooltip": "percentile of this cosine among random pairs of perturbations"},
        {"field": "known", "headerName": "known relationship", "minWidth": 130, "flex": 1, "tooltipField": "known"},
        {"field": "type", "hide": True},
        {"field": "pert_id", "hide": True},
    ]
    return dag.AgGrid(
        id=grid_id,
        rowData=frame.replace({np.nan: None}).to_dict("records"),
        columnDefs=cols,
        defaultColDef={"sortable": True, "resizable": True, "filter": True},
        csvExportParams={"fileName": file_name, "allColumns": True},
        getRowId="params.data.pert_id",  # cellClicked then carries the pert_id as rowId
        dashGridOptions={"domLayout": "normal", "rowHeight": 30},
        style={"height": f"{height}px"},
    )
