"""Vector drawings on generated pages: clustering cost on path-heavy pages, and figures with side captions."""

from __future__ import annotations

import random
import time

import pymupdf

from dataset_builders.pdf.figures import drawing_regions, pairwise_groups
from dataset_builders.pdf.proximity import proximity_groups


def page_with_dots(doc: pymupdf.Document, cols: int, rows: int, origin=(100.0, 100.0), step=1.2,
                   size=0.3) -> int:
    """A page whose content stream holds cols x rows tiny filled squares, each its own path."""
    page = doc.new_page(width=595, height=842)
    page.draw_rect(pymupdf.Rect(0, 0, 1, 1), color=None, fill=None)  # gives the page a content stream
    x0, y0 = origin
    ops = [f"{x0 + c * step:.2f} {842 - (y0 + r * step) - size:.2f} {size} {size} re f"
           for r in range(rows) for c in range(cols)]
    doc.update_stream(page.get_contents()[0], ("0 g\n" + "\n".join(ops) + "\n").encode())
    return page.number


def page_rects(page: pymupdf.Page) -> list[tuple]:
    return [tuple(r) for kind, r in page.get_bboxlog() if kind == "fill-path"]


def test_grid_clustering_gives_the_pairwise_groups():
    """The near-linear grouping reaches the very groups of the old pairwise loop (no barrier), box for box."""
    for seed in range(60):
        rnd = random.Random(seed)
        boxes = []
        for _ in range(rnd.randint(0, 90)):
            x, y = rnd.uniform(0, 500), rnd.uniform(0, 700)
            w = rnd.choice([0.0, rnd.uniform(0, 5), rnd.uniform(0, 60), rnd.uniform(0, 200)])
            h = rnd.choice([0.0, rnd.uniform(0, 5), rnd.uniform(0, 60)])
            if rnd.random() < 0.3:  # boxes exactly `gap` apart: the boundary case of the rule
                x, y, w = round(x / 8) * 8, round(y / 8) * 8, round(w / 8) * 8
            boxes.append((x, y, x + w, y + h))
        gap = rnd.choice([8.0, 12.0, 30.0])
        stats: dict = {}
        assert proximity_groups(boxes, gap, stats=stats) == pairwise_groups(boxes, gap, []), seed
        assert stats["raster"] is False


def test_fifty_thousand_paths_cluster_in_linear_work_into_one_region():
    doc = pymupdf.open()
    big_no = page_with_dots(doc, 250, 200)  # 50,000 paths over (100, 100)-(399, 339)
    small_no = page_with_dots(doc, 25, 20, step=2.5)  # 500 paths over (100, 100)-(160, 148)
    big, small = doc[big_no], doc[small_no]
    rects = page_rects(big)
    assert len(rects) == 50_000

    stats: dict = {}
    groups = proximity_groups(rects, 8.0, stats=stats)
    assert len(groups) == 1 and stats["raster"] is False
    assert stats["work"] <= 5 * len(rects)  # cells registered + pairs compared: linear (pairwise: ~1.2e9)

    def timed(page: pymupdf.Page) -> tuple[float, list]:
        best, regions = float("inf"), []
        for _ in range(2):
            t = time.perf_counter()
            regions = drawing_regions(page)
            best = min(best, time.perf_counter() - t)
        return best, regions

    t_small, small_regions = timed(small)
    t_big, big_regions = timed(big)
    assert [tuple(round(v) for v in r) for r in big_regions] == [(100, 100, 399, 339)]
    assert [tuple(round(v) for v in r) for r in small_regions] == [(100, 100, 160, 148)]
    # 100 x the paths: linear work is ~100 x the time; the pairwise loop was > 10,000 x. Generous for a busy box.
    assert t_big < 1000 * max(t_small, 1e-3), (t_big, t_small)


def test_many_overlapping_large_paths_fall_back_to_the_raster_and_stay_bounded():
    """3,000 curves each spanning a 300 x 200 plot: box-by-box cell work would be ~3,000 x 900 cells; the
    budget sends the page to the occupancy raster, which still returns the plot, and a far chart apart."""
    rnd = random.Random(1)
    boxes = [(100 + rnd.uniform(0, 5), 100 + rnd.uniform(0, 5), 395 + rnd.uniform(0, 5), 295 + rnd.uniform(0, 5))
             for _ in range(3000)]
    boxes += [(100, 500, 160, 560), (420, 500, 480, 560)]  # two small charts 260 pt apart
    stats: dict = {}
    groups = proximity_groups(boxes, 8.0, stats=stats)
    assert stats["raster"] is True
    assert stats["work"] <= 2 * max(64 * len(boxes), 200_000) + 10_000
    got = sorted(tuple(round(v) for v in (min(boxes[i][0] for i in g), min(boxes[i][1] for i in g),
                                          max(boxes[i][2] for i in g), max(boxes[i][3] for i in g))) for g in groups)
    assert got == [(100, 100, 400, 300), (100, 500, 160, 560), (420, 500, 480, 560)]
