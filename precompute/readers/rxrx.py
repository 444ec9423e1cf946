"""RxRx3-core layout -> a Phenomix screen: the metadata CSV with either image folders or a
published embedding table (e.g. ``OpenPhenom_rxrx3_core_embeddings.parquet``).

RxRx vocabulary (``metadata_rxrx3_core.csv``; checked against EFAAR's RxRx3-core notebook):
``perturbation_type`` is ``CRISPR`` or ``COMPOUND``; CRISPR rows carry the gene in ``gene`` and
the guide in ``treatment``; compound rows the compound name in ``treatment`` and the dose (µM) in
``concentration``. Controls are named in ``gene``/``treatment``: ``EMPTY_control`` is the
negative control EFAAR aligns on (``control_key``); ``CRISPR_control`` (compound experiments) is
left out of EFAAR's analysis and is not its alignment reference, so by default it becomes a
``positive_control`` (the contract's only other control class: kept, never used as reference).
Both maps are printed in the report and overridable (``type_map``, ``control_map``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.contract import CHANNELS_6, PERTURBATION_TYPES
from precompute.readers.common import ReaderError, read_table, value_summary
from precompute.readers.mapping import MappingReport

RXRX_REQUIRED = ("well_id", "experiment_name", "plate", "address", "perturbation_type")
DEFAULT_TYPE_MAP = {"CRISPR": "crispr", "COMPOUND": "compound", "ORF": "orf"}
DEFAULT_CONTROL_MAP = {"EMPTY_control": "negative_control", "CRISPR_control": "positive_control"}
_FEATURE_RE = re.compile(r"^(?:feature_?)?(\d+)$")


@dataclass
class RxRxMapping:
    """RxRx perturbation_type values -> contract types, and control names -> control types."""

    type_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_MAP))
    control_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CONTROL_MAP))

    @classmethod
    def from_any(cls, cfg: None | dict | RxRxMapping) -> RxRxMapping:
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        unknown = sorted(set(cfg) - {f.name for f in fields(cls)})
        if unknown:
            raise ReaderError(f"rxrx mapping: unknown key(s) {unknown}; allowed: type_map, control_map")
        out = cls(**{**cls().__dict__, **cfg})
        for k, v in {**out.type_map, **out.control_map}.items():
            if v not in PERTURBATION_TYPES:
                raise ReaderError(f"rxrx mapping: {k!r} -> {v!r} is not one of {list(PERTURBATION_TYPES)}")
        return out


def read_rxrx_metadata(path: str | os.PathLike, mapping: None | dict | RxRxMapping = None) -> tuple[pd.DataFrame, MappingReport]:
    """RxRx3(-core) metadata CSV -> (contract wells table, report).

    Plates become ``{experiment}_P{plate}`` (RxRx numbers plates within an experiment); RxRx's
    own columns are kept as extras (``SMILES``, ``cell_type``, ``treatment``, ``plate_number``).
    """
    cfg = RxRxMapping.from_any(mapping)
    src = str(path)
    meta = read_table(path)
    missing = [c for c in RXRX_REQUIRED if c not in meta.columns]
    if missing:
        raise ReaderError(f"{src}: missing RxRx column(s) {missing}; present: {list(meta.columns)[:20]}")
    report = MappingReport(source=src)
    txt = {c: meta[c].astype("string").str.strip().fillna("") if c in meta.columns else pd.Series([""] * len(meta), dtype="string")
           for c in ("gene", "treatment", "perturbation_type")}
    ctrl_name = txt["gene"].where(txt["gene"].isin(list(cfg.control_map)), txt["treatment"].where(txt["treatment"].isin(list(cfg.control_map)), ""))
    is_ctrl = (ctrl_name != "").to_numpy()
    kind = txt["perturbation_type"]
    unknown = ~is_ctrl & ~kind.isin(list(cfg.type_map)).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise ReaderError(f"{src}, line {i + 2}: perturbation_type {meta['perturbation_type'].iloc[i]!r} is not in the type map "
                          f"{cfg.type_map}; values in the file:\n{value_summary(meta, ['perturbation_type'])}")
    ptype = np.where(is_ctrl, ctrl_name.map(cfg.control_map).fillna("").to_numpy(dtype=object),
                     kind.map(cfg.type_map).fillna("").to_numpy(dtype=object))
    if not (ptype == "negative_control").any():
        raise ReaderError(f"{src}: no negative-control wells (control map {cfg.control_map}); candidate columns:\n"
                          f"{value_summary(meta, [c for c in ('gene', 'treatment', 'perturbation_type') if c in meta.columns])}")
    gene, treat = txt["gene"].to_numpy(dtype=object), txt["treatment"].to_numpy(dtype=object)
    genetic = np.isin(ptype, ["crispr", "orf"])
    cmpd = ptype == "compound"
    for mask, col in ((genetic, gene), (cmpd, treat)):
        empty = mask & (col == "")
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise ReaderError(f"{src}, line {i + 2}: {ptype[i]} well without a {'gene' if mask is genetic else 'treatment'}")
    out = meta.copy()
    out["batch"] = meta["experiment_name"].astype(str)
    out["plate_number"] = meta["plate"]
    out["plate"] = meta["experiment_name"].astype(str) + "_P" + meta["plate"].astype(str)
    out["well"] = meta["address"].astype(str)
    out["perturbation_type"] = ptype
    out["perturbation"] = np.where(is_ctrl, ctrl_name.to_numpy(dtype=object), np.where(genetic, gene, treat))
    out["gene"] = np.where(genetic, gene, None)
    out["guide"] = np.where(ptype == "crispr", treat, None)
    out["compound"] = np.where(cmpd, treat, None)
    out["concentration_um"] = pd.to_numeric(meta.get("concentration"), errors="coerce") if "concentration" in meta else np.nan
    out["rxrx_perturbation_type"] = meta["perturbation_type"]
    if "SMILES" in out.columns:  # the metadata writer reads 'smiles'
        out = out.rename(columns={"SMILES": "smiles"})
    out = out.drop(columns=["experiment_name", "address", "concentration"], errors="ignore")
    report.add("batch", "experiment_name")
    report.add("plate", "experiment_name + '_P' + plate")
    report.add("well", "address")
    report.add("perturbation_type", f"perturbation_type via {cfg.type_map}; controls via {cfg.control_map} in gene/treatment")
    report.add("perturbation", "gene (crispr/orf), treatment (compound), control name (controls)")
    report.add("guide", "treatment (crispr)")
    report.add("concentration_um", "concentration (RxRx doses are in µM)")
    report.counts = {"rows": len(out), **{t: int((ptype == t).sum()) for t in pd.unique(ptype)}}
    report.log()
    return out, report


def read_embedding_table(path: str | os.PathLike, *, id_column: str = "well_id") -> tuple[np.ndarray, np.ndarray, list[str], MappingReport]:
    """A published per-well embedding table -> (well ids, (n, d) float32, feature names, report).

    Feature columns are the numbered ones (``feature_0``, ``feature_1``, ... or ``0``, ``1``, ...),
    ordered by number; other columns are reported and ignored. Several rows for one well id (e.g.
    one per site or tile) are averaged, as EFAAR's notebook does (reported).
    """
    src = str(path)
    df = read_table(path)
    report = MappingReport(source=src)
    if id_column not in df.columns:
        raise ReaderError(f"{src}: no {id_column!r} column; present: {list(df.columns)[:12]}")
    numbered = sorted(((int(m.group(1)), c) for c in df.columns if (m := _FEATURE_RE.match(str(c)))), key=lambda t: t[0])
    if not numbered:
        raise ReaderError(f"{src}: no numbered feature columns (feature_0, feature_1, ... or 0, 1, ...)")
    cols = [c for _, c in numbered]
    other = [c for c in df.columns if c not in cols and c != id_column]
    if other:
        report.note(f"ignored non-feature column(s): {other[:8]}")
    x = df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise ReaderError(f"{src}, line {r + 2}: feature {cols[c]!r} of well {df[id_column].iloc[r]!r} is "
                          f"{df[cols[c]].iloc[r]!r} (NaN, infinite or not a number)")
    ids = df[id_column].astype(str).to_numpy()
    uniq, inv = np.unique(ids, return_inverse=True)
    if len(uniq) < len(ids):
        sums = np.zeros((len(uniq), x.shape[1]))
        np.add.at(sums, inv, x)
        x = sums / np.bincount(inv)[:, None]
        report.note(f"{len(ids)} rows for {len(uniq)} wells: rows of one well averaged")
        ids = uniq
    report.add("well_id", id_column)
    report.add("features", f"{len(cols)} numbered columns {cols[0]} ... {cols[-1]}")
    return ids, x.astype(np.float32), [str(c) for c in cols], report


def attach_embeddings(wells: pd.DataFrame, ids: np.ndarray, feats: np.ndarray, *, on_missing: str = "error",
                      source: str = "embeddings", report: MappingReport | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of ``feats`` in wells order. Wells without an embedding: 'error' (default) or 'drop' (reported)."""
    pos = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
    where = pos.reindex(wells["well_id"].astype(str)).to_numpy()
    missing = np.isnan(where)
    if missing.any():
        first = wells["well_id"].iloc[np.flatnonzero(missing)[:5]].tolist()
        if on_missing != "drop":
            raise ReaderError(f"{source}: {int(missing.sum())} of {len(wells)} wells have no embedding (first: {first}); "
                              "pass on_missing='drop' to leave them out")
        if report is not None:
            report.note(f"{int(missing.sum())} well(s) without an embedding left out (first: {first})")
    extra = len(ids) - int((~missing).sum())
    if extra and report is not None:
        report.note(f"{extra} embedding row(s) for wells not in the metadata ignored")
    keep = ~missing
    return wells[keep].reset_index(drop=True), feats[where[keep].astype(int)]


