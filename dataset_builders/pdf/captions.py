"""Figure captions and figure citations in plain text (no PDF here: the mine stage feeds it strings).

Three jobs, each a pure function so it can be tested on strings alone:

* ``parse_caption_start`` -- does a text block *start* a caption ("Fig. 3.", "FIGURE 3:", "Fig. 3 (a) ...")
  or is it a body sentence that merely begins with a figure reference ("Fig. 3 shows ...")?
* ``split_panel_captions`` -- a caption's common part and each panel's own part, keyed by lower-case
  letter (the panels stage imports this exact function).
* ``find_citations`` / ``cite_excerpts`` -- where body text cites a figure ("Figs. 2a and 2c", "Fig. 4a-c")
  and a bounded, sentence-aligned window of text around each citation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dataset_builders.pdf.numbers import DASHED, DASHES, DOTTED, PREFIX, normalise_number, number_range

# --- shared pieces ---------------------------------------------------------------------------------

_DASH = f"[{DASHES}]"

# One panel list inside a marker: "a", "a,b", "a, b", "a and b", "a-c", "a–c", "a to c", "A & B".
_LETTER_LIST = rf"[A-Za-z](?:\s*(?:,|&|and|to|{_DASH})\s*[A-Za-z])*"
_LIST_SPLIT = re.compile(rf"\s*(,|&|and|to|{_DASH})\s*")


def expand_letters(letter_list: str) -> list[str]:
    """'a,b' -> [a, b]; 'a–c' / 'a to c' -> [a, b, c]; 'A and B' -> [a, b]. Lower case, in order, unique."""
    tokens = _LIST_SPLIT.split(letter_list.strip())
    letters: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i].strip().lower()
        if len(tok) == 1 and tok.isalpha():
            sep = tokens[i - 1].strip() if i >= 2 else ""
            if letters and (sep == "to" or (len(sep) == 1 and sep in DASHES)):
                for code in range(ord(letters[-1]) + 1, ord(tok) + 1):  # a range: fill in the letters between
                    letters.append(chr(code))
            else:
                letters.append(tok)
        i += 2
    seen: set[str] = set()
    return [x for x in letters if not (x in seen or seen.add(x))]


# --- caption start ---------------------------------------------------------------------------------

# The number: "3", "7.5", "3.12", "3-2" / "3–2", "S3", "A.1". What stays refused: a decimal comma ("Fig. 3,5"
# is a list or a decimal, never one figure) -- the lookahead -- and "Fig. 3. 5 mm": a space after the dot
# ends the number (the dot is the label's, "5 mm" is caption text). A dash joins two numbers only when
# nothing separates them ("Figure 3 – Fracture" is a label, a dash and the caption); at a caption start a
# dash cannot be a range (a caption labels one figure), so "Figure 3-2" is always the number "3-2".
# The label in other languages a thesis or lecture note may be written in: German "Abb." / "Abbildung" / "Bild",
# Spanish, Italian, Portuguese "Figura", Scandinavian and Dutch "Figur" (French and English write "Fig."/"Figure").
_LABEL_WORDS = r"fig(?:ure)?|abb(?:ildung)?|bild|figura|figur"
_CAPTION_LABEL = re.compile(
    rf"\s*(?:(?:{_LABEL_WORDS})\.?)\s*(?P<num>(?:{PREFIX})?(?:{DASHED}|{DOTTED}))(?![\d.,{DASHES}]\d)", re.IGNORECASE)
_PANEL_MARKER_AT = re.compile(rf"\s*\(\s*{_LETTER_LIST}\s*\)|\s*[A-Za-z]\)")
# A dot leader and a page number: an entry of a thesis's or book's list of figures ("Figure 2.1 SWNT . . . . 11"),
# not a caption (a caption never holds five dots in a row).
_LEADER = re.compile(r"(?:\.\s?){5,}\s*(?:\d+|[ivxlc]+)\b", re.IGNORECASE)
# Bare panel letters opening a caption, then a capitalised word: "a Overview of ...", "a–c SEM ...", "a, b Optical".
# A body sentence never follows "Fig. 2 a" with a capital ("Fig. 2 a shows" keeps its lower-case verb).
_BARE_PANEL_LEAD = re.compile(rf"[a-h](?:\s*(?:,|and|{_DASH})\s*[a-h])*\s+[A-Z]")
# Verbs and connectives that make "Fig. 3 <word>" / "Fig. 3(a) <word>" a body sentence, not a caption.
_BODY_WORDS = frozenset([
    "shows", "show", "showed", "shown", "presents", "present", "presented", "illustrates", "illustrate",
    "illustrated", "depicts", "depict", "depicted", "displays", "display", "displayed", "reveals", "reveal",
    "revealed", "indicates", "indicate", "indicated", "demonstrates", "demonstrate", "demonstrated",
    "compares", "compare", "compared", "gives", "give", "summarizes", "summarises", "summarize",
    "summarise", "contains", "contain", "confirms", "confirm", "highlights", "highlight", "provides",
    "provide", "plots", "plot", "also", "and", "or", "is", "are", "was", "were", "represents", "represent",
    "describes", "describe", "corresponds", "correspond", "suggests", "suggest", "exhibits", "exhibit",
])


def parse_caption_start(text: str) -> tuple[str, str] | None:
    """(figure number as text, caption text after the label) if ``text`` starts a figure caption, else None.

    Accepted: "Fig. 3. Text", "Figure 3: Text", "FIG. 3 – Text", "Fig. 3 | Text", "Fig. 3 (a) text; (b) ...",
    "Fig. 3 Text" (Springer style: a capital or digit after the number), and a bare "Figure 3" line; the
    number may be chapter-numbered or prefixed ("Fig. 7.5.", "Figure 3-2", "Fig. S3", "Fig. A.1"), see
    ``numbers``. The label may be German, Spanish/Italian/Portuguese or Scandinavian ("Abb. 3.2:", "Abbildung 4",
    "Bild 5:", "Figura 3.", "Figur 2:"). Refused: "Figs. 3 and 4 show", "Fig. 3 shows", "Fig. 3a shows", "Fig. 3(a) shows",
    "Fig. 3.5 is a close-up", "Fig. 3,5", "Fig. 8(a), Callister & Rethwisch" (a credit line), "Figure 2.1
    SWNT . . . . . 11" (a list-of-figures entry).
    Panel markers right after the label are kept in the returned text (they matter to
    ``split_panel_captions``); the punctuation after the number is dropped.
    """
    m = _CAPTION_LABEL.match(text)
    if not m or _LEADER.search(text):
        return None
    number = normalise_number(m.group("num"))
    rest = text[m.end():]
    stripped = rest.lstrip()
    if not stripped:
        return number, ""
    first = stripped[0]
    if first in ".:|" or first in DASHES:
        body = stripped[1:].lstrip(" .:|" + DASHES)
        return number, body.strip()
    marker = _PANEL_MARKER_AT.match(rest)
    if marker:
        if re.match(r"\s*,\s*[A-Za-z]{2}", rest[marker.end():]):
            return None  # "Fig. 8.8(a), Callister & Rethwisch": a reference (credit line, citation), as "Fig. 8, X"
        after = rest[marker.end():].lstrip(" :.,")
        word = re.match(r"[A-Za-z]+", after)
        if word and word.group(0).lower() in _BODY_WORDS:
            return None
        return number, stripped.strip()
    if rest[0].isalpha():  # "Fig. 3a shows": a panel letter glued to the number is a citation
        return None
    if first in "\u00b5\u03bc":  # a micro sign (micro sign or Greek mu): "Fig. 5 µ-CT of ...", "µm-scale": no verb
        return number, stripped.strip()
    word = re.match(r"[A-Za-z]+", stripped)
    if word:
        if _BARE_PANEL_LEAD.match(stripped):  # "Figure 2 a–c SEM cross-sections ...": Springer's bare letters
            return number, stripped.strip()
        if word.group(0).lower() in _BODY_WORDS or first.islower():
            return None
        return number, stripped.strip()
    if first.isdigit() or first in "(\"'[":
        return number, stripped.strip()
    return None


# --- panel captions --------------------------------------------------------------------------------

# A bare "b)" marker starts a clause: after the start, a space or punctuation -- not a unit ("v = 100 mm/s)").
_MARKER = re.compile(rf"\(\s*(?P<paren>{_LETTER_LIST})\s*\)|(?:^|(?<=[\s;,:.{DASHES}]))(?P<bare>[A-Za-z])\)")
# Panel letters run a, b, c, ...: a marker may skip one letter the text lost ("(c)—"), never more. A jump
# ("(a) ... angle (q) ...", a symbol read as a letter) is a symbol, not the next panel.
MAX_LETTER_SKIP = 1
_TRIM = " \t\n;,.:" + DASHES


def _clean_part(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(_TRIM)
    text = re.sub(r"\s*(?:,|;)?\s*\b(?:and|&)$", "", text).strip(_TRIM)
    text = re.sub(r"^(?:and|&)\s+", "", text).strip(_TRIM)
    return text


def _panel_markers(caption: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, letters) of the panel markers, keeping only those that run in alphabetical order from 'a'."""
    markers: list[tuple[int, int, list[str]]] = []
    last = ""
    for m in _MARKER.finditer(caption):
        letters = expand_letters(m.group("paren") or m.group("bare"))
        if not letters:
            continue
        if markers and not caption[markers[-1][1]:m.start()].strip() and set(letters).isdisjoint(markers[-1][2]):
            # markers set side by side share one text: "(a)(d) - Stage 1; (b)(e) - Stage 2" (rows of a grid,
            # letters per column); the run goes on from the group's first letter
            start, _, before = markers[-1]
            markers[-1] = (start, m.end(), before + letters)
            continue
        if not markers and letters[0] != "a":
            continue
        if letters[0] <= last or (last and ord(letters[0]) - ord(last) > MAX_LETTER_SKIP + 1):
            continue
        markers.append((m.start(), m.end(), letters))
        last = letters[-1]
    return [(a, b, sorted(x)) if len(x) > 1 and x != sorted(x) else (a, b, x) for a, b, x in markers]


