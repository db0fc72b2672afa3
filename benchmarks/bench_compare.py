"""Benchmark: the builder's CPU seconds of two or more code versions against one floor, interleaved.

Usage:
    git archive <commit> | tar -x -C /tmp/before          # a version to compare with (any folder holding the repo)
    python benchmarks/bench_compare.py --tree before=/tmp/before --tree after=. --rounds 4

On a shared machine the CPU seconds of one build move with the load (a busy core slows memory access; the
same code measured 15.7 and 19.1 s within two hours here), so two versions benchmarked minutes apart cannot
be compared. Each round here runs the floor (benchmarks/bench_build.py's bare PyMuPDF pass, --workers 1),
then one fresh build of every tree, in an order that turns from round to round (so no version is always
the later one while the host drifts; use an even number of rounds with two trees), (--workers 1,
bench_build's child process: imports not timed), and prints
each build's CPU and per-stage CPU seconds (and the CPU outside the stages: the build's start and its report); at the end the medians and builder/floor per tree, and the
per-round ratios, so a burst of load shows as one odd round instead of moving one version only. The
corpus is bench_build's (default: the real-size corpus, 200 papers). Outputs are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import heavy_corpus  # noqa: E402
from benchmarks.bench_build import (  # noqa: E402
    CHILD,
    corpus_papers,
    load_average,
    run_child,
    time_floor,
)
from dataset_builders.workers import keep_freed_memory  # noqa: E402


def build_cpu(tree: Path, papers: Path, out: Path) -> dict:
    """One fresh build (1 worker) with the code of `tree`, in a subprocess; bench_build's BENCH record."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    stdout = run_child([sys.executable, "-c", CHILD, str(papers), str(out), "1", "fresh"],
                       f"the build of {papers} with the code of {tree}", cwd=tree, env=env)
    return json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("BENCH "))[len("BENCH "):])


def turned(trees: dict[str, Path], r: int) -> list[tuple[str, Path]]:
    """The trees in round r's order: turned by one every round. On a host whose speed drifts within minutes (one
    version measured 3.34 -> 3.75 s CPU over five of its runs in a row), a version always run second reads slower."""
    order = list(trees.items())
    return order[r % len(order):] + order[:r % len(order)]


def parse_trees(ap: argparse.ArgumentParser, specs: list[str]) -> dict[str, Path]:
    """{name: folder} of the --tree NAME=PATH arguments (an argparse error for a folder without dataset_builders/)."""
    trees = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not (Path(path) / "dataset_builders").is_dir():
            ap.error(f"--tree {spec!r}: expected NAME=PATH of a folder holding dataset_builders/")
        trees[name] = Path(path).resolve()
    return trees


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=PATH",
                    help="a version of the repository to build with (repeat: two or more)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds of floor + one build per tree "
                         "(a multiple of the number of trees: each runs first equally often)")
    ap.add_argument("--corpus", choices=(*heavy_corpus.SIZES, "sample"), default="real")
    ap.add_argument("--papers", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fracto-bench-compare"), help="scratch folder (removed)")
    args = ap.parse_args()
    trees = parse_trees(ap, args.tree)
    if args.rounds < 1 or args.papers < 1:  # 0 rounds: the median of no runs, a traceback after the corpus
        ap.error(f"--rounds and --papers must be at least 1, got {args.rounds} and {args.papers}")
    keep_freed_memory()  # as bench_build: the floor runs with the builder's allocator setting
    papers = corpus_papers(args.corpus, args.papers, args.seed)
    pdfs = sorted(papers.glob("*.pdf"))
    work = args.work / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    floors: list[float] = []
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    print(f"corpus: {len(pdfs)} PDFs; load average before: {load_average()}", flush=True)
    try:
        for r in range(args.rounds):
            floors.append(time_floor(pdfs, 1)["cpu"])
            print(f"round {r + 1}: floor cpu {floors[-1]:.2f}s", flush=True)
            for name, tree in turned(trees, r):
                run = build_cpu(tree, papers, work / f"{name}-{r}")
                cpu[name].append(run["cpu"])
                outside = run["cpu"] - sum(c for _, c in run["stages"].values())  # build start, report: fixed costs
                print(f"  {name}: cpu {run['cpu']:.2f}s ({run['cpu'] / floors[-1]:.2f}x), wall {run['wall']:.1f}s; "
                      "stage cpu s: " + ", ".join(f"{k} {c:.2f}" for k, (_, c) in run["stages"].items())
                      + f"; outside the stages {outside:.2f}", flush=True)
            print(f"  load average: {load_average()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(floors)
    print(f"medians of {args.rounds} rounds (cpu s): floor {floor:.2f}, "
          + ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in cpu.items()))
    for name, v in cpu.items():
        print(f"{name}: builder/floor {statistics.median(v) / floor:.2f}x (medians); per round "
              + " ".join(f"{b / f:.2f}" for b, f in zip(v, floors)))


if __name__ == "__main__":
    main()
