"""Names people recognise: a perturbation's common name, MOA, InChIKey and synonyms next to its id.

Screens key compounds by an identifier (a Broad id such as ``BRD-K92723993``, a JCP2022 id) and
genes by a symbol or a guide. A biologist knows ``imatinib``. Everything here is read from what the
screen ships (its wells table and ground-truth tables) and nothing is invented: a perturbation
without an annotated name keeps its id alone, and an "id-like" text (a Broad sample id in a name
column, the id itself) is never shown as a name.

Pure functions over pandas (no store, no Dash), so figures may use them; the dashboard's cached
tables built from a screen live in phenomix_dash/name_data.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

NAME_COLUMNS = ("name", "moa", "inchikey", "synonyms", "aliases")
GENETIC = ("crispr", "orf")
# Identifier shapes that name columns of real plate maps carry when no name is known.
_ID_LIKE = re.compile(r"^(BRD-|JCP2022_|CHEMBL\d|\d+$)", re.IGNORECASE)
_INCHIKEY = re.compile(r"^[A-Z]{14}(-[A-Z]{10}-[A-Z])?$")
# Columns that hold a compound's or gene's common name in the wells table or a ground-truth table,
# best first (the annotation join's record name beats a plate map's own column).
_NAME_COLS = ("name", "common_name", "compound_name", "pert_iname", "Metadata_pert_iname", "symbol", "gene_symbol")
_MOA_COLS = ("moa", "Metadata_moa")
_INCHIKEY_COLS = ("inchikey", "InChIKey", "Metadata_InChIKey")
_ALIAS_COLS = ("Metadata_broad_sample", "broad_sample", "Metadata_InChIKey14", "InChIKey14")
# Search ranks: where the match is (exact, start, inside) and in which field.
_FIELD_ORDER = {"name": 0, "id": 1, "inchikey": 2, "synonym": 3, "alias": 4}


def is_name(text: object, ident: str, *, same_ok: bool = False) -> bool:
    """A text worth showing as a name of ``ident``: not empty, not an identifier (a Broad sample
    id, an InChIKey, a number). The id itself counts only with ``same_ok``: an annotation record
    that names the compound by its id ('Compound3'), or a gene whose symbol is its id."""
    if not isinstance(text, str):
        return False
    t, i = text.strip().casefold(), ident.casefold()
    if not t or _ID_LIKE.match(t) or _INCHIKEY.match(text.strip()):
        return False
    return same_ok if t == i else not t.startswith(i)


def _texts(values: object) -> list[str]:
    """Non-empty strings of a cell that may hold several values separated by '|'."""
    if not isinstance(values, str):
        return []
    return [v.strip() for v in values.split("|") if v.strip()]


def _per_entity(frame: pd.DataFrame, key: str, cols: tuple[str, ...]) -> dict[str, list[str]]:
    """key -> every distinct non-empty text of ``cols`` (in column order, then row order)."""
    out: dict[str, list[str]] = {}
    present = [c for c in cols if c in frame.columns]
    if not present or key not in frame.columns:
        return out
    sub = frame[[key, *present]].dropna(subset=[key]).drop_duplicates()
    for c in present:
        vals = sub[[key, c]].dropna().drop_duplicates()
        for k, v in zip(vals[key].astype(str), vals[c].astype(str), strict=True):
            seen = out.setdefault(k, [])
            for t in _texts(v):
                if t not in seen:
                    seen.append(t)
    return out


def entity_names(wells: pd.DataFrame, tables: Mapping[str, pd.DataFrame | None],
                 entities: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per named entity (perturbation_type, perturbation) with name, moa, inchikey,
    synonyms (other names, a tuple) and aliases (other identifiers such as full Broad sample ids).

    wells: the screen's wells table (perturbation_type, perturbation and any of the name / MOA /
    InChIKey columns a plate map carried). tables: the screen's ground-truth tables by name (any
    may be missing): ``compound_annotation_join`` (compound, name), ``compound_moa`` (compound,
    moa), ``compounds`` (compound, name / moa / inchikey columns if it has them), ``genes`` (gene,
    symbol / name if it has them). entities: one row per entity (perturbation_type, perturbation,
    gene), e.g. perturbations(); default: the distinct ones of ``wells``. Entities without any
    name, MOA or identifier get no row. The wells are scanned only for the annotation columns they
    have: a synthetic screen of 10^6 wells has none and costs nothing here.
    """
    need = {"perturbation_type", "perturbation"}
    if not need <= set(wells.columns):
        raise ValueError(f"wells table lacks column(s) {sorted(need - set(wells.columns))}")
    if entities is None:
        entities = wells[[c for c in ("perturbation_type", "perturbation", "gene") if c in wells.columns]].drop_duplicates()
    types = entities["perturbation_type"].astype(str)
    keys = entities["perturbation"].astype(str)
    gen = pd.DataFrame({"perturbation_type": types, "perturbation": keys,
                        "gene": entities["gene"] if "gene" in entities.columns else None})[types.isin(GENETIC).to_numpy()]
    ann_cols = [c for c in dict.fromkeys((*_NAME_COLS, *_MOA_COLS, *_INCHIKEY_COLS, *_ALIAS_COLS)) if c in wells.columns]
    if ann_cols:  # one row per distinct annotation of a compound: small even at 10^6 wells
        cmpd = wells.loc[(wells["perturbation_type"] == "compound").to_numpy(), ["perturbation", *ann_cols]].drop_duplicates()
        cmpd = cmpd.assign(perturbation=cmpd["perturbation"].astype(str))
    else:
        cmpd = pd.DataFrame({"perturbation": pd.Series(dtype=str)})

    def table(name: str, key: str) -> pd.DataFrame:
        t = tables.get(name)
        return t.rename(columns={key: "perturbation"}) if t is not None and key in t.columns else pd.DataFrame()

    join, cmoa = table("compound_annotation_join", "compound"), table("compound_moa", "compound")
    ctab, gtab = table("compounds", "compound"), table("genes", "gene")
    names_c = _merge(_per_entity(join, "perturbation", ("name",)), _per_entity(ctab, "perturbation", _NAME_COLS))
    plate_names_c = _per_entity(cmpd, "perturbation", _NAME_COLS)  # may hold the id itself: never "the name"
    moa_c = _merge(_per_entity(cmoa, "perturbation", ("moa",)), _per_entity(ctab, "perturbation", _MOA_COLS))
    moa_plate = _per_entity(cmpd, "perturbation", _MOA_COLS)  # the plate map's own MOA, when no table has one
    moa_c = {**moa_plate, **moa_c}
    ik_c = _merge(_per_entity(ctab, "perturbation", _INCHIKEY_COLS), _per_entity(cmpd, "perturbation", _INCHIKEY_COLS))
    alias_c = _per_entity(cmpd, "perturbation", _ALIAS_COLS)
    # Genes: the symbol is a name only when the perturbation is keyed otherwise (a guide, an ORF
    # clone); a gene keyed by its symbol already shows it (most screens: nothing to add, no row).
    other = gen[gen["gene"].notna().to_numpy() & (gen["gene"].astype(str) != gen["perturbation"]).to_numpy()]
    names_g = _merge(_per_entity(gtab, "perturbation", ("symbol", "gene_symbol", "name")),
                     _per_entity(other, "perturbation", ("gene",)))
    rows = []
    for kind, entity_keys, names, plate_names, moas, iks, aliases in (
            ("compound", sorted(set(keys[(types == "compound").to_numpy()])), names_c, plate_names_c, moa_c, ik_c, alias_c),
            *[(g, sorted(set(gen.loc[gen["perturbation_type"] == g, "perturbation"]) & set(names_g)), names_g, {}, {}, {}, {})
              for g in GENETIC]):
        for k in entity_keys:
            good = [n for n in names.get(k, []) if is_name(n, k, same_ok=True)]
            good = list(dict.fromkeys(good + [n for n in plate_names.get(k, []) if is_name(n, k)]))
            first = good[0] if good else None
            syn = tuple(dict.fromkeys(n for n in good[1:] if n.casefold() != (first or "").casefold()))
            ik = next((v for v in iks.get(k, []) if _INCHIKEY.match(v) and len(v) == 27), None)
            ali = tuple(a for a in [*aliases.get(k, []), *iks.get(k, [])] if a != k and a != ik)
            moa = "; ".join(moas.get(k, [])) or None
            if first or syn or ik or ali or moa:
                rows.append((kind, k, first, moa, ik, syn, tuple(dict.fromkeys(ali))))
    return pd.DataFrame(rows, columns=["perturbation_type", "perturbation", *NAME_COLUMNS])