def split_panel_captions(caption: str) -> tuple[str, dict[str, str]]:
    """Split a caption into its common part and each panel's own text.

    "Fig. 2. SEM fractographs of AA7075: (a) equiaxed dimples; (b) river patterns on cleavage facets."
    -> ("SEM fractographs of AA7075", {"a": "equiaxed dimples", "b": "river patterns on cleavage facets"}).
    Markers: "(a)", "a)", "(A)", "(a,b)", "(a and b)", "(a–c)"/"(a-c)" (each letter of a list or range gets the
    text). A marker with no text of its own ("(a) and (b) dimples") shares the next marker's text. Markers
    written after their text ("dimples (a) and cleavage (b).") are recognised when the caption ends with one.
    Keys are lower-case letters in order; no markers -> (whole caption, {}). A leading "Fig. N." label is dropped.
    """
    parsed = parse_caption_start(caption)
    text = parsed[1] if parsed else caption.strip()
    markers = _panel_markers(text)
    if not markers:
        return _clean_part(text), {}

    tail = text[markers[-1][1]:].strip(_TRIM + " )")
    head = text[:markers[0][0]]
    if _clean_part(head) and (not tail or _trailing_modifier(text, markers, tail)):
        return _split_postfix(text, markers, tail)
    if _clean_part(head) and _postfix_list(text, markers):  # "... pore (a) and gas pores (b, c) near the origin"
        common, panels = _split_postfix(text, markers)
        return _clean_part(f"{common} {tail}") if common else _clean_part(tail), panels

    panels: dict[str, str] = {}
    pending: list[str] = []
    for i, (_, end, letters) in enumerate(markers):
        stop = markers[i + 1][0] if i + 1 < len(markers) else len(text)
        own = _clean_part(text[end:stop])
        pending.extend(letters)
        if own:
            for letter in pending:
                panels.setdefault(letter, own)
            pending = []
    for letter in pending:  # markers at the very end with no text: give them nothing rather than guess
        panels.setdefault(letter, "")
    return _clean_part(head), panels


