"""Annotations into the contract: gene-gene relationships, compound -> target gene / MOA, potencies.

- EFAAR relationship sets (CORUM, HuMAP, Reactome, SIGNOR, StringDB; ``entity1,entity2`` CSVs
  listing both directions) and CORUM complexes (``CORUM_clusters.tsv``: name TAB space-separated
  genes) -> ``entity1, entity2, source`` with one row per undirected pair.
- Compound annotations from JUMP-Target-1/2, JUMP-MOA, CPJUMP1 and the Drug Repurposing Hub,
  joined to a screen's compounds on, in order, the full Broad sample id, its 13-character compound
  part (``BRD-K12345678``; salts and batches differ after it), the InChIKey, the InChIKey's first
  block (14 characters, the skeleton), or the name (case-insensitive). The first key that finds
  records wins for a compound; the join rate per key is reported.
- RxRx3-core's compound-gene potency table (``compound_gene_interactions.csv``) for the
  compound-gene benchmark.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.readers.common import ReaderError, log, read_table, shared_data_dir

EFAAR_SOURCES: tuple[str, ...] = ("CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB")
JOIN_KEYS: tuple[str, ...] = ("broad_sample", "brd13", "inchikey", "inchikey14", "name")
RECORD_COLUMNS = ["source", "broad_sample", "inchikey", "name", "targets", "moa"]


def _undirected(df: pd.DataFrame) -> pd.DataFrame:
    a, b = df["entity1"].astype(str).to_numpy(), df["entity2"].astype(str).to_numpy()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    out = df.assign(entity1=lo, entity2=hi)
    out = out[out["entity1"] != out["entity2"]]
    return out.drop_duplicates(["entity1", "entity2", "source"]).reset_index(drop=True)


def read_relationships(folder: str | os.PathLike | None = None, sources: Sequence[str] = EFAAR_SOURCES) -> pd.DataFrame:
    """EFAAR relationship files -> (entity1, entity2, source), one row per undirected non-self pair."""
    folder = Path(folder) if folder else shared_data_dir() / "relationship_annotations"
    parts = []
    for s in sources:
        path = folder / f"{s}.txt"
        df = read_table(path, sep=",")
        if list(df.columns[:2]) != ["entity1", "entity2"]:
            raise ReaderError(f"{path}: expected header 'entity1,entity2', got {list(df.columns)[:4]}")
        empty = df["entity1"].isna() | df["entity2"].isna()
        if empty.any():
            raise ReaderError(f"{path}, line {int(np.flatnonzero(empty.to_numpy())[0]) + 2}: empty gene symbol")
        parts.append(_undirected(df[["entity1", "entity2"]].assign(source=s)))
    out = pd.concat(parts, ignore_index=True)
    log.info("relationships: %s", out.groupby("source", sort=False).size().to_dict())
    return out


def read_corum_clusters(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """CORUM_clusters.tsv (no header: complex name TAB space-separated genes) -> (complex, gene)."""
    path = Path(path) if path else shared_data_dir() / "relationship_annotations" / "CORUM_clusters.tsv"
    df = read_table(path, sep="\t", header=None, names=["complex", "genes"])
    bad = df["complex"].isna() | df["genes"].isna()
    if bad.any():
        raise ReaderError(f"{path}, line {int(np.flatnonzero(bad.to_numpy())[0]) + 1}: expected 'complex<TAB>genes'")
    long = df.assign(gene=df["genes"].str.split()).explode("gene")[["complex", "gene"]]
    return long.drop_duplicates().reset_index(drop=True)


def complex_pairs(complexes: pd.DataFrame, source: str = "CORUM_complexes", max_size: int | None = None) -> pd.DataFrame:
    """All gene pairs within each complex -> (entity1, entity2, source); ``max_size`` skips larger complexes."""
    rows = []
    for _, genes in complexes.groupby("complex")["gene"]:
        g = sorted(set(genes))
        if max_size is not None and len(g) > max_size:
            continue
        i, j = np.triu_indices(len(g), k=1)
        rows.append(pd.DataFrame({"entity1": np.asarray(g)[i], "entity2": np.asarray(g)[j]}))
    if not rows:
        return pd.DataFrame(columns=["entity1", "entity2", "source"])
    return _undirected(pd.concat(rows, ignore_index=True).assign(source=source))


def read_compound_gene_potency(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """compound_gene_interactions.csv -> (compound, gene, nM_value, measurement_type, database)."""
    path = Path(path) if path else shared_data_dir() / "relationship_annotations" / "compound_gene_interactions.csv"
    df = read_table(path, sep=",")
    need = ["gene_symbol", "nM_value", "treatment"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ReaderError(f"{path}: missing column(s) {missing}; present: {list(df.columns)}")
    nm = pd.to_numeric(df["nM_value"], errors="coerce")
    if nm.isna().any():
        i = int(np.flatnonzero(nm.isna().to_numpy())[0])
        raise ReaderError(f"{path}, line {i + 2}: nM_value {df['nM_value'].iloc[i]!r} is not a number")
    return pd.DataFrame({"compound": df["treatment"].astype(str), "gene": df["gene_symbol"].astype(str),
                         "nM_value": nm.astype(float), "measurement_type": df.get("measurement_type"),
                         "database": df.get("database")})


# --------------------------------------------------------------------------- compound annotations
def _records(df: pd.DataFrame, source: str, *, broad="broad_sample", inchikey="InChIKey", name="pert_iname",
             targets: str | None = None, moa: str | None = None) -> pd.DataFrame:
    get = lambda c: df[c].astype("string") if c and c in df.columns else pd.Series(pd.NA, index=df.index, dtype="string")  # noqa: E731
    return pd.DataFrame({"source": source, "broad_sample": get(broad), "inchikey": get(inchikey), "name": get(name),
                         "targets": get(targets), "moa": get(moa)})


def load_compound_records(data: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every compound annotation record of the shared data, one row per record:
    source, broad_sample, inchikey, name, targets ('|'-separated genes), moa ('|'-separated)."""
    d = Path(data) if data else shared_data_dir()
    jt, cj, ca = d / "jump_target", d / "cpjump1_metadata", d / "compound_annotations"
    recs = [
        _records(read_table(jt / "JUMP-Target-1_compound_metadata.tsv"), "JUMP-Target-1", targets="target_list"),
        _records(read_table(jt / "JUMP-Target-2_compound_metadata.tsv"), "JUMP-Target-2", targets="target_list"),
        _records(read_table(jt / "JUMP-MOA_compound_metadata.tsv"), "JUMP-MOA", moa="moa"),
        _records(read_table(cj / "cpjump1_compound_metadata.tsv"), "CPJUMP1", inchikey="", name="", targets="target"),
    ]
    drugs = read_table(ca / "repurposing_drugs_20200324_cleaned.txt.gz")
    samples = read_table(ca / "repurposing_samples_20200324_cleaned.txt.gz")
    dep = samples.dropna(subset=["deprecated_broad_id"]).assign(broad_id=lambda s: s["deprecated_broad_id"].str.split("|"))
    samples = pd.concat([samples, dep.explode("broad_id")], ignore_index=True).drop_duplicates(["broad_id", "pert_iname"])
    hub = samples.merge(drugs[["pert_iname", "moa", "target"]], on="pert_iname", how="left")
    recs.append(_records(hub, "DrugRepurposingHub", broad="broad_id", targets="target", moa="moa"))
    annot = read_table(ca / "compound_rephub_annot_full.csv.gz")
    recs.append(_records(annot, "DrugRepurposingHub", inchikey="InChIKey", targets="target", moa="moa"))
    out = pd.concat(recs, ignore_index=True)
    return out[out["targets"].notna() | out["moa"].notna()].reset_index(drop=True)


