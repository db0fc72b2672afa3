"""Box helpers on page coordinates: a Box is (x0, y0, x1, y1) in PDF points, y growing downwards."""

from __future__ import annotations

from dataset_builders.records import Box


def union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def axis_gap(a: Box, b: Box) -> float:
    """Largest axis gap between two boxes (0 when they touch or overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return max(dx, dy)


def distance(a: Box, b: Box) -> float:
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return (dx * dx + dy * dy) ** 0.5


def overlap_area(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def expand(a: Box, m: float) -> Box:
    return (a[0] - m, a[1] - m, a[2] + m, a[3] + m)


def centre_in(a: Box, b: Box) -> bool:
    cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    return b[0] <= cx <= b[2] and b[1] <= cy <= b[3]


def round_box(b) -> Box:
    return tuple(round(float(v), 2) for v in b)  # type: ignore[return-value]


def box_width(b: Box) -> float:
    return b[2] - b[0]


def box_height(b: Box) -> float:
    return b[3] - b[1]
