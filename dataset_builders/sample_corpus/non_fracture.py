"""The non-fracture images of the sample corpus (the figures a fracture filter must drop): an etched
optical micrograph, a colour photograph of a test rig, and the distractor micrographs papers print next to
fractographs: an EBSD colour map, an X-ray CT slice, a wear scar, a cavitation-eroded surface and an oxide
scale in cross-section.

Usage: ``render_test_rig(448, 336, np.random.default_rng(0))`` -> uint8 (336, 448, 3).
"""

from __future__ import annotations

import numpy as np

from .texture_blocks import blur, fbm, pixel_grid, shade, smooth_noise, spheres, worley


def tex_etched_microstructure(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Optical micrograph of an etched alloy: light grains, thin dark boundaries, some twins."""
    cell = rng.uniform(35, 70)
    f1, f2, ids, dx, dy = worley(h, w, cell, rng)
    n_ids = int(ids.max()) + 1
    tint = rng.uniform(0.72, 0.92, n_ids).astype(np.float32)
    img = tint[ids] + 0.02 * fbm(h, w, 30, rng, 2)
    img -= 0.6 * np.exp(-(f2 - f1) / 0.8)
    twin_ang = rng.uniform(0, np.pi, n_ids).astype(np.float32)
    tw = np.abs(dx * np.cos(twin_ang[ids]) + dy * np.sin(twin_ang[ids]))
    has_twin = rng.random(n_ids) < 0.3
    img -= 0.25 * (np.abs(tw - cell * 0.15) < 0.8) * has_twin[ids]
    pits = rng.random((h, w)) < 0.0015
    img = np.where(pits, 0.25, img)
    return np.clip(img + rng.normal(0, 0.015, (h, w)), 0, 1)


def render_test_rig(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A colourful photograph-like RGB image of a servo-hydraulic test frame in a lab."""
    h, w = height, width
    yy, xx = pixel_grid(h, w)
    wall = np.array(rng.uniform([0.75, 0.72, 0.6], [0.9, 0.88, 0.8]), np.float32)
    img = wall[None, None, :] * (0.85 + 0.15 * (1 - yy / h))[:, :, None]
    floor = yy > h * 0.82
    img[floor] = np.array([0.45, 0.4, 0.35], np.float32)
    frame = np.array(rng.choice([[0.1, 0.3, 0.75], [0.15, 0.5, 0.2], [0.8, 0.45, 0.1]]), np.float32)
    col_w = w * 0.05

    def box(x0, y0, x1, y1, colour):
        m = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
        light = 0.8 + 0.4 * np.clip((xx - x0) / max(x1 - x0, 1), 0, 1)
        img[m] = (np.asarray(colour, np.float32)[None, :] * light[m][:, None])

    cx = w * rng.uniform(0.4, 0.6)
    box(cx - w * 0.28, h * 0.72, cx + w * 0.28, h * 0.84, frame * 0.8)  # base
    box(cx - w * 0.25, h * 0.1, cx - w * 0.25 + col_w, h * 0.72, (0.8, 0.8, 0.82))  # columns
    box(cx + w * 0.25 - col_w, h * 0.1, cx + w * 0.25, h * 0.72, (0.8, 0.8, 0.82))
    box(cx - w * 0.28, h * 0.06, cx + w * 0.28, h * 0.16, frame)  # crosshead
    box(cx - w * 0.04, h * 0.16, cx + w * 0.04, h * 0.36, (0.85, 0.12, 0.1))  # upper grip
    box(cx - w * 0.04, h * 0.5, cx + w * 0.04, h * 0.7, (0.85, 0.12, 0.1))  # lower grip
    box(cx - w * 0.012, h * 0.36, cx + w * 0.012, h * 0.5, (0.6, 0.6, 0.62))  # specimen
    box(cx + w * 0.012, h * 0.41, cx + w * 0.05, h * 0.45, (0.95, 0.8, 0.1))  # extensometer
    box(w * 0.82, h * 0.45, w * 0.97, h * 0.8, (0.2, 0.2, 0.22))  # controller cabinet
    box(w * 0.84, h * 0.5, w * 0.95, h * 0.6, (0.2, 0.75, 0.9))  # its screen
    cable = np.abs(yy - (h * 0.6 + 0.15 * h * np.sin(xx / w * 6))) < 2
    img[cable & (xx > cx + w * 0.04) & (xx < w * 0.82)] = (0.05, 0.05, 0.05)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# --- distractor micrographs: images papers print next to fractographs, named with fracture words ----

def render_ebsd_map(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An EBSD inverse-pole-figure-like colour map: saturated grain colours, thin dark boundaries."""
    f1, f2, ids, _, _ = worley(height, width, rng.uniform(25, 45), rng)
    n_ids = int(ids.max()) + 1
    hue = rng.uniform(0, 1, n_ids).astype(np.float32)
    rgb = np.stack([np.clip(np.abs(((hue + k / 3) % 1) * 6 - 3) - 1, 0, 1) for k in range(3)], -1)[ids]
    rgb = 0.25 + 0.75 * rgb
    rgb *= (1 - 0.8 * np.exp(-(f2 - f1) / 0.7))[..., None]
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def tex_ct_render(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An X-ray CT slice: a bright round specimen section on black, with dark round and irregular pores."""
    yy, xx = pixel_grid(h, w)
    cy, cx, rad = h / 2, w / 2, 0.42 * min(h, w)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    img = np.where(d < rad, 0.72 + 0.05 * fbm(h, w, 40, rng, 2), 0.06)
    for _ in range(int(rng.integers(12, 30))):
        a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0, rad * 0.9)
        py, px, pr = cy + r * np.sin(a), cx + r * np.cos(a), rng.uniform(2, 7)
        img = np.where((yy - py) ** 2 + (xx - px) ** 2 < pr * pr, 0.1, img)
    img = img - 0.5 * ((fbm(h, w, 12, rng, 2) > 0.55) & (d < rad * 0.95))
    return np.clip(blur(img, 1) + rng.normal(0, 0.04, (h, w)), 0, 1)


def tex_wear_scar(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A worn track: parallel sliding grooves with dark delaminated patches and bright debris."""
    yy, xx = pixel_grid(h, w)
    grooves = np.sin(yy * rng.uniform(0.5, 0.9) + 3 * smooth_noise(h, w, 60, rng))
    img = 0.55 + 0.12 * grooves + 0.1 * fbm(h, w, 25, rng, 3)
    img -= 0.3 * (fbm(h, w, 50, rng, 3) > 0.35)
    img += 0.3 * (rng.random((h, w)) < 0.002)
    return np.clip(blur(img, 1), 0, 1)


def tex_cavitation_pits(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A cavitation-eroded surface: overlapping round craters on a wavy plateau (SEM contrast)."""
    n = int(rng.integers(25, 45))
    centres = np.stack([rng.uniform(0, h, n), rng.uniform(0, w, n)], 1)
    height, _ = spheres(h, w, centres, rng.uniform(6, 22, n))
    img = 0.5 + 0.08 * fbm(h, w, 30, rng, 3) + 0.12 * shade(-height, edge=0.8)
    return np.clip(img + rng.normal(0, 0.03, (h, w)), 0, 1)


def tex_oxide_scale(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A polished cross-section: mounting resin above, a granular oxide scale with vertical microcracks,
    smooth metal below."""
    yy, xx = pixel_grid(h, w)
    top = h * rng.uniform(0.25, 0.35) + 8 * smooth_noise(h, w, 80, rng)
    bottom = top + h * rng.uniform(0.2, 0.3) + 6 * smooth_noise(h, w, 60, rng)
    img = np.where(yy < top, 0.12, np.where(yy < bottom, 0.45 + 0.12 * fbm(h, w, 6, rng, 2), 0.8))
    for x in rng.uniform(0, w, int(rng.integers(4, 9))):
        crack = (np.abs(xx - x - 3 * smooth_noise(h, w, 20, rng)) < 1.2) & (yy > top) & (yy < bottom)
        img = np.where(crack, 0.1, img)
    return np.clip(img + rng.normal(0, 0.03, (h, w)), 0, 1)
