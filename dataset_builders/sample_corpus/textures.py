"""Seeded synthetic SEM-fractograph-like textures (and two non-fracture images) for the sample corpus.

Each ``kind`` is drawn from a few vectorised numpy building blocks (smooth noise, Worley/Voronoi cells,
shaded spheres) so that a 512x384 image costs a few milliseconds and the same ``rng`` state always gives
the same pixels. The images only have to *look like* their morphology to a human and to cheap image
statistics (SEM: grey, textured; plots/photos: white or colourful), not to fool an expert.

Usage: ``render("cleavage", 512, 384, np.random.default_rng(0))`` -> uint8 array (H, W), or (H, W, 3)
for the colour photograph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from fracto_core.vocabulary import feature


@dataclass(frozen=True)
class TextureKind:
    """One texture kind: what it depicts and the canonical vocabulary features it shows."""

    name: str
    features: tuple[str, ...]  # canonical names (empty for non-fracture images)
    is_fracture: bool
    description: str  # short wording used in notes


# --- building blocks -----------------------------------------------------------------------------

def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _float_image(a: np.ndarray) -> Image.Image:
    """A Pillow 'F' image of a float array (must be contiguous float32, or Pillow misreads it)."""
    return Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bicubic resize of a float array (Pillow 'F' mode keeps it fast and deterministic)."""
    return np.asarray(_float_image(a).resize((w, h), Image.BICUBIC))


def smooth_noise(h: int, w: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Value noise with features about ``scale`` pixels wide, roughly in [-1, 1]."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    return _resize(rng.uniform(-1, 1, (gh, gw)), w, h)


def fbm(h: int, w: int, scale: float, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Fractal sum of value noise, normalised to about [-1, 1]."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * smooth_noise(h, w, max(scale, 1.5), rng)
        total += amp
        amp *= 0.5
        scale /= 2
    return out / total


def _box1d(a: np.ndarray, r: int, axis: int) -> np.ndarray:
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis, dtype=np.float32)
    n = a.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / (2 * r + 1)


def blur(a: np.ndarray, radius: float) -> np.ndarray:
    """Approximate Gaussian blur: two separable box passes (fast, no scipy)."""
    r = max(1, int(round(radius)))
    out = a.astype(np.float32)
    for _ in range(2):
        out = _box1d(_box1d(out, r, 0), r, 1)
    return out


def worley(h: int, w: int, cell: float, rng: np.random.Generator, vectors: bool = True
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Voronoi cells of jittered grid points: (F1, F2, cell id, dx, dy from the nearest seed).

    The seeds sit one per ``cell``-pixel square; each pixel looks at the 3x3 neighbouring squares
    (exact for this jitter). Pure broadcasting over (rows of cells, row in cell, cols, col in cell),
    with no per-pixel gathers, so a 512x384 field costs a few milliseconds. ``vectors=False`` skips
    the cell ids and offsets (returned as zeros) when only the distances are needed.
    """
    c = max(2, int(round(cell)))
    gh, gw = -(-h // c), -(-w // c)
    jy = rng.uniform(0.05, 0.95, (gh + 2, gw + 2)).astype(np.float32) * c
    jx = rng.uniform(0.05, 0.95, (gh + 2, gw + 2)).astype(np.float32) * c
    local = np.arange(c, dtype=np.float32) + 0.5
    ly, lx = local[None, :, None, None], local[None, None, None, :]
    big = np.float32(1e9)
    f1 = np.full((gh, c, gw, c), big, np.float32)
    f2 = f1.copy()
    ids = np.zeros((gh, c, gw, c), np.int32)
    dx = np.zeros((gh, c, gw, c), np.float32)
    dy = np.zeros((gh, c, gw, c), np.float32)
    cell_id = np.arange((gh + 2) * (gw + 2), dtype=np.int32).reshape(gh + 2, gw + 2)
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            sl = (slice(1 + oy, 1 + oy + gh), slice(1 + ox, 1 + ox + gw))
            py = (oy * c + jy[sl])[:, None, :, None]
            px = (ox * c + jx[sl])[:, None, :, None]
            ddy, ddx = ly - py, lx - px
            d = ddy * ddy + ddx * ddx
            closer = d < f1
            f2 = np.where(closer, f1, np.minimum(f2, d))
            f1 = np.where(closer, d, f1)
            if vectors:
                ids = np.where(closer, cell_id[sl][:, None, :, None], ids)
                dx = np.where(closer, ddx, dx)
                dy = np.where(closer, ddy, dy)

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(gh * c, gw * c)[:h, :w]

    return np.sqrt(flat(f1)), np.sqrt(flat(f2)), flat(ids), flat(dx), flat(dy)


def shade(height: np.ndarray, light: tuple[float, float] = (-0.6, -0.8), edge: float = 1.5) -> np.ndarray:
    """SEM-like secondary-electron contrast of a height map: a directional term plus edge brightening."""
    gy, gx = np.gradient(height.astype(np.float32))
    directional = gx * light[0] + gy * light[1]
    return directional + edge * np.sqrt(gx * gx + gy * gy)


def spheres(h: int, w: int, centres: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height field and coverage mask of shaded spheres (few spheres: one vector pass each)."""
    yy, xx = _grid(h, w)
    height = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), bool)
    for (cy, cx), r in zip(centres, radii):
        y0, y1 = max(0, int(cy - r - 1)), min(h, int(cy + r + 2))
        x0, x1 = max(0, int(cx - r - 1)), min(w, int(cx + r + 2))
        if y0 >= y1 or x0 >= x1:
            continue
        d2 = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2
        inside = d2 < r * r
        z = np.sqrt(np.clip(r * r - d2, 0, None))
        height[y0:y1, x0:x1] = np.where(inside, np.maximum(height[y0:y1, x0:x1], z), height[y0:y1, x0:x1])
        mask[y0:y1, x0:x1] |= inside
    return height, mask


