"""Caption starts, panel captions, figure citations and excerpt windows (pure text)."""

from __future__ import annotations

import pytest

from dataset_builders.pdf.captions import (
    Citation,
    cite_excerpts,
    excerpt_window,
    expand_letters,
    find_citations,
    parse_caption_start,
    sentence_bounds,
    split_panel_captions,
)


@pytest.mark.parametrize("text, expected", [
    ("Fig. 3 SEM fractograph.", ("3", "SEM fractograph.")),
    ("Figure 3. Dimples in the overload zone.", ("3", "Dimples in the overload zone.")),
    ("FIG. 3. Cleavage.", ("3", "Cleavage.")),
    ("Fig. 3: Striations", ("3", "Striations")),
    ("Fig.3: Striations", ("3", "Striations")),
    ("Fig. 3 (a) dimples; (b) cleavage", ("3", "(a) dimples; (b) cleavage")),
    ("Figure 3 – Fine granular area", ("3", "Fine granular area")),
    ("Figure 12 | Beach marks", ("12", "Beach marks")),
    ("Figure 3", ("3", "")),
    # labels of other languages a thesis or lecture note may be written in
    ("Abb. 3.2: Bruchfläche der Probe", ("3.2", "Bruchfläche der Probe")),
    ("Abbildung 4 REM-Aufnahme der Bruchfläche", ("4", "REM-Aufnahme der Bruchfläche")),
    ("Bild 5: Schwingstreifen", ("5", "Schwingstreifen")),
    ("Figura 3. Superficie de fractura", ("3", "Superficie de fractura")),
    ("Figur 2: Brudflade", ("2", "Brudflade")),
    # a caption may open with a micro sign, written as U+00B5 or as Greek mu U+03BC (a lower-case letter, no verb)
    ("Fig. 5 \u00b5-CT of the as-built lattice", ("5", "\u00b5-CT of the as-built lattice")),
    ("Figure 2 \u03bcCT slice through the pore", ("2", "\u03bcCT slice through the pore")),
])
def test_caption_starts(text, expected):
    assert parse_caption_start(text) == expected


@pytest.mark.parametrize("text", [
    "Fig. 3 shows the fracture surface.",
    "Bild 3 zeigt die Probe.",
    "Fig. 3a shows dimples.",
    "Fig. 3(a) shows dimples.",
    "Fig. 3 (b) reveals cleavage.",
    "Figs. 3 and 4 show the fatigue zone.",
    "Fig. 3 and 4 compare the tempers.",
    "Fig. 3, which was taken at 500x, ...",
    "Fig. 3.5 is a close-up.",
    "Figure 3 presents the results.",
    "In Fig. 3 the dimples are shallow.",
    "The fracture surface (Fig. 3).",
])
def test_body_sentences_are_not_caption_starts(text):
    assert parse_caption_start(text) is None


def test_split_panel_captions_brief_example():
    caption = ("Fig. 2. SEM fractographs of AA7075: (a) equiaxed dimples; (b) river patterns on cleavage facets.")
    assert split_panel_captions(caption) == (
        "SEM fractographs of AA7075", {"a": "equiaxed dimples", "b": "river patterns on cleavage facets"})


@pytest.mark.parametrize("caption, common, panels", [
    ("Fractographs: a) dimples, b) cleavage and c) striations.", "Fractographs",
     {"a": "dimples", "b": "cleavage", "c": "striations"}),
    ("SEM images (a,b) dimples at low and high magnification; (c) cleavage.", "SEM images",
     {"a": "dimples at low and high magnification", "b": "dimples at low and high magnification", "c": "cleavage"}),
    ("Overview: (a and b) dimples; (c–e) intergranular facets.", "Overview",
     {"a": "dimples", "b": "dimples", "c": "intergranular facets", "d": "intergranular facets",
      "e": "intergranular facets"}),
    ("Overview: (a-c) dimples; (d) facets.", "Overview",
     {"a": "dimples", "b": "dimples", "c": "dimples", "d": "facets"}),
    ("Fig. 4 (A) Fish-eye. (B) FGA around the inclusion.", "", {"a": "Fish-eye", "b": "FGA around the inclusion"}),
    ("(a) and (b) tear ridges; (c) quasi-cleavage", "", {"a": "tear ridges", "b": "tear ridges", "c": "quasi-cleavage"}),
    ("Fractographs: dimples (a) and cleavage facets (b).", "Fractographs",
     {"a": "dimples", "b": "cleavage facets"}),
    ("Fig. 5. Fracture surface of specimen 3 (no panels).", "Fracture surface of specimen 3 (no panels)", {}),
    ("Fig. 6. Ti-6Al-4V specimen (i) overview", "Ti-6Al-4V specimen (i) overview", {}),  # no "a": not panels
])
def test_split_panel_captions_variants(caption, common, panels):
    assert split_panel_captions(caption) == (common, panels)


