"""Render one field of view as a multi-channel Cell Painting image from a latent program.

Every random number of a field is drawn up front with numpy (:func:`sample_cells`); a compiled
kernel (:mod:`precompute.synth.kernels`) then draws each cell on its small bounding box: an
irregular cell body (a few polar harmonics), an eccentric elliptical nucleus, and per channel the
stain's look - DNA: textured chromatin; ER: perinuclear reticulum plus nuclear envelope; RNA:
nucleoli plus cytoplasmic haze; AGP: actin fibres along the cell axis, cortical ring and a Golgi
patch; Mito: tubular or punctate network around the nucleus; PM: the membrane outline. The field
then goes through the microscope: stain gain, vignetting, camera background, focus blur, shot noise
(Gaussian with the Poisson variance) and read noise, 8-bit quantisation. Cells may cross the border.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from precompute.synth import kernels
from precompute.synth.biology import AXIS, K
from precompute.synth.kernels import (
    P_CHROM,
    P_CX,
    P_CY,
    P_DNA,
    P_ER_DECAY,
    P_EXTENT,
    P_FIB,
    P_FIB_K,
    P_HS,
    P_MEMB,
    P_MITO_DECAY,
    P_MITO_F,
    P_NOX,
    P_NOY,
    P_RC,
    P_RN,
    P_RNA_CYTO,
    P_RUFFLE,
)
from precompute.synth.textures import N_ORIENTATIONS, TextureBank, texture_bank

HALF_MAX = 72  # largest half-size of a cell's bounding box (px)
PAD = 2  # margin around the largest box
# Channel brightness of an average control cell at gain 1, grey levels (DNA ER RNA AGP Mito PM).
BASE_LEVEL = np.array([120.0, 62.0, 52.0, 58.0, 95.0, 58.0], dtype=np.float32)
PHOTONS_PER_GREY = 2.5  # shot noise: variance of a pixel = its value / this (Poisson in photons)
READ_NOISE = 0.7


def phenotype(program: np.ndarray, nucleus_radius_px: float) -> dict[str, float]:
    """Map a latent program (K,) to the drawing parameters of an average cell in the well."""
    p = np.asarray(program, dtype=float)
    if p.shape != (K,):
        raise ValueError(f"program must have shape ({K},), got {p.shape}")
    a = {name: float(p[i]) for name, i in AXIS.items()}
    return {
        "count": float(np.exp(0.5 * a["cell_count"])),
        "cell_r": 2.7 * nucleus_radius_px * float(np.exp(0.22 * a["cell_spread"])),
        "elong": float(np.clip(0.16 + 0.1 * a["cell_elongation"], 0.0, 0.4)),
        "nuc_r": nucleus_radius_px * float(np.exp(0.2 * a["nucleus_size"])),
        "dna": float(np.exp(0.35 * a["nucleus_intensity"])),
        "chromatin": 0.22 * float(np.exp(0.6 * a["nucleus_texture"])),
        "er": float(np.exp(0.4 * a["er_intensity"])),
        "er_decay": 2.0 * float(np.exp(0.5 * a["er_perinuclear"])),
        "nucleoli_n": 1.8 * float(np.exp(0.4 * a["nucleoli"])),
        "nucleoli_size": float(np.exp(0.2 * a["nucleoli"])),
        "nucleoli_int": float(np.exp(0.3 * a["nucleoli"])),
        "rna_cyto": float(np.exp(0.5 * a["rna_cytoplasm"])),
        "fibres": 0.6 * float(np.exp(0.7 * a["actin_fibres"])),
        "membrane": float(np.exp(0.5 * a["membrane"])),
        "mito_frag": float(1.0 / (1.0 + np.exp(0.9 - 1.5 * a["mito_fragmentation"]))),
        "mito_decay": 1.6 * float(np.exp(0.55 * a["mito_perinuclear"])),
        # Rounded (mitotic or dying) cells: a few always, many under bright-nucleus programs (toxicity).
        "rounded": float(np.clip(0.04 * np.exp(1.1 * max(a["nucleus_intensity"], 0.0)), 0.0, 0.7)),
    }


def _place(rng: np.random.Generator, n: int, h: int, w: int, r: float) -> np.ndarray:
    """Cell centres (n, 2) in image coordinates, spread out like adherent cells, border crossing."""
    lo_y, lo_x, hi_y, hi_x = -0.35 * r, -0.35 * r, h + 0.35 * r, w + 0.35 * r
    cand = rng.uniform((lo_y, lo_x), (hi_y, hi_x), size=(n * 4 + 8, 2))
    keep: list[np.ndarray] = []
    min_d2 = (1.25 * r) ** 2
    for c in cand:
        if len(keep) == n:
            break
        if not keep or np.min(np.sum((np.asarray(keep) - c) ** 2, axis=1)) > min_d2:
            keep.append(c)
    # Crowded wells: fill up without spacing rather than silently dropping cells.
    extra = n - len(keep)
    if extra > 0:
        keep.extend(rng.uniform((lo_y, lo_x), (hi_y, hi_x), size=(extra, 2)))
    return np.asarray(keep, dtype=np.float64).reshape(-1, 2)


MAX_NUCLEOLI = 5
N_GOLGI = 3


def sample_cells(
    rng: np.random.Generator, ph: dict, centres: np.ndarray, n_channels: int, bank_size: int
) -> dict[str, np.ndarray]:
    """Draw every random property of ``len(centres)`` cells at once (arrays for the kernel).

    The border is a circle of radius ``rc`` bent by polar harmonics (k=2 elongation along the
    cell's axis ``alpha``, k=3..5 irregularity) and roughened by a noise texture; the nucleus is a
    smaller eccentric ellipse along the same axis. Rounded cells (mitotic or dying) are small, round
    and carry condensed bright chromatin. Returns cp (n, N_PARAMS), cell_h (n, 8), nuc_h (n, 3),
    inten (n, C), tex_off (n, N_TEXTURES, 2) and spots (n, MAX_NUCLEOLI + N_GOLGI, 5).
    """
    n = len(centres)
    rounded = rng.random(n) < ph["rounded"]
    size_f = np.exp(rng.normal(0, 0.16, n))
    rc = ph["cell_r"] * size_f * np.where(rounded, 0.55, 1.0)
    rn = ph["nuc_r"] * np.sqrt(size_f) * np.exp(rng.normal(0, 0.08, n)) * np.where(rounded, 0.72, 1.0)
    rn = np.minimum(rn, 0.62 * rc)
    e = np.where(rounded, 0.03, ph["elong"] * np.exp(rng.normal(0, 0.35, n)))
    amps = np.abs(rng.normal(0, (0.1, 0.07, 0.05), (n, 3))) * ~rounded[:, None]
    extent = rc * (1 + e + amps.sum(1) + 0.15)
    shrink = np.minimum(1.0, (HALF_MAX - 2) / extent)
    rc, rn, extent = rc * shrink, rn * shrink, extent * shrink
    alpha = rng.uniform(0, np.pi, n)
    phases = rng.uniform(0, 2 * np.pi, (n, 3))
    cell_h = np.empty((n, 8))
    cell_h[:, 0], cell_h[:, 1] = e * np.cos(2 * alpha), e * np.sin(2 * alpha)
    cell_h[:, 2::2], cell_h[:, 3::2] = amps * np.cos(phases), amps * np.sin(phases)
    en = np.where(rounded, 0.02, np.minimum(0.25, 0.5 * e + np.abs(rng.normal(0, 0.05, n))))
    nuc_h = np.column_stack([en * np.cos(2 * alpha), en * np.sin(2 * alpha), rng.normal(0, 0.03, n)])
    noff = np.clip(rng.normal(0, 0.12, (n, 2)) * rc[:, None], -0.3 * rc[:, None], 0.3 * rc[:, None])

    cp = np.zeros((n, kernels.N_PARAMS))
    cp[:, P_CY], cp[:, P_CX] = centres[:, 0], centres[:, 1]
    cp[:, P_HS] = np.ceil(extent) + 2
    cp[:, P_RC], cp[:, P_EXTENT], cp[:, P_RN] = rc, extent, rn
    cp[:, P_RUFFLE] = np.where(rounded, 0.03, 0.05)
    cp[:, P_NOY], cp[:, P_NOX] = noff[:, 0], noff[:, 1]
    cp[:, P_CHROM] = ph["chromatin"] * np.where(rounded, 1.8, 1.0)
    cp[:, P_DNA] = ph["dna"] * np.where(rounded, 1.9, 1.0)
    cp[:, P_ER_DECAY] = ph["er_decay"]
    cp[:, P_RNA_CYTO] = ph["rna_cyto"]
    cp[:, P_FIB] = np.where(rounded, 0.15, ph["fibres"])
    cp[:, P_MEMB] = ph["membrane"]
    cp[:, P_MITO_F] = np.minimum(1.0, ph["mito_frag"] + np.where(rounded, 0.5, 0.0))
    cp[:, P_MITO_DECAY] = ph["mito_decay"]
    cp[:, P_FIB_K] = np.rint(alpha / np.pi * N_ORIENTATIONS) % N_ORIENTATIONS
    inten = np.exp(rng.normal(0, 0.1, (n, 1))) * np.exp(rng.normal(0, 0.16, (n, n_channels))) * BASE_LEVEL[:n_channels]
    inten[:, 1] *= ph["er"]
    box = 2 * cp[:, P_HS].astype(np.int64) + 1
    tex_off = (rng.random((n, kernels.N_TEXTURES, 2)) * (bank_size - box)[:, None, None]).astype(np.int64)

    # Spots relative to the nucleus centre: nucleoli inside (RNA), a Golgi patch beside it (AGP).
    spots = np.zeros((n, MAX_NUCLEOLI + N_GOLGI, 5))
    n_nuc = np.minimum(MAX_NUCLEOLI, 1 + rng.poisson(ph["nucleoli_n"], n)) * ~rounded
    ang = rng.uniform(0, 2 * np.pi, (n, MAX_NUCLEOLI))
    rad = rn[:, None] * 0.5 * np.sqrt(rng.random((n, MAX_NUCLEOLI)))
    on = np.arange(MAX_NUCLEOLI)[None, :] < n_nuc[:, None]
    spots[:, :MAX_NUCLEOLI, 0], spots[:, :MAX_NUCLEOLI, 1] = rad * np.sin(ang), rad * np.cos(ang)
    spots[:, :MAX_NUCLEOLI, 2] = ph["nucleoli_size"] * np.exp(rng.normal(0, 0.2, (n, MAX_NUCLEOLI)))
    spots[:, :MAX_NUCLEOLI, 3] = on * 1.9 * ph["nucleoli_int"] * inten[:, 2:3]
    spots[:, :MAX_NUCLEOLI, 4] = 2
    g_ang = rng.uniform(0, 2 * np.pi, (n, 1)) + rng.normal(0, 0.35, (n, N_GOLGI))
    g_rad = rn[:, None] * rng.uniform(1.05, 1.45, (n, N_GOLGI))
    spots[:, MAX_NUCLEOLI:, 0], spots[:, MAX_NUCLEOLI:, 1] = g_rad * np.sin(g_ang), g_rad * np.cos(g_ang)
    spots[:, MAX_NUCLEOLI:, 2] = rng.uniform(1.0, 1.8, (n, N_GOLGI))
    spots[:, MAX_NUCLEOLI:, 3] = 0.55 * inten[:, 3:4] * ~rounded[:, None]
    spots[:, MAX_NUCLEOLI:, 4] = 3
    return {"cp": cp, "cell_h": cell_h, "nuc_h": nuc_h, "inten": inten, "tex_off": tex_off, "spots": spots}


@lru_cache(maxsize=8)
def _illumination(h: int, w: int, vignette: float) -> np.ndarray:
    """Relative illumination: 1 in the centre falling by ``vignette`` at the corners."""
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2)
    return (1.0 - vignette * (y[:, None] ** 2 + x[None, :] ** 2) / 2.0).astype(np.float32)


def render_site(
    program: np.ndarray,
    rng: np.random.Generator,
    *,
    image_size: int = 256,
    n_channels: int = 6,
    gain: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    vignette: float = 0.15,
    blur: float = 0.8,
    density: float = 1.0,
    cells_per_site: float = 30.0,
    nucleus_radius_px: float = 8.5,
    bank: TextureBank | None = None,
    seed: int = 0,
) -> np.ndarray:
    """One field of view, ``(n_channels, image_size, image_size)`` uint8.

    ``program`` (K,) is the well's realised latent program; ``gain``/``offset`` (n_channels,) the
    stain gain and camera background in grey levels; ``vignette`` the corner illumination loss;
    ``blur`` the focus blur sigma (px); ``density`` the seeding factor. ``cells_per_site`` is the
    mean count of a control field at 256x256 and scales with area. Randomness comes from ``rng``;
    the texture bank from ``seed`` (or ``bank``).
    """
    h = w = int(image_size)
    bank = bank or texture_bank(seed)
    ph = phenotype(program, nucleus_radius_px)
    gain = np.ones(n_channels, np.float32) if gain is None else np.asarray(gain, np.float32)
    offset = np.full(n_channels, 8.0, np.float32) if offset is None else np.asarray(offset, np.float32)
    if gain.shape != (n_channels,) or offset.shape != (n_channels,):
        raise ValueError(f"gain and offset must have shape ({n_channels},), got {gain.shape} and {offset.shape}")

    mean_cells = cells_per_site * (h * w) / 256**2 * density * ph["count"]
    n_cells = int(rng.poisson(mean_cells))
    m = HALF_MAX + PAD
    canvas = np.zeros((n_channels, h + 2 * m, w + 2 * m), dtype=np.float32)
    centres = _place(rng, n_cells, h, w, ph["cell_r"]) + m
    if n_cells:
        cells = sample_cells(rng, ph, centres, n_channels, bank.size)
        kernels.draw_cells_kernel(
            canvas,
            cells["cp"],
            cells["cell_h"],
            cells["nuc_h"],
            cells["inten"],
            cells["tex_off"],
            cells["spots"],
            bank.chromatin,
            bank.reticulum,
            bank.mottle,
            bank.fibres,
            bank.tubular,
            bank.puncta,
            bank.ruffle,
        )
    img = canvas[:, m : m + h, m : m + w]
    # Focus blur on the signal; gain, vignetting, background and noise in one compiled pass.
    sig = float(max(blur, 0.0))
    if sig > 0.05:
        img = ndimage.gaussian_filter(img, sigma=(0.0, sig, sig), mode="nearest", truncate=3.0)
    else:
        img = np.ascontiguousarray(img)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    out = np.empty(img.shape, dtype=np.uint8)
    kernels.finish_kernel(
        img, gain, offset, _illumination(h, w, round(float(vignette), 4)), noise, PHOTONS_PER_GREY, READ_NOISE, out
    )
    return out
