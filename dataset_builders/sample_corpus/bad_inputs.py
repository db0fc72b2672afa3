"""The bad-input corpus of the sample generator: a truncated PDF, random bytes, an encrypted PDF, an empty
file, non-PDFs, a PDF without figures, a decompression bomb (40000x40000 pixels declared, small on disk),
and valid figures in unusual encodings (CMYK JPEG, 16-bit grey, 1-bit, RGBA, JPEG 2000) a good miner keeps.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image

from fracto_core.files import write_bytes_atomic

from .page_layout import (BODY_FS, BODY_LEAD, CAPTION_FS, FIXED_DATE, PAGE, X0, X1, encode_image, flush_text,
                          put_text, wrap)
from .papers import PaperMaker, open_access_icon, publisher_logo
from .text import FILLER
from .textures import render


BAD_INPUT_REASONS = {
    "truncated": "a valid PDF cut in half (MuPDF may repair it partly)",
    "corrupt": "random bytes with a .pdf name",
    "encrypted": "needs a user password",
    "empty_file": "zero bytes",
    "not_a_pdf": "not a PDF at all (text, or a PNG renamed .pdf)",
    "no_figures": "a valid PDF with text but no images or drawings",
    "decompression_bomb": "an image declaring 40000x40000 pixels, small on disk",
    "ok": "an unusual but valid image that a good miner keeps",
}
BOMB_SIDE = 40_000
USER_PASSWORD = "fracto-user"
OWNER_PASSWORD = "fracto-owner"
BAD_CAPTION = "Fig. 1. SEM fractograph showing dimples."


def _single_figure_doc(insert) -> pymupdf.Document:
    """A one-page paper whose one figure is placed by ``insert(page, rect) -> None``, caption below."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE.width, height=PAGE.height)
    put_text(page, (X0, 90), "Fracture of a test specimen", fontname="F1", fontsize=14)
    put_text(page, (X0, 110), "As shown in Fig. 1, the fracture surface exhibits dimples.", fontname="F1",
             fontsize=BODY_FS)
    rect = pymupdf.Rect(X0 + 80, 130, X0 + 80 + 320, 130 + 240)
    insert(page, rect)
    put_text(page, (X0 + 80, rect.y1 + 14), BAD_CAPTION, fontname="F1", fontsize=CAPTION_FS)
    flush_text(page)
    doc.set_metadata({"creationDate": FIXED_DATE, "modDate": FIXED_DATE, "producer": "PyMuPDF",
                      "creator": "fracto sample_corpus"})
    return doc


def _doc_bytes(doc: pymupdf.Document, **kw) -> bytes:
    data = doc.tobytes(garbage=kw.pop("garbage", 3), deflate=kw.pop("deflate", True), no_new_id=True, **kw)
    doc.close()
    return data


def _raw_image_doc(width: int, height: int, bpc: int, stream: bytes) -> bytes:
    """A figure whose image XObject is written by hand (16-bit grey, or a bomb that must never be decoded).

    A small placeholder is inserted with PyMuPDF, then its object and (already Flate-compressed)
    stream are replaced, so nothing ever decodes the declared pixels while writing.
    """
    placeholder = encode_image(np.full((8, 8), 128, np.uint8), "png")
    holder: dict[str, int] = {}

    def insert(page: pymupdf.Page, rect: pymupdf.Rect) -> None:
        holder["xref"] = page.insert_image(rect, stream=placeholder, keep_proportion=False)

    doc = _single_figure_doc(insert)
    xref = holder["xref"]
    doc.update_object(xref, f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
                            f"/ColorSpace /DeviceGray /BitsPerComponent {bpc} >>")
    doc.update_stream(xref, stream, compress=False)
    doc.xref_set_key(xref, "Filter", "/FlateDecode")
    return _doc_bytes(doc, garbage=1, deflate=False)


