"""Page text as light records (lines, blocks from ``get_text("dict")``) and the figure-caption blocks on a page.

The caption wording itself is judged by ``captions.parse_caption_start``; here we only find which blocks
of a page start a caption and which blocks below continue it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymupdf

from dataset_builders.pdf.captions import parse_caption_start
from dataset_builders.pdf.geometry import box_width, union
from dataset_builders.records import Box

# text only: image blocks cost ~100x. Ligatures expanded: typeset papers set "fi", "fl", "ff" as one glyph (U+FB01
# ...), and kept as such "ﬁbre pull-out", "ﬁsh-eye", "ﬁne granular area", "ﬁnite element", "diﬀraction" match no
# phrase of the vocabulary or the filter (MuPDF then writes the letters the ligature stands for)
TEXT_FLAGS = pymupdf.TEXTFLAGS_DICT & ~pymupdf.TEXT_PRESERVE_IMAGES & ~pymupdf.TEXT_PRESERVE_LIGATURES


@dataclass
class Line:
    text: str
    bbox: Box
    size: float
    spans: list[tuple[str, Box]]
    bold: list[str] = field(default_factory=list)  # texts of the line's bold spans (panel letters in captions)


@dataclass
class TextBlock:
    lines: list[Line]
    bbox: Box

    @property
    def text(self) -> str:
        return join_lines([ln.text for ln in self.lines])

    @property
    def is_paragraph(self) -> bool:
        """Running text (several stacked lines, many characters), as opposed to tick labels or a legend."""
        baselines = {round(ln.bbox[3]) for ln in self.lines}
        return len(baselines) >= 2 and sum(len(ln.text) for ln in self.lines) >= 100


def join_lines(lines: list[str]) -> str:
    """Lines of a paragraph as one string; a word hyphenated across a line break is joined again."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and line[:1].islower():
            out = out[:-1] + line
        else:
            out = f"{out} {line}" if out else line
    return out


def page_blocks(text_dict: dict) -> list[TextBlock]:
    """Text blocks of a ``get_text("dict")`` result, as light records.

    Each span's text is stripped once and whether its font is bold decided once per (flags, font) of the page
    (a page has a few fonts and hundreds of spans: 0.7 ms a page of real papers before, in the regular expression
    and the repeated strips)."""
    blocks: list[TextBlock] = []
    bold_fonts: dict[tuple[int, str], bool] = {}
    for b in text_dict.get("blocks", []):
        if b.get("type", 0) != 0:
            continue
        lines: list[Line] = []
        for ln in b.get("lines", []):
            all_spans = ln.get("spans", [])
            spans: list[tuple[str, Box]] = []
            bold: list[str] = []
            for s in all_spans:
                text = s["text"]
                stripped = text.strip()
                if not stripped:
                    continue
                spans.append((text, tuple(s["bbox"])))
                key = (s.get("flags", 0) & pymupdf.TEXT_FONT_BOLD, s.get("font", ""))
                is_bold = bold_fonts.get(key)
                if is_bold is None:
                    is_bold = bold_fonts[key] = _is_bold(s)
                if is_bold:
                    bold.append(stripped)
            if not spans:
                continue
            lines.append(Line(text="".join(s["text"] for s in all_spans), bbox=tuple(ln["bbox"]),
                              size=max(s["size"] for s in all_spans), spans=spans, bold=bold))
        if lines:
            blocks.append(block_of(lines))
    return blocks


def block_of(lines: list[Line]) -> TextBlock:
    """A block of these lines (at least one), its box their union."""
    box = lines[0].bbox
    for ln in lines[1:]:
        box = union(box, ln.bbox)
    return TextBlock(lines=lines, bbox=box)


def _is_bold(span: dict) -> bool:
    """A bold span: MuPDF's bold flag (TEXT_FONT_BOLD, 16, set from the font descriptor), or a bold face named
    in the font (subset fonts "ABCDEF+Arial-BoldMT" whose descriptor says nothing)."""
    return bool(span.get("flags", 0) & pymupdf.TEXT_FONT_BOLD) or bool(
        re.search(r"bold|black|heavy|semibold|demi", span.get("font", ""), re.IGNORECASE))


