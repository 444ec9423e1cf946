"""JUMP Cell Painting images: 16-bit TIFF fields named the Phenix way or listed in a CellProfiler
``load_data`` CSV, the channel -> stain map per source, and percentile rescaling.

Phenix (Opera/Operetta) names: ``r03c03f03p01-ch5sk1fk1fl1.tiff`` = row 3, column 3, field 3,
plane 1, channel 5. Which stain a channel number holds differs between sources and must be given:
``CHANNEL_MAPS`` has the two of the shared data, each read off the ``Image_FileName_Orig{Stain}``
columns of the CellProfiler table stored beside the TIFFs (:func:`channel_map_from_load_data`
re-derives them). 16-bit intensities are rescaled by documented percentiles (default per image and
channel 0.1-99.9 %) for display and for the MAE: values below/above the limits clip to 0/1, and
the limits are returned so nothing is truncated silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.image_io import read_tiff
from precompute.readers.common import ReaderError, read_table, shared_data_dir

PHENIX_RE = re.compile(r"^r(\d{2})c(\d{2})f(\d{2})p(\d{2})-ch(\d{1,2})sk\d+fk\d+fl\d+\.tiff?$", re.IGNORECASE)
DEFAULT_PCT: tuple[float, float] = (0.1, 99.9)
# channel number -> stain, per source (evidence: the Image_FileName_Orig* columns of each folder's parquet).
CHANNEL_MAPS: dict[str, dict[int, str]] = {
    # CPJUMP1 (2020_11_04_CPJUMP1, Phenix): only ch2, ch3, ch5 are in the shared folder.
    "cpjump1": {1: "Mito", 2: "AGP", 3: "RNA", 4: "ER", 5: "DNA", 6: "HighZBF", 7: "LowZBF", 8: "Brightfield"},
    # WayScience pediatric cancer atlas (BR00143976).
    "pediatric_cancer_atlas": {1: "Brightfield", 2: "ER", 3: "AGP", 4: "Mito", 5: "DNA", 6: "RNA"},
}


@dataclass(frozen=True)
class PhenixName:
    row: int
    col: int
    field: int
    plane: int
    channel: int

    @property
    def well(self) -> str:
        from precompute.contract import well_name

        return well_name(self.row, self.col)


def parse_phenix_name(name: str) -> PhenixName:
    """'r03c03f03p01-ch5sk1fk1fl1.tiff' -> PhenixName(row=3, col=3, field=3, plane=1, channel=5)."""
    m = PHENIX_RE.match(Path(name).name)
    if m is None:
        raise ReaderError(f"{name}: not a Phenix image name (expected rXXcXXfXXpXX-chXsk1fk1fl1.tiff)")
    row, col, fld, plane, ch = (int(g) for g in m.groups())
    if row < 1 or col < 1:
        raise ReaderError(f"{name}: row/column numbers start at 1 in Phenix names")
    return PhenixName(row, col, fld, plane, ch)



def _stain_columns(df: pd.DataFrame) -> dict[str, tuple[str, str | None]]:
    """stain -> (FileName column, PathName column or None) for FileName_Orig* (optionally Image_-prefixed)."""
    out = {}
    for c in df.columns:
        m = re.match(r"^(?:Image_)?FileName_Orig(\w+)$", str(c))
        if m:
            stain = m.group(1)
            path_c = str(c).replace("FileName_", "PathName_")
            out[stain] = (c, path_c if path_c in df.columns else None)
    return out


def channel_map_from_load_data(df: pd.DataFrame) -> dict[int, str]:
    """Derive channel number -> stain from a load_data table whose file names are Phenix names."""
    out: dict[int, str] = {}
    for stain, (fc, _) in _stain_columns(df).items():
        names = df[fc].dropna().astype(str)
        if names.empty:
            continue
        ch = parse_phenix_name(names.iloc[0]).channel
        if ch in out and out[ch] != stain:
            raise ReaderError(f"load_data: channel {ch} is listed as both {out[ch]!r} and {stain!r}")
        out[ch] = stain
    if not out:
        raise ReaderError("load_data: no FileName_Orig* columns with Phenix file names")
    return dict(sorted(out.items()))


def _meta(df: pd.DataFrame, key: str, src: str) -> str:
    for c in (f"Metadata_{key}", f"Image_Metadata_{key}"):
        if c in df.columns:
            return c
    raise ReaderError(f"{src}: no Metadata_{key} column; present: {[c for c in df.columns if 'Metadata' in str(c)][:12]}")


def read_load_data(source: str | os.PathLike | pd.DataFrame, *, image_root: str | os.PathLike | None = None,
                   stains: Sequence[str] | None = None) -> pd.DataFrame:
    """CellProfiler load_data CSV (``FileName_Orig{DNA,ER,...}``, ``PathName_Orig...``, plate/well/site)
    -> image-file rows ``field_id, well_id (empty), plate, well, site, channel, path``.

    ``image_root``: where the files are here; used when the PathName does not exist on this machine
    (load_data files carry the paths of the machine that ran CellProfiler). ``stains`` keeps those.
    """
    src = str(source) if not isinstance(source, pd.DataFrame) else "load_data"
    df = source if isinstance(source, pd.DataFrame) else read_table(source)
    cols = _stain_columns(df)
    if not cols:
        raise ReaderError(f"{src}: no FileName_Orig* columns (a CellProfiler load_data table has FileName_OrigDNA, ...)")
    if stains is not None:
        absent = [s for s in stains if s not in cols]
        if absent:
            raise ReaderError(f"{src}: stain(s) {absent} not listed; load_data has {sorted(cols)}")
        cols = {s: cols[s] for s in stains}
    plate_c, well_c, site_c = (_meta(df, k, src) for k in ("Plate", "Well", "Site"))
    rows = []
    for i, r in enumerate(df.itertuples(index=False)):
        rec = dict(zip(df.columns, r, strict=True))
        plate, well, site = str(rec[plate_c]), str(rec[well_c]), int(rec[site_c])
        for stain, (fc, pc) in cols.items():
            fname = rec[fc]
            if pd.isna(fname):
                raise ReaderError(f"{src}, line {i + 2}: {fc} is empty")
            path = Path(str(rec[pc])) / str(fname) if pc and not pd.isna(rec[pc]) else Path(str(fname))
            if not path.is_file() and image_root is not None:
                path = Path(image_root) / str(fname)
            rows.append((f"{plate}/{well}/s{site}", None, plate, well, site, stain, str(path)))
    out = pd.DataFrame(rows, columns=["field_id", "well_id", "plate", "well", "site", "channel", "path"])
    return out.drop_duplicates(["field_id", "channel"]).reset_index(drop=True)


def scan_phenix_folder(folder: str | os.PathLike, channel_map: dict[int, str], *, plate: str) -> pd.DataFrame:
    """Phenix-named TIFFs of one plate folder -> image-file rows (as :func:`read_load_data`).

    Every ``.tif(f)`` file must parse as a Phenix name and use a channel number of ``channel_map``.
    """
    folder = Path(folder)
    rows = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in (".tif", ".tiff"):
            continue
        n = parse_phenix_name(p.name)
        if n.channel not in channel_map:
            raise ReaderError(f"{p}: channel {n.channel} is not in the channel map {channel_map}")
        rows.append((f"{plate}/{n.well}/s{n.field}", None, plate, n.well, n.field, channel_map[n.channel], str(p)))
    if not rows:
        raise ReaderError(f"{folder}: no Phenix-named TIFF files")
    return pd.DataFrame(rows, columns=["field_id", "well_id", "plate", "well", "site", "channel", "path"])


def read_field(files: pd.DataFrame, channels: Sequence[str]) -> np.ndarray:
    """The rows of one field -> (C, H, W) array in ``channels`` order; a missing channel is an error."""
    by = dict(zip(files["channel"], files["path"], strict=True))
    missing = [c for c in channels if c not in by]
    if missing:
        raise ReaderError(f"field {files['field_id'].iloc[0] if len(files) else '?'}: channel(s) {missing} missing; "
                          f"has {sorted(by)} ({len(by)} of the {len(channels)} channels asked for)")
    planes = [read_tiff(by[c]) for c in channels]
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise ReaderError(f"field {files['field_id'].iloc[0]}: channels differ in size {sorted(shapes)}")
    return np.stack(planes)


def rescale_16bit(img: np.ndarray, pct: tuple[float, float] = DEFAULT_PCT, *,
                  return_limits: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Percentile rescale to float32 [0, 1], per image and channel.

    img: (H, W), (C, H, W) or (S, C, H, W) integers. For every 2-D plane, lo/hi are its
    ``pct`` percentiles; out = clip((x - lo) / (hi - lo), 0, 1). A constant plane maps to 0.
    With ``return_limits`` also returns the limits, shape img.shape[:-2] + (2,), so a caller can
    report what was clipped (by construction about pct[0] % + (100 - pct[1]) % of the pixels).
    """
    lo_p, hi_p = pct
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {pct}")
    arr = np.asarray(img)
    if arr.ndim < 2:
        raise ValueError(f"expected an image (..., H, W), got shape {arr.shape}")
    flat = arr.reshape(-1, arr.shape[-2] * arr.shape[-1]).astype(np.float32)
    lims = np.percentile(flat, [lo_p, hi_p], axis=1).T.astype(np.float32)  # (planes, 2)
    span = lims[:, 1] - lims[:, 0]
    out = np.where(span[:, None] > 0, (flat - lims[:, :1]) / np.where(span > 0, span, 1)[:, None], 0.0)
    out = np.clip(out, 0.0, 1.0).astype(np.float32).reshape(arr.shape)
    if return_limits:
        return out, lims.reshape(arr.shape[:-2] + (2,))
    return out


