"""Figures whose white-gutter grid has more cells than the caption names panels (issue 22, the largest class of
split misses on both real sets): a panel's small call-out or legend strip behind a gutter, and panels set as
rows of images that repeat one arrangement. Also the caption markers a unit or a symbol used to fake.

Geometry rules are tested on cell lists; the whole path on journal pages generated with PyMuPDF (figure
rendered by MuPDF, caption set as text), mined and split by the real stages.
"""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest
from test_panels_published import SCALE, _texture, iou, mine_and_split

from dataset_builders.panel_grid import join_small_cells, repeated_bands
from dataset_builders.pdf.captions import split_panel_captions

# --- caption markers --------------------------------------------------------------------------------

def test_a_unit_closing_a_parenthesis_is_not_a_panel_marker():
    _, parts = split_panel_captions(
        "Fig. 7 Optical images of the cross-sections: (a) micro-cracks (P = 90 W, v = 100 mm/s); "
        "(b) nearly defect-free (P = 90 W, v = 200 mm/s) [22]")
    assert sorted(parts) == ["a", "b"]
    assert parts["a"] == "micro-cracks (P = 90 W, v = 100 mm/s)"
    assert split_panel_captions("Fig. 3. a) dimples; b) cleavage")[1] == {"a": "dimples", "b": "cleavage"}


def test_a_symbol_far_beyond_the_letter_run_is_not_a_panel():
    """'(q)' (a theta set in a symbol font) and 'IG(t)' must not end the run a, b, c, d."""
    _, parts = split_panel_captions(
        "Fig. 4 (a) The G band intensity (IG(q)) as a function of angle (q) for (a) GO/CS and (b) treated films. "
        "(c) Schematic of the measurement. (d) IG(k)/IG(t) ratio as a function of angle (a).")
    assert sorted(parts) == ["a", "b", "c", "d"]
    assert parts["d"].startswith("IG(k)/IG(t) ratio")
    # one letter lost inside the run is still allowed (the panels stage fills it)
    assert sorted(split_panel_captions("Fig. 5. (a) dimples; (c) striations")[1]) == ["a", "c"]


def test_markers_set_side_by_side_share_their_text():
    """'(a)(d) - Stage 1; (b)(e) - Stage 2': a grid lettered a-c on top, d-f below, one text per column."""
    common, parts = split_panel_captions("Figure 2: Simulation results: (a)(d) - Stage 1; (b)(e) - Stage 2; "
                                         "(c)(f) - Stage 3")
    assert common == "Simulation results"
    assert parts == {"a": "Stage 1", "b": "Stage 2", "c": "Stage 3", "d": "Stage 1", "e": "Stage 2", "f": "Stage 3"}


# --- geometry ---------------------------------------------------------------------------------------

def test_small_pieces_join_the_nearest_panel_in_their_band():
    # a title strip above (a), two panels, a call-out box beside (c)
    cells = [(0, 20, 390, 100), (10, 110, 400, 540), (450, 20, 800, 470), (830, 20, 1240, 470),
             (1250, 200, 1380, 300)]
    assert join_small_cells(cells, 3) == [(0, 20, 400, 540), (450, 20, 800, 470), (830, 20, 1380, 470)]


def test_cells_of_comparable_size_are_not_joined():
    # five photos, two of them smaller (a sub-figure), caption names two: no rule says which is which
    cells = [(0, 0, 680, 850), (0, 900, 680, 1430), (700, 0, 1700, 550), (700, 560, 1700, 960), (700, 980, 1700, 1360)]
    assert join_small_cells(cells, 2) is None


def test_pieces_whose_joining_makes_panels_overlap_are_refused():
    cells = [(0, 0, 150, 480), (180, 0, 300, 100), (280, 150, 430, 270), (216, 270, 500, 460)]
    assert join_small_cells(cells, 2) is None


def test_rows_that_repeat_one_arrangement_are_one_panel_each():
    row = [(20, 0, 660, 370), (780, 0, 1150, 370), (1270, 0, 1640, 370)]
    cells = [(x0, y0, x1, y1) for x0, y0, x1, y1 in row] + [(x0 + 3, y0 + 650, x1 - 2, y1 + 650) for x0, y0, x1, y1 in row]
    assert repeated_bands(cells, 2, (1660, 1100)) == [(20, 0, 1640, 370), (23, 650, 1638, 1020)]
    # the same for columns
    transposed = [(y0, x0, y1, x1) for x0, y0, x1, y1 in cells]
    assert repeated_bands(transposed, 2, (1100, 1660)) == [(0, 20, 370, 1640), (650, 23, 1020, 1638)]


def test_a_plain_grid_or_unlike_rows_are_not_read_as_rows():
    grid = [(0, 0, 100, 100), (120, 0, 220, 100), (0, 120, 100, 220), (120, 120, 220, 220)]
    assert repeated_bands(grid, 2, (220, 220)) is None  # rows and columns both repeat: which way is not said
    unlike = [(0, 0, 100, 100), (120, 0, 220, 100), (0, 120, 60, 220), (80, 120, 220, 220)]
    assert repeated_bands(unlike, 2, (220, 220)) is None


# --- through the mine and panels stages -------------------------------------------------------------