def _merge(*sources: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for src in sources:
        for k, vals in src.items():
            seen = out.setdefault(k, [])
            seen += [v for v in vals if v not in seen]
    return out


def with_names(perturbations: pd.DataFrame, names: pd.DataFrame) -> pd.DataFrame:
    """The perturbation table plus NAME_COLUMNS (None / () where nothing is annotated); a dose
    entity gets its compound's names. Row order and every existing column are kept."""
    where = {k: i for i, k in enumerate(zip(names["perturbation_type"].astype(str), names["perturbation"].astype(str)))}
    pos = np.fromiter((where.get(k, -1) for k in zip(perturbations["perturbation_type"].astype(str),
                                                     perturbations["perturbation"].astype(str))),
                      dtype=np.int64, count=len(perturbations))
    out = perturbations.copy()
    for c in NAME_COLUMNS:
        empty = () if c in ("synonyms", "aliases") else None
        vals = np.empty(len(names) + 1, dtype=object)  # the last slot answers pos -1: nothing annotated
        vals[:-1] = names[c].to_numpy(dtype=object) if c in names.columns else empty
        vals[-1] = empty
        out[c] = vals[pos]
    return out


def name_and_id(name: object, ident: str) -> str:
    """'imatinib · BRD-K92723993' when a name other than the id is known, else the id alone."""
    if isinstance(name, str) and name and name.casefold() != str(ident).casefold():
        return f"{name} · {ident}"
    return str(ident)


TYPE_SHORT = {"crispr": "CRISPR", "orf": "ORF", "compound": "compound",
              "negative_control": "neg. control", "positive_control": "pos. control"}


def entity_label(row: Mapping) -> str:
    """How a biologist reads an entity: 'TP53 (CRISPR)', 'imatinib · BRD-K92723993 @ 1 µM',
    'imatinib · BRD-K92723993 (all doses)'; the id alone where no name is annotated."""
    t, p = row["perturbation_type"], str(row["perturbation"])
    shown = name_and_id(row.get("name"), p)
    if t in GENETIC:
        return f"{shown} ({TYPE_SHORT[t]})"
    if t == "compound":
        c = row.get("concentration_um")
        if row.get("level") == "dose" and c is not None and np.isfinite(c):
            return f"{shown} @ {c:g} µM"
        return f"{shown} (all doses)"
    return f"{shown} ({TYPE_SHORT.get(t, t)})"


def short_labels(table: pd.DataFrame) -> np.ndarray:
    """name_and_id of every row of a (named) perturbation table, as an object array."""
    ids = table["perturbation"].astype(str).to_numpy(dtype=object)
    if "name" not in table.columns:
        return ids
    return np.array([name_and_id(n, i) for n, i in zip(table["name"], ids, strict=True)], dtype=object)


@dataclass(frozen=True)
class NameIndex:
    """Every searchable text of a perturbation table, casefolded once: the name, the id (and
    pert_id), the InChIKey, synonyms and aliases, joined into one text so that a search is one
    scan of it (a few ms at 10^5 perturbations) rather than one comparison per term."""

    rows: np.ndarray  # table row of each term
    fields: np.ndarray  # _FIELD_ORDER rank of each term
    terms: np.ndarray  # casefolded text of each term (object)
    starts: np.ndarray  # where each term starts in ``blob``
    blob: str  # the terms joined by newlines (no term holds one)
    n: int

    @classmethod
    def build(cls, table: pd.DataFrame) -> NameIndex:
        rows, fields, terms = [], [], []

        def add(values, field: str) -> None:
            for r, v in enumerate(values):
                for t in (v if isinstance(v, tuple) else (v,)):
                    if isinstance(t, str) and t.strip():
                        rows.append(r)
                        fields.append(_FIELD_ORDER[field])
                        terms.append(" ".join(t.split()).casefold())

        add(table["perturbation"].astype(str), "id")
        add(table["pert_id"].astype(str), "id")
        for col, field in (("name", "name"), ("inchikey", "inchikey"), ("synonyms", "synonym"), ("aliases", "alias")):
            if col in table.columns:
                add(table[col], field)
        lengths = np.fromiter((len(t) + 1 for t in terms), dtype=np.int64, count=len(terms))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(np.asarray(rows, dtype=np.int64), np.asarray(fields, dtype=np.int8), np.asarray(terms, dtype=object),
                   starts, "\n".join(terms), len(table))

    def match(self, text: str, candidates: np.ndarray | None = None) -> np.ndarray:
        """Rows whose any term contains ``text`` (case-insensitive, literal), best first: exact
        match, then starts with, then contains; within each, name before id before InChIKey before
        synonym; then table order. A full InChIKey also finds a compound known by its first block.
        ``candidates``: a boolean mask over rows that may be returned."""
        q = " ".join(str(text).split()).casefold()
        if not q:
            return np.empty(0, dtype=np.int64)
        at = np.fromiter((m.start() for m in re.finditer(re.escape(q), self.blob)), dtype=np.int64)
        hit = np.unique(np.searchsorted(self.starts, at, side="right") - 1)
        if len(q) == 27 and _INCHIKEY.match(q.upper()):  # a pasted full key: its skeleton block too
            block = [m.start() for m in re.finditer("(?:^|\n)" + re.escape(q[:14]) + "(?:\n|$)", self.blob)]
            more = np.searchsorted(self.starts, np.asarray(block, dtype=np.int64) + (np.asarray(block) > 0), side="right") - 1
            hit = np.union1d(hit, more)
        if candidates is not None and hit.size:
            hit = hit[np.asarray(candidates, dtype=bool)[self.rows[hit]]]
        r, f, t = self.rows[hit], self.fields[hit], self.terms[hit]
        place = np.array([0 if x == q else 1 if x.startswith(q) else 2 for x in t], dtype=np.int8)
        order = np.lexsort((r, f, place))
        ranked = r[order]
        _, first = np.unique(ranked, return_index=True)
        return ranked[np.sort(first)]


def search_text(row: Mapping) -> str:
    """Every searchable text of one (named) row, for a dropdown option's client-side filter."""
    parts = [row.get("perturbation"), row.get("pert_id"), row.get("name"), row.get("inchikey"),
             *(row.get("synonyms") or ()), *(row.get("aliases") or ())]
    return " ".join(str(p) for p in parts if isinstance(p, str) and p)


def dropdown_options(table: pd.DataFrame, text: str | None, kinds: tuple[str, ...], keep: list[str] | None,
                     limit: int = 50, *, doses: bool = False, index: NameIndex | None = None) -> list[dict]:
    """Dropdown options for ``text``, matched on any of name, id, InChIKey or synonym and ranked
    (NameIndex.match); the selected values ``keep`` always come first so the dropdown can show
    them. Filtering on the server keeps the browser light at 10^5 perturbations. ``doses`` also
    offers per-concentration compound entities. Each option's ``search`` holds every text it may
    match, so the dropdown's own filter never hides a match by InChIKey or synonym. ``index``: the
    table's NameIndex when cached (built here otherwise)."""
    allowed = table["perturbation_type"].isin(kinds).to_numpy()
    if not doses:
        allowed &= (table["level"] != "dose").to_numpy()
    keep = [k for k in (keep or []) if isinstance(k, str)]
    kept = np.flatnonzero(table["pert_id"].isin(keep).to_numpy())
    s = str(text).strip()[:80] if isinstance(text, str) else ""
    if s:
        hits = (index or NameIndex.build(table)).match(s, allowed)
    else:
        hits = np.flatnonzero(allowed)
    taken = set(kept.tolist())
    hits = [r for r in hits[: limit + len(taken)] if r not in taken][:limit]
    recs = table.iloc[np.concatenate([kept, np.asarray(hits, dtype=np.int64)])].to_dict("records")
    return [{"label": entity_label(r), "value": r["pert_id"], "search": search_text(r)} for r in recs]
