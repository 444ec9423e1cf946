"""Plate layout: which perturbation sits in which well, for screens of one plate or thousands.

Design, as in real screens: every plate carries negative controls scattered over the plate (edges
included) and every positive control; replicates of a perturbation (guides of a gene, replicate
wells of a compound concentration) are dealt round-robin so they land in different batches; within
a batch, plates are filled modality by modality (CRISPR, ORF, compound plates, as JUMP does) and
positions within a plate are random. Treatment slots left over become extra negative controls.
Everything is vectorised over wells so a million-well layout takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.contract import well_name
from precompute.synth.biology import NEGATIVE_CONTROL_COMPOUND, NEGATIVE_CONTROL_CRISPR, Biology
from precompute.synth.config import SynthConfig, SynthConfigError

# Kind codes of the integer layout; order also sets the plate-filling order within a batch.
NEG, POS, CRISPR, ORF, COMPOUND = 0, 1, 2, 3, 4
KIND_NAMES = {NEG: "negative_control", POS: "positive_control", CRISPR: "crispr", ORF: "orf", COMPOUND: "compound"}


@dataclass
class Layout:
    """Integer description of every well, row order = wells table order (batch, plate, row, col).

    kind (n,) int8 codes above; entity (n,) index into guides / orfs / compounds / poscons (-1 for
    negative controls); conc (n,) uM (NaN unless compound); batch, plate (global index), row, col
    (1-based) (n,) ints; dmso (n,) bool: negative control named DMSO rather than non-targeting.
    """

    kind: np.ndarray
    entity: np.ndarray
    conc: np.ndarray
    batch: np.ndarray
    plate: np.ndarray
    row: np.ndarray
    col: np.ndarray
    dmso: np.ndarray
    n_plates_per_batch: int
    replicate_scale: int

    def __len__(self) -> int:
        return len(self.kind)


def _units(cfg: SynthConfig, bio: Biology, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All treatment copies as (kind, entity, conc, group) with copies of one perturbation adjacent.

    ``group`` numbers perturbations (a gene's guides share one, so do a compound's concentrations);
    adjacency is what makes round-robin dealing put replicates into different batches.
    """
    kinds, ents, concs, groups = [], [], [], []
    rng = np.random.default_rng([cfg.seed, 101])
    base = 0
    # CRISPR: genes in random order, their guides and replicates contiguous.
    g_order = rng.permutation(cfg.n_genes)
    guide_ids = (g_order[:, None] * cfg.guides_per_gene + np.arange(cfg.guides_per_gene)).ravel()
    r = cfg.crispr_replicates * scale
    kinds.append(np.full(len(guide_ids) * r, CRISPR))
    ents.append(np.repeat(guide_ids, r))
    concs.append(np.full(len(guide_ids) * r, np.nan))
    groups.append(base + np.repeat(g_order, cfg.guides_per_gene * r))
    base += cfg.n_genes
    n_orfs = len(bio.orfs)
    if n_orfs:
        r = cfg.orf_replicates * scale
        order = rng.permutation(n_orfs)
        kinds.append(np.full(n_orfs * r, ORF))
        ents.append(np.repeat(order, r))
        concs.append(np.full(n_orfs * r, np.nan))
        groups.append(base + np.repeat(order, r))
        base += n_orfs
    n_cpd = len(bio.compounds)
    if n_cpd:
        r = cfg.compound_replicates * scale
        cs = np.asarray(cfg.concentrations_um, dtype=float)
        order = rng.permutation(n_cpd)
        per = len(cs) * r
        kinds.append(np.full(n_cpd * per, COMPOUND))
        ents.append(np.repeat(order, per))
        concs.append(np.tile(np.repeat(cs, r), n_cpd))
        groups.append(base + np.repeat(order, per))
    return (
        np.concatenate(kinds).astype(np.int8),
        np.concatenate(ents).astype(np.int64),
        np.concatenate(concs),
        np.concatenate(groups).astype(np.int64),
    )


def library_size(cfg: SynthConfig, n_orfs: int | None = None, n_compounds: int | None = None) -> int:
    """Treatment wells one full replicate set of the library needs."""
    n_orfs = cfg.n_orf_genes if n_orfs is None else n_orfs
    n_compounds = cfg.n_compounds if n_compounds is None else n_compounds
    return (
        cfg.n_genes * cfg.guides_per_gene * cfg.crispr_replicates
        + n_orfs * cfg.orf_replicates
        + n_compounds * len(cfg.concentrations_um) * cfg.compound_replicates
    )


def treatment_slots_per_plate(cfg: SynthConfig) -> int:
    return cfg.plate_format - cfg.n_negative_per_plate - cfg.positive_controls * cfg.n_positive_reps_per_plate


