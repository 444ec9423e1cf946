"""Annotations: EFAAR relationship sets, CORUM complexes, compound targets/MOA joins, potencies."""

from __future__ import annotations

import pandas as pd
import pytest

from precompute.contract import validate_compound_targets, validate_relationships
from precompute.readers.annotations import (
    annotate_compounds,
    complex_pairs,
    load_compound_records,
    read_compound_gene_potency,
    read_corum_clusters,
    read_relationships,
)
from precompute.readers.common import ReaderError


@pytest.fixture(scope="module")
def records(shared_data) -> pd.DataFrame:
    return load_compound_records(shared_data)


def test_efaar_sets_give_the_documented_unique_pair_counts(shared_data):
    rel = read_relationships(shared_data / "relationship_annotations")
    counts = rel.groupby("source").size().to_dict()
    # SOURCES.md: unique undirected non-self pairs per file.
    assert counts == {"CORUM": 37649, "HuMAP": 58538, "Reactome": 18565, "SIGNOR": 11617, "StringDB": 58059}
    assert len(validate_relationships(rel)) == len(rel)
    assert (rel["entity1"] < rel["entity2"]).all()


def test_corum_clusters_become_pairs(shared_data):
    cx = read_corum_clusters(shared_data / "relationship_annotations" / "CORUM_clusters.tsv")
    assert cx["complex"].nunique() == 2696
    e = cx[cx["complex"] == "(E.F.G) complex"]["gene"]
    assert sorted(e) == ["SNRPE", "SNRPF", "SNRPG"]
    pairs = complex_pairs(cx[cx["complex"] == "(E.F.G) complex"])
    assert len(pairs) == 3 and set(pairs["source"]) == {"CORUM_complexes"}


def test_potency_table(shared_data, tmp_path):
    pot = read_compound_gene_potency(shared_data / "relationship_annotations" / "compound_gene_interactions.csv")
    assert len(pot) == 2921 and pot["compound"].nunique() == 779 and pot["gene"].nunique() == 351
    assert pot.loc[(pot["compound"] == "ABT-199") & (pot["gene"] == "BCL2"), "nM_value"].item() == 4.4
    bad = tmp_path / "cgi.csv"
    bad.write_text("gene_symbol,nM_value,measurement_type,database,treatment\nBCL2,4.4,ic50,x,A\nMCL1,strong,ic50,x,A\n")
    with pytest.raises(ReaderError, match=r"cgi.csv, line 3: nM_value 'strong' is not a number"):
        read_compound_gene_potency(bad)


def test_relationship_file_with_a_wrong_header_is_named(tmp_path):
    (tmp_path / "CORUM.txt").write_text("gene_a,gene_b\nA,B\n")
    with pytest.raises(ReaderError, match=r"CORUM.txt: expected header 'entity1,entity2'"):
        read_relationships(tmp_path, sources=["CORUM"])


def test_jump_moa_plate_joins_fully(shared_data, records):
    meta = pd.read_csv(shared_data / "jump_target" / "JUMP-MOA_compound_metadata.tsv", sep="\t")
    meta = meta[meta["pert_type"] == "trt"]
    q = pd.DataFrame({"compound": meta["broad_sample"].fillna(meta["pert_iname"]), "broad_sample": meta["broad_sample"],
                      "inchikey": meta["InChIKey"], "name": meta["pert_iname"]})
    targets, moas, matches, rep = annotate_compounds(q, records)
    assert rep.n_compounds == 90 and rep.rate == 1.0
    assert moas["compound"].nunique() == 90
    assert len(validate_compound_targets(targets)) == len(targets) > 0


def test_join_keys_brd13_inchikey_block_and_name(records):
    q = pd.DataFrame({
        "compound": ["a", "b", "c", "d"],
        # JUMP-MOA AZ191 under another batch suffix -> matched on the 13-character compound id
        "broad_sample": ["BRD-K80935598-999-99-9", None, None, None],
        "inchikey": [None, "ZYVXTMKTGDARKR", None, None],   # first InChIKey block only (LINCS style)
        "name": [None, None, "az191", "no-such-compound-xyz"],
    })
    _, moas, matches, rep = annotate_compounds(q, records)
    assert matches.set_index("compound")["matched_by"].to_dict() == {"a": "brd13", "b": "inchikey14", "c": "name", "d": None}
    assert rep.n_matched == 3 and rep.rate == pytest.approx(0.75)
    assert "DYRK inhibitor" in set(moas.loc[moas["compound"] == "a", "moa"])


def test_lincs_plate_join_rate(shared_data, records):
    df = pd.read_csv(shared_data / "profiles_lincs_compound" / "SQ00015054_normalized_feature_select.csv.gz",
                     usecols=lambda c: c.startswith("Metadata_"))
    df = df[df["Metadata_pert_type"] == "trt"].drop_duplicates("Metadata_broad_sample")
    q = pd.DataFrame({"compound": df["Metadata_broad_sample"], "broad_sample": df["Metadata_broad_sample"],
                      "inchikey": df["Metadata_InChIKey14"]})
    targets, _, _, rep = annotate_compounds(q, records)
    assert rep.n_compounds == 58 and rep.rate >= 0.9
    assert rep.n_with_targets >= 35
