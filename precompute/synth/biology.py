"""The hidden biology of a synthetic screen: latent morphological programs and who shares them.

A *program* is a vector over :data:`PROGRAM_AXES` (one signed number per visible trait, 0 = a
control cell, 1 = a clear but moderate change). Genes sit in complexes inside pathways: genes of one
complex share a program (cosine about 0.9), complexes of one pathway resemble each other less
(about 0.5), and some pathway pairs oppose each other (about -0.5). About half of all genes have
no visible phenotype (program exactly 0). Guides scale their gene's program by an efficiency
(some are dead), ORFs have their own program, and compounds mix their targets' knockout programs
through a Hill curve plus a fixed toxicity program at high dose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.synth.config import SynthConfig

PROGRAM_AXES: tuple[str, ...] = (
    "cell_count",
    "cell_spread",
    "cell_elongation",
    "nucleus_size",
    "nucleus_intensity",
    "nucleus_texture",
    "er_intensity",
    "er_perinuclear",
    "nucleoli",
    "rna_cytoplasm",
    "actin_fibres",
    "membrane",
    "mito_fragmentation",
    "mito_perinuclear",
)
K = len(PROGRAM_AXES)
AXIS = {name: i for i, name in enumerate(PROGRAM_AXES)}

# What a dying cell looks like: fewer, rounded cells with shrunken, bright (pyknotic) nuclei.
_TOXICITY = {
    "cell_count": -1.3,
    "cell_spread": -0.7,
    "nucleus_size": -0.8,
    "nucleus_intensity": 1.1,
    "mito_fragmentation": 0.7,
    "nucleoli": -0.4,
    "rna_cytoplasm": -0.3,
    "actin_fibres": -0.3,
}
TOXICITY_PROGRAM = np.array([_TOXICITY.get(a, 0.0) for a in PROGRAM_AXES])
TOXICITY_SCALE = 1.6  # program norm at full toxicity, in units of a typical gene's

NEGATIVE_CONTROL_CRISPR = "non-targeting"
NEGATIVE_CONTROL_COMPOUND = "DMSO"


@dataclass
class Biology:
    """Truth tables plus program arrays. Row i of each array belongs to row i of its table.

    genes (n_genes rows): gene, complex, pathway, active, strength, phenotype.
    gene_programs: (n_genes, K) knockout program at full guide efficiency.
    guides: guide, gene, gene_index, efficiency.  orfs: gene, gene_index, active, strength.
    orf_programs: (n_orfs, K).  compounds: compound, targets, active, ec50_um, hill, toxic_um, efficacy.
    compound_target_programs: (n_compounds, K) program at full target occupancy (no toxicity).
    poscons: names; poscon_programs: (n_poscons, K).
    """

    genes: pd.DataFrame
    gene_programs: np.ndarray
    guides: pd.DataFrame
    orfs: pd.DataFrame
    orf_programs: np.ndarray
    compounds: pd.DataFrame
    compound_target_programs: np.ndarray
    poscons: list[str]
    poscon_programs: np.ndarray
    opposing_pathways: list[tuple[str, str]]

    def compound_components(self, index: np.ndarray, conc_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(on_target, toxicity), each (n, K), for compounds ``index`` (n,) at ``conc_um`` (n,).

        on_target = Hill(conc; ec50, hill) x target program: monotone in dose along a fixed direction.
        toxicity = Hill(conc; toxic_um, 2) x the fixed dying-cell program (zero for non-toxic ones).
        """
        c = self.compounds
        index = np.asarray(index, dtype=np.int64)
        conc = np.asarray(conc_um, dtype=float)
        ec50 = c["ec50_um"].to_numpy()[index]
        hill = c["hill"].to_numpy()[index]
        tox = c["toxic_um"].to_numpy()[index]
        occupancy = hill_curve(conc, ec50, hill)
        toxicity = hill_curve(conc, tox, 2.0)
        tox_dir = TOXICITY_SCALE * TOXICITY_PROGRAM / np.linalg.norm(TOXICITY_PROGRAM)
        return occupancy[:, None] * self.compound_target_programs[index], toxicity[:, None] * tox_dir

    def compound_programs(self, index: np.ndarray, conc_um: np.ndarray) -> np.ndarray:
        """Programs of compounds ``index`` (n,) at ``conc_um`` (n,) -> (n, K): on-target + toxicity."""
        on_target, toxicity = self.compound_components(index, conc_um)
        return on_target + toxicity