def _postfix_list(text: str, markers: list[tuple[int, int, list[str]]]) -> bool:
    """Markers written after their text and joined as a list: "X (a) and Y (b, c)", "X (a), Y (b)"."""
    if len(markers) < 2:
        return False
    between = text[markers[0][1]:markers[1][0]]
    return re.match(r"\s*(?:,|;|and\b)", between) is not None and bool(_clean_part(between))


def _trailing_modifier(text: str, markers: list[tuple[int, int, list[str]]], tail: str) -> bool:
    """True for "dimples (a) and cleavage (b) without striations": postfix markers, then a modifier of (b).

    The postfix signature is a list separator right after the first marker ("(a) and …", "(a), …");
    "(a) dimples; (b) without striations" (prefix markers) has none, so its tail stays (b)'s own text.
    """
    if not _POSTFIX_MODIFIER.fullmatch(tail):
        return False
    if len(markers) == 1:
        return True
    return re.match(r"\s*(?:,|;|and\b)", text[markers[0][1]:markers[1][0]]) is not None


def _split_postfix(text: str, markers: list[tuple[int, int, list[str]]],
                   tail: str = "") -> tuple[str, dict[str, str]]:
    """Captions whose markers follow their text: "Fractographs: dimples (a) and cleavage facets (b)."."""
    first_seg = text[:markers[0][0]]
    common = ""
    if ":" in first_seg:
        common, first_seg = first_seg.rsplit(":", 1)
    panels: dict[str, str] = {}
    prev_end = 0
    own = ""
    prev_letters: list[str] = []
    for i, (start, end, letters) in enumerate(markers):
        segment = first_seg if i == 0 else text[prev_end:start]
        modifier = _POSTFIX_MODIFIER.match(segment) if i > 0 else None
        if modifier and segment[modifier.end():].strip(_TRIM + " "):
            # "rock candy (c) without striations and porosity (d)": the modifier belongs to (c)
            for letter in prev_letters:
                panels[letter] = _clean_part(f"{panels[letter]} {modifier.group(0)}")
            segment = segment[modifier.end():]
        own = _clean_part(segment) or own  # "dimples (a) and (b)": an empty segment shares the previous text
        for letter in letters:
            panels.setdefault(letter, own)
        prev_letters = letters
        prev_end = end
    for letter in prev_letters if tail else ():  # "… (b) without dimples.": the tail qualifies the last panel
        panels[letter] = _clean_part(f"{panels[letter]} {tail}")
    return _clean_part(common), panels


