"""Embedded images of a PDF: each placement's xref (without decoding), publisher logos repeated in the
header/footer band, and the ImageWriter that saves each image of a paper once.

Why not ``get_image_info(xrefs=True)``: PyMuPDF finds the xrefs by decoding every image of the page and
hashing the pixels, i.e. a full decode of every image once per page it is shown on -- more than the whole
decode floor by itself. We match each placed image to its xref by its declared signature instead (size in
pixels, bits, colour components, mask, compressed length), which needs no decoding at all.

Images are written as cheaply as the format allows: an embedded baseline JPEG in RGB or grey is written
with its source bytes (no decode, no re-encode); anything else is decoded once per paper with
``pymupdf.Pixmap(doc, xref)``, normalised to 8-bit RGB or L and written as JPEG q95 with Pillow
(libjpeg-turbo: ~15x faster than MuPDF's own JPEG writer here). Vector figures are rendered from their page
region at ``config.render_dpi``.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image

from dataset_builders.config import BuildConfig
from dataset_builders.records import Box
from fracto_core.files import write_bytes_atomic

JPEG_QUALITY = 95
TINY_RENDER_PX = 64 * 64  # rendered regions at most this big are saved as PNG (cost is negligible)
BAND = 0.12  # header / footer band: top and bottom share of the page height
REPEAT_PAGES = 3  # an image in the band on this many pages is a publisher logo
_FLT_EPSILON = np.finfo(np.float32).eps


# --- placements and their xrefs ----------------------------------------------------------------------

@dataclass
class Graphic:
    bbox: Box
    kind: str  # "image" (xref), "inline" (inline image, no xref), "drawing", "scan" (a region of a page scan)
    xref: int = 0
    width: int = 0  # declared pixels
    height: int = 0
    info: dict = field(default_factory=dict)


def match_image_xrefs(doc: pymupdf.Document, infos: list[dict], images: list[tuple]) -> list[int]:
    """The xref of each placed image (``get_image_info()`` entries), 0 for inline images, without decoding.

    Candidates share the declared width, height and bits per component; among several, the best has the
    same colour-space family ("DeviceRGB", "ICCBased", "Indexed" ...), the same soft-mask presence and the
    nearest compressed length (MuPDF reports the stream length plus a small constant), then list order.
    """
    by_dims: dict[tuple[int, int, int], list[tuple]] = {}
    for item in images:
        by_dims.setdefault((item[2], item[3], item[4]), []).append(item)
    lengths: dict[int, int] = {}
    out: list[int] = []
    for info in infos:
        cands = by_dims.get((info["width"], info["height"], info["bpc"]), [])
        if len(cands) <= 1:
            out.append(cands[0][0] if cands else 0)
            continue
        family = str(info.get("cs-name", "")).split("(")[0]
        best = None
        for order, item in enumerate(cands):
            xref, smask, cs = item[0], item[1], item[5]
            if xref not in lengths:
                lengths[xref] = _stream_length(doc, xref)
            key = (cs != family, bool(smask) != bool(info.get("has-mask")),
                   abs(info.get("size", 0) - lengths[xref]), order)
            if best is None or key < best[0]:
                best = (key, xref)
        out.append(best[1])
    return out


def _stream_length(doc: pymupdf.Document, xref: int) -> int:
    kind, value = doc.xref_get_key(xref, "Length")
    if kind == "int":
        return int(value)
    try:
        return len(doc.xref_stream_raw(xref))
    except Exception:  # noqa: BLE001 - a broken stream just loses the tie-break
        return 0


_DO_OPERATOR = re.compile(rb"/([^\s/\[\]<>(){}%]+)\s+Do\b")


def placed_xrefs(page: pymupdf.Page, infos: list[dict], images: list[tuple]) -> list[int] | None:
    """The xref of each placed image, exactly: the page's own ``/Name Do`` operators in content order.

    get_image_info() lists placements in content order, so the n-th image Do is the n-th entry. Returns
    None when that pairing cannot be trusted (images inside form XObjects, inline images, a count or a
    declared size that disagrees): the caller then asks MuPDF, which is exact but decodes the images.
    """
    names = {item[7]: item for item in images if item[9] == 0}  # referencer 0: the page's own resources
    if len(names) != len(images):
        return None
    try:
        used = [n.decode("latin-1") for n in _DO_OPERATOR.findall(page.read_contents())]
    except Exception:  # noqa: BLE001 - unreadable content: let MuPDF decide
        return None
    order = [names[n] for n in used if n in names]
    if len(order) != len(infos):
        return None
    for item, info in zip(order, infos):
        if (item[2], item[3], item[4]) != (info["width"], info["height"], info["bpc"]):
            return None
    return [item[0] for item in order]


def page_text_and_graphics(doc: pymupdf.Document, page: pymupdf.Page, rect: pymupdf.Rect, text_flags: int
                           ) -> tuple[dict, list[Graphic]]:
    """``page.get_text("dict", flags=text_flags)`` and ``page_graphics(doc, page, rect)``, the same results, with
    one MuPDF pass over a page without images instead of two.

    The page is read once into a TextPage with ``text_flags | TEXT_PRESERVE_IMAGES``. Without image blocks it is
    the text-only TextPage (the flags differ in image blocks only), so its text is used; with images the text
    is read again without them (MuPDF starts a new text block after each image block). Its image list is what
    ``get_image_info()`` (a TextPage with ``TEXT_PRESERVE_IMAGES`` alone) lists, in the same order, but for two
    keys: ``number`` (the block's index, which the text blocks shift; not used here) and ``bbox``, which
    ``TEXT_MEDIABOX_CLIP`` clips to the image's clip path: ``_placement_box`` computes the whole one from the
    image's ``transform`` as MuPDF does. Checked on every page of the 62 real PDFs (5,639 placements) and
    tests/test_build_speed.py.
    """
    text = page.get_textpage(flags=text_flags | pymupdf.TEXT_PRESERVE_IMAGES)
    infos = text.extractIMGINFO()
    if not infos:
        return page.get_text("dict", textpage=text), []
    del text
    for info in infos:
        info["bbox"] = _placement_box(info["transform"])
    return page.get_text("dict", flags=text_flags), page_graphics(doc, page, rect, infos)


def _placement_box(transform: tuple[float, ...]) -> tuple[float, float, float, float]:
    """The box of the unit square under an image's matrix: MuPDF's ``fz_transform_rect`` in its float32
    arithmetic (the matrix' values are float32 already), so the very numbers ``get_image_info`` reports."""
    a, b, c, d, e, f = (np.float32(v) for v in transform)
    if abs(b) < _FLT_EPSILON and abs(c) < _FLT_EPSILON:  # fz_transform_rect's axis-aligned case
        x0, x1 = (e, a + e) if a >= 0 else (a + e, e)
        y0, y1 = (f, d + f) if d >= 0 else (d + f, f)
        return float(x0), float(y0), float(x1), float(y1)
    xs = (e, c + e, a + c + e, a + e)  # the corners (0, 0), (0, 1), (1, 1), (1, 0)
    ys = (f, d + f, b + d + f, b + f)
    return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))


