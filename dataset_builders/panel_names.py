"""Panel identifiers a caption uses besides "(a)": bare or bold letters, roman numerals, position words.

Used by the panels stage after ``captions.split_panel_captions`` (which reads "(a)", "a)", "(a–c)") found no
panels. Each reader returns the caption's common part and {panel name: its own text}, or None:

* bare letters, Nature style: "Fig. 2 | Title. a Schematic of … b Power density …", also "a, Schematic",
  "a—Schematic", "a: Schematic", "a. Schematic", "a, b Schematic" (a list shares the text). Letters the PDF
  set in bold (``bold``, read from the caption's spans by the miner) are markers wherever they stand; without
  that hint a letter counts only at the start of the caption or of a sentence, followed by a capital, a digit
  or a bracket (sentences start with capitals, so a lone lower-case letter there is a label, not a word), and
  the letters must run a, b, c, … without a gap (a single stray "a" or "b" is not a panel list);
* roman numerals in brackets: "(i) uncharged and (ii) H-charged" -> {"i": …, "ii": …};
* position words: "uncharged (left) and H-charged (right)", "Left: as-built; right: HIPed",
  "(top) … (bottom)", "(top left)", "(middle)" -> {"left": …, "right": …}.
The two last ones are parsed by the letter parser itself: each identifier is written as a stand-in letter
marker, the caption split, and the names put back, so prefix and postfix forms ("(i) X", "X (i)") behave the
same as for letters.

``names_for_cells`` gives named panels their cells: position words by geometry (``position_cells``: one row
left … right; one column top … bottom; a 2 x 2 grid top left … bottom right), roman numerals in reading order
(``reading_order``, also used for caption letters of parts).
"""

from __future__ import annotations

import math
import re
from itertools import pairwise

from dataset_builders.pdf.captions import DASHES, expand_letters, parse_caption_start, split_panel_captions
from dataset_builders.records import Box

ROMAN = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x"]
POSITIONS = ["top left", "top right", "bottom left", "bottom right", "left", "middle", "centre", "center",
             "right", "top", "bottom"]

_LIST = rf"[a-z](?:\s*(?:,|&|and|{'|'.join(DASHES)})\s*[a-z])*"
# a bare letter (list) at the start or after a sentence end, then punctuation or a space, then a capital/digit
_BARE_SENTENCE = re.compile(
    rf"(?:^|(?<=[.;!?])\s+)(?P<list>{_LIST})(?:\s*[,.:|{DASHES}]\s*|\s+)(?=[A-Z0-9(\[\"'])"
    # or a letter with a label's colon or dash at a clause start, whatever follows: "a: dimples, b: cleavage"
    rf"|(?:^|(?<=[.;,])\s+)(?P<label>{_LIST})\s*[:{DASHES}]\s*(?=\S)")
_ROMAN_MARKER = re.compile(r"\(\s*(?P<r>i{1,3}|iv|v|vi{1,3}|ix|x)\s*\)", re.IGNORECASE)
_POSITION_MARKER = re.compile(
    r"\(\s*(?P<p>(?:top|bottom|upper|lower)\s+(?:left|right)|left|right|top|bottom|middle|centre|center|upper|lower)"
    r"(?:\s+(?:panel|image|row|column|side))?\s*\)"
    r"|(?:^|(?<=[.;]\s))(?P<q>(?:top|bottom)\s+(?:left|right)|left|right|top|bottom|middle)\s*[:\u2014\u2013]\s*",
    re.IGNORECASE)
_SYNONYM = {"upper": "top", "lower": "bottom", "center": "centre", "upper left": "top left",
            "upper right": "top right", "lower left": "bottom left", "lower right": "bottom right"}
_TRIM = " \t\n;,.:" + DASHES


def _body(caption: str) -> str:
    parsed = parse_caption_start(caption)
    return parsed[1] if parsed else caption.strip()


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(_TRIM)
    return re.sub(r"\s*(?:,|;)?\s*\b(?:and|&)$", "", text).strip(_TRIM)