# A clause right after a postfix marker that qualifies the panel before it, up to the next list separator.
_POSTFIX_MODIFIER = re.compile(r"\s*(?:without|with no|but no|with|showing|containing)\b.*?(?=,|;| and |$)",
                               re.IGNORECASE)


# --- citations -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Citation:
    """One figure cited in body text. ``start``/``end`` span the whole mention ("Figs. 2a and 2c")."""

    figure_number: str  # as text: "3", "7.5", "S3" (dataset_builders.pdf.numbers)
    panels: list[str] = field(default_factory=list)  # lower-case letters; [] = the whole figure
    start: int = 0
    end: int = 0


_CITE_LABEL = re.compile(rf"\b(?:fig(?:ure)?s?|abb(?:ildung(?:en)?)?|bild(?:er)?|figuras?|figur(?:en|er)?)\.?\s*"
                         rf"(?=(?:{PREFIX})?\d)", re.IGNORECASE)
# "7.5" is one number (a chapter's fifth figure); "3,5" stays two (a list): see dataset_builders.pdf.numbers
_NUM = re.compile(rf"(?:{PREFIX})?{DOTTED}")
_NUM_DASHED = re.compile(rf"(?:{PREFIX})?(?:{DASHED}|{DOTTED})")  # documents whose captions read "Figure 3-2"
_PAREN_PANELS = re.compile(rf"\s?\(\s*({_LETTER_LIST})\s*\)")
_MORE_PAREN = re.compile(rf"\s*(,|and|&|to|{_DASH})\s*\(\s*({_LETTER_LIST})\s*\)")
_GLUED_LETTER = re.compile(r"([A-Za-z])(?![A-Za-z])")
_MORE_LETTER = re.compile(rf"\s*(,|&|and|to|{_DASH})\s*([A-Za-z])(?![A-Za-z])")
_MORE_FIGURE = re.compile(rf"\s*(,|&|and|to|through|{_DASH})\s*(?:fig(?:ure)?s?\.?\s*)?(?=(?:{PREFIX})?\d)", re.IGNORECASE)


