"""Panel cells of a one-image figure: recursive XY-cut along white gutters (used by the panels stage).

A gutter is a row or column that is near-white from edge to edge of a region: mean grey > GUTTER_MEAN and
std < GUTTER_STD (JPEG noise passes, a thin dark line crossing it does not). The search runs on numpy
projections: sums of the grey values (and of their squares, on the few lines bright enough) along the rows
or columns of a cell, read from a copy that keeps full resolution across lines (a 3 px gutter stays
visible) and is downsampled along them (at most LINE_SAMPLES samples per line); a whole XY-cut reads that
copy about 7 times -- far less than decoding the figure.

A figure set on a dark background (a frame of uniform dark lines on three sides or four, dark gutters between photos,
common for optical and SEM composites) is searched on its negative inside the frame: its gutters are dark, and
no edge-to-edge white line exists. A uniform strip along one edge only (a dark bar left of a plot column) is
trimmed before the search, as it would cross every gutter. Both rules look at the figure's own edges, not at
any one paper: uniform edge lines carry no content.

When the caption names fewer panels than the grid has cells, join_small_cells (a panel's small call-out,
legend or title strip behind a gutter joins it) and repeated_bands (rows or columns repeating one arrangement
are one panel each) group the cells into the named panels, or say they cannot (docs/panels.md, rules 6-7).

Usage:
    from dataset_builders.panel_grid import find_grid
    grid = find_grid(image.convert("L"))   # Grid(cells=[(x0, y0, x1, y1), ...], problem="")
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

LINE_SAMPLES = 800  # pixels read along each row/column when testing it for a gutter (bounds the cost)
MAX_CUT_DEPTH = 6  # nested row/column cuts (a 3 x 3 grid needs 2)
GUTTER_MEAN = 240.0  # a gutter line's mean grey is above this ...
GUTTER_STD = 12.0  # ... and its grey std below this (a thin dark line crossing it breaks it)
MIN_CELL_FRACTION = 0.12  # every cell spans at least this share of the figure's width and height

Cell = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end-exclusive


def _white(total: np.ndarray, squares: np.ndarray, n: int) -> np.ndarray:
    """Lines whose n samples sum to `total` and their squares to `squares` (integers): mean > GUTTER_MEAN
    and variance < GUTTER_STD**2."""
    mean = total / n
    var = squares / n - mean * mean
    return (mean > GUTTER_MEAN) & (var < GUTTER_STD * GUTTER_STD)


class _LineStats:
    """Mean and std of row or column segments, from exact integer sums of sampled pixels.

    Lines keep full resolution (a 3 px gutter stays visible); along each line only every step-th
    pixel is read, so a line holds at most about LINE_SAMPLES samples and int32 sums cannot overflow.
    Each query sums its segment's samples (uint8 summed as int32: ~0.13 ms for a 1000 x 800 figure),
    and squares only the lines whose mean already passes GUTTER_MEAN (margins and gutters: few). An XY-cut
    reads about 7 figure areas this way; running sums of every line and of its squares (this class before)
    took four int32 cumsums, slower than decoding the figure (6.6 against 4.2 ms on a 1019 x 815 one). The
    sums are the same integers, so the same lines are white.
    """

    def __init__(self, grey: np.ndarray):
        height, width = grey.shape
        self.step = max(1, math.ceil(max(width, height) / LINE_SAMPLES))
        # H x ceil(W / step): samples along each row; ceil(H / step) x W: samples along each column
        self.rows = grey if self.step == 1 else np.ascontiguousarray(grey[:, ::self.step])
        self.cols = grey if self.step == 1 else np.ascontiguousarray(grey[::self.step, :])

    def _span(self, lo: int, hi: int, n_samples: int) -> tuple[int, int]:
        """Sample indices [a, b) of pixels lo..hi-1 along a line (at least one sample)."""
        a, b = -(-lo // self.step), -(-hi // self.step)
        if b <= a:
            a = min(lo // self.step, n_samples - 1)
            b = a + 1
        return a, b

    @staticmethod
    def _white_lines(block: np.ndarray, axis: int) -> np.ndarray:
        """For every line of block (a line runs along `axis` and is summed over it): white or not."""
        n = block.shape[axis]
        total = block.sum(axis=axis, dtype=np.int32)
        white = total > GUTTER_MEAN * n  # candidates; _white decides with the exact mean below
        if not white.any():
            return white
        lines = np.flatnonzero(white)
        picked = (block[lines] if axis == 1 else block[:, lines]).astype(np.int32)
        squares = (picked * picked).sum(axis=axis, dtype=np.int32)
        white[lines] = _white(total[lines], squares, n)
        return white

    def white_rows(self, cell: Cell) -> np.ndarray:
        """Per row y0..y1-1 of the cell: near-white from x0 to x1."""
        x0, y0, x1, y1 = cell
        a, b = self._span(x0, x1, self.rows.shape[1])
        return self._white_lines(self.rows[y0:y1, a:b], axis=1)

    def white_cols(self, cell: Cell) -> np.ndarray:
        """Per column x0..x1-1 of the cell: near-white from y0 to y1."""
        x0, y0, x1, y1 = cell
        a, b = self._span(y0, y1, self.cols.shape[0])
        return self._white_lines(self.cols[a:b, x0:x1], axis=0)


def content_runs(white: np.ndarray) -> list[tuple[int, int]]:
    """Runs [start, end) of non-white lines."""
    content = np.concatenate(([False], ~white, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(content))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2])]


def merge_small(runs: list[tuple[int, int]], min_size: float) -> list[tuple[int, int]]:
    """Merge runs shorter than min_size (labels, legends, scale-bar captions) into the nearer neighbour."""
    runs = list(runs)
    while len(runs) > 1:
        sizes = [e - s for s, e in runs]
        i = min(range(len(runs)), key=lambda k: (sizes[k], k))
        if sizes[i] >= min_size:
            break
        gap_prev = runs[i][0] - runs[i - 1][1] if i > 0 else math.inf
        gap_next = runs[i + 1][0] - runs[i][1] if i + 1 < len(runs) else math.inf
        j = i - 1 if gap_prev < gap_next else i + 1
        a, b = min(i, j), max(i, j)
        runs[a:b + 1] = [(runs[a][0], runs[b][1])]
    return runs


def _trim(lines: _LineStats, cell: Cell) -> Cell | None:
    """The cell shrunk to its non-white content, or None if it is blank."""
    x0, y0, _, _ = cell
    rows = np.flatnonzero(~lines.white_rows(cell))
    cols = np.flatnonzero(~lines.white_cols(cell))
    if rows.size == 0 or cols.size == 0:
        return None
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _xy_cut(lines: _LineStats, cell: Cell, min_w: float, min_h: float, depth: int = 0) -> list[Cell]:
    """Recursive XY-cut along white gutters; trimmed cells in reading order (rows first, then columns)."""
    trimmed = _trim(lines, cell)
    if trimmed is None:
        return []
    x0, y0, x1, y1 = trimmed
    if depth < MAX_CUT_DEPTH:
        rows = merge_small(content_runs(lines.white_rows(trimmed)), min_h)
        if len(rows) > 1:
            return [c for s, e in rows for c in _xy_cut(lines, (x0, y0 + s, x1, y0 + e), min_w, min_h, depth + 1)]
        cols = merge_small(content_runs(lines.white_cols(trimmed)), min_w)
        if len(cols) > 1:
            return [c for s, e in cols for c in _xy_cut(lines, (x0 + s, y0, x0 + e, y1), min_w, min_h, depth + 1)]
    return [trimmed]


@dataclass
class Grid:
    cells: list[Cell]  # pixel boxes, trimmed of white margins, in reading order
    problem: str  # "" when every cell has a reasonable size, else why not


DARK_FRAME = 40.0  # uniform edge lines darker than this (mean grey) make a dark frame


UNIFORM_BATCH = 16  # edge lines tested per numpy call (a white margin is tens of lines)


def _uniform_run(lines: np.ndarray, along_rows: bool) -> int:
    """How many lines of a 2-D array are uniform (grey std < GUTTER_STD) before the first that is not:
    its rows in order (along_rows), else its columns in order.

    Lines are tested UNIFORM_BATCH at a time, one std per row of a contiguous block (columns copied as
    rows): the same float64 operations as one std per line -- the sums of the pixels are exact integers and
    the squared deviations are summed pairwise along each line either way -- so the same lines pass
    (tests/test_build_speed.py compares the two); per line, numpy's call overhead was most of the cost
    (~15,000 calls for 400 figures)."""
    n = lines.shape[0 if along_rows else 1]
    for start in range(0, n, UNIFORM_BATCH):
        block = lines[start:start + UNIFORM_BATCH] if along_rows else \
            np.ascontiguousarray(lines[:, start:start + UNIFORM_BATCH].T)
        bad = np.flatnonzero(~(block.std(axis=1) < GUTTER_STD))
        if bad.size:
            return start + int(bad[0])
    return n


def _uniform_edges(grey: np.ndarray) -> tuple[Cell, list[float]]:
    """The box inside the uniform lines (grey std < GUTTER_STD, any level) along each edge, and the mean
    grey of each edge strip that was found (top, bottom, left, right order; missing strips are left out)."""
    height, width = grey.shape
    means: list[float] = []
    top = _uniform_run(grey, True)
    bottom = height - _uniform_run(grey[top:][::-1], True)  # row `top` is not uniform: the run stops there
    if bottom - top < 2:  # uniform from top to bottom: nothing inside
        return (0, top, width, bottom), means
    band = grey[top:bottom]
    left = _uniform_run(band, False)
    right = width - _uniform_run(band[:, left:][:, ::-1], False)
    for present, rows in ((top > 0, grey[:top]), (bottom < height, grey[bottom:]),
                          (left > 0, grey[:, :left]), (right < width, grey[:, right:])):
        if present:
            means.append(float(rows.mean()))
    return (left, top, right, bottom), means


def find_grid(grey_image: Image.Image) -> Grid:
    """Panel cells separated by white gutters in a grey ('L') image (dark gutters inside a dark frame)."""
    width, height = grey_image.size
    grey = np.asarray(grey_image)
    (fx0, fy0, fx1, fy1), frame = _uniform_edges(grey)
    if fx1 - fx0 < 2 or fy1 - fy0 < 2:
        return Grid([(0, 0, width, height)], "")
    inner = grey[fy0:fy1, fx0:fx1]
    if sum(m < DARK_FRAME for m in frame) >= 3 and all(m < DARK_FRAME for m in frame):
        # a dark background (three sides at least: a collage is often cropped tight on one side): its
        # gutters are dark, so the search runs on the negative
        inner = 255 - inner
    lines = _LineStats(inner)
    cells = [(x0 + fx0, y0 + fy0, x1 + fx0, y1 + fy0) for x0, y0, x1, y1 in
             _xy_cut(lines, (0, 0, fx1 - fx0, fy1 - fy0), MIN_CELL_FRACTION * width, MIN_CELL_FRACTION * height)]
    small = [c for c in cells if c[2] - c[0] < MIN_CELL_FRACTION * width or c[3] - c[1] < MIN_CELL_FRACTION * height]
    problem = ""
    if small:
        problem = f"{len(small)} of {len(cells)} cells smaller than {MIN_CELL_FRACTION:.0%} of the figure side"
    return Grid(cells, problem)


# --- more gutter cells than the caption names panels ---------------------------------------------------

SMALL_CELL_SHARE = 0.35  # a cell this much smaller (area) than every other is a piece of a panel, not a panel
ALIKE_TOLERANCE = 0.05  # spans of repeated rows/columns agree within this share of the figure's side


def _area(c: Cell) -> int:
    return (c[2] - c[0]) * (c[3] - c[1])


def _overlap(a: Cell, b: Cell) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def join_small_cells(cells: list[Cell], n: int) -> list[Cell] | None:
    """n panels out of more gutter cells, when the surplus cells are small pieces of panels.

    Layout property: a panel's own legend, colour-bar strip, call-out text or letter-and-title strip sits
    apart from its image behind a gutter, but it is far smaller than any panel of the figure (panels of one
    figure are set at comparable sizes). So when the cells beyond the caption's n are each under
    SMALL_CELL_SHARE of the area of the smallest of the n others, each joins the nearest of those n sharing
    its row or column band. None when the sizes do not separate so, a piece has no such neighbour, or two
    joined panels would overlap (the cells were not "n panels and their pieces")."""
    surplus = len(cells) - n
    if n < 2 or surplus < 1:
        return None
    order = sorted(range(len(cells)), key=lambda i: (_area(cells[i]), i))
    small, big = order[:surplus], order[surplus:]
    if _area(cells[small[-1]]) >= SMALL_CELL_SHARE * _area(cells[big[0]]):
        return None
    boxes = {i: cells[i] for i in big}
    for s in small:
        piece = cells[s]
        best: tuple[int, int] | None = None
        for i in big:
            own = cells[i]
            dx = max(own[0], piece[0]) - min(own[2], piece[2])  # gap; negative: the bands overlap
            dy = max(own[1], piece[1]) - min(own[3], piece[3])
            if (dx < 0 or dy < 0) and (best is None or max(dx, dy) < best[0]):
                best = (max(dx, dy), i)
        if best is None:
            return None
        a = boxes[best[1]]
        boxes[best[1]] = (min(a[0], piece[0]), min(a[1], piece[1]), max(a[2], piece[2]), max(a[3], piece[3]))
    joined = [boxes[i] for i in sorted(boxes)]  # in the grid's order
    if any(_overlap(a, b) for k, a in enumerate(joined) for b in joined[k + 1:]):
        return None
    return joined


def _bands(cells: list[Cell], axis: int) -> list[list[int]]:
    """Cells grouped into bands along axis (1: rows, by vertical overlap; 0: columns), in order."""
    lo, hi = axis, axis + 2
    bands: list[list[int]] = []
    end = -math.inf
    for i in sorted(range(len(cells)), key=lambda k: (cells[k][lo], k)):
        if bands and cells[i][lo] < end:
            bands[-1].append(i)
            end = max(end, cells[i][hi])
        else:
            bands.append([i])
            end = cells[i][hi]
    return bands


def repeated_bands(cells: list[Cell], n: int, size: tuple[int, int]) -> list[Cell] | None:
    """n panels out of n rows (or n columns) of cells that repeat one arrangement.

    Layout property: a figure comparing n conditions over the same steps (time, load, field) sets each
    condition as a row of images, the same number of images at the same places in every row, and letters
    the rows, not the images ("(a) the phase field and (b) hydrostatic stress, for three displacements").
    Such a row is one panel. The rows (columns) must hold two or more cells each, the same count, at spans
    that agree within ALIKE_TOLERANCE of the figure's width (height); anything less regular is not this, nor a
    plain grid whose rows and columns both repeat (the caption does not say which way its letters run)."""
    if n < 2 or len(cells) < 2 * n or len(cells) % n:
        return None
    found: list[list[Cell]] = []
    for axis in (1, 0):
        bands = _bands(cells, axis)
        if len(bands) != n:
            continue
        across = 1 - axis  # the spans compared run along the band
        tol = ALIKE_TOLERANCE * size[across]
        rows = [sorted(b, key=lambda i: cells[i][across]) for b in bands]
        if len({len(r) for r in rows}) != 1:
            continue
        alike = all(abs(cells[r[k]][across] - cells[rows[0][k]][across]) <= tol and
                    abs(cells[r[k]][across + 2] - cells[rows[0][k]][across + 2]) <= tol
                    for r in rows[1:] for k in range(len(r)))
        if alike:
            found.append([(min(cells[i][0] for i in r), min(cells[i][1] for i in r),
                           max(cells[i][2] for i in r), max(cells[i][3] for i in r)) for r in rows])
    return found[0] if len(found) == 1 else None  # rows and columns both repeat (a plain grid): not said which
