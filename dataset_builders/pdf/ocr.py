"""Scanned pages without a text layer: read by OCR (Tesseract, through PyMuPDF), then cut as any scan.

A photocopier scan of a book chapter or an old article is one image per page and no text at all: nothing on
it tells text from figure, and no caption can be read. Where most pages of a document are such bare page
images (``bare_page``: one image over ≥ 80 % of the page, almost no text), ``read_bare_pages`` OCRs them with
``Page.get_textpage_ocr`` and returns what the ordinary scan path needs: the OCR'd text blocks (captions,
paragraphs, citing sentences) and the figure regions ``pdf.scan.scan_graphics`` cuts from the page image
between them. A slide deck with one full-bleed photo is not a scan: the majority rule leaves it alone.

PyMuPDF 2.0 as installed (pymupdf/utils.py ``get_textpage_ocr``; pymupdf/__init__.py ``get_tessdata``):
MuPDF has Tesseract built in and needs only its language data; ``get_tessdata`` takes the folder from
TESSDATA_PREFIX, else from the output of ``tesseract --list-langs`` (so Debian's ``tesseract-ocr
tesseract-ocr-eng`` is enough), else raises RuntimeError. ``full=True`` renders the page at ``dpi``, OCRs
it, and maps the words back to page points. Where no language data is found the pages stay page images
and the caller reports them (reason ``scan_without_text_layer``); nothing crashes.
"""

from __future__ import annotations

import functools
import os
import re
from contextlib import contextmanager
from pathlib import Path

import pymupdf

from dataset_builders.pdf.geometry import box_height, box_width
from dataset_builders.pdf.captions import parse_caption_start
from dataset_builders.pdf.images import Graphic, page_graphics
from dataset_builders.pdf.ocr_text import join_caption_labels
from dataset_builders.pdf.rotation import upright
from dataset_builders.pdf.scan import SCAN_COVER, scan_graphics
from dataset_builders.pdf.text import TEXT_FLAGS, Line, TextBlock, block_of, find_captions, page_blocks

OCR_LANGUAGE = "eng"
# OCR resolution, measured on a 150-dpi photocopier scan (one landscape page, two book pages): at 150 dpi
# Tesseract lost the caption "Fig. 1.18" that 200 and 300 dpi read, at 3.2 / 4.1 / 4.5 s per page.
OCR_DPI = 300
STAMP_CHARS = 100  # "almost no text": a "Downloaded from ... on ..." stamp printed over a scan has ~80
BARE_SHARE = 0.5  # OCR only where at least this share of the document's pages are bare page images


@functools.lru_cache(maxsize=1)
def tessdata() -> str | None:
    """Tesseract's language-data folder holding English, or None (once per process: PyMuPDF asks
    ``tesseract --list-langs`` on every call)."""
    try:
        folder = pymupdf.get_tessdata()
    except Exception:  # noqa: BLE001 - RuntimeError "Tesseract is not installed" (and OSError from the shell)
        return None
    return folder if (Path(folder) / f"{OCR_LANGUAGE}.traineddata").is_file() else None


def bare_page(blocks: list[TextBlock], graphics: list[Graphic], rect: pymupdf.Rect) -> bool:
    """The page has no text, or at most a stamp, and one image covers it (other images may lie on it: the
    masks of a layered scan).

    The page has been turned upright (``pdf.rotation.upright``): image boxes and ``rect`` share one frame.
    """
    if sum(len(ln.text.strip()) for b in blocks for ln in b.lines) > STAMP_CHARS:
        return False
    areas = [(pymupdf.Rect(g.info.get("bbox", g.bbox)) & rect).get_area()
             for g in graphics if g.kind in ("image", "inline")]
    return max(areas, default=0.0) >= SCAN_COVER * rect.width * rect.height


PageRead = tuple[list[TextBlock], list[Graphic], pymupdf.Rect]