def bold_letter_tokens(bold: list[str]) -> list[list[str]]:
    """Letter lists set in bold in a caption ("a", "b,", "c–e", "(f)") -> [[a], [b], [c, d, e], [f]]."""
    out: list[list[str]] = []
    for token in bold:
        m = re.fullmatch(rf"\(?\s*({_LIST})\s*\)?\s*[,.:|{DASHES}]?", token.strip(), re.IGNORECASE)
        if m:
            out.append(expand_letters(m.group(1)))
    return out


def bare_letter_panels(caption: str, bold: list[str] | None = None) -> tuple[str, dict[str, str]] | None:
    """Common part and {letter: text} of a caption whose panel letters stand bare ("a Schematic … b …")."""
    text = _body(caption)
    markers: list[tuple[int, int, list[str]]] = []
    hints: list[list[str]] = []
    for letters in bold_letter_tokens(bold or []):  # the run a, b, c, … (a later bold "b" is a reference)
        if letters[0] == (chr(ord(hints[-1][-1]) + 1) if hints else "a"):
            hints.append(letters)
    if len(hints) >= 2 or (hints and len(hints[0]) >= 2):
        # letters the PDF set in bold: find each, in order, as a free-standing token
        pos = 0
        for letters in hints:
            # at the start or after a clause's punctuation (an article "a" inside a sentence is not bold, but
            # the bold list does not say where its "a" stands); a bold letter may touch the next word when the
            # PDF sets no space ("aSchematic"), not a lower-case one
            first = f"[{letters[0]}{letters[0].upper()}]"
            pattern = (rf"(?:^|(?<=[.;:,)|])\s*)\(?{first}(?:\s*(?:,|&|and|[{DASHES}])\s*[A-Za-z])*"
                       rf"\s*\)?(?![a-z])\s*[,.:|{DASHES}]?\s*")
            m = re.compile(pattern).search(text, pos)
            if not m and letters[0] != "a":
                # inside a sentence ("TEM images of c bare BaTiO3 and d TiO2"): a lone lower-case letter
                # other than the article, set in bold and next in the run, is that panel's letter
                m = re.compile(rf"(?<![\w.\-/]){letters[0]}(?![\w\-/]|\.\w)\s*").search(text, pos)
            if not m:
                break
            markers.append((m.start(), m.end(), letters))
            pos = m.end()
        else:
            return _split_at(text, markers)
        markers = []
    for m in _BARE_SENTENCE.finditer(text):
        group = "list" if m.group("list") else "label"
        letters = expand_letters(m.group(group))
        expected = chr(ord(markers[-1][2][-1]) + 1) if markers else "a"
        if letters and letters[0] == expected:
            markers.append((m.start(group), m.end(), letters))
    if not markers or sum(len(x[2]) for x in markers) < 2:
        return None
    return _split_at(text, markers)


def _split_at(text: str, markers: list[tuple[int, int, list[str]]]) -> tuple[str, dict[str, str]]:
    panels: dict[str, str] = {}
    for i, (_, end, letters) in enumerate(markers):
        stop = markers[i + 1][0] if i + 1 < len(markers) else len(text)
        for letter in letters:
            panels.setdefault(letter, _clean(text[end:stop]))
    return _clean(text[:markers[0][0]]), panels


def _stand_in(caption: str, pattern: re.Pattern, name_of) -> tuple[str, dict[str, str]] | None:
    """Split a caption whose identifiers match `pattern`: each becomes "(a)", "(b)", … in order of first
    appearance, the letter parser splits it, and the names come back as keys."""
    text = _body(caption)
    names: list[str] = []
    for m in pattern.finditer(text):
        name = name_of(m)
        if name not in names:
            names.append(name)
    if len(names) < 2 or len(names) > 12:
        return None
    letter_of = {n: chr(ord("a") + i) for i, n in enumerate(names)}

    def replace(m: re.Match) -> str:
        prefix = m.group(0)[:len(m.group(0)) - len(m.group(0).lstrip())]
        return f"{prefix}({letter_of[name_of(m)]}) "

    common, parts = split_panel_captions(pattern.sub(replace, text))
    by_letter = {v: k for k, v in letter_of.items()}
    named = {by_letter[k]: v for k, v in parts.items() if k in by_letter}
    return (common, named) if len(named) == len(names) else None


