"""Well-level profiles (pycytominer / JUMP / LINCS CSV, CSV.gz or Parquet) -> a Phenomix screen.

A profile table has one row per well: ``Metadata_*`` columns and feature columns at any
processing level (raw, normalised, feature-selected). :func:`read_profiles` maps the metadata onto
the contract (:mod:`precompute.readers.mapping`) and checks the features; :func:`write_profile_screen`
writes a screen folder whose ``well_features`` array enters the pipeline as a precomputed
embedding (``--embedder features``), so alignment, aggregation, similarity, UMAP and benchmarks
run on the profiles.

Features: every column not starting with ``Metadata_`` (unless the mapping lists them), except
pandas index leftovers (``Unnamed: 0``) and CytoTable's ``Image_Metadata_*``, which are reported.
A non-numeric value or an infinity is an error naming column, line and value. NaN: by default
columns that are entirely NaN are dropped (reported); any other NaN is an error naming column and
line (``nan_policy='drop_columns_with_nan'`` drops those columns instead, also reported).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.contract import CHANNELS_5
from precompute.readers.common import ReaderError, read_table
from precompute.readers.mapping import MappingReport, ProfileMapping, map_metadata


@dataclass
class Profiles:
    """Wells (contract table, one row per kept well), features (n_wells, d) float32, their names."""

    wells: pd.DataFrame
    features: np.ndarray
    feature_names: list[str]
    report: MappingReport
    reports: tuple[MappingReport, ...] = ()

    def all_reports(self) -> list[MappingReport]:
        return list(self.reports) or [self.report]


def _feature_columns(df: pd.DataFrame, cfg: ProfileMapping, path: str, report: MappingReport) -> list[str]:
    if cfg.feature_columns is not None:
        missing = [c for c in cfg.feature_columns if c not in df.columns]
        if missing:
            raise ReaderError(f"{path}: mapping config lists feature column(s) {missing[:5]} that the file lacks")
        return list(cfg.feature_columns)
    skipped = [c for c in df.columns if str(c).startswith(("Unnamed:", "Image_Metadata"))]
    if skipped:
        report.note(f"not features (index leftovers / image metadata): {skipped[:5]}")
    cols = [c for c in df.columns if not str(c).startswith("Metadata_") and c not in skipped]
    if not cols:
        raise ReaderError(f"{path}: no feature columns (every column starts with 'Metadata_')")
    return cols


def extract_features(df: pd.DataFrame, cols: list[str], cfg: ProfileMapping, path: str,
                     report: MappingReport) -> tuple[np.ndarray, list[str]]:
    """Numeric (n_rows, d) float32 matrix of ``cols`` with the NaN policy applied (see module doc)."""
    block = df[cols]
    numeric = block.apply(pd.to_numeric, errors="coerce")
    not_num = numeric.isna() & block.notna()
    if not_num.to_numpy().any():
        r, c = (int(x[0]) for x in np.nonzero(not_num.to_numpy()))
        raise ReaderError(f"{path}, line {r + 2}: feature column {cols[c]!r} holds {block.iat[r, c]!r}, not a number "
                          "(if it is metadata, prefix it with 'Metadata_' or list feature_columns in the mapping)")
    x = numeric.to_numpy(dtype=np.float64)
    inf = np.isinf(x)
    if inf.any():
        r, c = (int(v[0]) for v in np.nonzero(inf))
        raise ReaderError(f"{path}, line {r + 2}: feature column {cols[c]!r} is {x[r, c]} (infinite)")
    nan = np.isnan(x)
    keep = np.ones(len(cols), dtype=bool)
    if cfg.nan_policy != "error":
        all_nan = nan.all(axis=0)
        if all_nan.any():
            keep &= ~all_nan
            report.note(f"dropped {int(all_nan.sum())} all-NaN feature column(s): {[cols[i] for i in np.flatnonzero(all_nan)][:5]}")
    if cfg.nan_policy == "drop_columns_with_nan":
        some = nan.any(axis=0) & keep
        if some.any():
            keep &= ~some
            report.note(f"dropped {int(some.sum())} feature column(s) with NaN values (nan_policy): "
                        f"{[cols[i] for i in np.flatnonzero(some)][:5]}")
    rest = nan[:, keep]
    if rest.any():
        r, c = (int(v[0]) for v in np.nonzero(rest))
        name = [cols[i] for i in np.flatnonzero(keep)][c]
        raise ReaderError(f"{path}, line {r + 2}: feature column {name!r} is NaN ({int(rest.sum())} NaN value(s) in "
                          f"{int(rest.any(axis=0).sum())} column(s)); impute them or set nan_policy='drop_columns_with_nan'")
    if not keep.any():
        raise ReaderError(f"{path}: no feature column left after dropping NaN columns")
    names = [cols[i] for i in np.flatnonzero(keep)]
    report.counts["features"] = len(names)
    return x[:, keep].astype(np.float32), names


def read_profiles(path: str | os.PathLike, mapping: None | dict | str | os.PathLike | ProfileMapping = None,
                  *, table: pd.DataFrame | None = None) -> Profiles:
    """Read one profile table into contract wells + float32 features.

    Args:
        path: CSV, CSV.gz, TSV or Parquet with ``Metadata_*`` and feature columns.
        mapping: overrides (:class:`ProfileMapping`, a dict, a JSON string or file).
        table: an already loaded table (``path`` then only names it in messages).

    Returns:
        Profiles: wells (one row per kept well, in file order), features (n_wells, d) float32,
        feature_names and the MappingReport (also logged).

    Raises:
        ReaderError naming file, line and value for anything the contract cannot take.
    """
    cfg = ProfileMapping.from_any(mapping)
    src = str(path)
    df = read_table(path) if table is None else table.reset_index(drop=True)
    wells, keep, report = map_metadata(df, cfg, src)
    cols = _feature_columns(df, cfg, src, report)
    feats, names = extract_features(df, cols, cfg, src, report)
    report.log()
    return Profiles(wells=wells, features=feats[keep], feature_names=names, report=report)


def combine_profiles(parts: Sequence[Profiles], *, join: str = "intersection") -> Profiles:
    """Stack several plates/files into one feature matrix.

    ``join='intersection'`` keeps the features every part has, in the first part's order (a column
    then means the same measurement in every row); ``'same'`` requires identical feature lists.
    Well ids and plates must not repeat across parts.
    """
    if not parts:
        raise ReaderError("combine_profiles: no profiles given")
    if join not in ("intersection", "same"):
        raise ReaderError(f"combine_profiles: join must be 'intersection' or 'same', got {join!r}")
    first = parts[0].feature_names
    common = set(first).intersection(*(p.feature_names for p in parts[1:]))
    names = [f for f in first if f in common]
    for p in parts:
        if join == "same" and p.feature_names != first:
            raise ReaderError(f"{p.report.source}: feature columns differ from {parts[0].report.source} (join='same')")
        dropped = len(p.feature_names) - len(names)
        if dropped:
            p.report.note(f"combine: {dropped} of {len(p.feature_names)} feature(s) not shared by every part were dropped; "
                          f"{len(names)} common features kept")
    if not names:
        raise ReaderError("combine_profiles: the parts share no feature column")
    wells = pd.concat([p.wells for p in parts], ignore_index=True)
    dup = wells["well_id"].duplicated()
    if dup.any():
        raise ReaderError(f"combine_profiles: well_id {wells.loc[dup.idxmax(), 'well_id']!r} appears in two parts")
    feats = np.concatenate([p.features[:, [p.feature_names.index(f) for f in names]] for p in parts]).astype(np.float32)
    reports = tuple(r for p in parts for r in p.all_reports())
    return Profiles(wells=wells, features=feats, feature_names=names, report=reports[0], reports=reports)


def write_profile_screen(
    profiles: Profiles,
    out_dir: str | os.PathLike,
    *,
    name: str,
    channels: Sequence[str] = CHANNELS_5,
    ground_truth: dict[str, pd.DataFrame] | None = None,
    image_files: pd.DataFrame | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a screen folder whose ``well_features`` (float32, wells order) is the embedding.

    The mapping report(s) and the feature names are stored in ``screen.json`` (keys ``import``
    and ``feature_names``), so the dashboard can show where every column came from. Written
    atomically: an error leaves nothing behind.
    """
    from precompute.screen import write_rxrx_screen

    wells = profiles.wells.copy()
    for c in wells.columns:  # metadata.csv round trip: keep mixed-type extras as text
        if wells[c].dtype == object and c not in ("gene", "guide", "compound"):
            wells[c] = wells[c].where(wells[c].isna(), wells[c].astype(str))
    desc_extra = {
        "import": {"kind": "profiles", "reports": [r.to_dict() for r in profiles.all_reports()]},
        "feature_names": list(profiles.feature_names),
        **(extra or {}),
    }
    return write_rxrx_screen(out_dir, wells, None, channels=channels, n_sites=1, name=name,
                             ground_truth=ground_truth, extra=desc_extra, image_files=image_files,
                             arrays={"well_features": np.ascontiguousarray(profiles.features, dtype=np.float32)})


def profiles_to_screen(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, name: str | None = None,
                       mapping: None | dict | str | os.PathLike | ProfileMapping = None,
                       join: str = "intersection") -> tuple[Path, Profiles]:
    """Read one or more profile files (same mapping) and write them as one screen."""
    parts = [read_profiles(p, mapping) for p in paths]
    prof = parts[0] if len(parts) == 1 else combine_profiles(parts, join=join)
    root = write_profile_screen(prof, out_dir, name=name or Path(out_dir).name)
    return root, prof