def _short_bold(text: str) -> list[str]:
    """What of a bold span can be a panel letter: the span if short ("a", "b,", "(c)"), else its last word when
    short (a bold title runs on into the first letter: "Fig. 2 | Device performance. a")."""
    if len(text) <= 8:
        return [text]
    words = text.split()
    return [words[-1]] if words and len(words[-1]) <= 3 else []


@dataclass
class Caption:
    number: str  # as text: "3", "7.5", "S3" (dataset_builders.pdf.numbers)
    text: str  # full caption text, label included
    bbox: Box
    block: int  # index of the first block
    blocks: list[int] = field(default_factory=list)  # all blocks that make up the caption
    label_lines: list[Line] = field(default_factory=list)  # short lines in the caption's block before it
    bold: list[str] = field(default_factory=list)  # short bold span texts of the caption, in order


def find_captions(blocks: list[TextBlock]) -> list[Caption]:
    """Caption candidates: blocks that start with a figure label (``captions.parse_caption_start``).

    A block whose first lines are short labels ("(a)", "(b)") that MuPDF glued to the caption still counts;
    a caption block split by MuPDF continues into the block right below it (same size, touching).
    """
    caps: list[Caption] = []
    used: set[int] = set()
    for i, blk in enumerate(blocks):
        if i in used:
            continue
        start = None
        for j, line in enumerate(blk.lines):
            if parse_caption_start(join_lines([ln.text for ln in blk.lines[j:]])):
                start = j
                break
            if len(line.text.strip()) > 4:
                break
        if start is None:
            continue
        lines = blk.lines[start:]
        beside = _side_by_side(lines)
        if beside:  # two captions on one row (a Word table of two images): one caption each, no continuation
            for part in beside:
                text = join_lines([ln.text for ln in part])
                parsed = parse_caption_start(text)
                if parsed:
                    caps.append(Caption(number=parsed[0], text=" ".join(text.split()), bbox=_lines_box(part),
                                        block=i, blocks=[i], label_lines=blk.lines[:start]))
            continue
        box = lines[0].bbox
        for ln in lines[1:]:
            box = union(box, ln.bbox)
        members = [i]
        size = lines[0].size
        k = i + 1
        while k < len(blocks):  # continuation blocks right below
            nxt = blocks[k]
            gap = nxt.bbox[1] - box[3]
            if (-2 <= gap <= 0.5 * size and abs(nxt.lines[0].size - size) < 0.6
                    and min(box[2], nxt.bbox[2]) - max(box[0], nxt.bbox[0]) > 0.5 * box_width(nxt.bbox)
                    and not parse_caption_start(nxt.text)):
                lines = lines + nxt.lines
                box = union(box, nxt.bbox)
                members.append(k)
                used.add(k)
                k += 1
            else:
                break
        text = join_lines([ln.text for ln in lines])
        parsed = parse_caption_start(text)
        if parsed:
            caps.append(Caption(number=parsed[0], text=" ".join(text.split()), bbox=box, block=i,
                                blocks=members, label_lines=blk.lines[:start]))
            caps[-1].bold = [t for ln in lines for b in ln.bold for t in _short_bold(b)]
    return caps


def _lines_box(lines: list[Line]) -> Box:
    box = lines[0].bbox
    for ln in lines[1:]:
        box = union(box, ln.bbox)
    return box


def _side_by_side(lines: list[Line]) -> list[list[Line]] | None:
    """A caption block that holds two captions side by side ("Figure 2: ..." and, to its right on the same
    row, "Figure 3: ..."): its lines split at the second caption's left edge, else None. MuPDF joins such
    captions into one block when they share baselines (Word exports put figure pairs in a table row)."""
    first = lines[0]
    for ln in lines[1:]:
        if (ln.bbox[0] > first.bbox[2] and ln.bbox[1] < first.bbox[3] and ln.bbox[3] > first.bbox[1]
                and parse_caption_start(ln.text)):
            left = [x for x in lines if x.bbox[2] <= ln.bbox[0] + 1]
            right = [x for x in lines if x.bbox[2] > ln.bbox[0] + 1]
            return [left, right] if left and right else None
    return None
