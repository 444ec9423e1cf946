"""Colour composites of multi-channel fields (RxRx convention) for looking at synthetic cells."""

from __future__ import annotations

import os

import numpy as np

# RxRx colours of w1..w6 (DNA ER RNA AGP Mito PM).
RXRX_COLOURS = (
    np.array(
        [(19, 0, 249), (42, 255, 31), (255, 0, 25), (45, 255, 252), (250, 0, 253), (254, 255, 40)], dtype=np.float32
    )
    / 255.0
)


def composite_rgb(img: np.ndarray, percentiles: tuple[float, float] = (10.0, 99.9)) -> np.ndarray:
    """``(C, H, W)`` uint8/uint16 -> ``(H, W, 3)`` uint8: each channel scaled to its own range,
    coloured, summed and clipped (the RxRx way of showing six channels as one picture).

    The low end is a low percentile rather than the minimum so camera noise in the background
    stays black instead of tinting the whole field."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 3 or img.shape[0] > len(RXRX_COLOURS):
        raise ValueError(f"expected (channels<=6, H, W), got {img.shape}")
    out = np.zeros(img.shape[1:] + (3,), dtype=np.float32)
    for c in range(img.shape[0]):
        lo, hi = np.percentile(img[c], percentiles)
        x = np.clip((img[c] - lo) / max(hi - lo, 1e-6), 0, 1)
        out += x[..., None] * RXRX_COLOURS[c]
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def channel_strip(img: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, C*W)`` uint8, each channel auto-scaled: the grey tiles side by side."""
    tiles = []
    for c in range(img.shape[0]):
        x = img[c].astype(np.float32)
        lo, hi = np.percentile(x, (0.5, 99.7))
        tiles.append((np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8))
    return np.hstack(tiles)


def save_preview(path: str | os.PathLike, sites: list[np.ndarray]) -> str:
    """Save one row per site (composite | grey channel tiles) to a PNG; returns the path."""
    from PIL import Image

    rows = []
    for img in sites:
        comp = composite_rgb(img)
        strip = np.repeat(channel_strip(img)[..., None], 3, axis=2)
        rows.append(np.hstack([comp, np.full((comp.shape[0], 4, 3), 255, np.uint8), strip]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    Image.fromarray(np.vstack(rows)).save(path)
    return str(path)


def pick_preview_wells(screen) -> list[tuple[str, str]]:
    """(label, well_id) of a negative control, the strongest CRISPR well and a positive control,
    all from one plate (so they share its nuisance) and away from the edge when possible."""
    w = screen.wells
    prog = screen.array("latent_program")
    strength = np.linalg.norm(np.asarray(prog), axis=1) if prog is not None else np.zeros(len(w))
    inner = ((w["row"] > 1) & (w["col"] > 1)).to_numpy()
    crispr = (w["perturbation_type"] == "crispr").to_numpy()
    best = int(np.argmax(np.where(crispr, strength, -1)))
    plate = w["plate"].iloc[best]
    on_plate = (w["plate"] == plate).to_numpy() & inner
    picks = [
        ("negative control", on_plate & (w["perturbation_type"] == "negative_control").to_numpy()),
        (f"strongest CRISPR ({w['gene'].iloc[best]})", np.arange(len(w)) == best),
        ("positive control", on_plate & (w["perturbation_type"] == "positive_control").to_numpy()),
    ]
    return [(label, str(w["well_id"].iloc[int(np.flatnonzero(m)[0])])) for label, m in picks if m.any()]


def save_screen_preview(screen_root: str | os.PathLike, path: str | os.PathLike) -> list[tuple[str, str]]:
    """Preview PNG of a written screen (rows: see pick_preview_wells; first site). Returns the picks."""
    from precompute.screen import load_screen

    screen = load_screen(screen_root)
    picks = pick_preview_wells(screen)
    save_preview(path, [screen.load_images(wid)[0] for _, wid in picks])
    return picks