@pytest.mark.parametrize("listing, letters", [
    ("a", ["a"]), ("a,b", ["a", "b"]), ("a, b and d", ["a", "b", "d"]), ("a–c", ["a", "b", "c"]),
    ("a-c", ["a", "b", "c"]), ("A to C", ["a", "b", "c"]), ("b, a", ["b", "a"]),
])
def test_expand_letters(listing, letters):
    assert expand_letters(listing) == letters


@pytest.mark.parametrize("text, expected", [
    ("as seen in Fig. 2b.", [("2", ["b"])]),
    ("as seen in Fig. 2(b).", [("2", ["b"])]),
    ("Figs. 2a and 2c show", [("2", ["a", "c"])]),
    ("Figure 3 shows", [("3", [])]),
    ("see Fig. 4a–c for", [("4", ["a", "b", "c"])]),
    ("see Fig. 4a-c for", [("4", ["a", "b", "c"])]),
    ("Figs. 3 and 4 compare", [("3", []), ("4", [])]),
    ("Fig. 5a,b shows", [("5", ["a", "b"])]),
    ("Fig. 5a, b and d show", [("5", ["a", "b", "d"])]),
    ("Figs. 3–5 summarise", [("3", []), ("4", []), ("5", [])]),
    ("Fig. 2(a) and (c) show", [("2", ["a", "c"])]),
    ("Fig. 2(a,b) show", [("2", ["a", "b"])]),
    ("Fig. 2A shows", [("2", ["a"])]),
    ("in Fig. 2a and a crack", [("2", ["a"])]),
    ("FIG. 7 shows; fig. 8 too", [("7", []), ("8", [])]),
    ("the figure shows no number; configuration 3", []),
    # a panel range written with the figure number repeated: panels, not a range of figures
    ("Figure 4a–4c show", [("4", ["a", "b", "c"])]),
    ("Fig. 4a through 4c and 5b", [("4", ["a", "b", "c"]), ("5", ["b"])]),
    ("Figs. 4a-4c, 4e show", [("4", ["a", "b", "c", "e"])]),
    ("Figs. 3 through 5 summarise", [("3", []), ("4", []), ("5", [])]),
    ("Fig. 2a–3 is no range", [("2", ["a"])]),
    # citations in other languages
    ("Die Abb. 3b zeigt Waben", [("3", ["b"])]),
    ("wie in Abbildung 4a-c zu sehen", [("4", ["a", "b", "c"])]),
    ("la Figura 3b muestra hoyuelos", [("3", ["b"])]),
    ("building 3 was tested", []),
])
def test_find_citations(text, expected):
    assert [(c.figure_number, c.panels) for c in find_citations(text)] == expected


def test_citation_spans_cover_the_mention():
    text = "Dimples dominate (Figs. 2a and 2c), while Fig. 3 shows striations."
    c1, c2 = find_citations(text)
    assert text[c1.start:c1.end] == "Figs. 2a and 2c"
    assert text[c2.start:c2.end] == "Fig. 3"
    assert c2 == Citation("3", [], text.index("Fig. 3"), text.index("Fig. 3") + 6)


def test_sentence_bounds_skip_abbreviations():
    text = "See Fig. 2 for dimples, e.g. near the origin. Smith et al. 2020 saw it too. Done."
    sentences = [text[s:e] for s, e in sentence_bounds(text)]
    assert sentences == ["See Fig. 2 for dimples, e.g. near the origin.", "Smith et al. 2020 saw it too.", "Done."]


def test_excerpts_are_sentence_aligned_and_bounded():
    filler = " ".join(f"Sentence number {i} is filler text about the specimen." for i in range(20))
    text = f"{filler} As shown in Fig. 2b, equiaxed dimples cover the overload zone. {filler}"
    ((cit, excerpt),) = cite_excerpts(text, 200)
    assert (cit.figure_number, cit.panels) == ("2", ["b"])
    assert len(excerpt) <= 200
    assert "As shown in Fig. 2b, equiaxed dimples cover the overload zone." in excerpt
    assert excerpt.startswith("Sentence number") and excerpt.endswith("specimen.")  # whole sentences only
    assert len(excerpt) > 150  # neighbours were added while they fit


