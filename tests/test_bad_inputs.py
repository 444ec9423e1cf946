"""A catalogue of malformed screens: each gives one clear message and writes nothing to the store.

A small valid screen (4 plates in 2 batches, 12 wells each, 16x16 images) is written once with
`write_rxrx_screen`; every test corrupts a copy. Most cases call `run_pipeline` directly (the
preflight rejects them before the store is created); a representative subset runs the CLI as a
subprocess and checks the exit code and the one-line message.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from precompute.contract import ContractError
from precompute.pipeline import RunConfig, run_pipeline
from precompute.preflight import preflight
from precompute.screen import load_screen, write_rxrx_screen

REPO = Path(__file__).resolve().parents[1]
CHANNELS = ["DNA", "ER", "RNA", "AGP", "Mito"]
FAST = RunConfig(embedders=("random",), primary_embedder="random")
PLATE_WELLS = ["A01", "A02", "B01", "B02", "C01", "C02", "D01", "D02", "E01", "E02", "F01", "F02"]


def _wells() -> pd.DataFrame:
    """4 plates x 12 wells: 4 negative controls, 1 positive control, 5 genes, 2 compounds per plate."""
    rows = []
    for b in (1, 2):
        for p in (1, 2):
            plate = f"B{b}_P{p}"
            for i, w in enumerate(PLATE_WELLS):
                kind = "negative_control" if i < 4 else "positive_control" if i == 4 else "crispr" if i < 10 else "compound"
                gene = f"G{i - 4}" if kind == "crispr" else None
                cmpd = f"CMPD{i - 9}" if kind == "compound" else None
                pert = {"negative_control": "non-targeting", "positive_control": "POS"}.get(kind, gene or cmpd)
                rows.append(dict(well_id=f"{plate}_{w}", batch=f"B{b}", plate=plate, well=w, perturbation_type=kind,
                                 perturbation=pert, gene=gene, guide=f"{gene}_g1" if gene else None, compound=cmpd,
                                 concentration_um=1.0 if cmpd else np.nan))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """A valid image screen and a valid embeddings-only screen."""
    root = tmp_path_factory.mktemp("base")
    wells = _wells()
    rng = np.random.default_rng(0)
    images = [(w, rng.integers(0, 255, (1, 5, 16, 16), dtype=np.uint8)) for w in wells["well_id"]]
    img = write_rxrx_screen(root / "images", wells, images, channels=CHANNELS, n_sites=1, name="bad-inputs",
                            plate_format=384)
    feats = rng.normal(size=(len(wells), 8)).astype(np.float32)
    emb = write_rxrx_screen(root / "features", wells, None, channels=CHANNELS, n_sites=1, name="bad-features",
                            plate_format=384, arrays={"well_features": feats})
    preflight(load_screen(img), FAST)  # the base screens are valid
    preflight(load_screen(emb), FAST)
    return {"images": img, "features": emb}


@pytest.fixture
def screen(base, tmp_path) -> Path:
    out = tmp_path / "screen"
    shutil.copytree(base["images"], out)
    return out


@pytest.fixture
def feature_screen(base, tmp_path) -> Path:
    out = tmp_path / "screen"
    shutil.copytree(base["features"], out)
    return out


def _meta(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "metadata.csv")


def _set_meta(root: Path, df: pd.DataFrame) -> None:
    df.to_csv(root / "metadata.csv", index=False)


def _image(root: Path, address: str, channel: int = 1, plate: str = "Plate1", exp: str = "B1") -> Path:
    return root / "images" / exp / plate / f"{address}_s1_w{channel}.png"


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def rejected(screen_root: Path, tmp_path: Path, match: str, config: RunConfig = FAST, **kw) -> str:
    """Run the pipeline, expect one clear ContractError/ValueError, and an untouched store."""
    store = tmp_path / "store"
    with pytest.raises(ValueError, match=match) as info:
        run_pipeline(screen_root, store, config, progress=False, **kw)
    msg = str(info.value)
    assert "\n" not in msg, "one line"
    assert not store.exists() or not [p for p in store.iterdir() if p.name != "STORE.json"], "nothing written"
    return msg


# -- the wells table -----------------------------------------------------------------------------
def test_missing_column_is_named(screen, tmp_path):
    _set_meta(screen, _meta(screen).drop(columns="perturbation_type"))
    msg = rejected(screen, tmp_path, r"missing column\(s\) \['perturbation_type'\]")
    assert "metadata.csv" in msg


def test_misnamed_column_lists_what_is_missing_and_present(screen, tmp_path):
    _set_meta(screen, _meta(screen).rename(columns={"address": "adress"}))
    msg = rejected(screen, tmp_path, r"missing column\(s\)")
    assert "'well'" in msg and "'adress'" in msg


@pytest.mark.parametrize("bad", ["Q25", "A00", "a1", "A1x"])
def test_well_outside_the_plate_names_line_and_value(screen, tmp_path, bad):
    df = _meta(screen)
    df.loc[5, "address"] = bad
    _set_meta(screen, df)
    rejected(screen, tmp_path, rf"metadata.csv, line 7: well (name )?'{bad}'")


def test_duplicate_well_on_a_plate(screen, tmp_path):
    df = _meta(screen)
    df.loc[1, "address"] = df.loc[0, "address"]
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"line 3: duplicate well 'A01' on plate 'B1_P1'")


def test_duplicate_well_id(screen, tmp_path):
    df = _meta(screen)
    df.loc[3, "well_id"] = df.loc[2, "well_id"]
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"line 5: duplicate well_id 'B1_P1_B01'")


def test_unknown_perturbation_type(screen, tmp_path):
    df = _meta(screen)
    df.loc[6, "perturbation_type"] = "sirna"
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"line 8: perturbation_type 'sirna' is not one of")


def test_crispr_well_without_gene(screen, tmp_path):
    df = _meta(screen)
    df.loc[6, "gene"] = np.nan
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"line 8: crispr/orf well without a 'gene'")


def test_concentration_that_is_not_a_number(screen, tmp_path):
    df = _meta(screen)
    df["concentration"] = df["concentration"].astype(object)
    df.loc[10, "concentration"] = "ten"
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"line 12: concentration_um is not a number")


def test_header_only_metadata_is_an_empty_screen(screen, tmp_path):
    _set_meta(screen, _meta(screen).iloc[:0])
    rejected(screen, tmp_path, r"metadata.csv: no wells")


def test_no_negative_controls_at_all(screen, tmp_path):
    df = _meta(screen)
    ctrl = df["perturbation_type"] == "negative_control"
    df.loc[ctrl, ["perturbation_type", "gene", "perturbation"]] = ["crispr", "G1", "G1"]
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"no negative_control wells")


def _strip_controls(root: Path, plates: list[str]) -> None:
    df = _meta(root)
    ctrl = (df["perturbation_type"] == "negative_control") & df["plate_name"].isin(plates)
    df.loc[ctrl, ["perturbation_type", "gene", "perturbation"]] = ["crispr", "G1", "G1"]
    _set_meta(root, df)


def test_batch_without_negative_controls_stops_before_anything_is_written(screen, tmp_path):
    _strip_controls(screen, ["B2_P1", "B2_P2"])
    msg = rejected(screen, tmp_path, r"centerscale alignment needs 1 negative-control well\(s\) per batch")
    assert "batch 'B2' has 0" in msg and "B2_P1" in msg


def test_tvn_without_controls_suggests_the_pooled_fallback(screen, tmp_path):
    _strip_controls(screen, ["B2_P1", "B2_P2"])
    cfg = RunConfig(embedders=("random",), primary_embedder="random", align_methods=("tvn",))
    rejected(screen, tmp_path, r"tvn alignment .* batch 'B2' has 0 .*--tvn-fallback pooled", config=cfg)


def test_tvn_pooled_fallback_is_explicit_and_logged(screen, caplog):
    _strip_controls(screen, ["B2_P1", "B2_P2"])
    cfg = RunConfig(embedders=("random",), primary_embedder="random", align_methods=("tvn",), tvn_fallback="pooled")
    with caplog.at_level(logging.WARNING, logger="precompute"):
        report = preflight(load_screen(screen), cfg)
    assert any("--tvn-fallback pooled" in w and "'B2'" in w for w in report.warnings)
    assert "--tvn-fallback pooled" in caplog.text


def test_plate_without_controls_in_a_batch_with_controls_is_a_warning(screen):
    _strip_controls(screen, ["B1_P2"])
    report = preflight(load_screen(screen), FAST)
    assert any("'B1_P2'" in w and "no negative controls" in w for w in report.warnings)


def test_perturbation_with_a_single_well_is_named_in_a_warning(screen):
    df = _meta(screen)
    df.loc[6, ["gene", "perturbation"]] = ["LONELY", "LONELY"]
    _set_meta(screen, df)
    report = preflight(load_screen(screen), FAST)
    assert any("single well" in w and "'LONELY'" in w for w in report.warnings)


def test_non_utf8_identifier_names_the_line(screen, tmp_path):
    text = (screen / "metadata.csv").read_text().replace("B2_P1_C01,", "B2_P1_C\xe901,", 1)
    (screen / "metadata.csv").write_bytes(text.encode("latin-1"))
    msg = rejected(screen, tmp_path, r"metadata.csv: line \d+ is not UTF-8 text \(byte 0xe9")
    line = int(msg.split("line ")[1].split()[0])
    assert "B2_P1_C" in (screen / "metadata.csv").read_bytes().split(b"\n")[line - 1].decode("latin-1")


def test_huge_identifier_is_refused(screen, tmp_path):
    df = _meta(screen)
    df.loc[7, ["gene", "perturbation"]] = ["X" * 100_000] * 2
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"line 9: (gene|perturbation) is 100,000 characters long")


def test_identifier_with_control_characters_is_refused(screen, tmp_path):
    df = _meta(screen)
    df.loc[7, "perturbation"] = "G3\nrm -rf"
    _set_meta(screen, df)
    rejected(screen, tmp_path, r"perturbation 'G3\\nrm -rf' contains a control character")


def test_metadata_that_is_binary_not_csv(screen, tmp_path):
    (screen / "metadata.csv").write_bytes(_png(np.zeros((8, 8), np.uint8)))
    rejected(screen, tmp_path, r"metadata.csv: is not a CSV text file \(binary content\)")


def test_metadata_in_another_format_is_named(screen, tmp_path):
    desc = json.loads((screen / "screen.json").read_text())
    desc["metadata"] = "metadata.xlsx"
    (screen / "screen.json").write_text(json.dumps(desc))
    rejected(screen, tmp_path, r"screen.json: 'metadata' is 'metadata.xlsx'; expected a .csv or .parquet")


def test_parquet_metadata_that_is_not_parquet(screen, tmp_path):
    shutil.copy(screen / "metadata.csv", screen / "metadata.parquet")
    desc = json.loads((screen / "screen.json").read_text())
    desc["metadata"] = "metadata.parquet"
    (screen / "screen.json").write_text(json.dumps(desc))
    rejected(screen, tmp_path, r"metadata.parquet: cannot be read as Parquet")


@pytest.mark.parametrize("key,value,match", [("sites", "two", "'sites' is 'two'"), ("bit_depth", 12, "'bit_depth' is 12"),
                                             ("image_size", [16], "'image_size' is \\[16\\]")])
def test_descriptor_with_unusable_values(screen, tmp_path, key, value, match):
    desc = json.loads((screen / "screen.json").read_text())
    desc[key] = value
    (screen / "screen.json").write_text(json.dumps(desc))
    rejected(screen, tmp_path, rf"screen.json: {match}")


def test_descriptor_that_is_not_json(screen, tmp_path):
    (screen / "screen.json").write_text("{channels: DNA")
    rejected(screen, tmp_path, r"screen.json: invalid JSON")


# -- precomputed features ------------------------------------------------------------------------
@pytest.mark.parametrize("value,kind", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_features_name_row_and_well(feature_screen, tmp_path, value, kind):
    feats = np.load(feature_screen / "well_features.npy")
    feats[17, 3] = value
    feats[30, 0] = value
    np.save(feature_screen / "well_features.npy", feats)
    msg = rejected(feature_screen, tmp_path, rf"well_features.npy: row 17 \(well 'B1_P2_C02'\) has an? {kind} value in feature column 3")
    assert "2 row(s)" in msg


def test_features_with_the_wrong_number_of_rows(feature_screen, tmp_path):
    np.save(feature_screen / "well_features.npy", np.zeros((40, 8), np.float32))
    rejected(feature_screen, tmp_path, r"well_features.npy: 40 rows, but the wells table has 48")


def test_features_that_are_not_numbers(feature_screen, tmp_path):
    np.save(feature_screen / "well_features.npy", np.array([["a"] * 4] * 48))
    rejected(feature_screen, tmp_path, r"well_features.npy: well features must be real numbers")


# -- images --------------------------------------------------------------------------------------
def test_missing_image(screen, tmp_path):
    _image(screen, "C01", 3).unlink()
    rejected(screen, tmp_path, r"1 image\(s\) missing: .*C01_s1_w3.png")


def test_zero_byte_image(screen, tmp_path):
    _image(screen, "C01", 2).write_bytes(b"")
    rejected(screen, tmp_path, r"1 image\(s\) zero bytes long: .*C01_s1_w2.png")


def test_truncated_image_is_caught_from_its_trailer(screen, tmp_path):
    p = _image(screen, "D02", 4)
    p.write_bytes(p.read_bytes()[:-40])
    rejected(screen, tmp_path, r"corrupt or truncated: .*D02_s1_w4.png \(truncated")


def test_garbage_bytes_named_as_corrupt(screen, tmp_path):
    _image(screen, "E01", 1).write_bytes(os.urandom(300))
    rejected(screen, tmp_path, r"corrupt or truncated: .*E01_s1_w1.png \(not a PNG")


def test_damaged_pixel_data_needs_full_verification(screen, tmp_path):
    p = _image(screen, "E02", 1)
    data = bytearray(p.read_bytes())
    for i in range(45, 70):  # inside IDAT; header and trailer intact
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    preflight(load_screen(screen), FAST)  # the header check cannot see it...
    rejected(screen, tmp_path, r"\(decoded\).*corrupt or truncated: .*E02_s1_w1.png", verify_images="full")  # ...decoding does


def test_wrong_size_image(screen, tmp_path):
    _image(screen, "F01", 5).write_bytes(_png(np.zeros((20, 16), np.uint8)))
    rejected(screen, tmp_path, r"1 image\(s\) not 16x16 as screen.json says: .*F01_s1_w5.png \(20x16\)")


def test_colour_image_where_a_channel_belongs(screen, tmp_path):
    _image(screen, "F01", 1).write_bytes(_png(np.zeros((16, 16, 3), np.uint8)))
    rejected(screen, tmp_path, r"F01_s1_w1.png \(not a single-channel greyscale PNG \(colour type 2\)")


def test_screen_of_the_wrong_bit_depth(screen, tmp_path):
    desc = json.loads((screen / "screen.json").read_text())
    desc["bit_depth"] = 16
    (screen / "screen.json").write_text(json.dumps(desc))
    rejected(screen, tmp_path, r"images with another bit depth: 240 of 240 images are 8-bit but screen.json says bit_depth 16")


def test_mixed_8_and_16_bit_images(screen, tmp_path):
    for c in range(1, 6):
        _image(screen, "A02", c).write_bytes(_png(np.full((16, 16), 1000, np.uint16)))
    rejected(screen, tmp_path, r"mixed 8- and 16-bit images: 5 of 240 images are 16-bit .*A02_s1_w1.png")


def test_missing_channel_is_named(screen, tmp_path):
    for p in (screen / "images").rglob("*_w5.png"):
        p.unlink()
    rejected(screen, tmp_path, r"channel 'Mito' \(w5\) is missing: none of its 48 images exist")


def test_empty_plate_folder(screen, tmp_path):
    shutil.rmtree(screen / "images" / "B2" / "Plate2")
    for p in [screen / "images" / "B2" / "Plate2"]:
        p.mkdir()
    rejected(screen, tmp_path, r"plate 'B2_P2' has no images at all")


# -- the command line ----------------------------------------------------------------------------
def test_unknown_force_stage_and_a_folder_that_is_not_a_store(screen, tmp_path):
    rejected(screen, tmp_path, r"--force: unknown stage\(s\) \['embedd'\]", force={"embedd"})
    other = tmp_path / "documents"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(ContractError, match="not an artifact store and not empty"):
        run_pipeline(screen, other, FAST, progress=False)
    assert sorted(p.name for p in other.iterdir()) == ["thesis.tex"]


def _corrupt_missing_column(root: Path) -> str:
    _set_meta(root, _meta(root).drop(columns="perturbation_type"))
    return "metadata.csv"


def _corrupt_well_name(root: Path) -> str:
    df = _meta(root)
    df.loc[5, "address"] = "Q25"
    _set_meta(root, df)
    return "well 'Q25'"


def _corrupt_controls(root: Path) -> str:
    _strip_controls(root, ["B2_P1", "B2_P2"])
    return "batch 'B2' has 0"


def _corrupt_truncated(root: Path) -> str:
    p = _image(root, "D02", 4)
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    return "D02_s1_w4.png"


def _corrupt_utf8(root: Path) -> str:
    (root / "metadata.csv").write_bytes((root / "metadata.csv").read_bytes().replace(b"G1,", b"G\xff1,", 1))
    return "is not UTF-8"


def _corrupt_features(root: Path) -> str:
    feats = np.load(root / "well_features.npy")
    feats[3, 1] = np.nan
    np.save(root / "well_features.npy", feats)
    return "row 3"


@pytest.mark.parametrize("corrupt", [_corrupt_missing_column, _corrupt_well_name, _corrupt_controls,
                                     _corrupt_truncated, _corrupt_utf8, _corrupt_features])
def test_cli_exits_non_zero_with_one_line_and_writes_nothing(base, tmp_path, corrupt):
    src = base["features"] if corrupt is _corrupt_features else base["images"]
    root = tmp_path / "screen"
    shutil.copytree(src, root)
    expected = corrupt(root)
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "precompute", "run", "--screen", str(root), "--store", str(store), "--quiet",
         "--embedder", "random"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, done.stderr
    assert not store.exists()
