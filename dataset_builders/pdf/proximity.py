"""Group boxes by proximity in near-linear time: a grid index and union-find instead of pairwise merging.

The rule (figures.py used it as a pairwise loop repeated until nothing merged, quadratic and worse: a
page of 40,322 plot paths ran > 10 minutes): two groups belong together when their bounding boxes lie
within ``gap`` of each other (``geometry.axis_gap`` <= gap), repeated until no two groups do. That end
state does not depend on the order of merges (boxes only grow, so a pair that was close stays close), so
any procedure that reaches it gives the same groups. This one does it in rounds:

1. a grid of cells a little smaller than ``gap``: every box is registered in the cells it covers. Two
   boxes in one cell are within ``gap`` of each other, so each cell's boxes are joined outright; two close
   boxes sit in cells at most 2 apart on each axis, so only those neighbouring cells are compared, and
   not at all when their boxes already share a group.
2. the groups' bounding boxes go through step 1 again until a round joins nothing.

A round stops as soon as everything is one group (a plot: its frame, axes and curves overlap, and every
one of the hundreds of cells its frame covers would otherwise be compared with 12 neighbours: 5 ms a
page of 4 paths), and a round over at most PAIRWISE_MAX boxes compares every pair instead (the same
joins: the grid only spares comparing boxes that are far apart).

Work (cells registered + box pairs compared) is counted. A page that would need more than its budget
(many large boxes overlapping: thousands of curves spanning one plot) is not clustered box by box: its
boxes are painted on a coarse occupancy raster (cells of ``gap``, a 2-D difference array) and the
8-connected occupied areas become the groups, which then go through step 2. That keeps apart what lies
more than two cells apart (two figures on a page stay two) at a cost of O(boxes + cells); the price is
that boxes up to 2 cells apart may join. Rendering the page as one region would merge separate figures,
and sampling paths would cut the edges of sparse plots; neither is needed.
"""

from __future__ import annotations

import math

import numpy as np

from dataset_builders.pdf.geometry import axis_gap, union
from dataset_builders.records import Box
from dataset_builders.union_find import UnionFind

CELL_SHRINK = 0.999  # cell side = gap * this: two boxes in one cell are surely within gap (float slack)
WORK_PER_BOX = 64  # budget of grid work per box before the occupancy raster takes over
WORK_FLOOR = 200_000  # ... but never less than this (small pages are always clustered exactly)
MAX_RASTER_CELLS = 512  # the occupancy raster has at most this many cells a side (coarser cells beyond)
PAIRWISE_MAX = 24  # a round over at most this many boxes compares all pairs (<= 276 gaps, ~0.1 ms)
# The 12 forward neighbour offsets within 2 cells (the other 12 are the same pairs seen from the other side),
# the 4 adjacent ones first.
_FORWARD = [(dx, dy) for dy in range(0, 3) for dx in range(-2, 3) if dy > 0 or dx > 0]
_NEIGHBOURS = [[o for o in _FORWARD if max(abs(o[0]), abs(o[1])) == 1],
               [o for o in _FORWARD if max(abs(o[0]), abs(o[1])) == 2]]


class BudgetExceeded(Exception):
    """The grid would do more work than the page's budget."""


class _Work:
    def __init__(self, budget: float) -> None:
        self.done = 0
        self.budget = budget

    def add(self, n: int) -> None:
        self.done += n
        if self.done > self.budget:
            raise BudgetExceeded(f"{self.done} > {self.budget}")


