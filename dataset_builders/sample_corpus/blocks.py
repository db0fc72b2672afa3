"""A sample paper as a column of blocks (title, authors, DOI, abstract, section headings, paragraphs, each
figure with its caption after the paragraph that first cites it) and their placement on A4 pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .figures import Figure
from .page_layout import (BODY_FS, BODY_LEAD, BOTTOM, CAPTION_FS, CAPTION_LEAD, FONT_BOLD, TOP, X0, X1,
                          wrap)
from .text import Sentence


@dataclass
class Block:
    """A run of text lines, or a figure with its caption lines; text may break across pages."""

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


def paper_blocks(title: str, authors: list[str], doi: str, abstract: str, paragraphs: list[list[Sentence]],
                 figures: list[Figure]) -> list[Block]:
    """The blocks of a paper, top to bottom; the closing section is droppable."""
    W = X1 - X0
    blocks = [
        Block("text", lines=wrap(title, W, 16, FONT_BOLD), size=16, lead=19, gap_after=6, bold=True),
              Block("text", lines=wrap(", ".join(authors), W, 10), size=10, lead=13, gap_after=2),
              Block("text", lines=[(0, doi)], size=8.5, lead=11, gap_after=10, doi=True),
              Block("text", lines=[(0, "Abstract")], size=10, lead=13, gap_after=1, bold=True),
              Block("text", lines=wrap(abstract, W, 9), size=9, lead=11.5, gap_after=12),
              ]
    figs_by_number = {f.number: f for f in figures}
    section_names = ["1. Introduction", "2. Results and discussion", "3. Conclusions"]
    for i, para in enumerate(paragraphs):
        if i == 0:
            blocks.append(Block("text", lines=[(0, section_names[0])], size=10.5, lead=14, gap_after=3,
                                bold=True))
        if i == 1:
            blocks.append(Block("text", lines=[(0, section_names[1])], size=10.5, lead=14, gap_after=3,
                                bold=True))
        if i == len(paragraphs) - 1:
            blocks.append(Block("text", lines=[(0, section_names[2])], size=10.5, lead=14, gap_after=3,
                                bold=True, droppable=True))
        text = " ".join(s.text for s in para)
        offsets, pos = [], 0
        for s in para:
            offsets.append(pos)
            pos += len(s.text) + 1
        blocks.append(Block("text", lines=wrap(text, W, BODY_FS), size=BODY_FS, lead=BODY_LEAD, gap_after=7,
                            sentences=list(zip(offsets, para)), droppable=i == len(paragraphs) - 1))
        cited = [s.figure for s in para if s.figure is not None]
        if cited:
            fig = figs_by_number[cited[0]]
            cap_lines = wrap(fig.caption, W, CAPTION_FS)
            blocks.append(Block("figure", figure=fig, lines=cap_lines, size=CAPTION_FS, lead=CAPTION_LEAD,
                                gap_after=14))
    return blocks


def place_blocks(blocks: list[Block]) -> list[list[tuple[Block, int, float]]]:
    """Place blocks top to bottom; text may break between lines, a figure+caption never breaks.

    Returns, per page, (block, first line index, y of the block's top) placements.
    """
    pages: list[list[tuple[Block, int, float]]] = [[]]
    y = TOP
    for b in blocks:
        if b.kind == "figure":
            need = b.figure.height + 6 + len(b.lines) * b.lead  # type: ignore[union-attr]
            if y + need > BOTTOM and pages[-1]:
                pages.append([])
                y = TOP
            pages[-1].append((b, 0, y))
            y += need + b.gap_after
            continue
        i = 0
        while i < len(b.lines):
            fit = int((BOTTOM - y) // b.lead)
            if fit <= 0:
                pages.append([])
                y = TOP
                continue
            pages[-1].append((b, i, y))
            take = min(fit, len(b.lines) - i)
            y += take * b.lead
            i += take
        y += b.gap_after
    return [p for p in pages if p]
