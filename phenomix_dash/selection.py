"""Map selections (lasso/box regions), their summaries and CSV, and the map's per-store cached views.

A selection is kept as its *region* (a polygon in UMAP coordinates of one space), not as a list
of well ids: a region is a few dozen numbers whatever the screen size, fits in the URL, and the
server turns it back into rows with one vectorised pass (`points_in_polygon`).

The map's views of the store (colour arrays, hover texts, id -> row lookups, rows in a region)
are memoized on the store's identity and options (`phenomix_dash.cache`), so a repeated callback
costs a dictionary lookup. They only read through PhenomixData's public methods.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from phenomix_dash.cache import memoize
from phenomix_dash.data import DataUnavailable
from phenomix_dash.name_data import entity_name_table, named_perturbations
from phenomix_dash.names import name_and_id

MAX_VERTICES = 64
# The space of a region: a well map (raw / aligned UMAP) or the perturbation map (stored selections only).
SPACES = ("raw", "aligned")
PERTURBATION_SPACE = "perturbations"


class SelectionError(ValueError):
    """A selection from the URL or the browser that cannot be understood; the message says why."""


# -- regions -----------------------------------------------------------------------------------

def region_from_selected_data(selected: dict | None) -> np.ndarray | None:
    """Plotly selectedData -> polygon (k, 2) float64, or None when nothing is selected.

    Box selections give ``range`` {x: [x0, x1], y: [y0, y1]}; lasso selections ``lassoPoints``
    {x: [...], y: [...]}. Long lassos are thinned to at most MAX_VERTICES vertices.
    """
    if not isinstance(selected, dict):
        return None
    try:
        if isinstance(selected.get("range"), dict):
            (x0, x1), (y0, y1) = selected["range"]["x"][:2], selected["range"]["y"][:2]
            poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
        elif isinstance(selected.get("lassoPoints"), dict):
            lp = selected["lassoPoints"]
            poly = np.column_stack([np.asarray(lp["x"], float), np.asarray(lp["y"], float)])
        else:
            return None
    except (KeyError, TypeError, ValueError) as err:
        raise SelectionError(f"selection from the map could not be read: {err}") from None
    return _check_polygon(_thin(poly))


def _thin(poly: np.ndarray) -> np.ndarray:
    if len(poly) <= MAX_VERTICES:
        return poly
    return poly[np.linspace(0, len(poly) - 1, MAX_VERTICES).round().astype(int)]


def _check_polygon(poly: np.ndarray) -> np.ndarray:
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        raise SelectionError(f"a selection needs at least 3 vertices, got {len(poly)}")
    if not np.isfinite(poly).all():
        raise SelectionError("a selection vertex is not a finite number")
    return poly


def points_in_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(n,) bool: which points of xy (n, 2) lie inside the polygon (k, 2) (even-odd rule).

    One pass per edge over the points inside the polygon's bounding box: O(n·k), vectorised.
    """
    xy = np.asarray(xy, dtype=np.float64)
    poly = np.asarray(poly, dtype=np.float64)
    inside = np.zeros(len(xy), dtype=bool)
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    cand = np.flatnonzero((xy[:, 0] >= lo[0]) & (xy[:, 0] <= hi[0]) & (xy[:, 1] >= lo[1]) & (xy[:, 1] <= hi[1]))
    if cand.size == 0:
        return inside
    x, y = xy[cand, 0], xy[cand, 1]
    hit = np.zeros(cand.size, dtype=bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        crosses = (yi > y) != (yj > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (xj - xi) * (y - yi) / (yj - yi) + xi
        hit ^= crosses & (x < x_at)
        xj, yj = xi, yi
    inside[cand] = hit
    return inside


def encode_region(space: str, poly: np.ndarray) -> str:
    """'raw:x,y;x,y;...' (4 significant digits) for the URL's ``sel`` parameter."""
    return space + ":" + ";".join(f"{x:.4g},{y:.4g}" for x, y in poly)


def stored_selection(level: str, sel: str | None) -> str | None:
    """The page's current selection as kept in A / B (``selA=``, ``selB=``), which must not depend on
    the level the page shows later: a region drawn on the perturbation map is written with the space
    ``perturbations`` ('perturbations:x,y;...'), a region on a well map keeps 'raw:' / 'aligned:'.
    Decode it with `decode_region`, resolve it with ``selected_well_rows(d, "wells", stored)``."""
    decoded = decode_region(sel)
    if decoded is None:
        return None
    space, poly = decoded
    return encode_region(PERTURBATION_SPACE if level == "perturbations" else space, poly)


def decode_region(text: str | None) -> tuple[str, np.ndarray] | None:
    """Inverse of `encode_region`; None for an empty value, SelectionError for junk."""
    if not text:
        return None
    if not isinstance(text, str) or len(text) > 4000 or ":" not in text:
        raise SelectionError("the selection in the link is not of the form space:x,y;x,y;...")
    space, _, body = text.partition(":")
    if space not in SPACES + (PERTURBATION_SPACE,):
        raise SelectionError(f"the selection in the link names an unknown space {space!r} "
                             "(raw, aligned or perturbations)")
    try:
        pts = [tuple(float(v) for v in p.split(",")) for p in body.split(";") if p]
        poly = np.array(pts, dtype=float)
    except ValueError:
        raise SelectionError("the selection in the link has a vertex that is not two numbers") from None
    if poly.ndim != 2 or poly.shape[1:] != (2,) or len(poly) > 4 * MAX_VERTICES:
        raise SelectionError("the selection in the link has malformed vertices")
    return space, _check_polygon(poly)


# -- what was selected ------------------------------------------------------------------------

def wells_of_perturbations(wells: pd.DataFrame, perts: pd.DataFrame) -> np.ndarray:
    """Row positions of wells belonging to any of the perturbation entities in ``perts``.

    Pooled entities match on (perturbation_type, perturbation); dose entities also on
    concentration_um."""
    key = wells["perturbation_type"].astype(str) + "\x1f" + wells["perturbation"].astype(str)
    level = perts["level"].astype(str) if "level" in perts.columns else pd.Series("pooled", index=perts.index)
    pooled = perts[level != "dose"]
    hit = key.isin(set(pooled["perturbation_type"].astype(str) + "\x1f" + pooled["perturbation"].astype(str))).to_numpy()
    dose = perts[level == "dose"]
    if len(dose):
        dkey = key + "@" + wells["concentration_um"].astype(float).map(repr)
        wanted = dose["perturbation_type"].astype(str) + "\x1f" + dose["perturbation"].astype(str) + "@" + dose[
            "concentration_um"].astype(float).map(repr)
        hit |= dkey.isin(set(wanted)).to_numpy()
    return np.flatnonzero(hit)


def selection_summary(wells: pd.DataFrame, top: int = 15) -> dict[str, pd.DataFrame]:
    """Counts of selected wells by batch, plate and perturbation (largest first, ``top`` rows each;
    the rest folded into one 'other' row)."""
    out = {}
    for col in ("batch", "plate", "perturbation"):
        vc = wells[col].astype(str).value_counts()
        df = vc.head(top).rename_axis(col).reset_index(name="wells")
        if len(vc) > top:
            df = pd.concat([df, pd.DataFrame({col: [f"{len(vc) - top} other"], "wells": [int(vc.iloc[top:].sum())]})])
        out[col] = df.reset_index(drop=True)
    return out


def selection_csv(wells: pd.DataFrame, metrics: pd.DataFrame | None = None) -> str:
    """CSV text of the selected wells (all wells-table columns, plus well metrics when given)."""
    df = wells.reset_index(drop=True)
    if metrics is not None and len(metrics) == len(df):
        extra = metrics.reset_index(drop=True).drop(columns=[c for c in metrics.columns if c in df.columns])
        df = pd.concat([df, extra], axis=1)
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()


def tile_rows(n: int, k: int = 6, seed: int = 0) -> np.ndarray:
    """Up to k of n selected rows to show as image tiles: a seeded sample, in row order."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


# -- the map's cached views of the store ------------------------------------------------------

LEVELS = ("wells", "perturbations")
# What a store lacking an optional artifact raises through PhenomixData.
_MISSING = (DataUnavailable, OSError, KeyError, ValueError)
# Columns that make poor colourings (unique per row, or already offered as a derived colouring).
_NO_COLOUR = {"well_id", "well", "guide", "pert_id", "row", "col", "batch", "plate", "perturbation_type"}


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise SelectionError(f"unknown map level {level!r} (wells or perturbations)")


@memoize(8, store=True)
def colour_table(d: Any, level: str) -> pd.DataFrame:
    """The table the map colours by: wells + well metrics, or perturbations + activity (row order kept).
    Not on the shared disk: at a million wells pickling it took 4.4 s against 0.8 s to rebuild it
    from the tables already read, and the colourings made from it are on the disk themselves."""
    _check_level(level)
    if level == "wells":
        try:
            m = d.well_metrics().drop(columns=["well_id"])
        except _MISSING:  # metrics are optional for colouring
            m = pd.DataFrame(index=range(len(d.wells)))
        return pd.concat([d.wells.reset_index(drop=True), m.reset_index(drop=True)], axis=1)
    perts = d.perturbations().reset_index(drop=True)
    try:
        act = d.activity()[["pert_id", "mean_average_precision", "q_value", "active"]]
        perts = perts.merge(act, on="pert_id", how="left")
    except _MISSING:  # activity is optional for colouring
        pass
    return perts


@memoize(4, store=True, disk=True)
def colour_options(d: Any, level: str) -> list[dict[str, str]]:
    """Dropdown options: the derived colourings first, then every other column that varies."""
    from phenomix_dash.figures.map import DERIVED_COLOURS

    table = colour_table(d, level)
    derived = list(DERIVED_COLOURS) if level == "wells" else ["perturbation_type", "control"]
    opts = [{"label": DERIVED_COLOURS[k], "value": k} for k in derived]
    for c in table.columns:
        if c in _NO_COLOUR or c in derived or table[c].nunique(dropna=True) < 2:
            continue
        opts.append({"label": c.replace("_", " "), "value": c})
    return opts


@memoize(64, store=True, disk=True)
def colour_spec(d: Any, level: str, color: str):
    """The map's colouring by ``color``. Room for every colouring of both levels (35 at the million
    store: 21 for wells, 14 for perturbations; with room for 32, a random walk through the menu
    kept recomputing some, 0.1-0.3 s each, in every worker), and kept on the shared disk, so one
    process computes a colouring and the others read it (a few MB)."""
    from phenomix_dash.figures.map import colour_values

    return colour_values(colour_table(d, level), color, plate_format=d.plate_format)


_SHORT_TYPE = {"negative_control": "neg. control", "positive_control": "pos. control", "crispr": "CRISPR",
               "orf": "ORF", "compound": "compound"}


@memoize(4, store=True, disk=True)
def hover_texts(d: Any, level: str) -> np.ndarray:
    """One short hover text per point (well position, plate, perturbation). Kept terse on purpose:
    at 100,000 wells every character here is 100 kB of the first page load. An object array (read-only
    once cached), which plotly accepts without checking every item."""
    return _hover_for(d, level, None)


@memoize(4, store=True, disk=True)
def drawn_hover_texts(d: Any, level: str) -> np.ndarray:
    """`hover_texts` of the points a map draws only (`sample_indices` rows when it samples): at a
    million wells the map shows 50,000, and texts for all the others cost ~10 s at start."""
    from phenomix_dash.figures.map import MAX_POINTS, sample_indices

    n = len(d.wells) if level == "wells" else len(d.perturbations())
    return _hover_for(d, level, sample_indices(n, MAX_POINTS))


def _col(table: pd.DataFrame, name: str, rows: np.ndarray | None) -> list:
    """A column as a Python list (iterating a pandas string array item by item is ~5x slower)."""
    col = table[name]
    return (col if rows is None else col.iloc[rows]).tolist()


def _hover_for(d: Any, level: str, rows: np.ndarray | None) -> np.ndarray:
    """Hover texts of ``rows`` (None: every row) of the level's table."""
    _check_level(level)
    t = _SHORT_TYPE
    if level == "wells":
        w = d.wells
        # The annotated name beside the id ('imatinib · BRD-K92723993'); screens without names
        # (the synthetic ones) keep the id alone, so their payload does not grow.
        en = entity_name_table(d)
        named = {(ty, pe): name_and_id(nm, pe) for ty, pe, nm in
                 zip(en["perturbation_type"], en["perturbation"], en["name"], strict=True) if isinstance(nm, str)}
        return _objects(f"{wl} · plate {p}<br>{named.get((ty, pe), pe) if named else pe} ({t.get(ty, ty)})"
                        for wl, p, pe, ty in zip(*(_col(w, c, rows) for c in ("well", "plate", "perturbation",
                                                                               "perturbation_type")), strict=True))
    p = named_perturbations(d)
    if "concentration_um" not in p.columns:
        p = p.assign(concentration_um=np.nan)
    return _objects(f"{name_and_id(nm, pe)}{f' @ {c:g} µM' if pd.notna(c) else ''} ({t.get(ty, ty)})<br>{n} wells"
                    for pe, nm, ty, c, n in zip(*(_col(p, c, rows) for c in ("perturbation", "name", "perturbation_type",
                                                                             "concentration_um", "n_wells")), strict=True))


def _objects(items: Any) -> np.ndarray:
    return np.array(list(items), dtype=object)


@memoize(8, store=True)
def point_coordinates(d: Any, level: str, space: str) -> np.ndarray:
    """(n, 2) float32 UMAP coordinates of the map's points (perturbations have one space)."""
    _check_level(level)
    if level == "perturbations":
        return np.asarray(d.umap("perturbations"), dtype=np.float32)
    if space not in SPACES:  # also 'perturbations' on the well level: a stored region resolves its own level
        raise SelectionError(f"unknown embedding space {space!r} (raw or aligned)")
    return np.asarray(d.umap(space), dtype=np.float32)


@memoize(4, store=True)
def _pert_index(d: Any) -> dict[str, int]:
    return {p: i for i, p in enumerate(d.perturbations()["pert_id"].astype(str))}


def point_index(d: Any, level: str, point_id: str | None) -> int | None:
    """Row of a well_id / pert_id in its table, None when unknown."""
    if not isinstance(point_id, str):
        return None
    return d.well_index.get(point_id) if level == "wells" else _pert_index(d).get(point_id)


@memoize(64, store=True)
def region_rows(d: Any, level: str, sel: str) -> np.ndarray:
    """Rows (of wells or perturbations) inside an encoded selection region, ascending."""
    decoded = decode_region(sel)
    if decoded is None:
        return np.empty(0, dtype=np.int64)
    space, poly = decoded
    return np.flatnonzero(points_in_polygon(point_coordinates(d, level, space), poly))


@memoize(64, store=True)
def selected_well_rows(d: Any, level: str, sel: str) -> np.ndarray:
    """Rows of d.wells in the selection: the selected wells, or all wells of the selected perturbations.

    ``level`` is the map level the region was drawn on; a stored selection (`stored_selection`)
    names its own level and overrides it."""
    if sel and sel.startswith(PERTURBATION_SPACE + ":"):
        level = "perturbations"
    rows = region_rows(d, level, sel)
    if level == "perturbations":
        rows = wells_of_perturbations(d.wells, d.perturbations().iloc[rows])
    return rows


def selected_wells(d: Any, level: str, sel: str) -> pd.DataFrame:
    """Wells in the selection: the selected wells, or all wells of the selected perturbations."""
    return d.wells.iloc[selected_well_rows(d, level, sel)]


def selection_csv_text(d: Any, level: str, sel: str) -> str:
    w = selected_wells(d, level, sel)
    try:
        metrics = d.well_metrics().iloc[[d.well_index[i] for i in w["well_id"]]]
    except _MISSING:  # export the wells even without metrics
        metrics = None
    return selection_csv(w, metrics)


def umap_caption(d: Any, level: str, space: str) -> str | None:
    """'UMAP fitted on N of M wells; ...' when the project stage fitted on a sample (its manifest)."""
    from phenomix_dash.figures.captions import umap_fit_caption

    key = "perturbations" if level == "perturbations" else space
    try:
        fitted = d.stage_info("project", d.primary_embedder).get("umap", {}).get("fitted_on", {}).get(key)
    except _MISSING:
        return None
    return umap_fit_caption(None if fitted is None else int(fitted), len(point_coordinates(d, level, space)), level)


def benchmark_captions(d: Any, embedder: str | None = None) -> tuple[str | None, str | None]:
    """(replicate-mAP caption, batch-metrics caption) from the evaluate stage's manifest and tables;
    None where nothing was sampled."""
    from phenomix_dash.figures.captions import batch_caption, replicate_caption

    embedder = embedder or d.primary_embedder
    try:
        info = d.stage_info("evaluate")
    except _MISSING:
        return None, None

    def most(name: str, col: str) -> int | None:
        try:
            t = d.benchmark_table(name)
        except _MISSING:
            return None
        t = t[t["embedder"] == embedder] if "embedder" in t.columns else t
        return int(t[col].max()) if col in t.columns and len(t) and t[col].notna().any() else None

    batch = info.get("batch_metrics") or {}
    used = batch.get("sampled") if "sampled" in batch else most("batch", "n_samples")
    return (replicate_caption(info, most("replicate_map", "n_perturbations")),
            batch_caption(None if used is None else int(used), int(batch.get("wells", len(d.wells)))))


def benchmark_rows(d: Any) -> pd.DataFrame:
    """Raw-vs-aligned batch mixing and replicate retrieval for the primary embedder."""
    from phenomix_dash.figures.alignment import benchmark_summary

    def table(name: str) -> pd.DataFrame | None:
        try:
            return d.benchmark_table(name)
        except _MISSING:  # fall back to the JSON summary
            return None

    try:
        summary = d.benchmarks().get("summary")
    except _MISSING:
        summary = None
    return benchmark_summary(table("batch"), table("replicate_map"), embedder=d.primary_embedder,
                             aligned=d.primary_align, summary=summary)