def page_graphics(doc: pymupdf.Document, page: pymupdf.Page, rect: pymupdf.Rect,
                  infos: list[dict] | None = None) -> list[Graphic]:
    """The placed images of a page (``rect``: the page's ``page.rect``, read once by the caller; ``infos``: its
    ``get_image_info()`` when the caller has it, see page_text_and_graphics).

    ``get_image_info()`` takes no textpage argument: it makes its own TextPage with
    ``flags=TEXT_PRESERVE_IMAGES`` (pymupdf/__init__.py, Page.get_image_info, PyMuPDF as installed), so a
    page read for its text too is interpreted twice (~0.6 ms each on the heavy corpus); page_text_and_graphics
    spares the second pass on pages without images. One shared TextPage with image blocks does not give the
    same text on pages with images: MuPDF starts a new text block after every image block (200 of the heavy
    corpus's 1,200 pages were segmented differently, e.g. "(a) (b) (c)" in three blocks, and 7 of the 10
    real-literature papers got different records). One display list replayed into both TextPages kept
    those records but drops whitespace-only text (the list culls empty boxes), for ~0.3 s of ~5 s.
    """
    infos = page.get_image_info() if infos is None else infos
    if not infos:  # 800 of the heavy corpus's 1,200 pages: no get_images / content read (0.06 s in all)
        return []
    images = page.get_images(full=True)
    xrefs = placed_xrefs(page, infos, images)
    if xrefs is None:
        dims = [(item[2], item[3], item[4]) for item in images]
        if len(set(dims)) == len(dims):  # no two images look alike: their declared properties decide
            xrefs = match_image_xrefs(doc, infos, images)
        else:  # exact, at the price of decoding the page's images
            infos = page.get_image_info(xrefs=True)
            xrefs = [int(i.get("xref", 0)) for i in infos]
    out = []
    for info, xref in zip(infos, xrefs):
        b = info["bbox"]
        box = (max(b[0], rect.x0), max(b[1], rect.y0), min(b[2], rect.x1), min(b[3], rect.y1))
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            continue
        out.append(Graphic(bbox=box, kind="image" if xref else "inline", xref=xref,
                           width=int(info["width"]), height=int(info["height"]), info=info))
    return out


