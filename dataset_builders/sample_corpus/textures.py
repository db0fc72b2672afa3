"""Seeded synthetic SEM-fractograph-like textures (and two non-fracture images) for the sample corpus:
the texture kinds, their canonical features (``KINDS``) and ``render``.

Each fracture ``kind`` is drawn from the vectorised numpy building blocks of ``texture_blocks`` (smooth
noise, Worley/Voronoi cells, shaded spheres; the non-fracture images are in ``non_fracture``) so that a
512x384 image costs a few milliseconds and the same ``rng`` state always gives the same pixels. The
images only have to *look like* their morphology to a human and to cheap image statistics (SEM: grey,
textured; plots/photos: white or colourful), not to fool an expert.

Usage: ``render("cleavage", 512, 384, np.random.default_rng(0))`` -> uint8 array (H, W), or (H, W, 3)
for the colour photograph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from fracto_core.vocabulary import can_show, feature

from .non_fracture import (render_ebsd_map, render_test_rig, tex_cavitation_pits, tex_ct_render,
                           tex_etched_microstructure, tex_oxide_scale, tex_wear_scar)
from .texture_blocks import (blur, fbm, float_image, normalise, pixel_grid, resize, sem_noise, shade,
                             smooth_noise, spheres, worley)


@dataclass(frozen=True)
class TextureKind:
    """One texture kind: what it depicts and the canonical vocabulary features it shows."""

    name: str
    features: tuple[str, ...]  # canonical names (empty for non-fracture images)
    is_fracture: bool
    description: str  # short wording used in notes


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
    img = float_image(narrow).resize((side, side), Image.BILINEAR).rotate(angle, Image.BILINEAR)
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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
    wob = 1 + 0.25 * smooth_noise(h, w, r, rng)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (r * wob)
    particle = np.where(d < 1, 0.15 + 0.6 * np.clip((xx - cx + yy - cy) / (2 * r) + 0.5, 0, 1), img)
    return particle + 0.4 * np.exp(-((d - 1) / 0.08) ** 2)


def tex_fish_eye(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
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
    yy, xx = pixel_grid(h, w)
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
_GREY_DISTRACTORS = {"ct_render": (tex_ct_render, "X-ray CT slice with pores"),
                     "wear_scar": (tex_wear_scar, "wear scar with grooves"),
                     "cavitation_pits": (tex_cavitation_pits, "cavitation erosion pits"),
                     "oxide_scale": (tex_oxide_scale, "oxide scale cross-section with microcracks")}
KINDS["ebsd_map"] = TextureKind("ebsd_map", (), False, "EBSD orientation colour map")
for _name, (_, _desc) in _GREY_DISTRACTORS.items():
    KINDS[_name] = TextureKind(_name, (), False, _desc)

FRACTURE_KINDS: tuple[str, ...] = tuple(_FRACTURE)
DISTRACTOR_KINDS: tuple[str, ...] = ("ebsd_map", *_GREY_DISTRACTORS)
NON_FRACTURE_KINDS: tuple[str, ...] = ("etched_microstructure", "test_rig_photo", *DISTRACTOR_KINDS)
# distractors a non-metal can show (EBSD needs crystals; oxide scales and cavitation pits are metal damage)
NON_METAL_DISTRACTORS: tuple[str, ...] = ("ct_render", "wear_scar")


def kind_allowed(kind: str, material_class: str) -> bool:
    """A texture fits a material class when its class can show every feature the texture draws."""
    return all(can_show(f, material_class) for f in KINDS[kind].features)


for _kind in KINDS.values():  # fail at import if a feature name drifts from the vocabulary
    for _name in _kind.features:
        feature(_name)


INTERNAL_SCALE = 0.75


def render(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one image of ``kind``: uint8 (height, width) grey, or (height, width, 3) for the photo."""
    if kind == "test_rig_photo":
        return render_test_rig(width, height, rng)
    if kind == "ebsd_map":
        return render_ebsd_map(width, height, rng)
    if kind == "etched_microstructure":
        return (tex_etched_microstructure(height, width, rng) * 255 + 0.5).astype(np.uint8)
    if kind in _GREY_DISTRACTORS:
        return (_GREY_DISTRACTORS[kind][0](height, width, rng) * 255 + 0.5).astype(np.uint8)
    try:
        fn = _FRACTURE[kind][0]
    except KeyError:
        raise KeyError(f"unknown texture kind {kind!r}; valid: {', '.join(KINDS)}") from None
    # the morphology is drawn at 3/4 scale (about half the pixels, half the time) and enlarged;
    # detector noise is then added at full resolution, as an SEM image has it
    h, w = max(16, round(height * INTERNAL_SCALE)), max(16, round(width * INTERNAL_SCALE))
    base = fn(h, w, rng)
    if (h, w) != (height, width):
        base = np.clip(resize(base, width, height), 0, 1)
    return sem_noise(base, rng)
