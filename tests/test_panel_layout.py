"""panel_layout: composites the white-gutter grid cannot cut (photos around a plot, letters in the pixels)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dataset_builders import panel_layout as pl
from dataset_builders.panels import find_grid


def _composite() -> Image.Image:
    """Two micrograph-like panels (b, c) stacked on the left with a 3 px gutter, one (d) on the right, a bar
    chart (a) in the middle, and a dashed arrow crossing the gutters (so no white column gutter runs edge to edge)."""
    rng = np.random.default_rng(0)
    image = Image.new("L", (900, 500), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=30)
    for box, letter in (((5, 5, 300, 246), "b"), ((5, 249, 300, 495), "c"), ((600, 5, 895, 495), "d")):
        w, h = box[2] - box[0], box[3] - box[1]
        noise = rng.normal(128, 40, (h // 4, w // 4)).clip(0, 255).astype(np.uint8)
        image.paste(Image.fromarray(noise).resize((w, h), Image.BILINEAR), box[:2])
        draw.rectangle((box[2] - 40, box[1] + 4, box[2] - 6, box[1] + 40), fill=255, outline=0, width=2)
        draw.text((box[2] - 32, box[1] + 2), letter, fill=0, font=font)
    draw.line((340, 460, 560, 460), fill=0, width=2)  # chart axes and bars
    draw.line((340, 60, 340, 460), fill=0, width=2)
    for x, top in ((370, 200), (430, 80), (490, 300)):
        draw.rectangle((x, top, x + 40, 460), fill=190, outline=0)
    draw.rectangle((345, 62, 375, 95), fill=255, outline=0, width=2)
    draw.text((351, 58), "a", fill=0, font=font)
    draw.line((300, 30, 600, 30), fill=0, width=2)  # an arrow from (b) to (d) across both gutters
    return image


def test_composite_is_cut_into_its_panels_with_letters_read_in_the_pixels():
    image = _composite()
    assert len(find_grid(image).cells) != 4  # the white-gutter search cannot do it
    layout = pl.split_composite(image, ["a", "b", "c", "d"])
    assert layout is not None and layout.letters is not None
    by_letter = dict(zip(layout.letters, layout.cells))
    assert sorted(by_letter) == ["a", "b", "c", "d"]
    assert by_letter["b"][0] < 20 and by_letter["b"][3] < 260  # upper left, stops at the thin gutter
    assert by_letter["c"][1] > 240 and by_letter["d"][0] > 580
    assert 295 <= by_letter["a"][0] and by_letter["a"][2] <= 605  # the chart (with the arrow over it)


def test_no_layout_when_the_cells_do_not_match_the_letters():
    assert pl.split_composite(_composite(), ["a", "b"]) is None
    blank = Image.new("L", (400, 300), 255)
    assert pl.split_composite(blank, ["a", "b"]) is None  # no photograph: nothing to anchor a layout
