"""Shared helpers of the readers: one error type, robust table reading, where shared data lives.

Every reader error is a :class:`ReaderError` (a ContractError, hence a ValueError) whose message
names the file, the line (header = line 1) and the offending value, so the CLI prints it as is.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from pathlib import Path

import pandas as pd

from precompute.contract import ReaderError

log = logging.getLogger("precompute.readers")

_PARQUET = (".parquet", ".pq")
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".gz")


def shared_data_dir() -> Path:
    """The shared real-data folder: $PHENOMIX_SHARED/data, default <repo>/../shared/data."""
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("PHENOMIX_SHARED", repo.parent / "shared")) / "data"


def _open_text_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ReaderError(f"{path}: corrupt or truncated gzip file ({err})") from None
    return raw


def _first_bad_utf8_line(raw: bytes) -> tuple[int, bytes]:
    """1-based line number and the undecodable bytes of the first non-UTF-8 line."""
    for n, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            return n, line[max(0, err.start - 10): err.end + 10]
    return 0, b""


def read_table(path: str | os.PathLike, *, sep: str | None = None, header: int | None = 0,
               names: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV / CSV.gz / TSV / Parquet table with errors that name the file and line.

    The separator is a tab for ``.tsv``/``.txt`` names or when the header line has more tabs than
    commas, else a comma. Text must be UTF-8: other bytes are an error naming the line (they
    usually mean a spreadsheet re-saved the file in a legacy encoding, which silently corrupts
    gene and compound names).
    """
    path = Path(path)
    if not path.exists():
        raise ReaderError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ReaderError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in _PARQUET:
        try:
            return pd.read_parquet(path)
        except Exception as err:
            raise ReaderError(f"{path}: cannot be read as Parquet ({err})") from None
    raw = _open_text_bytes(path)
    if raw[:4] == b"PAR1":
        raise ReaderError(f"{path}: this is a Parquet file; name it *.parquet")
    if b"\x00" in raw[:4096]:
        raise ReaderError(f"{path}: binary content, not a CSV/TSV text table")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, context = _first_bad_utf8_line(raw)
        raise ReaderError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x} near {context!r}); "
            "re-export the file as UTF-8"
        ) from None
    if sep is None:
        first = raw.split(b"\n", 1)[0]
        lower = path.name.lower()
        sep = "\t" if (lower.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) or first.count(b"\t") > first.count(b",")) else ","
    try:
        df = pd.read_csv(io.BytesIO(raw), sep=sep, header=header, names=names, low_memory=False)
    except pd.errors.ParserError as err:
        raise ReaderError(f"{path}: not a well-formed {'TSV' if sep == chr(9) else 'CSV'} table ({err})") from None
    except pd.errors.EmptyDataError:
        raise ReaderError(f"{path}: no columns to read (empty table)") from None
    if header is not None and len(df.columns) < 2:
        raise ReaderError(
            f"{path}: only one column ({str(df.columns[0])[:60]!r}) was found with separator {sep!r}; "
            "this does not look like a CSV/TSV table"
        )
    return df


def value_summary(df: pd.DataFrame, columns: list[str], max_values: int = 8) -> str:
    """'col: a (n), b (m), ...' lines for error messages that list candidate columns."""
    lines = []
    for c in columns:
        counts = df[c].astype("string").fillna("<NA>").value_counts()
        shown = ", ".join(f"{v!r} ({n})" for v, n in counts.head(max_values).items())
        more = f", ... ({len(counts) - max_values} more)" if len(counts) > max_values else ""
        lines.append(f"  {c}: {shown}{more}")
    return "\n".join(lines)
