"""A page's running text for the citing excerpts, and the text beside an uncaptioned figure (mine.py).

``body_text``: the page's text blocks without captions and in-figure text, joined so that an excerpt never
grows across a caption, a figure or a numbered heading. ``uncaptioned_context``: in documents that caption no
figure (reports, slide decks), the paragraph printed next to each figure (``FigureRecord.context``).
"""

from __future__ import annotations

import re

from dataset_builders.pdf.figures import figure_context
from dataset_builders.pdf.geometry import centre_in
from dataset_builders.pdf.text import TextBlock, find_captions, join_lines
from dataset_builders.records import FigureRecord

HEADING = re.compile(r"^(\d+(\.\d+)*\.?|[IVX]+\.)\s+\S")  # "3. Conclusions", "2.1 Materials", "IV. Results"


def body_text(blocks: list[TextBlock], caption_blocks: set[int], figure_boxes: list) -> str:
    """The page's running text without captions and in-figure text. Where a caption or figure lay between two
    blocks, and around a one-line numbered heading, the blocks are joined by a paragraph break ("\n\n"):
    an excerpt never grows across it (captions.excerpt_window), so it cannot run over a caption into the
    next heading, which a reader searching the PDF would not find as one piece. A caption or figure of the other
    column does not lie between them (OCR'd pages list both columns' blocks by height)."""
    out = ""
    between: list = []  # boxes of the captions and figure text passed since the last block taken
    heading_before, prev = False, None
    for i, blk in enumerate(blocks):
        lines = [] if i in caption_blocks else [ln.text for ln in blk.lines
                                                if not any(centre_in(ln.bbox, fb) for fb in figure_boxes)]
        if not lines:
            between += [blk.bbox] if i in caption_blocks or blk.lines else []
            continue
        text = join_lines(lines)
        heading = len(lines) == 1 and bool(HEADING.match(text))
        gap = prev is not None and any(min(b[2], c[2]) > max(b[0], c[0])
                                       for b in between for c in (prev, blk.bbox))
        if out:
            out += "\n\n" if gap or heading or heading_before else " "
        out += text
        between, heading_before, prev = [], heading, blk.bbox
    return out


def uncaptioned_context(blocks: list[TextBlock], figures: list[FigureRecord], previous: str) -> str:
    """Give each uncaptioned figure of a page the text printed next to it (FigureRecord.context). Only in
    documents without any figure caption (reports, slide decks, guides): where papers caption their figures,
    an uncaptioned image is a logo or a piece of a captioned figure, and the paragraph next to it is not about it.

    A figure with no paragraph above it on its page continues the text before it: the previous uncaptioned
    figure's context on this page (a series of examples), else the last paragraph of the previous page.
    Returns the context to carry to the next page (this page's last paragraph).
    """
    skip = {i for c in find_captions(blocks) for i in c.blocks}
    boxes = [f.bbox for f in figures]
    carried = previous
    for fig in sorted(figures, key=lambda f: (f.bbox[1], f.bbox[0])):
        if fig.caption:
            continue
        text, open_top = figure_context(blocks, fig.bbox, skip, [b for b in boxes if b != fig.bbox])
        fig.context = f"{carried} {text}".strip() if open_top and carried else text
        carried = fig.context or carried
    paragraphs = [b for i, b in enumerate(blocks) if i not in skip and b.is_paragraph]
    return paragraphs[-1].text if paragraphs else ""
