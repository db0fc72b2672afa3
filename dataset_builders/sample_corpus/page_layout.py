"""Page geometry, fonts and low-level page writing for the sample corpus's PDFs: A4 margins and type
sizes, printed text width, queued text placement (written above any image), greedy word wrap, and the
image encoding and hashing the figures and their ground truth share.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pymupdf
from PIL import Image

from .truth import Box


PAGE = pymupdf.paper_rect("a4")  # 595 x 842 pt
X0, X1 = 56.0, 539.0
TOP, BOTTOM = 74.0, 792.0
COL_GAP = 18.0  # gutter between the columns of a two-column page
COL_W = (X1 - X0 - COL_GAP) / 2  # 232.5 pt
BODY_FS, BODY_LEAD = 9.5, 12.2
CAPTION_FS, CAPTION_LEAD = 8.5, 10.6
FONT = pymupdf.Font("helv")  # Nimbus Sans (Helvetica metrics), embedded so "–", "µ", "²" print and extract
FONT_BOLD = pymupdf.Font("hebo")
FIXED_DATE = "D:20260101000000Z"


_ADVANCE: dict[tuple[int, int], float] = {}


def text_width(text: str, size: float, font: pymupdf.Font = FONT) -> float:
    """Printed width of text in points (glyph advances cached per font and character)."""
    key = id(font)
    total = 0.0
    for ch in text:
        adv = _ADVANCE.get((key, ord(ch)))
        if adv is None:
            adv = _ADVANCE[(key, ord(ch))] = font.glyph_advance(ord(ch))
        total += adv
    return total * size


def put_text(page: pymupdf.Page, pos: tuple[float, float], text: str, fontname: str = "F1",
             fontsize: float = 9.5, color: tuple[float, float, float] = (0, 0, 0)) -> None:
    """Queue text for the page (F1 regular, F2 bold); flush_text writes it, above any image."""
    writers = page.__dict__.setdefault("_fracto_writers", {})
    if color not in writers:
        writers[color] = pymupdf.TextWriter(page.rect)
    writers[color].append(pos, text, font=FONT_BOLD if fontname == "F2" else FONT, fontsize=fontsize)


def flush_text(page: pymupdf.Page) -> None:
    """Write the text queued by put_text onto the page, one TextWriter per colour."""
    for color, writer in page.__dict__.pop("_fracto_writers", {}).items():
        writer.write_text(page, color=color)


def wrap(text: str, width: float, size: float, font: pymupdf.Font = FONT) -> list[tuple[int, str]]:
    """Greedy word wrap; returns (start offset in text, line) pairs. Lines joined by ' ' give text back."""
    lines: list[tuple[int, str]] = []
    space = text_width(" ", size, font)
    start, cur, cur_w, pos = 0, [], 0.0, 0
    for word in text.split(" "):
        w = text_width(word, size, font)
        if cur and cur_w + space + w > width:
            lines.append((start, " ".join(cur)))
            start, cur, cur_w = pos, [], 0.0
        cur_w = w if not cur else cur_w + space + w
        cur.append(word)
        pos += len(word) + 1
    if cur:
        lines.append((start, " ".join(cur)))
    return lines


def encode_image(arr: np.ndarray, fmt: str, quality: int = 88) -> bytes:
    """JPEG at ``quality``, or PNG at compression level 1."""
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def as_box(r: pymupdf.Rect) -> Box:
    """A rect as the ground truth records it (rounded to 1/1000 pt)."""
    return (round(r.x0, 3), round(r.y0, 3), round(r.x1, 3), round(r.y1, 3))
