"""The built-in real-data screen: two real plates, common features, annotations, example fields, pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.real_screen import LINCS_BATCH, MOA_BATCH, build_real_screen
from precompute.screen import load_screen


@pytest.fixture(scope="module")
def real_root(tmp_path_factory, shared_data):
    return build_real_screen(tmp_path_factory.mktemp("screens") / "real")


def test_real_screen_is_a_valid_features_screen(real_root):
    s = load_screen(real_root)
    assert s.name == "real" and len(s.wells) == 760
    feats = s.array("well_features")
    assert feats.shape == (760, 100) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert s.descriptor["feature_join"]["per_plate"] == {LINCS_BATCH: 454, MOA_BATCH: 357}
    by_batch = s.wells.groupby("batch")["perturbation_type"].value_counts().unstack(fill_value=0)
    assert by_batch.loc[LINCS_BATCH, "negative_control"] == 24 and by_batch.loc[MOA_BATCH, "negative_control"] == 24
    assert s.wells.groupby("batch")["plate"].nunique().to_dict() == {LINCS_BATCH: 1, MOA_BATCH: 1}
    moa = s.wells[s.wells["batch"] == MOA_BATCH]
    assert moa.loc[moa["perturbation_type"] == "compound", "perturbation"].nunique() == 90
    lincs = s.wells[(s.wells["batch"] == LINCS_BATCH) & (s.wells["perturbation_type"] == "compound")]
    series = lincs.groupby("compound")["concentration_um"].apply(lambda c: tuple(sorted(c.round(2))))
    assert (series == (0.04, 0.12, 0.37, 1.11, 3.33, 10.0)).sum() == 55  # SOURCES.md: 55 wells per dose


def test_real_screen_annotations_join(real_root):
    s = load_screen(real_root)
    join = s.descriptor["annotation_join"]
    assert join["n_compounds"] == 148 and join["rate"] > 0.9
    targets, moa = s.ground_truth("compound_targets"), s.ground_truth("compound_moa")
    compounds = set(s.wells["compound"].dropna())
    assert set(targets["compound"]) <= compounds and set(moa["compound"]) <= compounds
    assert targets["compound"].nunique() >= 100 and moa["compound"].nunique() >= 140
    # The JUMP-MOA design's own 47 MOAs are kept with their source.
    assert moa.loc[moa["source"].str.contains("JUMP-MOA plate metadata"), "moa"].nunique() == 47


def test_real_tiffs_are_example_fields_not_well_images(real_root):
    s = load_screen(real_root)
    assert not s.has_images and not s.has_any_images  # the pipeline embeds with 'features'
    ex = s.example_fields()
    assert set(ex["source_plate"]) == {"BR00117006", "BR00143976"}
    field, chans = s.load_field("BR00143976/C03/s3")
    assert field.dtype == np.uint16 and field.shape == (6, 1080, 1080) and "Brightfield" in chans
    assert "belong to neither plate" in s.descriptor["example_fields_note"]


def test_make_demo_screen_real_runs_the_pipeline(tmp_path, monkeypatch, real_root):
    """`python -m precompute demo --screen real`: builds the screen once, then runs on its features."""
    import shutil

    from precompute import projection
    from precompute.__main__ import main
    from precompute.artifacts import ArtifactStore

    monkeypatch.setenv("PHENOMIX_HOME", str(tmp_path))
    shutil.copytree(real_root, tmp_path / "screens" / "real")  # saves the build; the CLI path is the same
    monkeypatch.setattr(projection, "umap_2d", lambda x, **kw: np.asarray(x, np.float32)[:, :2].copy())
    assert main(["demo", "--screen", "real", "--quiet"]) == 0
    run = ArtifactStore(tmp_path / "store" / "real", create=False).get_run("default")
    assert list(run["stages"]["embed"]) == ["features"] and run["primary"]["embedder"] == "features"
    assert run["screen"]["n_wells"] == 760
