"""Slide templates' full-page background rasters (dataset_builders/pdf/background.py): a uniform image under
the whole slide is not a figure part; a full-page photograph and a scanned page still are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image, ImageDraw
from test_mine import jpeg_bytes, mine_one, png_bytes, text, texture
from test_mine_layouts import FILLER, scanned, thesis_chapter

from dataset_builders.pdf import background
from dataset_builders.pdf.background import MAX_EDGE_SHARE, _probe, edge_share

SLIDE = (960, 540)  # Marp's 16:9 slide in points


def white_with_logo() -> Image.Image:
    """Marp's template raster: white, a logo in the top right corner (the registry decks' ~1 % edge pixels)."""
    img = Image.new("RGB", (1280, 720), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((1160, 10, 1230, 90), fill=(0, 110, 190))
    draw.text((1160, 95), "Hochschule", fill=(20, 40, 90))
    return img


def gradient() -> Image.Image:
    """A PowerPoint-like template: a diagonal blue-to-white gradient over the whole slide."""
    x = np.linspace(0, 1, 1280)[None, :] * 0.6 + np.linspace(0, 1, 720)[:, None] * 0.4
    rgb = np.stack([60 + 195 * x, 90 + 165 * x, 160 + 95 * x], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def slide_deck(background: bytes, photo: bool = True, xref_per_slide: bool = False):
    """Three slides on one template. PyMuPDF stores an image inserted again into one document once (one xref on
    every slide); xref_per_slide makes each slide apart and joins them, so each has its own copy of the same
    bytes under a new xref, as Marp decks do."""
    def build(path: Path) -> None:
        doc = pymupdf.open()
        for k in range(3):
            slide = pymupdf.open() if xref_per_slide else doc
            p = slide.new_page(width=SLIDE[0], height=SLIDE[1])
            p.insert_image(p.rect, stream=background)
            text(p, (40, 50, 440, 90), f"Fatigue fracture, slide {k + 1}", size=20)
            text(p, (40, 120, 440, 400), FILLER)
            if photo:
                p.insert_image(pymupdf.Rect(560, 150, 860, 450), stream=jpeg_bytes(texture(600, 600, 40 + k)))
            if slide is not doc:
                doc.insert_pdf(slide)
        doc.save(path)
    return build


def test_template_backgrounds_are_uniform_and_pictures_are_not():
    def share(img: Image.Image) -> float:
        return edge_share(_probe(img))  # the miner's own reduction

    assert share(white_with_logo()) <= MAX_EDGE_SHARE and share(gradient()) <= MAX_EDGE_SHARE
    assert share(texture(1280, 720, 3)) > 5 * MAX_EDGE_SHARE


def test_a_white_full_page_raster_under_a_slide_is_skipped_and_the_photo_is_one_part(tmp_path):
    rec, _, result = mine_one(tmp_path, slide_deck(png_bytes(white_with_logo())))
    assert len(rec.figures) == 3
    for fig in rec.figures:  # the photo alone, not a two-part figure with the page behind it
        (part,) = fig.parts
        assert part.origin == "embedded" and all(abs(a - b) <= 1 for a, b in zip(fig.bbox, (560, 150, 860, 450)))
    backgrounds = [s for s in rec.skipped if s.reason == "page_background"]
    assert [s.page for s in backgrounds] == [1, 2, 3] and backgrounds[0].bbox == (0, 0, 960, 540)
    assert result.counts["page_backgrounds"] == 3


def test_one_template_under_a_new_xref_on_every_slide_is_decoded_once(tmp_path, monkeypatch):
    """The probe's verdict by the raw stream's digest: three xrefs of the same bytes, one decode."""
    decoded: list[int] = []
    real = background._decode_small
    monkeypatch.setattr(background, "_decode_small", lambda doc, g, raw: decoded.append(g.xref) or real(doc, g, raw))
    deck = slide_deck(png_bytes(white_with_logo()), xref_per_slide=True)
    deck(tmp_path / "deck.pdf")
    with pymupdf.open(tmp_path / "deck.pdf") as doc:
        xrefs = [min(x[0] for x in page.get_images()) for page in doc]  # the template, the first image placed
    assert len(set(xrefs)) == 3, xrefs
    rec, _, result = mine_one(tmp_path, deck)
    assert [len(f.parts) for f in rec.figures] == [1, 1, 1] and result.counts["page_backgrounds"] == 3
    assert len(decoded) == 1 and decoded[0] in xrefs


def test_a_gradient_template_is_skipped_whether_png_or_jpeg(tmp_path):
    for k, data in enumerate((png_bytes(gradient()), jpeg_bytes(gradient()))):
        rec, _, result = mine_one(tmp_path / str(k), slide_deck(data))
        assert [len(f.parts) for f in rec.figures] == [1, 1, 1]
        assert result.counts["page_backgrounds"] == 3


def test_a_full_page_photograph_under_slide_text_is_still_mined(tmp_path):
    rec, _, result = mine_one(tmp_path, slide_deck(jpeg_bytes(texture(1280, 720, 9, "RGB")), photo=False))
    assert [f.bbox for f in rec.figures] == [(0, 0, 960, 540)] * 3
    assert not any(s.reason == "page_background" for s in rec.skipped) and "page_backgrounds" not in result.counts


def test_a_scanned_page_without_text_layer_stays_one_image(tmp_path):
    rec, _, result = mine_one(tmp_path, scanned(thesis_chapter, text_layer=False), ocr="off")
    (fig,) = rec.figures  # not read (--ocr off): the page image, as before, not taken for a background
    assert fig.bbox[2] - fig.bbox[0] > 590 and rec.skipped == [] and "page_backgrounds" not in result.counts


def test_a_near_blank_page_of_a_scanned_document_is_not_a_background(tmp_path):
    def two_pages(path: Path) -> None:
        thesis_chapter(path.with_suffix(".one.pdf"))
        doc = pymupdf.open(path.with_suffix(".one.pdf"))
        p = doc.new_page(width=595, height=842)
        text(p, (60, 45, 300, 72), "Chapter 8", size=14)  # a near-blank page: a heading on white paper
        doc.save(path)
        path.with_suffix(".one.pdf").unlink()

    rec, _, _ = mine_one(tmp_path, scanned(two_pages, text_layer=False), ocr="off")
    assert [f.page for f in rec.figures] == [1, 2] and rec.skipped == []  # both page images, as before


def test_a_full_page_image_whose_picture_is_in_its_soft_mask_is_not_a_background(tmp_path):
    """Flat colour channels, the drawing in the alpha channel (a PDF /SMask): judged as a picture, kept."""
    rgba = Image.new("RGBA", (1280, 720), (30, 30, 30, 0))
    rgba.putalpha(texture(1280, 720, 5))
    rec, _, result = mine_one(tmp_path, slide_deck(png_bytes(rgba), photo=False))
    assert [f.bbox for f in rec.figures] == [(0, 0, 960, 540)] * 3
    assert "page_backgrounds" not in result.counts
