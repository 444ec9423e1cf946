"""JUMP images: Phenix names, load_data, channel maps, TIFF checks, percentile rescale, image index screens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from precompute.contract import ContractError
from precompute.image_io import read_tiff
from precompute.readers.common import ReaderError
from precompute.readers.jump_images import (
    CHANNEL_MAPS,
    channel_map_from_load_data,
    field_to_mae_input,
    parse_phenix_name,
    read_field,
    read_load_data,
    rescale_16bit,
    scan_phenix_folder,
)
from precompute.screen import load_screen, write_rxrx_screen

CP = "images_cellpainting/cpjump1_BR00117006"
PED = "images_cellpainting/pediatric_cancer_atlas_BR00143976"
CH5 = ("DNA", "ER", "RNA", "AGP", "Mito")


def load_data_of(shared_data, folder: str, parquet: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    path = shared_data / folder / parquet
    cols = [c for c in pq.read_schema(path).names if "FileName_Orig" in c or "PathName_Orig" in c
            or c.endswith(("Metadata_Plate", "Metadata_Well", "Metadata_Site"))]
    return pd.read_parquet(path, columns=cols)


def test_phenix_names():
    n = parse_phenix_name("r03c03f03p01-ch5sk1fk1fl1.tiff")
    assert (n.row, n.col, n.field, n.plane, n.channel, n.well) == (3, 3, 3, 1, 5, "C03")
    with pytest.raises(ReaderError, match="not a Phenix image name"):
        parse_phenix_name("C03_s1_w1.png")


@pytest.mark.parametrize("folder,parquet,key", [(CP, "BR00117006_shrunken.parquet", "cpjump1"),
                                                (PED, "BR00143976_shrunken.parquet", "pediatric_cancer_atlas")])
def test_channel_maps_are_those_of_the_cellprofiler_tables(shared_data, folder, parquet, key):
    ld = load_data_of(shared_data, folder, parquet)
    assert channel_map_from_load_data(ld) == CHANNEL_MAPS[key]
    files = read_load_data(ld, image_root=shared_data / folder, stains=["DNA", "AGP"])
    assert set(files["channel"]) == {"DNA", "AGP"}
    assert all(p.startswith(str(shared_data / folder)) for p in files["path"])  # re-rooted from the CP machine


def test_real_tiffs_read_exactly_and_fields_check_channels(shared_data):
    arr = read_tiff(shared_data / PED / "r03c03f03p01-ch5sk1fk1fl1.tiff")
    assert arr.shape == (1080, 1080) and arr.dtype == np.uint16 and arr.max() > 255
    files = scan_phenix_folder(shared_data / PED, CHANNEL_MAPS["pediatric_cancer_atlas"], plate="BR00143976")
    field = read_field(files, CH5)
    assert field.shape == (5, 1080, 1080)
    np.testing.assert_array_equal(field[0], arr)  # DNA is ch5 in this source
    cp = scan_phenix_folder(shared_data / CP, CHANNEL_MAPS["cpjump1"], plate="BR00117006")
    with pytest.raises(ReaderError, match=r"channel\(s\) \['ER', 'Mito'\] missing; has \['AGP', 'DNA', 'RNA'\]"):
        read_field(cp, CH5)


def test_truncated_and_fake_tiffs_are_named(tmp_path, shared_data):
    raw = (shared_data / CP / "r01c01f01p01-ch5sk1fk1fl1.tiff").read_bytes()
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(raw[: len(raw) // 2])  # this file keeps its directory at the end
    with pytest.raises(ReaderError, match=r"cut.tiff: no image in the TIFF \(truncated"):
        read_tiff(cut)
    img = np.random.default_rng(0).integers(0, 60000, (64, 64)).astype(np.uint16)
    front = tmp_path / "front.tiff"
    tifffile.imwrite(front, img, compression="lzw")
    front.write_bytes(front.read_bytes()[:-200])  # directory first, data cut
    with pytest.raises(ReaderError, match="front.tiff: truncated TIFF"):
        read_tiff(front)
    fake = tmp_path / "fake.tiff"
    fake.write_bytes(b"this is not an image at all")
    with pytest.raises(ReaderError, match="fake.tiff: cannot decode TIFF"):
        read_tiff(fake)
    multi = tmp_path / "multi.tiff"
    with tifffile.TiffWriter(multi) as tw:
        for _ in range(3):
            tw.write(np.zeros((16, 16), np.uint16))
    with pytest.raises(ReaderError, match="3 pages; expected one single-channel image"):
        read_tiff(multi)


def test_rescale_16bit_by_documented_percentiles():
    rng = np.random.default_rng(1)
    img = rng.integers(100, 5000, (2, 3, 50, 60)).astype(np.uint16)
    img[1, 2] = 777  # constant plane
    out, lims = rescale_16bit(img, (1.0, 99.0), return_limits=True)
    assert out.dtype == np.float32 and out.shape == img.shape and out.min() >= 0 and out.max() <= 1
    lo, hi = np.percentile(img[0, 1].astype(np.float32), [1.0, 99.0])
    np.testing.assert_allclose(lims[0, 1], [lo, hi], rtol=1e-5)
    clipped = ((img[0, 1] < lo) | (img[0, 1] > hi)).mean()
    assert clipped < 0.03  # ~2 % of pixels by construction, reported through the limits
    assert (out[1, 2] == 0).all()
    with pytest.raises(ValueError, match="percentiles"):
        rescale_16bit(img, (50, 10))


def test_real_field_to_mae_input(shared_data):
    files = scan_phenix_folder(shared_data / PED, CHANNEL_MAPS["pediatric_cancer_atlas"], plate="BR00143976")
    tiles = field_to_mae_input(read_field(files, CH5), tile=256)
    assert tiles.shape == (16, 5, 256, 256) and tiles.dtype == np.float32
    assert 0.0 <= tiles.min() and tiles.max() <= 1.0 and tiles.std() > 0.01


def wells_table() -> pd.DataFrame:
    rows = [dict(well_id=f"P1_{w}", batch="b", plate="P1", well=w, perturbation_type=t, perturbation=p,
                 gene=None, guide=None, compound=None if t != "compound" else p, concentration_um=np.nan)
            for w, t, p in (("A01", "negative_control", "DMSO"), ("A02", "compound", "C1"), ("A03", "compound", "C1"))]
    return pd.DataFrame(rows)


def tiff_files(tmp_path, wells: list[str], channels=CH5, sites=1, shape=(40, 48)) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(2)
    rows, truth = [], {}
    for w in wells:
        arr = rng.integers(0, 65535, (sites, len(channels)) + shape).astype(np.uint16)
        truth[w] = arr
        for s in range(sites):
            for c, ch in enumerate(channels):
                p = tmp_path / "src" / f"{w}_s{s + 1}_{ch}.tiff"
                p.parent.mkdir(exist_ok=True)
                tifffile.imwrite(p, arr[s, c], compression="lzw")
                rows.append((f"{w}/s{s + 1}", f"P1_{w}", s + 1, ch, str(p)))
    return pd.DataFrame(rows, columns=["field_id", "well_id", "site", "channel", "path"]), truth


def test_image_index_screen_reads_16bit_tiffs_and_allows_imageless_wells(tmp_path, shared_data):
    files, truth = tiff_files(tmp_path, ["A01", "A02"], sites=2)
    ex = scan_phenix_folder(shared_data / CP, CHANNEL_MAPS["cpjump1"], plate="BR00117006").assign(well_id=None)
    files = pd.concat([files, ex[["field_id", "well_id", "site", "channel", "path"]]], ignore_index=True)
    root = write_rxrx_screen(tmp_path / "s", wells_table(), None, channels=CH5, n_sites=2, name="t", image_files=files)
    s = load_screen(root)
    assert s.image_size == (40, 48) and s.bit_depth == 16
    assert s.has_any_images and not s.has_images and s.wells_with_images == ["P1_A01", "P1_A02"]
    np.testing.assert_array_equal(s.load_images("P1_A02"), truth["A02"])
    with pytest.raises(ContractError, match="well 'P1_A03' has no images"):
        s.load_images("P1_A03")
    field, chans = s.load_field("BR00117006/A01/s1")
    assert field.shape == (3, 1080, 1080) and chans == ("AGP", "RNA", "DNA")
    assert list(s.example_fields()["field_id"].unique()) == ["BR00117006/A01/s1"]
    assert not str(s.image_path("P1_A01", 1, 1)).startswith(str(tmp_path / "src"))  # copied into the screen


def test_image_index_errors_write_nothing(tmp_path):
    files, _ = tiff_files(tmp_path, ["A01"])
    for mutate, pattern in (
        (lambda f: f.assign(well_id="P1_H12"), r"well_id 'P1_H12' is not in the wells table"),
        (lambda f: f.assign(channel=f["channel"].replace("Mito", "Actin")), r"channel 'Actin' is not one of"),
        (lambda f: f.iloc[:4], r"well 'P1_A01' lists 4 image\(s\), expected 1 site\(s\) x 5 channels"),
        (lambda f: f.assign(path=f["path"].str.replace("A01_s1_DNA", "gone")), r"does not exist"),
    ):
        out = tmp_path / "s"
        with pytest.raises(ContractError, match=pattern):
            write_rxrx_screen(out, wells_table(), None, channels=CH5, n_sites=1, name="t", image_files=mutate(files))
        assert not out.exists()
        assert not list(tmp_path.glob(".s.tmp-*"))


def test_truncated_tiff_in_a_screen_is_named(tmp_path):
    files, _ = tiff_files(tmp_path, ["A01"])
    root = write_rxrx_screen(tmp_path / "s", wells_table(), None, channels=CH5, n_sites=1, name="t", image_files=files)
    s = load_screen(root)
    p = s.image_path("P1_A01", 1, 3)
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(ContractError, match=rf"{p.name}: (truncated TIFF|no image|cannot decode)"):
        s.load_images("P1_A01")


def test_rxrx_png_folder_is_referenced_in_place(tmp_path):
    from PIL import Image

    from precompute.readers.rxrx import rxrx_image_screen

    meta = pd.DataFrame([dict(well_id=f"gene-001_12_{a}", experiment_name="gene-001", plate=12, address=a, gene=g,
                              treatment=t, SMILES=None, concentration=None, perturbation_type="CRISPR", cell_type="HUVEC")
                         for a, g, t in (("A01", "EMPTY_control", "EMPTY_control"), ("A02", "PLK1", "PLK1_guide_1"),
                                         ("A03", "PLK1", "PLK1_guide_2"))])
    meta.to_csv(tmp_path / "m.csv", index=False)
    rng = np.random.default_rng(3)
    truth = {}
    for a in ("A01", "A02"):  # A03 has no images
        arr = rng.integers(0, 255, (1, 6, 32, 32), dtype=np.uint8)
        truth[a] = arr
        folder = tmp_path / "images" / "gene-001" / "Plate12"
        folder.mkdir(parents=True, exist_ok=True)
        for c in range(6):
            Image.fromarray(arr[0, c]).save(folder / f"{a}_s1_w{c + 1}.png")
    s = load_screen(rxrx_image_screen(tmp_path / "m.csv", tmp_path / "images", tmp_path / "screen"))
    assert s.channels == ("DNA", "ER", "RNA", "AGP", "Mito", "PM") and s.bit_depth == 8
    np.testing.assert_array_equal(s.load_images("gene-001_12_A02"), truth["A02"])
    assert s.image_path("gene-001_12_A01", 1, 6) == (tmp_path / "images/gene-001/Plate12/A01_s1_w6.png").resolve()
    assert s.wells_with_images == ["gene-001_12_A01", "gene-001_12_A02"] and not s.has_images
