"""Reading and writing screens on disk in the RxRx3 convention.

Layout of a screen folder::

    screen.json                         # descriptor: channels, sites, plate format, bit depth
    metadata.csv                        # RxRx3 columns + contract extras, one row per well
    images/{experiment}/Plate{n}/{address}_s{site}_w{channel}.png
    ground_truth/*.csv                  # optional: truth tables and annotation pairs
    image_index.csv                     # optional: per-image file list (see below)

``metadata.csv`` carries RxRx3's own columns (``well_id, experiment_name, plate, address, gene,
treatment, SMILES, concentration, perturbation_type, cell_type``) so that the same reader opens a
real RxRx3 folder, plus the contract columns RxRx3 lacks (``perturbation, guide``).

Optional image index: when ``screen.json`` names one (``"image_index": "image_index.csv"``), each
image is a row ``field_id, well_id, site, channel, path`` instead of following the PNG naming
convention, so wells can point at any single-channel file (16-bit TIFFs from JUMP, say), only some
wells need images, and rows with an empty ``well_id`` are *example fields* that belong to no well
of the screen (shown as examples, never embedded). ``path`` is relative to the screen folder or
absolute; ``channel`` is a channel name.

Beside this module: the wells table and its RxRx3 columns in :mod:`precompute.wells_table`, the
image index in :mod:`precompute.image_index`, image files in :mod:`precompute.image_io`.
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

from precompute.contract import (
    ContractError,
    validate_channels,
    validate_compound_targets,
    validate_relationships,
    validate_wells,
)
from precompute.image_index import DESCRIPTOR, IMAGE_INDEX, IMAGE_INDEX_COLUMNS, read_image_index, stage_image_files
from precompute.image_io import EncodedImages, read_image, write_well_pngs
from precompute.wells_table import contract_to_rxrx, read_wells_table

METADATA = "metadata.csv"
FORMAT_NAME = "phenomix-screen"
FORMAT_VERSION = 1


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
    image_index: pd.DataFrame | None = None

    @property
    def has_images(self) -> bool:
        """True when every well has images (an image index may list only some wells)."""
        if self.image_size is None:
            return False
        if self.image_index is None:
            return True
        return len(self.wells_with_images) == len(self.wells)

    @property
    def has_any_images(self) -> bool:
        """True when at least one well has images (example fields do not count)."""
        return self.image_size is not None and (self.image_index is None or len(self.wells_with_images) > 0)

    @property
    def wells_with_images(self) -> list[str]:
        """well_ids that have images, in wells-table order."""
        if "_with_images" not in self.__dict__:
            if self.image_size is None:
                ids: list[str] = []
            elif self.image_index is None:
                ids = self.wells["well_id"].tolist()
            else:
                listed = set(self.image_index["well_id"].dropna())
                ids = [w for w in self.wells["well_id"] if w in listed]
            self.__dict__["_with_images"] = ids
        return self.__dict__["_with_images"]

    def has_well_images(self, well_id: str) -> bool:
        if "_with_images_set" not in self.__dict__:
            self.__dict__["_with_images_set"] = frozenset(self.wells_with_images)
        return well_id in self.__dict__["_with_images_set"]

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
        if self.image_index is not None:
            name = self.channels[channel - 1]
            rel = self._index_lookup().get((well_id, int(site), name))
            if rel is None:
                raise ContractError(
                    f"{self.root / self.descriptor['image_index']}: no image listed for well {well_id!r}, "
                    f"site {site}, channel {name!r}"
                )
            return self._resolve(rel)
        image_root = self.root / self.descriptor.get("image_root", "images")
        return image_root / str(r["experiment_name"]) / f"Plate{r['plate_number']}" / f"{r['well']}_s{site}_w{channel}.png"

    def _index_lookup(self) -> dict[tuple[str, int, str], str]:
        if "_index_lookup_cache" not in self.__dict__:
            idx = self.image_index
            rows = idx[idx["well_id"].notna()] if idx is not None else idx
            self.__dict__["_index_lookup_cache"] = {} if rows is None else {
                (w, int(s), c): p for w, s, c, p in zip(rows["well_id"], rows["site"], rows["channel"], rows["path"])
            }
        return self.__dict__["_index_lookup_cache"]

    def _resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def example_fields(self) -> pd.DataFrame:
        """Image-index rows that belong to no well of the screen (example fields), one row per image."""
        if self.image_index is None:
            return pd.DataFrame(columns=list(IMAGE_INDEX_COLUMNS))
        return self.image_index[self.image_index["well_id"].isna()].reset_index(drop=True)

    def load_field(self, field_id: str) -> tuple[np.ndarray, tuple[str, ...]]:
        """One field of the image index (a well's site or an example field): ``(channels, H, W)``
        at the files' own bit depth, and the channel names in that order (an example field may
        carry fewer or other channels than the screen, e.g. Brightfield)."""
        idx = self.image_index
        rows = idx[idx["field_id"] == field_id] if idx is not None else None
        if rows is None or rows.empty:
            raise ContractError(f"screen {self.name!r}: no image field {field_id!r}")
        planes = [read_image(self._resolve(p), None, None) for p in rows["path"]]
        shapes = {a.shape for a in planes}
        if len(shapes) != 1:
            raise ContractError(f"screen {self.name!r}: field {field_id!r} mixes image sizes {sorted(shapes)}")
        return np.stack(planes), tuple(rows["channel"].astype(str))

    def load_images(self, well_id: str) -> np.ndarray:
        """All sites and channels of one well, ``(sites, channels, H, W)``, original bit depth."""
        if not self.has_any_images:
            raise ContractError(f"screen {self.name!r} has no images (embeddings-only screen)")
        if not self.has_well_images(well_id):
            self._row(well_id)  # unknown ids get the KeyError naming them
            raise ContractError(f"screen {self.name!r}: well {well_id!r} has no images (the image index lists only some wells)")
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
        return read_ground_truth(self.root, self.descriptor, name)


def read_ground_truth(root: Path, descriptor: dict, name: str) -> pd.DataFrame | None:
    """A screen's ground-truth table ``name`` (None when its descriptor lists none), without
    opening the wells table: the dashboard reads annotations at page load, and validating a
    million-row wells table first took ~25 s."""
    rel = descriptor.get("ground_truth", {}).get(name)
    if rel is None:
        return None
    path = Path(root) / rel
    if not path.exists():
        raise ContractError(f"{path}: ground-truth table {name!r} listed in {DESCRIPTOR} is missing")
    df = pd.read_csv(path)
    if name == "relationships":
        return validate_relationships(df, source=str(path))
    if name == "compound_targets":
        return validate_compound_targets(df, source=str(path))
    return df


def read_descriptor(root: str | os.PathLike) -> dict:
    """A screen folder's validated descriptor (screen.json)."""
    desc_path = Path(root) / DESCRIPTOR
    if not desc_path.exists():
        raise ContractError(f"{desc_path}: not a Phenomix screen (no {DESCRIPTOR})")
    try:
        desc = json.loads(desc_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ContractError(f"{desc_path}: invalid JSON ({err})") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT_NAME:
        got = desc.get("format") if isinstance(desc, dict) else type(desc).__name__
        raise ContractError(f"{desc_path}: 'format' is {got!r}, expected {FORMAT_NAME!r}")
    check_descriptor(desc, desc_path)
    return desc


def load_screen(root: str | os.PathLike) -> Screen:
    """Open a screen folder, validating its descriptor and wells table."""
    root = Path(root)
    desc, desc_path = read_descriptor(root), root / DESCRIPTOR
    meta_path = root / desc.get("metadata", METADATA)
    wells = read_wells_table(meta_path, plate_format=desc.get("plate_format"))
    if "plate_name" in wells.columns:  # our own writer keeps the original plate ids
        wells["plate"] = wells["plate_name"].astype(str)
    channels = validate_channels(desc.get("channels", []), source=str(desc_path))
    size = desc.get("image_size")
    index = None
    if desc.get("image_index"):
        index = read_image_index(root / desc["image_index"], wells, channels, int(desc.get("sites", 1)))
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
        image_index=index,
    )


