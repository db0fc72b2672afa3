"""Perceptual hashes: one function for dedup, benchmark exclusion and split checks.

A 64-bit DCT hash (imagehash.phash) survives rescaling and recompression, so the same micrograph
reprinted in two papers (or in a benchmark) hashes within a few bits of itself.
"""

from __future__ import annotations

import imagehash
from PIL import Image


def image_phash(image: Image.Image) -> str:
    """16-hex-digit perceptual hash of an image (any mode)."""
    return str(imagehash.phash(image.convert("L"), hash_size=8))


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of equal length."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")
