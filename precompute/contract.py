"""The screen data contract: the one shape every stage of Phenomix speaks.

A screen is (a) a *wells table*, one row per well, (b) images per well as
``sites x channels x H x W`` arrays with their channel names, and (c) annotations
(gene-gene relationships, compound -> target gene). Readers of any source format
(RxRx3 folders, JUMP profiles, AnnData) produce this; everything downstream consumes it.
See docs/data-contract.md for the prose version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

PERTURBATION_TYPES: tuple[str, ...] = (
    "negative_control",
    "positive_control",
    "crispr",
    "orf",
    "compound",
)
GENETIC_TYPES: tuple[str, ...] = ("crispr", "orf")
CONTROL_TYPES: tuple[str, ...] = ("negative_control", "positive_control")

# Cell Painting stains in the order RxRx3 images them (w1..w6); 5-channel screens drop PM.
CHANNELS_6: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito", "PM")
CHANNELS_5: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito")
KNOWN_CHANNELS: frozenset[str] = frozenset(CHANNELS_6) | {"Brightfield"}

WELL_COLUMNS: tuple[str, ...] = (
    "well_id",
    "batch",
    "plate",
    "well",
    "row",
    "col",
    "perturbation_type",
    "perturbation",
    "gene",
    "guide",
    "compound",
    "concentration_um",
)
RELATIONSHIP_COLUMNS: tuple[str, ...] = ("entity1", "entity2", "source")
COMPOUND_TARGET_COLUMNS: tuple[str, ...] = ("compound", "gene", "source")

PLATE_FORMATS: dict[int, tuple[int, int]] = {96: (8, 12), 384: (16, 24), 1536: (32, 48)}

_WELL_RE = re.compile(r"^([A-Z]{1,2})(\d{1,2})$")


class ContractError(ValueError):
    """Input that breaks the screen data contract; the message names file, row and value."""


class ReaderError(ContractError):
    """A source file that cannot be read into the contract; the message names file, line, value.

    Defined here, below both the screen format and the readers, because reading an image file
    (:mod:`precompute.image_io`) raises it for the screen loader and the readers alike."""


def row_letters(row: int) -> str:
    """1-based row index -> plate row letters (1 -> 'A', 27 -> 'AA', as on 1536-well plates)."""
    if row < 1:
        raise ValueError(f"row index must be >= 1, got {row}")
    if row <= 26:
        return chr(ord("A") + row - 1)
    return "A" + chr(ord("A") + row - 27)


def row_index(letters: str) -> int:
    """Plate row letters -> 1-based index ('A' -> 1, 'AF' -> 32)."""
    if len(letters) == 1:
        return ord(letters) - ord("A") + 1
    if len(letters) == 2 and letters[0] == "A":
        return 26 + ord(letters[1]) - ord("A") + 1
    raise ValueError(f"not a plate row: {letters!r}")


def well_name(row: int, col: int) -> str:
    """(1-based row, 1-based column) -> zero-padded well name, e.g. (2, 7) -> 'B07'."""
    return f"{row_letters(row)}{col:02d}"


def parse_well(name: str, plate_format: int = 384) -> tuple[int, int]:
    """Parse a well name ('B07', 'B7', 'AF48') into 1-based (row, col), checked against the plate.

    Lower-case names ('b07') are rejected rather than guessed: in a mixed table they usually mean
    the column was typed by hand, and a silent fix would hide it.
    """
    if plate_format not in PLATE_FORMATS:
        raise ValueError(f"unknown plate format {plate_format}; known: {sorted(PLATE_FORMATS)}")
    m = _WELL_RE.match(str(name))
    if m is None:
        raise ValueError(f"well name {name!r} is not of the form 'B07' (row letters, column number)")
    n_rows, n_cols = PLATE_FORMATS[plate_format]
    row, col = row_index(m.group(1)), int(m.group(2))
    if not (1 <= row <= n_rows and 1 <= col <= n_cols):
        raise ValueError(
            f"well {name!r} is outside a {plate_format}-well plate "
            f"(rows A-{row_letters(n_rows)}, columns 1-{n_cols})"
        )
    return row, col


def infer_plate_format(wells: Iterable[str]) -> int:
    """Smallest plate format that holds every well name given."""
    max_row = max_col = 0
    for name in wells:
        m = _WELL_RE.match(str(name))
        if m is None:
            continue
        max_row = max(max_row, row_index(m.group(1)))
        max_col = max(max_col, int(m.group(2)))
    for fmt, (n_rows, n_cols) in sorted(PLATE_FORMATS.items()):
        if max_row <= n_rows and max_col <= n_cols:
            return fmt
    return 1536


def _fail(source: str, message: str, rows: Iterable[int] | None = None) -> ContractError:
    where = source
    if rows is not None:
        rows = list(rows)
        # +2: one for the header line, one because people count file lines from 1.
        shown = ", ".join(str(r + 2) for r in rows[:5])
        more = f" (+{len(rows) - 5} more)" if len(rows) > 5 else ""
        where = f"{source}, line {shown}{more}"
    return ContractError(f"{where}: {message}")


def validate_wells(
    wells: pd.DataFrame, *, source: str = "wells table", plate_format: int | None = None
) -> pd.DataFrame:
    """Check a wells table against the contract and return a normalised copy.

    Normalisation: ``row``/``col`` are (re)derived from ``well`` and must agree when given;
    identifiers become strings; ``concentration_um`` becomes float. Extra columns are carried
    through untouched. Raises ContractError naming the source, the file line and the value.
    """
    missing = [c for c in WELL_COLUMNS if c not in wells.columns and c not in ("row", "col")]
    if missing:
        raise _fail(source, f"missing column(s) {missing}; present: {list(wells.columns)}")
    if len(wells) == 0:
        raise _fail(source, "no wells")
    out = wells.copy().reset_index(drop=True)
    for c in ("well_id", "batch", "plate", "well", "perturbation_type", "perturbation"):
        blank = out[c].isna() | (out[c].astype(str).str.strip() == "")
        if blank.any():
            raise _fail(source, f"empty {c!r}", np.flatnonzero(blank.to_numpy()))
        out[c] = out[c].astype(str)
    for c in ("gene", "guide", "compound"):
        out[c] = out[c].astype("string").astype(object).where(out[c].notna(), None)

    bad_type = ~out["perturbation_type"].isin(PERTURBATION_TYPES)
    if bad_type.any():
        i = int(np.flatnonzero(bad_type.to_numpy())[0])
        raise _fail(
            source,
            f"perturbation_type {out.at[i, 'perturbation_type']!r} is not one of {list(PERTURBATION_TYPES)}",
            np.flatnonzero(bad_type.to_numpy()),
        )

    fmt = plate_format or infer_plate_format(out["well"])
    rows, cols = np.empty(len(out), dtype=np.int16), np.empty(len(out), dtype=np.int16)
    for i, name in enumerate(out["well"].to_numpy()):
        try:
            rows[i], cols[i] = parse_well(name, fmt)
        except ValueError as err:
            raise _fail(source, str(err), [i]) from None
    for c, derived in (("row", rows), ("col", cols)):
        if c in wells.columns:
            given = pd.to_numeric(out[c], errors="coerce").to_numpy()
            disagree = ~np.isclose(given, derived)
            if disagree.any():
                raise _fail(source, f"column {c!r} disagrees with the well name", np.flatnonzero(disagree))
        out[c] = derived

    dup = out.duplicated(["plate", "well"], keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise _fail(
            source,
            f"duplicate well {out.at[i, 'well']!r} on plate {out.at[i, 'plate']!r}",
            np.flatnonzero(dup.to_numpy()),
        )
    dup_id = out["well_id"].duplicated()
    if dup_id.any():
        i = int(np.flatnonzero(dup_id.to_numpy())[0])
        raise _fail(source, f"duplicate well_id {out.at[i, 'well_id']!r}", np.flatnonzero(dup_id.to_numpy()))
    plates_in_batches = out.groupby("plate")["batch"].nunique()
    if (plates_in_batches > 1).any():
        raise _fail(source, f"plate(s) {list(plates_in_batches[plates_in_batches > 1].index)[:5]} span several batches")

    conc = pd.to_numeric(out["concentration_um"], errors="coerce")
    bad_conc = conc.isna() & out["concentration_um"].notna() & (out["concentration_um"].astype(str) != "")
    if bad_conc.any():
        raise _fail(source, "concentration_um is not a number", np.flatnonzero(bad_conc.to_numpy()))
    if (conc < 0).any():
        raise _fail(source, "negative concentration_um", np.flatnonzero((conc < 0).to_numpy()))
    out["concentration_um"] = conc.astype(float)

    genetic = out["perturbation_type"].isin(GENETIC_TYPES).to_numpy()
    no_gene = genetic & out["gene"].isna().to_numpy()
    if no_gene.any():
        raise _fail(source, "crispr/orf well without a 'gene'", np.flatnonzero(no_gene))
    cmpd = (out["perturbation_type"] == "compound").to_numpy()
    no_cmpd = cmpd & out["compound"].isna().to_numpy()
    if no_cmpd.any():
        raise _fail(source, "compound well without a 'compound'", np.flatnonzero(no_cmpd))
    if not (out["perturbation_type"] == "negative_control").any():
        raise _fail(source, "no negative_control wells: alignment and activity need them")
    out.attrs["plate_format"] = fmt
    return out


def validate_channels(channels: Iterable[str], *, source: str = "screen") -> tuple[str, ...]:
    """Channel names must be unique; unknown stains are allowed but must be named."""
    chans = tuple(str(c) for c in channels)
    if not chans:
        raise ContractError(f"{source}: no channels")
    if len(set(chans)) != len(chans):
        raise ContractError(f"{source}: duplicate channel names {chans}")
    return chans


def validate_relationships(pairs: pd.DataFrame, *, source: str = "relationships") -> pd.DataFrame:
    """Gene-gene pairs: entity1, entity2, source; self pairs dropped, symbols kept as given."""
    missing = [c for c in RELATIONSHIP_COLUMNS if c not in pairs.columns]
    if missing:
        raise ContractError(f"{source}: missing column(s) {missing}; present: {list(pairs.columns)}")
    out = pairs[list(RELATIONSHIP_COLUMNS)].dropna().astype(str)
    return out[out["entity1"] != out["entity2"]].reset_index(drop=True)


def validate_compound_targets(pairs: pd.DataFrame, *, source: str = "compound targets") -> pd.DataFrame:
    """Compound -> target gene pairs: compound, gene, source."""
    missing = [c for c in COMPOUND_TARGET_COLUMNS if c not in pairs.columns]
    if missing:
        raise ContractError(f"{source}: missing column(s) {missing}; present: {list(pairs.columns)}")
    return pairs.dropna(subset=["compound", "gene"]).reset_index(drop=True)
