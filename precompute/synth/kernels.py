"""The per-pixel work of rendering, compiled with numba (one pass per field, no temporaries).

Drawing a cell with numpy costs ~100 array operations on a small box and their call overhead
dominates; one compiled loop over all cells' boxes is ~5x faster. Every random number is drawn
beforehand with numpy (see render.sample_cells), so the kernels are pure arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Columns of the per-cell parameter matrix ``cp`` (n_cells, N_PARAMS).
(
    P_CY,
    P_CX,
    P_HS,
    P_RC,
    P_EXTENT,
    P_RUFFLE,
    P_RN,
    P_NOY,
    P_NOX,
    P_CHROM,
    P_DNA,
    P_ER_DECAY,
    P_RNA_CYTO,
    P_FIB,
    P_MEMB,
    P_MITO_F,
    P_MITO_DECAY,
    P_FIB_K,
) = range(18)
N_PARAMS = 18
N_TEXTURES = 7  # chromatin, reticulum, mottle, fibres, tubular, puncta, ruffle (offset order)


@njit(cache=True, nogil=True)
def _clip01(v):
    return 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)


@njit(cache=True, nogil=True)
def draw_cells_kernel(
    canvas, cp, cell_h, nuc_h, inten, tex_off, spots, chrom, ret, mot, fibres, tub, pun, ruf
):  # pragma: no cover - compiled
    """Add every cell to ``canvas`` (C, Hc, Wc) float32 in place.

    cp (n, N_PARAMS): centre, box half-size, radii, nucleus offset, stain parameters (P_* names).
    cell_h (n, 8): cell-border cos/sin coefficients for k = 2..5; nuc_h (n, 3): nucleus k=2 cos/sin
    and k=3 cos; inten (n, C) channel brightness; tex_off (n, N_TEXTURES, 2) texture windows;
    spots (n, S, 5): (dy, dx from nucleus centre, sigma, amplitude, channel) - nucleoli and Golgi.
    """
    n_ch = canvas.shape[0]
    for c in range(cp.shape[0]):
        hs = int(cp[c, P_HS])
        y0 = int(round(cp[c, P_CY])) - hs
        x0 = int(round(cp[c, P_CX])) - hs
        rc, extent, ruf_a = cp[c, P_RC], cp[c, P_EXTENT], cp[c, P_RUFFLE]
        rn, noy, nox = cp[c, P_RN], cp[c, P_NOY], cp[c, P_NOX]
        fk = int(cp[c, P_FIB_K])
        lim2 = (extent + 2.0) ** 2
        n = 2 * hs + 1
        for i in range(n):
            y = float(i - hs)
            for j in range(n):
                x = float(j - hs)
                r2 = x * x + y * y
                if r2 > lim2:
                    continue
                rho = math.sqrt(r2)
                c1, s1 = (x / rho, y / rho) if rho > 0 else (1.0, 0.0)
                c2, s2 = c1 * c1 - s1 * s1, 2.0 * c1 * s1
                c3, s3 = c2 * c1 - s2 * s1, s2 * c1 + c2 * s1
                c4, s4 = c2 * c2 - s2 * s2, 2.0 * c2 * s2
                c5, s5 = c4 * c1 - s4 * s1, s4 * c1 + c4 * s1
                h = cell_h[c]
                rfac = (
                    1.0 + h[0] * c2 + h[1] * s2 + h[2] * c3 + h[3] * s3 + h[4] * c4 + h[5] * s4 + h[6] * c5 + h[7] * s5
                )
                rf = ruf[tex_off[c, 6, 0] + i, tex_off[c, 6, 1] + j]
                dc = rho / (rc * rfac) * (1.0 + ruf_a * rf)
                mc = _clip01((1.0 - dc) * rc / 2.0 + 0.5)
                if mc <= 0.0:
                    continue
                thick = math.sqrt(_clip01(1.0 - dc))
                yn, xn = y - noy, x - nox
                rhon = math.sqrt(xn * xn + yn * yn)
                cn, sn = (xn / rhon, yn / rhon) if rhon > 0 else (1.0, 0.0)
                cn2, sn2 = cn * cn - sn * sn, 2.0 * cn * sn
                cn3 = cn2 * cn - sn2 * sn
                rnf = 1.0 + nuc_h[c, 0] * cn2 + nuc_h[c, 1] * sn2 + nuc_h[c, 2] * cn3
                dn = rhon / (rn * rnf) * (1.0 + 0.015 * rf)
                mn = _clip01((1.0 - dn) * rn + 0.5)
                ring_n = _clip01(1.0 - abs(dn - 1.0) * rn / 1.6)
                ring_c = _clip01(1.0 - abs(dc - 0.93) * rc / 2.5)
                cyto = _clip01(mc - mn)
                m = mot[tex_off[c, 2, 0] + i, tex_off[c, 2, 1] + j]
                ring_c *= m * m  # membranes stain unevenly, in smooth patches
                yy, xx = y0 + i, x0 + j
                # DNA: chromatin texture inside the nucleus.
                v = 0.82 + cp[c, P_CHROM] * chrom[tex_off[c, 0, 0] + i, tex_off[c, 0, 1] + j] + 0.12 * ring_n
                canvas[0, yy, xx] += inten[c, 0] * cp[c, P_DNA] * mn * max(v, 0.05)
                # ER: perinuclear reticulum, dim over the nucleus, faint envelope.
                rt = ret[tex_off[c, 1, 0] + i, tex_off[c, 1, 1] + j]
                canvas[1, yy, xx] += inten[c, 1] * (
                    mc * thick * (1.0 - 0.75 * mn) * math.exp(-cp[c, P_ER_DECAY] * dc) * (0.15 + 1.1 * rt)
                    + 0.2 * ring_n
                )
                # RNA: faint nucleoplasm + cytoplasmic haze.
                canvas[2, yy, xx] += inten[c, 2] * (
                    0.35 * mn + cp[c, P_RNA_CYTO] * cyto * thick * math.exp(-1.8 * dc) * m
                )
                # AGP: fibres along the long axis, diffuse cortex, membrane ring.
                fb = fibres[fk, tex_off[c, 3, 0] + i, tex_off[c, 3, 1] + j]
                canvas[3, yy, xx] += inten[c, 3] * (
                    mc * (0.14 * thick + 0.05 + cp[c, P_FIB] * fb) + 0.3 * cp[c, P_MEMB] * ring_c
                )
                # Mito: tubular/punctate network concentrated around the nucleus.
                f = cp[c, P_MITO_F]
                net = (1.0 - f) * tub[tex_off[c, 4, 0] + i, tex_off[c, 4, 1] + j] + f * pun[
                    tex_off[c, 5, 0] + i, tex_off[c, 5, 1] + j
                ]
                canvas[4, yy, xx] += (
                    inten[c, 4]
                    * mc
                    * thick
                    * (1.0 - 0.85 * mn)
                    * math.exp(-cp[c, P_MITO_DECAY] * dc)
                    * (0.25 + 1.8 * net)
                )
                if n_ch > 5:
                    canvas[5, yy, xx] += inten[c, 5] * (cp[c, P_MEMB] * 0.6 * ring_c * m + 0.15 * mc * thick * m)
                # Spots near the nucleus: nucleoli (inside) and Golgi (just outside).
                if rhon < 2.0 * rn:
                    for s in range(spots.shape[1]):
                        amp = spots[c, s, 3]
                        if amp == 0.0:
                            continue
                        dy, dx = yn - spots[c, s, 0], xn - spots[c, s, 1]
                        d2 = dy * dy + dx * dx
                        sg = spots[c, s, 2]
                        if d2 < 9.0 * sg * sg:
                            canvas[int(spots[c, s, 4]), yy, xx] += amp * math.exp(-d2 / (2.0 * sg * sg))


@njit(cache=True, nogil=True)
def finish_kernel(img, gain, offset, illum, noise, photons, read_noise, out):  # pragma: no cover
    """Microscope and camera: out = uint8(clip(S*gain*illum + background + shot/read noise)).

    img (C, H, W) float32 blurred signal; gain, offset (C,); illum (H, W) relative illumination;
    noise (C, H, W) standard normal draws. Shot noise: variance = value / photons (Poisson in photons).
    """
    C, H, W = img.shape
    rn2 = read_noise * read_noise
    for c in range(C):
        g, o = gain[c], offset[c]
        for i in range(H):
            for j in range(W):
                il = illum[i, j]
                v = img[c, i, j] * g * il + o * (0.85 + 0.15 * il)
                v += noise[c, i, j] * math.sqrt(max(v, 0.0) / photons + rn2)
                v = min(max(v, 0.0), 255.0)
                out[c, i, j] = np.uint8(math.floor(v + 0.5))


def warm_up() -> None:
    """Compile (or load from numba's cache) both kernels on toy inputs."""
    f4 = np.float32
    z = np.zeros((8, 8), f4)
    cp = np.zeros((1, N_PARAMS))
    cp[0, [P_CY, P_CX, P_HS, P_RC, P_EXTENT, P_RN]] = (3, 3, 2, 1, 1, 1)
    canvas = np.zeros((6, 8, 8), f4)
    draw_cells_kernel(
        canvas,
        cp,
        np.zeros((1, 8)),
        np.zeros((1, 3)),
        np.ones((1, 6)),
        np.zeros((1, N_TEXTURES, 2), np.int64),
        np.zeros((1, 1, 5)),
        z,
        z,
        z,
        np.zeros((1, 8, 8), f4),
        z,
        z,
        z,
    )
    finish_kernel(
        canvas, np.ones(6, f4), np.zeros(6, f4), np.ones((8, 8), f4), canvas, 1.0, 1.0, np.zeros((6, 8, 8), np.uint8)
    )