def normalise(a: np.ndarray, lo: float = 0.02, hi: float = 0.98) -> np.ndarray:
    """Stretch to [0, 1] by robust percentiles."""
    p0, p1 = (float(q) for q in np.quantile(a[::4, ::4], [lo, hi]))
    return np.clip((a - p0) / max(p1 - p0, 1e-6), 0, 1).astype(np.float32)


def sem_noise(img: np.ndarray, rng: np.random.Generator, sigma: float = 0.045) -> np.ndarray:
    """Detector noise, scan-line jitter and slight charging gradient; float [0,1] in, uint8 out."""
    h, w = img.shape
    noisy = img + rng.normal(0, sigma, (h, w)).astype(np.float32)
    noisy += rng.normal(0, sigma / 3, (h, 1)).astype(np.float32)  # per-scan-line brightness jitter
    yy, xx = _grid(h, w)
    noisy += 0.04 * (xx / w - 0.5) * rng.uniform(-1, 1)
    return (np.clip(noisy, 0, 1) * 255 + 0.5).astype(np.uint8)


# --- fracture kinds ------------------------------------------------------------------------------

def _dimples(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    cell = rng.uniform(22, 34)
    f1, f2, _, _, _ = worley(h, w, cell, rng, vectors=False)
    g1, g2, _, _, _ = worley(h, w, cell / 2.6, rng, vectors=False)
    cup = -np.clip(f2 - f1, 0, cell) - 0.45 * np.clip(g2 - g1, 0, cell / 2.6)  # deep centres, ridges at rims
    rough = 1.5 * fbm(h, w, cell / 3, rng, 3)
    lit = shade(cup + rough, edge=0.8)
    rim = np.exp(-np.minimum(f2 - f1, (g2 - g1) * 1.3) / 1.6)  # thin bright tear ridges
    depth = normalise(-cup)
    img = 0.45 + 0.35 * normalise(lit) - 0.3 * (1 - depth) ** 2 + 0.45 * rim
    # a few second-phase particles at dimple bottoms
    n = int(h * w / (cell * cell) / 12)
    cen = np.column_stack([rng.uniform(0, h, n), rng.uniform(0, w, n)])
    sph, mask = spheres(h, w, cen, rng.uniform(1.5, 3.5, n))
    img = np.where(mask, 0.75 + 0.2 * normalise(sph), img)
    return normalise(img, 0.01, 0.995)


def tex_equiaxed_dimples(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    return _dimples(h, w, rng)


def tex_elongated_dimples(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Equiaxed dimples drawn narrow, stretched 2-3x along x, then turned by a random angle."""
    stretch = rng.uniform(2.2, 3.2)
    angle = float(rng.uniform(-35, 35))
    side = int(np.ceil(np.hypot(h, w))) + 2
    narrow = _dimples(side, max(8, int(side / stretch)), rng)
    img = _float_image(narrow).resize((side, side), Image.BILINEAR).rotate(angle, Image.BILINEAR)
    y0, x0 = (side - h) // 2, (side - w) // 2
    return np.asarray(img)[y0:y0 + h, x0:x0 + w]


def _cleavage_base(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat facets of different grey with branching river lines; returns (image, facet ids, edge dist)."""
    cell = rng.uniform(110, 170)
    f1, f2, ids, _, _ = worley(h, w, cell, rng)
    n_ids = int(ids.max()) + 1
    grey = rng.uniform(0.25, 0.75, n_ids).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi, n_ids).astype(np.float32)
    freq = rng.uniform(0.06, 0.11, n_ids).astype(np.float32)
    yy, xx = _grid(h, w)
    a = ang[ids]
    # flow coordinate v (along the river) and cross coordinate u; lines fan out downstream
    warp = 14 * fbm(h, w, 90, rng, 3)
    v = xx * np.cos(a) + yy * np.sin(a) + warp
    u = -xx * np.sin(a) + yy * np.cos(a) + 0.6 * warp
    phase = u * freq[ids] * np.exp(-v / 260.0)
    k = np.round(phase)
    d = np.abs(phase - k) / np.maximum(freq[ids] * np.exp(-v / 260.0), 1e-3)  # distance in pixels
    tributary_start = (np.abs(np.sin(k * 12.9898)) * 260 - 130)
    present = (np.mod(k, 2) == 0) | (v > tributary_start)  # odd lines join part-way: branching
    lines = np.exp(-(d / 0.9) ** 2) * present
    facet = grey[ids] + 0.08 * (xx * np.cos(a * 1.7) + yy * np.sin(a * 1.7)) / max(h, w)
    img = facet + 0.06 * fbm(h, w, 40, rng, 3) + 0.32 * lines - 0.12 * np.roll(lines, 1, axis=0)
    edges = f2 - f1
    img += 0.45 * np.exp(-edges / 1.8)  # tear ridges between facets
    return img, ids, edges


def tex_cleavage(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img, _, _ = _cleavage_base(h, w, rng)
    return normalise(img, 0.005, 0.995)


def tex_cleavage_tongues(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img, _, _ = _cleavage_base(h, w, rng)
    yy, xx = _grid(h, w)
    ang = rng.uniform(0, np.pi)
    c, s = np.cos(ang), np.sin(ang)
    for _ in range(int(rng.integers(7, 13))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ln, wd = rng.uniform(14, 30), rng.uniform(3, 6)
        du, dv = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
        # tongue: a half-ellipse, bright on one flank, dark shadow on the other
        r = (du / ln) ** 2 + (dv / wd) ** 2
        tongue = (r < 1) & (du > -ln * 0.2)
        img = np.where(tongue, 0.85 - 0.25 * (dv / wd), img)
        img -= 0.25 * ((r >= 1) & (r < 1.6) & (dv > 0))
    return normalise(img, 0.005, 0.995)


def tex_intergranular(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    cell = rng.uniform(60, 95)
    f1, f2, ids, dx, dy = worley(h, w, cell, rng)
    n_ids = int(ids.max()) + 1
    base = rng.uniform(0.3, 0.7, n_ids).astype(np.float32)
    nx, ny = rng.normal(0, 1, n_ids).astype(np.float32), rng.normal(0, 1, n_ids).astype(np.float32)
    # each grain is a faceted polyhedron: brightness tilts across the grain in its own direction,
    # and a second tilt split along a random plane gives the "rock candy" facets
    tilt = (dx * nx[ids] + dy * ny[ids]) / cell
    split = (dx * ny[ids] - dy * nx[ids]) > 0
    img = base[ids] + 0.28 * tilt + np.where(split, 0.12, -0.12)
    img += 0.05 * fbm(h, w, 12, rng, 2)
    edges = f2 - f1
    img -= 0.5 * np.exp(-edges / 1.2)  # dark grain-boundary grooves
    img += 0.25 * np.exp(-np.abs(edges - 2.5) / 1.0)  # bright edge effect beside them
    return normalise(img, 0.005, 0.995)


def tex_striations(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(h, w)
    ang = rng.uniform(-0.5, 0.5)
    period = rng.uniform(5, 9)
    curve = rng.uniform(-1, 1) * 1.5e-3
    along = -xx * np.sin(ang) + yy * np.cos(ang) + curve * (xx - w / 2) ** 2
    wav = 6 * fbm(h, w, 120, rng, 3)
    phase = (along + wav) / period
    bands = np.sin(2 * np.pi * phase)
    bands = np.sign(bands) * np.abs(bands) ** 0.6  # sharper ridges
    contrast = 0.5 + 0.5 * normalise(smooth_noise(h, w, 150, rng))  # patchy visibility
    rough = fbm(h, w, 80, rng, 4)
    img = 0.5 + 0.18 * bands * contrast + 0.2 * rough + 0.08 * shade(6 * rough, edge=0)
    # a couple of secondary cracks running along the striations
    for _ in range(int(rng.integers(0, 3))):
        k = rng.uniform(0.2, 0.8) * h / period
        crack = np.abs(phase - k) < 0.12
        crack &= np.abs(xx - rng.uniform(0, w)) < rng.uniform(40, 140)
        img = np.where(crack, 0.08, img)
    return normalise(img, 0.005, 0.995)


def _pores(h: int, w: int, rng: np.random.Generator, base: np.ndarray, n: int, rmin: float,
           rmax: float) -> np.ndarray:
    yy, xx = _grid(h, w)
    img = base
    for _ in range(n):
        r = rng.uniform(rmin, rmax)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r
        inner = np.clip(1 - d, 0, 1)
        wall = 0.12 + 0.3 * np.clip(((xx - cx) * 0.6 + (yy - cy) * 0.8) / r, 0, 1) * (1 - inner)
        img = np.where(d < 1, wall, img)
        img += 0.5 * np.exp(-((d - 1.0) / 0.04) ** 2)  # bright rim
    return img


def tex_gas_pores(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = 0.55 + 0.08 * fbm(h, w, 60, rng, 4) + 0.05 * normalise(_dimples(h, w, rng)) - 0.025
    img = _pores(h, w, rng, base, int(rng.integers(1, 5)), min(h, w) * 0.07, min(h, w) * 0.2)
    return normalise(img, 0.002, 0.998)


def tex_lack_of_fusion(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(h, w)
    rough = _dimples(h, w, rng) * 0.6 + 0.2
    blob = smooth_noise(h, w, min(h, w) / 3, rng) + 0.9 * fbm(h, w, 50, rng, 3)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    radial = np.sqrt(((yy - cy) / (h * 0.34)) ** 2 + ((xx - cx) / (w * 0.42)) ** 2)
    void = (blob * 0.5 - radial) > -0.55
    img = np.where(void, 0.08 + 0.05 * fbm(h, w, 20, rng, 2), rough)
    edge = blur(void.astype(np.float32), 2.0)
    img += 0.35 * (edge * (1 - edge)) * 4
    # partly fused spherical powder particles inside and along the void
    vy, vx = np.nonzero(void[::8, ::8])
    n = min(len(vy), int(rng.integers(6, 14)))
    if n:
        pick = rng.choice(len(vy), n, replace=False)
        cen = np.column_stack([vy[pick] * 8.0, vx[pick] * 8.0])
        sph, mask = spheres(h, w, cen, rng.uniform(min(h, w) * 0.03, min(h, w) * 0.07, n))
        img = np.where(mask, 0.2 + 0.8 * normalise(shade(sph, edge=0.3) + sph / 20), img)
    return normalise(img, 0.002, 0.998)


def _inclusion(img: np.ndarray, h: int, w: int, cy: float, cx: float, r: float, rng) -> np.ndarray:
    yy, xx = _grid(h, w)
    wob = 1 + 0.25 * smooth_noise(h, w, r, rng)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (r * wob)
    particle = np.where(d < 1, 0.15 + 0.6 * np.clip((xx - cx + yy - cy) / (2 * r) + 0.5, 0, 1), img)
    return particle + 0.4 * np.exp(-((d - 1) / 0.08) ** 2)


def tex_fish_eye(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(h, w)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    rad = min(h, w) * rng.uniform(0.3, 0.4)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    theta = np.arctan2(yy - cy, xx - cx)
    rough = 0.35 + 0.25 * fbm(h, w, 18, rng, 4) + 0.1 * shade(8 * fbm(h, w, 30, rng, 3), edge=0.5)
    radial_marks = 0.06 * np.sin(theta * rng.integers(40, 70) + 3 * fbm(h, w, 60, rng, 2))
    smooth = 0.72 + 0.06 * fbm(h, w, 50, rng, 3) + radial_marks * np.clip(d / rad, 0, 1)
    t = 1 / (1 + np.exp((d - rad) / 3.0))  # soft circular boundary
    img = smooth * t + rough * (1 - t)
    return normalise(_inclusion(img, h, w, cy, cx, rad * 0.09, rng), 0.002, 0.998)


def tex_fine_granular_area(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(h, w)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    rad = min(h, w) * rng.uniform(0.22, 0.3)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (rad * (1 + 0.15 * smooth_noise(h, w, rad / 2, rng)))
    granular = 0.45 + 0.45 * fbm(h, w, 3.5, rng, 3) + 0.15 * shade(5 * fbm(h, w, 6, rng, 2), edge=1.0)
    outer = 0.62 + 0.08 * fbm(h, w, 40, rng, 3) + 0.04 * np.sin(np.arctan2(yy - cy, xx - cx) * 50)
    t = 1 / (1 + np.exp((d - 1) / 0.05))
    img = granular * t + outer * (1 - t)
    return normalise(_inclusion(img, h, w, cy, cx, rad * 0.25, rng), 0.002, 0.998)


def tex_creep_cavities(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = tex_intergranular(h, w, rng) * 0.8 + 0.1
    cell = rng.uniform(60, 95)
    f1, f2, _, _, _ = worley(h, w, cell, rng, vectors=False)
    on_boundary = (f2 - f1) < 1.5
    by, bx = np.nonzero(on_boundary[::5, ::5])
    n = min(len(by), int(h * w / 2500))
    pick = rng.choice(len(by), n, replace=False)
    sph, mask = spheres(h, w, np.column_stack([by[pick] * 5.0, bx[pick] * 5.0]), rng.uniform(2.5, 6, n))
    img = np.where(mask, 0.05 + 0.25 * (1 - normalise(sph)), img)  # dark round cavities on boundaries
    rim = blur(mask.astype(np.float32), 1.2)
    img += 0.5 * rim * (1 - mask)
    return normalise(img, 0.002, 0.998)


def tex_unmelted_powder(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = 0.3 + 0.3 * normalise(_dimples(h, w, rng)) * 0.8 + 0.1 * fbm(h, w, 80, rng, 3)
    n = int(rng.integers(14, 28))
    r = rng.uniform(min(h, w) * 0.03, min(h, w) * 0.08, n)
    cen = np.column_stack([rng.uniform(0, h, n), rng.uniform(0, w, n)])
    sph, mask = spheres(h, w, cen, r)
    lit = normalise(shade(sph, light=(-0.5, -0.7), edge=0.2) + sph / 25)
    img = np.where(mask, 0.25 + 0.75 * lit, img)
    shadow = blur(mask.astype(np.float32), 3) * (1 - mask)
    img -= 0.3 * np.roll(shadow, (3, 3), axis=(0, 1))
    return normalise(img, 0.002, 0.998)


def tex_ratchet_marks(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(h, w)
    edge_y = h * 0.12 + 4 * smooth_noise(h, w, 80, rng)
    surface = yy < edge_y
    # radial ridges (ratchet steps) starting at the free surface between adjacent origins
    steps = np.sort(rng.uniform(0.05, 0.95, int(rng.integers(5, 10)))) * w
    ridge = np.zeros((h, w), np.float32)
    for sx in steps:
        length = rng.uniform(0.25, 0.55) * h
        slant = rng.uniform(-0.15, 0.15)
        d = np.abs(xx - sx - slant * (yy - edge_y))
        fade = np.clip(1 - (yy - edge_y) / length, 0, 1)
        ridge += (np.exp(-(d / 1.8) ** 2) - 0.6 * np.exp(-((d - 4) / 2.0) ** 2)) * fade
    zone = 0.55 + 0.1 * fbm(h, w, 25, rng, 4) - 0.15 * (yy / h)
    img = np.where(surface, 0.2 + 0.08 * fbm(h, w, 10, rng, 2), zone + 0.35 * ridge)
    img += 0.3 * np.exp(-np.abs(yy - edge_y) / 1.5)
    return normalise(img, 0.002, 0.998)


def tex_crazing(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(h, w)
    ang = rng.uniform(-0.3, 0.3)
    period = rng.uniform(9, 16)
    across = -xx * np.sin(ang) + yy * np.cos(ang) + 5 * fbm(h, w, 90, rng, 2)
    along = xx * np.cos(ang) + yy * np.sin(ang)
    phase = across / period
    d = np.abs(phase - np.round(phase)) * period
    seg = smooth_noise(h, w, 40, rng) + 0.3 * np.sin(np.round(phase) * 7.7 + along / 35.0)
    lens = np.clip(seg, 0, None)  # crazes are lens-shaped: thickest mid-length
    streak = np.exp(-(d / (0.6 + 2.2 * lens)) ** 2) * (lens > 0.02)
    fibrils = 0.5 + 0.5 * np.sin(along * 1.3 + 4 * smooth_noise(h, w, 5, rng))
    img = 0.62 + 0.05 * fbm(h, w, 60, rng, 3) - 0.45 * streak * (0.6 + 0.4 * fibrils)
    img += 0.2 * np.roll(streak, -2, axis=0)
    return normalise(img, 0.002, 0.998)


# --- non-fracture images -------------------------------------------------------------------------

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
    yy, xx = _grid(h, w)
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


_FRACTURE: dict[str, tuple[Callable[[int, int, np.random.Generator], np.ndarray], tuple[str, ...], str]] = {
    "equiaxed_dimples": (tex_equiaxed_dimples, ("equiaxed dimples",), "equiaxed dimples"),
    "elongated_dimples": (tex_elongated_dimples, ("elongated dimples",), "elongated shear dimples"),
    "cleavage": (tex_cleavage, ("cleavage facets", "river patterns"), "cleavage facets with river patterns"),
    "cleavage_tongues": (tex_cleavage_tongues, ("cleavage facets", "cleavage tongues"),
                         "cleavage facets with tongues"),
    "intergranular": (tex_intergranular, ("intergranular facets",), "intergranular grain facets"),
    "striations": (tex_striations, ("fatigue striations",), "fatigue striations"),
    "gas_pores": (tex_gas_pores, ("gas pore",), "round gas pores"),
    "lack_of_fusion": (tex_lack_of_fusion, ("lack-of-fusion defect", "unmelted powder particles"),
                       "lack-of-fusion void with unmelted powder"),
    "fish_eye": (tex_fish_eye, ("fish-eye", "inclusion at origin"), "fish-eye around an inclusion"),
    "fine_granular_area": (tex_fine_granular_area, ("fine granular area", "inclusion at origin"),
                           "fine granular area around an inclusion"),
    "creep_cavities": (tex_creep_cavities, ("intergranular facets", "creep cavities"),
                       "creep cavities on grain boundaries"),
    "unmelted_powder": (tex_unmelted_powder, ("unmelted powder particles",), "unmelted powder particles"),
    "ratchet_marks": (tex_ratchet_marks, ("ratchet marks",), "ratchet marks at the surface"),
    "crazing": (tex_crazing, ("crazing",), "crazes in a polymer"),
}

KINDS: dict[str, TextureKind] = {
    name: TextureKind(name, feats, True, desc) for name, (_, feats, desc) in _FRACTURE.items()
}
KINDS["etched_microstructure"] = TextureKind("etched_microstructure", (), False, "etched optical microstructure")
KINDS["test_rig_photo"] = TextureKind("test_rig_photo", (), False, "photograph of a test rig")

FRACTURE_KINDS: tuple[str, ...] = tuple(_FRACTURE)
NON_FRACTURE_KINDS: tuple[str, ...] = ("etched_microstructure", "test_rig_photo")

for _kind in KINDS.values():  # fail at import if a feature name drifts from the vocabulary
    for _name in _kind.features:
        feature(_name)


INTERNAL_SCALE = 0.75


def render(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one image of ``kind``: uint8 (height, width) grey, or (height, width, 3) for the photo."""
    if kind == "test_rig_photo":
        return render_test_rig(width, height, rng)
    if kind == "etched_microstructure":
        return (tex_etched_microstructure(height, width, rng) * 255 + 0.5).astype(np.uint8)
    try:
        fn = _FRACTURE[kind][0]
    except KeyError:
        raise KeyError(f"unknown texture kind {kind!r}; valid: {', '.join(KINDS)}") from None
    # the morphology is drawn at 3/4 scale (about half the pixels, half the time) and enlarged;
    # detector noise is then added at full resolution, as an SEM image has it
    h, w = max(16, round(height * INTERNAL_SCALE)), max(16, round(width * INTERNAL_SCALE))
    base = fn(h, w, rng)
    if (h, w) != (height, width):
        base = np.clip(_resize(base, width, height), 0, 1)
    return sem_noise(base, rng)
