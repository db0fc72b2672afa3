"""Panel letters printed as "(a)" along a panel's top or bottom edge, not in a corner (panel_marks, generated figures)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dataset_builders import panel_layout as pl
from dataset_builders.panel_marks import bracketed_letters

CELL_W, CELL_H, GAP = 300, 260, 40


def _sketches(labels: list[str | None], where: str = "bottom", texture: bool = False) -> tuple[np.ndarray, list]:
    """Side-by-side sketches (line art, or a noisy micrograph-like block), each with its label centred under
    (or over) it: a textbook figure's "(a)  (b)  (c)"."""
    rng = np.random.default_rng(3)
    width = len(labels) * CELL_W + (len(labels) - 1) * GAP
    image = Image.new("L", (width, CELL_H), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=26)
    cells = []
    for i, label in enumerate(labels):
        x0 = i * (CELL_W + GAP)
        top = 50 if where == "top" else 10
        if texture:
            block = rng.normal(120, 30, (CELL_H - 60, CELL_W - 20)).clip(0, 255).astype(np.uint8)
            image.paste(Image.fromarray(block), (x0 + 10, top))
        else:
            draw.ellipse((x0 + 60, top + 20, x0 + 240, top + 170), outline=0, width=3)
            draw.line((x0 + 150, top, x0 + 150, top + 190), fill=0, width=2)
        if label:
            y = 8 if where == "top" else CELL_H - 40
            draw.text((x0 + CELL_W // 2 - 20, y), label, fill=0, font=font)
        cells.append((x0, 0, x0 + CELL_W, CELL_H))
    return np.asarray(image), cells


def _classify(wanted: list[str]):
    def classify(mask: np.ndarray) -> str | None:
        ranked = sorted(zip(pl._scores(pl._normalise(mask), wanted), wanted), reverse=True)
        return ranked[0][1] if ranked[0][0] >= pl.MIN_LETTER_SCORE and ranked[0][0] - ranked[1][0] >= pl.LETTER_MARGIN \
            else None
    return classify


def test_letters_centred_under_sketches_are_read_where_the_corners_hold_none():
    grey, cells = _sketches(["(b)", "(a)", "(c)"])
    wanted = ["a", "b", "c"]
    assert pl._read_placed(grey, cells, wanted) is None  # the corner search does not reach the centre
    assert bracketed_letters(grey, cells, wanted, _classify(wanted)) == ["b", "a", "c"]
    assert pl.read_letters(grey, cells, wanted, placed=True) == ["b", "a", "c"]
    assert pl.read_letters(grey, cells, wanted) == ["b", "a", "c"]


def test_letters_over_the_panels_are_read_too():
    grey, cells = _sketches(["(a)", "(b)"], where="top")
    assert pl.read_letters(grey, cells, ["a", "b"], placed=True) == ["a", "b"]


def test_a_cell_without_its_letter_gives_no_letters():
    grey, cells = _sketches(["(a)", None, "(c)"])
    assert pl.read_letters(grey, cells, ["a", "b", "c"], placed=True) is None


def test_letters_without_brackets_or_two_in_one_band_are_not_read():
    grey, cells = _sketches(["a", "b"])  # a bare letter in the middle of a band: could be any label of a sketch
    wanted = ["a", "b"]
    assert bracketed_letters(grey, cells, wanted, _classify(wanted)) is None
    grey, cells = _sketches(["(a) (b)", "(b)"])  # a plot's own "(a)" and "(b)": ambiguous
    assert bracketed_letters(grey, cells, wanted, _classify(wanted)) is None


def test_texture_alone_reads_no_letters():
    grey, cells = _sketches([None, None, None], texture=True)
    wanted = ["a", "b", "c"]
    assert bracketed_letters(grey, cells, wanted, _classify(wanted)) is None
    grey, cells = _sketches(["(a)", "(b)", "(c)"], texture=True)  # letters under micrograph-like blocks
    assert bracketed_letters(grey, cells, wanted, _classify(wanted)) == ["a", "b", "c"]
