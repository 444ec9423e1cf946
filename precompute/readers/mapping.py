"""Map the metadata of a well-level profile table (pycytominer / JUMP / LINCS) onto the contract.

Nothing is guessed silently: every contract column records which source column (or rule) it came
from in a :class:`MappingReport` that is returned, logged and stored with the screen, and every
choice can be overridden by a small :class:`ProfileMapping` config (a dict or a JSON file).

Default column candidates (the first present wins): see ``CANDIDATES``. Controls are identified,
in order, from a control-type column (``Metadata_control_type``: negcon / poscon* / empty), a
perturbation-type column (``Metadata_pert_type``: trt / control / negcon / poscon / empty; a plain
'control' is resolved by name against JUMP's control vocabulary, ``jump_metadata/
perturbation_control.csv``), or, when neither exists, by those names alone. A file where no
negative control can be found is an error that lists the candidate columns and their values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.contract import infer_plate_format, parse_well, well_name
from precompute.readers.common import ReaderError, value_summary
from precompute.readers.config import UNIT_TO_UM, MappingReport, ProfileMapping

__all__ = ["CANDIDATES", "KNOWN_NEGATIVE", "KNOWN_POSITIVE", "MappingReport", "ProfileMapping", "assign_roles",
           "brd13", "map_metadata"]

CANDIDATES: dict[str, tuple[str, ...]] = {
    "plate": ("Metadata_Plate", "Metadata_plate", "Metadata_Assay_Plate_Barcode", "Metadata_plate_barcode"),
    "well": ("Metadata_Well", "Metadata_well", "Metadata_well_position", "Metadata_pert_well", "Metadata_WellPosition"),
    "batch": ("Metadata_Batch", "Metadata_batch", "Metadata_Source", "Metadata_source"),
    "compound": ("Metadata_JCP2022", "Metadata_broad_sample", "Metadata_pert_id", "Metadata_pert_iname",
                 "Metadata_InChIKey", "Metadata_compound"),
    "gene": ("Metadata_Symbol", "Metadata_gene", "Metadata_Gene", "Metadata_genes", "Metadata_gene_symbol"),
    "concentration": ("Metadata_mmoles_per_liter", "Metadata_concentration_um", "Metadata_concentration",
                      "Metadata_Concentration", "Metadata_dose", "Metadata_pert_dose"),
    "name": ("Metadata_pert_iname", "Metadata_Name", "Metadata_name", "Metadata_Symbol"),
    "control_type": ("Metadata_control_type",),
    "pert_type": ("Metadata_pert_type", "Metadata_broad_sample_type"),
    "modality": ("Metadata_modality", "Metadata_Modality"),
}
# JUMP's control vocabulary (jump_metadata/perturbation_control.csv) plus RxRx's EMPTY_control.
KNOWN_NEGATIVE = frozenset(s.lower() for s in (
    "DMSO", "no-guide", "non-targeting", "BFP", "HcRed", "LUCIFERASE", "LacZ", "EMPTY_control",
    "JCP2022_033924", "JCP2022_800001", "JCP2022_800002", "JCP2022_915128", "JCP2022_915129",
    "JCP2022_915130", "JCP2022_915131"))
KNOWN_POSITIVE = frozenset(s.lower() for s in (
    "AMG900", "dexamethasone", "FK-866", "LY2109761", "NVS-PAK1-1", "quinidine", "TC-S-7004", "aloxistatin",
    "PLK1", "eGFP", "JCP2022_037716", "JCP2022_025848", "JCP2022_046054", "JCP2022_035095", "JCP2022_064022",
    "JCP2022_050797", "JCP2022_012818", "JCP2022_085227", "JCP2022_805264", "JCP2022_915132"))


def _pick(df: pd.DataFrame, key: str, override: str | None, path: str, report: MappingReport,
          required: bool = True) -> str | None:
    if override is not None:
        if override not in df.columns:
            raise ReaderError(f"{path}: mapping config names column {override!r} for {key!r}, but the file has no such column")
        report.add(key, f"{override} (from the mapping config)")
        return override
    for c in CANDIDATES[key]:
        if c in df.columns:
            return c
    if required:
        meta = [c for c in df.columns if str(c).startswith("Metadata_")]
        raise ReaderError(f"{path}: no {key} column (looked for {list(CANDIDATES[key])}); "
                          f"Metadata columns present: {meta[:30]}; name one in the mapping config ({key!r})")
    return None


def _text(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().fillna("")


def brd13(ids: pd.Series) -> pd.Series:
    """Broad sample ids -> the 13-character compound part ('BRD-K12345678-001-01-1' -> 'BRD-K12345678')."""
    s = _text(ids)
    return s.where(~s.str.match(r"^BRD-[A-Z]\d{8}"), s.str[:13])


def _rule_mask(df: pd.DataFrame, rules: list[dict], what: str, path: str) -> np.ndarray:
    mask = np.zeros(len(df), dtype=bool)
    for r in rules:
        if not isinstance(r, dict) or "column" not in r or "values" not in r:
            raise ReaderError(f"mapping config: {what} rules must look like {{'column': ..., 'values': [...]}}, got {r!r}")
        if r["column"] not in df.columns:
            raise ReaderError(f"{path}: mapping config {what} rule names column {r['column']!r}, which the file lacks")
        mask |= _text(df[r["column"]]).isin([str(v) for v in r["values"]]).to_numpy()
    return mask


def _control_candidates(df: pd.DataFrame) -> list[str]:
    keys = ("control", "pert", "type", "sample", "name", "treatment", "iname", "jcp")
    few = [c for c in df.columns if str(c).startswith("Metadata_") and df[c].nunique(dropna=False) <= 30]
    named = [c for c in df.columns if str(c).startswith("Metadata_") and any(k in str(c).lower() for k in keys)]
    return list(dict.fromkeys(named + few))[:12]


def assign_roles(df: pd.DataFrame, cfg: ProfileMapping, path: str, report: MappingReport) -> np.ndarray:
    """Per row: 'negative_control', 'positive_control', 'treatment' or 'drop' (see module doc)."""
    role = np.full(len(df), "treatment", dtype=object)
    names = _control_names(df, cfg)
    if cfg.negative_control or cfg.positive_control or cfg.drop:
        for what, rules in (("negative_control", cfg.negative_control), ("positive_control", cfg.positive_control),
                            ("drop", cfg.drop)):
            if rules:
                m = _rule_mask(df, rules, what, path)
                clash = m & (role != "treatment")
                if clash.any():
                    i = int(np.flatnonzero(clash)[0])
                    raise ReaderError(f"{path}, line {i + 2}: row matches both {role[i]!r} and {what!r} rules")
                role[m] = what
                report.add(what, " or ".join(f"{r['column']} in {list(r['values'])}" for r in rules) + " (mapping config)")
    else:
        undecided = np.ones(len(df), dtype=bool)
        ct = next((c for c in CANDIDATES["control_type"] if c in df.columns), None)
        if ct is not None:
            v = _text(df[ct]).str.lower().to_numpy()
            known = (v == "") | (v == "trt") | (v == "negcon") | (v == "empty") | pd.Series(v).str.startswith("poscon").to_numpy()
            if not known.all():
                i = int(np.flatnonzero(~known)[0])
                raise ReaderError(f"{path}, line {i + 2}: {ct} value {df[ct].iloc[i]!r} is not negcon, poscon*, empty or trt; "
                                  "give negative_control / positive_control rules in the mapping config")
            role[v == "negcon"] = "negative_control"
            role[pd.Series(v).str.startswith("poscon").to_numpy()] = "positive_control"
            role[v == "empty"] = "drop"
            undecided = v == ""
            report.add("controls", f"{ct} (negcon -> negative_control, poscon* -> positive_control, empty -> left out)")
        pt = next((c for c in CANDIDATES["pert_type"] if c in df.columns), None)
        if pt is not None and undecided.any():
            v = _text(df[pt]).str.lower().to_numpy()
            allowed = {"trt", "negcon", "poscon", "empty", "control", ""}
            bad = undecided & ~np.isin(v, list(allowed))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ReaderError(f"{path}, line {i + 2}: {pt} value {df[pt].iloc[i]!r} is not one of {sorted(allowed - {''})}; "
                                  "give control rules in the mapping config")
            for val, r in (("negcon", "negative_control"), ("poscon", "positive_control"), ("empty", "drop")):
                role[undecided & (v == val)] = r
            ctrl = undecided & (v == "control")
            by_name = names.str.lower().to_numpy()
            unknown = ctrl & ~np.isin(by_name, list(KNOWN_NEGATIVE | KNOWN_POSITIVE))
            if unknown.any():
                vals = sorted(set(names[unknown]))[:10]
                raise ReaderError(
                    f"{path}: {int(unknown.sum())} row(s) have {pt} == 'control' but a name that is not in JUMP's "
                    f"control vocabulary ({vals}; first at line {int(np.flatnonzero(unknown)[0]) + 2}); say which are "
                    "negative controls with a negative_control rule in the mapping config")
            role[ctrl & np.isin(by_name, list(KNOWN_NEGATIVE))] = "negative_control"
            role[ctrl & np.isin(by_name, list(KNOWN_POSITIVE))] = "positive_control"
            how = f"{pt} (trt -> treatment"
            if ctrl.any():
                how += f"; 'control' resolved by name: {sorted(set(names[ctrl]))[:5]} in JUMP's control vocabulary"
            report.add("controls" if ct is None else "controls (rest)", how + ")")
        if ct is None and pt is None:
            neg = names.str.lower().isin(KNOWN_NEGATIVE).to_numpy()
            if "Metadata_JCP2022" in df.columns:  # JUMP's ids are unambiguous, names like 'PLK1' are not
                jcp = _text(df["Metadata_JCP2022"]).str.lower()
                neg |= jcp.isin(KNOWN_NEGATIVE).to_numpy()
                pos = jcp.isin(KNOWN_POSITIVE).to_numpy() & ~neg
                role[pos] = "positive_control"
                if pos.any():
                    report.add("positive_control", f"Metadata_JCP2022 in JUMP's poscon ids: {sorted(set(jcp[pos]))[:5]}")
            role[neg] = "negative_control"
            report.add("controls", f"by name only (no control/pert type column): {sorted(set(names[neg]))[:5]} "
                                   "are negative controls in JUMP's vocabulary")
    if not (role == "negative_control").any():
        cands = _control_candidates(df)
        raise ReaderError(
            f"{path}: cannot identify negative-control wells (alignment and activity need them). "
            f"Candidate columns and their values:\n{value_summary(df, cands)}\n"
            "Name them in the mapping config, e.g. "
            "{\"negative_control\": [{\"column\": \"Metadata_broad_sample\", \"values\": [\"DMSO\"]}]}")
    return role


def _control_names(df: pd.DataFrame, cfg: ProfileMapping) -> pd.Series:
    """A display name per row: first non-empty of the name, compound and JCP columns."""
    cols = ([cfg.name] if cfg.name else []) + list(CANDIDATES["name"]) + list(CANDIDATES["compound"])
    out = pd.Series([""] * len(df), index=df.index, dtype="string")
    for c in dict.fromkeys(cols):
        if c in df.columns:
            v = _text(df[c])
            out = out.where(out != "", v)
    return out.fillna("")


def map_metadata(df: pd.DataFrame, cfg: ProfileMapping, path: str) -> tuple[pd.DataFrame, np.ndarray, MappingReport]:
    """Profile metadata -> (contract wells table, kept-row mask, report). Rows 'left out' are not in the table."""
    report = MappingReport(source=path)
    plate_c = _pick(df, "plate", cfg.plate, path, report)
    well_c = _pick(df, "well", cfg.well, path, report)
    report.entries.setdefault("plate", plate_c)
    report.entries.setdefault("well", f"{well_c} (zero-padded, e.g. A1 -> A01)")
    plates = _text(df[plate_c])
    if (plates == "").any():
        i = int(np.flatnonzero((plates == "").to_numpy())[0])
        raise ReaderError(f"{path}, line {i + 2}: empty plate in {plate_c}")
    raw_wells = _text(df[well_c]).tolist()
    fmt = infer_plate_format(raw_wells)
    wells = []
    for i, w in enumerate(raw_wells):
        try:
            wells.append(well_name(*parse_well(w, fmt)))
        except ValueError as err:
            raise ReaderError(f"{path}, line {i + 2}: {well_c}: {err}") from None
    if cfg.batch_value is not None:
        batch = pd.Series([cfg.batch_value] * len(df), dtype="string")
        report.add("batch", f"constant {cfg.batch_value!r} (mapping config)")
    else:
        batch_c = _pick(df, "batch", cfg.batch, path, report, required=False)
        if batch_c is None:
            batch = plates.copy()
            report.add("batch", "no batch column: each plate is its own batch (set 'batch' or 'batch_value')")
        else:
            batch = _text(df[batch_c]).where(lambda s: s != "", plates)
            report.entries.setdefault("batch", batch_c)

    role = assign_roles(df, cfg, path, report)
    names = _control_names(df, cfg)
    treat = role == "treatment"
    modality = _modalities(df, cfg, treat, path, report)
    out = pd.DataFrame({"well_id": (plates + "_" + pd.Series(wells, dtype="string")).to_numpy(),
                        "batch": batch.to_numpy(), "plate": plates.to_numpy(), "well": wells})
    ptype = np.where(treat, modality, role)
    out["perturbation_type"] = ptype
    comp_c = _pick(df, "compound", cfg.compound, path, report, required=(modality[treat] == "compound").any())
    compound = _text(df[comp_c]) if comp_c else pd.Series([""] * len(df), dtype="string")
    if comp_c and cfg.compound_key == "brd13":
        compound = brd13(df[comp_c])
        report.add("compound", f"{comp_c}, first 13 characters of Broad ids (compound_key='brd13')")
    elif comp_c:
        report.entries.setdefault("compound", comp_c)
    gene_c = _pick(df, "gene", cfg.gene, path, report, required=np.isin(modality[treat], ["crispr", "orf"]).any())
    gene = _text(df[gene_c]) if gene_c else pd.Series([""] * len(df), dtype="string")
    if gene_c:
        report.entries.setdefault("gene", gene_c)
    is_cmpd = ptype == "compound"
    is_gen = np.isin(ptype, ["crispr", "orf"])
    for mask, col, what in ((is_cmpd, compound, "compound id"), (is_gen, gene, "gene symbol")):
        missing = mask & (col == "").to_numpy() & (role != "drop")
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ReaderError(f"{path}, line {i + 2}: treated well without a {what} "
                              f"({comp_c if what == 'compound id' else gene_c} is empty)")
    cmpd_a = compound.to_numpy(dtype=object)
    gene_a = gene.to_numpy(dtype=object)
    name_a = names.replace("", "control").to_numpy(dtype=object)
    out["perturbation"] = np.where(is_cmpd, cmpd_a, np.where(is_gen, gene_a, name_a))
    report.add("perturbation", "compound id (compounds), gene (crispr/orf), control name (controls)")
    out["gene"] = np.where(is_gen, gene_a, None)
    out["guide"] = np.where(ptype == "crispr", _text(df[comp_c]).to_numpy(dtype=object) if comp_c else None, None)
    out["compound"] = np.where(is_cmpd, cmpd_a, None)
    conc_c = _pick(df, "concentration", cfg.concentration, path, report, required=False)
    if conc_c is not None:
        conc = pd.to_numeric(df[conc_c], errors="coerce")
        bad = conc.isna() & df[conc_c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ReaderError(f"{path}, line {i + 2}: {conc_c} value {df[conc_c].iloc[i]!r} is not a number")
        out["concentration_um"] = (conc * UNIT_TO_UM[cfg.concentration_unit]).to_numpy()
        why = (" (Broad plate maps store micromolar values under this name: LINCS 10 ... 0.04, CPJUMP1 5)"
               if conc_c == "Metadata_mmoles_per_liter" and cfg.concentration_unit == "uM" else "")
        report.entries.setdefault("concentration_um", f"{conc_c} read as {cfg.concentration_unit}{why}")
    else:
        out["concentration_um"] = np.nan
        report.add("concentration_um", "no concentration column: empty")
    out["compound_name"] = names.to_numpy(dtype=object)
    if cfg.keep_metadata:
        for c in df.columns:
            if str(c).startswith("Metadata_") and c not in out.columns:
                out[c] = df[c].to_numpy()
    keep = role != "drop"
    report.counts = {"rows": len(df), "kept": int(keep.sum()), "left_out": int((~keep).sum()),
                     **{t: int(((ptype == t) & keep).sum()) for t in pd.unique(ptype[keep])}}
    if (~keep).any():
        report.note(f"{int((~keep).sum())} row(s) left out (empty wells or 'drop' rules)")
    dup = out[keep].duplicated(["plate", "well"])
    if dup.any():
        i = int(np.flatnonzero(keep)[np.flatnonzero(dup.to_numpy())[0]])
        raise ReaderError(f"{path}, line {i + 2}: duplicate well {out.at[i, 'well']!r} on plate {out.at[i, 'plate']!r}")
    return out[keep].reset_index(drop=True), keep, report


def _modalities(df: pd.DataFrame, cfg: ProfileMapping, treat: np.ndarray, path: str, report: MappingReport) -> np.ndarray:
    """compound / crispr / orf per row (only treated rows matter)."""
    if cfg.modality:
        report.add("modality", f"{cfg.modality} (mapping config)")
        return np.full(len(df), cfg.modality, dtype=object)
    mc = next((c for c in CANDIDATES["modality"] if c in df.columns), None)
    if mc is not None:
        v = _text(df[mc]).str.lower().to_numpy()
        bad = treat & ~np.isin(v, ["compound", "crispr", "orf"])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ReaderError(f"{path}, line {i + 2}: {mc} value {df[mc].iloc[i]!r} is not compound, crispr or orf")
        report.add("modality", mc)
        return v.astype(object)
    comp_c = next((c for c in ([cfg.compound] if cfg.compound else []) + list(CANDIDATES["compound"]) if c in df.columns), None)
    gene_c = next((c for c in ([cfg.gene] if cfg.gene else []) + list(CANDIDATES["gene"]) if c in df.columns), None)
    if comp_c is not None:
        ids = _text(df[comp_c])[treat]
        if len(ids) and ids.str.startswith("ccsbBroad").all():
            report.add("modality", f"orf (treated ids in {comp_c} are ccsbBroad ORF clones)")
            return np.full(len(df), "orf", dtype=object)
        jcp = ids.str.extract(r"^JCP2022_(\d{6})$")[0].astype("Float64")
        if len(ids) and jcp.notna().all():  # JUMP's id ranges (jump_metadata/*.csv.gz)
            kind = "compound" if jcp.max() < 800000 else "crispr" if jcp.min() >= 800000 and jcp.max() < 900000 else (
                "orf" if jcp.min() >= 900000 else None)
            if kind is not None:
                report.add("modality", f"{kind} (treated ids in {comp_c} are JCP2022 ids in JUMP's {kind} range)")
                return np.full(len(df), kind, dtype=object)
        if len(ids) and ids.str.match(r"^BRD-[A-Z]\d{8}").all():
            report.add("modality", f"compound (treated ids in {comp_c} are Broad compound ids, BRD-...)")
            return np.full(len(df), "compound", dtype=object)
        if gene_c is None:
            brd = float(ids.str.match(r"^BRD-[A-Z]\d{8}").mean()) if len(ids) else 0.0
            report.add("modality", f"compound ({comp_c} is a compound column, {brd:.0%} of treated ids are Broad ids, "
                                   "no gene column; set 'modality' to override)")
            return np.full(len(df), "compound", dtype=object)
    raise ReaderError(f"{path}: cannot tell whether the treated wells are compounds, CRISPR or ORF "
                      f"(compound column: {comp_c}, gene column: {gene_c}); set 'modality' in the mapping config")
