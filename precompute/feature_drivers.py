"""The features behind a phenotype: per perturbation, which named features differ from its plates'
negative controls, grouped the way CellProfiler names them.

For a screen with named features (CellProfiler profiles, pixel statistics), each well's feature
is standardised against the negative controls of its own plate: ``z = (x - mean_ctrl) / sd_ctrl``.
A perturbation's **effect size** on a feature is the mean ``z`` of its wells (Glass's delta,
plate by plate, so plate and batch offsets cancel). Under "no effect" that mean is
``N(0, 1 / n_wells)``, so ``effect * sqrt(n)`` is a z-score: two-sided p, and Benjamini-Hochberg
q over the perturbation's features.

Names are parsed as CellProfiler writes them, ``Compartment_Kind_Measure..._Channel`` (e.g.
``Cells_AreaShape_Area``, ``Nuclei_Intensity_MeanIntensity_DNA``, ``Cytoplasm_Correlation_
Correlation_ER_Mito``), and as pixel statistics write them, ``Channel_statistic``
(``DNA_mean``). A group's effect is the root mean square of its features' effects, so a
channel with many features does not outrank one with few by count alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from precompute.significance import EntityWells, benjamini_hochberg

COMPARTMENTS = ("Cells", "Cytoplasm", "Nuclei", "Image")
KINDS = ("AreaShape", "Intensity", "Texture", "Granularity", "Correlation", "RadialDistribution", "Neighbors",
         "Location", "Count", "Number", "Children", "Parent", "ObjectSkeleton")
CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito", "PM", "Brightfield", "BF")
# Pixel statistics (precompute/embed/embedders/pixelstats.py): which CellProfiler kind each statistic is closest to.
_PIXEL_KIND = {"mean": "Intensity", "std": "Intensity", "grad": "Texture", "fft": "Texture", "otsu": "AreaShape"}


@dataclass(frozen=True)
class FeatureName:
    name: str
    compartment: str  # Cells / Cytoplasm / Nuclei / Image; "" when the name does not say
    kind: str  # AreaShape, Intensity, ... ; "" when the name does not say
    channel: str  # DNA, ER, ...; "A|B" for a correlation of two channels; "" when none


def parse_feature_name(name: str, channels: tuple[str, ...] = CHANNELS) -> FeatureName:
    """Compartment, kind and channel of a CellProfiler or pixel-statistics feature name."""
    parts = name.split("_")
    known = {c.lower(): c for c in channels}
    chans = []
    for p in parts:
        base = re.sub(r"^Orig", "", p)
        if base.lower() in known and known[base.lower()] not in chans:
            chans.append(known[base.lower()])
    chans.sort(key=lambda c: [k.lower() for k in channels].index(c.lower()))  # "ER|DNA" and "DNA|ER" are one group
    if parts[0] in COMPARTMENTS:
        kind = parts[1] if len(parts) > 1 and parts[1] in KINDS else ""
        return FeatureName(name, parts[0], kind, "|".join(chans))
    if parts[0].lower() in known and len(parts) > 1:  # pixel statistics: Channel_statistic
        stat = re.sub(r"[^a-z]", "", parts[1].lower())
        kind = next((k for prefix, k in _PIXEL_KIND.items() if stat.startswith(prefix)), "Intensity")
        return FeatureName(name, "Image", kind, known[parts[0].lower()])
    return FeatureName(name, "", "", "|".join(chans))


def control_standardised(features: np.ndarray, plates: np.ndarray, is_control: np.ndarray) -> np.ndarray:
    """Each well's features as z-scores against its own plate's negative controls (float32).

    A feature constant over a plate's controls gets NaN there (no scale to measure against), and
    a plate without controls is all NaN: both look missing downstream, never zero."""
    x = np.asarray(features, dtype=np.float64)
    ctrl = np.asarray(is_control, dtype=bool)
    out = np.full(x.shape, np.nan, dtype=np.float32)
    for plate in pd.unique(np.asarray(plates)):
        rows = np.flatnonzero(np.asarray(plates) == plate)
        c = rows[ctrl[rows]]
        if c.size < 2:
            continue
        mu, sd = x[c].mean(axis=0), x[c].std(axis=0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(sd > 0, (x[rows] - mu) / sd, np.nan)
    return out


def feature_effects(z: np.ndarray, members: EntityWells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entity x feature: effect size (mean control-standardised value of its wells), p and BH q
    over that entity's features. NaN where none of its wells has a value."""
    n_ent = len(members.offsets) - 1
    effect = np.full((n_ent, z.shape[1]), np.nan, dtype=np.float32)
    p = np.full_like(effect, np.nan)
    q = np.full_like(effect, np.nan)
    for e in range(n_ent):
        rows = z[members.of(e)]
        n = np.sum(np.isfinite(rows), axis=0)
        with np.errstate(invalid="ignore"):
            eff = np.where(n > 0, np.nansum(rows, axis=0) / np.maximum(n, 1), np.nan)
        effect[e] = eff
        pe = np.where(n > 0, 2.0 * ndtr(-np.abs(eff) * np.sqrt(np.maximum(n, 1))), np.nan)
        p[e] = pe
        q[e] = benjamini_hochberg(pe)
    return effect, p, q


def group_effects(effect: np.ndarray, names: list[FeatureName], by: str) -> pd.DataFrame:
    """(n_entities x groups) root-mean-square effect of each group's features; ``by`` is
    'compartment', 'kind' or 'channel'. Features whose name does not say are left out."""
    labels = np.array([getattr(f, by) for f in names], dtype=object)
    groups = [g for g in pd.unique(labels) if g]
    out = {}
    for g in groups:
        cols = effect[:, labels == g].astype(np.float64)
        with np.errstate(invalid="ignore"):
            out[g] = np.sqrt(np.nanmean(cols**2, axis=1)) if np.isfinite(cols).any() else np.nan
    return pd.DataFrame(out)


def pair_features(effect_a: np.ndarray, q_a: np.ndarray, effect_b: np.ndarray, q_b: np.ndarray,
                  names: list[str], alpha: float = 0.05) -> pd.DataFrame:
    """For a matched pair: each feature either member moves at q < alpha, and whether they share it
    (both significant, same sign), or differ (one only, or opposite signs)."""
    sig_a, sig_b = q_a < alpha, q_b < alpha
    keep = sig_a | sig_b
    same_sign = np.sign(effect_a) == np.sign(effect_b)
    status = np.where(sig_a & sig_b & same_sign, "shared",
                      np.where(sig_a & sig_b, "opposite", np.where(sig_a, "first only", "second only")))
    table = pd.DataFrame({"feature": np.asarray(names, dtype=object)[keep], "effect_a": effect_a[keep],
                          "q_a": q_a[keep], "effect_b": effect_b[keep], "q_b": q_b[keep], "status": status[keep]})
    order = np.argsort(-(np.abs(table["effect_a"].to_numpy()) + np.abs(table["effect_b"].to_numpy())), kind="stable")
    return table.iloc[order].reset_index(drop=True)
