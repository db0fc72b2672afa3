"""Abutting panels (no white gutter): the seam cut of panel_seams, on generated journal pages and on arrays.

Each page holds one raster figure whose micrograph-like textures touch (or are set apart by a thin black
line) and a caption naming its panels; the page goes through the real mine and panels stages, like
tests/test_panels_published.py. A single micrograph with a strong straight feature must stay whole.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builders.panel_seams import find_seam_cells, row_seams
from test_panels_published import FIG_RECT, SCALE, iou, journal_page, mine_and_split

W, H = FIG_RECT.width, FIG_RECT.height  # the figure in points (400 x 300)


def _texture_array(w: int, h: int, seed: int, offset: int = 0) -> np.ndarray:
    """A micrograph-like grey texture (smooth relief at the scale of a few pixels)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.normal(0.0, 1.0, (h // 6 + 2, w // 6 + 2)).astype(np.float32))
    return np.clip(115 + offset + 35 * np.asarray(coarse.resize((w, h), Image.BICUBIC)), 8, 247).astype(np.int16)


def _page(path: Path, figure: np.ndarray, caption: str) -> None:
    """A journal page holding the figure as a JPEG (as publishers embed photographs) and its caption."""
    out = io.BytesIO()
    Image.fromarray(np.clip(figure, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
    journal_page(path, out.getvalue(), caption)


def _tile(boxes: list[tuple[int, int, int, int]], size: tuple[int, int], seed: int, line: int = 0) -> np.ndarray:
    """Textures filling pixel boxes edge to edge (offsets differ: photographs differ in brightness); `line`
    px black lines drawn along the inner box edges (a separator)."""
    figure = np.zeros((size[1], size[0]), np.int16)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        figure[y0:y1, x0:x1] = _texture_array(x1 - x0, y1 - y0, seed + k, offset=(-20, 25, 5, -10)[k % 4])
    for x0, y0, x1, y1 in boxes:
        if line:
            if x0 > 0:
                figure[y0:y1, x0 - line // 2:x0 + (line + 1) // 2] = 0
            if y0 > 0:
                figure[y0 - line // 2:y0 + (line + 1) // 2, x0:x1] = 0
    return figure


PX = (int(W * SCALE), int(H * SCALE))  # 600 x 450
CASES = {
    # name: (boxes in pixels, separator line px, caption, letters)
    "abutting_2x2": ([(0, 0, 300, 225), (300, 0, 600, 225), (0, 225, 300, 450), (300, 225, 600, 450)], 0,
                     "Fig. 1. Fracture surfaces: (a) dimples; (b) cleavage facets; (c) striations; (d) a pore.",
                     ["a", "b", "c", "d"]),
    "black_line_1x3": ([(0, 0, 200, 450), (200, 0, 400, 450), (400, 0, 600, 450)], 2,
                       "Fig. 2. SEM fractographs of (a) the as-built, (b) the HIPed and (c) the machined specimen.",
                       ["a", "b", "c"]),
    "different_widths_in_a_row": ([(0, 0, 380, 450), (380, 0, 600, 450)], 0,
                                  "Fig. 3. (a) Overview of the fracture surface; (b) detail of the origin.",
                                  ["a", "b"]),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("seams")
    for seed, (name, (boxes, line, caption, _)) in enumerate(CASES.items()):
        _page(root / "papers" / f"{name}.pdf", _tile(boxes, PX, 40 + 10 * seed, line), caption)
    single = _texture_array(*PX, 99)
    single[:, 300:] += 40  # a straight brightness step across the whole micrograph: its texture runs on
    single[220:223, 60:480] = 20  # and a straight crack across most of it (a crack ends; a drawn separator
    # line runs from edge to edge and is taken for one: docs/panels.md)
    _page(root / "papers" / "single_straight_feature.pdf", single,
          "Fig. 4. Fracture surface of the weld: (a) the fusion line and (b) the heat-affected zone.")
    return mine_and_split(root / "papers", root / "build")


@pytest.mark.parametrize("name", list(CASES))
def test_abutting_panels_are_cut_along_their_seams(built, name):
    boxes, _, _, letters = CASES[name]
    paper, got = built[name]
    part = paper.figures[0].parts[0]
    assert [p.letter for p in got] == letters, [(p.panel_id, p.split_note) for p in got]
    sx, sy = part.width / PX[0], part.height / PX[1]
    for panel, (x0, y0, x1, y1) in zip(got, boxes):
        assert panel.split_method == "seam" and "seams" in panel.split_note
        assert iou(panel.box, (x0 * sx, y0 * sy, x1 * sx, y1 * sy)) >= 0.9, (panel.box, (x0, y0, x1, y1))


def test_a_single_micrograph_with_a_straight_feature_stays_whole(built):
    _, got = built["single_straight_feature"]
    assert len(got) == 1 and got[0].split_method == "whole_unsure", [(p.panel_id, p.split_note) for p in got]


# --- the finder on arrays ---------------------------------------------------------------------------------

def test_a_seam_is_found_where_two_textures_meet_and_not_inside_one():
    two = np.vstack([_texture_array(400, 150, 1), _texture_array(400, 150, 2)]).clip(0, 255).astype(np.uint8)
    assert [s[:2] for s in row_seams(two)] == [(150, 150)]
    one = _texture_array(400, 300, 3)
    one[150:] += 30  # brightness step, texture continuous
    assert row_seams(one.clip(0, 255).astype(np.uint8)) == []


def test_the_cut_must_give_exactly_the_named_count_with_plausible_sizes():
    row = np.hstack([_texture_array(200, 300, k) for k in range(3)]).clip(0, 255).astype(np.uint8)
    whole = [(0, 0, 600, 300)]
    assert find_seam_cells(row, whole, 3) == [(0, 0, 200, 300), (200, 0, 400, 300), (400, 0, 600, 300)]
    assert find_seam_cells(row, whole, 2) is None  # three images for two named panels: unsure, stays whole
    assert find_seam_cells(row, whole, 4) is None
    sliver = np.hstack([_texture_array(560, 300, 5), _texture_array(40, 300, 6)]).clip(0, 255).astype(np.uint8)
    assert find_seam_cells(sliver, whole, 2) is None  # a 40 px strip is no panel (a data bar, a colour scale)


def test_seams_cut_inside_gutter_cells():
    """Two rows apart by a white gutter, each of two abutting images: 2 gutter cells, 4 panels."""
    top = np.hstack([_texture_array(300, 200, 7), _texture_array(300, 200, 8)])
    bottom = np.hstack([_texture_array(300, 200, 9), _texture_array(300, 200, 10)])
    figure = np.vstack([top, np.full((20, 600), 255), bottom]).clip(0, 255).astype(np.uint8)
    cells = find_seam_cells(figure, [(0, 0, 600, 200), (0, 220, 600, 420)], 4)
    assert cells == [(0, 0, 300, 200), (300, 0, 600, 200), (0, 220, 300, 420), (300, 220, 600, 420)]
