"""Disjoint sets over the indexes 0..n-1: the builder's one union-find.

Used by dedup (duplicate groups of perceptual hashes), split (items linked by a paper or a near-duplicate),
pdf/proximity and pdf/figures (graphics clustered across gaps) and pdf/tiling (aligned pictures forming a
grid). Of two sets merged, the one with the smaller root keeps it, so a set's root is always its smallest
index: whatever the order of the unions, the roots are the same.

Usage:
    sets = UnionFind(len(boxes))
    sets.union(i, j)               # True: two sets became one
    sets.find(k)                   # k's root: the smallest index of its set
"""

from __future__ import annotations


class UnionFind:
    __slots__ = ("parent",)  # a slot: the attribute read in every find (pdf/proximity: per grid cell)

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        """The root of i's set (its smallest index); each index passed on the way then points two steps up."""
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> bool:
        """Merge the sets of a and b (the smaller of their roots stays the root); False when they were one."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True
