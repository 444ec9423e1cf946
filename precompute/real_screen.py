"""The second built-in screen, made only from real public files in the shared data folder.

Two CellProfiler well-level plates, each its own batch:

- ``LINCS_A549_48h``: LINCS Cell Painting plate SQ00015054 (A549, 48 h), 58 compounds, most at six
  doses (10, 3.33, 1.11, 0.37, 0.12, 0.04 µM), 24 DMSO wells; pycytominer level 4b (plate-normalised,
  feature-selected), 454 features.
- ``JUMP-MOA_U2OS_10x``: plate BR00117060a10x of cpg0002-jump-scope (U2OS, Nikon 10x), the JUMP-MOA
  plate map: 90 compounds x 4 wells, 47 MOAs, 24 DMSO wells; normalised to DMSO, 357 features.

Feature sets differ; the screen keeps the **intersection of feature names** (100 CellProfiler
features, about half of them AreaShape), so one column means one measurement in every well and
cross-plate cosines are defined. The alternative, per-plate PCA to a common width, keeps more
signal per plate but makes component k of one plate unrelated to component k of the other, so every
cross-plate similarity (the point of a shared map) would be meaningless. The price is measured in
``benchmarks/real_data_report.py`` (replicate retrieval with all features vs the common ones). The
two plates differ in cell line, magnification and normalisation, so cross-plate similarities stay
weak evidence even so; alignment (TVN/centerscale per batch on DMSO) removes the plate offsets.

Compounds are keyed by the 13-character Broad id (``BRD-K12345678``); the plates share none.
Annotations (ground_truth): ``compound_targets`` and ``compound_moa`` from the plates' own metadata
columns plus JUMP-Target, CPJUMP1, JUMP-MOA and the Drug Repurposing Hub (join report in
screen.json). There are no gene perturbations, so no gene-gene relationships are attached.

Images: the shared TIFF fields come from plates BR00117006 (CPJUMP1) and BR00143976 (pediatric
cancer atlas), neither of which is in this screen; they are attached as **example fields** (image
index rows without a well), never as images of these wells, and the screen counts as image-less
for the pipeline (it embeds with ``features``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.readers.annotations import annotate_compounds, load_compound_records
from precompute.readers.common import ReaderError, shared_data_dir
from precompute.readers.jump_images import shared_example_fields
from precompute.readers.profiles import Profiles, combine_profiles, read_profiles, write_profile_screen

log = logging.getLogger("precompute")

LINCS_FILE = "profiles_lincs_compound/SQ00015054_normalized_feature_select.csv.gz"
MOA_FILE = "profiles_jump_moa_scope/BR00117060a10x_normalized_feature_select_negcon_plate.csv.gz"
LINCS_BATCH, MOA_BATCH = "LINCS_A549_48h", "JUMP-MOA_U2OS_10x"


def read_real_plates(data: Path | None = None) -> tuple[Profiles, Profiles]:
    """The two plates with all their own features (used by the screen and the benchmark report)."""
    data = data or shared_data_dir()
    for rel in (LINCS_FILE, MOA_FILE):
        if not (data / rel).exists():
            raise ReaderError(f"{data / rel}: real profile missing; set PHENOMIX_SHARED to the shared folder")
    lincs = read_profiles(data / LINCS_FILE, {"batch_value": LINCS_BATCH, "compound_key": "brd13"})
    moa = read_profiles(data / MOA_FILE, {"batch_value": MOA_BATCH, "compound_key": "brd13"})
    return lincs, moa


def _compound_table(wells: pd.DataFrame) -> pd.DataFrame:
    """One row per compound with the identifiers each plate carries (for the annotation join)."""
    w = wells[wells["perturbation_type"] == "compound"]
    col = lambda c: w[c] if c in w.columns else pd.Series(pd.NA, index=w.index)  # noqa: E731
    ik = col("Metadata_InChIKey").fillna(col("Metadata_InChIKey14"))
    name = col("Metadata_pert_iname")
    t = pd.DataFrame({"compound": w["compound"], "broad_sample": col("Metadata_broad_sample"), "inchikey": ik,
                      "name": name.where(~name.astype("string").str.match(r"^BRD-").fillna(False))})
    return t.drop_duplicates("compound").reset_index(drop=True)


def _plate_annotations(wells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """compound -> target / MOA pairs from the plates' own Metadata_target / Metadata_moa columns."""
    w = wells[wells["perturbation_type"] == "compound"]
    src = np.where(w["batch"] == LINCS_BATCH, "LINCS plate metadata", "JUMP-MOA plate metadata")
    tg, mo = [], []
    for cmpd, s, t, m in zip(w["compound"], src, w.get("Metadata_target", pd.Series(pd.NA, index=w.index)),
                             w.get("Metadata_moa", pd.Series(pd.NA, index=w.index)), strict=True):
        tg += [(cmpd, g.strip(), s) for g in (str(t).split("|") if pd.notna(t) else []) if g.strip()]
        mo += [(cmpd, v.strip(), s) for v in (str(m).split("|") if pd.notna(m) else []) if v.strip()]
    return (pd.DataFrame(tg, columns=["compound", "gene", "source"]).drop_duplicates(),
            pd.DataFrame(mo, columns=["compound", "moa", "source"]).drop_duplicates())


