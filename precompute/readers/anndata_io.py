"""AnnData (.h5ad) and table export from an artifact store; .h5ad import into a screen.

Export (read through the run index, never by guessing stage folders):

- wells: X = the primary aligned well embeddings, ``obs`` = the wells table (index well_id),
  ``obsm``: ``X_raw`` (raw embeddings), ``X_<method>`` (every other alignment), ``X_umap`` /
  ``X_umap_raw`` when projected; ``uns['phenomix']`` = store, run, embedder, alignment, stage keys.
- perturbations: X = aggregated embeddings, ``obs`` = the perturbation table, ``X_umap``.
- neighbours / similarity: long tables (CSV or Parquet, by file suffix).
- a subset (a map selection in the dashboard): `build_anndata(..., rows=...)`, the same layout with only
  those observations and ``uns['phenomix']['subset']`` saying which and out of how many.

Import: an .h5ad of well embeddings -> a screen folder: ``obs`` -> wells table (either contract
columns, or pycytominer ``Metadata_*`` columns mapped like a profile table), ``X`` -> well_features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute.readers.common import ReaderError, log

SIMILARITY_KINDS = ("gene_gene", "gene_compound", "compound_compound")


def _run_parts(store_root: str | os.PathLike, run: str, embedder: str | None) -> tuple[Any, dict, str, str]:
    from precompute.artifacts import ArtifactStore

    store = ArtifactStore(store_root, create=False)
    index = store.get_run(run)
    stages = index.get("stages", {})
    emb = embedder or index.get("primary", {}).get("embedder")
    if emb not in stages.get("embed", {}):
        raise ReaderError(f"{store_root}: run {run!r} has no embedder {emb!r}; it has {sorted(stages.get('embed', {}))}")
    align = index.get("primary", {}).get("align") or next(iter(stages.get("align", {}).get(emb, {})), None)
    return store, index, emb, align


def _obs_frame(df: pd.DataFrame, index_col: str) -> pd.DataFrame:
    """h5ad-safe obs: string index; text columns as categoricals of strings (missing stays missing)."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or isinstance(out[c].dtype, pd.StringDtype):
            out[c] = pd.Categorical(out[c].astype("string"))
    out.index = out[index_col].astype(str).to_numpy()
    out.index.name = None
    return out


def export_anndata(store_root: str | os.PathLike, out_path: str | os.PathLike, *, run: str = "default",
                   embedder: str | None = None, level: str = "wells") -> Path:
    """Write one run's embeddings with metadata as .h5ad (see module doc). Returns the path."""
    adata = build_anndata(store_root, run=run, embedder=embedder, level=level)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    adata.write_h5ad(tmp)
    os.replace(tmp, out)
    info = adata.uns["phenomix"]
    log.info("wrote %s: %d x %d (%s, %s/%s)", out, adata.n_obs, adata.n_vars, level, info["embedder"], info["alignment"])
    return out