def _page(path: Path, size: tuple[float, float], draw, caption: str) -> None:
    """A journal page holding one raster figure (drawn by `draw` on a page of `size` points, rendered by
    MuPDF at SCALE) and its caption below."""
    doc = pymupdf.open()
    fig = doc.new_page(width=size[0], height=size[1])
    draw(fig)
    png = fig.get_pixmap(matrix=pymupdf.Matrix(SCALE, SCALE)).tobytes("png")
    page = doc.new_page(width=595, height=842)
    rect = pymupdf.Rect(90, 90, 90 + size[0], 90 + size[1])
    page.insert_image(rect, stream=png)
    page.insert_htmlbox(pymupdf.Rect(90, rect.y1 + 8, 505, rect.y1 + 80), f"<p style='font-size:8pt'>{caption}</p>")
    doc.delete_page(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    doc.close()


def _photos(fig, boxes, seed: int) -> None:
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        fig.insert_image(pymupdf.Rect(x0, y0, x1, y1), stream=_texture(int(x1 - x0), int(y1 - y0), seed + k))


CALLOUT = [(8, 8, 168, 192), (178, 8, 338, 192)]  # two unlettered micrographs, a call-out beside (b)
ROWS = [(8 + c * 130, 8 + r * 100, 128 + c * 130, 98 + r * 100) for r in range(2) for c in range(3)]
GRID = [(8, 8, 168, 98), (178, 8, 338, 98), (8, 108, 168, 198), (178, 108, 338, 198)]


def _draw_callout(fig) -> None:
    """A framed call-out (15 % of the width, a seventh of a panel's area) behind a gutter right of (b)."""
    _photos(fig, CALLOUT, 900)
    fig.draw_rect(pymupdf.Rect(350, 70, 414, 130), color=(0, 0, 0), width=1)
    fig.insert_text((354, 92), "First layer", fontname="helv", fontsize=8)
    fig.insert_text((354, 112), "Second layer", fontname="helv", fontsize=8)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("fewer")
    papers = root / "papers"
    _page(papers / "callout.pdf", (420, 200), _draw_callout,
          "Fig. 1. Fracture surfaces: (a) dimples in the weld; (b) cleavage facets near the fusion line.")
    _page(papers / "rows.pdf", (400, 206), lambda fig: _photos(fig, ROWS, 910),
          "Fig. 2. Crack growth at three loads for (a) the as-built and (b) the HIPed specimens.")
    _page(papers / "grid.pdf", (346, 206), lambda fig: _photos(fig, GRID, 920),
          "Fig. 3. Fractographs of (a) the weld and (b) the base metal.")
    return {stem: got for stem, (_, got) in mine_and_split(papers, root / "build").items()}


def test_a_callout_behind_a_gutter_joins_its_panel(split):
    got = {p.letter: p for p in split["callout"]}
    assert sorted(got) == ["a", "b"], [(p.panel_id, p.split_note) for p in split["callout"]]
    assert "small cell(s) joined" in got["b"].split_note
    assert iou(got["a"].box, tuple(v * SCALE for v in CALLOUT[0])) >= 0.9
    assert got["b"].box[2] > 410 * SCALE  # (b) reaches over its call-out
    assert "cleavage" in got["b"].caption and "dimples" not in got["b"].caption


def test_repeated_rows_are_the_lettered_panels(split):
    got = {p.letter: p for p in split["rows"]}
    assert sorted(got) == ["a", "b"], [(p.panel_id, p.split_note) for p in split["rows"]]
    top = (ROWS[0][0], ROWS[0][1], ROWS[2][2], ROWS[2][3])
    bottom = (ROWS[3][0], ROWS[3][1], ROWS[5][2], ROWS[5][3])
    assert iou(got["a"].box, tuple(v * SCALE for v in top)) >= 0.9, got["a"].box
    assert iou(got["b"].box, tuple(v * SCALE for v in bottom)) >= 0.9, got["b"].box
    assert "HIPed" in got["b"].caption and "as-built" not in got["b"].caption


def test_a_plain_grid_naming_fewer_panels_stays_whole(split):
    (whole,) = split["grid"]
    assert whole.letter is None and whole.split_method == "whole_unsure", whole.split_note


# --- letters printed in brackets --------------------------------------------------------------------

BRACKETED = [(8, 8, 168, 98), (178, 8, 338, 98), (8, 108, 168, 198), (178, 108, 338, 198)]


def _draw_bracketed(fig) -> None:
    """Column-major letters printed as "(a)" in Helvetica-Bold on a white patch in each photo's corner."""
    _photos(fig, BRACKETED, 930)
    for (x0, y0, _, _), letter in zip(BRACKETED, "acbd"):
        fig.draw_rect(pymupdf.Rect(x0 + 3, y0 + 3, x0 + 33, y0 + 21), color=None, fill=(1, 1, 1))
        fig.insert_text((x0 + 6, y0 + 16), f"({letter})", fontname="hebo", fontsize=11)


def test_letters_printed_in_brackets_are_read(tmp_path):
    """"(a)" is the commonest way panel letters are printed: the brackets beside the glyph must not make it
    look like texture, or a column-major figure is lettered row-major (b and c swapped)."""
    _page(tmp_path / "papers" / "brackets.pdf", (346, 206), _draw_bracketed,
          "Fig. 4. Fracture surfaces: (a) dimples; (b) cleavage facets; (c) striations; (d) a pore.")
    (got,) = [panels for _, panels in mine_and_split(tmp_path / "papers", tmp_path / "build").values()]
    by_letter = {p.letter: p for p in got}
    assert sorted(by_letter) == ["a", "b", "c", "d"], [(p.panel_id, p.split_note) for p in got]
    for letter, box in zip("acbd", BRACKETED):
        assert iou(by_letter[letter].box, tuple(v * SCALE for v in box)) >= 0.9, (letter, by_letter[letter].split_note)
    assert "glyphs read in the pixels" in by_letter["b"].split_note