def zero_flate(n_rows: int, row_bytes: int, rows_per_chunk: int = 400) -> bytes:
    """zlib stream of n_rows*row_bytes zero bytes without compressing them all.

    After a full flush the deflate state restarts, so every identical chunk compresses to the same
    bytes: compress one chunk, repeat its output, finish, and append the Adler-32 of the zeros
    (a = 1, b = length mod 65521).
    """
    assert n_rows % rows_per_chunk == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(rows_per_chunk * row_bytes)
    first = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    assert first == again
    tail = comp.flush(zlib.Z_FINISH)
    total = n_rows * row_bytes
    adler = ((total % 65521) << 16) | 1
    return b"\x78\xda" + first * (n_rows // rows_per_chunk) + tail + adler.to_bytes(4, "big")


def write_bad_inputs(dest: Path, seed: int = 0) -> dict[str, str]:
    """Write a corpus of bad and unusual inputs to ``dest``; returns file name -> expected reason.

    Reasons are the keys of BAD_INPUT_REASONS; "ok" files hold one valid fractograph in an unusual
    encoding (CMYK JPEG, 16-bit grey, 1-bit, RGBA with an alpha mask, JPEG 2000) with the caption
    BAD_CAPTION, so a good miner keeps it.
    """
    dest = Path(dest)
    rng = np.random.default_rng([seed, 999])
    out: dict[str, str] = {}

    def put(name: str, data: bytes, reason: str) -> None:
        write_bytes_atomic(dest / name, data)
        out[name] = reason

    good, _ = PaperMaker(0, seed, None, publisher_logo(), open_access_icon()).build()
    put("truncated.pdf", good[: len(good) // 2], "truncated")
    put("corrupt.pdf", rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes(), "corrupt")
    put("empty.pdf", b"", "empty_file")
    put("notes.txt", b"Reading list for the fractography project.\nNot a PDF.\n", "not_a_pdf")
    fracto = render("equiaxed_dimples", 480, 360, rng)
    put("png_renamed.pdf", encode_image(fracto, "png"), "not_a_pdf")

    text_doc = pymupdf.open()
    page = text_doc.new_page(width=PAGE.width, height=PAGE.height)
    y = 90.0
    for _, line in wrap(" ".join(FILLER[:8]).format(material="AA7075-T6", n=12), X1 - X0, BODY_FS):
        put_text(page, (X0, y), line, fontname="F1", fontsize=BODY_FS)
        y += BODY_LEAD
    flush_text(page)
    text_doc.set_metadata({"creationDate": FIXED_DATE, "modDate": FIXED_DATE})
    put("text_only.pdf", _doc_bytes(text_doc), "no_figures")

    def image_pdf(data: bytes) -> bytes:
        return _doc_bytes(_single_figure_doc(lambda pg, r: pg.insert_image(r, stream=data, keep_proportion=False)))

    rgb = Image.fromarray(fracto).convert("RGB")
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, "JPEG", quality=90)
    put("cmyk_jpeg.pdf", image_pdf(buf.getvalue()), "ok")
    buf = io.BytesIO()
    Image.fromarray(fracto).convert("1").save(buf, "PNG")  # Floyd-Steinberg dithered, 1 bit per pixel
    put("bilevel_1bit.pdf", image_pdf(buf.getvalue()), "ok")
    alpha = np.full(fracto.shape, 255, np.uint8)
    alpha[:, :24] = 0  # a transparent strip at the left edge
    buf = io.BytesIO()
    Image.fromarray(np.dstack([fracto, fracto, fracto, alpha])).save(buf, "PNG", compress_level=1)
    put("rgba_alpha.pdf", image_pdf(buf.getvalue()), "ok")
    buf = io.BytesIO()
    Image.fromarray(fracto).save(buf, "JPEG2000", quality_mode="rates", quality_layers=[20])
    put("jpx.pdf", image_pdf(buf.getvalue()), "ok")
    g16 = (fracto.astype(">u2") * 257).tobytes()
    put("gray16.pdf", _raw_image_doc(fracto.shape[1], fracto.shape[0], 16, zlib.compress(g16, 6)), "ok")

    encrypted = _single_figure_doc(lambda pg, r: pg.insert_image(r, stream=encode_image(fracto, "jpeg")))
    put("encrypted.pdf", encrypted.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=USER_PASSWORD,
                                           owner_pw=OWNER_PASSWORD, garbage=3, deflate=True), "encrypted")
    encrypted.close()
    put("decompression_bomb.pdf", _raw_image_doc(BOMB_SIDE, BOMB_SIDE, 8, zero_flate(BOMB_SIDE, BOMB_SIDE)),
        "decompression_bomb")
    return dict(sorted(out.items()))
