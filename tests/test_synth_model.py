"""The synthetic screen's hidden model: biology, layout and configuration (no images rendered)."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from precompute.contract import validate_compound_targets, validate_relationships, validate_wells
from precompute.synth import PROGRAM_AXES, SynthConfig, SynthConfigError, build_model
from precompute.synth.biology import AXIS, program_table
from precompute.synth.cli import add_generate_arguments, config_from_args, run_generate
from precompute.synth.generate import ground_truth_tables
from precompute.synth.nuisance import edge_ring


@pytest.fixture(scope="module")
def demo():
    return build_model(SynthConfig.preset("demo"))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _pair_cos(model, source: str) -> np.ndarray:
    """Cosine of knockout programs over annotated pairs of one source, active genes only."""
    genes = model.biology.genes
    idx = {g: i for i, g in enumerate(genes["gene"])}
    active = genes["active"].to_numpy()
    rel = ground_truth_tables(model)["relationships"]
    rel = rel[rel["source"] == source]
    i = rel["entity1"].map(idx).to_numpy()
    j = rel["entity2"].map(idx).to_numpy()
    keep = active[i] & active[j]
    P = model.biology.gene_programs
    return _cos(P[i[keep]], P[j[keep]])


def test_complex_mates_share_programs_pathways_less_and_opposing_pathways_are_negative(demo):
    complex_cos = _pair_cos(demo, "synthetic_complex")
    pathway_cos = _pair_cos(demo, "synthetic_pathway")
    opposing_cos = _pair_cos(demo, "synthetic_opposing")
    P = demo.biology.gene_programs[demo.biology.genes["active"].to_numpy()]
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(P), (2, 2000))
    random_cos = _cos(P[i[i != j]], P[j[i != j]])
    assert complex_cos.mean() > 0.8
    assert 0.2 < pathway_cos.mean() < complex_cos.mean() - 0.2
    assert abs(random_cos.mean()) < 0.15
    assert len(opposing_cos) > 0 and opposing_cos.mean() < -0.2


def test_about_half_the_genes_have_no_phenotype_and_exactly_zero_program(demo):
    genes, P = demo.biology.genes, demo.biology.gene_programs
    active = genes["active"].to_numpy()
    assert 0.3 < active.mean() < 0.7
    assert np.all(P[~active] == 0)
    assert np.all(np.linalg.norm(P[active], axis=1) > 0.2)
    assert set(genes.loc[~active, "phenotype"]) == {"none"}


def test_guides_vary_in_efficiency_and_some_do_nothing(demo):
    eff = demo.biology.guides["efficiency"].to_numpy()
    assert eff.min() >= 0 and eff.max() <= 1
    assert (eff < 0.1).sum() >= 5  # dead guides exist
    assert np.median(eff) > 0.6
    assert demo.biology.guides["guide"].str.match(r"^GENE_\d{4}_g\d$").all()


def test_compounds_resemble_their_targets_and_follow_a_monotone_dose_response(demo):
    b, conc = demo.biology, np.asarray(demo.config.concentrations_um)
    cpds = b.compounds
    gene_idx = {g: i for i, g in enumerate(b.genes["gene"])}
    n_checked = 0
    for i, row in cpds.iterrows():
        idx = np.full(len(conc), i)
        progs = b.compound_programs(idx, conc)
        on_target, tox = b.compound_components(idx, conc)
        if not row["active"]:
            assert np.all(progs == 0), row["compound"]
            continue
        target = b.gene_programs[gene_idx[row["targets"].split("|")[0]]]
        along = on_target @ target / np.linalg.norm(target)
        assert np.all(np.diff(along) > 0), (row["compound"], along)  # Hill: monotone in dose
        if np.isnan(row["toxic_um"]):
            assert np.all(tox == 0)
            assert np.all(np.diff(np.linalg.norm(progs, axis=1)) > 0)
            assert _cos(progs[-1], target) > 0.5, row["compound"]
            n_checked += 1
        else:  # toxicity: fewer cells and brighter nuclei, more so at higher dose
            assert tox[-1, AXIS["cell_count"]] < 0
            assert np.all(np.diff(tox[:, AXIS["cell_count"]]) < 0)
            assert np.all(np.diff(tox[:, AXIS["nucleus_intensity"]]) > 0)
    assert n_checked >= 3
    assert (~cpds["active"]).sum() >= 1
    assert cpds["compound"].str.match(r"^CPD_\d{4}$").all()


def test_orf_programs_are_their_own_not_the_negated_knockout(demo):
    b = demo.biology
    orfs = b.orfs
    assert orfs["active"].sum() >= 5
    ko = b.gene_programs[orfs["gene_index"].to_numpy()]
    both = orfs["active"].to_numpy() & (np.linalg.norm(ko, axis=1) > 0)
    assert both.sum() >= 2
    assert np.all(_cos(b.orf_programs[both], -ko[both]) < 0.9)


def test_positive_controls_are_strong(demo):
    b = demo.biology
    active = b.gene_programs[b.genes["active"].to_numpy()]
    assert np.linalg.norm(b.poscon_programs, axis=1).min() > 2 * np.median(np.linalg.norm(active, axis=1))


def test_layout_has_controls_on_every_plate_and_spreads_replicates_over_batches(demo):
    w = validate_wells(demo.wells)
    cfg = demo.config
    assert len(w) == cfg.n_batches * demo.layout.n_plates_per_batch * cfg.plate_format
    ring = edge_ring(w["row"].to_numpy(), w["col"].to_numpy(), cfg.plate_shape)
    for plate, g in w.assign(ring=ring).groupby("plate"):
        neg = g[g["perturbation_type"] == "negative_control"]
        assert len(neg) >= cfg.n_negative_per_plate, plate
        assert (neg["ring"] == 0).sum() >= 2, plate  # controls on the edge too
        assert set(g.loc[g["perturbation_type"] == "positive_control", "perturbation"]) == set(demo.biology.poscons)
    assert set(w.loc[w["perturbation_type"] == "negative_control", "perturbation"]) == {"non-targeting", "DMSO"}
    crispr = w[w["perturbation_type"] == "crispr"]
    per_gene = crispr.groupby("gene")["batch"].nunique()
    assert (per_gene == min(cfg.guides_per_gene, cfg.n_batches)).all()
    cpd = w[w["perturbation_type"] == "compound"]
    reps = cpd.groupby(["compound", "concentration_um"])["batch"].nunique()
    assert (reps == min(cfg.compound_replicates, cfg.n_batches)).all()
    assert cpd["concentration_um"].notna().all() and crispr["guide"].notna().all()


def test_well_programs_follow_perturbations_and_controls_are_zero(demo):
    w, P = demo.wells, demo.pert_programs
    neg = (w["perturbation_type"] == "negative_control").to_numpy()
    assert np.all(P[neg] == 0)
    # Realised programs carry batch shift + noise on top: controls differ by batch.
    R = demo.programs[neg]
    b = w.loc[neg, "batch"].to_numpy()
    means = np.stack([R[b == x].mean(0) for x in np.unique(b)])
    assert np.linalg.norm(means[0] - means[1]) > 0.3


def test_layout_scales_to_thousands_of_plates():
    cfg = SynthConfig.preset("tiny", n_batches=8, n_wells=200_000, n_genes=3000, n_compounds=200)
    m = build_model(cfg)
    assert len(m.wells) >= 200_000
    assert m.wells["plate"].nunique() == 8 * m.layout.n_plates_per_batch >= 2000
    assert m.wells["well_id"].is_unique
    assert m.layout.replicate_scale > 1


def test_ground_truth_tables_have_the_annotation_formats(demo):
    gt = ground_truth_tables(demo)
    rel = validate_relationships(gt["relationships"])
    assert set(rel["source"]) == {"synthetic_complex", "synthetic_pathway", "synthetic_opposing"}
    pairs = set(zip(rel["entity1"], rel["entity2"]))
    assert all((b, a) in pairs for a, b in list(pairs)[:500])  # both directions, like CORUM.txt
    ct = validate_compound_targets(gt["compound_targets"])
    assert set(ct["source"]) == {"synthetic"}
    assert set(ct["compound"]) == set(gt["compounds"]["compound"])
    assert {"gene", "complex", "pathway", "active"} <= set(gt["genes"].columns)
    assert {"compound", "targets", "active", "ec50_um", "toxic_um"} <= set(gt["compounds"].columns)
    assert {"guide", "gene", "efficiency"} <= set(gt["guides"].columns)
    lp = gt["latent_programs"]
    assert list(lp.columns[3:]) == list(PROGRAM_AXES)
    assert set(lp["kind"]) >= {"crispr_gene", "guide", "compound", "positive_control", "negative_control"}
    assert len(gt["batch_effects"]) == demo.wells["plate"].nunique()


def test_program_table_compound_rows_match_the_model(demo):
    t = program_table(demo.biology, demo.config.concentrations_um)
    c = t[t["kind"] == "compound"]
    assert len(c) == len(demo.biology.compounds) * len(demo.config.concentrations_um)


def test_same_seed_same_model_and_different_seed_differs():
    a, b = build_model(SynthConfig.preset("tiny")), build_model(SynthConfig.preset("tiny"))
    pd.testing.assert_frame_equal(a.wells, b.wells)
    np.testing.assert_array_equal(a.programs, b.programs)
    c = build_model(SynthConfig.preset("tiny", seed=1))
    assert not np.array_equal(a.pert_programs, c.pert_programs)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"plate_format": 100}, "plate_format"),
        ({"n_channels": 4}, "n_channels"),
        ({"n_orf_genes": 10_000}, "n_orf_genes"),
        ({"negative_controls_per_plate": 0}, "negative_controls_per_plate"),
    ],
)
def test_bad_settings_name_the_field(changes, field):
    with pytest.raises(SynthConfigError, match=field):
        SynthConfig.preset("tiny", **changes)


def test_too_few_plates_for_the_library_is_a_clear_error():
    with pytest.raises(SynthConfigError, match="plates_per_batch"):
        build_model(SynthConfig.preset("tiny", plates_per_batch=1, n_genes=500))


def test_unknown_preset():
    with pytest.raises(SynthConfigError, match="unknown preset"):
        SynthConfig.preset("huge")


def test_cli_overrides_and_exit_codes(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    args = parser.parse_args(
        [
            "--out",
            str(tmp_path / "s"),
            "--preset",
            "tiny",
            "--embeddings-only",
            "--batches",
            "3",
            "--genes",
            "30",
            "--seed",
            "7",
            "--concentrations",
            "2",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.n_batches, cfg.n_genes, cfg.seed, len(cfg.concentrations_um)) == (3, 30, 7, 2)
    assert run_generate(args) == 0
    assert (tmp_path / "s" / "well_features.npy").exists()
    bad = parser.parse_args(
        [
            "--out",
            str(tmp_path / "t"),
            "--preset",
            "tiny",
            "--plates-per-batch",
            "1",
            "--genes",
            "900",
            "--embeddings-only",
        ]
    )
    assert run_generate(bad) == 2
    assert "plates_per_batch" in capsys.readouterr().err
