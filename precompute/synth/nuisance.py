"""Technical variation, as strong as in real screens: batch, plate and well-position effects.

Per batch: per-channel stain gain and camera background, illumination vignetting, focus (blur),
seeding density, and a latent shift of the cells themselves (another passage, another serum lot).
Per plate: smaller versions of the same, plus row (stain dispensing) and column (seeding) gradients.
Per well position: edge wells evaporate, so they hold fewer cells that stain brighter; the second
ring a little. Sizes are chosen so a batch moves image statistics more than most perturbations do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.synth.biology import PROGRAM_AXES, K
from precompute.synth.config import SynthConfig

EDGE_DENSITY, EDGE_GAIN = 0.68, 1.18  # edge-well cell-count and brightness factors at effect 1.0
RING2_DENSITY, RING2_GAIN = 0.88, 1.06


@dataclass
class Nuisance:
    """Per-well technical parameters (row order = wells table) and the per-plate truth behind them.

    gain, offset: (n, C) multiplicative stain/camera gain and additive background (grey levels);
    vignette (n,): fractional fall-off of illumination at the image corner; blur (n,): focus blur
    sigma in pixels; density (n,): seeding-density factor; shift (n, K): latent program shift.
    """

    gain: np.ndarray
    offset: np.ndarray
    vignette: np.ndarray
    blur: np.ndarray
    density: np.ndarray
    shift: np.ndarray
    plates: pd.DataFrame

    def columns(self, channels: tuple[str, ...]) -> list[str]:
        return [f"gain_{c}" for c in channels] + [f"offset_{c}" for c in channels] + ["vignette", "blur_px", "density"]

    def as_array(self) -> np.ndarray:
        """(n, 2C+3) float32 in the order of :meth:`columns`."""
        return np.column_stack([self.gain, self.offset, self.vignette, self.blur, self.density]).astype(np.float32)


def edge_ring(row: np.ndarray, col: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Distance of each well from the plate border in wells: 0 = edge, 1 = second ring, ..."""
    rows, cols = shape
    return np.minimum.reduce([row - 1, rows - row, col - 1, cols - col])


def make_nuisance(cfg: SynthConfig, batch: np.ndarray, plate: np.ndarray, row: np.ndarray, col: np.ndarray) -> Nuisance:
    """Draw batch and plate effects (seeded by cfg.seed) and evaluate them for every well.

    ``batch``, ``plate`` (global plate index), ``row``, ``col`` (1-based) are (n,) integer arrays.
    """
    rng = np.random.default_rng([cfg.seed, 303])
    C, B = cfg.n_channels, cfg.n_batches
    n_plates = int(plate.max()) + 1 if len(plate) else 0
    be, pe, we = cfg.batch_effect, cfg.plate_effect, cfg.well_position_effect
    # Batch level.
    b_gain = rng.normal(0.0, 0.30 * be, (B, C))
    b_offset = rng.uniform(5.0, 5.0 + 9.0 * be, (B, C))
    b_vig = rng.uniform(0.05, 0.05 + 0.35 * be, B)
    b_blur = rng.uniform(0.4, 0.4 + 1.0 * be, B)
    b_dens = rng.normal(0.0, 0.22 * be, B)
    b_shift = rng.normal(0.0, 0.30 * be, (B, K))
    # Plate level: each plate belongs to one batch (plate // plates_per_batch via the wells given).
    plate_batch = np.zeros(n_plates, dtype=np.int64)
    plate_batch[plate] = batch
    p_gain = b_gain[plate_batch] + rng.normal(0.0, 0.07 * pe, (n_plates, C))
    p_offset = b_offset[plate_batch] + rng.normal(0.0, 0.8 * pe, (n_plates, C))
    p_blur = np.maximum(0.3, b_blur[plate_batch] + rng.normal(0.0, 0.12 * pe, n_plates))
    p_dens = b_dens[plate_batch] + rng.normal(0.0, 0.08 * pe, n_plates)
    p_shift = b_shift[plate_batch] + rng.normal(0.0, 0.08 * pe, (n_plates, K))
    row_slope = rng.normal(0.0, 0.10 * pe, n_plates)  # stain dispensed along rows
    col_slope = rng.normal(0.0, 0.12 * pe, n_plates)  # cells seeded along columns

    rows, cols = cfg.plate_shape
    ring = edge_ring(row, col, (rows, cols))
    pos_dens = np.where(ring == 0, EDGE_DENSITY, np.where(ring == 1, RING2_DENSITY, 1.0)) ** we
    pos_gain = np.where(ring == 0, EDGE_GAIN, np.where(ring == 1, RING2_GAIN, 1.0)) ** we
    rpos = (row - (rows + 1) / 2) / rows
    cpos = (col - (cols + 1) / 2) / cols
    gain = np.exp(p_gain[plate]) * (pos_gain * (1.0 + row_slope[plate] * rpos))[:, None]
    density = np.exp(p_dens[plate]) * pos_dens * (1.0 + col_slope[plate] * cpos)
    blur = np.maximum(0.3, p_blur[plate] + rng.normal(0.0, 0.08, len(plate)))

    table = pd.DataFrame({"plate_index": np.arange(n_plates), "batch_index": plate_batch})
    for i, ch in enumerate(cfg.channels):
        table[f"gain_{ch}"] = np.exp(p_gain[:, i]).round(4)
    for i, ch in enumerate(cfg.channels):
        table[f"offset_{ch}"] = p_offset[:, i].round(3)
    table["vignette"] = b_vig[plate_batch].round(4)
    table["blur_px"] = p_blur.round(4)
    table["density"] = np.exp(p_dens).round(4)
    table["row_gain_slope"] = row_slope.round(4)
    table["col_density_slope"] = col_slope.round(4)
    for i, ax in enumerate(PROGRAM_AXES):
        table[f"shift_{ax}"] = p_shift[:, i].round(4)
    return Nuisance(
        gain=gain,
        offset=p_offset[plate],
        vignette=b_vig[plate_batch][plate],
        blur=blur,
        density=density,
        shift=p_shift[plate],
        plates=table,
    )