def _merge_sources(a: pd.DataFrame, b: pd.DataFrame, col: str) -> pd.DataFrame:
    both = pd.concat([a, b], ignore_index=True)
    both = both.assign(source=both["source"].str.split("|")).explode("source")
    return (both.groupby(["compound", col])["source"].apply(lambda s: "|".join(sorted(set(s)))).reset_index())


def build_real_screen(out_dir: Path) -> Path:
    """Write the real-data screen folder (atomically) and return its path. About 5 s."""
    t0 = time.time()
    out_dir = Path(out_dir)
    data = shared_data_dir()
    print(f"Building the real-data screen from {data} into {out_dir} ...", flush=True)
    lincs, moa = read_real_plates(data)
    prof = combine_profiles([lincs, moa], join="intersection")
    wells = prof.wells
    cmpds = _compound_table(wells)
    ext_t, ext_m, matches, join = annotate_compounds(cmpds, load_compound_records(data))
    own_t, own_m = _plate_annotations(wells)
    targets, moas = _merge_sources(own_t, ext_t, "gene"), _merge_sources(own_m, ext_m, "moa")
    # Display names: the plate's own name (JUMP-MOA) else the matched annotation record's (LINCS).
    names = dict(zip(matches["compound"], matches["name"], strict=True))
    is_c = (wells["perturbation_type"] == "compound").to_numpy()
    own_name = wells["compound_name"].astype("string")
    fill = own_name.str.match(r"^BRD-").fillna(True).to_numpy() & is_c
    wells.loc[fill, "compound_name"] = [names.get(c) or n for c, n in zip(wells.loc[fill, "compound"], own_name[fill], strict=True)]
    wells["moa"] = wells.get("Metadata_moa")
    fields = shared_example_fields(data)
    extra = {
        "description": "Real public Cell Painting profiles: LINCS plate SQ00015054 (A549, 6 doses) and the "
                       "JUMP-MOA plate BR00117060a10x (U2OS, 4 replicates), each its own batch.",
        "sources": {LINCS_BATCH: str(data / LINCS_FILE), MOA_BATCH: str(data / MOA_FILE)},
        "feature_join": {"method": "intersection of feature names", "n_features": len(prof.feature_names),
                         "per_plate": {LINCS_BATCH: len(lincs.feature_names), MOA_BATCH: len(moa.feature_names)}},
        "annotation_join": join.to_dict(),
        "example_fields_note": "The real TIFF fields (plates BR00117006 and BR00143976) belong to neither plate of "
                               "this screen; they are example fields, not images of these wells.",
    }
    root = write_profile_screen(
        prof, out_dir, name="real", image_files=fields, extra=extra,
        ground_truth={"compound_targets": targets, "compound_moa": moas, "compound_annotation_join": matches},
    )
    print(f"real screen: {len(wells)} wells, {len(prof.feature_names)} common features, "
          f"{join.n_matched}/{join.n_compounds} compounds annotated ({join.rate:.0%}), "
          f"{fields['field_id'].nunique()} example fields; {time.time() - t0:.1f} s", flush=True)
    return root


if __name__ == "__main__":  # python -m precompute.real_screen OUT_DIR
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_real_screen(Path(sys.argv[1] if len(sys.argv) > 1 else os.path.join("var", "screens", "real")))
