"""The mine stage on layouts beyond journal articles, on PDFs generated here in that shape: thesis and book
chapters (chapter-numbered figures), figures continued across a page break, Word-export manuscripts
(comment balloons, captions away from the image, broken cross-references)."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest
from PIL import Image
from test_mine import A4, jpeg_bytes, mine_one, text, texture

from dataset_builders import panels
from dataset_builders.labelling.caption_rules import label_panel
from dataset_builders.pdf.scan import scan_regions
from dataset_builders.pdf.text import TEXT_FLAGS, find_captions, page_blocks
from dataset_builders.records import PaperPanels
from fracto_core.files import read_model

FILLER = ("The specimens were machined from the plate in the rolling direction and tested at room temperature "
          "with a constant crosshead speed; the fracture surfaces were cleaned ultrasonically before imaging.")


def grid(page: pymupdf.Page, top: float, letters: str, seed: int) -> None:
    """Two micrographs side by side with their letters printed inside."""
    for k, letter in enumerate(letters):
        x0 = 100 + k * 205
        page.insert_image(pymupdf.Rect(x0, top, x0 + 195, top + 150), stream=jpeg_bytes(texture(390, 300, seed + k)))
        page.insert_text((x0 + 4, top + 14), f"({letter})", fontsize=10, color=(1, 1, 1))


# --- 1. chapter-numbered figures -------------------------------------------------------------------------

def thesis_chapter(path: Path) -> None:
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (60, 45, 540, 72), "Chapter 7  Fractography of the welded joints", size=14)
    text(p, (60, 80, 540, 160), "The overload region of the weld metal is covered by equiaxed dimples (Fig. 7.5a), "
                                "whereas in Figure 7.5(b) the heat-affected zone failed by cleavage with river "
                                "patterns. " + FILLER)
    grid(p, 180, "ab", 1)
    text(p, (100, 340, 500, 380), "Figure 7.5. SEM fractographs of the welded joint: (a) weld metal; "
                                  "(b) heat-affected zone.")
    text(p, (60, 400, 540, 470), "Striations were found near the toe (Fig. 7.6). " + FILLER)
    p.insert_image(pymupdf.Rect(150, 490, 450, 690), stream=jpeg_bytes(texture(600, 400, 7)))
    text(p, (150, 700, 450, 730), "Figure 7.6: Fatigue striations near the weld toe.")
    doc.save(path)


def test_chapter_numbered_figures_carry_their_number_caption_and_citing_text(tmp_path):
    rec, paths, _ = mine_one(tmp_path, thesis_chapter)
    assert sorted(f.number for f in rec.figures) == ["7.5", "7.6"]
    by_num = {f.number: f for f in rec.figures}
    assert by_num["7.5"].caption.startswith("Figure 7.5. SEM fractographs")
    assert {(e.figure_number, tuple(e.panels)) for e in rec.excerpts} == {("7.5", ("a",)), ("7.5", ("b",)),
                                                                          ("7.6", ())}
    # downstream: the panels stage gives each panel its figure number, caption part and citing text, and the
    # caption rules label them from that
    panels.run(paths, panels_config(paths), progress=False)
    pp = read_model(paths.panels / f"{rec.paper_id}.json", PaperPanels)
    got = {(p.figure_number, p.letter): p for p in pp.panels}
    assert set(got) == {("7.5", "a"), ("7.5", "b"), ("7.6", None)}
    a, b = got[("7.5", "a")], got[("7.5", "b")]
    assert a.caption.endswith("weld metal") and any("equiaxed dimples" in e for e in a.excerpts)
    assert label_panel(a).features == ["equiaxed dimples"]
    assert label_panel(b).features == ["cleavage facets", "river patterns"]
    assert label_panel(got[("7.6", None)]).features == ["fatigue striations"]
    saved = (paths.mine / rec.paper_id / "paper.json").read_text()
    assert '"number": "7.5"' in saved and '"figure_number": "7.6"' in saved  # text in the stage file


def panels_config(paths):
    from test_mine import cfg
    return cfg(paths.out / "unused", paths.out)


def dash_numbered_report(path: Path) -> None:
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (60, 50, 540, 130), "Figure 3-2 shows intergranular facets on the charged specimen, and Figure "
                                "3-1 the reference condition. " + FILLER)
    p.insert_image(pymupdf.Rect(150, 150, 450, 330), stream=jpeg_bytes(texture(600, 360, 3)))
    text(p, (150, 340, 450, 370), "Figure 3-1 Fracture surface of the uncharged specimen.")
    p.insert_image(pymupdf.Rect(150, 400, 450, 580), stream=jpeg_bytes(texture(600, 360, 4)))
    writer = pymupdf.TextWriter(p.rect)  # insert_textbox's simple font encoding has no en dash; a TextWriter has
    writer.fill_textbox(pymupdf.Rect(150, 590, 450, 620), "Figure 3\u20132 Fracture surface of the hydrogen-charged "
                        "specimen.", font=pymupdf.Font("helv"), fontsize=9)
    writer.write_text(p)
    doc.save(path)


def test_dash_numbered_figures_are_one_number_not_a_range(tmp_path):
    rec, paths, _ = mine_one(tmp_path, dash_numbered_report)
    assert sorted(f.number for f in rec.figures) == ["3-1", "3-2"]  # the en dash normalised
    assert sorted(e.figure_number for e in rec.excerpts) == ["3-1", "3-2"]  # never figures 1 and 2 (or 3..2)
    # the labeller reads "Figure 3-2" in the excerpt as that figure too: the feature goes to 3-2 only
    panels.run(paths, panels_config(paths), progress=False)
    pp = read_model(paths.panels / f"{rec.paper_id}.json", PaperPanels)
    labels = {p.figure_number: label_panel(p).features for p in pp.panels}
    assert labels == {"3-1": [], "3-2": ["intergranular facets"]}


# --- 2. a figure continued across a page break -------------------------------------------------------------

def continued_unmarked(path: Path, paragraph_between: bool = False) -> None:
    doc = pymupdf.open()
    p1 = doc.new_page(width=A4[0], height=A4[1])
    text(p1, (60, 50, 540, 200), "The fracture surfaces of the four tempers are compared in Fig. 4.3. " + FILLER
         + " " + FILLER)
    grid(p1, 560, "ab", 10)
    if paragraph_between:
        text(p1, (60, 730, 540, 800), FILLER)
    text(p1, (280, 812, 320, 830), "45", size=8)  # a page number below the figure is no text flow
    p2 = doc.new_page(width=A4[0], height=A4[1])
    text(p2, (250, 18, 350, 36), "Chapter 4", size=8)  # a running head above it neither
    grid(p2, 50, "cd", 20)
    text(p2, (100, 210, 500, 260), "Figure 4.3. Fracture surfaces of the four tempers: (a) equiaxed dimples; "
                                   "(b) shear lip; (c) cleavage facets; (d) intergranular facets.")
    text(p2, (60, 280, 540, 400), FILLER + " " + FILLER)
    doc.save(path)


def test_the_uncaptioned_first_part_of_a_figure_takes_the_caption_on_the_next_page(tmp_path):
    rec, paths, _ = mine_one(tmp_path, continued_unmarked)
    by_page = {f.page: f for f in rec.figures}
    assert set(by_page) == {1, 2}
    assert by_page[1].number == by_page[2].number == "4.3"
    assert by_page[1].caption == by_page[2].caption and by_page[1].caption.startswith("Figure 4.3. Fracture")
    assert [p.label for p in sorted(by_page[1].parts, key=lambda p: p.bbox[0])] == ["a", "b"]
    # downstream each part of the first page gets its panel's caption part and label
    panels.run(paths, panels_config(paths), progress=False)
    pp = read_model(paths.panels / f"{rec.paper_id}.json", PaperPanels)
    labels = {(p.page, p.letter): label_panel(p).features for p in pp.panels}
    assert labels == {(1, "a"): ["equiaxed dimples"], (1, "b"): ["shear lip"], (2, "c"): ["cleavage facets"],
                      (2, "d"): ["intergranular facets"]}


def test_a_figure_followed_by_text_on_its_page_is_not_a_continued_part(tmp_path):
    rec, _, _ = mine_one(tmp_path, lambda path: continued_unmarked(path, paragraph_between=True))
    by_page = {f.page: f for f in rec.figures}
    assert by_page[1].number is None and by_page[1].caption == ""
    assert by_page[2].number == "4.3"


def continued_marked(path: Path) -> None:
    doc = pymupdf.open()
    p1 = doc.new_page(width=A4[0], height=A4[1])
    text(p1, (60, 50, 540, 200), FILLER + " " + FILLER)
    grid(p1, 560, "ab", 30)
    text(p1, (100, 720, 500, 770), "Fig. 2.4 Fractographs: (a) fatigue striations; (b) beach marks; "
                                   "(c) equiaxed dimples; (d) shear lip.")
    p2 = doc.new_page(width=A4[0], height=A4[1])
    grid(p2, 50, "cd", 40)
    text(p2, (100, 210, 500, 230), "Fig. 2.4 (continued)")
    text(p2, (60, 280, 540, 400), FILLER + " " + FILLER)
    doc.save(path)


def test_a_marked_continuation_takes_the_full_caption(tmp_path):
    rec, _, _ = mine_one(tmp_path, continued_marked)
    by_page = {f.page: f for f in rec.figures}
    assert by_page[1].number == by_page[2].number == "2.4"
    assert by_page[2].caption == by_page[1].caption
    assert by_page[2].caption.startswith("Fig. 2.4 Fractographs: (a) fatigue striations")


def test_uncaptioned_documents_link_nothing_across_pages(tmp_path):
    def build(path: Path) -> None:
        doc = pymupdf.open()
        for seed in (50, 60):
            p = doc.new_page(width=A4[0], height=A4[1])
            text(p, (60, 50, 540, 200), FILLER + " " + FILLER)
            p.insert_image(pymupdf.Rect(150, 560, 450, 760), stream=jpeg_bytes(texture(600, 400, seed)))
        doc.save(path)

    rec, _, _ = mine_one(tmp_path, build)
    assert [(f.page, f.number, f.caption) for f in rec.figures] == [(1, None, ""), (2, None, "")]


# --- 3. Word-export manuscripts ----------------------------------------------------------------------------

def word_manuscript(path: Path) -> None:
    """Text in the left 70 % of the page, comment balloons on the right, a broken cross-reference, a caption
    that Word set 90 pt below its image (empty paragraphs between), and a caption pushed to the next page."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (50, 50, 400, 190), "Fig. 1 shows the overload zone of the tensile bar. Equiaxed dimples cover "
                                "the whole surface. The fatigue bar in Error! Reference source not found.b shows "
                                "cleavage facets along its rim. " + FILLER)
    text(p, (420, 60, 580, 110), "Commented [AB1]: Fig. 1 needs a scale bar; the intergranular facets are "
                                 "hard to see.", size=7)
    p.draw_rect(pymupdf.Rect(415, 55, 585, 115), color=(0.8, 0, 0), width=0.5)
    p.insert_image(pymupdf.Rect(100, 210, 350, 400), stream=jpeg_bytes(texture(500, 380, 70)))
    text(p, (100, 490, 350, 520), "Figure 1. Fracture surface of the tensile bar.")
    text(p, (50, 540, 400, 640), FILLER + " " + FILLER)
    p.insert_image(pymupdf.Rect(100, 650, 350, 820), stream=jpeg_bytes(texture(500, 340, 71)))
    p2 = doc.new_page(width=A4[0], height=A4[1])
    text(p2, (100, 40, 350, 70), "Figure 2. Fracture surface of the fatigue bar.")
    text(p2, (50, 90, 400, 200), FILLER + " " + FILLER)
    doc.set_metadata({"producer": "Microsoft® Word for Microsoft 365"})
    doc.save(path)


