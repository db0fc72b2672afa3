"""Benchmark: the builder's groupings (union-find users) of two code versions, interleaved in one process.

Usage:
    git archive <commit> | tar -x -C /tmp/before          # the version to compare with
    python benchmarks/bench_grouping.py --before /tmp/before [--rounds 7]

Loads pdf/proximity.py, pdf/figures.py and dedup.py of ``--before`` and of this checkout side by side (each
file's project imports resolve to this checkout) and times, in alternating order per round, with the CPU
clock: proximity_groups on a 3,000-box page through the grid (six separate clusters of small paths), on
4,000 pages of 20 boxes (the pairwise rounds), figures.pairwise_groups on the same pages (a barrier), and
dedup.group_panels on 22,000 hashes (2,000 exact reprints). Prints the medians, new/old, and whether both
versions gave the same groups.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FILES = {"proximity": "dataset_builders/pdf/proximity.py", "figures": "dataset_builders/pdf/figures.py",
         "dedup": "dataset_builders/dedup.py"}


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def cases(m: dict, rng: random.Random) -> dict:
    spots = [(x + rng.uniform(0, 150), y + rng.uniform(0, 150)) for _ in range(500)
             for x, y in ((0, 0), (300, 0), (0, 300), (300, 300), (0, 600), (300, 600))]
    big = [(x, y, x + rng.uniform(0.5, 3), y + rng.uniform(0.5, 3)) for x, y in spots]
    pages = [[(x, y, x + 30, y + 30) for x, y in ((rng.uniform(0, 500), rng.uniform(0, 700)) for _ in range(20))]
             for _ in range(4000)]
    hashes = [f"{rng.getrandbits(64):016x}" for _ in range(20000)]
    panels = [(f"p{i // 8:05d}", f"p{i:06d}", h) for i, h in enumerate(hashes)]
    panels += [(f"q{i:05d}", f"q{i:06d}", hashes[i * 7]) for i in range(2000)]
    return {
        "proximity_groups, grid (3,000 boxes)": lambda: m["proximity"].proximity_groups(big, 4.0, pairwise_max=0),
        "proximity_groups, pairwise (4,000 pages x 20 boxes)":
            lambda: [m["proximity"].proximity_groups(p, 12.0) for p in pages],
        "figures.pairwise_groups (4,000 pages x 20 boxes)":
            lambda: [m["figures"].pairwise_groups(p, 12.0, [(0, 0, 1, 1)]) for p in pages],
        "dedup.group_panels (22,000 panels)":
            lambda: [g.model_dump_json() for g in m["dedup"].group_panels(panels, 6)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a folder holding the older version of the repo")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; old and new alternate which runs first")
    args = parser.parse_args()
    versions = {v: {name: load(f"{v}_{name}", root / path) for name, path in FILES.items()}
                for v, root in (("old", args.before), ("new", REPO))}
    times: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    outputs: dict[str, dict[str, object]] = {"old": {}, "new": {}}
    for r in range(args.rounds):
        for v in ("old", "new") if r % 2 == 0 else ("new", "old"):
            for name, run in cases(versions[v], random.Random(1)).items():
                t = time.process_time()
                outputs[v][name] = run()
                times[v].setdefault(name, []).append(time.process_time() - t)
    print(f"load average {os.getloadavg()[0]:.2f}; CPU ms, medians of {args.rounds}")
    for name, old in times["old"].items():
        o, n = statistics.median(old), statistics.median(times["new"][name])
        same = outputs["old"][name] == outputs["new"][name]
        print(f"{name}: old {o * 1000:.1f}, new {n * 1000:.1f}, new/old {n / o:.3f}, same groups: {same}")


if __name__ == "__main__":
    main()
