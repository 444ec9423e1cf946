"""What the Perturbation page shows of one perturbation, computed from the store: its wells and
matched controls, activity summary cards, neighbour lists over the whole map, image tiles."""

from __future__ import annotations

import threading
import weakref

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import dcc, html

from phenomix_dash.annotations import annotations
from phenomix_dash.data import DataUnavailable, PhenomixData
from phenomix_dash.figures.images import png_data_uri
from phenomix_dash.figures.missing import fmt_value, is_true
from phenomix_dash.figures.palette import PERTURBATION_TYPE_LABELS
from phenomix_dash.links import page_href
from phenomix_dash.neighbours import entity_label, neighbour_frame, neighbour_index
from phenomix_dash.perturbation_character import (
    add_significance,
)
from phenomix_dash.reconstruction import channel_ranges, composite_fixed

MAX_TILES = 4
THUMB = 160  # thumbnail pixels at most (shown at 140 px)

# -- pure helpers --------------------------------------------------------------------------

INDEX_FROM_ROWS = 50_000  # larger well tables get a lookup index (the screen's whole table)
# id(table) -> (a weak reference to it, its index); DataFrames do not hash, and an entry goes with its table
_row_index: dict[int, tuple[weakref.ref, dict]] = {}
_row_index_lock = threading.Lock()


def _entity_rows(wells: pd.DataFrame) -> dict:
    """(perturbation_type, perturbation) -> row positions of a large (cached, never modified) wells
    table, built once per table: two string compares over a million wells took 0.3-0.5 s of CPU on
    every Perturbation page answer (profiled under load, #17)."""
    def cached() -> dict | None:
        ref, rows = _row_index.get(id(wells), (None, None))
        return rows if ref is not None and ref() is wells else None

    rows = cached()
    if rows is None:
        with _row_index_lock:
            rows = cached()
            if rows is None:
                rows = wells.groupby(["perturbation_type", "perturbation"], sort=False, observed=True).indices
                _row_index[id(wells)] = (weakref.ref(wells), rows)
                weakref.finalize(wells, _row_index.pop, id(wells), None)
    return rows


def wells_of(wells: pd.DataFrame, entity: dict) -> pd.DataFrame:
    """The wells of one entity: all its wells when pooled, one concentration for a dose entity."""
    if len(wells) >= INDEX_FROM_ROWS:
        pos = _entity_rows(wells).get((entity["perturbation_type"], entity["perturbation"]), np.empty(0, dtype=np.intp))
        wells = wells.iloc[np.sort(pos)]
        m = np.ones(len(wells), dtype=bool)
    else:
        m = ((wells["perturbation_type"] == entity["perturbation_type"])
             & (wells["perturbation"] == entity["perturbation"])).to_numpy(dtype=bool, na_value=False)
    if entity.get("level") == "dose":
        m &= np.isclose(wells["concentration_um"].astype(float), float(entity["concentration_um"]))
    return wells[m]


def matched_controls(plate_wells: pd.DataFrame, perturbation_type: str, n: int = MAX_TILES) -> pd.DataFrame:
    """Up to n negative-control wells of one plate, spread over the plate. Compounds are compared
    with vehicle (DMSO) controls and genetic perturbations with the others, where a plate has both.
    ``attrs["of"]``: how many matching controls the plate has (the tiles show a part of them)."""
    ctrl = plate_wells[plate_wells["perturbation_type"] == "negative_control"]
    if ctrl.empty:
        return ctrl
    is_vehicle = ctrl["perturbation"].astype(str).str.upper().str.contains("DMSO").to_numpy()
    want = is_vehicle if perturbation_type == "compound" else ~is_vehicle
    pool = ctrl[want] if want.any() else ctrl
    pick = np.unique(np.linspace(0, len(pool) - 1, num=min(n, len(pool))).round().astype(int))
    out = pool.iloc[pick].copy()
    out.attrs["of"] = len(pool)
    return out


def activity_summary(entity: dict, activity: pd.DataFrame | None) -> dict:
    """mAP, p, q, active and the mAP rank for an entity (dose entities use their compound's)."""
    out = {k: entity.get(k) for k in ("n_wells", "n_plates", "n_batches", "n_guides", "replicate_cosine")}
    if activity is None or activity.empty:
        return out | {"activity": None}
    pooled = str(entity["pert_id"]).split("@", 1)[0]
    hit = activity[activity["pert_id"].astype(str) == pooled]
    if hit.empty:
        return out | {"activity": None}
    r = hit.iloc[0]
    maps = activity["mean_average_precision"].to_numpy(dtype=float)
    own = float(r["mean_average_precision"])
    rank = int((maps > own).sum()) + 1 if np.isfinite(own) else None  # no mAP, no rank
    return out | {"activity": {"map": own, "p": float(r["p_value"]),
                               "q": float(r["q_value"]), "active": is_true(r["active"]), "rank": rank,
                               "of": int(len(activity)), "pooled": pooled != entity["pert_id"]}}


def _fmt(v, spec: str = ".3f") -> str:
    return fmt_value(v, spec)


def _n(v, noun: str) -> str:
    """'1 well', '3 wells', '2 batches'."""
    try:
        k = int(v)
    except (TypeError, ValueError):
        return f"? {noun}s"
    plural = noun + ("es" if noun.endswith(("s", "ch")) else "s")
    return f"{k} {noun if k == 1 else plural}"


