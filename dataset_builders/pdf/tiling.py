"""Pictures that tile one rectangle: a grid of separately embedded images set as one figure.

Authors lay out a figure of several micrographs as a grid, each image placed on its own, with gutters wider
than the gap that clusters graphics (figures.GRAPHIC_GAP): 20-70 pt between 200-400 pt cells. The grid is
one figure when its cells fill every row and column, their edges line up row by row and column by column,
and the gutters stay narrow next to the cells; a caption below or above it then describes the whole grid,
and an uncaptioned sheet of them is one picture sheet, not one figure per image. A single row of pictures is
one figure when one caption right below or above it runs across every picture.
"""

from __future__ import annotations

from dataset_builders.pdf.geometry import axis_gap, box_height, box_width, overlap_area, union
from dataset_builders.records import Box
from dataset_builders.union_find import UnionFind

TILE_ALIGN = 4.0  # cell edges this close (pt) line up
TILE_GUTTER = 0.25  # the widest gutter between two cells, as a share of the smaller cell's shorter side
ROW_CAPTION_GAP = 50.0  # the farthest a caption shared by a row of pictures sits below or above it (pt)


def _bands(boxes: list[Box], lo: int, hi: int) -> list[list[int]] | None:
    """Indexes grouped by a shared (lo, hi) edge pair, in page order; None when an edge pair is ambiguous."""
    bands: list[list[int]] = []
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][lo]):
        home = [b for b in bands if abs(boxes[b[0]][lo] - boxes[i][lo]) <= TILE_ALIGN
                and abs(boxes[b[0]][hi] - boxes[i][hi]) <= TILE_ALIGN]
        if len(home) > 1:
            return None
        if home:
            home[0].append(i)
        else:
            bands.append([i])
    return bands


def _narrow_gutters(boxes: list[Box], bands: list[list[int]], lo: int, hi: int) -> bool:
    """Consecutive bands neither overlap nor stand further apart than TILE_GUTTER of the cells' sides."""
    side = min(min(box_width(b), box_height(b)) for b in boxes)
    spans = sorted((min(boxes[i][lo] for i in band), max(boxes[i][hi] for i in band)) for band in bands)
    return all(-TILE_ALIGN <= b[0] - a[1] <= TILE_GUTTER * side for a, b in zip(spans, spans[1:]))


def grid_shape(boxes: list[Box]) -> tuple[int, int] | None:
    """(rows, columns) when the boxes fill such a grid, one box per cell, edges aligned, gutters narrow."""
    rows, cols = _bands(boxes, 1, 3), _bands(boxes, 0, 2)
    if not boxes or not rows or not cols or len(rows) * len(cols) != len(boxes):
        return None
    row_of = {i: r for r, band in enumerate(rows) for i in band}
    cells = {(row_of[i], c) for c, band in enumerate(cols) for i in band}
    if len(cells) != len(boxes) or not (_narrow_gutters(boxes, rows, 1, 3) and _narrow_gutters(boxes, cols, 0, 2)):
        return None
    return len(rows), len(cols)


def tiles_grid(boxes: list[Box]) -> bool:
    """True when the boxes fill a grid of at least 2 rows and 2 columns (``grid_shape``). A single row or
    column alone is not: stacked screenshots and side-by-side pictures on a slide are separate pictures as
    often as one figure (a row is one when a caption spans it: ``grid_groups``)."""
    shape = grid_shape(boxes)
    return shape is not None and shape[0] >= 2 and shape[1] >= 2


def _shared_caption(boxes: list[Box], area: Box, captions: list[Box]) -> bool:
    """A caption right below or above a row of pictures, across every one of them."""
    for c in captions:
        below = 0 <= c[1] - area[3] + TILE_ALIGN <= ROW_CAPTION_GAP
        above = 0 <= area[1] - c[3] + TILE_ALIGN <= ROW_CAPTION_GAP
        if (below or above) and all(min(b[2], c[2]) - max(b[0], c[0]) >= 0.3 * box_width(b) for b in boxes):
            return True
    return False


def _two_captions_on_a_side(area: Box, captions: list[Box]) -> bool:
    """Two or more captions set along one side of the area (above, below, left or right of it, within
    ROW_CAPTION_GAP and overlapping it along that side): the pictures belong to as many figures (captions above
    each column, or beside each row), so they are no one grid."""
    sides = [0, 0, 0, 0]
    for c in captions:
        across = min(area[2], c[2]) - max(area[0], c[0]) > 0
        along = min(area[3], c[3]) - max(area[1], c[1]) > 0
        sides[0] += across and 0 <= area[1] - c[3] + TILE_ALIGN <= ROW_CAPTION_GAP
        sides[1] += across and 0 <= c[1] - area[3] + TILE_ALIGN <= ROW_CAPTION_GAP
        sides[2] += along and 0 <= area[0] - c[2] + TILE_ALIGN <= ROW_CAPTION_GAP
        sides[3] += along and 0 <= c[0] - area[2] + TILE_ALIGN <= ROW_CAPTION_GAP
    return max(sides) >= 2


def grid_groups(boxes: list[Box], blockers: list[Box], captions: list[Box] = ()) -> list[list[int]]:
    """Groups of box indexes that tile a grid (``tiles_grid``), or a row of two or more under or over one
    caption across all of them, with no blocker (a caption, a paragraph) over their rectangle and no two
    captions along one of its sides (``_two_captions_on_a_side``). Neighbours are boxes sharing a row or a column edge pair
    across a narrow gutter with no caption in it; a connected set of neighbours that is not a full grid is left
    alone."""
    def aligned(a: Box, b: Box) -> bool:
        same_row = abs(a[1] - b[1]) <= TILE_ALIGN and abs(a[3] - b[3]) <= TILE_ALIGN
        same_col = abs(a[0] - b[0]) <= TILE_ALIGN and abs(a[2] - b[2]) <= TILE_ALIGN
        side = min(box_width(a), box_height(a), box_width(b), box_height(b))
        between = union(a, b)  # a caption in the gutter between two pictures parts them
        return ((same_row or same_col) and axis_gap(a, b) <= TILE_GUTTER * side
                and not any(overlap_area(between, c) > 0 for c in captions))

    sets = UnionFind(len(boxes))
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if aligned(boxes[i], boxes[j]):
                sets.union(i, j)
    comps: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        comps.setdefault(sets.find(i), []).append(i)
    out = []
    for comp in comps.values():
        cells = [boxes[i] for i in comp]
        shape = grid_shape(cells) if len(comp) > 1 else None
        if shape is None or shape[1] < 2:
            continue
        area = cells[0]
        for b in cells[1:]:
            area = union(area, b)
        if shape[0] == 1 and not _shared_caption(cells, area, list(captions)):
            continue
        if any(overlap_area(area, t) > 0.3 * box_width(t) * box_height(t) for t in blockers):
            continue
        if _two_captions_on_a_side(area, list(captions)):
            continue
        out.append(sorted(comp))
    return sorted(out)
