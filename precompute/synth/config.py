"""Configuration of a synthetic screen: one dataclass, named presets, every dimension a field.

The defaults are the ``demo`` preset. Sizes that depend on each other (plates needed to hold the
library, replicates that fill a large screen) are derived in :mod:`precompute.synth.layout`, not
stored here, so a config stays a plain record of what the user asked for.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from precompute.contract import CHANNELS_5, CHANNELS_6, PLATE_FORMATS


class SynthConfigError(ValueError):
    """A synthetic-screen setting that cannot work; the message names the field and value."""


def log_concentrations(n: int, low_um: float = 0.01, high_um: float = 10.0) -> tuple[float, ...]:
    """``n`` log-spaced concentrations from ``low_um`` to ``high_um`` (RxRx3 spans 0.003-10 uM)."""
    if n < 1:
        raise SynthConfigError(f"need at least one concentration, got {n}")
    if n == 1:
        return (float(high_um),)
    step = (math.log10(high_um) - math.log10(low_um)) / (n - 1)
    return tuple(float(f"{10 ** (math.log10(low_um) + i * step):.4g}") for i in range(n))


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a synthetic Cell Painting screen. Same config + seed = same screen.

    Library: ``n_genes`` knocked out with ``guides_per_gene`` CRISPR guides each, ``n_orf_genes``
    of them also overexpressed, ``n_compounds`` compounds at ``concentrations_um``. Each unit
    (guide, ORF, compound x concentration) is placed ``*_replicates`` times, spread over batches.
    ``plates_per_batch=None`` uses the fewest plates that hold the library; ``n_wells`` (mostly for
    embeddings-only screens) instead asks for about that many wells and scales replicates to fill.
    """

    name: str = "synthetic-demo"
    seed: int = 0
    # Physical screen.
    n_batches: int = 3
    plates_per_batch: int | None = None
    plate_format: int = 384
    n_wells: int | None = None
    n_sites: int = 1
    n_channels: int = 6
    image_size: int = 256
    # Controls per plate (None: 1/16 of the plate negative, 3 positive controls x plate/192).
    negative_controls_per_plate: int | None = None
    positive_controls: int = 3
    positive_replicates_per_plate: int | None = None
    # Library.
    n_genes: int = 240
    guides_per_gene: int = 3
    crispr_replicates: int = 1
    n_orf_genes: int = 40
    orf_replicates: int = 2
    n_compounds: int = 24
    concentrations_um: tuple[float, ...] = field(default_factory=lambda: log_concentrations(4))
    compound_replicates: int = 2
    # Hidden biology.
    complex_size: tuple[int, int] = (3, 6)
    complexes_per_pathway: tuple[int, int] = (2, 4)
    pathway_active_fraction: float = 0.62
    complex_active_fraction: float = 0.85
    gene_active_fraction: float = 0.9
    opposing_pathway_fraction: float = 0.35
    dead_guide_fraction: float = 0.12
    orf_active_fraction: float = 0.5
    inactive_compound_fraction: float = 0.25
    toxic_compound_fraction: float = 0.5
    phenotype_strength: float = 1.0
    # Nuisance (1.0 = as strong as in real screens: batch > most perturbations).
    batch_effect: float = 1.0
    plate_effect: float = 1.0
    well_position_effect: float = 1.0
    well_noise: float = 0.15
    # Images.
    cells_per_site: float = 30.0  # mean cell count of a control site at 256x256 (scales with area)
    nucleus_radius_px: float = 8.5
    # Embeddings-only mode.
    embedding_dim: int = 384
    embedding_noise: float = 0.6
    # Execution.
    workers: int = 2

    PRESETS = ("demo", "tiny", "large")

    @classmethod
    def preset(cls, name: str, **overrides) -> SynthConfig:
        """A named preset with optional field overrides.

        ``demo``: 3 batches x one 384-well plate, 6 channels, 256x256, 240 genes x 3 guides, 40 ORFs,
        24 compounds x 4 concentrations; renders in well under a minute on two cores.
        ``tiny``: 2 batches x one 96-well plate, 64x64 images, about 40 genes; for tests.
        ``large``: 1536-well plates, about 1,000,000 wells, 17,000 genes; for embeddings-only mode.
        """
        base: dict = {}
        if name == "demo":
            pass
        elif name == "tiny":
            base = dict(
                name="synthetic-tiny",
                n_batches=2,
                plate_format=96,
                image_size=64,
                n_genes=40,
                guides_per_gene=2,
                n_orf_genes=0,
                n_compounds=6,
                concentrations_um=log_concentrations(3),
                compound_replicates=1,
                negative_controls_per_plate=8,
                positive_replicates_per_plate=1,
                embedding_dim=64,
            )
        elif name == "large":
            base = dict(
                name="synthetic-large",
                n_batches=24,
                plate_format=1536,
                n_wells=1_000_000,
                n_genes=17_000,
                guides_per_gene=4,
                n_orf_genes=2_000,
                n_compounds=1_600,
                concentrations_um=log_concentrations(8, 0.003, 10.0),
            )
        else:
            raise SynthConfigError(f"unknown preset {name!r}; known: {list(cls.PRESETS)}")
        base.update(overrides)
        return cls(**base).validated()

    def replace(self, **changes) -> SynthConfig:
        """A copy with some fields changed (and checked)."""
        return dataclasses.replace(self, **changes).validated()

    @property
    def channels(self) -> tuple[str, ...]:
        return CHANNELS_6 if self.n_channels == 6 else CHANNELS_5

    @property
    def plate_shape(self) -> tuple[int, int]:
        return PLATE_FORMATS[self.plate_format]

    @property
    def n_negative_per_plate(self) -> int:
        if self.negative_controls_per_plate is not None:
            return self.negative_controls_per_plate
        return max(4, self.plate_format // 16)

    @property
    def n_positive_reps_per_plate(self) -> int:
        if self.positive_replicates_per_plate is not None:
            return self.positive_replicates_per_plate
        return max(1, self.plate_format // 192)

    def validated(self) -> SynthConfig:
        """Return self, or raise SynthConfigError naming the first impossible setting."""

        def bad(fld: str, why: str) -> SynthConfigError:
            return SynthConfigError(f"SynthConfig.{fld}={getattr(self, fld)!r}: {why}")

        if self.plate_format not in PLATE_FORMATS:
            raise bad("plate_format", f"must be one of {sorted(PLATE_FORMATS)}")
        if self.n_channels not in (5, 6):
            raise bad("n_channels", "must be 5 (DNA ER RNA AGP Mito) or 6 (+PM)")
        for f in (
            "n_batches",
            "n_sites",
            "guides_per_gene",
            "crispr_replicates",
            "orf_replicates",
            "compound_replicates",
            "embedding_dim",
            "workers",
        ):
            if getattr(self, f) < (0 if f == "workers" else 1):
                raise bad(f, "must be positive")
        if self.plates_per_batch is not None and self.plates_per_batch < 1:
            raise bad("plates_per_batch", "must be >= 1 or None (as many as the library needs)")
        if self.n_wells is not None and self.n_wells < 1:
            raise bad("n_wells", "must be >= 1")
        if not 16 <= self.image_size <= 4096:
            raise bad("image_size", "must be between 16 and 4096 pixels")
        if self.n_genes < 2:
            raise bad("n_genes", "need at least 2 genes")
        if not 0 <= self.n_orf_genes <= self.n_genes:
            raise bad("n_orf_genes", f"must be between 0 and n_genes={self.n_genes}")
        if self.n_compounds < 0 or self.positive_controls < 1:
            raise bad("n_compounds" if self.n_compounds < 0 else "positive_controls", "out of range")
        if not self.concentrations_um or min(self.concentrations_um) <= 0:
            raise bad("concentrations_um", "need at least one positive concentration")
        lo, hi = self.complex_size
        if not 2 <= lo <= hi:
            raise bad("complex_size", "need 2 <= min <= max genes per complex")
        lo, hi = self.complexes_per_pathway
        if not 1 <= lo <= hi:
            raise bad("complexes_per_pathway", "need 1 <= min <= max")
        rows, cols = self.plate_shape
        free = rows * cols - self.n_negative_per_plate - self.positive_controls * self.n_positive_reps_per_plate
        if self.n_negative_per_plate < 1 or free < 1:
            raise bad(
                "negative_controls_per_plate",
                f"a {self.plate_format}-well plate needs >= 1 negative "
                f"control and room for treatments (controls leave {free} wells)",
            )
        return self