def summary_cards(entity: dict, s: dict) -> dbc.Row:
    """Activity and replicate consistency, the first thing to read about a perturbation."""
    a = s.get("activity")
    if a is None:
        act = [html.H6("Phenotypic activity"), html.Div("not computed for this perturbation", className="text-muted")]
    else:
        scored = np.isfinite(a["q"])
        verdict = dbc.Badge("active" if a["active"] else "not distinguishable from controls" if scored else "q: no value",
                            color="success" if a["active"] else "secondary" if scored else "light", className="ms-1")
        rank = f" (rank {a['rank']} of {a['of']})" if a["rank"] is not None else ""
        act = [html.H6(["Phenotypic activity", verdict]),
               html.Div([html.B(f"mAP {_fmt(a['map'])}"), rank]),
               html.Div(f"p = {_fmt(a['p'], '.3g')}, q = {_fmt(a['q'], '.3g')} (active means q < 0.05)", className="small"),
               html.Div("mAP of its pooled compound (all doses)" if a["pooled"] else "", className="small text-muted")]
    n_wells = s.get("n_wells")  # unknown stays unknown ("? wells"), never 0
    rc = s.get("replicate_cosine")
    rep_line = ("a single well: replicate consistency needs at least two" if _fmt(n_wells, ".0f") in ("0", "1")
                else f"mean cosine between its wells {_fmt(rc)}")
    guides = s.get("n_guides")
    rep = [html.H6("Replicate consistency"),
           html.Div([html.B(rep_line)]),
           html.Div(f"{_n(n_wells, 'well')} on {_n(s.get('n_plates'), 'plate')} in {_n(s.get('n_batches'), 'batch')}"
                    + (f", {_n(guides, 'guide')}" if entity["perturbation_type"] == "crispr" and guides else ""),
                    className="small")]
    label = PERTURBATION_TYPE_LABELS.get(entity["perturbation_type"], entity["perturbation_type"])
    head = [html.H4(entity_label(entity), className="mb-0"), html.Div(label, className="text-muted small"),
            *name_details(entity)]
    return dbc.Row([
        dbc.Col(head, md=3),
        dbc.Col(dbc.Card(dbc.CardBody(act), className="h-100"), md=5),
        dbc.Col(dbc.Card(dbc.CardBody(rep), className="h-100"), md=4),
    ], className="g-2 mb-3")


def name_details(entity: dict) -> list:
    """MOA, InChIKey and synonyms from the screen's annotations, each only where annotated."""
    out = []
    for key, title in (("moa", "MOA"), ("inchikey", "InChIKey")):
        if isinstance(entity.get(key), str) and entity[key]:
            out.append(html.Div([html.B(f"{title}: "), entity[key]], className="small"))
    syn = entity.get("synonyms") or ()
    if syn:
        out.append(html.Div([html.B("also known as: "), ", ".join(syn)], className="small"))
    return out


def neighbour_lists(d: PhenomixData, pert_id: str, k: int) -> dict[str, pd.DataFrame]:
    """Four tables: most similar / anti-similar genes and compounds of one perturbation."""
    index = neighbour_index(d)
    if pert_id not in index.row_of:
        raise DataUnavailable(f"unknown perturbation {pert_id!r}")
    row = index.row_of[pert_id]
    try:
        null = d.null_similarity()
    except DataUnavailable:
        null = None
    ann = annotations(d)
    res = index.query(pert_id, k)
    out = {}
    for group, nb in res.items():
        for name, idx, sim in (("similar", nb.top_idx, nb.top_sim), ("opposite", nb.bottom_idx, nb.bottom_sim)):
            frame = neighbour_frame(index.table, idx, sim, row, null, ann)
            out[f"{group}s_{name}"] = add_significance(d, row, frame, index.row_of)
    return out


def tile(src: str, caption: str, href: str | None) -> html.Figure:
    img = html.Img(src=src, className="img-fluid", alt=caption,
                   style={"width": "140px", "background": "#000", "borderRadius": "3px"})
    return html.Figure([dcc.Link(img, href=href) if href else img, html.Figcaption(caption, className="small text-muted")],
                       className="m-0", style={"width": "140px"})


def well_tiles(d: PhenomixData, wells: pd.DataFrame, ranges: tuple[np.ndarray, np.ndarray] | None = None,
               site: int = 0, images: list[np.ndarray] | None = None) -> list:
    """Composite thumbnails (one site of each well), each linking to the Images page.

    ``ranges`` (per-channel lo, hi) put every tile on one intensity scale, so a well that lost
    its cells looks dimmer than its controls instead of being stretched to the same brightness.
    """
    out = []
    images = images if images is not None else site_stack(d, wells, site)
    for w, img in zip(wells.itertuples(), images, strict=True):
        step = -(-img.shape[-1] // THUMB)  # thumbnails: no need to ship full-size sites
        lo, hi = ranges if ranges is not None else channel_ranges(img)
        src = png_data_uri(composite_fixed(img[:, ::step, ::step], lo, hi))
        out.append(tile(src, f"{w.well} · {w.perturbation}", page_href("/images", well=w.well_id, site=site + 1)))
    return out


def site_stack(d: PhenomixData, wells: pd.DataFrame, site: int = 0) -> list[np.ndarray]:
    """One site (C, H, W) of each well (the last site when a well has fewer)."""
    out = []
    for w in wells["well_id"]:
        img = d.well_images(w)
        out.append(img[min(site, img.shape[0] - 1)])
    return out
