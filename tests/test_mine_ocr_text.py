"""Caption labels as OCR writes them (dataset_builders/pdf/ocr_text.py), on generated scans whose OCR text layer
is broken the way Tesseract breaks small print: "Fig." on a line of its own with the number and text on the
next, a caption row read as fragments (one word cut in two, one spot read twice), the dot of a chapter number
lost ("Fig. 33." for "Fig. 3.3."); and a paragraph listed around a figure of the other column, as OCR lists
the blocks of both columns by height."""

from __future__ import annotations

from pathlib import Path

import pymupdf
from test_mine import A4, jpeg_bytes, mine_one, text, texture
from test_mine_layouts import FILLER, scanned

from dataset_builders.pdf.ocr_text import join_caption_labels, restore_chapter_dots
from dataset_builders.pdf.text import Line, TextBlock, find_captions

IMAGES = [(150, 60, 450, 200), (150, 300, 450, 440), (150, 540, 450, 680)]


def book_page(path: Path) -> None:
    """A chapter-3 book page with three micrographs; each caption's text layer as OCR left it."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    for k, box in enumerate(IMAGES):
        p.insert_image(pymupdf.Rect(box), stream=jpeg_bytes(texture(600, 280, 20 + k)))
    text(p, (150, 206, 450, 222), "Fig. 3.1. Cleavage facets in the weld metal.", size=9)
    # "Fig." alone, the number and caption text on the line under it
    p.insert_text((150, 456), "Fig.", fontsize=9)
    p.insert_text((150, 469), "3.2, Equiaxed dimples in the base metal.", fontsize=9)
    # one row in fragments: label, number without its chapter dot, a word cut in two, a spot read twice
    p.insert_text((150, 697), "Fig,", fontsize=9)
    p.insert_text((172, 697), "33.", fontsize=11)
    p.insert_text((172, 695), "ah", fontsize=6)
    p.insert_text((194, 697), "Fatigue stri", fontsize=9)
    p.insert_text((194 + pymupdf.get_text_length("Fatigue stri", fontsize=9) + 0.5, 699),
                  "ations near the weld toe.", fontsize=8)
    text(p, (60, 720, 540, 800), "Striations mark the crack front in Fig. 3.3. " + FILLER)
    doc.save(path)


def test_caption_labels_broken_by_ocr_are_joined_to_their_numbers(tmp_path):
    rec, _, result = mine_one(tmp_path, scanned(book_page))
    assert [p.reason for p in result.problems] == []
    by_num = {f.number: f for f in rec.figures}
    assert sorted(by_num) == ["3.1", "3.2", "3.3"], [(f.number, f.caption) for f in rec.figures]
    assert by_num["3.2"].caption == "Fig. 3.2. Equiaxed dimples in the base metal."
    assert by_num["3.3"].caption == "Fig. 3.3. Fatigue striations near the weld toe."
    for number, box in zip(["3.1", "3.2", "3.3"], IMAGES):
        assert all(abs(a - b) <= 4 for a, b in zip(by_num[number].bbox, box)), (number, by_num[number].bbox)
    assert any(e.figure_number == "3.3" for e in rec.excerpts)


def _line(text: str, box: tuple) -> Line:
    return Line(text=text, bbox=box, size=box[3] - box[1], spans=[(text, box)])


def test_a_lone_label_without_a_number_after_it_is_left_alone():
    # "Fig." in a legend or a list, nothing numbered beside or under it: no caption is made up
    blocks = [TextBlock(lines=[_line("Fig.", (100, 100, 118, 110))], bbox=(100, 100, 118, 110)),
              TextBlock(lines=[_line("shows the setup", (124, 100, 200, 110))], bbox=(124, 100, 200, 110)),
              TextBlock(lines=[_line("and more text", (100, 140, 200, 150))], bbox=(100, 140, 200, 150))]
    assert join_caption_labels(blocks) == blocks and find_captions(blocks) == []


def test_chapter_dots_are_restored_only_where_the_document_numbers_by_chapter():
    def page(*captions: str) -> list[TextBlock]:
        return [TextBlock(lines=[_line(c, (60, 100 + 40 * k, 400, 110 + 40 * k))], bbox=(60, 100 + 40 * k, 400,
                                                                                         110 + 40 * k))
                for k, c in enumerate(captions)]
    book = [page("Fig. 1.18. Cleavage.", "Fig. 1.19. Creep."), page("Fig. 121. Fatigue ridges.")]
    restore_chapter_dots(book)
    assert [c.number for blocks in book for c in find_captions(blocks)] == ["1.18", "1.19", "1.21"]
    journal = [page("Fig. 11. Cleavage.", "Fig. 12. Creep."), page("Fig. 121. Ridges.", "Fig. 1.2. Map.")]
    restore_chapter_dots(journal)  # plain numbers dominate: nothing is a chapter number
    assert [c.number for blocks in journal for c in find_captions(blocks)] == ["11", "12", "121", "1.2"]


def two_column_page(path: Path) -> None:
    """A left-column paragraph whose citing sentence runs into a second block, and, listed between the two in
    the page's text (as OCR lists blocks of both columns by height), a figure with its in-image label and its
    caption in the right column."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (60, 100, 290, 190), "The crack then grew by the cyclic opening of its tip, which leaves a succession "
                                 "of fatigue striations on the surface (two good examples are given in", size=9)
    p.insert_image(pymupdf.Rect(310, 100, 540, 280), stream=jpeg_bytes(texture(460, 360, 31)))
    p.insert_text((316, 114), "(a)", fontsize=9, color=(1, 1, 1))
    text(p, (310, 286, 540, 310), "Fig. 3. Fracture surface of the shaft.", size=9)
    text(p, (60, 196, 290, 260), "Fig. 3). The crack then grew until the remaining section failed.", size=9)
    doc.save(path)


def test_a_figure_of_the_other_column_does_not_break_a_paragraph(tmp_path):
    rec, _, _ = mine_one(tmp_path, two_column_page)
    (fig,) = rec.figures
    assert fig.number == "3"
    cited = [e.text for e in rec.excerpts if e.figure_number == "3"]
    assert any("fatigue striations" in t for t in cited), cited
