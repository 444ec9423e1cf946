"""The optional per-image file index of a screen folder (``image_index.csv``).

One row per single-channel image: ``field_id, well_id, site, channel, path``. It lets a screen's
wells point at arbitrary files (JUMP's 16-bit TIFFs, any naming scheme) instead of the RxRx3 PNG
convention, lets only some wells have images, and carries *example fields* (rows without a
well_id) that belong to no well of the screen. ``precompute.screen`` reads it through
:func:`read_image_index` and writes it through :func:`stage_image_files`; this module sits below
it and reads images through :mod:`precompute.image_io`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.contract import ContractError
from precompute.image_io import read_image

IMAGE_INDEX = "image_index.csv"
IMAGE_INDEX_COLUMNS: tuple[str, ...] = ("field_id", "well_id", "site", "channel", "path")
DESCRIPTOR = "screen.json"  # the screen's descriptor, which names the index (precompute.screen reads it)


def read_image_index(path: Path, wells: pd.DataFrame, channels: tuple[str, ...], n_sites: int) -> pd.DataFrame:
    """Read and check an image index: required columns, known wells/channels/sites, no duplicates.

    Rows with a well_id must name one of the screen's channels and a site in 1..n_sites; every
    listed well must then list all its sites x channels (a half-imaged well would fail later, in the
    middle of an embedding run). Rows without a well_id (example fields) may use any channel name.
    """
    if not path.exists():
        raise ContractError(f"{path}: image index listed in {DESCRIPTOR} is missing")
    try:
        idx = pd.read_csv(path, dtype={"field_id": str, "well_id": str, "channel": str, "path": str})
    except Exception as err:
        raise ContractError(f"{path}: cannot be read as CSV ({err})") from None
    missing = [c for c in IMAGE_INDEX_COLUMNS if c not in idx.columns]
    if missing:
        raise ContractError(f"{path}: missing column(s) {missing}; present: {list(idx.columns)}")
    site = pd.to_numeric(idx["site"], errors="coerce")
    for col, bad in (("field_id", idx["field_id"].isna()), ("channel", idx["channel"].isna()),
                     ("path", idx["path"].isna()), ("site", site.isna() | (site < 1))):
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ContractError(f"{path}, line {i + 2}: missing or invalid {col!r} ({idx.at[i, col]!r})")
    idx["site"] = site.astype(int)
    on_well = idx["well_id"].notna().to_numpy()
    known = set(wells["well_id"])
    for i in np.flatnonzero(on_well):
        w, c, s = idx.at[i, "well_id"], idx.at[i, "channel"], idx.at[i, "site"]
        if w not in known:
            raise ContractError(f"{path}, line {i + 2}: well_id {w!r} is not in the wells table")
        if c not in channels:
            raise ContractError(f"{path}, line {i + 2}: channel {c!r} is not one of the screen's {list(channels)}")
        if s > n_sites:
            raise ContractError(f"{path}, line {i + 2}: site {s} but the screen has {n_sites} site(s) per well")
    dup = idx.duplicated(["field_id", "channel"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ContractError(f"{path}, line {i + 2}: field {idx.at[i, 'field_id']!r} lists channel {idx.at[i, 'channel']!r} twice")
    per_well = idx[on_well].groupby("well_id").size()
    short = per_well[per_well != n_sites * len(channels)]
    if len(short):
        raise ContractError(
            f"{path}: well {short.index[0]!r} lists {int(short.iloc[0])} image(s), expected "
            f"{n_sites} site(s) x {len(channels)} channels"
        )
    return idx


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "field"


def stage_image_files(
    tmp: Path, files: pd.DataFrame, wells: pd.DataFrame, channels: Iterable[str], n_sites: int, *, copy: bool = True
) -> tuple[tuple[int, int] | None, int | None]:
    """Copy listed image files into ``tmp/images/fields/`` and write ``tmp/image_index.csv``.

    ``copy=False`` keeps the files where they are and stores their absolute paths (a large
    image folder is then referenced, not duplicated; moving it breaks the screen).

    Args:
        tmp: the screen folder being written.
        files: one row per image, columns ``field_id, well_id, site, channel, path`` (source
            path; extra columns such as ``source_plate`` or ``note`` are kept in the index).
        wells, channels, n_sites: the screen's validated wells table, channel names, sites.

    Returns:
        (image_size, bit_depth) of the first well image, or (None, None) when only example
        fields are listed (the screen then has no well images).

    Raises ContractError naming the row for a missing source file or an index that
    :func:`read_image_index` rejects; the caller removes ``tmp`` on error.
    """
    missing = [c for c in IMAGE_INDEX_COLUMNS if c not in files.columns]
    if missing:
        raise ContractError(f"image_files: missing column(s) {missing}; present: {list(files.columns)}")
    out = files.reset_index(drop=True).copy()
    out["well_id"] = out["well_id"].where(out["well_id"].notna() & (out["well_id"].astype(str) != ""), None)
    folder_of = {f: f"images/fields/{k:04d}_{_slug(f)}" for k, f in enumerate(pd.unique(out["field_id"]))}
    new_paths = []
    for i, (field_id, src) in enumerate(zip(out["field_id"], out["path"], strict=True)):
        src = Path(src)
        if not src.is_file():
            raise ContractError(f"image_files, row {i}: {src} does not exist")
        if not copy:
            new_paths.append(str(src.resolve()))
            continue
        rel = f"{folder_of[field_id]}/{src.name}"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        if (tmp / rel).exists():
            raise ContractError(f"image_files, row {i}: two images of field {field_id!r} are both named {src.name!r}")
        shutil.copyfile(src, tmp / rel)
        new_paths.append(rel)
    out["path"] = new_paths
    out.to_csv(tmp / IMAGE_INDEX, index=False)
    read_image_index(tmp / IMAGE_INDEX, wells, tuple(channels), n_sites)
    on_well = out[out["well_id"].notna()]
    if on_well.empty:
        return None, None
    first_path = Path(on_well["path"].iloc[0])
    first = read_image(first_path if first_path.is_absolute() else tmp / first_path, None, None)
    return (int(first.shape[0]), int(first.shape[1])), (16 if first.dtype == np.uint16 else 8)