def test_excerpt_of_an_overlong_sentence_is_cut_on_words_around_the_citation():
    words = " ".join(f"w{i}" for i in range(300))
    text = f"{words} see Fig. 7 here {words}"
    start = text.index("Fig. 7")
    excerpt = excerpt_window(text, start, start + 6, 120)
    assert len(excerpt) <= 120 and "Fig. 7" in excerpt
    assert excerpt.startswith("…") and excerpt.endswith("…")
    assert all(tok.startswith("w") or tok in ("see", "Fig.", "7", "here") for tok in excerpt.strip("…").split())


def test_duplicate_excerpts_are_dropped():
    text = "Fig. 2 shows dimples and Fig. 2 shows them again."
    assert len(cite_excerpts(text, 400)) == 1


def test_postfix_modifier_belongs_to_the_panel_before_it():
    """'rock candy (c) without striations and gas porosity (d)': the negation qualifies (c), not (d)."""
    common, parts = split_panel_captions(
        "Figure 4. Fracture surfaces showing elongated dimples (a), a LOF defect with unmelted powder (b), "
        "rock candy (c) without striations and gas porosity near the surface (d).")
    assert parts["c"] == "rock candy without striations"
    assert parts["d"] == "gas porosity near the surface"
    assert parts["b"] == "a LOF defect with unmelted powder"


def test_trailing_modifier_after_the_last_postfix_marker():
    common, parts = split_panel_captions(
        "Figure 2. Fracture surfaces showing a lack-of-fusion defect with unmelted powder particles (a) and "
        "shear dimples pointing along the shear direction (b) without dimples.")
    assert parts == {"a": "Fracture surfaces showing a lack-of-fusion defect with unmelted powder particles",
                     "b": "shear dimples pointing along the shear direction without dimples"}
    # prefix markers: a trailing "without …" is simply (b)'s own text
    assert split_panel_captions("Fig. 3. SEM of X: (a) dimples; (b) without striations.")[1] == {
        "a": "dimples", "b": "without striations"}


# --- citation forms and mixed scoping of real papers (issue 11) -----------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("as in Fig. 3b.", [("3", ["b"])]),
    ("see Figs. 3(a)–(c) here", [("3", ["a", "b", "c"])]),
    ("Fig. 3 (left) shows", [("3", [])]),
    ("Figures 3 and 4 show", [("3", []), ("4", [])]),
    ("Figs. 3(a) and (c)", [("3", ["a", "c"])]),
])
def test_citation_forms(text, expected):
    from dataset_builders.pdf.captions import find_citations

    assert [(c.figure_number, c.panels) for c in find_citations(text)] == expected


def test_mixed_letter_scoping():
    from dataset_builders.pdf.captions import split_panel_captions

    common, parts = split_panel_captions(
        "Fig. 2. Fracture surfaces showing a lack-of-fusion pore (a) and gas pores (b, c) near the origin.")
    assert "lack-of-fusion" in parts["a"] and "gas" not in parts["a"]
    assert parts["b"] == parts["c"] == "gas pores" and common == "near the origin"


# --- chapter-numbered and prefixed figure numbers (books, theses, supplements) ---------------------------

@pytest.mark.parametrize("text, expected", [
    ("Fig. 7.5. SEM fractograph of the overload zone", ("7.5", "SEM fractograph of the overload zone")),
    ("Figure 3.12: Cleavage facets", ("3.12", "Cleavage facets")),
    ("Figure 3-2 Fracture surface of specimen B", ("3-2", "Fracture surface of specimen B")),
    ("Figure 3\u20132 Fracture surface", ("3-2", "Fracture surface")),  # en dash: the same number
    ("Fig. S3 Striations near the origin", ("S3", "Striations near the origin")),
    ("Fig. A.1. Overview", ("A.1", "Overview")),
    ("Figure 4.3 (continued)", ("4.3", "(continued)")),
    ("Fig. 2.10 (a) dimples; (b) cleavage", ("2.10", "(a) dimples; (b) cleavage")),
    ("Figure 2\u2003a\u2013c SEM cross-sections of the films", ("2", "a\u2013c SEM cross-sections of the films")),
    ("Figure 1 a Overview of the synthesis; b TEM", ("1", "a Overview of the synthesis; b TEM")),
    # the old refusals kept: a decimal comma is no figure number, a space after the dot ends the number
    ("Fig. 3. 5 mm thick plate after the test", ("3", "5 mm thick plate after the test")),
    ("Figure 3 \u2013 Fine granular area", ("3", "Fine granular area")),
])
def test_chapter_numbered_caption_starts(text, expected):
    assert parse_caption_start(text) == expected


