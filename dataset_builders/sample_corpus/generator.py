"""Deterministic sample corpus: fake but realistic fractography papers as PDFs, with known ground truth.

The default build run, every test and the speed benchmark use it. Each paper is an A4 PDF made with
PyMuPDF (``papers``): a title page (title, authors, DOI, abstract), body text citing figures and panels in
the styles real papers use ("Fig. 2b", "Fig. 2(b)", "Figs. 2a and 2c", "Figure 3", "Fig. 4a–c", negations),
a publisher logo repeated in every header, and 2-4 figures of four kinds (single raster, multi-panel in one
raster, multi-panel of separate rasters, non-fracture: vector plot / vector schematic / optical
micrograph / photograph), each with a caption directly below. Some figures reprint an image of another
paper (byte-identical, re-encoded or rescaled) so dedup across papers can be tested.

``ground_truth.json`` (records in ``truth``) holds, per figure, its page, bbox, number, caption as printed,
kind, whether it is a fractograph, its panels with the canonical features the text asserts (negated ones
excluded), the embedded images with their bboxes, and which earlier figure a reprint duplicates. Same
(n_papers, seed) -> byte-identical files. ``--bad-inputs`` also writes the bad-input corpus (``bad_inputs``).

Usage: python -m dataset_builders.sample_corpus --out output/sample_corpus --papers 12 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fracto_core.files import write_bytes_atomic, write_text_atomic

from .bad_inputs import write_bad_inputs
from .manual_set import write_manual
from .figures import Reprintable
from .papers import PaperMaker, open_access_icon, publisher_logo
from .truth import CorpusTruth, TruthPaper


GENERATOR_VERSION = "2"
REPRINT_MODES = ("identical", "reencoded", "rescaled")


def generate_corpus(dest: Path, n_papers: int = 12, seed: int = 0) -> CorpusTruth:
    """Write ``dest/papers/paper_NNN.pdf``, ``dest/manual/`` and ``dest/ground_truth.json``.

    Every odd-numbered paper reprints the first single fractograph of the paper before it
    (identical bytes, re-encoded or rescaled, in turn). Stale ``paper_*.pdf`` files of an earlier,
    larger run in ``dest/papers`` are removed so the folder holds exactly this corpus.
    """
    if n_papers < 1:
        raise ValueError(f"n_papers must be at least 1 (got {n_papers})")
    dest = Path(dest)
    logo, icon = publisher_logo(), open_access_icon()
    papers: list[TruthPaper] = []
    previous: list[Reprintable] = []
    wanted: set[str] = set()
    for i in range(n_papers):
        reprint = (previous[0], REPRINT_MODES[(i // 2) % 3]) if i % 2 == 1 and previous else None
        maker = PaperMaker(i, seed, reprint, logo, icon)
        data, truth = maker.build()
        write_bytes_atomic(dest / truth.file, data)
        wanted.add(Path(truth.file).name)
        papers.append(truth)
        previous = maker.reprintables
    for stale in sorted((dest / "papers").glob("paper_*.pdf")):
        if stale.name not in wanted:
            stale.unlink()
    manual = write_manual(dest / "manual", seed)
    corpus = CorpusTruth(generator_version=GENERATOR_VERSION, seed=seed, n_papers=n_papers, papers=papers,
                         manual=manual)
    write_text_atomic(dest / "ground_truth.json", corpus.model_dump_json(indent=1) + "\n")
    return corpus


# --- CLI -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_builders.sample_corpus",
        description="Write the deterministic sample corpus: fake fractography papers (PDF), a manual "
                    "rare-feature collection and ground_truth.json. Same --papers/--seed give byte-identical files.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write papers/, manual/, ground_truth.json")
    parser.add_argument("--papers", type=int, default=12, help="number of papers (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--bad-inputs", action="store_true",
                        help="also write the bad-input corpus to OUT/bad_inputs (truncated, encrypted, bomb, ...)")
    args = parser.parse_args(argv)
    truth = generate_corpus(args.out, args.papers, args.seed)
    n_figs = sum(len(p.figures) for p in truth.papers)
    n_panels = sum(len(f.panels) for p in truth.papers for f in p.figures)
    print(f"wrote {len(truth.papers)} papers ({n_figs} figures, {n_panels} panels), "
          f"{len(truth.manual)} manual images, ground truth to {args.out / 'ground_truth.json'}")
    if args.bad_inputs:
        for name, reason in write_bad_inputs(args.out / "bad_inputs", args.seed).items():
            print(f"bad input {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
