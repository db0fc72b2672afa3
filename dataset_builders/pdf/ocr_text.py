"""Caption labels as OCR writes them: put back together before captions are looked for.

A caption label is small print at the edge of a picture, and OCR engines break it in ways a born-digital
text layer never shows. Both rules below act only where a line is the label alone, so ordinary text is left
as it is:

* the label and its number come apart: "Fig." (or "Fig. 33.") read as a line of its own, the number and the
  caption text on the same row to its right, broken into fragments ("Fig," | "121." | "Fatigue rid" | "ges (after ...)"), or
  on the line below it; where the same spot was read twice (two fragments one over the other), the longer
  reading is kept. The pieces are joined into one line that starts the caption ("Fig. 121. Fatigue ridges
  (after ...)"), and a comma or colon read for the dot after the number is put right ("1.10," -> "1.10.");
* the dot of a chapter number is lost ("Fig. 121." for "Fig. 1.21."): in a document whose captions are
  numbered by chapter (at least two "C.n" and no more plain numbers than those), a plain caption number that
  is C followed by digits is read as C.n when no caption has that number yet.

Used for OCR'd pages (``pdf.ocr.reblock``) and scans with an OCR text layer (the mine stage).
"""

from __future__ import annotations

import re
from collections import Counter

from dataset_builders.pdf.captions import parse_caption_start
from dataset_builders.pdf.geometry import union
from dataset_builders.pdf.numbers import DOTTED
from dataset_builders.pdf.text import Line, TextBlock, block_of

# the label alone, or with its number only ("Fig.", "Fig, 33.")
_LONE_LABEL = re.compile(rf"^\s*(Fig|FIG|Figure|FIGURE)\s*[.,:;]?\s*((?:{DOTTED})\s*[.,:;]?)?\s*$")
_NUMBER_FIRST = re.compile(rf"^\s*({DOTTED})\s*([.,:;])")  # "1.10," "121." opening a fragment
ROW_GAP = 1.5  # fragments of one row are at most this many label heights apart
GLUED = 0.2  # closer than this many heights: one word cut in two ("rid" + "ges")
BELOW = 1.0  # the line under a lone label starts at most this many label heights below it


def _height(ln: Line) -> float:
    return max(ln.bbox[3] - ln.bbox[1], 1e-3)


def _width(ln: Line) -> float:
    return max(ln.bbox[2] - ln.bbox[0], 1e-3)


def _x_overlap(a: Line, b: Line) -> float:
    return min(a.bbox[2], b.bbox[2]) - max(a.bbox[0], b.bbox[0])


def _same_row(a: Line, b: Line) -> bool:
    dy = min(a.bbox[3], b.bbox[3]) - max(a.bbox[1], b.bbox[1])
    return dy >= 0.5 * min(_height(a), _height(b))


def _row_after(label: Line, lines: list[Line]) -> tuple[list[Line], list[Line]]:
    """The fragments right of ``label`` on its row, in reading order, each spot read once; and the other
    readings of those spots (dropped with them)."""
    h = _height(label)
    cands = sorted((ln for ln in lines if ln is not label and _same_row(label, ln)
                    and ln.bbox[0] >= label.bbox[0] + 0.5 * _width(label)), key=lambda ln: ln.bbox[0])
    picked: list[Line] = []
    twice: list[Line] = []
    right = label.bbox[2]
    for ln in cands:
        if ln.bbox[0] > right + ROW_GAP * h:
            break
        if _x_overlap(ln, label) > 0.5 * min(_width(ln), _width(label)):
            twice.append(ln)  # read over the label itself
        elif picked and _x_overlap(ln, picked[-1]) > 0.5 * min(_width(ln), _width(picked[-1])):
            shorter = len(ln.text.strip()) <= len(picked[-1].text.strip())
            twice.append(ln if shorter else picked[-1])  # the same spot read twice: the longer reading wins
            picked[-1] = picked[-1] if shorter else ln
        else:
            picked.append(ln)
        right = max(right, ln.bbox[2])
    return picked, twice


def _line_below(label: Line, lines: list[Line]) -> Line | None:
    h = _height(label)
    below = [ln for ln in lines if ln is not label and 0 <= ln.bbox[1] - label.bbox[3] <= BELOW * h
             and label.bbox[0] - h <= ln.bbox[0] <= label.bbox[2] + h]
    return min(below, key=lambda ln: (ln.bbox[1], ln.bbox[0]), default=None)


def _joined(label: Line, parts: list[Line]) -> Line | None:
    word, number = _LONE_LABEL.match(label.text).groups()
    text, prev = (number or "").strip(), None
    for ln in parts:
        glued = prev is not None and ln.bbox[0] - prev.bbox[2] < GLUED * _height(ln)
        text += ("" if glued or not text else " ") + ln.text.strip()
        prev = ln
    text = _NUMBER_FIRST.sub(lambda m: f"{m.group(1)}.", text, count=1)
    line = f"{word}. {text}"
    if not _NUMBER_FIRST.match(text) or parse_caption_start(line) is None:
        return None
    box = label.bbox
    for ln in parts:
        box = union(box, ln.bbox)
    return Line(text=line, bbox=box, size=max([label.size, *(ln.size for ln in parts)]),
                spans=[s for ln in (label, *parts) for s in ln.spans])


def join_caption_labels(blocks: list[TextBlock]) -> list[TextBlock]:
    """The page's blocks with every lone caption label joined to its number and caption text (module doc)."""
    lines = [ln for b in blocks for ln in b.lines]
    if not any(_LONE_LABEL.match(ln.text) for ln in lines):
        return blocks
    used: set[int] = set()
    replaced: dict[int, Line] = {}
    for label in lines:
        if id(label) in used or not _LONE_LABEL.match(label.text):
            continue
        free = [ln for ln in lines if id(ln) not in used]
        parts, twice = _row_after(label, free)
        if not parts or not (_LONE_LABEL.match(label.text).group(2) or _NUMBER_FIRST.match(parts[0].text)):
            below = _line_below(label, free)
            parts, twice = ([below] if below is not None else []), []
        line = _joined(label, parts) if parts else None
        if line is not None:
            replaced[id(label)] = line
            used.update(id(ln) for ln in (*parts, *twice))
    out: list[TextBlock] = []
    for b in blocks:
        kept = [replaced.get(id(ln), ln) for ln in b.lines if id(ln) not in used]
        if kept:
            out.append(block_of(kept))
    return out


def restore_chapter_dots(pages: list[list[TextBlock]]) -> None:
    """Put back the dot OCR lost in a chapter number ("Fig. 121." -> "Fig. 1.21."), in place (module doc)."""
    starts = [(ln, parsed[0]) for blocks in pages for b in blocks for ln in b.lines
              if (parsed := parse_caption_start(ln.text))]
    numbers = {n for _, n in starts}
    chapters = Counter(n.split(".")[0] for n in numbers if re.fullmatch(r"\d+\.\d+", n))
    plain = [n for n in numbers if n.isdigit()]
    if not plain or len(plain) > sum(chapters.values()):
        return
    for ln, n in starts:
        if not n.isdigit():
            continue
        fits = [c for c, k in chapters.items() if k >= 2 and n.startswith(c) and len(n) > len(c)
                and n[len(c)] != "0" and f"{c}.{n[len(c):]}" not in numbers]
        if len(fits) == 1:
            c = fits[0]
            ln.text = re.sub(rf"(?<![\d.]){n}(?![\d])", f"{c}.{n[len(c):]}", ln.text, count=1)
            numbers.add(f"{c}.{n[len(c):]}")
