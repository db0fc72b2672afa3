"""Panels that abut: cuts that are not white gutters (used by the panels stage; docs/panels.md, "Seams").

Published figures often set their micrographs edge to edge, or apart by a 1-6 px black or coloured line, so
the white-gutter grid (panel_grid) finds fewer cells than the caption names panels. Two photographs set side
by side meet along a straight line where the picture changes: on each side the texture runs on from row to
row, across the line it does not (two photographs are unrelated pixel by pixel) or the brightness steps. A
feature of one photograph -- an interface, a brightness step, a crack -- is an edge too, but its texture runs
on across it, and it is not straight to the pixel along the whole span. So a bare seam is a row (column)
where, in nearly every segment of the cell's span that is picture (not paper: a plot's axis or grid line has
paper around it), the change across is BREAK_RATIO times the change on either side, or the rows meeting at
it are uncorrelated while their neighbours correlate, or the brightness steps while the texture changes too
(_broken). A separator is a thin row band that is uniform along nearly the whole span (UNIFORM_SHARE: labels
and arrows may cross it), darker or lighter than the picture on both sides, across which the texture does not
visibly run on (_separates). A uniform dark line drawn across a whole micrograph is taken for a separator
when the texture is too fine to judge whether it runs on under it.

find_seam_cells cuts each gutter cell along its seams (a recursive XY-cut: rows first, then columns),
keeping a seam only when the pieces it leaves are plausible panels (each at least MIN_PIECE of the figure's
side, the pieces of one cut within MAX_RATIO of each other: rows of one height, columns of comparable
width), and returns the cells only when they are exactly as many as the caption names. Otherwise None: the
figure stays as the gutter grid left it (precision first).

Usage:
    from dataset_builders.panel_seams import find_seam_cells
    cells = find_seam_cells(grey_array, gutter_cells, n)   # n cells, or None
"""

from __future__ import annotations

import numpy as np

from dataset_builders.panel_grid import Cell

SEAM_GAP = 3  # rows this far apart are compared across a seam and on each side of it (JPEG blurs a seam 1-2 px)
SEGMENTS = 16  # a line is judged in this many pieces along its span ...
MIN_SEGMENT = 16  # ... each at least this many pixels long
BREAK_RATIO = 2.0  # across a seam the picture changes at least this many times more than on either side ...
MIN_CHANGE = 6.0  # ... and by at least this many grey levels (median absolute deviation of the difference)
MIN_STEP = 16.0  # or its brightness steps by this many grey levels (BREAK_RATIO times the drift on a side) ...
WEAK_BREAK = 1.3  # ... while the texture changes at least this many times more across it than on a side, or
RUNS_ON = 0.5  # ... does not run on: the rows meeting there correlate under this share of what the rows as far
SIDE_CORR = 0.5  # apart on either side correlate, and those at least this well (else it cannot be judged)
SEAM_SHARE = 0.9  # a seam breaks the picture in at least this share of its segments that are picture ...
PICTURE_SHARE = 0.75  # ... which are at least this share of all its segments (nearly the whole span)
PAPER = 235  # a pixel above this grey is paper ...
PAPER_SHARE = 0.75  # ... and a segment with this share of paper pixels is paper (a plot's row across white)
SEPARATOR_MAX = 6  # a uniform separator line is at most this many pixels thick ...
UNIFORM_TOL = 14  # ... its pixels within this of its median grey ...
UNIFORM_SHARE = 0.85  # ... nearly all of them (labels and arrows cross separators)
RUNS_ON_SHARE = 0.25  # ... not a separator when the texture runs on across it in over this share of the segments
                      # where that can be judged
MIN_PIECE = 0.12  # every piece spans at least this share of the figure's width and height (panel_grid's)
MAX_RATIO = 2.2  # the pieces of one cut: the longest at most this many times the shortest
MAX_DEPTH = 3  # nested cuts (rows, then columns in a row, then rows in such a column)