def repeated_keys(doc: pymupdf.Document, pages: list[tuple[int, list[Graphic]]], page_h: dict[int, float]) -> set:
    """Image keys (xref, or raw-stream digest) placed in the header/footer band on >= REPEAT_PAGES pages.

    ``pages`` holds (page number, graphics of that page) in page order.
    """
    seen: dict[object, set[int]] = {}
    for number, graphics in pages:
        h = page_h[number]
        for g in graphics:
            cy = (g.bbox[1] + g.bbox[3]) / 2
            if g.kind != "image" or BAND * h < cy < (1 - BAND) * h:
                continue
            seen.setdefault(("x", g.xref), set()).add(number)
            digest = stream_digest(doc, g.xref)
            if digest is not None:  # an unreadable stream is matched by xref only
                seen.setdefault(("d", digest), set()).add(number)
    return {k for k, v in seen.items() if len(v) >= REPEAT_PAGES}


def is_repeated(doc: pymupdf.Document, g: Graphic, keys: set, h: float) -> bool:
    if g.kind != "image" or not keys:
        return False
    cy = (g.bbox[1] + g.bbox[3]) / 2
    if BAND * h < cy < (1 - BAND) * h:
        return False
    if ("x", g.xref) in keys:
        return True
    digest = stream_digest(doc, g.xref)
    return digest is not None and ("d", digest) in keys


def stream_digest(doc: pymupdf.Document, xref: int) -> str | None:
    """md5 of an image's raw (still encoded) stream: the same picture under another xref has the same one;
    None when the stream can not be read."""
    try:
        return hashlib.md5(doc.xref_stream_raw(xref)).hexdigest()
    except Exception:  # noqa: BLE001 - MuPDF raises its own types for broken streams
        return None


# --- saving images ---------------------------------------------------------------------------------

def pil_from_pixmap(pix: pymupdf.Pixmap) -> Image.Image:
    """An 8-bit RGB or L Pillow image from any MuPDF pixmap (CMYK, Lab, DeviceN, alpha, stencil masks)."""
    if pix.colorspace is None:  # a stencil mask: alpha only, painted where alpha is set
        img = Image.frombytes("L", (pix.width, pix.height), pix.samples, "raw", "L", pix.stride)
        return Image.eval(img, lambda v: 255 - v)
    name = pix.colorspace.name.lower()
    base_n = pix.n - pix.alpha
    is_rgb = base_n == 3 and "rgb" in name
    is_grey = base_n == 1 and "gray" in name
    if not (is_rgb or is_grey):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
        base_n = 3
    if pix.alpha:
        pix = pymupdf.Pixmap(pix, 0)  # drop alpha
    mode = "RGB" if base_n == 3 else "L"
    return Image.frombytes(mode, (pix.width, pix.height), pix.samples, "raw", mode, pix.stride)


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


