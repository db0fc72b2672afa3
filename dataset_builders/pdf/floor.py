"""The speed floor any PDF miner pays, for benchmarks/bench_build.py: open, text layout, one decode per image."""

from __future__ import annotations

from pathlib import Path

import pymupdf

from dataset_builders.pdf.text import TEXT_FLAGS


def floor_pass(pdf: Path) -> int:
    """The bare minimum any miner pays: open, text layout per page, decode every embedded image once.

    Uses the same text flags as the miner (text only). Returns the number of images decoded.
    """
    n = 0
    seen: set[int] = set()
    with pymupdf.open(pdf) as doc:
        for page in doc:
            page.get_text("dict", flags=TEXT_FLAGS)
            for item in page.get_images(full=True):
                xref = item[0]
                if xref in seen:
                    continue
                seen.add(xref)
                try:
                    pymupdf.Pixmap(doc, xref)
                except Exception:  # noqa: BLE001, S112 - e.g. a decompression bomb MuPDF refuses
                    continue
                n += 1
    return n
