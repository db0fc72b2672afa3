"""Composite figures the white-gutter search cannot cut: micrographs around a schematic or a plot, panels
separated by thin borders or narrow gutters crossed by arrows, letters printed in the pixels.

Called by panels.py at one point (a figure whose caption names more panels than the gutter grid found
cells); reads the figure's pixels, returns cells and, when it can read them, their letters. Writes nothing.

How:
1. photographs (micrographs) are found as textured blocks: a block of the image whose pixels are mostly
   mid-grey (not white paper, not black ink) and vary (std above PHOTO_STD; flat grey bars of a chart do
   not); touching blocks form a component, whose bounding box is one or more photo panels. Inside a box,
   abutting photos are cut along lines that are near-uniform across it (a white gutter or a thin border,
   any grey) - a dashed arrow crossing a gutter takes only a few pixels of a line, so lines count when
   GUTTER_SHARE of their pixels agree;
2. the rest of the figure (photos painted white) is line art: plots, schematics. Its cells come from the
   same tolerant cut, their small pieces (arrows, labels) merged into neighbours;
3. letters: each cell's corners are searched for a printed letter (a dark glyph of letter height, alone in
   a light box, or a light glyph on dark); glyphs are compared with the candidate letters rendered in the
   bundled sans-serif font (Pillow's load_default) at two weights and in the PDF base-14 Helvetica and Times,
   regular and bold (rendered by MuPDF: the faces journals print panel letters in). Letters are used only
   when every cell's best letter is distinct and clearly better than its second best; otherwise the caller
   learns that the cells could not be matched to letters. Also used by panels.py on white-gutter grids, to
   order cells (column-major letters) and, with read_letters(placed=True) / join_unlettered, to trust
   letters only when they are set alike (same corner, about one size) in the cells.
scipy comes with scikit-learn (a pinned dependency).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from dataset_builders.panel_grid import Cell, content_runs, merge_small
from dataset_builders.panel_marks import bracketed_letters

WHITE = 235  # a pixel above this grey is paper
BLOCK_DIVISOR = 80  # photo blocks are min(width, height) / this pixels wide (at least 4)
PHOTO_MID = 0.6  # a photo block has at least this share of mid-grey pixels ...
PHOTO_STD = 10.0  # ... and at least this grey std
GUTTER_SHARE = 0.97  # a line is a gutter when this share of its pixels is paper (or agree with its median)
UNIFORM_TOL = 12  # ... a border line: pixels within this of the line's median grey
MIN_SIDE = 0.12  # every cell spans at least this share of the figure's width and height
NEAR = 0.01  # line-art cells closer than this share of the figure's long side are one panel
GLYPH_SIZE = 24  # glyphs are compared at this size
MIN_LETTER_SCORE = 0.72  # a glyph correlates at least this well with its letter's rendering ...
LETTER_MARGIN = 0.08  # the best letter's score beats the second best by at least this
PLACED_HEIGHT = 1.6  # letters vouching for themselves: tallest / shortest glyph at most this ("b" / "a" ~ 1.4)




@dataclass
class Layout:
    cells: list[Cell]  # top to bottom (letters come from the pixels, not from the order)
    letters: list[str] | None  # one per cell, or None when they could not be read
    note: str


# --- cells -------------------------------------------------------------------------------------------

def _gutters(region: np.ndarray, axis: int, uniform: bool) -> np.ndarray:
    """Per line (axis=1: rows, axis=0: columns): is it a gutter (paper, or with `uniform` a border line)?"""
    paper = (region > WHITE).mean(axis=axis) >= GUTTER_SHARE
    if not uniform:
        return paper
    median = np.median(region, axis=axis, keepdims=True)
    return paper | ((np.abs(region.astype(np.int16) - median) <= UNIFORM_TOL).mean(axis=axis) >= GUTTER_SHARE)


def _cut(grey: np.ndarray, cell: Cell, min_w: float, min_h: float, uniform: bool, depth: int = 0) -> list[Cell]:
    """Recursive XY-cut along tolerant gutters; trimmed cells, rows first."""
    x0, y0, x1, y1 = cell
    ink = grey[y0:y1, x0:x1] <= WHITE
    ys, xs = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if ys.size == 0:
        return []
    x0, y0, x1, y1 = x0 + int(xs[0]), y0 + int(ys[0]), x0 + int(xs[-1]) + 1, y0 + int(ys[-1]) + 1
    region = grey[y0:y1, x0:x1]
    if depth < 6:
        rows = merge_small(content_runs(_gutters(region, 1, uniform)), min_h)
        if len(rows) > 1:
            return [c for s, e in rows for c in _cut(grey, (x0, y0 + s, x1, y0 + e), min_w, min_h, uniform, depth + 1)]
        cols = merge_small(content_runs(_gutters(region, 0, uniform)), min_w)
        if len(cols) > 1:
            return [c for s, e in cols for c in _cut(grey, (x0 + s, y0, x0 + e, y1), min_w, min_h, uniform, depth + 1)]
    return [(x0, y0, x1, y1)]


def photo_boxes(grey: np.ndarray) -> list[Cell]:
    """Bounding boxes of textured (photograph-like) regions at least MIN_SIDE of each figure side."""
    height, width = grey.shape
    b = max(4, min(height, width) // BLOCK_DIVISOR)
    h, w = height // b, width // b
    if h < 4 or w < 4:
        return []
    blocks = grey[:h * b, :w * b].reshape(h, b, w, b).swapaxes(1, 2).reshape(h, w, b * b)
    mid = ((blocks > 30) & (blocks < 225)).mean(axis=2)
    photo = (mid > PHOTO_MID) & (blocks.std(axis=2) > PHOTO_STD)
    photo = ndimage.binary_fill_holes(ndimage.binary_closing(photo, iterations=2))
    labels, _ = ndimage.label(photo)
    boxes = []
    for ys, xs in ndimage.find_objects(labels):
        if (ys.stop - ys.start) >= MIN_SIDE * h and (xs.stop - xs.start) >= MIN_SIDE * w:
            boxes.append((xs.start * b, ys.start * b, min(width, xs.stop * b), min(height, ys.stop * b)))
    return boxes


def _grow(grey: np.ndarray, box: Cell) -> Cell:
    """The box pushed out on each side to the nearest paper line (a photo block grid is coarse, and a dark
    area of a micrograph is not textured)."""
    height, width = grey.shape
    x0, y0, x1, y1 = box
    for _ in range(2):
        paper_rows = (grey[:, x0:x1] > WHITE).mean(axis=1) >= GUTTER_SHARE
        above, below = np.flatnonzero(paper_rows[:y0]), np.flatnonzero(paper_rows[y1:])
        y0, y1 = (int(above[-1]) + 1 if above.size else 0), (y1 + int(below[0]) if below.size else height)
        paper_cols = (grey[y0:y1, :] > WHITE).mean(axis=0) >= GUTTER_SHARE
        left, right = np.flatnonzero(paper_cols[:x0]), np.flatnonzero(paper_cols[x1:])
        x0, x1 = (int(left[-1]) + 1 if left.size else 0), (x1 + int(right[0]) if right.size else width)
    return x0, y0, x1, y1


def _merge_close(cells: list[Cell], gap: float) -> list[Cell]:
    """Line-art cells closer than `gap` side by side are one panel: the bars of a chart, a legend beside its
    plot (panels are set apart by wider gutters). Cells one above the other are not merged: a plot's x-axis
    title already binds its rows, and stacked panels are often set closer than side-by-side ones."""
    cells = list(cells)
    merged = True
    while merged:
        merged = False
        for i in range(len(cells)):
            for j in range(i + 1, len(cells)):
                a, b = cells[i], cells[j]
                dx = max(a[0], b[0]) - min(a[2], b[2])  # gap between them (negative: overlap)
                dy = max(a[1], b[1]) - min(a[3], b[3])
                if dx < gap and dy < 0:
                    cells[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del cells[j]
                    merged = True
                    break
            if merged:
                break
    return cells


def find_cells(grey: np.ndarray) -> list[Cell]:
    """Photo cells (cut apart along thin borders / gutters) and line-art cells of the rest, top to bottom."""
    height, width = grey.shape
    min_w, min_h = MIN_SIDE * width, MIN_SIDE * height
    photos: list[Cell] = []
    rest = grey.copy()
    for box in photo_boxes(grey):
        box = _grow(grey, box)
        photos.extend(_cut(grey, box, min_w, min_h, uniform=True))
        rest[box[1]:box[3], box[0]:box[2]] = 255
    if not photos:
        return []
    art = [c for c in _cut(rest, (0, 0, width, height), min_w, min_h, uniform=False)
           if c[2] - c[0] >= min_w and c[3] - c[1] >= min_h and (rest[c[1]:c[3], c[0]:c[2]] <= WHITE).mean() > 0.02]
    return sorted(photos + _merge_close(art, NEAR * max(width, height)), key=lambda c: (c[1], c[0]))


# --- letters printed in the pixels -----------------------------------------------------------------------

_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)  # ndimage.label's default structure

@lru_cache(maxsize=64)
def _template(letter: str, bold: bool) -> np.ndarray:
    """The letter rendered in Pillow's bundled font, cropped to its ink and scaled to GLYPH_SIZE (0..1 ink)."""
    font = ImageFont.load_default(size=64)
    image = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(image).text((16, 4), letter, fill=255, font=font, stroke_width=3 if bold else 0, stroke_fill=255)
    return _normalise(np.asarray(image) > 127)


