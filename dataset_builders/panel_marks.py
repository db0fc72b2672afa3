"""Panel letters printed in brackets, "(a)", anywhere along the top or bottom of a panel (used by panel_layout).

panel_layout's corner search reads a letter printed in one of a cell's four corners. Many figures set the
letter elsewhere on the panel's top or bottom edge: centred under a drawing ("(a)" under each sketch of a
textbook figure), after a scale bar's neighbour in a micrograph's top right, at the start of a sub-caption
line set over the panel. A single letter between two brackets is how a panel letter is written; in a drawing
or a micrograph two bracket-shaped strokes hugging one letter-shaped blob, with nothing else around them, do
not happen by chance. So this reader looks, in the top and bottom BAND of each cell across its whole width,
for ink components shaped like a letter with a bracket on each side (as tall as the letter to about twice
that, under half as wide as tall, spanning it vertically, within BRACKET_GAP of it), alone in a clear box.
Each such letter is compared with the candidate letters as in panel_layout (rendered templates); a band gives
a letter when exactly one bracketed glyph in it matches a wanted letter clearly. The letters count only when
every cell gives one, all in the same band (top or bottom) at about one size, and they are exactly the
wanted ones: journals set panel letters uniformly.

Usage:
    from dataset_builders.panel_marks import bracketed_letters
    letters = bracketed_letters(grey_array, cells, ["a", "b", "c"], classify)   # one letter per cell, or None
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

BAND = 0.3  # the top and bottom this share of a cell's height are searched, across its whole width
MIN_GLYPH = 8  # a letter is at least this many pixels tall ...
MAX_GLYPH = 0.15  # ... and at most this share of the cell's height (panel_layout's glyph bounds)
BRACKET_GAP = 0.8  # a bracket stands within this many letter heights (at least 4 px) of the letter (italics lean away)
CLEAR_BOX = 0.05  # at most this share of the box around "(x)" is other ink (texture, a word after it)
DARK, LIGHT = 150, 200  # dark ink on a light ground (150: type printed on a scan's grey or anti-aliased), light ink on a dark one

Cell = tuple[int, int, int, int]
Classify = Callable[[np.ndarray], "str | None"]


def _components(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of the ink mask and, per component (row i for label i + 1), its box (y0, x0, y1, x1) and size;
    components under MIN_GLYPH pixels (a texture's specks: most of them) get no box (zeros), as they can be
    neither a letter nor a bracket."""
    labels, n = ndimage.label(ink)
    if n == 0:
        return labels, np.zeros((0, 4), int), np.zeros(0, int)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    boxes = np.zeros((n, 4), int)
    large = np.concatenate(([False], sizes >= MIN_GLYPH))
    for i, box in enumerate(ndimage.find_objects(np.where(large[labels], labels, 0), max_label=n)):
        if box is not None:
            boxes[i] = (box[0].start, box[1].start, box[0].stop, box[1].stop)
    return labels, boxes, sizes


def _bracketed(ink: np.ndarray, cell_height: int) -> list[tuple[np.ndarray, int]]:
    """Letter-shaped components of one band's ink mask with a bracket on each side, alone in a clear box:
    (the glyph's mask, its height)."""
    labels, boxes, sizes = _components(ink)
    if not len(sizes):
        return []
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    glyph = (sizes >= MIN_GLYPH) & (h >= MIN_GLYPH) & (h <= MAX_GLYPH * cell_height) & \
        (w >= 0.3 * h) & (w <= 1.3 * h)
    bracket = (h >= 0.9 * MIN_GLYPH) & (w < 0.5 * h) & (sizes >= MIN_GLYPH)
    b_idx = np.flatnonzero(bracket)
    out = []
    for i in np.flatnonzero(glyph):
        y0, x0, y1, x1 = boxes[i]
        gh = int(h[i])
        gap = max(4, int(BRACKET_GAP * gh))
        bb = boxes[b_idx]
        bh = h[b_idx]
        fits = (bh >= 0.9 * gh) & (bh <= 2.1 * gh) & (bb[:, 0] <= y0 + 2) & (bb[:, 2] >= y1 - 2)
        left = b_idx[fits & (bb[:, 3] <= x0 + 1) & (bb[:, 3] >= x0 - gap)]
        right = b_idx[fits & (bb[:, 1] >= x1 - 1) & (bb[:, 1] <= x1 + gap)]
        if not len(left) or not len(right):
            continue
        lb, rb = boxes[left[0]], boxes[right[0]]
        top, bottom = min(y0, lb[0], rb[0]), max(y1, lb[2], rb[2])
        wx0, wx1 = max(0, lb[1] - 2), min(ink.shape[1], rb[3] + 2)
        window = labels[max(0, top - 2):min(ink.shape[0], bottom + 2), wx0:wx1]
        others = (window > 0) & ~np.isin(window, (i + 1, left[0] + 1, right[0] + 1))
        if others.mean() > CLEAR_BOX:
            continue
        out.append((labels[y0:y1, x0:x1] == i + 1, gh))
    return out


def _band_letter(grey: np.ndarray, cell: Cell, band: int, classify: Classify) -> tuple[str, int] | None:
    """In the cell's top (band 0) or bottom (1) BAND: the one bracketed letter that classify reads clearly, with its
    height; None when there is none, or more than one (a plot's own "(a)" and "(b)" in one band)."""
    x0, y0, x1, y1 = cell
    height = y1 - y0
    size = max(12, int(BAND * height))
    by0, by1 = (y0, min(y1, y0 + size)) if band == 0 else (max(y0, y1 - size), y1)
    region = grey[by0:by1, x0:x1]
    read = []
    for ink in (region < DARK, region > LIGHT):
        for mask, gh in _bracketed(ink, height):
            letter = classify(mask)
            if letter is not None:
                read.append((letter, gh))
    return read[0] if len(read) == 1 else None


def _read_band(grey: np.ndarray, cells: list[Cell], band: int, classify: Classify) -> list[tuple[str, int]] | None:
    """Every cell's letter in one band, or None at the first cell without one (most figures stop there)."""
    read = []
    for cell in cells:
        letter = _band_letter(grey, cell, band, classify)
        if letter is None:
            return None
        read.append(letter)
    return read


def bracketed_letters(grey: np.ndarray, cells: list[Cell], wanted: list[str], classify: Classify,
                      max_height_ratio: float = 1.6) -> list[str] | None:
    """One letter per cell, read from "(x)" printed along the cells' top (or all along their bottom), when
    every cell shows exactly one, at about one size (tallest / shortest at most max_height_ratio), and they
    are exactly the wanted letters; else None. classify: a glyph's ink mask -> the wanted letter it clearly
    is, or None (panel_layout compares it with rendered letters)."""
    if len(cells) != len(wanted) or len(cells) < 2:
        return None
    for band in (0, 1):
        read = _read_band(grey, cells, band, classify)
        if read is None:
            continue
        letters, heights = [x[0] for x in read], [x[1] for x in read]
        if sorted(letters) == sorted(wanted) and max(heights) <= max_height_ratio * min(heights):
            return letters
    return None