def rxrx_embedding_screen(metadata: str | os.PathLike, embeddings: str | os.PathLike, out_dir: str | os.PathLike, *,
                          name: str | None = None, mapping: None | dict | RxRxMapping = None,
                          on_missing: str = "error") -> Path:
    """RxRx metadata + embedding table -> an embeddings-only screen (``well_features``)."""
    from precompute.screen import write_rxrx_screen

    wells, rep = read_rxrx_metadata(metadata, mapping)
    ids, feats, names, erep = read_embedding_table(embeddings)
    wells, feats = attach_embeddings(wells, ids, feats, on_missing=on_missing, source=str(embeddings), report=erep)
    erep.log()
    return write_rxrx_screen(out_dir, wells, None, channels=CHANNELS_6, n_sites=1, name=name or Path(out_dir).name,
                             arrays={"well_features": feats},
                             extra={"import": {"kind": "rxrx-embeddings", "reports": [rep.to_dict(), erep.to_dict()]},
                                    "feature_names": names})


def rxrx_image_files(wells: pd.DataFrame, images_root: str | os.PathLike, *, n_sites: int,
                     channels: tuple[str, ...] = CHANNELS_6,
                     pattern: str = "{experiment}/Plate{plate}/{address}_s{site}_w{channel}.png") -> pd.DataFrame:
    """Image-index rows for an RxRx image folder (``pattern`` fields: experiment, plate (RxRx number),
    address, site, channel (1-based)). Wells whose first image is absent are left without images."""
    root = Path(images_root)
    rows = []
    for wid, exp, plate, addr in zip(wells["well_id"], wells["batch"], wells["plate_number"], wells["well"], strict=True):
        first = root / pattern.format(experiment=exp, plate=plate, address=addr, site=1, channel=1)
        if not first.exists():
            continue
        for s in range(1, n_sites + 1):
            for c, ch in enumerate(channels, start=1):
                p = root / pattern.format(experiment=exp, plate=plate, address=addr, site=s, channel=c)
                rows.append((f"{wid}/s{s}", wid, s, ch, str(p)))
    return pd.DataFrame(rows, columns=["field_id", "well_id", "site", "channel", "path"])


def rxrx_image_screen(metadata: str | os.PathLike, images_root: str | os.PathLike, out_dir: str | os.PathLike, *,
                      n_sites: int = 1, channels: tuple[str, ...] = CHANNELS_6, name: str | None = None,
                      mapping: None | dict | RxRxMapping = None, pattern: str | None = None) -> Path:
    """RxRx metadata + its image folder -> a screen whose image index references the images in place."""
    from precompute.screen import write_rxrx_screen

    wells, rep = read_rxrx_metadata(metadata, mapping)
    files = rxrx_image_files(wells, images_root, n_sites=n_sites, channels=channels,
                             **({"pattern": pattern} if pattern else {}))
    if files.empty:
        raise ReaderError(f"{images_root}: no images found for any well (pattern {pattern or 'RxRx3 PNG'})")
    rep.note(f"images for {files['well_id'].nunique()} of {len(wells)} wells")
    return write_rxrx_screen(out_dir, wells, None, channels=channels, n_sites=n_sites, name=name or Path(out_dir).name,
                             image_files=files, link_image_files=True,
                             extra={"import": {"kind": "rxrx-images", "reports": [rep.to_dict()]}})
