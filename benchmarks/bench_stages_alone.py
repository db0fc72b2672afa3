"""Benchmark: the CPU seconds of the filter, label and export stages of two or more code versions, each stage
re-run alone on a copy of one finished build, the versions interleaved.

Usage:
    git archive <commit> | tar -x -C /tmp/before          # a version to compare with (any folder holding the repo)
    python benchmarks/bench_stages_alone.py --build /tmp/real200 --tree before=/tmp/before --tree after=. --rounds 4

Why: these stages cost ~2.5 s of a ~17 s build on the real-size corpus, so a whole build (bench_compare.py)
cannot resolve a change of a few tenths of a second in them at this machine's load. Each round copies the
build's stages/ (hard links: `cp -al`; every stage writes through a temporary name, so the build is not
changed) without the caches an update would reuse (export_image_sizes.tsv, export_verdicts.tsv,
export_meta_keys.tsv, filter_cache.txt, label_cache.txt), then runs filter, label and export on it in a fresh
process per tree, after importing the stage modules and reading the code's digests (stage_cache.pin_code) as
a build does before its first stage; export's own parts (write_samples, check_dataset, write_card) are timed
too. Prints each run, then per tree the medians and after/before ratios against the first tree. The
copies are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_build import SAME_TREE_CHECK  # noqa: E402
from benchmarks.bench_compare import parse_trees, turned  # noqa: E402

CACHES = ("export_image_sizes.tsv", "export_verdicts.tsv", "export_meta_keys.tsv", "filter_cache.txt",
          "label_cache.txt")
CHILD = r"""
import importlib, json, sys, time
from pathlib import Path
from dataset_builders.stages import STAGE_MODULES
from dataset_builders.stage_cache import pin_code
for module in STAGE_MODULES.values():
    importlib.import_module(module)
pin_code(list(STAGE_MODULES.values()), list(STAGE_MODULES.values()))
from dataset_builders import dataset_card, export, filter as filter_stage, label
from dataset_builders.config import BuildConfig
from dataset_builders.stage_paths import StagePaths
work = Path(sys.argv[1])
parts = {}
def timed(module, name, key):
    f = getattr(module, name)
    def run(*args, **kwargs):
        t = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            parts[key] = parts.get(key, 0.0) + time.process_time() - t
    setattr(module, name, run)
timed(export, "write_samples", "export.write")
timed(export, "check_dataset", "export.validate")
timed(dataset_card, "write_card", "export.card")
if hasattr(dataset_card, "card_base"):  # export's workers: 1 reads the card's data before write_card (export.run)
    timed(dataset_card, "card_base", "export.card")
stored = json.loads((work / "build_config.json").read_text())
config = BuildConfig.model_validate({**stored, "out": work, "workers": 1})
paths = StagePaths(work)
cpu = {}
for name, module in (("filter", filter_stage), ("label", label), ("export", export)):
    t = time.process_time()
    module.run(paths, config, progress=False)
    cpu[name] = time.process_time() - t
print("STAGES " + json.dumps({**cpu, **parts}))
""" + SAME_TREE_CHECK


def run_alone(tree: Path, build: Path, work: Path) -> dict[str, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(build / "stages"), str(work / "stages")], check=True)
    shutil.copy(build / "build_config.json", work)
    for name in CACHES:
        (work / "stages" / name).unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(work)], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                          capture_output=True, text=True)
    if proc.returncode:  # the child's own error names the file and the reason
        raise SystemExit(f"stages of {tree} on {work} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("STAGES "))[len("STAGES "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, required=True, help="a finished build's output folder (stages/ is copied)")
    ap.add_argument("--tree", action="append", required=True, metavar="NAME=PATH",
                    help="a version of the repository to run the stages with (repeat: two or more)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds of one run per tree "
                         "(a multiple of the number of trees: each runs first equally often)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fracto-bench-stages"), help="scratch folder (removed)")
    args = ap.parse_args()
    trees = parse_trees(ap, args.tree)
    if args.rounds < 1:  # 0 rounds: the median of no runs, an IndexError at the end
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    if not (args.build / "stages").is_dir():
        ap.error(f"--build {args.build}: no stages/ folder")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    try:
        for r in range(args.rounds):
            for name, tree in turned(trees, r):
                runs[name].append(run_alone(tree, args.build.resolve(), args.work / name))
                print(f"round {r + 1} {name}: cpu s " + ", ".join(f"{k} {v:.3f}" for k, v in runs[name][-1].items()),
                      flush=True)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    medians = {name: {k: statistics.median(run[k] for run in got) for k in got[0]} for name, got in runs.items()}
    first = next(iter(medians))
    for name, median in medians.items():
        ratios = "" if name == first else "; /" + first + ": " + ", ".join(
            f"{k} {v / medians[first][k]:.2f}x" for k, v in median.items() if medians[first].get(k))
        print(f"medians of {args.rounds} rounds, {name} (cpu s): " + ", ".join(f"{k} {v:.3f}" for k, v in median.items())
              + ratios)


if __name__ == "__main__":
    main()
