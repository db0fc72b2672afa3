"""Panel names a caption gives besides "(a)" (panel_names) and gutter grids past frames and edge strips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dataset_builders.panel_grid import find_grid
from dataset_builders.panel_names import (
    bare_letter_panels,
    fill_missed_letters,
    named_panels,
    position_cells,
    position_panels,
    roman_panels,
)
from dataset_builders.panels import caption_parts


@pytest.mark.parametrize("caption,common,parts", [
    ("Fig. 2 | Device performance. a Schematic of the cell. b Power density as a function of current.",
     "Device performance", {"a": "Schematic of the cell", "b": "Power density as a function of current"}),
    ("Fig. 2 | Fracture. a, Overview. b, Dimples. c, Cleavage facets.",
     "Fracture", {"a": "Overview", "b": "Dimples", "c": "Cleavage facets"}),
    ("Fig. 3 Fracture. a\u2014Overview. b: Dimples. c. Striations", "Fracture",
     {"a": "Overview", "b": "Dimples", "c": "Striations"}),
    ("Fig. 3 Fracture. a, b Overviews of the two joints. c Striations.", "Fracture",
     {"a": "Overviews of the two joints", "b": "Overviews of the two joints", "c": "Striations"}),
    ("Fig. 3 Fracture. a: dimples, b: cleavage, c: striations.", "Fracture",  # a label's colon: any case after
     {"a": "dimples", "b": "cleavage", "c": "striations"}),
])
def test_bare_letters_at_sentence_starts(caption, common, parts):
    assert bare_letter_panels(caption) == (common, parts)


@pytest.mark.parametrize("caption", [
    "Fig. 5 Steel after a heat treatment. A fine microstructure is seen.",  # capital "A": an article
    "Fig. 5 Steel of grade b. The fracture surface.",  # a lone letter, not a run from a
    "Fig. 5 Fracture surface. b Dimples. c Cleavage.",  # the run does not start at a
    "Fig. 5 Crack growth rate against K for an a: b ratio of 2.",  # a ratio, not labels
])
def test_bare_letters_refused_without_a_run_from_a(caption):
    assert bare_letter_panels(caption) is None


def test_bold_letters_are_markers_anywhere_and_only_in_their_run():
    caption = "Fig. 2 Device. a schematic of the cell; b power density as in b of ref. 3; c stability"
    assert bare_letter_panels(caption) is None  # lower-case text: not without the bold hint
    common, parts = bare_letter_panels(caption, ["Fig. 2", "a", "b", "c", "b"])  # the late bold "b": a reference
    assert common == "Device"
    assert parts == {"a": "schematic of the cell", "b": "power density as in b of ref. 3", "c": "stability"}


def test_bold_letters_upper_case_glued_or_after_an_article():
    assert bare_letter_panels("Fig. 2 Device. A schematic; B power", ["A", "B"]) == (
        "Device", {"a": "schematic", "b": "power"})
    assert bare_letter_panels("Fig. 2 | Growth. aSchematic of a cell. bPower density", ["a", "b"]) == (
        "Growth", {"a": "Schematic of a cell", "b": "Power density"})
    assert bare_letter_panels("Fig. 2 | Evolution of a crack. a schematic of it. b power", ["Fig. 2 |", "a", "b"]) == (
        "Evolution of a crack", {"a": "schematic of it", "b": "power"})  # the article "a" is no marker


def test_bold_letters_inside_a_sentence_continue_the_run():
    """Springer/Nature style: "TEM images of c bare BaTiO3 and d TiO2" -- c and d are bold, inside a sentence."""
    caption = ("Figure 1 a Overview of the synthesis. b Illustration of the film. TEM images of c bare BaTiO3 and "
               "d TiO2 nanoparticles. e Representative TEM of the film")
    bold = ["Figure 1", "a", "b", "of", "c", "3", "and", "d", "TiO", "2", "e"]
    _, parts = bare_letter_panels(caption, bold)
    assert sorted(parts) == ["a", "b", "c", "d", "e"]
    assert parts["c"] == "bare BaTiO3" and parts["d"] == "TiO2 nanoparticles"
    assert sorted(bare_letter_panels(caption)[1]) == ["a", "b"]  # not without the bold hint
    # the article "a" inside a sentence is never taken, bold or not
    assert bare_letter_panels("Fig. 1 | Cells. b power of a cell; c stability", ["b", "c"]) is None


def test_a_letter_missed_inside_a_run_is_cut_out_of_its_neighbour():
    assert caption_parts("Fig. 6. Fracture: (a) dimples; (b) cleavage facets; c\u2014striations; (d) a pore.") == (
        "Fracture", {"a": "dimples", "b": "cleavage facets", "c": "striations", "d": "a pore"})
    assert fill_missed_letters({"a": "x", "b": "a zone, c. 5 um wide", "d": "y"})["b"] == "a zone, c. 5 um wide"
    assert "c" not in fill_missed_letters({"a": "x", "b": "facets and c striations", "d": "y"})
    assert caption_parts("Fig. 3 Fracture surfaces. (a,b) Overviews; (c)\u2013(e) details.")[1] == {
        "a": "Overviews", "b": "Overviews", "c": "details", "d": "details", "e": "details"}  # a range of markers


def test_roman_numerals_and_position_words():
    assert roman_panels("Figure 4. Fracture surfaces of (i) uncharged and (ii) H-charged specimens.") == (
        "Fracture surfaces of", {"i": "uncharged", "ii": "H-charged specimens"})
    assert roman_panels("Figure 4. Stress (ii) only.") is None
    assert position_panels("Fig. 5. Fractographs. Left: as-built, with pores; right: HIPed.") == (
        "Fractographs", {"left": "as-built, with pores", "right": "HIPed"})
    assert position_panels("Fig. 5. SEM of the as-built (upper) and HIPed (lower) samples.")[1] == {
        "top": "SEM of the as-built", "bottom": "HIPed"}
    assert named_panels("Fig. 1. (a) dimples; (b) cleavage.") is None  # letters in brackets: captions.py's job
    assert caption_parts("Figure 4. Fracture surfaces of uncharged (left) and H-charged (right) specimens.")[1] == {
        "left": "Fracture surfaces of uncharged", "right": "H-charged"}


def test_position_cells_follow_geometry_not_order():
    row = [(300, 0, 500, 200), (0, 0, 200, 200)]
    assert position_cells(["left", "right"], row) == {"left": 1, "right": 0}
    column = [(0, 220, 200, 400), (0, 0, 200, 200)]
    assert position_cells(["top", "bottom"], column) == {"top": 1, "bottom": 0}
    assert position_cells(["left", "right"], column) is None  # stacked cells are not left and right
    grid = [(0, 0, 100, 100), (110, 0, 210, 100), (0, 110, 100, 210), (110, 110, 210, 210)]
    assert position_cells(["top left", "top right", "bottom left", "bottom right"], grid) == {
        "top left": 0, "top right": 1, "bottom left": 2, "bottom right": 3}


def _noise(h: int, w: int, seed: int, level: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 35, (h, w)), 20, 225).astype(np.uint8)


def test_dark_background_gutters_are_found_on_the_negative():
    """Two photos on black, cropped tight on the right (a frame on three sides only)."""
    fig = np.zeros((240, 600), np.uint8)
    fig[6:234, 6:290] = _noise(228, 284, 1)
    fig[6:234, 302:600] = _noise(228, 298, 2)
    cells = find_grid(Image.fromarray(fig)).cells
    assert len(cells) == 2
    assert cells[0][2] <= 292 and cells[1][0] >= 300
    white = np.full((240, 600), 255, np.uint8)  # the same on white is found as before
    white[6:234, 6:290], white[6:234, 302:594] = fig[6:234, 6:290], fig[6:234, 302:594]
    assert len(find_grid(Image.fromarray(white)).cells) == 2


def test_a_dark_strip_along_one_edge_does_not_hide_the_gutters():
    """Three plots stacked on white with a black bar down the left edge (it crosses every row gutter)."""
    fig = np.full((620, 500), 255, np.uint8)
    fig[:, :20] = 0
    for i in range(3):
        fig[20 + i * 200:190 + i * 200, 40:480] = _noise(170, 440, i, level=200)
    cells = find_grid(Image.fromarray(fig)).cells
    assert len(cells) == 3 and all(c[0] >= 20 for c in cells)
    one = np.zeros((300, 400), np.uint8)  # a dark micrograph alone: one cell
    one[10:290, 10:390] = _noise(280, 380, 7, level=90)
    assert len(find_grid(Image.fromarray(one)).cells) == 1


@pytest.mark.parametrize("caption, letters", [
    ("Figure 7 The damage zone at different loading times, a to f. (See text.)", "abcdef"),
    ("Fig. 8. Optical micrograph of fibrils after various times a to d.", "abcd"),
    ("Fig. 3. Crack front at stages a through c", "abc"),
    ("Fig. 2. Transition from a to b in the phase diagram.", ""),  # two letters: a phrase, not a panel list
    ("Fig. 4. Panels a to c show dimples; (d) cleavage.", ""),  # a bracketed letter the parsers left: unsure
    ("Fig. 5. Data for type A to F specimens.", ""),  # capitals: specimen types
    ("Fig. 6. Path a to c and path a to d.", ""),  # two ranges: not one panel list
    ("Fig. 5. Crack path from a to e across the weld (see Fig. 3).", ""),  # prose, not a panel list
    ("Fig. 5. The crack grew from a to c in 200 cycles.", ""),
    ("Fig. 5. Fracture surface along the load path a through d.", ""),
    ("Fig. 5. Specimen; dimensions a to f are given in Table 1.", ""),
    ("Fig. 5. Intensity profile; the x-axis runs from a to z.", ""),
    ("Fig. 5. The sequence was a to d.", ""),
    ("Fig. 5. SEM image showing regions a to c.", ""),  # places, not a series (review)
    ("Fig. 5. Hardness along paths a through d.", ""),
    ("Fig. 5. EDS spectra of points a to e, see Table 2.", ""),
    ("Fig. 5. Indents at positions a to f.", ""),
])
def test_a_range_of_bare_letters_names_the_panels(caption, letters):
    common, parts = caption_parts(caption)
    assert "".join(sorted(parts)) == letters
    if letters:  # no panel has text of its own: each gets the whole caption as the common part
        assert set(parts.values()) == {""} and common.startswith(caption.split(" ", 2)[2][:10])