def hill_curve(conc: np.ndarray, half: np.ndarray, hill: np.ndarray) -> np.ndarray:
    """Fraction of maximal effect, c^h / (c^h + half^h); 0 where half is not finite."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.power(np.divide(conc, half), hill)
        return np.where(np.isfinite(half), ratio / (1.0 + ratio), 0.0)


def _sparse_direction(rng: np.random.Generator, n_axes: tuple[int, int] = (3, 5)) -> np.ndarray:
    """A unit vector loading mostly on a few axes: real phenotypes change a handful of traits."""
    v = rng.normal(0.0, 0.12, K)
    pick = rng.choice(K, size=rng.integers(n_axes[0], n_axes[1] + 1), replace=False)
    v[pick] += rng.normal(0.0, 1.0, len(pick)) + np.sign(rng.normal(size=len(pick))) * 0.5
    return v / np.linalg.norm(v)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _names(prefix: str, n: int, width: int = 4) -> list[str]:
    width = max(width, len(str(n)))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(n)]


def _summary(program: np.ndarray, top: int = 3) -> str:
    """Human-readable gist of a program: its largest axes with signs, or 'none'."""
    if not np.any(program):
        return "none"
    order = np.argsort(-np.abs(program))[:top]
    return " ".join(f"{PROGRAM_AXES[i]}{'+' if program[i] > 0 else '-'}" for i in order if abs(program[i]) > 0.05)


def _group_sizes(rng: np.random.Generator, total: int, lo: int, hi: int) -> list[int]:
    """Split ``total`` items into groups of lo..hi (a short remainder joins the last group)."""
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(lo, hi + 1)))
    sizes[-1] -= sum(sizes) - total
    if sizes[-1] < lo and len(sizes) > 1:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


def make_biology(cfg: SynthConfig, rng: np.random.Generator) -> Biology:
    """Draw the whole hidden biology of a screen from ``rng`` (deterministic given its state)."""
    genes, gene_programs, opposing = _make_genes(cfg, rng)
    guides = _make_guides(cfg, genes, rng)
    orfs, orf_programs = _make_orfs(cfg, genes, gene_programs, rng)
    compounds, compound_programs = _make_compounds(cfg, genes, gene_programs, rng)
    poscons = [f"POSCON_{i + 1}" for i in range(cfg.positive_controls)]
    # Strong, distinct programs: positive controls must stand out on every plate.
    poscon_programs = np.stack([3.5 * _sparse_direction(rng, (2, 4)) for _ in poscons])
    return Biology(
        genes,
        gene_programs,
        guides,
        orfs,
        orf_programs,
        compounds,
        compound_programs,
        poscons,
        poscon_programs,
        opposing,
    )


def _make_genes(cfg: SynthConfig, rng: np.random.Generator):
    complex_sizes = _group_sizes(rng, cfg.n_genes, *cfg.complex_size)
    n_complexes = len(complex_sizes)
    per_pathway = _group_sizes(rng, n_complexes, *cfg.complexes_per_pathway)
    pathway_of_complex = np.repeat(np.arange(len(per_pathway)), per_pathway)
    n_pathways = len(per_pathway)

    pathway_dirs = np.stack([_sparse_direction(rng) for _ in range(n_pathways)])
    # Exact counts, not coin flips: a small screen must still hold both visible and silent pathways.
    n_visible = int(np.clip(round(cfg.pathway_active_fraction * n_pathways), 1, max(1, n_pathways - 1)))
    pathway_active = np.zeros(n_pathways, dtype=bool)
    pathway_active[rng.permutation(n_pathways)[:n_visible]] = True
    # Opposing pairs only among visible pathways: an invisible pathway cannot look opposite.
    visible = rng.permutation(np.flatnonzero(pathway_active))
    n_pairs = int(round(cfg.opposing_pathway_fraction * len(visible) / 2))
    if cfg.opposing_pathway_fraction > 0 and len(visible) >= 2:
        n_pairs = max(1, n_pairs)  # even a small screen holds one known opposition
    opposing = []
    for a, b in visible[: 2 * n_pairs].reshape(-1, 2):
        pathway_dirs[b] = _unit(-pathway_dirs[a] + rng.normal(0, 0.1, K))
        opposing.append((int(a), int(b)))

    complex_dirs = _unit(
        0.75 * pathway_dirs[pathway_of_complex] + 0.66 * np.stack([_sparse_direction(rng) for _ in range(n_complexes)])
    )
    complex_active = pathway_active[pathway_of_complex] & (rng.random(n_complexes) < cfg.complex_active_fraction)
    for p in np.flatnonzero(pathway_active):  # a visible pathway shows in at least one complex
        members = np.flatnonzero(pathway_of_complex == p)
        if not complex_active[members].any():
            complex_active[rng.choice(members)] = True
    complex_strength = np.exp(rng.normal(np.log(1.45), 0.3, n_complexes))

    complex_of_gene = np.repeat(np.arange(n_complexes), complex_sizes)
    gene_dirs = _unit(complex_dirs[complex_of_gene] + 0.3 * rng.normal(0, 1, (cfg.n_genes, K)) / np.sqrt(K))
    active = complex_active[complex_of_gene] & (rng.random(cfg.n_genes) < cfg.gene_active_fraction)
    strength = np.where(active, complex_strength[complex_of_gene] * np.exp(rng.normal(0, 0.25, cfg.n_genes)), 0.0)
    strength *= cfg.phenotype_strength
    programs = strength[:, None] * gene_dirs

    # Shuffle gene numbering so GENE_0001..0005 are not one complex: names must not leak truth.
    order = rng.permutation(cfg.n_genes)
    complex_names = _names("CPLX_", n_complexes, 3)
    pathway_names = _names("PW_", n_pathways, 2)
    genes = pd.DataFrame(
        {
            "gene": _names("GENE_", cfg.n_genes),
            "complex": np.array(complex_names)[complex_of_gene[order]],
            "pathway": np.array(pathway_names)[pathway_of_complex[complex_of_gene[order]]],
            "active": active[order],
            "strength": strength[order].round(4),
        }
    )
    programs = programs[order]
    genes["phenotype"] = [_summary(p) for p in programs]
    opposing_names = [(pathway_names[a], pathway_names[b]) for a, b in opposing]
    return genes, programs, opposing_names


def _make_guides(cfg: SynthConfig, genes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_genes * cfg.guides_per_gene
    # Most guides cut well (Beta around 0.75); a fraction do almost nothing.
    eff = rng.beta(6.0, 2.0, n)
    dead = rng.random(n) < cfg.dead_guide_fraction
    eff[dead] = rng.uniform(0.0, 0.08, dead.sum())
    gene_index = np.repeat(np.arange(cfg.n_genes), cfg.guides_per_gene)
    suffix = np.tile(np.arange(1, cfg.guides_per_gene + 1), cfg.n_genes)
    names = genes["gene"].to_numpy()[gene_index]
    return pd.DataFrame(
        {
            "guide": [f"{g}_g{s}" for g, s in zip(names, suffix)],
            "gene": names,
            "gene_index": gene_index,
            "efficiency": eff.round(4),
        }
    )


def _make_orfs(cfg: SynthConfig, genes: pd.DataFrame, gene_programs: np.ndarray, rng: np.random.Generator):
    idx = np.sort(rng.choice(cfg.n_genes, size=cfg.n_orf_genes, replace=False))
    n = len(idx)
    if n == 0:
        return pd.DataFrame({"gene": [], "gene_index": [], "active": [], "strength": [], "phenotype": []}), np.zeros(
            (0, K)
        )
    # Overexpression is its own program: partly anti-correlated with the knockout where that has
    # one, mostly gene-specific (gain-of-function), and visible less often (ORF screens replicate worse).
    ko = gene_programs[idx]
    ko_dir = np.where(np.linalg.norm(ko, axis=1, keepdims=True) > 0, _unit(ko + 1e-12), 0.0)
    dirs = _unit(-0.45 * ko_dir + 0.9 * np.stack([_sparse_direction(rng) for _ in range(n)]))
    active = rng.random(n) < cfg.orf_active_fraction
    strength = np.where(active, np.exp(rng.normal(np.log(1.2), 0.3, n)), 0.0) * cfg.phenotype_strength
    programs = strength[:, None] * dirs
    orfs = pd.DataFrame(
        {
            "gene": genes["gene"].to_numpy()[idx],
            "gene_index": idx,
            "active": active,
            "strength": strength.round(4),
            "phenotype": [_summary(p) for p in programs],
        }
    )
    return orfs, programs


def _make_compounds(cfg: SynthConfig, genes: pd.DataFrame, gene_programs: np.ndarray, rng: np.random.Generator):
    n = cfg.n_compounds
    active_genes = np.flatnonzero(genes["active"].to_numpy())
    pool = active_genes if len(active_genes) else np.arange(cfg.n_genes)
    conc = np.asarray(cfg.concentrations_um)
    lo, hi = conc.min(), conc.max()
    rows, programs = [], np.zeros((n, K))
    for i in range(n):
        active = rng.random() >= cfg.inactive_compound_fraction
        n_targets = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
        # The primary target of an active compound is a gene with a phenotype, so the compound
        # has a known answer ("resembles GENE_x"); secondary targets are any gene (polypharmacology).
        primary = int(rng.choice(pool if active else np.arange(cfg.n_genes)))
        others = [int(g) for g in rng.choice(cfg.n_genes, size=n_targets - 1, replace=False) if g != primary]
        targets = [primary] + others
        weights = np.array([1.0] + list(rng.uniform(0.3, 0.8, len(others))))
        efficacy = float(rng.uniform(0.9, 1.6)) if active else 0.0
        if active:
            programs[i] = efficacy * (weights[:, None] * gene_programs[targets]).sum(0) / weights.sum() * 1.4
        # EC50 inside the tested range so the dose response is visible; toxicity mostly near the top.
        ec50 = float(np.exp(rng.uniform(np.log(lo * 3), np.log(max(hi / 3, lo * 3))))) if active else np.nan
        toxic = (
            float(np.exp(rng.uniform(np.log(max(hi / 10, lo)), np.log(hi * 3))))
            if active and rng.random() < cfg.toxic_compound_fraction
            else np.nan
        )
        rows.append(
            {
                "compound": f"CPD_{i + 1:0{max(4, len(str(n)))}d}",
                "targets": "|".join(genes["gene"].iloc[t] for t in targets),
                "active": active,
                "ec50_um": round(ec50, 5) if active else np.nan,
                "hill": round(float(rng.uniform(0.8, 2.0)), 3),
                "toxic_um": round(toxic, 5) if np.isfinite(toxic) else np.nan,
                "efficacy": round(efficacy, 4),
                "phenotype": _summary(programs[i]),
            }
        )
    cols = ["compound", "targets", "active", "ec50_um", "hill", "toxic_um", "efficacy", "phenotype"]
    return pd.DataFrame(rows, columns=cols), programs


def relationships(bio: Biology) -> pd.DataFrame:
    """Annotation pairs in the format of the real sets (CORUM.txt etc.): both directions listed.

    ``synthetic_complex``: same complex. ``synthetic_pathway``: same pathway, different complex
    (disjoint from the complex pairs). ``synthetic_opposing``: genes of two opposing pathways
    (their programs point in opposite directions, so they should show negative similarity).
    """
    g = bio.genes
    parts = []

    def pairs_within(key: str) -> pd.DataFrame:
        m = g[["gene", key]].merge(g[["gene", key]], on=key, suffixes=("1", "2"))
        return m[m["gene1"] != m["gene2"]]

    cx = pairs_within("complex")
    parts.append(pd.DataFrame({"entity1": cx["gene1"], "entity2": cx["gene2"], "source": "synthetic_complex"}))
    pw = pairs_within("pathway")
    same_cx = set(zip(cx["gene1"], cx["gene2"]))
    keep = [(a, b) not in same_cx for a, b in zip(pw["gene1"], pw["gene2"])]
    pw = pw[keep]
    parts.append(pd.DataFrame({"entity1": pw["gene1"], "entity2": pw["gene2"], "source": "synthetic_pathway"}))
    for a, b in bio.opposing_pathways:
        ga, gb = g.loc[g["pathway"] == a, "gene"], g.loc[g["pathway"] == b, "gene"]
        grid = pd.MultiIndex.from_product([ga, gb]).to_frame(index=False, name=["entity1", "entity2"])
        both = pd.concat([grid, grid.rename(columns={"entity1": "entity2", "entity2": "entity1"})])
        parts.append(both.assign(source="synthetic_opposing"))
    return pd.concat(parts, ignore_index=True)[["entity1", "entity2", "source"]]


def compound_targets(bio: Biology) -> pd.DataFrame:
    """compound, gene, source='synthetic': one row per annotated target (active or not)."""
    c = bio.compounds
    rows = [(cpd, t) for cpd, ts in zip(c["compound"], c["targets"]) for t in ts.split("|")]
    return pd.DataFrame(rows, columns=["compound", "gene"]).assign(source="synthetic")


def program_table(bio: Biology, concentrations: tuple[float, ...]) -> pd.DataFrame:
    """Every latent program as one long table: kind, entity, concentration_um, then one column per axis.

    kinds: crispr_gene (knockout at full efficiency), guide (efficiency x gene), orf,
    compound (one row per tested concentration), positive_control, negative_control (zeros).
    """
    blocks = []

    def block(kind, entities, programs, conc=np.nan):
        df = pd.DataFrame(np.asarray(programs, dtype=float).reshape(-1, K).round(5), columns=list(PROGRAM_AXES))
        df.insert(0, "concentration_um", conc)
        df.insert(0, "entity", list(entities))
        df.insert(0, "kind", kind)
        blocks.append(df)

    block("crispr_gene", bio.genes["gene"], bio.gene_programs)
    gp = bio.gene_programs[bio.guides["gene_index"].to_numpy()] * bio.guides["efficiency"].to_numpy()[:, None]
    block("guide", bio.guides["guide"], gp)
    if len(bio.orfs):
        block("orf", bio.orfs["gene"], bio.orf_programs)
    if len(bio.compounds):
        n, cs = len(bio.compounds), np.asarray(concentrations, dtype=float)
        idx, conc = np.repeat(np.arange(n), len(cs)), np.tile(cs, n)
        block("compound", bio.compounds["compound"].to_numpy()[idx], bio.compound_programs(idx, conc), conc)
    block("positive_control", bio.poscons, bio.poscon_programs)
    block("negative_control", [NEGATIVE_CONTROL_CRISPR, NEGATIVE_CONTROL_COMPOUND], np.zeros((2, K)))
    return pd.concat(blocks, ignore_index=True)