def _keys(df: pd.DataFrame) -> pd.DataFrame:
    """The five join keys of a table with broad_sample / inchikey / name columns (missing -> NA)."""
    s = lambda c: df[c].astype("string").str.strip() if c in df.columns else pd.Series(pd.NA, index=df.index, dtype="string")  # noqa: E731
    b, k, n = s("broad_sample"), s("inchikey"), s("name")
    brd = b.where(b.str.match(r"^BRD-[A-Z]\d{8}").fillna(False))
    return pd.DataFrame({"broad_sample": brd, "brd13": brd.str[:13], "inchikey": k.where(k.str.len() == 27),
                         "inchikey14": k.str[:14].where(k.str.len() >= 14), "name": n.str.casefold()})


@dataclass
class JoinReport:
    n_compounds: int
    n_matched: int
    by_key: dict[str, int] = field(default_factory=dict)
    n_with_targets: int = 0
    n_with_moa: int = 0

    @property
    def rate(self) -> float:
        return self.n_matched / self.n_compounds if self.n_compounds else float("nan")

    def to_dict(self) -> dict:
        return {"n_compounds": self.n_compounds, "n_matched": self.n_matched, "rate": round(self.rate, 4),
                "by_key": dict(self.by_key), "n_with_targets": self.n_with_targets, "n_with_moa": self.n_with_moa}


