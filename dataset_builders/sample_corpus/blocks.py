"""A sample paper as a run of blocks (title, authors, DOI, abstract, section headings, paragraphs, each
figure with its caption after the paragraph that first cites it) and their placement on A4 pages, in one
column or in two (title block across both; a spanning figure at the top of a page, across both columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .figures import Figure
from .page_layout import (BODY_FS, BODY_LEAD, BOTTOM, CAPTION_FS, CAPTION_LEAD, COL_GAP, COL_W, FONT_BOLD, TOP,
                          X0, X1, wrap)
from .text import Sentence


@dataclass
class Block:
    """A run of text lines, or a figure with its caption lines; text may break across columns and pages."""

    kind: Literal["text", "figure"]
    lines: list[tuple[int, str]] = field(default_factory=list)
    size: float = BODY_FS
    lead: float = BODY_LEAD
    gap_after: float = 0.0
    bold: bool = False
    doi: bool = False
    figure: Figure | None = None
    sentences: list[tuple[int, Sentence]] = field(default_factory=list)
    droppable: bool = False
    span: bool = False  # across the whole text width (title block, spanning figure)

    @property
    def width(self) -> float:
        return X1 - X0 if self.span else COL_W


def paper_blocks(title: str, authors: list[str], doi: str, abstract: str, paragraphs: list[list[Sentence]],
                 figures: list[Figure], columns: int = 1) -> list[Block]:
    """The blocks of a paper, top to bottom; the closing section is droppable."""
    W = X1 - X0
    body_w = W if columns == 1 else COL_W
    blocks = [
        Block("text", lines=wrap(title, W, 16, FONT_BOLD), size=16, lead=19, gap_after=6, bold=True, span=True),
        Block("text", lines=wrap(", ".join(authors), W, 10), size=10, lead=13, gap_after=2, span=True),
        Block("text", lines=[(0, doi)], size=8.5, lead=11, gap_after=10, doi=True, span=True),
        Block("text", lines=[(0, "Abstract")], size=10, lead=13, gap_after=1, bold=True, span=True),
        Block("text", lines=wrap(abstract, W, 9), size=9, lead=11.5, gap_after=12, span=True),
    ]
    figs_by_number = {f.number: f for f in figures}
    section_names = ["1. Introduction", "2. Results and discussion", "3. Conclusions"]
    one = columns == 1
    for i, para in enumerate(paragraphs):
        if i == 0:
            blocks.append(Block("text", lines=[(0, section_names[0])], size=10.5, lead=14, gap_after=3,
                                bold=True, span=one))
        if i == 1:
            blocks.append(Block("text", lines=[(0, section_names[1])], size=10.5, lead=14, gap_after=3,
                                bold=True, span=one))
        if i == len(paragraphs) - 1:
            blocks.append(Block("text", lines=[(0, section_names[2])], size=10.5, lead=14, gap_after=3,
                                bold=True, droppable=True, span=one))
        text = " ".join(s.text for s in para)
        offsets, pos = [], 0
        for s in para:
            offsets.append(pos)
            pos += len(s.text) + 1
        blocks.append(Block("text", lines=wrap(text, body_w, BODY_FS), size=BODY_FS, lead=BODY_LEAD, gap_after=7,
                            sentences=list(zip(offsets, para)), droppable=i == len(paragraphs) - 1, span=one))
        cited = [s.figure for s in para if s.figure is not None]
        if cited:
            fig = figs_by_number[cited[0]]
            span = one or fig.span
            cap_lines = wrap(fig.caption, W if span else COL_W, CAPTION_FS)
            blocks.append(Block("figure", figure=fig, lines=cap_lines, size=CAPTION_FS, lead=CAPTION_LEAD,
                                gap_after=14, span=span))
    return blocks


def _need(b: Block) -> float:
    return b.figure.height + 6 + len(b.lines) * b.lead  # type: ignore[union-attr]


def place_blocks(blocks: list[Block], columns: int = 1) -> list[list[tuple[Block, int, float, float]]]:
    """Place blocks top to bottom, column by column; text may break between lines, a figure+caption never
    breaks. On a two-column page a spanning figure goes to the top of the next page (or of this one, when
    nothing is in its columns yet), both columns starting below it.

    Returns, per page, (block, first line index, y of the block's top, x of its left edge) placements.
    """
    pages: list[list[tuple[Block, int, float, float]]] = [[]]
    top = y = TOP
    col = 0
    pending: list[Block] = []  # spanning figures waiting for the top of a page

    def x_of(c: int) -> float:
        return X0 + c * (COL_W + COL_GAP)

    def next_frame() -> None:
        nonlocal col, y, top
        if columns == 2 and col == 0:
            col, y = 1, top
            return
        pages.append([])
        col, top = 0, TOP
        for fb in pending:
            pages[-1].append((fb, 0, top, X0))
            top += _need(fb) + fb.gap_after
        pending.clear()
        y = top

    for b in blocks:
        if columns == 2 and b.span and b.kind == "text":  # the title block, on the first page
            pages[-1].append((b, 0, y, X0))
            y = top = y + len(b.lines) * b.lead + b.gap_after
            continue
        if b.kind == "figure":
            if columns == 2 and b.span:
                if col == 0 and y == top:
                    pages[-1].append((b, 0, y, X0))
                    y = top = y + _need(b) + b.gap_after
                else:
                    pending.append(b)
                continue
            if y + _need(b) > BOTTOM and pages[-1] and not (col == 0 and y == top):
                next_frame()
            pages[-1].append((b, 0, y, x_of(col)))
            y += _need(b) + b.gap_after
            continue
        i = 0
        while i < len(b.lines):
            fit = int((BOTTOM - y) // b.lead)
            if fit <= 0:
                next_frame()
                continue
            pages[-1].append((b, i, y, x_of(col)))
            take = min(fit, len(b.lines) - i)
            y += take * b.lead
            i += take
        y += b.gap_after
    if pending:
        col = 1
        next_frame()
    return [p for p in pages if p]
