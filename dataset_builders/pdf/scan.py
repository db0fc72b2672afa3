"""Scanned pages: one image covering the page and an OCR text layer (invisible text, render mode 3).

Such a page has no embedded figure to take: its figures are parts of the page image. ``scan_page_image``
recognises the page (one image over most of the page, and the page's text, if any, all invisible);
``scan_regions`` cuts the figures out: the page is rendered small and grey, the OCR'd text lines are
blanked out (they are the paper's text and captions), and what ink remains, grouped across narrow gaps, is
figure. A caption line, a paragraph or a band of white paper therefore delimits a figure, as on a printed
page. The regions become graphics of kind "scan"; the mine stage matches them to the OCR'd captions and
renders them from the page like any rendered figure.
"""

from __future__ import annotations

import numpy as np
import pymupdf
from scipy import ndimage

from dataset_builders.pdf.geometry import box_height, box_width
from dataset_builders.pdf.images import Graphic
from dataset_builders.pdf.text import TextBlock
from dataset_builders.records import Box

SCAN_COVER = 0.8  # one image over this share of the page area makes the page a scan
# ... with most of the page's characters hidden (the OCR layer). The visible rest is a stamp printed over the
# scan by whoever posted it ("Downloaded from ... by ... on ...": 77 characters on every page of a real 1973
# scan whose pages hold 365-1,578 hidden ones); a page with a picture behind visible text has none hidden.
INVISIBLE_SHARE = 0.5
SCAN_DPI = 50  # region finding works on a small render: 1.44 pt per pixel, ~0.25 Mpx for A4
INK_DROP = 40  # grey levels below the paper's brightness that make a pixel ink
TEXT_LINE_CHARS = 12  # a line this long is text even outside a paragraph (short ones are figure labels)
DENSE_LINE = 0.45  # a "text line" with more ink than this is OCR read over a picture: not blanked
GAP_PT = 10.0  # ink closer than this belongs to one figure
EDGE_PT = 12.0  # scanner shadows along the page edges are not figures
MIN_REGION_PT = 40.0  # as MIN_BBOX_PT of figures.py: smaller regions are specks, rules, stamps
MIN_INK = 0.01  # a region with less ink than this in its box is noise (a line plot has ~3 %: 1 % keeps it)


def _area(b: Box) -> float:
    return max(0.0, box_width(b)) * max(0.0, box_height(b))


def scan_page_image(page: pymupdf.Page, graphics: list[Graphic], rect: pymupdf.Rect) -> Graphic | None:
    """The page image if this page is a scan with an OCR text layer, else None (a scan without text has
    nothing that tells text from figure: it stays one image, as before)."""
    page_area = rect.width * rect.height
    big = [g for g in graphics if g.kind in ("image", "inline") and _area(g.bbox) >= SCAN_COVER * page_area]
    if len(big) != 1:
        return None
    trace = page.get_texttrace()
    chars = sum(len(t["chars"]) for t in trace)
    invisible = sum(len(t["chars"]) for t in trace if _hidden(t))
    if chars == 0 or invisible < INVISIBLE_SHARE * chars:
        return None  # no text layer to delimit figures with, or visible text over a background picture
    return big[0]


def _hidden(span: dict) -> bool:
    """Text that does not show: invisible (render mode 3: get_texttrace "type" 3, pymupdf/__init__.py
    Page.get_texttrace, PyMuPDF 2.0 as installed; checked: insert_text(render_mode=3) gives type 3, ordinary
    text type 0), fully transparent, or filled white (older OCR tools -- Acrobat's "searchable image" of the
    2000s -- wrote the recognised text in white under the page image)."""
    return (span.get("type") == 3 or span.get("opacity", 1.0) == 0
            or all(c >= 0.95 for c in (span.get("color") or (0.0,))))


def _text_lines(blocks: list[TextBlock], caption_blocks: set[int]) -> list[Box]:
    """Boxes of the OCR'd lines that are text: paragraph and caption lines, and every line long enough to be
    a line of text. Short lines outside paragraphs stay: they are the labels printed inside figures."""
    out: list[Box] = []
    for i, blk in enumerate(blocks):
        whole = i in caption_blocks or blk.is_paragraph
        for ln in blk.lines:
            if whole or len(ln.text.strip()) >= TEXT_LINE_CHARS:
                out.append(ln.bbox)
    return out


def scan_regions(page: pymupdf.Page, blocks: list[TextBlock], caption_blocks: set[int]) -> list[Box]:
    """Figure regions (page points) of a scanned page: its ink without the OCR'd text lines, grouped."""
    pix = page.get_pixmap(dpi=SCAN_DPI, colorspace=pymupdf.csGRAY, alpha=False)
    grey = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.stride)[:, :pix.width]
    sx, sy = pix.width / page.rect.width, pix.height / page.rect.height
    paper = float(np.percentile(grey, 80))  # most of a printed page is paper
    ink = grey < paper - INK_DROP
    edge_x, edge_y = int(EDGE_PT * sx), int(EDGE_PT * sy)
    ink[:edge_y, :] = False
    ink[-edge_y:, :] = False
    ink[:, :edge_x] = False
    ink[:, -edge_x:] = False
    for b in _text_lines(blocks, caption_blocks):
        x0, y0 = max(int(b[0] * sx) - 1, 0), max(int(b[1] * sy) - 1, 0)
        x1, y1 = int(np.ceil(b[2] * sx)) + 1, int(np.ceil(b[3] * sy)) + 1
        cell = ink[y0:y1, x0:x1]
        if cell.size and cell.mean() <= DENSE_LINE:
            cell[:] = False
    grow = max(1, int(round(GAP_PT * sx / 2)))
    joined = ndimage.binary_dilation(ink, structure=np.ones((2 * grow + 1, 2 * grow + 1), bool))
    labels, n = ndimage.label(joined)
    regions: list[Box] = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        own = ink[sl] & (labels[sl] == k)
        ys, xs = np.nonzero(own)
        if not len(xs):
            continue
        y0, y1 = sl[0].start + ys.min(), sl[0].start + ys.max() + 1
        x0, x1 = sl[1].start + xs.min(), sl[1].start + xs.max() + 1
        box = (x0 / sx, y0 / sy, x1 / sx, y1 / sy)
        if box_width(box) < MIN_REGION_PT or box_height(box) < MIN_REGION_PT:
            continue
        if own.sum() < MIN_INK * (x1 - x0) * (y1 - y0):
            continue
        regions.append(tuple(round(float(v), 2) for v in box))  # type: ignore[arg-type]
    return sorted(regions, key=lambda b: (b[1], b[0]))


def scan_graphics(page: pymupdf.Page, blocks: list[TextBlock], caption_blocks: set[int],
                  image: Graphic) -> list[Graphic]:
    """The figure regions of a scanned page as graphics of kind "scan" (pixel size: the scan's own)."""
    px = image.width / max(box_width(image.bbox), 1e-6)
    py = image.height / max(box_height(image.bbox), 1e-6)
    return [Graphic(bbox=r, kind="scan", width=int(box_width(r) * px), height=int(box_height(r) * py))
            for r in scan_regions(page, blocks, caption_blocks)]
