"""Texture building blocks for the sample corpus: value noise, fractal noise, blur, Worley/Voronoi cells,
SEM-like shading, shaded spheres, percentile stretch and detector noise.

All are vectorised numpy (no scipy) and draw only from the ``rng`` handed in, so the same generator state
always gives the same pixels. ``textures`` and ``non_fracture`` compose them into images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def float_image(a: np.ndarray) -> Image.Image:
    """A Pillow 'F' image of a float array (must be contiguous float32, or Pillow misreads it)."""
    return Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))


def resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bicubic resize of a float array (Pillow 'F' mode keeps it fast and deterministic)."""
    return np.asarray(float_image(a).resize((w, h), Image.BICUBIC))


def smooth_noise(h: int, w: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Value noise with features about ``scale`` pixels wide, roughly in [-1, 1]."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    return resize(rng.uniform(-1, 1, (gh, gw)), w, h)


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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
    noisy += 0.04 * (xx / w - 0.5) * rng.uniform(-1, 1)
    return (np.clip(noisy, 0, 1) * 255 + 0.5).astype(np.uint8)
