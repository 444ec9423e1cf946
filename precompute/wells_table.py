"""The wells table of a screen folder (``metadata.csv`` or Parquet) in RxRx3's columns, and the
conversion between those columns and the data contract's, both ways.

RxRx3 names ``experiment_name, plate (a number), address, treatment, concentration`` what the
contract calls ``batch, plate, well, compound, concentration_um``; a screen folder keeps RxRx3's
names on disk so the same reader opens a real RxRx3 folder (see :mod:`precompute.screen`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from precompute.contract import ContractError, validate_wells

# RxRx3 column -> contract column.
_RXRX_TO_CONTRACT = {"experiment_name": "batch", "address": "well", "treatment": "compound", "concentration": "concentration_um"}



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


def _utf8_error_line(path: Path) -> str | None:
    """'line N is not UTF-8 ...' for a text file that does not decode, else None."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        if b"\x00" in data[:4096]:
            return "is not a CSV text file (binary content)"
        return f"line {line} is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); save the file as UTF-8"
    return None


def read_wells_table(path: Path, *, plate_format: int | None = None) -> pd.DataFrame:
    """Read a wells table (CSV or Parquet; RxRx3 or contract columns) and validate it."""
    if not path.exists():
        raise ContractError(f"{path}: wells table missing")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ContractError(f"{path}: a wells table must be a .csv or .parquet file")
    if path.suffix.lower() == ".csv":
        problem = _utf8_error_line(path)
        if problem:
            raise ContractError(f"{path}: {problem}")
    try:
        if path.suffix.lower() == ".parquet":
            meta = pd.read_parquet(path)
        else:
            meta = pd.read_csv(path, low_memory=False)
    except UnicodeDecodeError as err:
        raise ContractError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except Exception as err:
        raise ContractError(f"{path}: cannot be read as {'Parquet' if path.suffix.lower() == '.parquet' else 'CSV'} ({err})") from None
    if "experiment_name" in meta.columns and "address" in meta.columns:
        meta = rxrx_to_contract(meta)
    return validate_wells(meta, source=str(path), plate_format=plate_format)