def annotate_compounds(compounds: pd.DataFrame, records: pd.DataFrame | None = None, *,
                       keys: Sequence[str] = JOIN_KEYS) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, JoinReport]:
    """Join a screen's compounds to annotation records.

    Args:
        compounds: one row per compound: ``compound`` (the screen's id) and any of
            ``broad_sample``, ``inchikey`` (full or first block), ``name``.
        records: :func:`load_compound_records` output (default: the shared data).
        keys: join keys in priority order (subset of JOIN_KEYS).

    Returns:
        compound_targets (compound, gene, source), compound_moa (compound, moa, source),
        matches (compound, matched_by, sources, name), and a JoinReport (rate = matched / compounds).
    """
    if "compound" not in compounds.columns:
        raise ReaderError(f"annotate_compounds: need a 'compound' column; got {list(compounds.columns)}")
    records = load_compound_records() if records is None else records
    rk, qk = _keys(records), _keys(compounds)
    if "inchikey" in compounds.columns:  # a query may give only the first block (LINCS' InChIKey14)
        ik = compounds["inchikey"].astype("string").str.strip()
        qk["inchikey14"] = qk["inchikey14"].fillna(ik.where(ik.str.len() == 14))
    matched_rows: dict[int, tuple[str, np.ndarray]] = {}
    for key in keys:
        present = rk[key].dropna()
        index = pd.Series(present.index.to_numpy()).groupby(present.to_numpy()).indices if len(present) else {}
        index = {k: present.index.to_numpy()[v] for k, v in index.items()}
        for i, v in enumerate(qk[key].to_numpy()):
            if i in matched_rows or pd.isna(v) or v not in index:
                continue
            matched_rows[i] = (key, np.asarray(index[v]))
    tgt, moa, match = [], [], []
    for i, cmpd in enumerate(compounds["compound"].astype(str)):
        if i not in matched_rows:
            match.append((cmpd, None, None, None))
            continue
        key, rows = matched_rows[i]
        sub = records.iloc[rows]
        names = sub["name"].dropna()
        match.append((cmpd, key, "|".join(sorted(set(sub["source"]))), names.iloc[0] if len(names) else None))
        for col, out in (("targets", tgt), ("moa", moa)):
            for src, val in zip(sub["source"], sub[col], strict=True):
                if pd.notna(val):
                    out.extend((cmpd, v.strip(), src) for v in str(val).split("|") if v.strip())
    targets = _collapse(pd.DataFrame(tgt, columns=["compound", "gene", "source"]), "gene")
    moas = _collapse(pd.DataFrame(moa, columns=["compound", "moa", "source"]), "moa")
    matches = pd.DataFrame(match, columns=["compound", "matched_by", "sources", "name"])
    rep = JoinReport(n_compounds=len(compounds), n_matched=int(matches["matched_by"].notna().sum()),
                     by_key={k: int((matches["matched_by"] == k).sum()) for k in keys},
                     n_with_targets=int(targets["compound"].nunique()), n_with_moa=int(moas["compound"].nunique()))
    log.info("compound annotation join: %s", rep.to_dict())
    return targets, moas, matches, rep


def _collapse(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """One row per (compound, value), sources joined with '|'."""
    if df.empty:
        return df
    return (df.groupby(["compound", col], sort=True)["source"].apply(lambda s: "|".join(sorted(set(s))))
            .reset_index())