def test_word_export_captions_balloons_and_broken_references(tmp_path):
    rec, _, _ = mine_one(tmp_path, word_manuscript)
    by_num = {f.number: f for f in rec.figures}
    assert set(by_num) == {"1", "2"}
    assert by_num["1"].page == 1 and by_num["1"].bbox[1] == 210  # the caption 90 pt below still found it
    assert by_num["2"].page == 1 and by_num["2"].bbox[1] == 650  # its caption is at the top of page 2
    texts = [e.text for e in rec.excerpts]
    assert texts and not any("Error!" in t or "Commented" in t or "scale bar" in t for t in texts)
    (fig1,) = [e for e in rec.excerpts if e.figure_number == "1"]  # the balloon's "Fig. 1" made none
    assert "Equiaxed dimples" in fig1.text and "cleavage" not in fig1.text  # the lost figure's sentence is out


# --- 4. scanned articles: a page image with an invisible OCR text layer ------------------------------------

def scanned(build, dpi: int = 150, noise: tuple[tuple[float, float], str] | None = None, white_under: bool = False,
            text_layer: bool = True):
    """Turn a PDF builder into one that writes the same pages as scans: each page rendered to one image and
    its text put back invisibly (render mode 3) where it was, as an OCR engine leaves it. ``noise``: a line
    of OCR garbage (origin, text) also put on the first page, as OCR reads into halftone pictures.
    ``white_under``: the text instead in white under the image (older "searchable image" PDFs).
    ``text_layer=False``: the page image alone (a photocopier scan; tests/test_mine_ocr.py)."""
    def build_scan(path: Path) -> None:
        build(path.with_suffix(".orig.pdf"))
        src = pymupdf.open(path.with_suffix(".orig.pdf"))
        out = pymupdf.open()
        for page in src:
            new = out.new_page(width=page.rect.width, height=page.rect.height)
            if not white_under:
                new.insert_image(new.rect, stream=page.get_pixmap(dpi=dpi).tobytes("jpeg"))
            for block in page.get_text("dict")["blocks"] if text_layer else []:
                for line in block.get("lines", []):
                    for span in line["spans"]:
                        new.insert_text(span["origin"], span["text"], fontsize=span["size"],
                                        render_mode=0 if white_under else 3, color=(1, 1, 1))
            if white_under:
                new.insert_image(new.rect, stream=page.get_pixmap(dpi=dpi).tobytes("jpeg"))
            if noise and page.number == 0:
                new.insert_text(noise[0], noise[1], fontsize=11, render_mode=3)
        out.save(path)
        path.with_suffix(".orig.pdf").unlink()
    return build_scan