def _normalise(ink: np.ndarray) -> np.ndarray:
    ys, xs = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = ink[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
    side = max(crop.shape)
    square = np.zeros((side, side), bool)  # keep the aspect ratio: "l" and "o" differ by it
    oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    scaled = Image.fromarray(square.astype(np.uint8) * 255).resize((GLYPH_SIZE, GLYPH_SIZE), Image.BILINEAR)
    return np.asarray(scaled, dtype=np.float32) / 255.0


PDF_FONTS = ("helv", "hebo", "tiro", "tibo")  # PDF base-14 Helvetica, Helvetica-Bold, Times, Times-Bold


@lru_cache(maxsize=256)
def _pdf_template(letter: str, fontname: str) -> np.ndarray:
    """The letter in a PDF base-14 font (the faces journals print panel letters in), rendered by MuPDF."""
    import pymupdf  # lazy: only figures whose letters are read need it

    doc = pymupdf.open()
    page = doc.new_page(width=60, height=60)
    page.insert_text((10, 45), letter, fontname=fontname, fontsize=40)
    pix = page.get_pixmap(colorspace=pymupdf.csGRAY)
    doc.close()
    ink = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width) < 128
    return _normalise(ink)


@lru_cache(maxsize=64)
def _template_matrix(letters: tuple[str, ...]) -> np.ndarray:
    """Every rendering of the letters (Pillow's font regular and bold, the PDF faces), centred and scaled to
    unit norm, one row each: len(letters) * TEMPLATES_PER_LETTER rows of GLYPH_SIZE**2."""
    rows = []
    for letter in letters:
        for t in [_template(letter, False), _template(letter, True)] + [_pdf_template(letter, f) for f in PDF_FONTS]:
            t = (t - t.mean()).ravel()
            rows.append(t / (float(np.sqrt((t * t).sum())) or 1.0))
    return np.stack(rows)


