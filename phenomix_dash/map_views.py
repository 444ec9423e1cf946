"""The map page's two figures (raw and aligned UMAP): a full draw the first time, then Patches for
colour, click and selection changes, and how clicks and lasso events map back to rows."""

from __future__ import annotations

import numpy as np
from dash import Patch, no_update

from phenomix_dash.cache import memoize
from phenomix_dash.figures.map import (
    MAX_POINTS,
    density_trace,
    drawn_split,
    embedding_figure,
    marker_size,
    no_value_trace_index,
    point_traces,
    sample_indices,
    split_positions,
    typed_array,
)
from phenomix_dash.figures.sets import add_member_ring, member_ring
from phenomix_dash.ids import (
    MAP_COLOR,
    MAP_POINT,
    MAP_SEL,
    SET_STORE,
)
from phenomix_dash.selection import (
    SelectionError,
    colour_spec,
    drawn_hover_texts,
    encode_region,
    point_coordinates,
    point_index,
    region_from_selected_data,
    region_rows,
    umap_caption,
)
from phenomix_dash.set_data import MAX_MAP_MEMBERS, member_rows
from phenomix_dash.wire import frozen_figure

# Styles of a map's box: shown (sharing the row with the other map) or hidden.
SHOW, HIDE = {"display": "block", "flex": "1 1 0", "minWidth": 0}, {"display": "none"}


# -- the two maps -------------------------------------------------------------------------------

def spaces_for(level: str, space: str) -> list[str]:
    """Which figures show: perturbation UMAPs exist only in aligned space."""
    if level == "perturbations":
        return ["aligned"]
    return ["raw", "aligned"] if space == "both" else [space]


def full_figure(d, level: str, space: str, color: str, point: str | None, sel: str | None,
                set_key: str | None = None):
    """The complete figure of one space (a redraw: level changed or the figure was never drawn).
    Its last trace rings the chosen gene set's members (empty without a set)."""
    xy = point_coordinates(d, level, space)
    spec = colour_spec(d, level, color)
    hi = point_index(d, level, point) if point else None
    title = {"raw": "Raw embeddings", "aligned": f"Aligned ({d.primary_align.upper()})"}[space]
    if level == "perturbations":
        title = "Perturbations (aggregated aligned embeddings)"
    fig = embedding_figure(xy, spec, hover_text=drawn_hover_texts(d, level), title=title, highlight=hi,
                           unit="wells" if level == "wells" else "perturbations",
                           density=_density(d, level, space) if sample_indices(len(xy), MAX_POINTS) is not None else None,
                           notes=(umap_caption(d, level, space),))
    fig.update_layout(clickmode="event")  # a click opens the panel; it must not replace the lasso selection
    grey = no_value_trace_index(len(fig.data) > 3)
    for t in (0, grey):
        fig.data[t].unselected = {"marker": {"opacity": 0.12}}
    picked = _selected_points(d, level, space, sel)
    if picked is not None:
        shown = sample_indices(len(xy), MAX_POINTS)
        fig.data[0].selectedpoints, fig.data[grey].selectedpoints = split_positions(picked, drawn_split(spec, shown))
    add_member_ring(fig, xy, _set_rows(d, level, set_key), max_points=MAX_MAP_MEMBERS)
    return fig


# 48 views (level x space x colour) per process: the load test's mix asks for 126, and with 8 the
# cache kept missing (40% of request CPU under load at a million wells); each is ~4 MB there.
@memoize(48, store=True)
def _frozen_base(d, level: str, space: str, color: str) -> dict:
    """The full figure of one view with nothing clicked, selected or ringed, ready for the wire
    (phenomix_dash/wire.py): built and serialised once per process, then copied per call."""
    return frozen_figure(full_figure(d, level, space, color, None, None, None))


