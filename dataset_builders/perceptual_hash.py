"""Perceptual hashes: one function for dedup, benchmark exclusion and split checks.

A 64-bit DCT hash (imagehash.phash) survives rescaling and recompression, so the same micrograph
reprinted in two papers (or in a benchmark) hashes within a few bits of itself.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image


HASH_INPUT = (32, 32)  # imagehash.phash(hash_size=8) takes the DCT of a 32 x 32 grey copy


def image_phash(image: Image.Image) -> str:
    """16-hex-digit perceptual hash of an image (any mode).

    The 32 x 32 grey copy is made here with reducing_gap (a box reduction, then LANCZOS): the same
    filter as imagehash's own resize at a fifth of its cost on panel-sized images.
    """
    grey = image if image.mode == "L" else image.convert("L")
    small = grey.resize(HASH_INPUT, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return bits_to_hex(imagehash.phash(small, hash_size=8).hash)


def bits_to_hex(bits: np.ndarray) -> str:
    """str(imagehash.ImageHash(bits)) for a hash of 8 x 8 bits: the bits row by row, first bit highest, as
    16 hex digits (imagehash builds a '0'/'1' string bit by bit; this packs them: a tenth of the time)."""
    return np.packbits(bits.ravel()).tobytes().hex()


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of equal length."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")
