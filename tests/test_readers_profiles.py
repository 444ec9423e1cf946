"""Well-level profile reader (pycytominer / JUMP / LINCS): real plates, mapping overrides, malformed files."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from precompute.readers.common import ReaderError
from precompute.readers.profiles import combine_profiles, profiles_to_screen, read_profiles
from precompute.screen import load_screen

LINCS = "profiles_lincs_compound/SQ00015054_normalized_feature_select.csv.gz"
MOA = "profiles_jump_moa_scope/BR00117060a10x_normalized_feature_select_negcon_plate.csv.gz"


@pytest.fixture(scope="module")
def moa_table(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / MOA)


def small(moa_table: pd.DataFrame, n_features: int = 12) -> pd.DataFrame:
    """The JUMP-MOA plate cut to a few features (row order kept, so line numbers are file lines)."""
    meta = [c for c in moa_table.columns if c.startswith("Metadata_")]
    feats = [c for c in moa_table.columns if not c.startswith("Metadata_")][:n_features]
    return moa_table[meta + feats].copy()


def test_lincs_plate_maps_onto_the_contract(shared_data):
    p = read_profiles(shared_data / LINCS)
    assert p.features.shape == (384, 454) and p.features.dtype == np.float32
    counts = p.wells["perturbation_type"].value_counts().to_dict()
    assert counts == {"compound": 360, "negative_control": 24}
    assert set(p.wells.loc[p.wells["perturbation_type"] == "negative_control", "perturbation"]) == {"DMSO"}
    # Broad plate maps store micromolar values in Metadata_mmoles_per_liter: the top LINCS dose is 10 µM.
    doses = p.wells.loc[p.wells["perturbation_type"] == "compound", "concentration_um"]
    assert doses.max() == pytest.approx(20.0) and (doses.round(2) == 10.0).sum() == 55
    text = p.report.to_text()
    assert "Metadata_mmoles_per_liter read as uM" in text and "each plate is its own batch" in text
    assert p.report.entries["controls"].startswith("Metadata_pert_type")


def test_jump_moa_plate_uses_control_type_and_keeps_metadata(shared_data):
    p = read_profiles(shared_data / MOA, {"batch_value": "scope", "compound_key": "brd13"})
    assert p.features.shape == (376, 357)
    assert (p.wells["batch"] == "scope").all()
    assert p.wells.loc[p.wells["perturbation_type"] == "compound", "compound"].str.len().max() == 13
    assert "Metadata_control_type" in p.report.entries["controls"]
    assert "Metadata_moa" in p.wells.columns  # metadata carried as extras
    assert p.wells.groupby("perturbation").size().loc["BRD-K80935598"] == 4


def test_combine_keeps_common_features_and_reports_it(shared_data):
    a, b = read_profiles(shared_data / LINCS), read_profiles(shared_data / MOA)
    both = combine_profiles([a, b])
    assert both.features.shape == (760, 100)
    assert set(both.feature_names) == set(a.feature_names) & set(b.feature_names)
    assert any("100 common features kept" in n for r in both.all_reports() for n in r.notes)


def test_mapping_config_from_json_file_overrides_controls(tmp_path, moa_table):
    df = small(moa_table)
    df = df.drop(columns=["Metadata_control_type", "Metadata_pert_type"])
    df["Metadata_role"] = np.where(df["Metadata_pert_iname"] == "DMSO", "neg", "treated")
    src = tmp_path / "plate.csv"
    df.to_csv(src, index=False)
    cfg = tmp_path / "map.json"
    cfg.write_text(json.dumps({"negative_control": [{"column": "Metadata_role", "values": ["neg"]}], "modality": "compound"}))
    p = read_profiles(src, cfg)
    assert (p.wells["perturbation_type"] == "negative_control").sum() == 24
    assert "Metadata_role in ['neg'] (mapping config)" in p.report.entries["negative_control"]
    with pytest.raises(ReaderError, match=r"unknown key\(s\) \['negativ_control'\]"):
        read_profiles(src, {"negativ_control": []})


def test_parquet_and_written_screen_round_trip(tmp_path, moa_table):
    src = tmp_path / "plate.parquet"
    small(moa_table).to_parquet(src)
    root, prof = profiles_to_screen([src], tmp_path / "screen")
    screen = load_screen(root)
    assert not screen.has_images
    np.testing.assert_array_equal(screen.array("well_features"), prof.features)
    assert screen.descriptor["feature_names"] == prof.feature_names
    assert screen.descriptor["import"]["reports"][0]["entries"]["plate"] == "Metadata_Plate"


def _expect(tmp_path, df_or_bytes, pattern, name="bad.csv", **kw):
    src = tmp_path / name
    if isinstance(df_or_bytes, bytes):
        src.write_bytes(df_or_bytes)
    else:
        df_or_bytes.to_csv(src, index=False)
    out = tmp_path / "out"
    with pytest.raises(ReaderError, match=pattern):
        profiles_to_screen([src], out, **kw)
    assert not out.exists(), "a failed import writes nothing"


def test_missing_well_column_is_named(tmp_path, moa_table):
    _expect(tmp_path, small(moa_table).drop(columns="Metadata_Well"), r"bad.csv: no well column .*Metadata_Well")


def test_bad_well_name_names_line_and_value(tmp_path, moa_table):
    df = small(moa_table)
    df.loc[5, "Metadata_Well"] = "Z99"
    _expect(tmp_path, df, r"bad.csv, line 7: Metadata_Well: well 'Z99' is outside")
    df.loc[5, "Metadata_Well"] = "a06"
    _expect(tmp_path, df, r"line 7: Metadata_Well: well name 'a06' is not of the form")


def test_non_utf8_bytes_name_the_line(tmp_path, moa_table):
    raw = small(moa_table).to_csv(index=False).encode()
    lines = raw.split(b"\n")
    lines[3] = lines[3].replace(b"DMSO", b"DMS\xd6", 1) if b"DMSO" in lines[3] else lines[3] + b"\xff"
    _expect(tmp_path, b"\n".join(lines), r"bad.csv, line 4: not UTF-8 text")


def test_not_a_csv_and_truncated_gzip(tmp_path, shared_data):
    _expect(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), r"binary content, not a CSV")
    _expect(tmp_path, b"just one line of prose without separators\nand another\n", r"does not look like a CSV")
    gz = (shared_data / LINCS).read_bytes()
    _expect(tmp_path, gz[: len(gz) // 2], r"corrupt or truncated gzip", name="cut.csv.gz")


def test_nan_and_inf_features(tmp_path, moa_table):
    df = small(moa_table)
    col = df.columns[-3]
    df.loc[10, col] = np.nan
    _expect(tmp_path, df, rf"bad.csv, line 12: feature column '{col}' is NaN")
    df[col] = np.nan  # a whole column of NaN is dropped, and the drop is reported
    src = tmp_path / "allnan.csv"
    df.to_csv(src, index=False)
    p = read_profiles(src)
    assert col not in p.feature_names and any("all-NaN" in n for n in p.report.notes)
    df = small(moa_table)
    df.loc[3, col] = np.inf
    _expect(tmp_path, df, rf"line 5: feature column '{col}' is inf")
    df = small(moa_table)
    df[col] = df[col].astype(object)
    df.loc[8, col] = "n/a?"
    _expect(tmp_path, df, rf"line 10: feature column '{col}' holds 'n/a\?', not a number")


def test_nan_policy_drop_columns_is_reported(tmp_path, moa_table):
    df = small(moa_table)
    col = df.columns[-1]
    df.loc[10, col] = np.nan
    src = tmp_path / "p.csv"
    df.to_csv(src, index=False)
    p = read_profiles(src, {"nan_policy": "drop_columns_with_nan"})
    assert col not in p.feature_names and any("with NaN values" in n for n in p.report.notes)


def test_no_identifiable_controls_lists_candidates(tmp_path, moa_table):
    df = small(moa_table).drop(columns=["Metadata_control_type", "Metadata_pert_type"])
    df["Metadata_pert_iname"] = df["Metadata_pert_iname"].replace("DMSO", "vehicle")
    df["Metadata_broad_sample"] = df["Metadata_broad_sample"].fillna("vehicle")
    _expect(tmp_path, df, r"(?s)cannot identify negative-control wells.*Metadata_pert_iname: .*'vehicle' \(24\)")


def test_control_with_unknown_name_asks_for_a_rule(tmp_path, moa_table):
    df = small(moa_table).drop(columns=["Metadata_control_type"])
    df["Metadata_pert_iname"] = df["Metadata_pert_iname"].replace("DMSO", "mystery")
    _expect(tmp_path, df, r"'control' but a name that is not in JUMP's control vocabulary \(\['mystery'\]")


def test_duplicate_well_and_empty_wells(tmp_path, moa_table):
    df = small(moa_table)
    df.loc[7, "Metadata_Well"] = df.loc[6, "Metadata_Well"]
    _expect(tmp_path, df, r"line 9: duplicate well")
    df = small(moa_table)
    df.loc[0, "Metadata_control_type"] = "empty"
    src = tmp_path / "e.csv"
    df.to_csv(src, index=False)
    p = read_profiles(src)
    assert len(p.wells) == len(df) - 1 == len(p.features) and p.report.counts["left_out"] == 1


def test_crispr_profiles_need_a_modality_or_gene(tmp_path, moa_table):
    df = small(moa_table)
    df["Metadata_Symbol"] = "TP53"
    src = tmp_path / "g.csv"
    df.drop(columns=["Metadata_broad_sample", "Metadata_pert_iname", "Metadata_InChIKey"]).assign(
        Metadata_pert_iname=np.where(df["Metadata_pert_type"] == "control", "non-targeting", "x")).to_csv(src, index=False)
    with pytest.raises(ReaderError, match="set 'modality'"):
        read_profiles(src)
    p = read_profiles(src, {"modality": "crispr"})
    assert set(p.wells["perturbation_type"]) == {"crispr", "negative_control"}
    assert (p.wells.loc[p.wells["perturbation_type"] == "crispr", "gene"] == "TP53").all()


def test_gzip_csv_written_by_pandas_reads(tmp_path, moa_table):
    src = tmp_path / "p.csv.gz"
    with gzip.open(src, "wt") as fh:
        small(moa_table).to_csv(fh, index=False)
    assert read_profiles(src).features.shape == (376, 12)


# --------------------------------------------------------------------------- RxRx3-core layout
def rxrx_metadata() -> pd.DataFrame:
    """A small table in RxRx3-core's vocabulary (CRISPR / COMPOUND, EMPTY_control, CRISPR_control)."""
    rows = []
    for i, (gene, treat) in enumerate([("EMPTY_control", "EMPTY_control"), ("EMPTY_control", "EMPTY_control"),
                                       ("PLK1", "PLK1_guide_1"), ("PLK1", "PLK1_guide_2"), ("MTOR", "MTOR_guide_1")]):
        rows.append(dict(well_id=f"gene-001_1_A{i + 1:02d}", experiment_name="gene-001", plate=1, address=f"A{i + 1:02d}",
                         gene=gene, treatment=treat, SMILES=None, concentration=None, perturbation_type="CRISPR",
                         cell_type="HUVEC"))
    for i, (treat, conc, smiles) in enumerate([("EMPTY_control", None, None), ("EMPTY_control", None, None),
                                               ("CRISPR_control", None, None), ("ABT-199", 0.25, "CC"), ("ABT-199", 2.5, "CC")]):
        rows.append(dict(well_id=f"compound-001_10_B{i + 1:02d}", experiment_name="compound-001", plate=10,
                         address=f"B{i + 1:02d}", gene=None, treatment=treat, SMILES=smiles, concentration=conc,
                         perturbation_type="COMPOUND", cell_type="HUVEC"))
    return pd.DataFrame(rows)


