"""Figures that run across a page break (theses, Word exports): the caption is printed once, under one part.

Two shapes, both read after every page of a document is mined (``link_continued``):

* A marked continuation: "Figure 4.3 (continued)" / "Fig. 2 (cont.)" under the part on one page, the full
  caption under the other part. The marked part takes the full caption of its number (the text after the
  marker, if any, is kept: it can name the panels of this part).
* No marker at all: an uncaptioned figure ends page N (nothing of the text flow below it), and page N+1
  begins with a caption -- under a figure at the top of that page, or alone (Word moved the caption to the
  next page). Nothing of the text separates the two, so in reading order the figure on page N is the first
  part of the figure that caption names: it takes that caption.

Only documents that caption their figures are linked (``captioned``): in a report without any caption an
image ending a page is no part of anything on the next one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dataset_builders.pdf.captions import parse_caption_start
from dataset_builders.pdf.geometry import box_width
from dataset_builders.pdf.text import Caption
from dataset_builders.records import Box, FigureRecord

_CONTINUED = re.compile(r"^\(?\s*(?:continued|cont'?d|cont\.)\s*\)?\s*[.:]?\s*", re.IGNORECASE)


@dataclass
class PageFlow:
    """What a page's text flow looks like around its figures (mine builds one per page)."""

    number: int
    paragraphs: list[Box]  # body paragraphs (caption blocks excluded)
    captions: list[Caption] = field(default_factory=list)


def continuation_rest(caption: str) -> str | None:
    """For "Figure 4.3 (continued) (c) dimples" the text after the marker ("(c) dimples"); None if the
    caption is not a marked continuation."""
    parsed = parse_caption_start(caption)
    if not parsed:
        return None
    m = _CONTINUED.match(parsed[1])
    return parsed[1][m.end():].strip() if m else None


def _overlap_x(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 * min(box_width(a), box_width(b))


def link_continued(figures: list[FigureRecord], flows: list[PageFlow], captioned: bool) -> int:
    """Give the parts of figures continued across a page break their caption (in place); returns how many."""
    if not captioned:
        return 0
    full: dict[str, str] = {}  # number -> the full caption (the first one that is not a continuation)
    for flow in flows:
        for cap in flow.captions:
            if continuation_rest(cap.text) is None:
                full.setdefault(cap.number, cap.text)
    linked = 0
    for fig in figures:  # marked continuations
        rest = continuation_rest(fig.caption) if fig.caption else None
        if rest == "" and fig.number in full:
            fig.caption = full[fig.number]
            linked += 1
    by_page = {f.number: f for f in flows}
    for flow in flows:
        nxt = by_page.get(flow.number + 1)
        if nxt is None:
            continue
        for fig in [f for f in figures if f.page == flow.number and not f.caption]:
            if _text_below(fig.bbox, flow):
                continue  # the text flow goes on below it on this page: not cut by the page break
            cap = _caption_opening(nxt, fig.bbox)
            if cap is not None:
                fig.number = cap.number
                fig.caption = full.get(cap.number, cap.text) if continuation_rest(cap.text) == "" else cap.text
                linked += 1
    return linked


def _text_below(bbox: Box, flow: PageFlow) -> bool:
    """Does any paragraph or caption of the page's flow lie below this figure (in its column)?"""
    boxes = flow.paragraphs + [c.bbox for c in flow.captions]
    return any(b[1] >= bbox[3] - 2 and _overlap_x(b, bbox) for b in boxes)


def _caption_opening(flow: PageFlow, above_box: Box) -> Caption | None:
    """The caption that opens this page in the column of ``above_box``: no paragraph above it."""
    column = [c for c in flow.captions if _overlap_x(c.bbox, above_box)]
    if not column:
        return None
    first = min(column, key=lambda c: c.bbox[1])
    if any(p[3] <= first.bbox[1] + 2 and _overlap_x(p, above_box) for p in flow.paragraphs):
        return None
    return first
