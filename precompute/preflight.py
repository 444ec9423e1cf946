"""Preflight: check a whole screen before the pipeline writes anything to the artifact store.

A screen takes days to image; a bad file found after hours of embedding wastes those hours and
leaves half a run behind. So before the first stage runs, every input is checked once, cheaply:

- identifiers: no control characters, no absurd lengths (they end up in URLs, exports, titles);
- controls: every batch has the negative controls its alignment methods need (or the user chose
  ``--tvn-fallback pooled``, which is logged); plates without controls and perturbations with a
  single well are warned about, not refused (real screens have both);
- precomputed well features: 2-D, numeric, one row per well, every value finite;
- images: every file exists, is non-empty, and its header says the size and bit depth that
  ``screen.json`` promises (PNG: IHDR and the IEND trailer, so truncation is caught too). With
  ``verify_images="full"`` every image is decoded as the embedder would.

Problems of one kind are gathered into one message that names the files, lines or values
(a few examples plus a count), raised as `PreflightError` (a `ContractError`).
"""

from __future__ import annotations

import logging
import struct
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute.contract import ContractError
from precompute.image_io import read_image
from precompute.screen import Screen

log = logging.getLogger("precompute")

VERIFY_MODES: tuple[str, ...] = ("header", "full")
MAX_ID_LEN = 256
ID_COLUMNS: tuple[str, ...] = ("well_id", "batch", "plate", "well", "perturbation", "gene", "guide", "compound")
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_EXAMPLES = 3


class PreflightError(ContractError):
    """The screen cannot be processed as it is; the message says what, where, and what to do."""


@dataclass
class PreflightReport:
    """What the preflight looked at, and what it let through with a warning."""

    n_wells: int = 0
    n_images: int = 0
    verify_images: str = "header"
    warnings: list[str] = field(default_factory=list)


def preflight(screen: Screen, config: Any = None, *, verify_images: str = "header", threads: int = 4) -> PreflightReport:
    """Check the whole screen against what the run ``config`` (a RunConfig) will need.

    Raises PreflightError naming the file, line or value at fault; returns the warnings otherwise.
    """
    if verify_images not in VERIFY_MODES:
        raise ValueError(f"verify_images must be one of {VERIFY_MODES}, got {verify_images!r}")
    report = PreflightReport(n_wells=len(screen.wells), verify_images=verify_images)
    source = str(screen.root / screen.descriptor.get("metadata", "metadata.csv"))
    check_identifiers(screen.wells, source)
    align_methods = tuple(getattr(config, "align_methods", ("centerscale", "tvn")))
    fallback = getattr(config, "tvn_fallback", "error")
    report.warnings += check_controls(screen.wells, align_methods, fallback, source)
    report.warnings += check_replicates(screen.wells, source)
    embedders = tuple(getattr(config, "embedders", ()))
    feats_listed = "well_features" in screen.descriptor.get("arrays", {})
    if feats_listed:
        check_features(screen)
    if not screen.has_images and not feats_listed:
        raise PreflightError(f"{screen.root}: the screen has neither images nor precomputed well features; nothing to embed")
    if "features" in embedders and not feats_listed:
        raise PreflightError(f"{screen.root}: --embedder features asked for, but screen.json lists no arrays.well_features")
    if screen.has_any_images:
        report.n_images = check_images(screen, full=verify_images == "full", threads=threads)
    for w in report.warnings:
        log.warning("preflight: %s", w)
    return report


# -- wells table -------------------------------------------------------------------------------
def check_identifiers(wells: pd.DataFrame, source: str) -> None:
    """Identifiers are shown in URLs, titles and exports: no control characters, bounded length."""
    for c in ID_COLUMNS:
        if c not in wells.columns:
            continue
        s = wells[c].dropna().astype(str)
        long = s[s.str.len() > MAX_ID_LEN]
        if len(long):
            raise PreflightError(
                f"{source}, line {_lines(long.index)}: {c} is {len(long.iloc[0]):,} characters long "
                f"(starts {long.iloc[0][:40]!r}); identifiers are limited to {MAX_ID_LEN} characters"
            )
        ctrl = s[s.str.contains(r"[\x00-\x1f\x7f]", regex=True)]
        if len(ctrl):
            raise PreflightError(
                f"{source}, line {_lines(ctrl.index)}: {c} {ctrl.iloc[0][:60]!r} contains a control character "
                "(tab, newline, NUL ...); fix the identifier in the metadata"
            )