def _parse_panels(text: str, pos: int) -> tuple[list[str], int]:
    """Panel letters right after a figure number: '(b)', '(a,b) and (d)', 'a', 'a–c', 'a, b and d'."""
    m = _PAREN_PANELS.match(text, pos)
    if m:
        letters = expand_letters(m.group(1))
        pos = m.end()
        while (more := _MORE_PAREN.match(text, pos)):  # "(a) and (c)", "(a)–(c)" (a range)
            sep = more.group(1)
            if letters and (sep == "to" or (len(sep) == 1 and sep in DASHES)):
                letters += expand_letters(f"{letters[-1]}-{more.group(2)}")
            else:
                letters += expand_letters(more.group(2))
            pos = more.end()
        letters = list(dict.fromkeys(letters))
        return letters, pos
    m = _GLUED_LETTER.match(text, pos)
    if not m:
        return [], pos
    case_upper = m.group(1).isupper()
    listing = m.group(1)
    last = m.group(1).lower()
    pos = m.end()
    while ((more := _MORE_LETTER.match(text, pos)) and more.group(2).isupper() == case_upper
           and more.group(2).lower() > last):  # "Fig. 2a and a crack": the article is not a panel
        listing += f" {more.group(1)} {more.group(2)}"
        last = more.group(2).lower()
        pos = more.end()
    return expand_letters(listing), pos


def _same_figure_letter(text: str, pos: int, number_re: re.Pattern[str], number: str) -> tuple[str, int] | None:
    """(letter, end) when text[pos:] is the same figure number with one glued panel letter ("4c" after "Fig. 4a–")."""
    m = number_re.match(text, pos)
    if not m or normalise_number(m.group(0)) != number:
        return None
    letter = _GLUED_LETTER.match(text, m.end())
    return (letter.group(1).lower(), letter.end()) if letter else None


def find_citations(text: str, dash_numbers: bool = False) -> list[Citation]:
    """Every figure citation in ``text``, in order; one Citation per cited figure per mention.

    "Fig. 2b", "Fig. 2(b)", "Figs. 2a and 2c" (-> figure 2, panels [a, c]), "Figure 3", "Fig. 4a–c",
    "Figs. 3 and 4" (-> 3 and 4), "Figs. 3–5" (-> 3, 4, 5), "Fig. 5a,b", "Fig. 2(a) and (b)", "Fig. 7.5b",
    "Figs. 3.2a–c", "Figure 3.12(a)", "Fig. S3", "Fig. 4a–4c" and "Fig. 4a through 4c" (-> panels a, b, c). With ``dash_numbers`` (the document's captions read
    "Figure 3-2") "Fig. 3-2" is the figure "3-2", not the range 2..3.
    """
    out: list[Citation] = []
    number_re = _NUM_DASHED if dash_numbers else _NUM
    for label in _CITE_LABEL.finditer(text):
        pos = label.end()
        found: dict[str, list[str]] = {}
        whole: set[str] = set()
        prev_num: str | None = None
        range_next = False
        while True:
            m = number_re.match(text, pos)
            if not m:
                break
            number = normalise_number(m.group(0))
            panels, pos = _parse_panels(text, m.end())
            numbers = [number]
            if range_next and prev_num is not None:
                numbers = number_range(prev_num, number)[1:] or numbers
            for n in numbers:
                found.setdefault(n, [])
                if panels and n == number:
                    found[n] += [p for p in panels if p not in found[n]]
                else:
                    whole.add(n)
            prev_num = number
            more = _MORE_FIGURE.match(text, pos)
            if not more:
                break
            sep = more.group(1)
            range_next = sep in ("to", "through") or (len(sep) == 1 and sep in DASHES)
            if range_next and panels:  # "Fig. 2a–3" is not a range of figures, "Fig. 4a–4c" is one of panels
                if (again := _same_figure_letter(text, more.end(), number_re, number)) is None:
                    break
                letter, pos = again
                found[number] += [p for p in expand_letters(f"{panels[-1]}-{letter}") if p not in found[number]]
                more = _MORE_FIGURE.match(text, pos)
                if not more or more.group(1) in ("to", "through") or more.group(1) in DASHES:
                    break
                range_next = False
            pos = more.end()
        end = pos
        while end > label.start() and text[end - 1].isspace():
            end -= 1
        for n, panels in found.items():
            out.append(Citation(n, [] if n in whole else sorted(panels), label.start(), end))
    return out