def anndata_bytes(adata: Any) -> bytes:
    """An AnnData as the bytes of an .h5ad file (h5py writes to a file, so through a temporary one)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="phenomix-h5ad-") as tmp:
        path = Path(tmp) / "subset.h5ad"
        adata.write_h5ad(path)
        return path.read_bytes()


def build_anndata(store_root: str | os.PathLike, *, run: str = "default", embedder: str | None = None,
                  level: str = "wells", rows: np.ndarray | None = None, selection: str | None = None) -> Any:
    """The AnnData `export_anndata` writes, in memory; with ``rows`` (positions in the wells or the
    perturbation table) only those observations, in the given order, read from memory maps so a
    subset of a large store costs its own size. ``selection`` (how the rows were chosen, e.g. an
    encoded map region) is recorded in ``uns['phenomix']`` with the subset's size and the total."""
    import anndata as ad

    store, index, emb, align = _run_parts(store_root, run, embedder)
    stages = index["stages"]
    keys: dict[str, Any] = {"embed": stages["embed"][emb]}
    mmap = rows is not None

    def take(arr: Any) -> np.ndarray:
        return np.asarray(arr if rows is None else arr[rows])

    if level == "wells":
        wells = store.open_stage("ingest", stages["ingest"]).table("wells")
        raw = store.open_stage("embed", keys["embed"]).array("embeddings", mmap=mmap)
        aligns = stages.get("align", {}).get(emb, {})
        x = store.open_stage("align", aligns[align]).array("embeddings", mmap=mmap) if align in aligns else raw
        obsm = {"X_raw": np.asarray(take(raw), dtype=np.float32)}
        for m, k in aligns.items():
            if m != align:
                obsm[f"X_{m}"] = take(store.open_stage("align", k).array("embeddings", mmap=mmap)).astype(np.float32)
        keys["align"] = dict(aligns)
        proj = stages.get("project", {}).get(emb)
        if proj:
            p = store.open_stage("project", proj)
            obsm["X_umap"], obsm["X_umap_raw"] = take(p.array("umap_aligned", mmap=mmap)), take(p.array("umap_raw", mmap=mmap))
            keys["project"] = proj
        n_total = len(wells)
        obs = _obs_frame(wells if rows is None else wells.iloc[rows].reset_index(drop=True), "well_id")
    elif level == "perturbations":
        agg_key = stages.get("aggregate", {}).get(emb)
        if agg_key is None:
            raise ReaderError(f"{store_root}: run {run!r} has no aggregate stage for {emb!r}")
        agg = store.open_stage("aggregate", agg_key)
        perts = agg.table("perturbations")
        n_total = len(perts)
        x = agg.array("embeddings", mmap=mmap)
        obs = _obs_frame(perts if rows is None else perts.iloc[rows].reset_index(drop=True), "pert_id")
        obsm = {}
        proj = stages.get("project", {}).get(emb)
        if proj:
            obsm["X_umap"] = take(store.open_stage("project", proj).array("umap_perturbations", mmap=mmap))
        keys["aggregate"] = agg_key
    else:
        raise ReaderError(f"export level must be 'wells' or 'perturbations', got {level!r}")
    x = take(x)
    var = pd.DataFrame(index=[f"dim_{i}" for i in range(x.shape[1])])
    info = {"store": str(Path(store_root).resolve()), "run": run, "embedder": emb, "alignment": str(align),
            "level": level, "screen": str(index.get("screen", {}).get("name")), "stage_keys": _flat_keys(keys)}
    if rows is not None:
        info["subset"] = {"selection": str(selection or ""), "n_obs": int(len(obs)), "of": int(n_total)}
    return ad.AnnData(X=np.asarray(x, dtype=np.float32), obs=obs, var=var, obsm=obsm, uns={"phenomix": info})