def read_bare_pages(doc: pymupdf.Document, pages: dict[int, pymupdf.Page], n_read: int,
                    mode: str) -> tuple[dict[int, PageRead], str, str | None]:
    """OCR the bare pages (number -> page) of a document of which ``n_read`` pages were read.

    Returns the pages read, by number, why the others were not ("" when none is left or the document
    is not a scan), and the OCR state for PaperRecord.ocr (None when the document is not a scan).
    """
    if not pages or len(pages) < BARE_SHARE * n_read:
        return {}, "", None
    numbers = ", ".join(map(str, sorted(pages)))
    if mode == "off":
        return {}, f"page(s) {numbers}: page images without text, not read (--ocr off); each stays one image", "off"
    if tessdata() is None:
        return {}, (f"page(s) {numbers}: page images without text; install tesseract-ocr and tesseract-ocr-eng "
                    "(or set TESSDATA_PREFIX), then build again: this paper alone is mined again; each stays one "
                    "image"), "unavailable"
    read: dict[int, PageRead] = {}
    failed: list[str] = []
    for n, page in sorted(pages.items()):
        try:
            read[n] = ocr_page(doc, page)
        except Exception as exc:  # noqa: BLE001 - MuPDF/Tesseract errors on one page: it stays an image
            failed.append(f"{n} ({type(exc).__name__}: {exc})")
    return read, (f"page(s) {', '.join(failed)}: OCR failed; each stays one image" if failed else ""), "used"


def ocr_page(doc: pymupdf.Document, page: pymupdf.Page) -> PageRead:
    """The OCR'd text blocks of a bare page and its figure regions (graphics of kind "scan").

    A rotated page (photocopies of two book pages side by side are often stored upright with /Rotate 90)
    is read turned upright (``pdf.rotation.upright``; the mine stage already did so), so the OCR'd words, the
    page render and the figure boxes share one coordinate system; the PDF file is not touched.
    """
    upright(page)
    rect = page.rect
    with _quiet_stderr():  # Tesseract prints "Line cannot be recognized!!" for specks straight to stderr
        text = page.get_textpage_ocr(flags=TEXT_FLAGS, language=OCR_LANGUAGE, dpi=OCR_DPI, full=True,
                                     tessdata=tessdata())
    blocks = reblock(page_blocks(page.get_text("dict", textpage=text, flags=TEXT_FLAGS)))
    images = [g for g in page_graphics(doc, page, rect) if g.kind in ("image", "inline")]
    scan = max(images, key=lambda g: box_width(g.bbox) * box_height(g.bbox))
    in_captions = {i for c in find_captions(blocks) for i in c.blocks}
    # every image of the page is a layer of the scan (a layered scan adds high-resolution masks for text and
    # pictures): the figures are the regions of the rendered page, not those layers
    return blocks, scan_graphics(page, blocks, in_captions, scan), rect


@contextmanager
def _quiet_stderr():
    """File descriptor 2 to /dev/null for the duration (Tesseract writes there from C, not through Python)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# OCR reads the dot of "Fig. 1.19" as a comma or colon: "Fig, 1.19." -> "Fig. 1.19."
GAP_LINES = 0.8  # a vertical gap over this many line heights ends an OCR'd block (a blank line, a figure)
SIZE_JUMP = 1.5  # so does a line this much taller or smaller than the one above (OCR read into a picture)
_OCR_LABEL = re.compile(r"^\s*(Fig|FIG)\s*[,:;]\s*(?=\d)")


def reblock(blocks: list[TextBlock]) -> list[TextBlock]:
    """Blocks as a printed page has them. MuPDF groups the OCR'd lines by height only, so a block runs across
    both book pages of a two-page photocopy and a caption starts inside a block, where ``find_captions`` does
    not look. Each block is split into columns (lines that overlap horizontally, in reading order) and each
    column before every line that starts a caption, at every gap wider than a blank line and where the line
    height jumps (words read into a halftone picture come out in erratic sizes); OCR's misread label dots are
    put right."""
    out: list[TextBlock] = []
    for blk in join_caption_labels(blocks):  # "Fig." apart from its number and text (pdf.ocr_text)
        columns: list[list[Line]] = []
        for ln in blk.lines:
            ln.text = _OCR_LABEL.sub(r"\1. ", ln.text, count=1)
            home = next((c for c in columns if min(c[-1].bbox[2], ln.bbox[2]) > max(c[-1].bbox[0], ln.bbox[0])),
                        None)
            if home is None:
                columns.append([ln])
            else:
                home.append(ln)
        for col in columns:
            piece: list[Line] = []
            for ln in col:
                prev = piece[-1] if piece else ln
                if piece and (parse_caption_start(ln.text) or ln.bbox[1] - prev.bbox[3] > GAP_LINES * prev.size
                              or not 1 / SIZE_JUMP < ln.size / max(prev.size, 1e-3) < SIZE_JUMP):
                    out.append(block_of(piece))
                    piece = []
                piece.append(ln)
            out.append(block_of(piece))
    return out
