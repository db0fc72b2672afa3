"""Pages stored with /Rotate: read in the frame the reader sees.

Slide decks exported on portrait paper and landscape pages of theses are stored with /Rotate 90 or 270: the
content is laid out sideways and the viewer turns it. PyMuPDF reports two frames on such a page. ``Page.rect``
(and ``Page.bound()``) is the rotated page as displayed, and ``get_pixmap(clip=...)`` clips in that frame; but
"except Page.rect, resp. Page.bound (both reflect when the page is rotated), all coordinates returned by methods
and attributes pertain to the unrotated page" (PyMuPDF docs/page.rst, note on coordinates, since v1.17). Checked
on PyMuPDF 2.0 as installed: on a 600 x 400 page turned by /Rotate 90 (``rect`` 400 x 600), an image placed at
(50, 50, 250, 150) and a caption under it come back at those unrotated positions from ``get_text("dict")``,
``get_image_info()``, ``get_bboxlog()`` and ``get_drawings()`` alike. Read that way, a slide title that stands
above a picture lies beside it; the miner's rules (a caption under its figure, text next to it, boxes clipped
to ``rect``, regions rendered by clip) then mix the two frames.

``upright`` turns such a page upright in memory with ``Page.remove_rotation()`` (pymupdf/__init__.py: it
prepends the derotation matrix as a ``cm`` to the page's contents, swaps the mediabox sides and sets /Rotate 0:
same appearance, one frame), before anything reads the page; the file is not touched. Every path of the mine
stage (text blocks, image boxes, drawings, scans, OCR, renders) then shares the displayed frame. Pages without
rotation are left exactly as they are.

A CropBox smaller than the MediaBox (PowerPoint exports: a 718 x 538 slide cropped out of a 612 x 792 page) is
not carried by ``remove_rotation`` in PyMuPDF 2.0: the content lands shifted against the new mediabox. So the
crop is lifted first (CropBox = MediaBox), the page derotated, and the old crop set again turned by the page's
``rotation_matrix`` taken while uncropped. Checked on every rotated page of the registry's slide deck and
photocopied chapter and on generated pages (90/180/270, cropped or not, mediabox at the origin or not): the
render is pixel-identical and every word lands where ``rotation_matrix`` puts it. ``Page.cropbox`` is in
top-left coordinates while ``Page.mediabox`` is in PDF coordinates (``_set_pagebox`` flips y against
``mediabox.y1``), which do not agree on a cropped page whose MediaBox does not start at (0, 0): such a page is
left as stored, as before this module.
"""

from __future__ import annotations

import pymupdf


def upright(page: pymupdf.Page) -> pymupdf.Page:
    """The page turned so that its stored content is in the frame it is displayed in (/Rotate 0)."""
    if not page.rotation % 360:
        return page
    mb = pymupdf.Rect(page.mediabox)  # PDF coordinates
    crop = pymupdf.Rect(page.cropbox)  # top-left coordinates
    cropped = crop != pymupdf.Rect(mb.x0, 0, mb.x1, mb.y1 - mb.y0)
    if cropped and (mb.x0 or mb.y0):
        return page
    try:
        if cropped:
            page.parent.xref_set_key(page.xref, "CropBox", f"[{mb.x0:g} {mb.y0:g} {mb.x1:g} {mb.y1:g}]")
        turn = pymupdf.Matrix(page.rotation_matrix)
        page.remove_rotation()
        if cropped:
            page.set_cropbox(crop * turn)
    except Exception:  # noqa: BLE001 - a page MuPDF cannot rewrite is read as stored, as before
        return page
    return page