@pytest.mark.parametrize("text", [
    "Fig. 3,5 and 7 compare the tempers.",  # a decimal comma / a list: never one figure "3,5"
    "Fig. 3.5 is a close-up.",  # chapter-numbered, but a body sentence
    "Fig. 7.5b shows the dimples.",
    "Figure 3.12(a) reveals cleavage.",
    "Fig. s3 shows",  # a lower-case letter before the digit is not a prefix
    "Fig. 8.8(a), Callister & Rethwisch 10e.",  # a credit line on a slide: a reference, as "Fig. 8.8, Callister"
    "Fig. 8(a), Callister & Rethwisch 10e.",
    "Fig. 2 a shows the dimples.",  # bare letter then a lower-case verb: a citation
    "Fig. 2 a and b show the dimples.",
    "Figure 2.1 Single walled carbon nanotubes . . . . . . . . . . 11",  # a list of figures, not captions
    "Figure 3.4: Fracture surface of the weld.............. 45 Figure 3.5: Striations........ 46",
    "Figure 1. Overview . . . . . . . . . . xii",
])
def test_chapter_numbered_body_sentences_are_not_caption_starts(text):
    assert parse_caption_start(text) is None


@pytest.mark.parametrize("text, expected", [
    ("the dimples in Fig. 7.5b are shallow", [("7.5", ["b"])]),
    ("Figs. 3.2a\u2013c show", [("3.2", ["a", "b", "c"])]),
    ("Figure 3.12(a) shows", [("3.12", ["a"])]),
    ("Figs. 3.2\u20133.4 compare", [("3.2", []), ("3.3", []), ("3.4", [])]),  # a range inside a chapter
    ("Figs. 3.9\u20134.1 compare", [("3.9", []), ("4.1", [])]),  # across chapters: the two ends only
    ("see Fig. S3b", [("S3", ["b"])]),
    ("see Figs. S1\u2013S3", [("S1", []), ("S2", []), ("S3", [])]),
    ("Fig. A.1 shows", [("A.1", [])]),
    ("Figs. 3,5 and 7", [("3", []), ("5", []), ("7", [])]),  # the comma still separates figures
    ("Figs. 3-5 summarise", [("3", []), ("4", []), ("5", [])]),  # without dash numbering: a range
])
def test_find_chapter_numbered_citations(text, expected):
    assert [(c.figure_number, c.panels) for c in find_citations(text)] == expected


def test_dash_numbered_documents_read_a_dash_as_one_number():
    text = "The surface in Fig. 3-2a is flat; Figs. 3\u20134 and 3-5 compare tempers."
    cited = [(c.figure_number, c.panels) for c in find_citations(text, dash_numbers=True)]
    assert cited == [("3-2", ["a"]), ("3-4", []), ("3-5", [])]
    assert [c.figure_number for c in find_citations(text)][:2] == ["3", "2"]  # else: 3, then 2 (3..2 is no range)


def test_figure_numbers_normalise_sort_and_keep_integers_in_json():
    from dataset_builders.pdf.numbers import normalise_number, number_json, number_key
    from dataset_builders.records import Excerpt, FigureRecord

    assert normalise_number(" 3 \u2013 2 ") == "3-2" and normalise_number("s3") == "S3"
    assert sorted(["10", "3.12", "S3", "2", "3.1", "A.1"], key=number_key) == ["2", "3.1", "3.12", "10", "A.1", "S3"]
    assert (number_json("3"), number_json("7.5"), number_json("03"), number_json(None)) == (3, "7.5", "03", None)
    ex = Excerpt(figure_number="3", text="t", page=1)
    assert ex.model_dump_json() == '{"figure_number":3,"panels":[],"text":"t","page":1}'  # as before the change
    assert Excerpt.model_validate_json(ex.model_dump_json()).figure_number == "3"  # old files load as text
    fig = FigureRecord(figure_id="x", paper_id="p", page=1, bbox=(0, 0, 1, 1), kind="raster", number="7.5", parts=[])
    assert '"number":"7.5"' in fig.model_dump_json()
    assert FigureRecord.model_validate_json(fig.model_dump_json()).number == "7.5"


def test_sentences_with_broken_word_cross_references_are_cut_out():
    from dataset_builders.pdf.word import citable_chunks

    text = ("Fig. 1 shows dimples. The rim in Error! Reference source not found.b shows cleavage. "
            "Fig. 2 shows striations. Die Kante (Fehler! Verweisquelle konnte nicht gefunden werden.) ist spröde.")
    assert citable_chunks(text) == ["Fig. 1 shows dimples.", "Fig. 2 shows striations."]
    assert citable_chunks("Fig. 1 shows dimples. Fig. 2 too.") == ["Fig. 1 shows dimples. Fig. 2 too."]