def roman_panels(caption: str) -> tuple[str, dict[str, str]] | None:
    """Common part and {"i": …, "ii": …} of a caption naming panels (i), (ii), … in order from (i)."""
    found = [m.group("r").lower() for m in _ROMAN_MARKER.finditer(_body(caption))]
    if not found or found[0] != "i" or found != ROMAN[:len(found)]:
        return None
    return _stand_in(caption, _ROMAN_MARKER, lambda m: m.group("r").lower())


def position_panels(caption: str) -> tuple[str, dict[str, str]] | None:
    """Common part and {"left": …, "right": …} of a caption naming panels by where they stand."""
    def name(m: re.Match) -> str:
        word = re.sub(r"\s+", " ", (m.group("p") or m.group("q")).lower())
        return _SYNONYM.get(word, word)
    return _stand_in(caption, _POSITION_MARKER, name)


def fill_missed_letters(parts: dict[str, str]) -> dict[str, str]:
    """Letters missing inside a run (a, b, d) found bare at a clause start in the part before the gap, followed
    by a dash, colon, period or ")" ("(b) cleavage facets; c—striations"): that part is cut there, so the
    missed panel gets its own words and its neighbour loses them. Only a letter the run lacks is looked for,
    and only where the letter parser's markers would stand (start, or after ";" "," or "."), so a word is not
    taken for a panel. Letters inside a range written as two markers ("(c)–(e)") get the range's text."""
    keys = sorted(parts)
    if len(keys) < 2 or not all(len(k) == 1 and k.isalpha() for k in keys):
        return parts
    out = dict(parts)
    for prev, nxt in pairwise(keys):
        missing = [chr(c) for c in range(ord(prev) + 1, ord(nxt))]
        text = out[prev]
        for letter in missing:
            m = re.search(rf"(?:^|[;,.]\s*)\(?{letter}(?:\)\s*[:.{DASHES}]?|\s*[:.{DASHES}])\s*(?=[A-Za-z(])", text)
            if not m:
                break
            out[prev], out[letter] = _clean(text[:m.start()]), _clean(text[m.end():])
            prev, text = letter, out[letter]
        # "(c)–(e) details": a range written as two markers leaves both ends with the same text, the middle
        # letters with none; they share it
        if out[prev] and out[prev] == out[nxt]:
            for letter in missing:
                out.setdefault(letter, out[nxt])
    return dict(sorted(out.items()))


# "... at different loading times, a to f." / "after various times a to d": the panels named only as a range of
# bare letters from a, at least three of them and at most twelve (a to l), not part of a word or a bracket (older
# journals' style). The range ends its clause and follows a comma, a colon or a noun of a series ("times",
# "stages", "cycles"): prose such as "the crack grew from a to c in 200 cycles", "path a through d", "regions a
# to c" or "dimensions a to f are given in Table 1" names no panels.
_SERIES = ("times|stages|cycles|steps|intervals|temperatures|magnifications|specimens|samples|loads|strains|"
           "amplitudes|levels|conditions|durations|hours|days|passes|rates|speeds")
_LETTER_RANGE = re.compile(rf"(?:[,:]\s*|\b(?:{_SERIES})\s+)a\s+(?:to|through)\s+([c-l])(?=\s*(?:$|[.;,)]))")