def wire_figure(d, level: str, space: str, color: str, point: str | None, sel: str | None,
                set_key: str | None = None) -> dict:
    """`full_figure` as the browser receives it, from the cached base: only the clicked ring (trace
    1), the selection and the set trace are filled in per call (the same values a Patch sends)."""
    base = _frozen_base(d, level, space, color)
    fig = {"data": list(base["data"]), "layout": base["layout"]}
    traces = fig["data"]
    if point:
        hi = point_index(d, level, point)
        if hi is not None:
            xy = point_coordinates(d, level, space)
            traces[1] = {**traces[1], "x": [float(xy[hi, 0])], "y": [float(xy[hi, 1])]}
    picked = _selected_points(d, level, space, sel)
    if picked is not None:
        shown = sample_indices(len(point_coordinates(d, level, space)), MAX_POINTS)
        grey = no_value_trace_index(shown is not None)
        first, greys = split_positions(picked, drawn_split(colour_spec(d, level, color), shown))
        traces[0] = {**traces[0], "selectedpoints": first}
        traces[grey] = {**traces[grey], "selectedpoints": greys}
    if set_key:
        k = set_trace_index(d, level, space)
        ring = member_ring(point_coordinates(d, level, space), _set_rows(d, level, set_key), max_points=MAX_MAP_MEMBERS)
        traces[k] = {**traces[k], **{prop: _wire(ring[prop]) for prop in ("x", "y", "name", "showlegend")}}
    return fig


def _set_rows(d, level: str, set_key: str | None) -> np.ndarray:
    """Rows of the map's points that belong to the chosen set (none without one)."""
    return member_rows(d, set_key, level) if set_key else np.empty(0, dtype=np.int64)


def set_trace_index(d, level: str, space: str) -> int:
    """Index of the set trace: right after the grey "no value" trace."""
    return no_value_trace_index(sample_indices(len(point_coordinates(d, level, space)), MAX_POINTS) is not None) + 1


@memoize(4, store=True)
def _density(d, level: str, space: str):
    """The density layer of a large map depends on the store only: binned once per process."""
    return density_trace(point_coordinates(d, level, space))


def _selected_points(d, level: str, space: str, sel: str | None) -> list[int] | None:
    """Indices into the drawn points of the rows inside the selection region (None = no selection)."""
    if not sel:
        return None
    rows = region_rows(d, level, sel)
    n = len(point_coordinates(d, level, space))
    shown = sample_indices(n, MAX_POINTS)
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return np.flatnonzero(mask if shown is None else mask[shown]).tolist()


def map_update(d, level: str, space: str, color: str, point: str | None, sel: str | None,
               drawn: dict | None, triggers: set[str] | str | None, set_key: str | None = None,
               wire: bool = False) -> tuple:
    """Figures for (raw, aligned), their box styles and what is drawn now.

    ``wire``: full draws as `wire_figure` dicts (what the page sends) instead of go.Figure objects.

    ``triggers``: ids of the inputs that changed (several can change at once, e.g. after a level
    switch resets the click and the selection). A figure is redrawn only when it was never drawn at
    this level; colour, click and selection changes of a drawn figure go into one Patch of its
    traces (no coordinates resent)."""
    triggers = {triggers} if isinstance(triggers, str) else set(triggers or ())
    visible = spaces_for(level, space)
    drawn = drawn if drawn and drawn.get("level") == level else {"level": level, "spaces": [], "color": color}
    out = {}
    for s in ("raw", "aligned"):
        if s not in visible:
            out[s] = no_update
            continue
        if s not in drawn["spaces"]:
            out[s] = (wire_figure if wire else full_figure)(d, level, s, color, point, sel, set_key)
            continue
        p, changed = Patch(), False
        if MAP_COLOR in triggers and drawn.get("color") != color:
            _patch_colour(p, d, level, s, drawn.get("color"), color, sel)
            changed = True
        if MAP_POINT in triggers:
            xy = point_coordinates(d, level, s)
            hi = point_index(d, level, point) if point else None
            p["data"][1]["x"] = [] if hi is None else [float(xy[hi, 0])]
            p["data"][1]["y"] = [] if hi is None else [float(xy[hi, 1])]
            changed = True
        if MAP_SEL in triggers:
            _patch_selection(p, d, level, s, color, sel)
            changed = True
        if SET_STORE in triggers:  # a new gene set: only the ring trace changes
            ring = member_ring(point_coordinates(d, level, s), _set_rows(d, level, set_key), max_points=MAX_MAP_MEMBERS)
            k = set_trace_index(d, level, s)
            for prop in ("x", "y", "name", "showlegend"):
                p["data"][k][prop] = _wire(ring[prop])
            changed = True
        out[s] = p if changed else no_update
    new_drawn = {"level": level, "color": color, "spaces": sorted(set(drawn["spaces"]) | set(visible))}
    return (out["raw"], out["aligned"], SHOW if "raw" in visible else HIDE,
            SHOW if "aligned" in visible else HIDE, new_drawn)