def test_rxrx_vocabulary_maps_onto_the_contract(tmp_path):
    from precompute.readers.rxrx import read_rxrx_metadata

    src = tmp_path / "metadata_rxrx3_core.csv"
    rxrx_metadata().to_csv(src, index=False)
    wells, report = read_rxrx_metadata(src)
    t = wells.set_index("well_id")
    assert t.loc["gene-001_1_A03", ["perturbation_type", "perturbation", "guide"]].tolist() == ["crispr", "PLK1", "PLK1_guide_1"]
    assert t.loc["compound-001_10_B01", "perturbation_type"] == "negative_control"
    assert t.loc["compound-001_10_B03", "perturbation_type"] == "positive_control"  # CRISPR_control: not the reference
    assert t.loc["compound-001_10_B05", ["compound", "concentration_um"]].tolist() == ["ABT-199", 2.5]
    assert t.loc["compound-001_10_B05", "plate"] == "compound-001_P10"
    assert "EMPTY_control" in report.entries["perturbation_type"]
    wells, _ = read_rxrx_metadata(src, {"control_map": {"EMPTY_control": "negative_control", "CRISPR_control": "negative_control"}})
    assert (wells["perturbation_type"] == "negative_control").sum() == 5
    bad = rxrx_metadata()
    bad.loc[3, "perturbation_type"] = "SIRNA"
    bad.to_csv(src, index=False)
    with pytest.raises(ReaderError, match=r"line 5: perturbation_type 'SIRNA' is not in the type map"):
        read_rxrx_metadata(src)