def to_display_uint8(img: np.ndarray, pct: tuple[float, float] = DEFAULT_PCT) -> np.ndarray:
    """Percentile-rescaled 8-bit copy for display (same shape)."""
    return np.round(rescale_16bit(img, pct) * 255).astype(np.uint8)


def field_to_mae_input(field: np.ndarray, *, pct: tuple[float, float] = DEFAULT_PCT, tile: int = 256,
                       stride: int | None = None) -> np.ndarray:
    """A real field (C, H, W) or (S, C, H, W) of 16-bit TIFF data -> the MAE's float input.

    Percentile rescale per site and channel (:func:`rescale_16bit`), then square tiles as the
    embedders use them (``precompute.embed.tile_sites``). Returns (n_tiles, C, tile, tile) float32
    in [0, 1]; a 1080x1080 field gives 16 non-overlapping 256-pixel tiles (remainder dropped
    symmetrically).
    """
    from precompute.embed.tiling import tile_sites

    arr = np.asarray(field)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected (C, H, W) or (S, C, H, W), got shape {np.asarray(field).shape}")
    return tile_sites(rescale_16bit(arr, pct), tile, stride=stride)


def shared_example_fields(data: Path | None = None) -> pd.DataFrame:
    """The real TIFF fields of the shared data as *example fields* (no well of a built-in screen):
    rows ``field_id, well_id (empty), site, channel, path, source_plate, source_well, note``."""
    data = data or shared_data_dir()
    base = data / "images_cellpainting"
    parts = []
    for folder, key, plate, note in (
        ("cpjump1_BR00117006", "cpjump1", "BR00117006",
         "CPJUMP1 JUMP-Target-1 ORF plate, A549; only AGP, RNA and DNA exist upstream"),
        ("pediatric_cancer_atlas_BR00143976", "pediatric_cancer_atlas", "BR00143976",
         "WayScience pediatric cancer atlas plate; 5 stains + brightfield"),
    ):
        if not (base / folder).is_dir():
            continue
        f = scan_phenix_folder(base / folder, CHANNEL_MAPS[key], plate=plate)
        f["source_plate"], f["source_well"], f["source"], f["note"] = plate, f["well"], key, note
        parts.append(f)
    if not parts:
        raise ReaderError(f"{base}: no example image folders")
    out = pd.concat(parts, ignore_index=True)
    return out.drop(columns=["plate", "well"])