def check_controls(wells: pd.DataFrame, align_methods: Iterable[str], fallback: str, source: str) -> list[str]:
    """Every batch needs the negative controls its alignment methods estimate their statistics on.

    centerscale needs 1 control per batch, spherize 2, TVN 2 (or ``fallback='pooled'``: the batch
    is whitened with the pooled control covariance, logged). Returns warnings.
    """
    neg = wells["perturbation_type"] == "negative_control"
    per_batch = neg.groupby(wells["batch"]).sum()
    plates_of = wells.groupby("batch")["plate"].unique()
    need = {"centerscale": 1, "spherize": 2, "tvn": 2}
    warnings = []
    for method in align_methods:
        if method not in need:
            continue
        short = per_batch[per_batch < need[method]]
        if short.empty:
            continue
        desc = "; ".join(f"batch {b!r} has {int(n)} (plates {', '.join(map(str, plates_of[b][:4]))})"
                         for b, n in short.items())
        if method == "tvn" and fallback == "pooled":
            warnings.append(f"TVN needs 2 negative-control wells per batch: {desc}; "
                            "--tvn-fallback pooled: those batches are whitened with the pooled control covariance")
            continue
        hint = {"tvn": "add controls, remove the batch, or rerun with --tvn-fallback pooled "
                       "(and without centerscale, which needs 1 control per batch: --align tvn)",
                "centerscale": "add controls, remove the batch, or align with TVN and its pooled fallback only "
                               "(--align tvn --tvn-fallback pooled)",
                "spherize": "add controls or remove the batch"}[method]
        raise PreflightError(f"{source}: {method} alignment needs {need[method]} negative-control well(s) per batch: "
                             f"{desc}; {hint}")
    plate_neg = neg.groupby(wells["plate"]).sum()
    bare = plate_neg[plate_neg == 0]
    if len(bare):
        warnings.append(f"plate(s) {', '.join(map(repr, bare.index[:5]))}"
                        + (f" (+{len(bare) - 5} more)" if len(bare) > 5 else "")
                        + " have no negative controls: their wells get no distance-to-controls (shown as gaps)")
    return warnings


def check_replicates(wells: pd.DataFrame, source: str) -> list[str]:
    """Perturbations with a single well: kept, but they have no replicate consistency to show."""
    treated = wells[~wells["perturbation_type"].isin(("negative_control", "positive_control"))]
    counts = treated.groupby("perturbation").size()
    single = counts[counts == 1]
    if single.empty:
        return []
    names = ", ".join(map(repr, single.index[:5])) + (f" (+{len(single) - 5} more)" if len(single) > 5 else "")
    return [f"{source}: {len(single)} perturbation(s) have a single well ({names}); "
            "their replicate consistency cannot be estimated"]


