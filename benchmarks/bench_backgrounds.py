"""Cost of the mine stage's page-background probe (dataset_builders/pdf/background.py), in CPU seconds.

Usage:
    python benchmarks/bench_backgrounds.py --set ../shared/real_literature --set ../real_registry

For every PDF of each set (a folder with ``pdfs/``), in one run: the probe over every placed image of every
page (pages turned upright as the miner does), and the miner's speed floor (open, text layout, one decode per
image: dataset_builders/pdf/floor.py). Prints per set the probe's CPU seconds, how many page-covering images
it judged and found uniform, the floor pass's CPU seconds and the ratio. Every document is judged here,
scanned ones too (the miner skips those: ``PaperRecord.ocr`` set), so on a set with scans this is an upper
bound. CPU seconds, not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pymupdf

from dataset_builders.pdf.background import BackgroundProbe
from dataset_builders.pdf.floor import floor_pass
from dataset_builders.pdf.images import page_graphics
from dataset_builders.pdf.rotation import upright


def measure(folder: Path) -> str:
    probe_s = floor_s = 0.0
    judged = uniform = 0
    for pdf in sorted((folder / "pdfs").glob("*.pdf")):
        t = time.process_time()
        floor_pass(pdf)
        floor_s += time.process_time() - t
        with pymupdf.open(pdf) as doc:
            pages = [upright(doc.load_page(i)) for i in range(doc.page_count)]
            placed = [(page, page_graphics(doc, page, page.rect)) for page in pages]
            probe = BackgroundProbe(doc, max_pixels=10**9)
            t = time.process_time()
            for page, graphics in placed:
                uniform += sum(probe.is_background(g, page.rect) for g in graphics)
            probe_s += time.process_time() - t
            judged += len(probe.by_xref)
    return (f"{folder.name}: probe {probe_s:.3f} CPU s ({judged} page-covering images judged, {uniform} placements "
            f"uniform), floor pass {floor_s:.2f} CPU s, ratio {probe_s / max(floor_s, 1e-9):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--set", dest="sets", action="append", type=Path, required=True, metavar="DIR",
                    help="a folder with pdfs/ (repeatable)")
    for folder in ap.parse_args().sets:
        print(measure(folder), flush=True)


if __name__ == "__main__":
    main()
