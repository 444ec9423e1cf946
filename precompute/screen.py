"""Reading and writing screens on disk in the RxRx3 convention.

Layout of a screen folder::

    screen.json                         # descriptor: channels, sites, plate format, bit depth
    metadata.csv                        # RxRx3 columns + contract extras, one row per well
    images/{experiment}/Plate{n}/{address}_s{site}_w{channel}.png
    ground_truth/*.csv                  # optional: truth tables and annotation pairs

``metadata.csv`` carries RxRx3's own columns (``well_id, experiment_name, plate, address, gene,
treatment, SMILES, concentration, perturbation_type, cell_type``) so that the same reader opens a
real RxRx3 folder, plus the contract columns RxRx3 lacks (``perturbation, guide``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from precompute.contract import (
    ContractError,
    validate_channels,
    validate_compound_targets,
    validate_relationships,
    validate_wells,
)

DESCRIPTOR = "screen.json"
METADATA = "metadata.csv"
FORMAT_NAME = "phenomix-screen"
FORMAT_VERSION = 1

# RxRx3 column -> contract column.
_RXRX_TO_CONTRACT = {"experiment_name": "batch", "address": "well", "treatment": "compound", "concentration": "concentration_um"}


@dataclass
class Screen:
    """A screen on disk: the validated wells table plus lazy access to its images."""

    root: Path
    name: str
    wells: pd.DataFrame
    channels: tuple[str, ...]
    n_sites: int
    plate_format: int
    image_size: tuple[int, int] | None
    bit_depth: int | None
    descriptor: dict = field(default_factory=dict)

    @property
    def has_images(self) -> bool:
        return self.image_size is not None

    def _row(self, well_id: str) -> pd.Series:
        idx = self._index().get(well_id)
        if idx is None:
            raise KeyError(f"unknown well_id {well_id!r} in screen {self.name!r}")
        return self.wells.iloc[idx]

    def _index(self) -> dict[str, int]:
        if "_well_index" not in self.__dict__:
            self.__dict__["_well_index"] = {w: i for i, w in enumerate(self.wells["well_id"])}
        return self.__dict__["_well_index"]

    def image_path(self, well_id: str, site: int, channel: int) -> Path:
        """Path of one site (1-based) and channel (1-based, w1..w6) of a well."""
        r = self._row(well_id)
        image_root = self.root / self.descriptor.get("image_root", "images")
        return image_root / str(r["experiment_name"]) / f"Plate{r['plate_number']}" / f"{r['well']}_s{site}_w{channel}.png"

    def load_images(self, well_id: str) -> np.ndarray:
        """All sites and channels of one well, ``(sites, channels, H, W)``, original bit depth."""
        if not self.has_images:
            raise ContractError(f"screen {self.name!r} has no images (embeddings-only screen)")
        dtype = np.uint16 if self.bit_depth == 16 else np.uint8
        h, w = self.image_size  # type: ignore[misc]
        out = np.empty((self.n_sites, len(self.channels), h, w), dtype=dtype)
        for s in range(self.n_sites):
            for c in range(len(self.channels)):
                out[s, c] = read_image(self.image_path(well_id, s + 1, c + 1), (h, w), self.bit_depth or 8)
        return out

    def array(self, key: str, mmap: bool = True) -> np.ndarray | None:
        """A per-well array saved with the screen (e.g. 'well_features'), row order = wells."""
        rel = self.descriptor.get("arrays", {}).get(key)
        if rel is None:
            return None
        path = self.root / rel
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as err:
            raise ContractError(f"{path}: cannot read array {key!r} ({err})") from None
        if len(arr) != len(self.wells):
            raise ContractError(f"{path}: {len(arr)} rows, but the wells table has {len(self.wells)}")
        return arr

    def ground_truth(self, name: str) -> pd.DataFrame | None:
        """A ground-truth or annotation table by name (e.g. 'relationships'), or None."""
        rel = self.descriptor.get("ground_truth", {}).get(name)
        if rel is None:
            return None
        path = self.root / rel
        if not path.exists():
            raise ContractError(f"{path}: ground-truth table {name!r} listed in {DESCRIPTOR} is missing")
        df = pd.read_csv(path)
        if name == "relationships":
            return validate_relationships(df, source=str(path))
        if name == "compound_targets":
            return validate_compound_targets(df, source=str(path))
        return df


def read_image(path: Path, shape: tuple[int, int], bit_depth: int) -> np.ndarray:
    """Read one single-channel image and check it is what the descriptor promises."""
    if not path.exists():
        raise ContractError(f"{path}: image missing")
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: zero-byte image")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as err:  # PIL raises many types for corrupt or truncated files
        raise ContractError(f"{path}: cannot decode image ({err})") from None
    if arr.ndim != 2:
        raise ContractError(f"{path}: expected a single-channel image, got shape {arr.shape}")
    if arr.shape != tuple(shape):
        raise ContractError(f"{path}: image is {arr.shape[0]}x{arr.shape[1]}, screen says {shape[0]}x{shape[1]}")
    want = np.uint16 if bit_depth == 16 else np.uint8
    if arr.dtype != want:
        if bit_depth == 16 and arr.dtype in (np.int32, np.uint32) and arr.max(initial=0) <= 65535:
            return arr.astype(np.uint16)  # Pillow opens some 16-bit PNGs as 32-bit ints
        raise ContractError(f"{path}: image is {arr.dtype}, screen says {bit_depth}-bit")
    return arr


def rxrx_to_contract(meta: pd.DataFrame) -> pd.DataFrame:
    """Map RxRx3 metadata columns onto the contract; keep the originals as extras."""
    out = meta.copy()
    for src, dst in _RXRX_TO_CONTRACT.items():
        if src in out.columns and dst not in out.columns:
            out[dst] = out[src]
    if "plate" in out.columns and "plate_number" not in out.columns:
        out["plate_number"] = out["plate"]
        out["plate"] = out["experiment_name"].astype(str) + "_P" + out["plate"].astype(str)
    return out


def contract_to_rxrx(wells: pd.DataFrame) -> pd.DataFrame:
    """The metadata.csv written beside the images: RxRx3 columns first, contract extras after."""
    plate_numbers = wells.groupby("batch")["plate"].transform(lambda s: pd.factorize(s, sort=True)[0] + 1)
    rx = pd.DataFrame(
        {
            "well_id": wells["well_id"],
            "experiment_name": wells["batch"],
            "plate": plate_numbers.astype(int),
            "address": wells["well"],
            "gene": wells["gene"],
            "treatment": wells["compound"],
            "SMILES": wells.get("smiles", pd.Series([None] * len(wells))),
            "concentration": wells["concentration_um"],
            "perturbation_type": wells["perturbation_type"],
            "cell_type": wells.get("cell_type", pd.Series(["synthetic"] * len(wells))),
        }
    )
    taken = set(rx.columns) | {"batch", "plate", "well", "compound", "concentration_um", "row", "col", "plate_number"}
    for c in wells.columns:
        if c not in taken:
            rx[c] = wells[c].to_numpy()
    rx["plate_name"] = wells["plate"].to_numpy()
    return rx


def load_screen(root: str | os.PathLike) -> Screen:
    """Open a screen folder, validating its descriptor and wells table."""
    root = Path(root)
    desc_path = root / DESCRIPTOR
    if not desc_path.exists():
        raise ContractError(f"{desc_path}: not a Phenomix screen (no {DESCRIPTOR})")
    try:
        desc = json.loads(desc_path.read_text())
    except json.JSONDecodeError as err:
        raise ContractError(f"{desc_path}: invalid JSON ({err})") from None
    if desc.get("format") != FORMAT_NAME:
        raise ContractError(f"{desc_path}: 'format' is {desc.get('format')!r}, expected {FORMAT_NAME!r}")
    meta_path = root / desc.get("metadata", METADATA)
    wells = read_wells_table(meta_path, plate_format=desc.get("plate_format"))
    if "plate_name" in wells.columns:  # our own writer keeps the original plate ids
        wells["plate"] = wells["plate_name"].astype(str)
    channels = validate_channels(desc.get("channels", []), source=str(desc_path))
    size = desc.get("image_size")
    return Screen(
        root=root,
        name=str(desc.get("name", root.name)),
        wells=wells,
        channels=channels,
        n_sites=int(desc.get("sites", 1)),
        plate_format=int(wells.attrs.get("plate_format", desc.get("plate_format", 384))),
        image_size=tuple(size) if size else None,
        bit_depth=desc.get("bit_depth"),
        descriptor=desc,
    )


def read_wells_table(path: Path, *, plate_format: int | None = None) -> pd.DataFrame:
    """Read a wells table (CSV or Parquet; RxRx3 or contract columns) and validate it."""
    if not path.exists():
        raise ContractError(f"{path}: wells table missing")
    try:
        if path.suffix == ".parquet":
            meta = pd.read_parquet(path)
        else:
            meta = pd.read_csv(path, low_memory=False)
    except UnicodeDecodeError as err:
        raise ContractError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except Exception as err:
        raise ContractError(f"{path}: cannot be read as {'Parquet' if path.suffix == '.parquet' else 'CSV'} ({err})") from None
    if "experiment_name" in meta.columns and "address" in meta.columns:
        meta = rxrx_to_contract(meta)
    return validate_wells(meta, source=str(path), plate_format=plate_format)


def write_rxrx_screen(
    root: str | os.PathLike,
    wells: pd.DataFrame,
    images: Iterable[tuple[str, np.ndarray]] | None,
    *,
    channels: Iterable[str],
    n_sites: int,
    name: str,
    plate_format: int | None = None,
    ground_truth: dict[str, pd.DataFrame] | None = None,
    extra: dict | None = None,
    arrays: dict[str, np.ndarray] | None = None,
    progress: Callable[[Iterator], Iterator] | None = None,
    threads: int = 2,
) -> Path:
    """Write a whole screen atomically: into a temporary sibling folder, renamed when complete.

    ``images`` yields ``(well_id, array(sites, channels, H, W))`` in any order; None writes an
    embeddings-only screen (no image folder). ``arrays`` are saved as ``{key}.npy`` beside the
    metadata (e.g. ``well_features`` for an embeddings-only screen, row order = wells table) and
    listed in the descriptor under ``arrays``. A crash leaves only the temporary folder behind.
    """
    root = Path(root)
    channels = validate_channels(channels, source=name)
    wells = validate_wells(wells, source=f"{name} wells", plate_format=plate_format)
    rx = contract_to_rxrx(wells)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        rx.to_csv(tmp / METADATA, index=False)
        shape, depth = None, None
        if images is not None:
            by_id = rx.set_index("well_id")
            it = progress(iter(images)) if progress else iter(images)
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                futures = []
                for well_id, arr in it:
                    if arr.ndim != 4 or arr.shape[:2] != (n_sites, len(channels)):
                        raise ContractError(
                            f"{name}: images of {well_id} have shape {arr.shape}, expected ({n_sites}, {len(channels)}, H, W)"
                        )
                    shape = shape or arr.shape[2:]
                    depth = depth or (16 if arr.dtype == np.uint16 else 8)
                    r = by_id.loc[well_id]
                    folder = tmp / "images" / str(r["experiment_name"]) / f"Plate{r['plate']}"
                    folder.mkdir(parents=True, exist_ok=True)
                    futures.append(pool.submit(_write_well_pngs, folder, str(r["address"]), arr))
                    if len(futures) > 64:
                        futures.pop(0).result()
                for f in futures:
                    f.result()
        gt_paths = {}
        if ground_truth:
            (tmp / "ground_truth").mkdir()
            for key, df in ground_truth.items():
                rel = f"ground_truth/{key}.csv"
                df.to_csv(tmp / rel, index=False)
                gt_paths[key] = rel
        array_paths = {}
        for key, arr in (arrays or {}).items():
            if len(arr) != len(wells):
                raise ContractError(f"{name}: array {key!r} has {len(arr)} rows for {len(wells)} wells")
            np.save(tmp / f"{key}.npy", arr)
            array_paths[key] = f"{key}.npy"
        desc = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "name": name,
            "layout": "rxrx3",
            "metadata": METADATA,
            "image_root": "images",
            "channels": list(channels),
            "sites": n_sites,
            "plate_format": int(wells.attrs.get("plate_format", 384)),
            "image_size": list(shape) if shape else None,
            "bit_depth": depth,
            "n_wells": len(wells),
            "ground_truth": gt_paths,
            "arrays": array_paths,
            **(extra or {}),
        }
        (tmp / DESCRIPTOR).write_text(json.dumps(desc, indent=2, default=str))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _write_well_pngs(folder: Path, address: str, arr: np.ndarray) -> None:
    for s in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            # compress_level 1: these are regenerated caches; speed matters more than bytes.
            Image.fromarray(arr[s, c]).save(folder / f"{address}_s{s + 1}_w{c + 1}.png", compress_level=1)
