"""Whole synthetic screens: the model (biology + layout + nuisance) and the image writer.

``build_model(cfg)`` draws everything that is not pixels; ``generate_screen`` renders every site
(in worker processes, each well seeded by (seed, well index) so the output does not depend on the
number of workers) and writes the screen with :func:`precompute.screen.write_rxrx_screen`, the
truth tables beside it under ``ground_truth/``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.image_io import EncodedImages, encode_pngs
from precompute.screen import write_rxrx_screen
from precompute.synth import biology as bio_mod
from precompute.synth.biology import PROGRAM_AXES, Biology, make_biology
from precompute.synth.config import SynthConfig
from precompute.synth.layout import Layout, batch_names, make_layout, perturbation_programs, wells_table
from precompute.synth.nuisance import Nuisance, make_nuisance

RELATIONSHIP_SOURCES = {
    "synthetic_complex": "same complex (programs nearly identical when both genes are active)",
    "synthetic_pathway": "same pathway, different complex (programs resemble each other less)",
    "synthetic_opposing": "genes of two opposing pathways (programs point in opposite directions)",
}


@dataclass
class SynthModel:
    """Everything about a synthetic screen except pixels; row order of arrays = ``wells``.

    pert_programs (n, K): what each well's perturbation does; programs (n, K): what its cells show
    (perturbation + batch/plate latent shift + well-to-well noise).
    """

    config: SynthConfig
    biology: Biology
    layout: Layout
    wells: pd.DataFrame
    nuisance: Nuisance
    pert_programs: np.ndarray
    programs: np.ndarray


def build_model(cfg: SynthConfig) -> SynthModel:
    """Draw biology, layout and nuisance for ``cfg`` (deterministic in cfg.seed)."""
    cfg = cfg.validated()
    biology = make_biology(cfg, np.random.default_rng([cfg.seed, 1]))
    lay = make_layout(cfg, biology)
    wells = wells_table(cfg, biology, lay)
    nz = make_nuisance(cfg, lay.batch, lay.plate, lay.row, lay.col)
    pert = perturbation_programs(biology, lay)
    noise = np.random.default_rng([cfg.seed, 505]).standard_normal(pert.shape, dtype=np.float32)
    programs = (pert + nz.shift + cfg.well_noise * noise).astype(np.float32)
    return SynthModel(cfg, biology, lay, wells, nz, pert.astype(np.float32), programs)


def ground_truth_tables(model: SynthModel) -> dict[str, pd.DataFrame]:
    """Truth written beside the screen (``ground_truth/{key}.csv``); see docs in the package."""
    b, cfg = model.biology, model.config
    plates = model.nuisance.plates.copy()
    # The wells table lists plates in plate-index order, plate_format wells each.
    plate_names = model.wells["plate"].to_numpy()[:: cfg.plate_format]
    plates.insert(0, "plate", plate_names[plates["plate_index"].to_numpy()])
    plates.insert(0, "batch", np.array(batch_names(cfg))[plates["batch_index"].to_numpy()])
    return {
        "genes": b.genes,
        "guides": b.guides.drop(columns=["gene_index"]),
        "orfs": b.orfs.drop(columns=["gene_index"]),
        "compounds": b.compounds,
        "relationships": bio_mod.relationships(b),
        "compound_targets": bio_mod.compound_targets(b),
        "latent_programs": bio_mod.program_table(b, cfg.concentrations_um),
        "batch_effects": plates.drop(columns=["plate_index", "batch_index"]),
    }


def descriptor_extra(model: SynthModel, arrays: dict[str, np.ndarray]) -> dict:
    cfg = model.config
    columns = {"latent_program": list(PROGRAM_AXES), "nuisance": model.nuisance.columns(cfg.channels)}
    return {
        "synthetic": {
            "generator": "precompute.synth",
            # ``workers`` is left out: it changes speed, never output, and must not change the bytes.
            "config": {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(cfg).items()
                if k != "workers"
            },
            "program_axes": list(PROGRAM_AXES),
            "array_columns": {k: columns[k] for k in arrays if k in columns},
            "relationship_sources": RELATIONSHIP_SOURCES,
            "plates_per_batch": model.layout.n_plates_per_batch,
            "replicate_scale": model.layout.replicate_scale,
        }
    }


# --- rendering -------------------------------------------------------------------------------

_STATE: dict = {}


def _init_worker(cfg: SynthConfig, programs, gain, offset, vignette, blur, density) -> None:
    from precompute.synth import kernels
    from precompute.synth.textures import texture_bank

    _STATE.update(
        cfg=cfg,
        programs=programs,
        gain=gain,
        offset=offset,
        vignette=vignette,
        blur=blur,
        density=density,
        bank=texture_bank(cfg.seed),
    )
    kernels.warm_up()


def render_well(
    cfg: SynthConfig,
    index: int,
    program: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    vignette: float,
    blur: float,
    density: float,
    bank=None,
) -> np.ndarray:
    """All sites of well ``index``: ``(n_sites, C, H, W)`` uint8, seeded by (cfg.seed, index)."""
    from precompute.synth.render import render_site

    rng = np.random.default_rng([cfg.seed, 606, int(index)])
    return np.stack(
        [
            render_site(
                program,
                rng,
                image_size=cfg.image_size,
                n_channels=cfg.n_channels,
                gain=gain,
                offset=offset,
                vignette=float(vignette),
                blur=float(blur),
                density=float(density),
                cells_per_site=cfg.cells_per_site,
                nucleus_radius_px=cfg.nucleus_radius_px,
                bank=bank,
                seed=cfg.seed,
            )
            for _ in range(cfg.n_sites)
        ]
    )


def _render_index(i: int) -> tuple[int, np.ndarray]:
    s = _STATE
    return i, render_well(
        s["cfg"],
        i,
        s["programs"][i],
        s["gain"][i],
        s["offset"][i],
        s["vignette"][i],
        s["blur"][i],
        s["density"][i],
        s["bank"],
    )


def iter_well_images(model: SynthModel, workers: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(well_id, images)`` in wells-table order, rendering in ``workers`` processes."""
    cfg = model.config
    workers = cfg.workers if workers is None else workers
    nz = model.nuisance
    init_args = (
        cfg,
        model.programs,
        nz.gain.astype(np.float32),
        nz.offset.astype(np.float32),
        nz.vignette,
        nz.blur,
        nz.density,
    )
    ids = model.wells["well_id"].to_numpy()
    n = len(ids)
    if workers <= 1 or n < 8:
        _init_worker(*init_args)
        for i in range(n):
            yield ids[i], _render_index(i)[1]
        return
    # fork: workers inherit the imported modules, compiled kernels and textures (fast start).
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    _init_worker(*init_args)  # compile once in the parent so forked workers start warm
    with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        # Workers also PNG-encode: compression is a third of the cost and would otherwise run
        # serially in the writing process.
        for i, enc in pool.imap(_render_encoded, range(n), chunksize=4):
            yield ids[i], enc


def _render_encoded(i: int) -> tuple[int, EncodedImages]:
    j, arr = _render_index(i)
    return j, encode_pngs(arr)


def generate_screen(config: SynthConfig, out_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Render and write a whole synthetic screen with images; returns the screen folder.

    Layout on disk is :func:`precompute.screen.write_rxrx_screen`'s; ground truth goes to
    ``ground_truth/`` and per-well arrays ``latent_program`` (n, K) and ``nuisance`` (n, 2C+3)
    beside the metadata (column names in ``screen.json`` under ``synthetic.array_columns``).
    """
    model = build_model(config)
    arrays = {"latent_program": model.pert_programs, "nuisance": model.nuisance.as_array()}
    wrap = None
    if progress:
        from tqdm.auto import tqdm

        def wrap(it):
            return tqdm(it, total=len(model.wells), desc=f"rendering {config.name}", unit="well")

    return write_rxrx_screen(
        out_dir,
        model.wells,
        iter_well_images(model),
        channels=config.channels,
        n_sites=config.n_sites,
        name=config.name,
        ground_truth=ground_truth_tables(model),
        extra=descriptor_extra(model, arrays),
        arrays=arrays,
        progress=wrap,
        threads=2,
    )
