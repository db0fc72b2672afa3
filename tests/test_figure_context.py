"""The text an uncaptioned figure is read with (pdf.figures.figure_context), on pages PyMuPDF writes and reads."""

from __future__ import annotations

import pymupdf

from dataset_builders.pdf.figures import figure_context
from dataset_builders.pdf.text import TEXT_FLAGS, page_blocks

IMAGE = (380.0, 150.0, 580.0, 300.0)  # where the (uncaptioned) picture sits on the slide


def _slide_blocks(below: str, below_rect: tuple[float, float, float, float], title_size: float = 24):
    """A landscape slide: a title, the picture's place, and one text block right under it."""
    doc = pymupdf.open()
    page = doc.new_page(width=720, height=540)
    page.insert_textbox(pymupdf.Rect(37, 10, 700, 100), "Ductile Fracture Mechanism", fontsize=title_size)
    page.insert_textbox(pymupdf.Rect(380, 110, 600, 140), "Void nucleation", fontsize=12)
    page.insert_textbox(pymupdf.Rect(*below_rect), below, fontsize=10)
    page.insert_textbox(pymupdf.Rect(40, 470, 300, 500), "Weck and Wilkinson, 2008", fontsize=10)
    blocks = page_blocks(page.get_text("dict", flags=TEXT_FLAGS))
    doc.close()
    return blocks


CREDIT = ("Fracture surface of tire cord wire loaded in tension. Courtesy of F. Roehrig, CC Technologies, "
          "Dublin, OH. Used with permission.")


def test_a_short_block_under_the_image_and_no_wider_is_its_label():
    blocks = _slide_blocks(CREDIT, (IMAGE[0] + 1, IMAGE[3] + 5, IMAGE[2] - 5, IMAGE[3] + 90))
    under = [b for b in blocks if "tire cord" in b.text]
    assert under and under[0].is_paragraph  # several lines, over 100 characters: a paragraph by shape
    text, _ = figure_context(blocks, IMAGE, set(), [])
    assert "Fracture surface of tire cord wire" in text


def test_body_text_below_wider_than_the_image_is_not_its_label():
    body = ("The specimens were then loaded in tension until they broke, and the load was recorded at a rate of "
            "ten samples per second over the whole test.")
    blocks = _slide_blocks(body, (40, IMAGE[3] + 5, 700, IMAGE[3] + 90))  # spans the page, not the picture
    text, _ = figure_context(blocks, IMAGE, set(), [])
    assert "loaded in tension" not in text


def test_a_heading_above_the_image_closes_its_context():
    """A slide title (set larger than the page's text) starts a new topic: the figure under it does not continue
    the previous slide's text (open_top False), while under small labels only it may (open_top True)."""
    below = (IMAGE[0] + 1, IMAGE[3] + 5, IMAGE[2] - 5, IMAGE[3] + 90)
    text, open_top = figure_context(_slide_blocks(CREDIT, below, title_size=36), IMAGE, set(), [])
    assert text.startswith("Ductile Fracture Mechanism Void nucleation") and not open_top
    text, open_top = figure_context(_slide_blocks(CREDIT, below, title_size=12), IMAGE, set(), [])
    assert "Void nucleation" in text and open_top


def test_sub_captions_under_panels_give_them_their_letters():
    """"(a) Original SEM image" printed under each of three side-by-side images letters them; a sentence starting
    with a letter in parentheses elsewhere, or a long one, does not."""
    from dataset_builders.pdf.figures import panel_letters

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    boxes = [(72.0, 72.0, 216.0, 216.0), (225.0, 72.0, 370.0, 216.0), (379.0, 72.0, 523.0, 216.0)]
    for x0, text in ((96, "(a) Original SEM image"), (243, "(b) Binary mask generation"), (398, "(c) Segmented inner shape")):
        page.insert_text((x0, 232), text, fontsize=9)
    page.insert_text((72, 400), "(d) the specimens were then polished and etched before the hardness test.", fontsize=9)
    blocks = page_blocks(page.get_text("dict", flags=TEXT_FLAGS))
    doc.close()
    figure = (72.0, 72.0, 523.0, 216.0)
    letters = panel_letters(blocks, [], figure)
    assert [letter for letter, _ in letters] == ["a", "b", "c"]
    for (_, box), part in zip(letters, boxes):  # each letter sits under its own image
        assert part[0] <= (box[0] + box[2]) / 2 <= part[2]


def _two_picture_slide() -> list:
    """A slide with two micrographs set diagonally, each explained by the text beside it (none above it): the
    left text for the top-right picture, the right text for the bottom-left one."""
    doc = pymupdf.open()
    page = doc.new_page(width=720, height=540)
    page.insert_textbox(pymupdf.Rect(18, 25, 396, 140), "Intergranular fracture: crack propagation is along grain "
                        "boundaries weakened by impurity segregation.", fontsize=16)
    page.insert_textbox(pymupdf.Rect(430, 340, 713, 500), "Transgranular fracture: cracks pass through the grains; "
                        "the surface shows cleavage facets.", fontsize=16)
    blocks = page_blocks(page.get_text("dict", flags=TEXT_FLAGS))
    doc.close()
    return blocks


TOP_RIGHT, BOTTOM_LEFT = (414.0, 0.0, 718.0, 270.0), (0.0, 300.0, 413.0, 538.0)


def test_text_beside_a_picture_is_its_label_and_never_its_neighbours():
    blocks = _two_picture_slide()
    text, open_top = figure_context(blocks, TOP_RIGHT, set(), [BOTTOM_LEFT])
    assert text.startswith("Intergranular fracture") and "Transgranular" not in text and not open_top
    text, open_top = figure_context(blocks, BOTTOM_LEFT, set(), [TOP_RIGHT])
    # the intergranular text stands above this picture in its column, but beside the other one: not its text
    assert text.startswith("Transgranular fracture") and "Intergranular" not in text and not open_top
    # set as close under the other picture as beside this one, the text could be either's: it is neither's
    near = (TOP_RIGHT[0], TOP_RIGHT[1], TOP_RIGHT[2], 320.0)
    assert figure_context(blocks, BOTTOM_LEFT, set(), [near])[0] == ""


def test_a_formula_beside_a_chart_is_no_label():
    doc = pymupdf.open()
    page = doc.new_page(width=720, height=540)
    page.insert_textbox(pymupdf.Rect(40, 30, 700, 100), "True Stress-Strain Curve", fontsize=28)
    page.insert_textbox(pymupdf.Rect(600, 200, 700, 230), "1+ε", fontsize=14)
    blocks = page_blocks(page.get_text("dict", flags=TEXT_FLAGS))
    doc.close()
    text, _ = figure_context(blocks, (200.0, 120.0, 580.0, 480.0), set(), [])
    assert text == "True Stress-Strain Curve"


def test_a_letter_far_past_the_panel_run_is_a_symbol_not_a_panel():
    """Panels a, b, c and an "H" (hydrogen) printed inside one of them: the H is no panel h."""
    from dataset_builders.pdf.figures import panel_letters

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    for x0, y0, t in ((60, 70, "a"), (300, 70, "b"), (60, 200, "c"), (150, 110, "H")):
        page.insert_text((x0, y0), t, fontsize=9)
    blocks = page_blocks(page.get_text("dict", flags=TEXT_FLAGS))
    doc.close()
    assert [letter for letter, _ in panel_letters(blocks, [], (50.0, 60.0, 500.0, 300.0))] == ["a", "b", "c"]