def _patch_selection(p: Patch, d, level: str, space: str, color: str, sel: str | None) -> None:
    n = len(point_coordinates(d, level, space))
    shown = sample_indices(n, MAX_POINTS)
    picked = _selected_points(d, level, space, sel)
    grey = no_value_trace_index(shown is not None)
    if picked is None:
        p["data"][0]["selectedpoints"] = p["data"][grey]["selectedpoints"] = None
        return
    p["data"][0]["selectedpoints"], p["data"][grey]["selectedpoints"] = split_positions(
        picked, drawn_split(colour_spec(d, level, color), shown))


def _patch_colour(p: Patch, d, level: str, space: str, old: str | None, color: str, sel: str | None) -> None:
    """A colour change. When the new colouring leaves the same points without a value as the old
    one (usually: none), only the colours change; otherwise the first trace's x (NaN where a point
    has no value) and the grey "no value" trace are resent; y and the first trace's hover text never are."""
    xy = point_coordinates(d, level, space)
    shown = sample_indices(len(xy), MAX_POINTS)
    spec = colour_spec(d, level, color)
    new_split = drawn_split(spec, shown)
    try:
        old_split = drawn_split(colour_spec(d, level, old), shown) if old else None
        same = (old_split is None and new_split is None) or (
            old_split is not None and new_split is not None and np.array_equal(old_split[1], new_split[1]))
    except (ValueError, KeyError):  # the old colouring is not one of this level's
        same = False
    grey = no_value_trace_index(shown is not None)
    hover = None if same else drawn_hover_texts(d, level)
    valued, missing = point_traces(xy if shown is None else xy[shown], spec, shown, hover,
                                   marker_size(len(xy) if shown is None else len(shown)))
    valued["marker"] = {**valued["marker"], "color": typed_array(valued["marker"]["color"])}
    # The first trace's y and hover text never change; x only gains or loses NaNs.
    for k in ("marker", "hovertemplate") if same else ("x", "marker", "hovertemplate"):
        p["data"][0][k] = _wire(valued[k])
    for k in ("hovertemplate",) if same else tuple(missing):
        p["data"][grey][k] = _wire(missing[k])
    if not same and sel:
        _patch_selection(p, d, level, space, color, sel)


def _wire(v):
    """Arrays as plotly typed arrays (coordinates, customdata) or lists (hover text) for a Patch."""
    if isinstance(v, np.ndarray):
        return v.tolist() if v.dtype == object else typed_array(v)
    return v


def clicked_point(d, level: str, click: dict | None, space: str) -> str | None:
    """The id (well_id or pert_id) of a clicked point; Scattergl gives back only its index."""
    try:
        pt = click["points"][0]
        if pt.get("customdata") is not None:  # a points trace while some points are split off as "no value"
            i = int(pt["customdata"])
        elif int(pt.get("curveNumber", 0)) != 0:
            return None
        else:
            i = int(pt.get("pointIndex", pt.get("pointNumber")))
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    n = len(point_coordinates(d, level, space))
    shown = sample_indices(n, MAX_POINTS)
    if not 0 <= i < (n if shown is None else len(shown)):
        return None
    row = i if shown is None else int(shown[i])
    table = d.wells if level == "wells" else d.perturbations()
    return str(table.iloc[row]["well_id" if level == "wells" else "pert_id"])


def selection_from_event(selected: dict | None, space: str) -> str | None:
    """Encoded region of a lasso/box event; '' when the selection was cleared; None to ignore."""
    if selected is None:
        return ""
    try:
        poly = region_from_selected_data(selected)
    except SelectionError:
        return None
    return encode_region(space, poly) if poly is not None else None
