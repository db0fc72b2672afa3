"""Pictures that tile one rectangle are one figure (pdf.tiling), on PDFs generated here: a 2 x 2 grid of
separately embedded micrographs with gutters wider than the clustering gap and one caption below, uncaptioned
picture sheets, and the layouts that must stay apart (captions between the rows, a column of screenshots,
cells out of line, gutters as wide as a cell)."""

from __future__ import annotations

from pathlib import Path

import pymupdf
from test_mine import A4, jpeg_bytes, mine_one, text, texture

from dataset_builders.pdf.tiling import grid_groups, tiles_grid


def place_grid(page: pymupdf.Page, x0: float, y0: float, cell: tuple[float, float], gutter: tuple[float, float],
               shape: tuple[int, int], letters: str = "", seed: int = 0) -> None:
    """rows x cols images of cell (w, h) pt, gutters (horizontal, vertical) pt, letters printed inside."""
    rows, cols = shape
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c
            x, y = x0 + c * (cell[0] + gutter[0]), y0 + r * (cell[1] + gutter[1])
            page.insert_image(pymupdf.Rect(x, y, x + cell[0], y + cell[1]),
                              stream=jpeg_bytes(texture(int(cell[0] * 2), int(cell[1] * 2), seed + k)))
            if letters:
                page.insert_text((x + 4, y + 14), f"({letters[k]})", fontsize=10, color=(1, 1, 1))


