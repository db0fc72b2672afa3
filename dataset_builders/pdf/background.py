"""Full-page template backgrounds of slide decks: an embedded image that is the page's paper, not a figure.

Marp, PowerPoint and Beamer templates paint one raster over the whole slide (white or a uniform colour, a
gradient, a logo in a corner) under every slide's text and pictures. Taken as a graphic it joins the slide's
real picture into one two-part figure. ``page_backgrounds`` finds them: an image (with an xref) that covers
at least BACKGROUND_COVER of the page and whose pixels are (near-)uniform. Uniform is read from a small
decode: the image reduced to at most PROBE_PX on its long side, in grey, and the share of pixels that differ
from a neighbour (right or below) by more than EDGE_LEVELS grey levels. A plain or gradient background has
none (a gradient over 200 pixels steps ~1 level), a corner logo or a title bar's edge a few per cent at most;
a photograph, a fractograph or a scanned page of text has edges over a large share of its pixels (text lines
reduced to grey streaks still have a top and a bottom edge), so it stays a graphic.

Cost: a baseline JPEG is decoded at 1/8 scale (libjpeg's DCT scaling, Pillow ``draft``); anything else is
decoded once by MuPDF (a 1280 x 720 Flate background: ~3 ms). Each image is probed once per paper; decks
embed the same background once per slide under new xrefs, so the verdict is also kept by the digest of the
raw stream.

A scanned document (most pages one image without text: pdf.ocr) is not judged at all: its page images are
pages, even a near-blank one (a layered "MRC" scan's colour layer under its text mask is near-uniform on a
title page: 3 of the 19 pages of the registry's photocopied chapter).
"""

from __future__ import annotations

import io

import numpy as np
import pymupdf
from PIL import Image

from dataset_builders.pdf.geometry import box_height, box_width
from dataset_builders.pdf.images import Graphic, pil_from_pixmap, stream_digest

BACKGROUND_COVER = 0.9  # share of the page area an image must cover to be a page background
PROBE_PX = 200  # long side of the reduced copy the pixels are judged on
EDGE_LEVELS = 12  # a neighbour this many grey levels apart is an edge
MAX_EDGE_SHARE = 0.03  # at most this share of edge pixels: uniform (a logo in a corner: ~1 %)


def edge_share(grey: np.ndarray) -> float:
    """The share of pixels differing from their right or lower neighbour by more than EDGE_LEVELS."""
    g = grey.astype(np.int16)
    edges = np.zeros(g.shape, bool)
    edges[:, :-1] |= np.abs(np.diff(g, axis=1)) > EDGE_LEVELS
    edges[:-1, :] |= np.abs(np.diff(g, axis=0)) > EDGE_LEVELS
    return float(edges.mean()) if edges.size else 0.0


def _probe(img: Image.Image) -> np.ndarray:
    img = img.convert("L")
    scale = PROBE_PX / max(img.width, img.height)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BOX)
    return np.asarray(img)


def _decode_small(doc: pymupdf.Document, g: Graphic, raw: bytes) -> np.ndarray | None:
    kind, filt = doc.xref_get_key(g.xref, "Filter")
    if kind == "name" and filt == "/DCTDecode":
        try:
            img = Image.open(io.BytesIO(raw))
            img.draft("L", (max(1, g.width // 8), max(1, g.height // 8)))
            return _probe(img)
        except Exception:  # noqa: BLE001, S110 - Pillow refuses some JPEGs MuPDF reads: decode with MuPDF
            pass
    try:
        return _probe(pil_from_pixmap(pymupdf.Pixmap(doc, g.xref)))
    except Exception:  # noqa: BLE001 - undecodable: not judged here (the image writer reports it)
        return None


class BackgroundProbe:
    """Decides, once per image of one paper, whether a page-covering image is a uniform template background."""

    def __init__(self, doc: pymupdf.Document, max_pixels: int, enabled: bool = True):
        self.doc, self.max_pixels, self.enabled = doc, max_pixels, enabled
        self.by_xref: dict[int, bool] = {}
        self.by_digest: dict[str, bool] = {}

    def is_background(self, g: Graphic, page_rect: pymupdf.Rect) -> bool:
        if not self.enabled or g.kind != "image" or not g.xref or g.width * g.height > self.max_pixels:
            return False
        if box_width(g.bbox) * box_height(g.bbox) < BACKGROUND_COVER * page_rect.width * page_rect.height:
            return False
        if g.xref not in self.by_xref:
            self.by_xref[g.xref] = self._judge(g)
        return self.by_xref[g.xref]

    def _judge(self, g: Graphic) -> bool:
        digest = stream_digest(self.doc, g.xref)
        if digest is None:  # an unreadable stream is not a background we can see
            return False
        if self.doc.xref_get_key(g.xref, "SMask")[0] != "null":  # its picture may live in its mask alone
            return False
        if digest not in self.by_digest:
            grey = _decode_small(self.doc, g, self.doc.xref_stream_raw(g.xref))
            self.by_digest[digest] = grey is not None and edge_share(grey) <= MAX_EDGE_SHARE
        return self.by_digest[digest]
