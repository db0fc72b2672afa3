"""Benchmark: the builder at two corpus sizes in one run -- is time per PDF flat and memory bounded?

Usage:
    python benchmarks/bench_scale.py                               # real-size corpus, 200 and 2,000 PDFs
    python benchmarks/bench_scale.py --papers 100 500              # quicker, for development
    python benchmarks/bench_scale.py --corpus heavy --workers 1

Builds the small corpus, the large one, then the small one again (each a fresh build in a folder of its
own, in a fresh subprocess, as benchmarks/bench_build.py does), and prints for every build: wall and CPU
seconds, wall and CPU seconds per PDF, panels and samples, the per-stage wall/CPU seconds, and the peak
resident memory of the main process and of the largest worker (ru_maxrss); then the ratios large / small:
time per PDF (wall and CPU), peak memory, and every stage's time per PDF.
Peak memory is robust to a busy machine; times are not: the two small builds, before and after the large
one, show how much the machine moved meanwhile (their spread is printed), and the ratios use their mean.
Targets (issue 24): time per PDF within 1.2x of the small run's, peak memory within 1.2x of it.
--update N (default 100) then adds N new papers to the large corpus and builds again onto the large build
(the literature loop's update: mine and panels resume per paper, old papers keep their split) and prints
the update's wall and CPU seconds as a share of the large build's (target <= 10 %) and every stage's, so
what does not shrink with the update shows. The new papers are the same generator's next indices
(hard links to the large corpus' files + N new files, under /tmp, cached).
The corpora (benchmarks/heavy_corpus.py, --sizes real by default) are cached under /tmp by size and seed;
2,000 real-size PDFs take ~3 CPU minutes to generate and their build writes ~10 GB.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import heavy_corpus  # noqa: E402
from benchmarks.bench_build import (  # noqa: E402
    corpus_papers,
    load_average,
    remove_leftovers,
    time_builder,
    wait_for_file_system,
)


def describe(label: str, n_pdfs: int, run: dict) -> None:
    print(f"{label}: {n_pdfs} PDFs, {run['panels']} panels, {run['samples']} samples: wall {run['wall']:.1f}s "
          f"({run['wall'] / n_pdfs * 1000:.0f} ms/PDF), cpu {run['cpu']:.1f}s ({run['cpu'] / n_pdfs * 1000:.0f} ms/PDF), "
          f"kernel {run['sys']:.1f}s; peak memory: main {run['main_kib'] / 1024:.0f} MiB, "
          f"largest worker {run['workers_kib'] / 1024:.0f} MiB")
    print("  stages (wall/cpu s): " + ", ".join(f"{name} {w:.1f}/{c:.1f}" for name, (w, c) in run["stages"].items()))


def mean_run(runs: list[dict]) -> dict:
    """The mean of the small builds' times (memory: the largest), for the ratios."""
    out = dict(runs[0])
    for key in ("wall", "cpu", "sys"):
        out[key] = sum(r[key] for r in runs) / len(runs)
    for key in ("main_kib", "workers_kib", "peak_kib"):
        out[key] = max(r[key] for r in runs)
    out["stages"] = {name: tuple(sum(r["stages"][name][i] for r in runs) / len(runs) for i in (0, 1))
                     for name in runs[0]["stages"]}
    return out


def ratios(small: dict, n_small: int, large: dict, n_large: int) -> None:
    def per_pdf(run: dict, key: str, n: int) -> float:
        return run[key] / n

    print(f"ratios {n_large} / {n_small} PDFs ({n_large / n_small:.0f}x the papers):")
    print(f"  time per PDF: wall {per_pdf(large, 'wall', n_large) / per_pdf(small, 'wall', n_small):.2f}x, "
          f"cpu {per_pdf(large, 'cpu', n_large) / per_pdf(small, 'cpu', n_small):.2f}x  (target <= 1.2x)")
    print(f"  peak memory: {large['peak_kib'] / small['peak_kib']:.2f}x (main process "
          f"{large['main_kib'] / small['main_kib']:.2f}x, largest worker {large['workers_kib'] / small['workers_kib']:.2f}x;"
          f" target <= 1.2x)")
    print("  stage time per PDF (wall/cpu): " + ", ".join(
        f"{name} {(large['stages'][name][0] / n_large) / max(small['stages'][name][0] / n_small, 1e-9):.2f}/"
        f"{(large['stages'][name][1] / n_large) / max(small['stages'][name][1] / n_small, 1e-9):.2f}"
        for name in large["stages"] if small["stages"][name][0] >= 0.05))