def _pairwise_unions(boxes: list[Box], gap: float, work: _Work) -> UnionFind:
    """The sets after joining every pair of boxes within ``gap``, pair by pair (few boxes)."""
    n = len(boxes)
    sets = UnionFind(n)
    work.add(n * (n - 1) // 2)
    for i in range(n - 1):
        box = boxes[i]
        for j in range(i + 1, n):
            if axis_gap(box, boxes[j]) <= gap:
                sets.union(i, j)
    return sets


def _near_unions(boxes: list[Box], gap: float, work: _Work, pairwise_max: int = PAIRWISE_MAX) -> UnionFind:
    """The sets after joining every pair of boxes within ``gap`` (one grid round; pair by pair up to
    pairwise_max boxes). Stops once everything is one group: nothing is left to join."""
    if len(boxes) <= pairwise_max:
        return _pairwise_unions(boxes, gap, work)
    sets = UnionFind(len(boxes))
    groups = len(boxes)
    side = gap * CELL_SHRINK
    cells: dict[tuple[int, int], list[int]] = {}
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        ix0, iy0, ix1, iy1 = math.floor(x0 / side), math.floor(y0 / side), math.floor(x1 / side), math.floor(y1 / side)
        work.add((ix1 - ix0 + 1) * (iy1 - iy0 + 1))
        for iy in range(iy0, iy1 + 1):
            for ix in range(ix0, ix1 + 1):
                members = cells.get((ix, iy))
                if members is None:
                    cells[(ix, iy)] = [i]
                else:
                    members.append(i)
                    groups -= sets.union(members[0], i)  # same cell: within gap of each other
    for offsets in _NEIGHBOURS:  # the adjacent cells first: in a dense plot they join everything already
        for (ix, iy), members in cells.items():
            if groups == 1:
                return sets
            for dx, dy in offsets:
                other = cells.get((ix + dx, iy + dy))
                if other is None or sets.find(members[0]) == sets.find(other[0]):
                    continue
                if _first_near(boxes, members, other, gap, work):
                    groups -= sets.union(members[0], other[0])
    return sets


def _first_near(boxes: list[Box], members: list[int], other: list[int], gap: float,
                work: _Work) -> bool:
    """Whether some box of ``members`` lies within ``gap`` of some box of ``other``.

    Only the boxes within ``gap`` of the other list's extent are paired (one pass over each list, then the
    few pairs left), so two dense cells cost their sizes, not their product. All of it is counted as work.
    """
    def extent(ids: list[int]) -> Box:
        box = boxes[ids[0]]
        for i in ids[1:]:
            box = union(box, boxes[i])
        return box

    ext_m, ext_o = extent(members), extent(other)
    near_m = [a for a in members if axis_gap(boxes[a], ext_o) <= gap]
    near_o = [b for b in other if axis_gap(boxes[b], ext_m) <= gap]
    compared = 0
    try:
        for a in near_m:
            box = boxes[a]
            for b in near_o:
                compared += 1
                if axis_gap(box, boxes[b]) <= gap:
                    return True
        return False
    finally:
        work.add(2 * (len(members) + len(other)) + compared)


def _occupancy_groups(boxes: list[Box], gap: float) -> list[int]:
    """Group labels from a coarse raster: boxes painted on cells of ``gap``, 8-connected areas are groups."""
    arr = np.asarray(boxes, dtype=float)
    left, top = arr[:, 0].min(), arr[:, 1].min()
    extent = max(arr[:, 2].max() - left, arr[:, 3].max() - top, gap)
    side = max(gap, extent / MAX_RASTER_CELLS)
    ix0 = np.floor((arr[:, 0] - left) / side).astype(int)
    iy0 = np.floor((arr[:, 1] - top) / side).astype(int)
    ix1 = np.floor((arr[:, 2] - left) / side).astype(int)
    iy1 = np.floor((arr[:, 3] - top) / side).astype(int)
    nx, ny = int(ix1.max()) + 2, int(iy1.max()) + 2
    diff = np.zeros((ny + 1, nx + 1), dtype=np.int64)
    np.add.at(diff, (iy0, ix0), 1)
    np.add.at(diff, (iy0, ix1 + 1), -1)
    np.add.at(diff, (iy1 + 1, ix0), -1)
    np.add.at(diff, (iy1 + 1, ix1 + 1), 1)
    occupied = diff.cumsum(axis=0).cumsum(axis=1) > 0
    label = np.full(occupied.shape, -1, dtype=np.int64)
    next_label = 0
    for y, x in zip(*np.nonzero(occupied)):
        if label[y, x] >= 0:
            continue
        label[y, x] = next_label
        stack = [(int(y), int(x))]
        while stack:  # flood fill, 8-connected
            cy, cx = stack.pop()
            for ny_ in (cy - 1, cy, cy + 1):
                for nx_ in (cx - 1, cx, cx + 1):
                    if (0 <= ny_ < occupied.shape[0] and 0 <= nx_ < occupied.shape[1]
                            and occupied[ny_, nx_] and label[ny_, nx_] < 0):
                        label[ny_, nx_] = next_label
                        stack.append((ny_, nx_))
        next_label += 1
    return [int(v) for v in label[iy0, ix0]]


def proximity_groups(boxes: list[Box], gap: float, budget: float | None = None,
                     stats: dict | None = None, pairwise_max: int = PAIRWISE_MAX) -> list[list[int]]:
    """Indexes of ``boxes`` grouped so that no two groups' bounding boxes lie within ``gap`` (gap > 0).

    Groups come out as figures.py always listed them: members in (y0, x0) order, groups ordered by their
    top edge, then left edge. ``budget``: grid work allowed before the occupancy raster takes over (default
    WORK_PER_BOX per box, at least WORK_FLOOR). ``stats``, when given, receives ``work`` (grid operations
    done) and ``raster`` (True when the raster was used). ``pairwise_max``: rounds over at most this many
    boxes compare every pair (0: always the grid; the groups are the same).
    """
    if gap <= 0:
        raise ValueError(f"proximity_groups needs a positive gap, got {gap}")
    n = len(boxes)
    budget = budget if budget is not None else max(WORK_PER_BOX * n, WORK_FLOOR)
    work = _Work(budget)
    raster = False
    if n == 0:
        group_of: list[int] = []
    else:
        try:
            sets = _near_unions(boxes, gap, work, pairwise_max)
            group_of = [sets.find(i) for i in range(n)]
        except BudgetExceeded:
            raster = True
            group_of = _occupancy_groups(boxes, gap)
    first_round = work.done
    work = _Work(budget)  # the rounds on groups get a budget of their own
    while True:  # rounds on the groups' boxes until nothing joins
        keys = sorted(set(group_of))
        index = {k: j for j, k in enumerate(keys)}
        gboxes: list[Box | None] = [None] * len(keys)
        for i, k in enumerate(group_of):
            j = index[k]
            gboxes[j] = boxes[i] if gboxes[j] is None else union(gboxes[j], boxes[i])  # type: ignore[arg-type]
        try:
            sets = _near_unions(gboxes, gap, work, pairwise_max)  # type: ignore[arg-type]
        except BudgetExceeded:
            raster = True  # a pathological page: keep the groups found so far
            break
        roots = [sets.find(j) for j in range(len(keys))]
        if len(set(roots)) == len(keys):
            break
        group_of = [roots[index[k]] for k in group_of]
    if stats is not None:
        stats.update(work=first_round + work.done, raster=raster)
    order = sorted(range(n), key=lambda i: (boxes[i][1], boxes[i][0]))
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(group_of[i], []).append(i)
    return sorted(groups.values(), key=lambda g: (min(boxes[i][1] for i in g), min(boxes[i][0] for i in g)))
