"""Pages stored with /Rotate (dataset_builders/pdf/rotation.py): slide decks exported on portrait paper and
landscape pages of theses are laid out sideways and turned by the viewer. Generated here the way such files
are written: a portrait page with /Rotate 90 (optionally a CropBox inside it, as PowerPoint writes), its
content placed sideways so that it reads upright. Every box the miner records must be in the frame the reader
sees, and captions, titles and renders must meet their figures there."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest
from PIL import Image
from test_mine import jpeg_bytes, mine_one, texture

from dataset_builders.pdf.rotation import upright

SHOWN = (842, 595)  # the landscape page the reader sees
PHOTO = (200, 120, 600, 420)  # displayed positions
CHART = (150, 110, 650, 330)
# the CropBox (20, 10, 580, 817) of a stored 595 x 842 page, turned by /Rotate 90, starts 842 - 817 = 25 pt
# right and 20 pt down of the displayed page's corner
CROP_SHIFT = (25, 20)


def _sideways(page: pymupdf.Page, box: tuple) -> pymupdf.Rect:
    """Where a displayed box is stored on the rotated page (PyMuPDF takes unrotated coordinates)."""
    return pymupdf.Rect(box) * page.derotation_matrix


def _write(page: pymupdf.Page, box: tuple, words: str, size: float) -> None:
    assert page.insert_textbox(_sideways(page, box), words, fontsize=size, fontname="helv", rotate=90) >= 0


def rotated_deck(path: Path, rotation: int = 90, crop: bool = False) -> None:
    """Two landscape slides stored on portrait pages: a micrograph with its caption under it, a vector chart
    with its caption under it."""
    doc = pymupdf.open()
    for k in range(2):
        page = doc.new_page(width=SHOWN[1], height=SHOWN[0])
        page.set_rotation(rotation)
        _write(page, (60, 30, 780, 70), "Ductile fracture surfaces" if k == 0 else "Hardness profile", 20)
        if k == 0:
            page.insert_image(_sideways(page, PHOTO), stream=jpeg_bytes(texture(400, 300, 3)), rotate=rotation)
            _write(page, (200, 430, 700, 460), "Fig. 2. SEM fractograph of the overload zone showing equiaxed "
                                               "dimples.", 11)
        else:
            for j in range(8):  # bars of a chart
                x = CHART[0] + 10 + j * 60
                page.draw_rect(_sideways(page, (x, CHART[3] - 20 - 20 * j, x + 40, CHART[3])), color=(0, 0, 0),
                               fill=(0.2, 0.3, 0.8))
            page.draw_rect(_sideways(page, CHART), color=(0, 0, 0), width=1)
            _write(page, (150, 340, 700, 370), "Fig. 3. Vickers hardness across the weld.", 11)
        if crop:  # PowerPoint's PDF export: a slide-sized CropBox inside a larger page
            page.set_rotation(0)
            page.set_cropbox(pymupdf.Rect(20, 10, SHOWN[1] - 15, SHOWN[0] - 25))
            page.set_rotation(rotation)
    doc.save(path)


@pytest.mark.parametrize("rotation, crop", [(90, False), (270, False), (90, True)],
                         ids=["rotate90", "rotate270", "rotate90_cropbox"])
def test_rotated_pages_are_read_in_the_frame_the_reader_sees(tmp_path, rotation, crop):
    rec, paths, result = mine_one(tmp_path, lambda p: rotated_deck(p, rotation, crop))
    assert [p.reason for p in result.problems] == []
    by_num = {f.number: f for f in rec.figures}
    assert sorted(by_num) == ["2", "3"], [(f.number, f.bbox) for f in rec.figures]
    shift = CROP_SHIFT if crop else (0, 0)
    photo, chart = by_num["2"], by_num["3"]
    want = (PHOTO[0] - shift[0], PHOTO[1] - shift[1], PHOTO[2] - shift[0], PHOTO[3] - shift[1])
    assert photo.bbox == pytest.approx(want, abs=1), photo.bbox
    assert photo.caption.startswith("Fig. 2. SEM fractograph") and photo.parts[0].origin == "embedded"
    # the chart is rendered from the page: its clip is in the displayed frame, so the render is the chart,
    # landscape like the chart, not a sideways strip of the page
    (part,) = chart.parts
    assert part.origin == "rendered" and chart.caption.startswith("Fig. 3. Vickers hardness")
    assert chart.bbox[0] <= CHART[0] - shift[0] + 2 and chart.bbox[2] >= CHART[2] - shift[0] - 2, chart.bbox
    img = Image.open(paths.out / part.image).convert("L")
    assert img.width > 2 * img.height
    blue = sum(1 for v in img.getdata() if 60 < v < 110)  # the bars (fill 0.2/0.3/0.8 is grey ~80)
    assert blue > 0.1 * img.width * img.height


def test_upright_keeps_the_appearance_and_moves_every_box_into_the_displayed_frame(tmp_path):
    rotated_deck(tmp_path / "d.pdf", 90, crop=True)
    with pymupdf.open(tmp_path / "d.pdf") as doc, pymupdf.open(tmp_path / "d.pdf") as ref:
        page, before = doc[0], ref[0]
        shown = before.get_pixmap(dpi=36)
        words = [(pymupdf.Rect(w[:4]) * before.rotation_matrix, w[4]) for w in before.get_text("words")]
        upright(page)
        assert page.rotation == 0 and page.rect == before.rect
        assert page.get_pixmap(dpi=36).samples == shown.samples  # the same page, pixel for pixel
        for (want, word), got in zip(words, page.get_text("words")):
            assert got[4] == word and tuple(got[:4]) == pytest.approx(tuple(want), abs=0.05)
        (info,) = page.get_image_info()
        assert info["bbox"] == pytest.approx((PHOTO[0] - CROP_SHIFT[0], PHOTO[1] - CROP_SHIFT[1],
                                               PHOTO[2] - CROP_SHIFT[0], PHOTO[3] - CROP_SHIFT[1]), abs=0.5)