@pytest.mark.parametrize("white_under", [False, True], ids=["invisible_text", "white_text_under_the_image"])
def test_figures_are_cut_from_a_scanned_page_at_their_boxes_with_their_captions(tmp_path, white_under):
    rec, paths, _ = mine_one(tmp_path, scanned(thesis_chapter, white_under=white_under))
    assert rec.skipped == []  # the page image itself is no figure
    by_num = {f.number: f for f in rec.figures}
    assert set(by_num) == {"7.5", "7.6"}
    grid_box, single_box = by_num["7.5"].bbox, by_num["7.6"].bbox
    # where the generator put them: the two-panel grid (100, 180)-(500, 330), the micrograph (150, 490)-(450, 690)
    assert all(abs(a - b) <= 3 for a, b in zip(grid_box, (100, 180, 500, 330))), grid_box
    assert all(abs(a - b) <= 3 for a, b in zip(single_box, (150, 490, 450, 690))), single_box
    assert by_num["7.5"].caption.startswith("Figure 7.5. SEM fractographs")
    assert by_num["7.6"].caption == "Figure 7.6: Fatigue striations near the weld toe."
    fig = by_num["7.6"]
    (part,) = fig.parts
    assert fig.kind == "raster" and part.origin == "rendered"
    with Image.open(paths.abs(part.image)) as im:  # the scan's pixels of the micrograph, not of the text
        assert abs(im.width / im.height - 300 / 200) < 0.05
    assert [letter for letter, _ in by_num["7.5"].panel_letters] == ["a", "b"]  # OCR'd labels in the figure
    assert {(e.figure_number, tuple(e.panels)) for e in rec.excerpts} == {("7.5", ("a",)), ("7.5", ("b",)),
                                                                          ("7.6", ())}