def check_descriptor(desc: dict, desc_path: Path) -> None:
    """The screen.json fields the loader relies on have usable values (else one clear error)."""

    def bad(key: str, want: str) -> ContractError:
        return ContractError(f"{desc_path}: {key!r} is {desc.get(key)!r}; expected {want}")

    sites = desc.get("sites", 1)
    if isinstance(sites, bool) or not isinstance(sites, int) or not 1 <= sites <= 1000:
        raise bad("sites", "a whole number of sites per well (1-1000)")
    if desc.get("bit_depth") not in (None, 8, 16):
        raise bad("bit_depth", "8 or 16")
    size = desc.get("image_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2
                                 and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in size)):
        raise bad("image_size", "[height, width] in pixels, or null for an embeddings-only screen")
    if desc.get("plate_format") not in (None, 96, 384, 1536):
        raise bad("plate_format", "96, 384 or 1536")
    if not isinstance(desc.get("channels", []), list):
        raise bad("channels", "a list of channel names")
    for key in ("arrays", "ground_truth"):
        if not isinstance(desc.get(key, {}), dict):
            raise bad(key, "an object of name -> file")
    meta = desc.get("metadata", METADATA)
    if not isinstance(meta, str) or Path(meta).suffix.lower() not in (".csv", ".parquet"):
        raise bad("metadata", "a .csv or .parquet wells table")