def _scores(glyph: np.ndarray, letters: list[str]) -> list[float]:
    """Per letter, the best normalised correlation between the glyph and the letter's renderings: Pillow's
    bundled font, regular and bold, and the PDF base-14 sans and serif faces, regular and bold (one matrix
    product for all letters)."""
    g = (glyph - glyph.mean()).ravel()
    g = g / (float(np.sqrt((g * g).sum())) or 1.0)
    per_rendering = _template_matrix(tuple(letters)) @ g
    return per_rendering.reshape(len(letters), -1).max(axis=1).tolist()


GLYPH_MIN_PX = 8  # a glyph is at least this many pixels tall (so has at least this many pixels)


def _corner_glyphs(grey: np.ndarray, cell: Cell) -> list[tuple[np.ndarray, int, int]]:
    """Letter-sized ink components near the cell's four corners, dark-on-light and light-on-dark: (normalised
    glyph, corner index 0..3 = top left, top right, bottom left, bottom right, height in pixels).

    The eight ink masks (four corners, two inks) are labelled in one call, stacked with a blank row between
    them (no component crosses it; each mask's components keep their order, numbered after the previous
    masks'), and only components of GLYPH_MIN_PX pixels or more get a box: only they can be a glyph (at least
    GLYPH_MIN_PX px tall) or one of its brackets (at least 0.9 of its height). A textured corner holds
    hundreds of specks, whose boxes and eight calls per cell were most of the cost; the glyphs are the same.
    """
    x0, y0, x1, y1 = cell
    w, h = x1 - x0, y1 - y0
    cw, ch = max(12, int(w * 0.22)), max(12, int(h * 0.22))
    # a cell under 12 px that ends within 12 px of the figure's top or left edge: its far windows start at 0
    # (a negative start would wrap around the array and cut the window to nothing)
    windows = ((x0, y0), (max(0, x1 - cw), y0), (x0, max(0, y1 - ch)), (max(0, x1 - cw), max(0, y1 - ch)))
    masks = []  # (corner index, ink mask): the order the components were numbered in, corner by corner
    for corner_index, (cx, cy) in enumerate(windows):
        corner = grey[cy:cy + ch, cx:cx + cw]
        masks += [(corner_index, corner < 100), (corner_index, corner > 200)]
    width = max(ink.shape[1] for _, ink in masks)
    offsets = np.cumsum([0] + [ink.shape[0] + 1 for _, ink in masks])
    stack = np.zeros((int(offsets[-1]), width), bool)
    for (_, ink), off in zip(masks, offsets):
        stack[off:off + ink.shape[0], :ink.shape[1]] = ink
    labels, n = ndimage.label(stack, structure=_FOUR_CONNECTED)
    if n == 0:
        return []
    large = np.bincount(labels.ravel(), minlength=n + 1) >= GLYPH_MIN_PX
    large[0] = False
    objects = ndimage.find_objects(np.where(large[labels], labels, 0), max_label=n)  # None: a speck
    glyphs = []
    for i, box in enumerate(objects, start=1):
        if box is None:
            continue
        ys, xs = box
        gh, gw = ys.stop - ys.start, xs.stop - xs.start
        if not (0.03 * h <= gh <= 0.15 * h and 0.3 <= gw / gh <= 1.3 and gh >= GLYPH_MIN_PX):
            continue
        k = int(np.searchsorted(offsets, ys.start, side="right")) - 1  # the mask it lies in
        corner_index, ink = masks[k]
        off, (mh, mw) = int(offsets[k]), ink.shape
        top, bottom = ys.start - off, ys.stop - off
        if top == 0 or xs.start == 0 or bottom == mh or xs.stop == mw:
            continue  # cut by the corner window: part of a larger shape
        window = labels[off + max(0, top - 3):off + min(mh, bottom + 3), max(0, xs.start - 3):min(mw, xs.stop + 3)]
        others = (window > 0) & (window != i) & ~np.isin(window, _brackets(objects, window, i, gh))
        if others.mean() > 0.05:
            continue  # not alone in a clear box: texture, not a printed letter
        glyphs.append((_normalise(labels[ys, xs] == i), corner_index, gh))
    return glyphs