def letter_range_panels(caption: str) -> tuple[str, dict[str, str]] | None:
    """A caption naming its panels only as a range of bare letters ("times a to f"): the whole caption is the
    common part and every letter a..f a panel without text of its own (each gets the common part)."""
    text = _body(caption)
    found = _LETTER_RANGE.findall(text)
    if len(found) != 1 or re.search(r"\(\s*[a-z]\s*\)", text):  # one range, and no "(d)" the parsers missed
        return None
    return _clean(text), {chr(c): "" for c in range(ord("a"), ord(found[0]) + 1)}


def named_panels(caption: str, bold: list[str] | None = None) -> tuple[str, dict[str, str], str] | None:
    """(common, {name: text}, kind) for the first reader that finds panels; kind is letters|roman|position."""
    if not caption.strip():
        return None
    for kind, reader in (("letters", lambda c: bare_letter_panels(c, bold)), ("letters", letter_range_panels),
                         ("roman", roman_panels), ("position", position_panels)):
        got = reader(caption)
        if got and len(got[1]) >= 2:
            return got[0], got[1], kind
    return None


def position_cells(names: list[str], cells: list[tuple[int, int, int, int]]) -> dict[str, int] | None:
    """{name: cell index} for position words, or None when the cells' layout does not fit the words."""
    n = len(cells)
    if len(names) != n:
        return None
    cx = sorted(range(n), key=lambda i: (cells[i][0] + cells[i][2], i))
    cy = sorted(range(n), key=lambda i: (cells[i][1] + cells[i][3], i))

    def one_line(order: list[int], axis: int) -> bool:  # every cell beside/below the previous one
        return all(cells[a][axis + 2] <= cells[b][axis] + 2 for a, b in pairwise(order))

    words = set(names)
    if one_line(cx, 0):
        seq = {2: ["left", "right"], 3: ["left", "middle", "right"]}.get(n)
        if seq and words in ({*seq}, {*seq} - {"middle"} | {"centre"}):
            return {name: cx[seq.index("middle" if name == "centre" else name)] for name in names}
    if one_line(cy, 1):
        seq = {2: ["top", "bottom"], 3: ["top", "middle", "bottom"]}.get(n)
        if seq and words in ({*seq}, {*seq} - {"middle"} | {"centre"}):
            return {name: cy[seq.index("middle" if name == "centre" else name)] for name in names}
    corners = ["top left", "top right", "bottom left", "bottom right"]
    if n == 4 and words == set(corners):
        top, bottom = sorted(cy[:2], key=lambda i: cells[i][0]), sorted(cy[2:], key=lambda i: cells[i][0])
        if cells[top[0]][3] <= cells[bottom[0]][1] + 2 and cells[top[1]][3] <= cells[bottom[1]][1] + 2:
            return dict(zip(corners, top + bottom))
    return None


def reading_order(boxes: list[Box]) -> list[int]:
    """Indices of boxes in reading order: rows top to bottom (by vertical overlap), left to right."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0], i))
    rows: list[list[int]] = []
    row_bottom = -math.inf
    for i in order:
        cy = (boxes[i][1] + boxes[i][3]) / 2
        if rows and cy < row_bottom:
            rows[-1].append(i)
            row_bottom = max(row_bottom, boxes[i][3])
        else:
            rows.append([i])
            row_bottom = boxes[i][3]
    return [i for row in rows for i in sorted(row, key=lambda j: (boxes[j][0], j))]


def name_order(name: str) -> tuple[int, str]:
    return (ROMAN.index(name), name) if name in ROMAN else (99, name)


def names_for_cells(names: list[str], boxes: list) -> list[str | None] | None:
    """A non-letter name for every cell: roman numerals in reading order, position words by geometry."""
    if len(names) != len(boxes):
        return None
    if all(n in ROMAN for n in names):
        order = reading_order([tuple(b) for b in boxes])
        out: list[str | None] = [None] * len(boxes)
        for n, k in zip(names, order):
            out[k] = n
        return out
    where = position_cells(names, [tuple(int(v) for v in b) for b in boxes])
    if where is None:
        return None
    out = [None] * len(boxes)
    for n, k in where.items():
        out[k] = n
    return out
