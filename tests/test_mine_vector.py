"""Vector drawings on generated pages: clustering cost on path-heavy pages, and figures with side captions."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pymupdf
from test_mine import jpeg_bytes, mine_one, text, texture

from dataset_builders.pdf.figures import drawing_regions, pairwise_groups
from dataset_builders.pdf.proximity import PAIRWISE_MAX, proximity_groups


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
        expected = pairwise_groups(boxes, gap, [])
        for pairwise_max in (0, PAIRWISE_MAX):  # the grid on every round; all pairs on rounds of few boxes
            stats: dict = {}
            assert proximity_groups(boxes, gap, stats=stats, pairwise_max=pairwise_max) == expected, seed
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


# --- side captions ---------------------------------------------------------------------------------------

SIDE_BODY = ("The specimens were loaded under constant amplitude at R = 0.1 until failure. The measured lives "
             "scatter less than one decade at every stress level, and the fitted curves follow the data closely "
             "over the whole range of cycles that was tested in this programme.")


def side_caption_paper(path: Path) -> None:
    """Springer-book layout: captions in the left margin column beside the figure, top-aligned with it.

    Page 1: a vector chart (frame, ticks, curve) 55 pt right of its caption, drawn over a white fill that
    spans the chart and the caption (the float background such books paint). Page 2: an embedded image
    with its caption 45 pt to its right. Both gaps exceed the 30 pt the matcher allowed before.
    """
    doc = pymupdf.open()
    p1 = doc.new_page(width=440, height=666)
    p1.draw_rect(pymupdf.Rect(54, 60, 386, 220), color=None, fill=(1, 1, 1))  # background behind chart + caption
    x0, y0, x1, y1 = 200, 64, 384, 196
    p1.draw_rect(pymupdf.Rect(x0, y0, x1, y1), color=(0, 0, 0), width=0.6)
    p1.draw_polyline([pymupdf.Point(x0 + i * 4, y0 + 10 + 110 * (i / 45) ** 0.5) for i in range(46)],
                     color=(0, 0, 0), width=0.8)
    for i in range(5):
        p1.draw_line(pymupdf.Point(x0 + i * 46, y1), pymupdf.Point(x0 + i * 46, y1 - 3), width=0.4)
        p1.insert_text((x0 + i * 46 - 6, y1 + 10), f"10{i + 2}", fontsize=6)
    text(p1, (54, 60, 145, 110), "Fig. 6 Experimental S-N data of the off-axis specimens and fitted curves",
         size=8)
    text(p1, (54, 240, 386, 300), SIDE_BODY)
    p2 = doc.new_page(width=440, height=666)
    p2.insert_image(pymupdf.Rect(54, 60, 254, 210), stream=jpeg_bytes(texture(400, 300, 3)))
    text(p2, (299, 60, 386, 110), "Fig. 7 Fracture surface of the failed specimen after testing", size=8)
    text(p2, (54, 240, 386, 300), SIDE_BODY)
    doc.save(path)


def test_side_captions_match_a_vector_chart_and_an_embedded_image(tmp_path):
    record, _, _ = mine_one(tmp_path, side_caption_paper)
    by_page = {f.page: f for f in record.figures}
    assert sorted(by_page) == [1, 2]
    chart, photo = by_page[1], by_page[2]
    assert (chart.number, chart.kind) == ("6", "vector")  # figure numbers are text ("7.5", "S3")
    assert chart.caption.startswith("Fig. 6 Experimental S-N data")
    assert chart.bbox[0] >= 190 and chart.bbox[2] <= 390  # the chart, not the caption column nor the background
    assert chart.bbox[1] <= 64 and chart.bbox[3] >= 196
    assert (photo.number, photo.kind) == ("7", "raster")
    assert photo.caption.startswith("Fig. 7 Fracture surface")
    assert not [s for s in record.skipped if s.reason == "uncaptioned_vector"]


def test_a_path_enclosing_a_caption_is_not_part_of_the_figure_region(tmp_path):
    side_caption_paper(tmp_path / "p.pdf")
    page = pymupdf.open(tmp_path / "p.pdf")[0]
    caption = (54.0, 60.0, 145.0, 100.0)
    with_caption = drawing_regions(page, [caption])
    without = drawing_regions(page)
    assert len(without) == 1 and round(without[0][0]) == 54  # the background pulls the caption column in
    assert len(with_caption) == 1 and 185 <= with_caption[0][0] and with_caption[0][2] <= 390


def test_a_fifty_thousand_path_figure_is_mined_with_its_caption(tmp_path):
    def build(path: Path) -> None:
        doc = pymupdf.open()
        page_with_dots(doc, 250, 200)  # 50,000 paths over (100, 100)-(399, 339)
        text(doc[0], (100, 350, 400, 380), "Fig. 2. Damage field of the phase-field simulation after 10^4 cycles.")
        doc.save(path)

    record, _, _ = mine_one(tmp_path, build)
    assert [(f.number, f.kind) for f in record.figures] == [("2", "vector")]
    assert [round(v) for v in record.figures[0].bbox] == [100, 100, 399, 339]