_FILTER_FORMAT = {"/DCTDecode": "jpeg", "/JPXDecode": "jpx", "/FlateDecode": "png", "/JBIG2Decode": "jbig2",
                  "/CCITTFaxDecode": "ccitt", "/LZWDecode": "lzw", "/RunLengthDecode": "rle"}


@dataclass
class SavedImage:
    image: str
    width: int
    height: int
    source_format: str


class ImageWriter:
    """Writes each embedded image of one paper at most once (an xref shown on several pages is one file)."""

    def __init__(self, doc: pymupdf.Document, folder: Path, rel_folder: str, config: BuildConfig):
        self.doc, self.folder, self.rel_folder, self.config = doc, folder, rel_folder, config
        self.saved: dict[int, SavedImage | str] = {}  # xref -> saved image, or the reason it was refused
        self.decoded = 0

    def embedded(self, g: Graphic) -> SavedImage | str:
        if g.xref not in self.saved:
            self.saved[g.xref] = self._save_embedded(g)
        return self.saved[g.xref]

    def _save_embedded(self, g: Graphic) -> SavedImage | str:
        if g.width * g.height > self.config.max_image_pixels:
            return "decompression_bomb"
        kind, filt = self.doc.xref_get_key(g.xref, "Filter")
        cs_name = g.info.get("cs-name", "")
        keep = (kind == "name" and filt == "/DCTDecode" and g.info.get("bpc") == 8
                and g.info.get("colorspace") in (1, 3) and ("RGB" in cs_name or "Gray" in cs_name))
        name = f"img-x{g.xref}.jpg"
        if keep:  # baseline JPEG in RGB/grey: the source bytes are the file (no decode, no re-encode)
            data = self.doc.xref_stream_raw(g.xref)
            write_bytes_atomic(self.folder / name, data, durable=False)
            return SavedImage(f"{self.rel_folder}/{name}", g.width, g.height, "jpeg")
        fmt = _FILTER_FORMAT.get(filt, "raw") if kind == "name" else (
            _FILTER_FORMAT.get(filt.strip("[] ").split()[-1], "raw") if kind == "array" else "raw")
        try:
            pix = pymupdf.Pixmap(self.doc, g.xref)
            self.decoded += 1
            img = pil_from_pixmap(pix)
            del pix
        except Exception:  # noqa: BLE001 - MuPDF raises plain RuntimeErrors for broken streams
            return "undecodable_image"
        write_bytes_atomic(self.folder / name, _jpeg_bytes(img), durable=False)
        return SavedImage(f"{self.rel_folder}/{name}", img.width, img.height, fmt)

    def rendered(self, page: pymupdf.Page, bbox: Box, stem: str) -> SavedImage | str:
        """The page region rendered at --render-dpi; a region that would exceed --max-image-pixels there (a
        poster-size page) at the resolution that fits in it (as rendered at 150 dpi, a 6,000 pt square page's
        figure was a 210 Mpx JPEG, 2.2 GB at its peak, that the panels stage refused as a decompression bomb)."""
        dpi = self.config.render_dpi
        pixels = (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) * (dpi / 72) ** 2
        zoom = dpi / 72 * (0.99 * self.config.max_image_pixels / pixels) ** 0.5 \
            if pixels > self.config.max_image_pixels else None
        try:
            if zoom is None:
                pix = page.get_pixmap(clip=pymupdf.Rect(bbox), dpi=dpi, alpha=False)
            else:
                pix = page.get_pixmap(clip=pymupdf.Rect(bbox), matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
        except Exception:  # noqa: BLE001
            return "render_failed"
        if pix.width * pix.height <= TINY_RENDER_PX:
            name, data = f"{stem}.png", pix.tobytes("png")
        else:
            name, data = f"{stem}.jpg", _jpeg_bytes(pil_from_pixmap(pix))
        write_bytes_atomic(self.folder / name, data, durable=False)
        return SavedImage(f"{self.rel_folder}/{name}", pix.width, pix.height, "rendered")
