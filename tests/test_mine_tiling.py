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


# --- review cases: layouts in which the grid or the far caption join must NOT make one figure -----------------

def _side_captions(path: Path) -> None:
    """Two figures stacked, each a row of two micrographs with its caption set beside it on the right."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    place_grid(p, 60, 80, (150, 110), (24, 20), (2, 2), seed=1)  # rows y 80..190 and 210..320
    text(p, (395, 80, 540, 150), "Fig. 1.1 Fracture surface of the as-built specimen: overload region and origin.")
    text(p, (395, 210, 540, 280), "Fig. 1.2 Fracture surface of the annealed specimen: overload region and origin.")
    doc.save(path)


def _captions_above_columns(path: Path) -> None:
    """Fig. 1 (left column, two stacked micrographs) and Fig. 2 (right column), each caption above its column."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (60, 30, 290, 68), "Fig. 1. Specimen A: overload region (top) and origin (bottom).")
    text(p, (310, 30, 540, 68), "Fig. 2. Specimen B: overload region (top) and origin (bottom).")
    place_grid(p, 60, 72, (230, 150), (20, 20), (2, 2), seed=1)
    doc.save(path)


def test_pictures_of_two_captioned_figures_are_no_one_grid(tmp_path):
    """Captions beside each row, or above each column: both figures are kept (the grid took them as one, and
    the second figure was lost)."""
    for name, make in (("side", _side_captions), ("above", _captions_above_columns)):
        rec, _, _ = mine_one(tmp_path / name, make)
        numbers = {f.number for f in rec.figures if f.number}
        assert numbers in ({"1.1", "1.2"}, {"1", "2"}), (name, numbers)


def _continued_then_next_figure(path: Path) -> None:
    """Fig. 2 (a-f) on page 1 continues with an uncaptioned panel e at the top of page 2, 60 pt above Fig. 3
    (two pictures, a full-width caption naming no panels); on page 3 a logo 60 pt above a two-picture figure."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    place_grid(p, 60, 60, (235, 300), (10, 10), (2, 2), letters="abcd", seed=1)
    text(p, (60, 680, 540, 710), "Fig. 2. Fracture surfaces after fatigue testing at four stress amplitudes: "
                                 "(a) 200 MPa; (b) 250 MPa; (c) 300 MPa; (d) 350 MPa; (e) 400 MPa; (f) 450 MPa.")
    p = doc.new_page(width=A4[0], height=A4[1])
    place_grid(p, 60, 60, (235, 200), (10, 0), (1, 1), letters="e", seed=5)
    place_grid(p, 60, 320, (235, 200), (10, 0), (1, 2), seed=9)
    text(p, (60, 528, 540, 556), "Fig. 3. Fracture surfaces of the welded joints: overload region and fatigue origin.")
    p = doc.new_page(width=A4[0], height=A4[1])
    p.insert_image(pymupdf.Rect(60, 20, 160, 70), stream=jpeg_bytes(texture(200, 100, 90)))
    p.insert_image(pymupdf.Rect(60, 130, 300, 300), stream=jpeg_bytes(texture(480, 340, 91)))
    p.insert_image(pymupdf.Rect(310, 130, 540, 300), stream=jpeg_bytes(texture(460, 340, 92)))
    text(p, (60, 310, 540, 340), "Fig. 4. Fracture surfaces of the specimen: overload region and fatigue origin.")
    doc.save(path)


def test_the_far_caption_join_takes_only_panels_its_caption_still_names(tmp_path):
    """A picture 60 pt above a caption joins its figure only when the caption names more panels than the figure
    has pictures: another figure's continued panel and a logo stay out."""
    rec, _, _ = mine_one(tmp_path, _continued_then_next_figure)
    parts = {f.number: sorted(p.label or "-" for p in f.parts) for f in rec.figures if f.number in ("3", "4")}
    assert parts == {"3": ["-", "-"], "4": ["-", "-"]}, parts


def test_a_stray_letter_before_the_run_leaves_the_run():
    """Panels f, g, h, i and an "A" spot marker: the run f-i is kept (the first stretch was kept: "a" alone)."""
    from dataset_builders.pdf.figures import panel_letters
    from dataset_builders.pdf.text import TEXT_FLAGS, page_blocks

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    for x0, y0, t in ((60, 70, "f"), (300, 70, "g"), (60, 200, "h"), (300, 200, "i"), (150, 110, "A")):
        page.insert_text((x0, y0), t, fontsize=9)
    blocks = page_blocks(page.get_text("dict", flags=TEXT_FLAGS))
    doc.close()
    assert [letter for letter, _ in panel_letters(blocks, [], (50.0, 60.0, 500.0, 300.0))] == ["f", "g", "h", "i"]