def _line_stats(region: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of region cut into segments along their span: the segments (rows x segments x pixels), whether each
    segment is picture rather than paper (rows x segments), whether each whole row is uniform (rows)."""
    height, width = region.shape
    n = max(1, min(SEGMENTS, width // MIN_SEGMENT))
    length = width // n
    blocks = region[:, :n * length].reshape(height, n, length)
    picture = (blocks > PAPER).mean(axis=2) < PAPER_SHARE
    median = np.median(region, axis=1, keepdims=True)
    uniform = (np.abs(region - median) <= UNIFORM_TOL).mean(axis=1) >= UNIFORM_SHARE
    return blocks, picture, uniform


def _change(blocks: np.ndarray, a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """How much the picture changes from row a to row b, per segment: the median absolute deviation of their
    difference. A brightness offset (one photograph's straight edge) does not count; inside one photograph
    most pixels lie away from its edges and change little, while two photographs differ nearly everywhere."""
    d = blocks[b] - blocks[a]
    return np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1)


def _corr(blocks: np.ndarray, a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Per segment: the correlation of rows a and b (0 where one is flat)."""
    x = blocks[a] - blocks[a].mean(axis=-1, keepdims=True)
    y = blocks[b] - blocks[b].mean(axis=-1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    return (x * y).sum(axis=-1) / np.maximum(den, 1e-6)


def _broken(blocks: np.ndarray, picture: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Per candidate bare seam y (the cut between rows y - 1 and y; compared are rows top = y - 2 and bottom =
    y + 1, SEAM_GAP apart): the share of segments where the picture breaks; 0 where too few segments are
    picture (not paper) on both sides. A segment breaks when
    * the change across (rows top and bottom, or the two rows meeting at the seam: JPEG blurs a seam over a
      pixel or two) is BREAK_RATIO times the change between rows as far apart on either side; or
    * the rows meeting at the seam are unrelated (correlation under RUNS_ON of their neighbours'); or
    * the brightness steps at the line by MIN_STEP, BREAK_RATIO times more than as far apart on either side,
      and the texture changes across it too (WEAK_BREAK, or unrelated rows): one photograph's texture runs on
      across a brightness step.
    This must hold in SEAM_SHARE of the segments at one row: one photograph's edges and interfaces are not
    straight to the pixel along its whole span.
    Every change and correlation compares rows 1 or SEAM_GAP apart: each is computed once per row (change1[r]:
    rows r and r + 1, change3[r]: r and r + 3, corr1[r]: r and r + 1) and looked up per candidate."""
    d = SEAM_GAP
    top, bottom = ys - 2, ys + 1
    floor = 2.0  # grey levels: a flat side is not infinitely smooth (JPEG noise)
    rows = np.arange(blocks.shape[0])
    change1, corr1 = _change(blocks, rows[:-1], rows[1:]), _corr(blocks, rows[:-1], rows[1:])
    change3 = _change(blocks, rows[:-d], rows[d:])
    across = change3[top]
    ratio = across / np.maximum(np.maximum(change3[top - d], change3[bottom]), floor)
    near = np.maximum(change1[top - 1], change1[bottom])
    at_seam = change1[top + 1]  # rows y - 1 and y, meeting at the seam
    texture = ((ratio >= BREAK_RATIO) & (across >= MIN_CHANGE)) | \
        ((at_seam >= BREAK_RATIO * np.maximum(near, floor)) & (at_seam >= MIN_CHANGE))
    side_corr = np.minimum(corr1[top], corr1[bottom - 1])  # each pair of rows meeting and its neighbours
    unrelated = (corr1[top + 1] < RUNS_ON * side_corr) & (side_corr >= SIDE_CORR)
    mean = blocks.mean(axis=-1)
    step = np.abs(mean[top] - mean[bottom])
    drift = np.maximum(np.abs(mean[top - d] - mean[top]), np.abs(mean[bottom] - mean[bottom + d]))
    brightness = (step >= MIN_STEP) & (step >= BREAK_RATIO * np.maximum(drift, floor)) & \
        ((ratio >= WEAK_BREAK) | unrelated)
    ok = picture[top - d] & picture[top] & picture[bottom] & picture[bottom + d]
    count = ok.sum(axis=1)
    share = (ok & (texture | unrelated | brightness)).sum(axis=1) / np.maximum(count, 1)
    return np.where(count >= PICTURE_SHARE * blocks.shape[1], share, 0.0)


def _separates(blocks: np.ndarray, picture: np.ndarray, line: np.ndarray, top: int, bottom: int) -> bool:
    """A thin uniform line across the whole span (a drawn separator) between picture on both sides: a separator
    unless the texture visibly runs on across it (a line drawn over one photograph), or it is no darker or
    lighter than the picture beside it (a flat band of the photograph)."""
    n = blocks.shape[1]
    ok = picture[top] & picture[bottom] & picture[2 * top - bottom] & picture[2 * bottom - top]
    if ok.sum() < PICTURE_SHARE * n:
        return False
    level = float(np.median(line))
    mean = blocks.mean(axis=-1)
    contrast = (np.abs(mean[top] - level) >= MIN_STEP) & (np.abs(mean[bottom] - level) >= MIN_STEP)
    if (contrast & ok).sum() < SEAM_SHARE * ok.sum():
        return False
    gap = bottom - top
    side_corr = np.minimum(_corr(blocks, top - gap, top), _corr(blocks, bottom, bottom + gap))
    judged = ok & (side_corr >= SIDE_CORR)
    runs_on = judged & (_corr(blocks, top, bottom) >= RUNS_ON * side_corr)
    return runs_on.sum() <= RUNS_ON_SHARE * max(judged.sum(), 1)


def row_seams(region: np.ndarray) -> list[tuple[int, int, float]]:
    """Horizontal seams of a region (grey, rows x cols): (end of the piece above, start of the piece below,
    strength). A bare seam has end == start; a separator line lies between them."""
    region = np.asarray(region, dtype=np.float32)  # no copy when the caller converted the figure once
    height = region.shape[0]
    g = SEAM_GAP
    if height < 6 * g or region.shape[1] < MIN_SEGMENT:
        return []
    blocks, picture, uniform = _line_stats(region)
    # bare seams: the cut at y lies between rows y - 1 and y; compared are rows y - 2 and y + 1
    ys = np.arange(g + 2, height - g - 1)
    shares = _broken(blocks, picture, ys)
    found = [(int(y), int(y), float(s)) for y, s in zip(ys, shares) if s >= SEAM_SHARE]
    # separator lines: thin runs of uniform rows, compared on the rows just outside them (1-3 px off: anti-aliasing)
    runs = np.flatnonzero(np.diff(np.concatenate(([0], uniform.astype(np.int8), [0]))))
    for first, end in zip(runs[::2], runs[1::2]):
        top, bottom = first - 2, end + 1  # 1 px off the line: anti-aliasing, JPEG ringing
        if end - first <= SEPARATOR_MAX and 2 * top - bottom >= 0 and 2 * bottom - top < height and \
                _separates(blocks, picture, region[first:end], top, bottom):
            found.append((int(first), int(end), 1.0))
    return [_outside_line(seam, uniform) for seam in _one_per_seam(sorted(found))]


def _outside_line(seam: tuple[int, int, float], uniform: np.ndarray) -> tuple[int, int, float]:
    """A bare seam found beside a thin separator line: the line belongs to neither piece."""
    first, end, share = seam
    if first != end or not (uniform[first - 1] or uniform[first]):
        return seam
    while first > 0 and uniform[first - 1]:
        first -= 1
    while end < len(uniform) and uniform[end]:
        end += 1
    return (first, end, share) if end - first <= SEPARATOR_MAX else seam


def _one_per_seam(found: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Detections within SEAM_GAP of each other are one seam: keep the strongest (the middle of ties)."""
    groups: list[list[tuple[int, int, float]]] = []
    for seam in found:
        if groups and seam[0] - groups[-1][-1][1] <= SEAM_GAP:
            groups[-1].append(seam)
        else:
            groups.append([seam])
    out = []
    for group in groups:
        best = max(s[2] for s in group)
        ties = [s for s in group if s[2] == best]
        out.append(ties[len(ties) // 2])
    return out


def _cut_positions(seams: list[tuple[int, int, float]], length: int, min_len: float
                   ) -> list[tuple[int, int]] | None:
    """Pieces [start, end) of a span cut along the strongest seams that leave every piece at least min_len;
    None when no seam is kept or the pieces differ more than MAX_RATIO."""
    kept: list[tuple[int, int, float]] = []
    for seam in sorted(seams, key=lambda s: -s[2]):
        bounds = sorted(kept + [seam])
        starts = [0] + [s[1] for s in bounds]
        ends = [s[0] for s in bounds] + [length]
        if all(e - s >= min_len for s, e in zip(starts, ends)):
            kept = bounds
    if not kept:
        return None
    pieces = list(zip([0] + [s[1] for s in kept], [s[0] for s in kept] + [length]))
    sizes = [e - s for s, e in pieces]
    return pieces if max(sizes) <= MAX_RATIO * min(sizes) else None


def _split(grey: np.ndarray, cell: Cell, min_w: float, min_h: float, depth: int = 0) -> list[Cell]:
    """A cell cut along its seams, recursively (rows first, then columns)."""
    x0, y0, x1, y1 = cell
    if depth >= MAX_DEPTH:
        return [cell]
    region = grey[y0:y1, x0:x1]
    rows = _cut_positions(row_seams(region), y1 - y0, min_h)
    if rows:
        return [c for s, e in rows for c in _split(grey, (x0, y0 + s, x1, y0 + e), min_w, min_h, depth + 1)]
    cols = _cut_positions(row_seams(region.T), x1 - x0, min_w)
    if cols:
        return [c for s, e in cols for c in _split(grey, (x0 + s, y0, x0 + e, y1), min_w, min_h, depth + 1)]
    return [cell]


def find_seam_cells(grey: np.ndarray, cells: list[Cell], n: int) -> list[Cell] | None:
    """The gutter cells cut along their seams, when that gives exactly n cells (else None). grey: the figure's
    grey pixels (rows x cols); cells: the white-gutter grid's cells (one: the whole figure)."""
    height, width = grey.shape
    if n <= len(cells):
        return None
    grey = np.asarray(grey, dtype=np.float32)  # once, not per region and depth
    out = [c for cell in cells for c in _split(grey, cell, MIN_PIECE * width, MIN_PIECE * height)]
    return out if len(out) == n else None