def test_rxrx_embedding_table_becomes_a_screen(tmp_path):
    from precompute.readers.rxrx import rxrx_embedding_screen

    meta = rxrx_metadata()
    meta.to_csv(tmp_path / "m.csv", index=False)
    rng = np.random.default_rng(0)
    ids = np.repeat(meta["well_id"].to_numpy(), 2)  # two rows (sites) per well: averaged
    emb = pd.DataFrame(rng.normal(size=(len(ids), 8)), columns=[f"feature_{i}" for i in range(8)]).assign(well_id=ids)
    emb.to_parquet(tmp_path / "e.parquet")
    screen = load_screen(rxrx_embedding_screen(tmp_path / "m.csv", tmp_path / "e.parquet", tmp_path / "s"))
    feats = screen.array("well_features")
    want = emb.groupby("well_id").mean().loc[screen.wells["well_id"]].to_numpy(np.float32)
    np.testing.assert_allclose(feats, want, rtol=1e-6)
    emb[~emb["well_id"].eq(meta["well_id"].iloc[4])].to_parquet(tmp_path / "e2.parquet")
    with pytest.raises(ReaderError, match=r"1 of 10 wells have no embedding"):
        rxrx_embedding_screen(tmp_path / "m.csv", tmp_path / "e2.parquet", tmp_path / "s2")
    assert not (tmp_path / "s2").exists()
    s3 = load_screen(rxrx_embedding_screen(tmp_path / "m.csv", tmp_path / "e2.parquet", tmp_path / "s3", on_missing="drop"))
    assert len(s3.wells) == 9


