"""The characterise stage: match significance, dose-response and feature drivers of one embedder
(science in precompute/characterisation.py, significance.py, dose_response.py, feature_drivers.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from precompute import feature_drivers as fd
from precompute import significance as sig
from precompute.artifacts import Stage as StoredStage
from precompute.artifacts import StageWriter
from precompute.characterisation import (
    FAMILY_EXACT_MAX,
    control_response,
    dose_points,
    feature_names_for,
    neighbour_significance,
    sampled_family,
)
from precompute.dose_response import dose_response_table
from precompute.match_null import MatchNull
from precompute.relate import distance_to_plate_controls
from precompute.stages.registry import Stage, StageContext, Target, browsed_embedder, register


def significance_into(w: StageWriter, unit: np.ndarray, means: np.ndarray, aligned: np.ndarray, wells: pd.DataFrame,
                      entities: pd.DataFrame, ctrl: np.ndarray, rel: StoredStage, seed: int) -> None:
    """Match null, family and the neighbour lists' p/q into the stage writer ``w``."""
    null = sig.match_null(unit, aligned, wells, entities, ctrl, seed=seed)
    for name in MatchNull.names():
        w.save_array(f"null_{name}", getattr(null, name))
    family, fam_info = sampled_family(unit, means, entities, null, seed=seed)
    w.save_array("family_sorted_p", family.sorted_p.astype(np.float64))
    for side in ("top", "bottom"):
        p, q = neighbour_significance(unit, means, np.asarray(rel.array(f"neighbours_{side}_idx", mmap=False)),
                                      entities, null, family)
        w.save_array(f"neighbours_{side}_p", p)
        w.save_array(f"neighbours_{side}_q", q)
    w.info["significance"] = {"null": "closed form: exact mean and variance of the pseudo-perturbation draws",
                              "pools": int(null.pool_size.size), "signatures": int(null.sig_offsets.size - 1),
                              **fam_info,
                              "untested": "neighbour pairs that share wells (a compound and its own doses): p, q NaN"}


def run(ctx: StageContext, target: Target) -> str:
    screen, store, emb_name = ctx.screen, ctx.runner.store, str(target.embedder)
    keys = ctx.input_keys(STAGE, target)

    def compute(w: StageWriter) -> None:
        wells = screen.wells
        ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
        agg = store.open_stage("aggregate", keys["aggregate"])
        entities = agg.table("perturbations")
        # Memory-mapped: every use below indexes rows or streams (1.5 GB at 10^6 wells x 384).
        aligned = store.open_stage("align", keys["align"]).array("embeddings", mmap=True)
        # at any scale: 33,405 entities of the million-well screen in minutes (docs/significance.md)
        significance_into(w, np.asarray(agg.array("unit_embeddings", mmap=False)),
                          np.asarray(agg.array("embeddings", mmap=False)), aligned, wells, entities, ctrl,
                          store.open_stage("relate", keys["relate"]), ctx.config.seed)

        plates = wells["plate"].astype(str).to_numpy()
        response = distance_to_plate_controls(aligned, plates, ctrl, metric="euclidean")
        table = dose_response_table(wells, response, ctrl)
        w.save_table("dose_response", table)
        w.save_table("dose_points", dose_points(wells, response, table["perturbation"].tolist()))
        w.save_table("dose_controls", control_response(wells, response, ctrl))
        w.info["dose_response"] = {"response": "Euclidean distance to the plate's control mean, aligned space",
                                   "compounds_fitted": int(len(table))}

        raw = store.open_stage("embed", keys["embed"]).array("embeddings", mmap=True)
        names = feature_names_for(emb_name, screen, raw.shape[1])
        if names is None:
            w.info["feature_drivers"] = "none: this embedder has no named features"
            return
        z = fd.control_standardised(np.asarray(raw), plates, ctrl)
        effect, _, q = fd.feature_effects(z, sig.entity_wells(wells, entities))
        w.save_array("driver_effect", effect.astype(np.float32))
        w.save_array("driver_q", q.astype(np.float32))
        parsed = [fd.parse_feature_name(n, tuple(screen.channels) or fd.CHANNELS) for n in names]
        w.save_table("features", pd.DataFrame({"feature": names, "compartment": [f.compartment for f in parsed],
                                               "kind": [f.kind for f in parsed], "channel": [f.channel for f in parsed]}))
        w.info["feature_drivers"] = {"features": len(names), "entities": int(len(entities))}

    cfg = {"seed": ctx.config.seed, "null": "closed_form", "family_max": FAMILY_EXACT_MAX}
    return ctx.runner.run_stage("characterise", emb_name, cfg, keys, compute)


STAGE = register(Stage(
    name="characterise", version="2", after="project", inputs=("embed", "align", "aggregate", "relate"),
    outputs={**{f"null_{n}": "array" for n in MatchNull.names()},
             "family_sorted_p": "array",
             **{f"neighbours_{s}_{v}": "array" for s in ("top", "bottom") for v in ("p", "q")},
             "dose_response": "table", "dose_points": "table", "dose_controls": "table",
             "driver_effect": "array", "driver_q": "array", "features": "table"},
    run=run, applies=browsed_embedder,
    description="match significance, dose-response, feature drivers"))
