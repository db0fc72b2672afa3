"""Cheap image statistics that tell a fractograph from line art, plots and colour maps.

Computed once per panel by the panels stage, while its pixels are already decoded, and read by the
fracture filter. Everything runs on a box-downsampled copy (longest side <= CUE_SIDE px), so a
4000 x 3000 figure costs about as much as a 256 x 192 one.

Usage:
    from dataset_builders.image_cues import compute_cues
    cues = compute_cues(Image.open("panel.jpg"))   # ImageCues(white_fraction=0.01, ...)
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from dataset_builders.records import ImageCues

CUE_SIDE = 256  # longest side of the copy the statistics are computed on
WHITE_LEVEL = 235  # grey value at or above which a pixel counts as background white
LIGHT_LEVEL = 170  # grey value at or above which a pixel counts as light (light grey or white)
EDGE_GRADIENT = 24.0  # |grey gradient| (per pixel of the downsampled copy) that counts as an edge
LEVEL_MIN_SHARE = 0.001  # a grey level counts when it holds at least 0.1 % of the pixels (ignores JPEG noise)


def flatten_to_rgb_or_l(image: Image.Image) -> Image.Image:
    """The image as 'L' or 'RGB'; transparency is composited on white (figure backgrounds are white)."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("1", "I", "I;16", "I;16B", "I;16L", "F"):
        if image.mode.startswith("I;16"):
            # 16-bit greys: scale to 8 bits rather than letting convert() clip at 255
            arr = np.asarray(image, dtype=np.float32) / 257.0
            return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
        return image.convert("L")
    return image.convert("RGB")


def downsample(image: Image.Image, max_side: int = CUE_SIDE) -> Image.Image:
    """A box-averaged copy whose longest side is at most max_side (the image itself if already small)."""
    factor = math.ceil(max(image.size) / max_side)
    return image.reduce(factor) if factor > 1 else image


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness of an H x W x 3 float array (0 for grey images)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def compute_cues(image: Image.Image) -> ImageCues:
    """White and light shares, colourfulness, edge density, grey-level count and grey std of an image (any mode).

    A grey copy's statistics are counted on its 8-bit values (gradients as int16, the histogram straight from
    the bytes): the same integers as on its float copy, which only the std needs (most panels are grey).
    """
    small = downsample(flatten_to_rgb_or_l(image))
    arr = np.asarray(small, dtype=np.float32)
    if arr.ndim == 3:
        grey = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as Pillow's 'L'
        colour = colourfulness(arr)
        shades, levels = grey, np.clip(np.rint(grey), 0, 255).astype(np.int64)
        steps = grey
    else:
        grey = arr
        colour = 0.0
        shades = levels = np.asarray(small)  # uint8: the values the float copy holds
        steps = levels.astype(np.int16)
    n = grey.size
    gx = np.abs(np.diff(steps, axis=1))
    gy = np.abs(np.diff(steps, axis=0))
    edges = int((gx > EDGE_GRADIENT).sum() + (gy > EDGE_GRADIENT).sum())
    n_gradients = gx.size + gy.size
    hist = np.bincount(levels.ravel(), minlength=256)
    return ImageCues(
        white_fraction=round(float((shades >= WHITE_LEVEL).sum()) / n, 4),
        colourfulness=round(colour, 3),
        edge_density=round(edges / n_gradients, 4) if n_gradients else 0.0,
        grey_levels=int((hist >= max(1.0, LEVEL_MIN_SHARE * n)).sum()),
        std=round(float(grey.std()), 3),
        light_fraction=round(float((shades >= LIGHT_LEVEL).sum()) / n, 4),
    )