def plates_and_scale(cfg: SynthConfig, n_units: int) -> tuple[int, int]:
    """(plates per batch, replicate multiplier) for this config and library size."""
    slots = treatment_slots_per_plate(cfg)
    B = cfg.n_batches
    if cfg.n_wells is not None:
        plates = cfg.plates_per_batch or max(1, math.ceil(cfg.n_wells / (B * cfg.plate_format)))
        scale = max(1, (B * plates * slots) // max(n_units, 1))
    else:
        need = math.ceil(math.ceil(n_units / B) / slots)
        plates = cfg.plates_per_batch or max(1, need)
        scale = 1
    if math.ceil(n_units * scale / B) > plates * slots:
        raise SynthConfigError(
            f"SynthConfig.plates_per_batch={cfg.plates_per_batch}: the library needs {n_units * scale} treatment "
            f"wells but {B} batch(es) x {plates} plate(s) hold {B * plates * slots}; "
            f"raise plates_per_batch or n_batches, or shrink the library"
        )
    return plates, scale


def _plate_controls(rng: np.random.Generator, cfg: SynthConfig, n_plates: int) -> tuple[np.ndarray, np.ndarray]:
    """Per plate, positions (flat well index) of negative and positive controls.

    Negative controls are stratified so the edge holds its share (at least two): edge wells behave
    differently, and a reference that never sits there cannot correct them.
    """
    rows, cols = cfg.plate_shape
    r, c = np.divmod(np.arange(rows * cols), cols)
    edge = (r == 0) | (r == rows - 1) | (c == 0) | (c == cols - 1)
    edge_idx, inner_idx = np.flatnonzero(edge), np.flatnonzero(~edge)
    n_neg, n_pos = cfg.n_negative_per_plate, cfg.positive_controls * cfg.n_positive_reps_per_plate
    n_edge = min(len(edge_idx), max(min(2, n_neg), round(n_neg * len(edge_idx) / (rows * cols))))
    neg = np.empty((n_plates, n_neg), dtype=np.int64)
    pos = np.empty((n_plates, n_pos), dtype=np.int64)
    for p in range(n_plates):
        e = rng.choice(edge_idx, n_edge, replace=False)
        i = rng.choice(inner_idx, n_neg - n_edge, replace=False)
        neg[p] = np.concatenate([e, i])
        rest = np.setdiff1d(np.arange(rows * cols), neg[p], assume_unique=True)
        pos[p] = rng.choice(rest, n_pos, replace=False)
    return neg, pos


def make_layout(cfg: SynthConfig, bio: Biology) -> Layout:
    """Place controls and every replicate of the library on plates (deterministic in cfg.seed)."""
    rng = np.random.default_rng([cfg.seed, 202])
    n_units = library_size(cfg, len(bio.orfs), len(bio.compounds))
    P, scale = plates_and_scale(cfg, n_units)
    B, W = cfg.n_batches, cfg.plate_format
    rows, cols = cfg.plate_shape
    n_plates = B * P
    kind, ent, conc, group = _units(cfg, bio, scale)

    # Deal copies round-robin over batches (random start): adjacent copies -> different batches.
    batch_of = (np.arange(len(kind)) + rng.integers(B)) % B
    # Within a batch: modality blocks, random order inside, spread evenly over the batch's plates.
    tie = rng.random(len(kind))
    order = np.lexsort((tie, kind, batch_of))
    kind, ent, conc, batch_of = kind[order], ent[order], conc[order], batch_of[order]
    counts = np.bincount(batch_of, minlength=B)
    rank = np.arange(len(kind)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[batch_of]
    plate_in_batch = (rank * P) // counts[batch_of]
    plate_of = batch_of * P + plate_in_batch

    neg, pos = _plate_controls(rng, cfg, n_plates)
    # Fill arrays of shape (n_plates, W): default = negative control (unused slots become controls).
    K_ = np.full((n_plates, W), NEG, dtype=np.int8)
    E_ = np.full((n_plates, W), -1, dtype=np.int64)
    C_ = np.full((n_plates, W), np.nan)
    pos_ent = np.tile(np.repeat(np.arange(cfg.positive_controls), cfg.n_positive_reps_per_plate), (n_plates, 1))
    np.put_along_axis(K_, pos, POS, axis=1)
    np.put_along_axis(E_, pos, pos_ent, axis=1)
    # Free slots of each plate in random order; the k-th treatment of a plate takes the k-th slot.
    taken = np.zeros((n_plates, W), dtype=bool)
    np.put_along_axis(taken, neg, True, axis=1)
    np.put_along_axis(taken, pos, True, axis=1)
    key = np.where(taken, 2.0, rng.random((n_plates, W)))
    free_sorted = np.argsort(key, axis=1)
    per_plate = np.bincount(plate_of, minlength=n_plates)
    start = np.concatenate([[0], np.cumsum(per_plate)[:-1]])
    # Treatments are grouped by plate already (sorted by batch, then rank -> plate); keep that order.
    k_in_plate = np.arange(len(kind)) - start[plate_of]
    slot = free_sorted[plate_of, k_in_plate]
    K_[plate_of, slot] = kind
    E_[plate_of, slot] = ent
    C_[plate_of, slot] = conc

    # Negative controls take DMSO on plates that hold compounds, in proportion.
    is_cpd = np.zeros((n_plates, W), dtype=bool)
    is_cpd[plate_of, slot] = kind == COMPOUND
    n_treat = np.maximum(per_plate, 1)
    frac = is_cpd.sum(1) / n_treat
    negmask = K_ == NEG
    dmso = negmask & (rng.random((n_plates, W)) < frac[:, None])

    flat = np.arange(W)
    r_, c_ = np.divmod(flat, cols)
    plate_ids = np.repeat(np.arange(n_plates), W)
    return Layout(
        kind=K_.ravel(),
        entity=E_.ravel(),
        conc=C_.ravel(),
        batch=plate_ids // P,
        plate=plate_ids,
        row=np.tile(r_ + 1, n_plates),
        col=np.tile(c_ + 1, n_plates),
        dmso=dmso.ravel(),
        n_plates_per_batch=P,
        replicate_scale=scale,
    )


def batch_names(cfg: SynthConfig) -> list[str]:
    return [f"batch{b + 1:02d}" for b in range(cfg.n_batches)]


def wells_table(cfg: SynthConfig, bio: Biology, lay: Layout) -> pd.DataFrame:
    """The contract wells table for a layout (plus cell_type), row order = layout order."""
    P = lay.n_plates_per_batch
    width = max(3, len(str(P)))
    bnames = np.array(batch_names(cfg), dtype=object)
    plate_names = np.array([f"{bnames[p // P]}_P{p % P + 1:0{width}d}" for p in range(cfg.n_batches * P)], dtype=object)
    rows, cols = cfg.plate_shape
    wnames = np.array([well_name(r + 1, c + 1) for r in range(rows) for c in range(cols)], dtype=object)
    well = wnames[(lay.row - 1) * cols + (lay.col - 1)]
    plate = plate_names[lay.plate]
    n = len(lay)

    kind = lay.kind
    gene = np.full(n, None, dtype=object)
    guide = np.full(n, None, dtype=object)
    compound = np.full(n, None, dtype=object)
    pert = np.where(lay.dmso, NEGATIVE_CONTROL_COMPOUND, NEGATIVE_CONTROL_CRISPR).astype(object)
    m = kind == CRISPR
    gd = bio.guides
    guide[m] = gd["guide"].to_numpy()[lay.entity[m]]
    gene[m] = gd["gene"].to_numpy()[lay.entity[m]]
    pert[m] = gene[m]
    m = kind == ORF
    if m.any():
        gene[m] = bio.orfs["gene"].to_numpy()[lay.entity[m]]
        pert[m] = gene[m]
    m = kind == COMPOUND
    if m.any():
        compound[m] = bio.compounds["compound"].to_numpy()[lay.entity[m]]
        pert[m] = compound[m]
    m = kind == POS
    pert[m] = np.array(bio.poscons, dtype=object)[lay.entity[m]]
    ptype = np.array([KIND_NAMES[k] for k in range(5)], dtype=object)[kind]

    return pd.DataFrame(
        {
            "well_id": plate + "_" + well,
            "batch": bnames[lay.batch],
            "plate": plate,
            "well": well,
            "row": lay.row.astype(np.int16),
            "col": lay.col.astype(np.int16),
            "perturbation_type": ptype,
            "perturbation": pert,
            "gene": gene,
            "guide": guide,
            "compound": compound,
            "concentration_um": lay.conc,
            "cell_type": "synthetic",
        }
    )


def perturbation_programs(bio: Biology, lay: Layout) -> np.ndarray:
    """(n_wells, K) latent program each well's perturbation causes (no nuisance, no noise).

    CRISPR wells: guide efficiency x gene knockout program; ORF: the ORF program; compounds: Hill
    response at the well's concentration plus toxicity; positive controls: their program; negative
    controls: zero.
    """
    from precompute.synth.biology import K

    out = np.zeros((len(lay), K))
    m = lay.kind == CRISPR
    g = bio.guides
    out[m] = (
        bio.gene_programs[g["gene_index"].to_numpy()[lay.entity[m]]] * g["efficiency"].to_numpy()[lay.entity[m], None]
    )
    m = lay.kind == ORF
    out[m] = bio.orf_programs[lay.entity[m]]
    m = lay.kind == COMPOUND
    if m.any():
        out[m] = bio.compound_programs(lay.entity[m], lay.conc[m])
    m = lay.kind == POS
    out[m] = bio.poscon_programs[lay.entity[m]]
    return out
