"""How the builder encodes the JPEGs it derives from other images (panel crops, rotated copies).

The policy (the dataset card records it):
- An image derived from a JPEG keeps that JPEG's own quantisation tables and chroma subsampling
  (transposed for a 90/270-degree rotation, so every frequency keeps its step). Re-quantising with the
  tables the pixels were already quantised with adds almost no loss, and the copy is no bigger than its
  source: a fixed quality 95 made copies of q75-q90 sources about twice their size (and slower to
  encode and write) for no detail the source still held.
- Anything else (a page render, a decoded Flate/JPX/CMYK image, a PNG) is encoded at quality 95 with
  Pillow's default chroma subsampling for it (4:2:0).
- A panel crop or rotated copy of a colour image whose three channels are equal (a grey micrograph
  stored as RGB) is written as a grey JPEG (with the source's luma table): the same pixels for a loader
  that converts to RGB, a third of the data to crop, rotate, encode, write and decode again.

Usage:
    from dataset_builders.jpeg import decode, encode
    image, tables = decode(path)       # RGB or L pixels + the source's tables (None if not a JPEG)
    data = encode(image.crop(box), tables)
    small, full_size = decode_for_statistics(path, 256)   # reduced-scale pixels for hash and cues
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, JpegImagePlugin

from dataset_builders.image_cues import flatten_to_rgb_or_l

FALLBACK_QUALITY = 95  # sources that are not JPEGs
POLICY = ("derived JPEGs keep the source JPEG's quantisation tables and chroma subsampling (transposed for "
          f"90/270-degree rotations); other sources: quality {FALLBACK_QUALITY}, 4:2:0; crops and rotated copies "
          "of grey RGB images written as grey")


@dataclass(frozen=True)
class JpegTables:
    """A JPEG's quantisation tables (natural order, as Pillow reads them) and Pillow's subsampling code."""

    qtables: tuple[tuple[int, ...], ...]
    subsampling: int  # 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0, -1 = Pillow's default

    def transposed(self) -> JpegTables:
        """The tables of the same image turned by 90 or 270 degrees (horizontal <-> vertical frequency)."""
        return JpegTables(tuple(tuple(t[(i % 8) * 8 + i // 8] for i in range(64)) for t in self.qtables),
                          self.subsampling)


def source_tables(image: Image.Image) -> JpegTables | None:
    """The tables of an image opened from a JPEG file, None for any other format."""
    quantization = getattr(image, "quantization", None)
    if image.format != "JPEG" or not quantization:
        return None
    return JpegTables(tuple(tuple(t) for _, t in sorted(quantization.items())), JpegImagePlugin.get_sampling(image))


def is_grey_rgb(image: Image.Image) -> bool:
    """An RGB image whose three channels are equal everywhere."""
    if image.mode != "RGB":
        return False
    # comparing the bands' bytes: 1.4 ms on a 1250 x 1000 figure, against 7 ms for
    # ImageChops.difference + getbbox per band pair (measured on the heavy benchmark corpus)
    r, g, b = (band.tobytes() for band in image.split())
    return r == g == b


def decode(path: Path, grey: bool = False) -> tuple[Image.Image, JpegTables | None]:
    """Decode an image file once, fully, as 'L' or 'RGB' (with grey=True: grey RGB as 'L'), and its tables."""
    with Image.open(path) as im:
        im.load()
        tables = source_tables(im)
        image = flatten_to_rgb_or_l(im)
    if grey and is_grey_rgb(image):
        image = image.convert("L")
    return image, tables


def decode_for_statistics(path: Path, min_side: int) -> tuple[Image.Image, tuple[int, int]]:
    """Pixels good enough for statistics on a copy at most min_side px long (hash, image cues), and the
    image's full size.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (Pillow's draft: libjpeg scales while
    it decodes) as long as its longest side stays >= min_side: a 1000 x 625 panel decodes at 500 x 313,
    and the statistics' own box downsampling then reaches the same 250 x 157 copy from there. Other
    formats are decoded whole.
    """
    with Image.open(path) as im:
        size = im.size
        if im.format == "JPEG" and im.mode in ("L", "RGB"):
            scale = 1
            while scale < 8 and max(size) // (scale * 2) >= min_side:
                scale *= 2
            if scale > 1:
                im.draft(im.mode, (size[0] // scale, size[1] // scale))
        im.load()
        return flatten_to_rgb_or_l(im), size


def encode(image: Image.Image, tables: JpegTables | None) -> bytes:
    """JPEG bytes of an 'L' or 'RGB' image under the policy above."""
    buf = io.BytesIO()
    if tables is None:
        image.save(buf, "JPEG", quality=FALLBACK_QUALITY)
    else:
        qtables = [list(t) for t in tables.qtables]
        if image.mode == "L":
            qtables = qtables[:1]
        elif len(qtables) == 1:  # a grey source's table for colour pixels: use it for chroma too
            qtables = qtables * 2
        image.save(buf, "JPEG", qtables=qtables, subsampling=tables.subsampling)
    return buf.getvalue()