def captioned_grid(path: Path) -> None:
    """A report's 2 x 2 pipeline figure: cells 200 pt, gutters 45 pt across and 24 pt down, caption below."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    place_grid(p, 72, 72, (200, 200), (45, 24), (2, 2), letters="abcd", seed=3)
    text(p, (72, 520, 520, 560), "Figure 3: Pipeline steps: (a) original fractograph; (b) mask; (c) overlay; "
                                 "(d) heatmap of the crack initiation site.")
    doc.save(path)


def test_a_grid_with_wide_gutters_and_one_caption_is_one_figure(tmp_path):
    rec, _, _ = mine_one(tmp_path, captioned_grid)
    [fig] = rec.figures  # one figure, not three
    assert fig.number == "3" and fig.caption.startswith("Figure 3: Pipeline steps")
    assert fig.kind == "multi_raster" and sorted(p.label for p in fig.parts) == ["a", "b", "c", "d"]


def sheets(path: Path) -> None:
    """Uncaptioned picture sheets: a slide's 2 x 3 collage and a tall page of 4 x 2 micrographs, each cell
    over a third of the page wide (the size at which stacked screenshots are separated)."""
    doc = pymupdf.open()
    p = doc.new_page(width=720, height=540)
    place_grid(p, 5, 12, (228, 228), (15, 37), (2, 3), seed=10)
    p = doc.new_page(width=960, height=1706)
    place_grid(p, 15, 3, (410, 378), (72, 46), (4, 2), seed=20)
    doc.save(path)


def test_uncaptioned_sheets_of_pictures_in_a_grid_are_one_figure_each(tmp_path):
    rec, _, _ = mine_one(tmp_path, sheets)
    assert [(f.page, len(f.parts)) for f in rec.figures] == [(1, 6), (2, 8)]
    assert all(f.caption == "" for f in rec.figures)


def apart(path: Path) -> None:
    """Layouts that are not one tiled figure (but for the captioned rows of the first page)."""
    doc = pymupdf.open()
    # 1. two rows, each with its caption across it: the caption between them parts the grid, each row is a figure
    p = doc.new_page(width=A4[0], height=A4[1])
    place_grid(p, 72, 72, (200, 150), (30, 0), (1, 2), seed=30)
    text(p, (72, 226, 505, 254), "Figure 1. Fracture surfaces of the as-built specimens after tensile testing at "
                                 "room temperature, overload region and the fatigue crack initiation site.")
    place_grid(p, 72, 258, (200, 150), (30, 0), (1, 2), seed=32)
    text(p, (72, 412, 505, 440), "Figure 2. Fracture surfaces of the heat-treated specimens after tensile testing "
                                 "at room temperature, overload region and the fatigue crack initiation site.")
    # 2. a column of screenshots, uncaptioned, each over a third of the page wide: separate pictures
    p = doc.new_page(width=A4[0], height=A4[1])
    place_grid(p, 100, 60, (380, 200), (0, 20), (3, 1), seed=40)
    # 3. a 2 x 2 arrangement whose cells are out of line, and one whose gutters are as wide as a cell is tall
    p = doc.new_page(width=A4[0], height=A4[1])
    for k, (x, y) in enumerate([(60, 40), (300, 60), (60, 200), (300, 230)]):
        p.insert_image(pymupdf.Rect(x, y, x + 200, y + 130), stream=jpeg_bytes(texture(400, 260, 50 + k)))
    place_grid(p, 60, 420, (120, 80), (200, 90), (2, 2), seed=60)
    doc.save(path)


def test_captioned_rows_screenshots_and_loose_arrangements_stay_apart(tmp_path):
    rec, _, _ = mine_one(tmp_path, apart)
    per_page = {}
    for f in rec.figures:
        per_page.setdefault(f.page, []).append(len(f.parts))
    assert sorted(f.number for f in rec.figures if f.number) == ["1", "2"]
    assert per_page[1] == [2, 2] and per_page[2] == [1, 1, 1] and per_page[3] == [1] * 8


def test_tiles_grid_needs_full_aligned_rows_and_columns():
    cell = [(0, 0, 100, 80), (110, 0, 210, 80), (0, 90, 100, 170), (110, 90, 210, 170)]
    assert tiles_grid(cell)
    assert not tiles_grid(cell[:3])  # a cell missing
    assert not tiles_grid([(0, 0, 100, 80), (110, 0, 210, 80), (220, 0, 320, 80), (330, 0, 430, 80)])  # one row
    assert not tiles_grid(cell[:3] + [(110, 90, 210, 150)])  # a cell shorter than its row
    assert not tiles_grid([(0, 0, 100, 80), (140, 0, 240, 80), (0, 90, 100, 170), (140, 90, 240, 170)])  # 40 pt > 20
    caption_inside = (0, 82, 210, 88)
    assert grid_groups(cell, []) == [[0, 1, 2, 3]]
    assert grid_groups(cell, [caption_inside]) == []
    assert grid_groups(cell + [(400, 400, 500, 480)], []) == [[0, 1, 2, 3]]  # a stray picture is not a cell


def test_a_row_is_one_figure_only_under_a_caption_across_it():
    row = [(0, 0, 100, 80), (115, 0, 215, 80)]
    assert grid_groups(row, []) == []
    assert grid_groups(row, [], [(0, 90, 215, 110)]) == [[0, 1]]  # "Fig. 2 ..." under both
    assert grid_groups(row, [], [(0, 90, 100, 110)]) == []  # under the first picture only
    assert grid_groups(row, [], [(0, 200, 215, 220)]) == []  # too far below


def stacked_over_caption(path: Path) -> None:
    """A Nature-style figure: a row of two separately placed micrographs (a, b) over a wide one (c), 45 pt
    apart, and the full-width caption under them all; on the next page an uncaptioned picture in the other
    column stays out of a figure whose caption does not reach it."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    for k, (rect, letter) in enumerate([((59, 68, 358, 166), "a"), ((392, 69, 552, 165), "b"),
                                        ((56, 211, 420, 324), "c")]):
        p.insert_image(pymupdf.Rect(rect), stream=jpeg_bytes(texture(2 * (rect[2] - rect[0]), 2 * (rect[3] - rect[1]), 70 + k)))
        p.insert_text((rect[0] + 2, rect[1] - 2), letter, fontsize=9)
    text(p, (43, 346, 553, 380), "Fig. 4 | Crack arrest. a, Schematic of the crack path. b, Dimpled region. "
                                 "c, Secondary cracks along the boundaries of the arrested crack.")
    p = doc.new_page(width=A4[0], height=A4[1])
    p.insert_image(pymupdf.Rect(60, 68, 280, 200), stream=jpeg_bytes(texture(440, 264, 80)))
    text(p, (60, 206, 280, 240), "Fig. 5 | Overload region of the specimen after tensile testing.")
    p.insert_image(pymupdf.Rect(320, 68, 540, 160), stream=jpeg_bytes(texture(440, 184, 81)))
    doc.save(path)


def test_pictures_stacked_over_a_full_width_caption_join_its_figure(tmp_path):
    rec, _, _ = mine_one(tmp_path, stacked_over_caption)
    first = [f for f in rec.figures if f.page == 1]
    assert len(first) == 1 and first[0].number == "4"
    assert sorted(p.label for p in first[0].parts) == ["a", "b", "c"]
    assert sorted((f.number or "", len(f.parts)) for f in rec.figures if f.page == 2) == [("", 1), ("5", 1)]