def _flat_keys(keys: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in keys.items():
        if isinstance(v, dict):
            out.update(_flat_keys(v, f"{prefix}{k}:"))  # '/' would nest h5 groups
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def _write_table(df: pd.DataFrame, out_path: str | os.PathLike) -> Path:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    elif out.suffix in (".csv", ".gz"):
        df.to_csv(out, index=False)
    else:
        raise ReaderError(f"{out}: table export needs a .csv, .csv.gz or .parquet name")
    return out


def export_neighbours(store_root: str | os.PathLike, out_path: str | os.PathLike, *, run: str = "default",
                      embedder: str | None = None) -> Path:
    """Nearest and farthest neighbours per perturbation: pert_id, direction (top/bottom), rank (1 = closest),
    neighbour, cosine."""
    store, index, emb, _ = _run_parts(store_root, run, embedder)
    stages = index["stages"]
    rel = stages.get("relate", {}).get(emb)
    if rel is None:
        raise ReaderError(f"{store_root}: run {run!r} has no relate stage for {emb!r}")
    ids = store.open_stage("aggregate", stages["aggregate"][emb]).table("perturbations", ["pert_id"])["pert_id"].to_numpy()
    r = store.open_stage("relate", rel)
    parts = []
    for d in ("top", "bottom"):
        idx, sim = r.array(f"neighbours_{d}_idx", mmap=False), r.array(f"neighbours_{d}_sim", mmap=False)
        n, k = idx.shape
        parts.append(pd.DataFrame({"pert_id": np.repeat(ids, k), "direction": d, "rank": np.tile(np.arange(1, k + 1), n),
                                   "neighbour": ids[idx.ravel()], "cosine": sim.ravel().astype(np.float32)}))
    return _write_table(pd.concat(parts, ignore_index=True), out_path)


def export_similarity(store_root: str | os.PathLike, out_path: str | os.PathLike, *, kind: str = "compound_compound",
                      run: str = "default", embedder: str | None = None, min_abs: float = 0.0) -> Path:
    """One similarity matrix as a long table (row_pert_id, col_pert_id, cosine); ``min_abs`` drops
    weaker pairs (the matrices are float16 in the store; values are exported as float32)."""
    if kind not in SIMILARITY_KINDS:
        raise ReaderError(f"similarity kind must be one of {SIMILARITY_KINDS}, got {kind!r}")
    store, index, emb, _ = _run_parts(store_root, run, embedder)
    stages = index["stages"]
    ids = store.open_stage("aggregate", stages["aggregate"][emb]).table("perturbations", ["pert_id"])["pert_id"].to_numpy()
    r = store.open_stage("relate", stages["relate"][emb])
    rows_of = {"gene": r.array("gene_index", mmap=False), "compound": r.array("compound_index", mmap=False)}
    a, b = kind.split("_")
    sim = np.asarray(r.array(f"sim_{kind}", mmap=False), dtype=np.float32)
    i, j = np.nonzero(np.abs(sim) >= min_abs) if min_abs > 0 else np.indices(sim.shape).reshape(2, -1)
    df = pd.DataFrame({"row_pert_id": ids[rows_of[a][i]], "col_pert_id": ids[rows_of[b][j]], "cosine": sim[i, j]})
    return _write_table(df, out_path)


def import_anndata(path: str | os.PathLike, out_dir: str | os.PathLike, *, name: str | None = None,
                   mapping: Any = None) -> Path:
    """An .h5ad of well embeddings -> a screen folder (obs -> wells, X -> well_features)."""
    import anndata as ad

    from precompute.contract import WELL_COLUMNS
    from precompute.readers.mapping import MappingReport, ProfileMapping, map_metadata
    from precompute.readers.profiles import Profiles, write_profile_screen

    src = str(path)
    try:
        adata = ad.read_h5ad(path)
    except Exception as err:
        raise ReaderError(f"{src}: cannot be read as .h5ad ({type(err).__name__}: {err})") from None
    x = adata.X
    if x is None:
        raise ReaderError(f"{src}: X is empty")
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise ReaderError(f"{src}: X[{adata.obs_names[r]!r}, {adata.var_names[c]!r}] is {x[r, c]} (not finite)")
    obs = adata.obs.reset_index(names="_obs_name")
    contract = [c for c in WELL_COLUMNS if c not in ("row", "col")]
    if "well_id" not in obs.columns:
        obs["well_id"] = obs["_obs_name"].astype(str)
    report = MappingReport(source=src)
    if all(c in obs.columns for c in contract):
        wells, keep = obs.drop(columns=["_obs_name"]), np.ones(len(obs), dtype=bool)
        for c in obs.columns:
            if isinstance(obs[c].dtype, pd.CategoricalDtype):
                wells[c] = wells[c].astype(object)
        report.add("wells", "obs (contract columns)")
    elif any(str(c).startswith("Metadata_") for c in obs.columns):
        wells, keep, report = map_metadata(obs.drop(columns=["well_id"]), ProfileMapping.from_any(mapping), src)
    else:
        raise ReaderError(f"{src}: obs has neither the contract columns {contract} nor pycytominer Metadata_* columns; "
                          f"obs columns: {list(adata.obs.columns)[:20]}")
    report.add("well_features", f"X ({x.shape[1]} columns)")
    report.log()
    prof = Profiles(wells=wells.reset_index(drop=True), features=x[keep].astype(np.float32),
                    feature_names=[str(v) for v in adata.var_names], report=report)
    return write_profile_screen(prof, out_dir, name=name or Path(out_dir).name,
                                extra={"import": {"kind": "h5ad", "reports": [report.to_dict()]}})
