"""AnnData export from an artifact store, table exports, .h5ad import into a screen, and the CLI glue."""

from __future__ import annotations

import argparse

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from precompute.readers.anndata_io import export_anndata, export_neighbours, export_similarity, import_anndata
from precompute.readers.cli import add_export_arguments, add_import_arguments, run_export, run_import
from precompute.readers.common import ReaderError
from precompute.screen import load_screen

MOA = "profiles_jump_moa_scope/BR00117060a10x_normalized_feature_select_negcon_plate.csv.gz"


def _fast_umap(x, **_kw):  # the export does not depend on UMAP quality; skip numba's JIT warm-up
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(np.pad(x, ((0, 0), (0, max(0, 2 - x.shape[1]))))[:, :2])


@pytest.fixture(scope="module")
def small_plate(shared_data, tmp_path_factory):
    df = pd.read_csv(shared_data / MOA)
    meta = [c for c in df.columns if c.startswith("Metadata_")]
    feats = [c for c in df.columns if not c.startswith("Metadata_")][:30]
    path = tmp_path_factory.mktemp("plate") / "plate.parquet"
    df[meta + feats].to_parquet(path)
    return path


@pytest.fixture(scope="module")
def store(small_plate, tmp_path_factory):
    from precompute import projection
    from precompute.pipeline import RunConfig, run_pipeline
    from precompute.readers.profiles import profiles_to_screen

    tmp = tmp_path_factory.mktemp("store")
    root, _ = profiles_to_screen([small_plate], tmp / "screen", mapping={"batch_value": "scope"})
    mp = pytest.MonkeyPatch()
    mp.setattr(projection, "umap_2d", _fast_umap)
    try:
        run_pipeline(root, tmp / "store", RunConfig(embedders=("features",), primary_embedder="features",
                                                    align_methods=("centerscale", "spherize"), primary_align="spherize"),
                     progress=False)
    finally:
        mp.undo()
    return tmp / "store"


def test_wells_h5ad_carries_embeddings_metadata_and_provenance(store, tmp_path):
    out = export_anndata(store, tmp_path / "w.h5ad")
    a = ad.read_h5ad(out)
    assert a.shape == (376, 30) and a.X.dtype == np.float32
    assert a.obs_names[0] == a.obs["well_id"].iloc[0]
    assert {"X_raw", "X_centerscale", "X_umap", "X_umap_raw"} <= set(a.obsm)
    assert a.obs["perturbation_type"].value_counts()["negative_control"] == 24
    info = a.uns["phenomix"]
    assert info["embedder"] == "features" and info["alignment"] == "spherize" and "embed" in info["stage_keys"]


def test_perturbation_h5ad_neighbours_and_similarity_tables(store, tmp_path):
    p = ad.read_h5ad(export_anndata(store, tmp_path / "p.h5ad", level="perturbations"))
    assert p.n_obs == 91 and "X_umap" in p.obsm  # 90 compounds + DMSO
    nb = pd.read_csv(export_neighbours(store, tmp_path / "nb.csv"))
    assert set(nb["direction"]) == {"top", "bottom"} and nb["rank"].min() == 1
    top1 = nb[(nb["direction"] == "top") & (nb["rank"] == 1)]
    assert (top1["pert_id"] != top1["neighbour"]).all() and top1["cosine"].between(-1, 1).all()
    sim = pd.read_parquet(export_similarity(store, tmp_path / "s.parquet", kind="compound_compound"))
    assert len(sim) == 90 * 90
    with pytest.raises(ReaderError, match="needs a .csv"):
        export_neighbours(store, tmp_path / "nb.xlsx")


def test_h5ad_round_trip_into_a_screen(store, tmp_path):
    a = ad.read_h5ad(export_anndata(store, tmp_path / "w.h5ad"))
    screen = load_screen(import_anndata(tmp_path / "w.h5ad", tmp_path / "imported"))
    np.testing.assert_array_equal(screen.array("well_features"), a.X)
    assert screen.wells["well_id"].tolist() == a.obs["well_id"].astype(str).tolist()


def test_h5ad_with_pycytominer_obs_is_mapped(small_plate, tmp_path):
    df = pd.read_parquet(small_plate)
    meta = [c for c in df.columns if c.startswith("Metadata_")]
    x = df.drop(columns=meta).to_numpy(np.float32)
    obs = df[meta].apply(lambda s: s.astype(str).where(s.notna(), None) if s.dtype == object else s)
    ad.AnnData(X=x, obs=obs.set_axis([f"r{i}" for i in range(len(df))])).write_h5ad(tmp_path / "pc.h5ad")
    screen = load_screen(import_anndata(tmp_path / "pc.h5ad", tmp_path / "s"))
    assert (screen.wells["perturbation_type"] == "negative_control").sum() == 24
    assert screen.descriptor["import"]["reports"][0]["entries"]["plate"] == "Metadata_Plate"


def test_h5ad_import_errors_name_cell_and_columns(tmp_path):
    x = np.ones((3, 2), np.float32)
    x[1, 1] = np.nan
    ad.AnnData(X=x, obs=pd.DataFrame({"well_id": ["a", "b", "c"]}, index=["a", "b", "c"]),
               var=pd.DataFrame(index=["f0", "f1"])).write_h5ad(tmp_path / "nan.h5ad")
    with pytest.raises(ReaderError, match=r"X\['b', 'f1'\] is nan"):
        import_anndata(tmp_path / "nan.h5ad", tmp_path / "o1")
    ad.AnnData(X=np.ones((3, 2), np.float32), obs=pd.DataFrame({"x": [1, 2, 3]}, index=["a", "b", "c"])).write_h5ad(tmp_path / "bare.h5ad")
    with pytest.raises(ReaderError, match="obs has neither the contract columns"):
        import_anndata(tmp_path / "bare.h5ad", tmp_path / "o2")
    (tmp_path / "junk.h5ad").write_bytes(b"not hdf5")
    with pytest.raises(ReaderError, match="cannot be read as .h5ad"):
        import_anndata(tmp_path / "junk.h5ad", tmp_path / "o3")
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def test_cli_glue(store, small_plate, tmp_path, capsys):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    add_export_arguments(sub.add_parser("export"))
    add_import_arguments(sub.add_parser("import"))
    a = p.parse_args(["export", "--store", str(store), "--what", "wells", "--out", str(tmp_path / "w.h5ad")])
    assert run_export(a) == 0 and (tmp_path / "w.h5ad").exists()
    a = p.parse_args(["import", "profiles", str(small_plate), "--out", str(tmp_path / "scr"),
                      "--mapping", '{"batch_value": "x"}'])
    assert run_import(a) == 0
    assert "batch              <- constant 'x'" in capsys.readouterr().out
    assert set(load_screen(tmp_path / "scr").wells["batch"]) == {"x"}
    a = p.parse_args(["export", "--store", str(store), "--what", "wells", "--out", str(tmp_path / "w.csv")])
    with pytest.raises(ReaderError, match=r"name the file \*.h5ad"):
        run_export(a)
