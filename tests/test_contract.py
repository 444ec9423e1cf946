"""The screen data contract: well names, validation messages, RxRx3 round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.contract import ContractError, parse_well, validate_wells, well_name
from precompute.screen import load_screen, write_rxrx_screen


def wells_table(n_plates: int = 2) -> pd.DataFrame:
    rows = []
    for p in range(n_plates):
        plate = f"B{p % 2 + 1}_P{p + 1}"
        for i, w in enumerate(["A01", "B07", "C03", "P24"]):
            ctrl = i == 0
            rows.append(dict(well_id=f"{plate}_{w}", batch=f"B{p % 2 + 1}", plate=plate, well=w,
                             perturbation_type="negative_control" if ctrl else "crispr",
                             perturbation="non-targeting" if ctrl else "GENE_1", gene=None if ctrl else "GENE_1",
                             guide=None if ctrl else "GENE_1_g1", compound=None, concentration_um=np.nan,
                             cell_type="synthetic"))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name,expected", [("A01", (1, 1)), ("B7", (2, 7)), ("P24", (16, 24))])
def test_parse_well_384(name, expected):
    assert parse_well(name, 384) == expected


def test_parse_well_1536_two_letter_rows():
    assert parse_well("AF48", 1536) == (32, 48)
    assert well_name(32, 48) == "AF48"


@pytest.mark.parametrize("bad", ["Q25", "A00", "a1", "A25", "7B", ""])
def test_wells_outside_the_plate_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_well(bad, 384)


def test_validation_derives_row_and_col_and_keeps_extra_columns():
    out = validate_wells(wells_table())
    assert out.loc[1, ["row", "col"]].tolist() == [2, 7]
    assert "cell_type" in out.columns


def test_error_names_the_line_and_value():
    df = wells_table()
    df.loc[2, "well"] = "Q25"
    with pytest.raises(ContractError, match=r"metadata.csv, line 4: well 'Q25' is outside"):
        validate_wells(df, source="metadata.csv", plate_format=384)


def test_duplicate_well_is_an_error():
    df = wells_table()
    df.loc[1, "well"] = "A01"
    with pytest.raises(ContractError, match="duplicate well 'A01' on plate"):
        validate_wells(df)


def test_missing_column_is_named():
    with pytest.raises(ContractError, match=r"missing column\(s\) \['perturbation'\]"):
        validate_wells(wells_table().drop(columns="perturbation"))


def test_unknown_perturbation_type_and_missing_controls():
    df = wells_table()
    df.loc[1, "perturbation_type"] = "sirna"
    with pytest.raises(ContractError, match="'sirna' is not one of"):
        validate_wells(df)
    df = wells_table()
    df["perturbation_type"] = "crispr"
    df["gene"] = "GENE_1"
    with pytest.raises(ContractError, match="no negative_control wells"):
        validate_wells(df)


def test_rxrx_round_trip_keeps_images_and_metadata(tmp_path):
    wells = wells_table()
    rng = np.random.default_rng(0)
    images = {w: rng.integers(0, 255, (2, 5, 24, 24), dtype=np.uint8) for w in wells["well_id"]}
    root = write_rxrx_screen(tmp_path / "s", wells, images.items(), channels=["DNA", "ER", "RNA", "AGP", "Mito"],
                             n_sites=2, name="t", plate_format=384)
    screen = load_screen(root)
    assert screen.channels == ("DNA", "ER", "RNA", "AGP", "Mito")
    assert screen.plate_format == 384
    assert set(screen.wells["plate"]) == set(wells["plate"])
    np.testing.assert_array_equal(screen.load_images("B2_P2_P24"), images["B2_P2_P24"])
    assert screen.image_path("B1_P1_B07", 2, 3).name == "B07_s2_w3.png"
    assert screen.image_path("B1_P1_B07", 2, 3).parent.name == "Plate1"


def test_wrong_channel_count_and_corrupt_image_are_named(tmp_path):
    wells = wells_table(1)
    bad = [(w, np.zeros((1, 4, 16, 16), np.uint8)) for w in wells["well_id"]]
    with pytest.raises(ContractError, match=r"expected \(1, 5, H, W\)"):
        write_rxrx_screen(tmp_path / "s", wells, bad, channels=["DNA", "ER", "RNA", "AGP", "Mito"], n_sites=1, name="t")
    assert not (tmp_path / "s").exists(), "a failed write leaves nothing behind"
    good = [(w, np.zeros((1, 5, 16, 16), np.uint8)) for w in wells["well_id"]]
    root = write_rxrx_screen(tmp_path / "s", wells, good, channels=["DNA", "ER", "RNA", "AGP", "Mito"], n_sites=1, name="t")
    screen = load_screen(root)
    path = screen.image_path("B1_P1_C03", 1, 2)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ContractError, match="C03_s1_w2.png: cannot decode"):
        screen.load_images("B1_P1_C03")
    path.write_bytes(b"")
    with pytest.raises(ContractError, match="zero-byte"):
        screen.load_images("B1_P1_C03")