# --- excerpts --------------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    ["fig", "figs", "abb", "eq", "eqs", "ref", "refs", "e.g", "i.e", "al", "vs", "approx", "ca", "no", "nos", "tab", "sect", "sec", "ch", "cf", "resp", "viz", "etc"])
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+(?=[A-Z(\[\d\"'])")


_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence; ends after '.', '!', '?' unless the word before is an abbreviation."""
    bounds: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if text[m.start()] == ".":
            # the word before the dot: the run of [A-Za-z.] ending there (not before the sentence start).
            # Walked back by hand: re.search(r"[A-Za-z.]+$") on a slice copied and scanned the whole sentence
            # for every dot (heavy corpus, 1,200 page texts: 0.13 -> 0.05 s; 0.34 -> 0.17 s under cProfile).
            end = m.start()
            if end > start and text[end - 1] == "\n":  # as "$" also matched before a final newline
                end -= 1
            i = end
            while i > start and text[i - 1] in _WORD_CHARS:
                i -= 1
            word = text[i:end]
            if word and (word.lower() in _ABBREVIATIONS or len(word) == 1):
                continue
        end = m.start() + 1
        bounds.append((start, end))
        start = m.end()
    if start < len(text):
        bounds.append((start, len(text)))
    if "\n\n" in text:  # a paragraph break (pdf.page_text.body_text) ends a sentence too: a heading has no full stop
        bounds = [piece for s, e in bounds for piece in _paragraph_pieces(text, s, e)]
    return [(s, e) for s, e in bounds if text[s:e].strip()]


def _paragraph_pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces = []
    while (cut := text.find("\n\n", start, end)) != -1:
        pieces.append((start, cut))
        start = cut + 2
    return [*pieces, (start, end)]


def excerpt_window(text: str, start: int, end: int, max_chars: int,
                   sentences: list[tuple[int, int]] | None = None) -> str:
    """Text around ``text[start:end]``, at most ``max_chars`` long.

    Whole sentences when they fit: the sentence(s) holding the span, then neighbours added alternately
    after and before while the bound allows, never across a paragraph break ("\n\n": the miner puts one
    where a caption or figure lay between two blocks and around headings). A sentence longer than the bound
    is cut on word boundaries around the span, with "…" where text was cut.
    """
    sentences = sentences if sentences is not None else sentence_bounds(text)
    hit = [i for i, (s, e) in enumerate(sentences) if s < end and e > start]
    if hit:
        lo, hi = hit[0], hit[-1]
        s0, e0 = sentences[lo][0], sentences[hi][1]
        if e0 - s0 <= max_chars:

            def joined(a: int) -> bool:  # sentence a and a + 1 belong to one paragraph
                return "\n\n" not in text[sentences[a][1]:sentences[a + 1][0]]

            grew = True
            while grew:
                grew = False
                if (hi + 1 < len(sentences) and sentences[hi + 1][1] - sentences[lo][0] <= max_chars
                        and joined(hi)):
                    hi += 1
                    grew = True
                if lo > 0 and sentences[hi][1] - sentences[lo - 1][0] <= max_chars and joined(lo - 1):
                    lo -= 1
                    grew = True
            return _squash(text[sentences[lo][0]:sentences[hi][1]])
    return _cut_window(text, start, end, max_chars)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _cut_window(text: str, start: int, end: int, max_chars: int) -> str:
    """A word-aligned window centred on the span, with ellipses; never longer than ``max_chars``."""
    budget = max_chars - 2  # room for the two ellipses
    span = end - start
    if span >= budget:
        return _squash(text[start:start + budget])
    side = (budget - span) // 2
    lo = max(0, start - side)
    hi = min(len(text), end + side + (side - (start - lo)))
    lo = max(0, lo - (end + side - hi) if hi == len(text) else lo)
    if lo > 0:
        space = text.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < len(text):
        space = text.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    window = _squash(text[lo:hi])
    prefix = "…" if lo > 0 else ""
    suffix = "…" if hi < len(text) else ""
    return (prefix + window + suffix)[:max_chars]


def cite_excerpts(text: str, max_chars: int, dash_numbers: bool = False) -> list[tuple[Citation, str]]:
    """Each citation in ``text`` with its bounded excerpt (duplicates for the same figure+panels+text dropped)."""
    sentences = sentence_bounds(text)
    seen: set[tuple[str, tuple[str, ...], str]] = set()
    out: list[tuple[Citation, str]] = []
    for cit in find_citations(text, dash_numbers):
        excerpt = excerpt_window(text, cit.start, cit.end, max_chars, sentences)
        key = (cit.figure_number, tuple(cit.panels), excerpt)
        if key not in seen:
            seen.add(key)
            out.append((cit, excerpt))
    return out