def _brackets(objects: list, window: np.ndarray, i: int, height: int) -> list[int]:
    """Components in the window around glyph i (label numbers; objects = their slices, None for specks
    under GLYPH_MIN_PX pixels, too short to count) shaped like the brackets of "(a)" -- as tall as the letter
    to twice that, under half as wide as tall, spanning it vertically: panel letters are often printed in
    brackets, which stand next to the letter and must not count as the texture around it."""
    ys = objects[i - 1][0]
    out = []
    for k in np.unique(window):
        if k in (0, i) or objects[k - 1] is None:
            continue
        ky, kx = objects[k - 1]
        kh, kw = ky.stop - ky.start, kx.stop - kx.start
        if 0.9 * height <= kh <= 2 * height and kw < 0.5 * kh and ky.start <= ys.start + 2 and ky.stop >= ys.stop - 2:
            out.append(int(k))
    return out


def read_letters(grey: np.ndarray, cells: list[Cell], wanted: list[str], placed: bool = False) -> list[str] | None:
    """The letter printed in each cell's corner, when every cell shows one distinct wanted letter clearly;
    a single cell left unread (a schematic whose own labels crowd its corners) gets the single letter left.

    placed (nothing else vouches for the letters, e.g. a caption naming no panels): every cell must be read,
    and all letters must stand in the same corner of their cells at about the same height (within
    PLACED_HEIGHT) -- journals set panel letters uniformly, while a tick label, an axis title or a texture blob
    that happens to look like a letter sits anywhere.
    """
    if placed:
        return _read_placed(grey, cells, wanted) or _bracketed(grey, cells, wanted)
    letters: list[str | None] = []
    for cell in cells:
        scored: dict[str, float] = {}
        for glyph, _, _ in _corner_glyphs(grey, cell):
            for letter, score in zip(wanted, _scores(glyph, wanted)):
                scored[letter] = max(scored.get(letter, -1.0), score)
        ranked = sorted(scored.items(), key=lambda kv: -kv[1])
        clear = ranked and ranked[0][1] >= MIN_LETTER_SCORE and (
            len(ranked) == 1 or ranked[0][1] - ranked[1][1] >= LETTER_MARGIN)
        letters.append(ranked[0][0] if clear else None)
    read = [x for x in letters if x]
    if len(set(read)) != len(read):
        return _bracketed(grey, cells, wanted)
    left = [x for x in wanted if x not in read]
    if letters.count(None) == 1 and len(left) == 1:
        letters[letters.index(None)] = left[0]
    return letters if None not in letters else _bracketed(grey, cells, wanted)  # type: ignore[return-value]