def test_jump_crispr_profile_with_jcp_ids_only(tmp_path):
    """A cpg0016-style CRISPR plate: JCP2022 ids and symbols, no pert_type column; controls by JUMP's ids."""
    rng = np.random.default_rng(0)
    wells = [f"{r}{c:02d}" for r in "AB" for c in range(1, 7)]
    jcp = ["JCP2022_800002"] * 4 + ["JCP2022_805264"] * 2 + ["JCP2022_800500"] * 3 + ["JCP2022_801000"] * 3
    sym = ["non-targeting"] * 4 + ["PLK1"] * 2 + ["TP53"] * 3 + ["KRAS"] * 3
    df = pd.DataFrame({"Metadata_Source": "source_13", "Metadata_Plate": "CP-1", "Metadata_Well": wells,
                       "Metadata_JCP2022": jcp, "Metadata_Symbol": sym})
    df[["f1", "f2", "f3"]] = rng.normal(size=(12, 3))
    df.to_parquet(tmp_path / "p.parquet")
    p = read_profiles(tmp_path / "p.parquet")
    t = p.wells.set_index("well")["perturbation_type"]
    assert t["A01"] == "negative_control" and t["B01"] == "crispr" and t["A05"] == "positive_control"
    assert "JUMP's crispr range" in p.report.entries["modality"]
    assert set(p.wells["batch"]) == {"source_13"}
