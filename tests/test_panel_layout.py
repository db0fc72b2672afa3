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


def _corner_glyphs_per_corner(grey: np.ndarray, cell: tuple[int, int, int, int]) -> list:
    """panel_layout._corner_glyphs as it was: each corner and ink labelled alone, every component boxed."""
    from scipy import ndimage

    x0, y0, x1, y1 = cell
    w, h = x1 - x0, y1 - y0
    cw, ch = max(12, int(w * 0.22)), max(12, int(h * 0.22))
    glyphs = []
    right, bottom = max(0, x1 - cw), max(0, y1 - ch)  # as it is: windows of small cells at the edge start at 0
    for corner_index, (cx, cy) in enumerate(((x0, y0), (right, y0), (x0, bottom), (right, bottom))):
        corner = grey[cy:cy + ch, cx:cx + cw]
        for ink in (corner < 100, corner > 200):
            labels, _ = ndimage.label(ink)
            objects = ndimage.find_objects(labels)
            for i, (ys, xs) in enumerate(objects, start=1):
                gh, gw = ys.stop - ys.start, xs.stop - xs.start
                if not (0.03 * h <= gh <= 0.15 * h and 0.3 <= gw / gh <= 1.3 and gh >= 8):
                    continue
                if ys.start == 0 or xs.start == 0 or ys.stop == corner.shape[0] or xs.stop == corner.shape[1]:
                    continue
                window = labels[max(0, ys.start - 3):ys.stop + 3, max(0, xs.start - 3):xs.stop + 3]
                others = (window > 0) & (window != i) & ~np.isin(window, pl._brackets(objects, window, i, gh))
                if others.mean() > 0.05:
                    continue
                glyphs.append((pl._normalise(labels[ys, xs] == i), corner_index, gh))
    return glyphs


def test_corner_glyphs_in_one_labelling_equal_labelling_each_corner():
    """The eight corner masks of a cell labelled in one call (specks not boxed) give the same glyphs, in the
    same order, as each mask labelled alone: letters in boxes and in brackets, light on dark, textures, cells
    at the figure's edge and cells smaller than a corner window."""
    figure = np.asarray(_composite())
    bracketed = Image.new("L", (300, 200), 255)
    draw = ImageDraw.Draw(bracketed)
    draw.text((8, 4), "(b)", fill=0, font=ImageFont.load_default(size=28))
    draw.rectangle((200, 120, 299, 199), fill=0)
    draw.text((262, 160), "c", fill=255, font=ImageFont.load_default(size=26))
    rng = np.random.default_rng(5)
    noisy = rng.normal(128, 60, (240, 320)).clip(0, 255).astype(np.uint8)
    cases = [(figure, c) for c in [(5, 5, 300, 246), (5, 249, 300, 495), (600, 5, 895, 495), (340, 55, 560, 465),
                                   (0, 0, 900, 500), (890, 490, 900, 500), (3, 3, 14, 9)]]
    cases += [(np.asarray(bracketed), (0, 0, 300, 200)), (noisy, (0, 0, 320, 240)), (255 - noisy, (17, 9, 301, 233))]
    found = 0
    for grey, cell in cases:
        expected = _corner_glyphs_per_corner(grey, cell)
        got = pl._corner_glyphs(grey, cell)
        assert [(c, gh) for _, c, gh in got] == [(c, gh) for _, c, gh in expected], cell
        assert all(np.array_equal(a, b) for (a, _, _), (b, _, _) in zip(got, expected))
        found += len(got)
    assert found >= 4  # the letters a-d at least


def test_a_small_cell_at_the_figure_edge_does_not_fail_the_figure():
    """A cell under 12 px ending within 12 px of the top (or left) edge: its lower corner windows once started
    at a negative row, wrapped around to nothing, and the whole figure failed (ValueError). Failed before."""
    figure = np.asarray(_composite())
    for small in ((3, 3, 14, 9), (2, 40, 10, 200)):
        pl._corner_glyphs(figure, small)  # raised ValueError("empty corner window")
        # the other cell's printed "c" is read; the one letter left goes to the unread cell
        assert pl.read_letters(figure, [small, (5, 249, 300, 495)], ["a", "c"]) == ["a", "c"]