# -- precomputed features ----------------------------------------------------------------------
def check_features(screen: Screen, chunk: int = 65536) -> None:
    """well_features: readable, 2-D numeric, one row per well, all finite (checked in chunks)."""
    arr = screen.array("well_features")  # names the file when unreadable or the row count is off
    assert arr is not None
    path = screen.root / screen.descriptor["arrays"]["well_features"]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise PreflightError(f"{path}: well features must be a 2-D array (wells x features), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise PreflightError(f"{path}: well features must be real numbers, got dtype {arr.dtype}")
    bad_rows: list[int] = []
    for lo in range(0, len(arr), chunk):
        block = np.asarray(arr[lo : lo + chunk])
        bad = ~np.isfinite(block).all(axis=1)
        bad_rows += (np.flatnonzero(bad) + lo).tolist()
    if bad_rows:
        r = bad_rows[0]
        row = np.asarray(arr[r])
        kind = "NaN" if np.isnan(row).any() else "inf"
        col = int(np.flatnonzero(~np.isfinite(row))[0])
        wid = screen.wells["well_id"].iloc[r]
        raise PreflightError(
            f"{path}: row {r} (well {wid!r}) has {'a NaN' if kind == 'NaN' else 'an infinite'} value in feature column {col}; "
            f"{len(bad_rows)} row(s) in all have NaN or infinite features (rows {', '.join(map(str, bad_rows[:5]))}"
            f"{' ...' if len(bad_rows) > 5 else ''}); fix or drop those wells"
        )


# -- images ------------------------------------------------------------------------------------
def png_header(path: Path) -> tuple[int, int, int, int]:
    """(height, width, bit depth, colour type) from a PNG's IHDR; raises ValueError when the file is
    not a PNG or its IEND trailer is missing (a truncated file). Reads 33 + 12 bytes."""
    with open(path, "rb") as fh:
        head = fh.read(33)
        if len(head) < 33 or head[:8] != _PNG_SIG or head[12:16] != b"IHDR":
            raise ValueError("not a PNG file (bad signature or header)")
        fh.seek(-12, 2)
        tail = fh.read(12)
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if tail[4:] != _PNG_IEND:
        raise ValueError("truncated: the PNG trailer (IEND) is missing")
    return height, width, depth, colour


def image_header(path: Path) -> tuple[tuple[int, int], int]:
    """((H, W), bit depth) of a single-channel greyscale image without decoding its pixels."""
    if path.suffix.lower() == ".png":
        h, w, depth, colour = png_header(path)
        if colour != 0:
            raise ValueError(f"not a single-channel greyscale PNG (colour type {colour})")
        return (h, w), depth
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            shape, dtype = tuple(page.shape), np.dtype(page.dtype)
        if len(shape) != 2:
            raise ValueError(f"expected a single-channel image, got shape {shape}")
        return (int(shape[0]), int(shape[1])), dtype.itemsize * 8
    from PIL import Image

    with Image.open(path) as im:
        mode, (w, h) = im.mode, im.size
    depth = {"L": 8, "P": 8, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 16}.get(mode)
    if depth is None:
        raise ValueError(f"image mode {mode!r} is not 8- or 16-bit greyscale")
    return (h, w), depth


def _check_one(path: Path, shape: tuple[int, int], depth: int, full: bool) -> tuple[str, str] | None:
    """None when fine, else (problem kind, detail)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing", ""
    except OSError as err:
        return "unreadable", str(err)
    if size == 0:
        return "zero-byte", ""
    try:
        got_shape, got_depth = image_header(path)
    except Exception as err:  # any parser error means the file is not what it claims to be
        return "corrupt", str(err) or type(err).__name__
    if got_depth != depth:
        return f"{got_depth}-bit", f"{got_depth}-bit"
    if got_shape != tuple(shape):
        return "wrong size", f"{got_shape[0]}x{got_shape[1]}"
    if full:  # the header is fine; decoding finds damaged pixel data the header cannot show
        try:
            read_image(path, shape, depth)
        except ContractError as err:
            return "corrupt", str(err).split(": ", 1)[-1]
    return None


def check_images(screen: Screen, *, full: bool = False, threads: int = 4) -> int:
    """Check every image of every well with images; returns how many were checked."""
    shape, depth = tuple(screen.image_size), int(screen.bit_depth or 8)  # type: ignore[arg-type]
    jobs: list[tuple[str, int, int, Path | None]] = []
    index_problems: list[str] = []
    for wid in screen.wells_with_images:
        for s in range(1, screen.n_sites + 1):
            for c in range(1, len(screen.channels) + 1):
                try:
                    jobs.append((wid, s, c, screen.image_path(wid, s, c)))
                except (ContractError, KeyError) as err:
                    index_problems.append(str(err))
    if index_problems:
        raise PreflightError(f"{len(index_problems)} image(s) cannot be located: {'; '.join(index_problems[:_EXAMPLES])}")
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(lambda j: _check_one(j[3], shape, depth, full), jobs, chunksize=64))
    problems: dict[str, list[tuple[tuple, str]]] = defaultdict(list)
    for job, res in zip(jobs, results):
        if res is not None:
            problems[res[0]].append((job, res[1]))
    if problems:
        raise PreflightError(_describe_image_problems(screen, jobs, problems, shape, depth, full))
    return len(jobs)


def _describe_image_problems(screen: Screen, jobs: list, problems: dict, shape: tuple, depth: int, full: bool) -> str:
    n_bad = sum(len(v) for v in problems.values())
    parts = []
    other_depth = [k for k in problems if k.endswith("-bit") and k != f"{depth}-bit"]
    if other_depth:
        n_other = sum(len(problems[k]) for k in other_depth)
        mixed = n_other < len(jobs) and set(other_depth) <= {"8-bit", "16-bit"}
        label = "mixed 8- and 16-bit images" if mixed else "images with another bit depth"
        ex = ", ".join(str(j[3]) for k in other_depth for j, _ in problems[k][:_EXAMPLES])
        parts.append(f"{label}: {n_other} of {len(jobs)} images are {'/'.join(other_depth)} but screen.json says "
                     f"bit_depth {depth} (e.g. {ex})")
        for k in other_depth:
            problems.pop(k)
    missing = problems.get("missing", [])
    if missing:
        by_channel = defaultdict(int)
        by_plate = defaultdict(int)
        plate_of = dict(zip(screen.wells["well_id"], screen.wells["plate"]))
        for (wid, _s, c, _p), _ in missing:
            by_channel[c] += 1
            by_plate[plate_of.get(wid)] += 1
        total_per_channel = len(jobs) // max(1, len(screen.channels))
        for c, n in sorted(by_channel.items()):
            if n == total_per_channel:
                parts.append(f"channel {screen.channels[c - 1]!r} (w{c}) is missing: none of its {n} images exist "
                             f"(e.g. {_first(missing, lambda j, c=c: j[2] == c)})")
        wells_per_plate = screen.wells[screen.wells["well_id"].isin(set(screen.wells_with_images))].groupby("plate").size()
        per_image = screen.n_sites * len(screen.channels)
        for plate, n in sorted(by_plate.items(), key=lambda kv: str(kv[0])):
            if plate in wells_per_plate and n == wells_per_plate[plate] * per_image and len(by_channel) > 0:
                parts.append(f"plate {plate!r} has no images at all (an empty plate folder? e.g. "
                             f"{_first(missing, lambda j, p=plate: plate_of.get(j[0]) == p)})")
    for kind, items in problems.items():
        ex = "; ".join(f"{j[3]}" + (f" ({detail})" if detail else "") for j, detail in items[:_EXAMPLES])
        what = {"missing": "missing", "zero-byte": "zero bytes long", "corrupt": "corrupt or truncated",
                "wrong size": f"not {shape[0]}x{shape[1]} as screen.json says", "unreadable": "unreadable"}.get(kind, kind)
        parts.append(f"{len(items)} image(s) {what}: {ex}" + (" ..." if len(items) > _EXAMPLES else ""))
    mode = "decoded" if full else "header-checked"
    return f"{screen.root}: {n_bad} of {len(jobs)} images ({mode}) are not usable: " + " | ".join(parts)


def _first(items: list, pred) -> str:
    for job, _ in items:
        if pred(job):
            return str(job[3])
    return "?"


def _lines(index: Iterable[int]) -> str:
    """File lines of wells-table rows (header = line 1), a few shown."""
    idx = [int(i) + 2 for i in index]
    return ", ".join(map(str, idx[:5])) + (f" (+{len(idx) - 5} more)" if len(idx) > 5 else "")