def write_rxrx_screen(
    root: str | os.PathLike,
    wells: pd.DataFrame,
    images: Iterable[tuple[str, np.ndarray | EncodedImages]] | None,
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
    image_files: pd.DataFrame | None = None,
    link_image_files: bool = False,
) -> Path:
    """Write a whole screen atomically: into a temporary sibling folder, renamed when complete.

    ``images`` yields ``(well_id, array(sites, channels, H, W))`` in any order; None writes an
    embeddings-only screen (no image folder). ``arrays`` are saved as ``{key}.npy`` beside the
    metadata (e.g. ``well_features`` for an embeddings-only screen, row order = wells table) and
    listed in the descriptor under ``arrays``. A crash leaves only the temporary folder behind.

    ``image_files`` (instead of ``images``) lists existing single-channel image files, one row per
    image: ``field_id, well_id (empty for an example field), site, channel (name), path``; they
    are copied under ``images/fields/`` (``link_image_files``: referenced by absolute path, not
    copied) and listed in ``image_index.csv`` (see the module doc).
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
        index_rel = None
        if image_files is not None:
            if images is not None:
                raise ContractError(f"{name}: give either images or image_files, not both")
            shape, depth = stage_image_files(tmp, image_files, wells, channels, n_sites, copy=not link_image_files)
            index_rel = IMAGE_INDEX
        if images is not None:
            by_id = rx.set_index("well_id")
            it = progress(iter(images)) if progress else iter(images)
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                futures = []
                made: set[Path] = set()
                for well_id, arr in it:
                    arr_shape = arr.shape
                    if len(arr_shape) != 4 or tuple(arr_shape[:2]) != (n_sites, len(channels)):
                        raise ContractError(
                            f"{name}: images of {well_id} have shape {arr_shape}, expected ({n_sites}, {len(channels)}, H, W)"
                        )
                    shape = shape or tuple(arr_shape[2:])
                    if isinstance(arr, EncodedImages):
                        depth = depth or arr.bit_depth
                    else:
                        depth = depth or (16 if arr.dtype == np.uint16 else 8)
                    r = by_id.loc[well_id]
                    folder = tmp / "images" / str(r["experiment_name"]) / f"Plate{r['plate']}"
                    if folder not in made:
                        folder.mkdir(parents=True, exist_ok=True)
                        made.add(folder)
                    futures.append(pool.submit(write_well_pngs, folder, str(r["address"]), arr))
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
            **({"image_index": index_rel} if index_rel else {}),
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
