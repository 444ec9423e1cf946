"""Names people recognise (#16): a perturbation's common name, MOA, InChIKey and synonyms come from
the screen's annotations, never invented; search finds it by any of them; tables and neighbour
lists show the name next to the id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from phenomix_dash.figures.activity import activity_table, filter_activity
from phenomix_dash.names import NameIndex, dropdown_options, entity_label, entity_names, is_name, with_names
from phenomix_dash.neighbours import neighbour_frame

IMATINIB_KEY = "KTUFNOKKBVMGRW-UHFFFAOYSA-N"


def _wells() -> pd.DataFrame:
    """Two annotated compounds (one named only by its plate map), one unknown, a gene, a control."""
    rows = [
        ("compound", "BRD-K92723993", "imatinib", "Bcr-Abl kinase inhibitor", IMATINIB_KEY, "BRD-K92723993-001-06-7"),
        ("compound", "BRD-K92723993", "imatinib", "Bcr-Abl kinase inhibitor", IMATINIB_KEY, "BRD-K92723993-001-06-7"),
        ("compound", "BRD-K50691590", "BRD-K50691590-001-02-2", None, None, "BRD-K50691590-001-02-2"),
        ("compound", "BRD-K00000001", "BRD-K00000001-001-01-1", None, None, "BRD-K00000001-001-01-1"),
        ("crispr", "TP53", None, None, None, None),
        ("negative_control", "DMSO", "DMSO", None, None, None),
    ]
    w = pd.DataFrame(rows, columns=["perturbation_type", "perturbation", "compound_name", "Metadata_moa",
                                    "Metadata_InChIKey", "Metadata_broad_sample"])
    w["gene"] = np.where(w["perturbation_type"] == "crispr", w["perturbation"], None)
    return w


def _tables() -> dict[str, pd.DataFrame]:
    join = pd.DataFrame({"compound": ["BRD-K92723993", "BRD-K50691590", "BRD-K00000001"],
                         "name": ["imatinib", "bortezomib", None]})
    moa = pd.DataFrame({"compound": ["BRD-K50691590", "BRD-K50691590"],
                        "moa": ["proteasome inhibitor", "NFkB pathway inhibitor"]})
    # A second annotation source names imatinib differently: a synonym, not a second name.
    cmpds = pd.DataFrame({"compound": ["BRD-K92723993"], "pert_iname": ["Gleevec"]})
    return {"compound_annotation_join": join, "compound_moa": moa, "compounds": cmpds, "genes": None}


def _perturbations() -> pd.DataFrame:
    return pd.DataFrame({
        "pert_id": ["compound:BRD-K92723993", "compound:BRD-K92723993@1.0", "compound:BRD-K50691590",
                    "compound:BRD-K00000001", "crispr:TP53", "negative_control:DMSO"],
        "perturbation_type": ["compound", "compound", "compound", "compound", "crispr", "negative_control"],
        "perturbation": ["BRD-K92723993", "BRD-K92723993", "BRD-K50691590", "BRD-K00000001", "TP53", "DMSO"],
        "level": ["pooled", "dose", "pooled", "pooled", "gene", "pooled"],
        "concentration_um": [np.nan, 1.0, np.nan, np.nan, np.nan, np.nan],
        "n_wells": [2, 1, 1, 1, 1, 1],
    })


@pytest.fixture()
def named() -> pd.DataFrame:
    return with_names(_perturbations(), entity_names(_wells(), _tables()))


def test_names_come_from_the_annotations_and_unknown_stays_id_only(named):
    by = named.set_index("pert_id")
    assert by.at["compound:BRD-K92723993", "name"] == "imatinib"
    assert by.at["compound:BRD-K92723993@1.0", "name"] == "imatinib"  # a dose carries its compound's name
    assert by.at["compound:BRD-K92723993", "inchikey"] == IMATINIB_KEY
    assert by.at["compound:BRD-K92723993", "synonyms"] == ("Gleevec",)
    assert by.at["compound:BRD-K50691590", "name"] == "bortezomib"
    assert by.at["compound:BRD-K50691590", "moa"] == "proteasome inhibitor; NFkB pathway inhibitor"
    # Its plate map's "name" is a Broad sample id: an identifier, never shown as a name.
    unknown = by.loc["compound:BRD-K00000001"]
    assert unknown["name"] is None and unknown["moa"] is None and unknown["synonyms"] == ()
    assert entity_label(unknown.to_dict() | {"perturbation_type": "compound"}) == "BRD-K00000001 (all doses)"
    assert entity_label(by.loc["compound:BRD-K92723993@1.0"].to_dict()) == "imatinib · BRD-K92723993 @ 1 µM"
    assert entity_label(by.loc["crispr:TP53"].to_dict()) == "TP53 (CRISPR)"  # the symbol is the id: shown once


def test_identifiers_are_not_names():
    assert not is_name("BRD-K50691590-001-02-2", "BRD-K50691590")
    assert not is_name(IMATINIB_KEY, "BRD-K92723993") and not is_name("12345", "X") and not is_name("", "X")
    assert is_name("imatinib", "BRD-K92723993")
    assert not is_name("Compound3", "Compound3") and is_name("Compound3", "Compound3", same_ok=True)


@pytest.mark.parametrize("text", ["imatinib", "IMATINIB", "Gleevec", IMATINIB_KEY, "KTUFNOKKBVMGRW",
                                  "BRD-K92723993-001-06-7"])
def test_search_finds_a_compound_by_name_inchikey_or_synonym(named, text):
    opts = dropdown_options(named, text, ("compound",), None)
    assert opts and opts[0]["value"] == "compound:BRD-K92723993"
    assert opts[0]["label"] == "imatinib · BRD-K92723993 (all doses)"
    # The dropdown filters its options again in the browser: the option must carry what matched.
    assert text.casefold() in opts[0]["search"].casefold()


def test_a_full_inchikey_finds_a_compound_known_by_its_first_block():
    w = _wells()
    w.loc[w["perturbation"] == "BRD-K92723993", "Metadata_InChIKey"] = None
    w["Metadata_InChIKey14"] = np.where(w["perturbation"] == "BRD-K92723993", IMATINIB_KEY[:14], None)
    t = with_names(_perturbations(), entity_names(w, _tables()))
    assert t.loc[0, "inchikey"] is None  # only the first block is known: not shown as the key
    assert dropdown_options(t, IMATINIB_KEY, ("compound",), None)[0]["value"] == "compound:BRD-K92723993"


def test_search_ranks_exact_before_partial_and_keeps_the_selected(named):
    ix = NameIndex.build(named)
    rows = ix.match("bortezomib")
    assert named.iloc[rows[0]]["pert_id"] == "compound:BRD-K50691590"
    assert ix.match("nothing like this").size == 0
    opts = dropdown_options(named, "imatinib", ("compound",), ["crispr:TP53"], doses=True)
    assert opts[0]["value"] == "crispr:TP53"  # the selected value stays so the dropdown can show it
    assert [o["value"] for o in opts[1:]] == ["compound:BRD-K92723993", "compound:BRD-K92723993@1.0"]


def test_activity_table_and_its_search_carry_names(named):
    act = pd.DataFrame({"pert_id": named["pert_id"], "perturbation": named["perturbation"],
                        "perturbation_type": named["perturbation_type"], "n_wells": named["n_wells"],
                        "mean_average_precision": np.linspace(0.9, 0.1, len(named)), "p_value": 0.01, "q_value": 0.02})
    t = activity_table(named, act)
    by = t.set_index("pert_id")
    assert by.at["compound:BRD-K92723993", "name"] == "imatinib"
    assert by.at["compound:BRD-K50691590", "moa"] == "proteasome inhibitor; NFkB pathway inhibitor"
    assert by.at["compound:BRD-K92723993", "synonyms"] == "Gleevec"
    assert pd.isna(by.at["compound:BRD-K00000001", "name"])  # missing stays missing
    for text in ("imatinib", "gleevec", IMATINIB_KEY[:10]):
        assert "compound:BRD-K92723993" in set(filter_activity(t, search=text)["pert_id"])
    assert set(filter_activity(t, search="proteasome")["pert_id"]) == {"compound:BRD-K50691590"}


def test_neighbour_lists_show_names(named):
    frame = neighbour_frame(named, np.array([1, 2, 3]), np.array([0.9, 0.5, 0.1]), 4)
    assert list(frame["entity"]) == ["imatinib · BRD-K92723993 @ 1 µM", "bortezomib · BRD-K50691590 (all doses)",
                                     "BRD-K00000001 (all doses)"]


def test_real_screen_annotations_name_at_least_145_of_148_compounds(shared_data, tmp_path):
    from precompute.real_screen import build_real_screen
    from precompute.screen import load_screen

    screen = load_screen(build_real_screen(tmp_path / "real"))
    tables = {n: screen.ground_truth(n) for n in ("compound_annotation_join", "compound_moa", "compounds", "genes")}
    names = entity_names(screen.wells, tables)
    compounds = screen.wells.loc[screen.wells["perturbation_type"] == "compound", "perturbation"].nunique()
    named_c = names[(names["perturbation_type"] == "compound") & names["name"].notna()]
    assert compounds == 148 and len(named_c) >= 145
    assert names.set_index("perturbation").at["BRD-K92723993", "name"] == "imatinib"
    assert names["moa"].notna().sum() >= 145