def update_papers(kind: str, large: Path, n_large: int, n_new: int, seed: int) -> Path:
    """A papers folder holding the large corpus' PDFs (hard links) and n_new papers more (the generator's next
    indices, as a later fetch into the same folder would add); cached like the corpora."""
    folder = Path(f"/tmp/fracto-{kind}-corpus-{n_large}+{n_new}-seed{seed}")
    papers, marker = folder / "papers", folder / "complete"
    stamp = f"{n_large} {n_new} {seed} {kind}\n"
    if marker.exists() and marker.read_text() == stamp:
        return papers
    papers.mkdir(parents=True, exist_ok=True)
    for pdf in sorted(large.glob("*.pdf")):
        if not (papers / pdf.name).exists():
            os.link(pdf, papers / pdf.name)
    for i in range(n_large, n_large + n_new):
        (papers / f"heavy-{i:03d}.pdf").write_bytes(heavy_corpus.make_paper(i, seed, kind))
    marker.write_text(stamp)
    return papers


def update_share(update: dict, full: dict, n_new: int, n_large: int) -> None:
    """The update's time as a share of the full build's, in all and per stage."""
    print(f"update of {n_new} new PDFs onto the {n_large}-PDF build: wall {update['wall']:.1f}s = "
          f"{update['wall'] / full['wall']:.1%} of the full build's, cpu {update['cpu']:.1f}s = "
          f"{update['cpu'] / full['cpu']:.1%} (target <= 10 %; the new papers are {n_new / n_large:.1%} of it)")
    print("  stage cpu s, update / full build: " + ", ".join(
        f"{name} {update['stages'][name][1]:.1f}/{full['stages'][name][1]:.1f} "
        f"({update['stages'][name][1] / max(full['stages'][name][1], 1e-9):.0%})" for name in update["stages"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=heavy_corpus.SIZES, default="real",
                    help="real: images sized like real papers' (heavy_corpus.py --sizes real); heavy: 0.78 Mpx")
    ap.add_argument("--papers", type=int, nargs=2, default=(200, 2000), metavar=("SMALL", "LARGE"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--update", type=int, default=100, metavar="N",
                    help="after the large build, add N new papers and build again onto it (0: skip)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait after a sync before each build")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fracto-bench-scale"),
                    help="scratch folder: every build writes its own subfolder; all removed at the end")
    args = ap.parse_args()
    n_small, n_large = args.papers
    small_papers = corpus_papers(args.corpus, n_small, args.seed)
    large_papers = corpus_papers(args.corpus, n_large, args.seed)
    work = args.work / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        probe = wait_for_file_system(work / "probe")
        print(f"file creation before the runs: {probe:.0f} us per new file; load average {load_average()}")
        runs = []
        for k, (n, papers) in enumerate([(n_small, small_papers), (n_large, large_papers), (n_small, small_papers)]):
            run = time_builder(papers, work / f"build-{k}-{n}", args.workers, args.settle)
            describe(f"build {k + 1} (--workers {args.workers})", n, run)
            print(f"  load average after it: {load_average()}", flush=True)
            runs.append(run)
            if k == 1 and args.update:  # the literature loop: new papers onto the large build
                more = update_papers(args.corpus, large_papers, n_large, args.update, args.seed)
                update = time_builder(more, work / f"build-{k}-{n}", args.workers, args.settle, update=True)
                describe(f"update (+{args.update} PDFs onto build 2)", n_large + args.update, update)
                update_share(update, run, args.update, n_large)
                print(f"  load average after it: {load_average()}", flush=True)
        small_runs = [runs[0], runs[2]]
        spread = max(r["wall"] for r in small_runs) / min(r["wall"] for r in small_runs)
        print(f"the two {n_small}-PDF builds differ by {spread:.2f}x in wall time (the machine's noise meanwhile)")
        ratios(mean_run(small_runs), n_small, runs[1], n_large)
    finally:
        remove_leftovers(args.work)


if __name__ == "__main__":
    main()