def test_a_picture_behind_visible_text_is_not_a_scan(tmp_path):
    def slide(path: Path) -> None:
        doc = pymupdf.open()
        p = doc.new_page(width=A4[0], height=A4[1])
        p.insert_image(p.rect, stream=jpeg_bytes(texture(600, 840, 90)))
        text(p, (60, 60, 540, 200), FILLER)
        doc.save(path)

    rec, _, _ = mine_one(tmp_path, slide)
    (fig,) = rec.figures  # the embedded picture, whole, as before
    assert fig.kind == "raster" and [p.origin for p in fig.parts] == ["embedded"] and fig.bbox[3] - fig.bbox[1] > 800


def test_ocr_garbage_read_over_a_scanned_picture_does_not_cut_it(tmp_path):
    garbage = ((146, 590), "~~ ;:,. lIl1 ''' ,, ~~ ;:,. lIl1 ~~ ;:,. " * 3)  # across the whole micrograph
    rec, _, _ = mine_one(tmp_path, scanned(thesis_chapter, noise=garbage))
    by_num = {f.number: f for f in rec.figures}
    assert all(abs(a - b) <= 3 for a, b in zip(by_num["7.6"].bbox, (150, 490, 450, 690))), by_num["7.6"].bbox
    # and already as one region of the page image (the line is too dense to be text, so it is not blanked)
    with pymupdf.open(tmp_path / "papers" / "p.pdf") as doc:
        blocks = page_blocks(doc[0].get_text("dict", flags=TEXT_FLAGS))
        caption_blocks = {i for c in find_captions(blocks) for i in c.blocks}
        regions = scan_regions(doc[0], blocks, caption_blocks)
    assert len([r for r in regions if r[1] > 450]) == 1, regions


