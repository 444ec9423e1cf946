"""Single-channel image files of a screen: read (PNG through Pillow, TIFF through tifffile) with
checks that name the file, and write/encode a well's PNGs.

The lowest layer of the screen format: :mod:`precompute.screen`, :mod:`precompute.image_index` and
the readers all read images through here, and it imports none of them.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from precompute.contract import ContractError, ReaderError


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """One single-channel TIFF as a 2-D uint8/uint16 array, with errors naming the file.

    Checks that the file is a TIFF, holds exactly one page and that its strips lie inside the file
    (tifffile quietly returns an empty or zero-filled array for some truncated files).
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: image missing")
    size = path.stat().st_size
    if size == 0:
        raise ReaderError(f"{path}: zero-byte image")
    try:
        with tifffile.TiffFile(path) as tf:
            pages = len(tf.pages)
            if pages == 0:
                raise ReaderError(f"{path}: no image in the TIFF (truncated file: its directory is missing)")
            page = tf.pages[0]
            end = max((o + c for o, c in zip(page.dataoffsets, page.databytecounts)), default=0)
            if end > size:
                raise ReaderError(f"{path}: truncated TIFF (image data ends at byte {end}, file has {size} bytes)")
            if pages > 1:
                raise ReaderError(f"{path}: {pages} pages; expected one single-channel image per file")
            arr = page.asarray()
    except ReaderError:
        raise
    except Exception as err:  # tifffile/imagecodecs raise many types for corrupt data
        raise ReaderError(f"{path}: cannot decode TIFF ({type(err).__name__}: {err})") from None
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ReaderError(f"{path}: expected a single-channel image, got shape {arr.shape}")
    if arr.dtype not in (np.uint8, np.uint16):
        raise ReaderError(f"{path}: image is {arr.dtype}; expected 8- or 16-bit unsigned integers")
    return arr


def read_image(path: Path, shape: tuple[int, int] | None, bit_depth: int | None) -> np.ndarray:
    """Read one single-channel image and check it is what the descriptor promises.

    PNG and other Pillow formats; ``.tif``/``.tiff`` through tifffile (with imagecodecs for LZW),
    which keeps 16-bit data exact. ``shape``/``bit_depth`` None skip those checks (example fields).
    """
    if not path.exists():
        raise ContractError(f"{path}: image missing")
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: zero-byte image")
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = read_tiff(path)  # checks truncation tifffile lets through
    else:
        try:
            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im)
        except Exception as err:  # PIL raises many types for corrupt or truncated files
            raise ContractError(f"{path}: cannot decode image ({err})") from None
    if arr.ndim != 2:
        raise ContractError(f"{path}: expected a single-channel image, got shape {arr.shape}")
    if shape is None or bit_depth is None:
        if arr.dtype not in (np.uint8, np.uint16):
            raise ContractError(f"{path}: image is {arr.dtype}; only 8- and 16-bit images are supported")
        return arr
    if arr.shape != tuple(shape):
        raise ContractError(f"{path}: image is {arr.shape[0]}x{arr.shape[1]}, screen says {shape[0]}x{shape[1]}")
    want = np.uint16 if bit_depth == 16 else np.uint8
    if arr.dtype != want:
        if bit_depth == 16 and arr.dtype in (np.int32, np.uint32) and arr.max(initial=0) <= 65535:
            return arr.astype(np.uint16)  # Pillow opens some 16-bit PNGs as 32-bit ints
        raise ContractError(f"{path}: image is {arr.dtype}, screen says {bit_depth}-bit")
    return arr


@dataclass(frozen=True)
class EncodedImages:
    """One well's images already encoded as PNG, ``png[site][channel]``: lets renderer processes
    compress in parallel instead of the writing process encoding every file itself."""

    shape: tuple[int, int, int, int]
    bit_depth: int
    png: tuple[tuple[bytes, ...], ...]


def encode_pngs(arr: np.ndarray) -> EncodedImages:
    """(sites, channels, H, W) uint8/uint16 -> EncodedImages (compress level 1: caches, not archives)."""
    out = []
    for s in range(arr.shape[0]):
        row = []
        for c in range(arr.shape[1]):
            buf = io.BytesIO()
            Image.fromarray(arr[s, c]).save(buf, format="PNG", compress_level=1)
            row.append(buf.getvalue())
        out.append(tuple(row))
    return EncodedImages(tuple(arr.shape), 16 if arr.dtype == np.uint16 else 8, tuple(out))


def write_well_pngs(folder: Path, address: str, arr: np.ndarray | EncodedImages) -> None:
    if isinstance(arr, EncodedImages):
        for s, row in enumerate(arr.png):
            for c, data in enumerate(row):
                (folder / f"{address}_s{s + 1}_w{c + 1}.png").write_bytes(data)
        return
    for s in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            # compress_level 1: these are regenerated caches; speed matters more than bytes.
            Image.fromarray(arr[s, c]).save(folder / f"{address}_s{s + 1}_w{c + 1}.png", compress_level=1)
