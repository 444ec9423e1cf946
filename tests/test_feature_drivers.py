"""Feature drivers (precompute/feature_drivers.py): CellProfiler and pixel-statistics names are
parsed into compartment, kind and channel; a planted effect is found in the right feature and
group; plate offsets cancel; a missing scale stays missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute import feature_drivers as fd
from precompute.aggregate import aggregate_perturbations
from precompute.significance import entity_wells


@pytest.mark.parametrize("name,expected", [
    ("Cells_AreaShape_Area", ("Cells", "AreaShape", "")),
    ("Nuclei_Intensity_MeanIntensity_DNA", ("Nuclei", "Intensity", "DNA")),
    ("Cytoplasm_Correlation_Correlation_ER_Mito", ("Cytoplasm", "Correlation", "ER|Mito")),
    ("Cells_Texture_InfoMeas1_OrigRNA_3_01_256", ("Cells", "Texture", "RNA")),
    ("Nuclei_RadialDistribution_FracAtD_AGP_2of4", ("Nuclei", "RadialDistribution", "AGP")),
    ("Mito_fft_band2", ("Image", "Texture", "Mito")),
    ("DNA_mean", ("Image", "Intensity", "DNA")),
    ("something_else", ("", "", "")),
])
def test_feature_names_parse_the_cellprofiler_way(name, expected):
    f = fd.parse_feature_name(name)
    assert (f.compartment, f.kind, f.channel) == expected


NAMES = ["Nuclei_Intensity_MeanIntensity_DNA", "Nuclei_AreaShape_Area", "Cells_Intensity_MeanIntensity_Mito",
         "Cytoplasm_Texture_Contrast_ER", "Cells_Intensity_MeanIntensity_AGP"]


def _screen(seed: int = 0):
    """Two plates with very different offsets; 'HIT' raises the Mito feature by 3 control SDs."""
    rng = np.random.default_rng(seed)
    rows, x = [], []
    for p, offset in enumerate((0.0, 50.0)):
        for _ in range(30):
            rows.append({"plate": f"P{p}", "perturbation_type": "negative_control", "perturbation": "DMSO"})
            x.append(offset + rng.normal(0, 1, len(NAMES)))
        for name in ("HIT", "QUIET"):
            for _ in range(3):
                v = offset + rng.normal(0, 1, len(NAMES))
                if name == "HIT":
                    v[2] += 3.0
                rows.append({"plate": f"P{p}", "perturbation_type": "compound", "perturbation": name})
                x.append(v)
    wells = pd.DataFrame(rows).assign(concentration_um=np.nan)
    return np.asarray(x), wells


def test_planted_effect_is_found_in_its_feature_and_channel_despite_plate_offsets():
    x, wells = _screen()
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    _, entities = aggregate_perturbations(x, wells)
    z = fd.control_standardised(x, wells["plate"].to_numpy(), ctrl)
    effect, p, q = fd.feature_effects(z, entity_wells(wells, entities))
    hit = int(np.flatnonzero(entities["perturbation"] == "HIT")[0])
    quiet = int(np.flatnonzero(entities["perturbation"] == "QUIET")[0])
    assert np.argmax(np.abs(effect[hit])) == 2 and 2.0 < effect[hit, 2] < 4.0
    assert q[hit, 2] < 1e-3 and (q[quiet] > 0.05).all()
    groups = fd.group_effects(effect, [fd.parse_feature_name(n) for n in NAMES], "channel")
    assert groups.iloc[hit].idxmax() == "Mito"
    pair = fd.pair_features(effect[hit], q[hit], effect[hit], q[hit], NAMES)
    assert pair["feature"].tolist() == ["Cells_Intensity_MeanIntensity_Mito"] and pair["status"].iloc[0] == "shared"


def test_a_feature_without_control_spread_is_missing_not_zero():
    x, wells = _screen()
    ctrl = (wells["perturbation_type"] == "negative_control").to_numpy()
    x[ctrl, 1] = 7.0  # constant over the controls: no scale to measure against
    z = fd.control_standardised(x, wells["plate"].to_numpy(), ctrl)
    assert np.isnan(z[:, 1]).all() and np.isfinite(z[:, 0]).all()