def word_table_pair(path: Path) -> None:
    """Two figures in one table row a few points apart, each with its caption on the same baseline: MuPDF
    reads both captions as one block, and the images cluster as one."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (60, 50, 540, 150), FILLER + " " + FILLER)
    p.insert_image(pymupdf.Rect(80, 200, 290, 360), stream=jpeg_bytes(texture(420, 320, 80)))
    p.insert_image(pymupdf.Rect(298, 200, 508, 360), stream=jpeg_bytes(texture(420, 320, 81)))
    p.insert_text((90, 375), "Figure 2: Dimples in the overload zone", fontsize=9)
    p.insert_text((308, 375), "Figure 3: Striations near the origin", fontsize=9)
    # the same as vector plots: one drawing region over both captions
    for x0 in (80, 298):
        p.draw_rect(pymupdf.Rect(x0, 450, x0 + 205, 600), color=(0, 0, 0), width=0.8)
        p.draw_polyline([pymupdf.Point(x0 + 10 * i, 590 - 12 * i ** 0.9) for i in range(20)], color=(1, 0, 0))
    p.draw_line(pymupdf.Point(285, 520), pymupdf.Point(298, 520))  # a drawn link between the two plots
    p.insert_text((90, 615), "Figure 4: Crack growth rate of the weld", fontsize=9)
    p.insert_text((308, 615), "Figure 5: Crack growth rate of the base", fontsize=9)
    text(p, (60, 650, 540, 750), FILLER + " " + FILLER)
    doc.save(path)


def test_two_captions_side_by_side_make_two_figures(tmp_path):
    rec, _, _ = mine_one(tmp_path, word_table_pair)
    got = {f.number: f for f in rec.figures}
    assert set(got) == {"2", "3", "4", "5"}
    assert got["2"].caption == "Figure 2: Dimples in the overload zone"
    assert got["3"].caption == "Figure 3: Striations near the origin"
    assert (got["2"].bbox[0], got["2"].bbox[2], got["3"].bbox[0], got["3"].bbox[2]) == (80, 290, 298, 508)
    assert got["4"].kind == got["5"].kind == "vector"
    # cut between the two captions (x ~ 285), each grown by the text at its edge, as vector figures are
    assert got["4"].bbox[0] < 100 and got["4"].bbox[2] < 310 and 260 < got["5"].bbox[0] and got["5"].bbox[2] > 500


def book_side_captions(path: Path) -> None:
    """A book page: the caption in a narrow column beside the plot, top-aligned, inside the figure's frame."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (60, 50, 540, 150), "As shown in Fig. 6.3, the off-axis strength falls with the number of cycles. "
         + FILLER)
    p.draw_rect(pymupdf.Rect(60, 180, 500, 400), color=(0.6, 0.6, 0.6), width=0.5)  # the figure's frame
    text(p, (64, 184, 170, 240), "Fig. 6.3 Experimental results for the 10, 20 and 30 degree off-axis specimens")
    p.draw_rect(pymupdf.Rect(200, 200, 480, 370), color=(0, 0, 0), width=0.8)
    p.draw_polyline([pymupdf.Point(200 + 14 * i, 210 + 7 * i) for i in range(20)], color=(1, 0, 0))
    text(p, (60, 420, 540, 520), FILLER + " " + FILLER)
    doc.save(path)