def _bracketed(grey: np.ndarray, cells: list[Cell], wanted: list[str]) -> list[str] | None:
    """Letters printed as "(x)" along the cells' top or bottom edge, set alike (panel_marks): where the corners
    hold none (a letter centred under a sketch, beside a micrograph's scale bar)."""
    def classify(mask: np.ndarray) -> str | None:
        ranked = sorted(zip(_scores(_normalise(mask), wanted), wanted), reverse=True)
        top, letter = ranked[0]
        return letter if top >= MIN_LETTER_SCORE and (len(ranked) == 1 or top - ranked[1][0] >= LETTER_MARGIN) \
            else None

    return bracketed_letters(grey, cells, wanted, classify, PLACED_HEIGHT)


def _corner_letters(grey: np.ndarray, cells: list[Cell], wanted: list[str]) -> list[dict[int, tuple[float, str, int]]]:
    """Per cell, per corner: the glyph most clearly one wanted letter (its best letter beats its own second best
    by LETTER_MARGIN) as (score, letter, height)."""
    per_cell: list[dict[int, tuple[float, str, int]]] = []
    for cell in cells:
        corners: dict[int, tuple[float, str, int]] = {}
        for glyph, corner, height in _corner_glyphs(grey, cell):
            ranked = sorted(zip(_scores(glyph, wanted), wanted), reverse=True)
            top, letter = ranked[0]
            clear = top >= MIN_LETTER_SCORE and (len(ranked) == 1 or top - ranked[1][0] >= LETTER_MARGIN)
            if clear and top > corners.get(corner, (-1.0, "", 0))[0]:
                corners[corner] = (top, letter, height)
        per_cell.append(corners)
    return per_cell


