"""Benchmark: the dataset builder against the floor any PDF miner must pay.

Usage:
    python benchmarks/bench_build.py --papers 200 --repeats 3

The floor is a bare PyMuPDF pass over the same PDFs with the same worker count: open each file, read
every page's text layout once and decode every embedded image once (pdf/floor.py: floor_pass). The
builder runs the whole pipeline (offline caption labeller, default settings, fresh output). We report
ratios, not absolute times: the machines are shared and noisy, so each figure is the best of
--repeats runs. Targets (issue #2): builder/floor <= 3x; builder --workers 2 >= 1.7x faster than 1.
Each line also gives the CPU seconds (this process and its workers, user + system) of the same best
runs: on a machine shared with other jobs the CPU ratio moves much less than the wall-clock one.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from dataset_builders import sample_corpus
from dataset_builders.build import build
from dataset_builders.config import BuildConfig
from dataset_builders.pdf.floor import floor_pass


def cpu_seconds() -> float:
    """User + system CPU of this process and of its finished (waited-for) child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_floor(pdfs: list[Path], workers: int) -> float:
    t0 = time.perf_counter()
    if workers == 1:
        n = sum(floor_pass(p) for p in pdfs)
    else:
        with ProcessPoolExecutor(workers) as pool:
            n = sum(pool.map(floor_pass, pdfs, chunksize=4))
    assert n > 0, "the floor pass decoded no image"
    return time.perf_counter() - t0


def time_builder(papers: Path, out: Path, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    config = BuildConfig(papers=papers, out=out, workers=workers)
    t0 = time.perf_counter()
    build(config, progress=False, fresh=True)
    return time.perf_counter() - t0


def best(fn, repeats: int) -> tuple[float, float]:
    """(wall, cpu) seconds of the run with the best wall-clock time."""
    runs = []
    for _ in range(repeats):
        cpu0 = cpu_seconds()
        wall = fn()
        runs.append((wall, cpu_seconds() - cpu0))
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--papers", type=int, default=200, help="sample PDFs to generate")
    ap.add_argument("--repeats", type=int, default=3, help="runs per measurement (the best is kept)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fracto-bench-"))
    corpus = work / "corpus"
    if not (corpus / "ground_truth.json").exists():
        t0 = time.perf_counter()
        sample_corpus.generate_corpus(corpus, n_papers=args.papers, seed=1)
        print(f"generated {args.papers} sample papers in {time.perf_counter() - t0:.1f}s")
    pdfs = sorted((corpus / "papers").glob("*.pdf"))
    size_mb = sum(p.stat().st_size for p in pdfs) / 1e6
    print(f"corpus: {len(pdfs)} PDFs, {size_mb:.1f} MB")

    rows = {}
    for workers in (1, 2):
        rows[workers] = (best(lambda: time_floor(pdfs, workers), args.repeats),
                         best(lambda: time_builder(corpus / "papers", work / f"out{workers}", workers), args.repeats))
        (floor, floor_cpu), (builder, builder_cpu) = rows[workers]
        print(f"workers={workers}: floor {floor:.2f}s, builder {builder:.2f}s, builder/floor = {builder / floor:.2f}x"
              f"  (cpu: floor {floor_cpu:.2f}s, builder {builder_cpu:.2f}s, {builder_cpu / floor_cpu:.2f}x)")
    print(f"builder speed-up workers 2 vs 1: {rows[1][1][0] / rows[2][1][0]:.2f}x "
          f"(floor's own: {rows[1][0][0] / rows[2][0][0]:.2f}x)")


if __name__ == "__main__":
    main()