def test_a_side_caption_inside_the_figure_frame_is_its_caption(tmp_path):
    rec, _, _ = mine_one(tmp_path, book_side_captions)
    (fig,) = rec.figures
    assert fig.number == "6.3" and fig.kind == "vector"
    assert fig.bbox[0] > 150 and fig.bbox[2] >= 480  # the plot beside the caption column (64-165), not the caption


def test_a_scanned_report_without_captions_keeps_its_pictures(tmp_path):
    def report(path: Path) -> None:
        doc = pymupdf.open()
        p = doc.new_page(width=A4[0], height=A4[1])
        text(p, (60, 50, 540, 150), FILLER + " " + FILLER)
        p.insert_image(pymupdf.Rect(150, 200, 450, 400), stream=jpeg_bytes(texture(600, 400, 95)))
        text(p, (60, 450, 540, 550), FILLER + " " + FILLER)
        doc.save(path)

    rec, _, _ = mine_one(tmp_path, scanned(report))
    (fig,) = rec.figures  # the picture, not the page: cut from the scan although nothing captions it
    assert fig.caption == "" and all(abs(a - b) <= 3 for a, b in zip(fig.bbox, (150, 200, 450, 400))), fig.bbox
    assert fig.context.startswith("The specimens were machined")  # the text next to it, as for a report


def test_ligatures_are_read_as_their_letters():
    """Runs everywhere: the font with the "fi" ligature glyph (U+FB01) is matplotlib's DejaVu Sans, shipped with
    that dependency (pyproject.toml). Before, the system's DejaVu was used and the test skipped where it was
    not installed (a check that could silently not run in CI)."""
    import matplotlib

    ligature_font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_font(fontname="F0", fontfile=str(ligature_font))
    page.insert_text((50, 100), "Fig. 3. \ufb01bre pull-out and a \ufb01sh-eye", fontname="F0")
    page = pymupdf.open("pdf", doc.tobytes())[0]
    got = " ".join(b.text for b in page_blocks(page.get_text("dict", flags=TEXT_FLAGS)))
    assert "fibre pull-out and a fish-eye" in got