def _placed_in_corner(per_cell: list[dict[int, tuple[float, str, int]]], wanted: list[str]
                      ) -> list[str | None] | None:
    """Letters of one corner, set alike (distinct, about one height), that are exactly the wanted ones; cells
    without a letter in that corner get None."""
    for corner in range(4):
        found = [c.get(corner) for c in per_cell]
        read = [x for x in found if x is not None]
        heights = [x[2] for x in read]
        if sorted(x[1] for x in read) == sorted(wanted) and len({x[1] for x in read}) == len(read) and \
                max(heights) <= PLACED_HEIGHT * min(heights):
            return [x[1] if x else None for x in found]
    return None


def _read_placed(grey: np.ndarray, cells: list[Cell], wanted: list[str]) -> list[str] | None:
    """read_letters(placed=True): the letters of a corner where every cell has one (a texture blob in another
    corner does not compete)."""
    letters = _placed_in_corner(_corner_letters(grey, cells, wanted), wanted) if len(cells) == len(wanted) else None
    return letters if letters and None not in letters else None  # type: ignore[return-value]


def join_unlettered(grey: np.ndarray, cells: list[Cell], wanted: list[str]) -> tuple[list[Cell], list[str]] | None:
    """More gutter cells than the caption names panels (a legend, a colour bar or an axis title cut off its
    plot): when the wanted letters are printed alike in exactly as many cells, every other cell joins the
    nearest lettered cell in its row or column band. None unless the joined boxes stay apart."""
    letters = _placed_in_corner(_corner_letters(grey, cells, wanted), wanted)
    if letters is None:
        return None
    boxes = {x: cells[i] for i, x in enumerate(letters) if x}
    for i, cell in enumerate(cells):
        if letters[i]:
            continue
        best: tuple[float, str] | None = None
        for x, own in ((x, cells[k]) for k, x in enumerate(letters) if x):
            dx = max(own[0], cell[0]) - min(own[2], cell[2])  # gap (negative: overlap along that axis)
            dy = max(own[1], cell[1]) - min(own[3], cell[3])
            if dx < 0 or dy < 0:  # same row band or same column band
                gap = max(dx, dy)
                if best is None or gap < best[0]:
                    best = (gap, x)
        if best is None:
            return None
        a = boxes[best[1]]
        boxes[best[1]] = (min(a[0], cell[0]), min(a[1], cell[1]), max(a[2], cell[2]), max(a[3], cell[3]))
    joined = list(boxes.values())
    for i, a in enumerate(joined):
        for b in joined[i + 1:]:
            if min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]):
                return None  # two panels would overlap: the cells were not "a panel and its pieces"
    order = sorted(boxes, key=lambda x: (boxes[x][1], boxes[x][0]))
    return [boxes[x] for x in order], order


def split_composite(grey_image: Image.Image, wanted: list[str]) -> Layout | None:
    """Cells (and their letters when readable) of a composite figure naming `wanted` panels, or None when
    the photo/line-art layout does not give exactly that many cells."""
    grey = np.asarray(grey_image)
    cells = find_cells(grey)
    if len(cells) != len(wanted):
        return None
    letters = read_letters(grey, cells, wanted)
    kinds = f"{len(cells)} cells (photographs cut along thin borders, line art around them)"
    return Layout(cells, letters, kinds + ("; letters read in the pixels" if letters else "; letters unread"))
