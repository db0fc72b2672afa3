"""Benchmark: the Hugging Face export (dataset_builders.export_hf) against copying the same image files.

Usage:
    python benchmarks/bench_export_hf.py                         # heavy corpus, 200 papers: generate, build, measure
    python benchmarks/bench_export_hf.py --build /tmp/heavy/out  # an existing build

All measurements run in this process, interleaved, on the same files: "copy" copies every image file of the
published samples (shutil.copyfile, i.e. sendfile: the kernel copies page cache to page cache) into a fresh
folder; "read+write copy" does the same through user space (what any format that packs the files must do at
least); "export" writes the Parquet shards, card and
attribution (export_hf.export, every licence allowed, since the heavy corpus states none). The best of
--repeats runs of each is kept and the ratio export / copy printed (goal: <= 1.5). The machine is shared: the
numbers are noisy (the load average is printed with them); the ratio, measured in the same run, is the figure
to compare. Also printed: the process's peak RSS and the images' total size (the export streams bounded row
groups, so the first does not grow with the second).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import heavy_corpus  # noqa: E402
from dataset_builders import export_hf  # noqa: E402
from dataset_builders.licences import KNOWN_IDS  # noqa: E402
from dataset_builders.publish import SPLITS, select  # noqa: E402


def copy_images(images: list[Path], dest: Path) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    start = time.perf_counter()
    for i, src in enumerate(images):
        shutil.copyfile(src, dest / f"{i:06d}{src.suffix}")
    return time.perf_counter() - start


def read_write_images(images: list[Path], dest: Path) -> float:
    """The same copy through user space (read, then write): the least any format that packs files must do."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    start = time.perf_counter()
    for i, src in enumerate(images):
        (dest / f"{i:06d}{src.suffix}").write_bytes(src.read_bytes())
    return time.perf_counter() - start


def run_export(build: Path, dest: Path) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    start = time.perf_counter()
    export_hf.export(build, dest, KNOWN_IDS, progress=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, help="an existing build's output folder (default: build the heavy corpus)")
    ap.add_argument("--papers", type=int, default=200, help="heavy corpus papers to generate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each measurement (the best is kept)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fracto-bench-export-hf"))
    args = ap.parse_args()

    build = args.build
    if build is None:
        from dataset_builders.build import build as run_build
        from dataset_builders.config import BuildConfig

        papers = heavy_corpus.generate(args.work / f"corpus-{args.papers}-seed{args.seed}", args.papers, args.seed)
        build = args.work / f"build-{args.papers}-seed{args.seed}"
        if not (build / "dataset" / "dataset_info.json").exists():
            print(f"building the heavy corpus ({args.papers} papers) into {build} ...", flush=True)
            run_build(BuildConfig(papers=papers, out=build, manual=None, workers=2), progress=False)
    selection = select(build, KNOWN_IDS)
    images = [s.image for split in SPLITS for s in selection.samples[split]]
    total = sum(p.stat().st_size for p in images)
    print(f"{len(images)} images, {total / 2**20:.1f} MiB, from {build}")
    copies, user_copies, exports = [], [], []
    for i in range(args.repeats):
        copies.append(copy_images(images, args.work / "copy"))
        shutil.rmtree(args.work / "copy", ignore_errors=True)
        exports.append(run_export(build, args.work / "hf"))
        shutil.rmtree(args.work / "hf", ignore_errors=True) if i < args.repeats - 1 else None
        user_copies.append(read_write_images(images, args.work / "copy"))
        shutil.rmtree(args.work / "copy", ignore_errors=True)
        print(f"run {i + 1}: copy {copies[-1]:.2f}s, export {exports[-1]:.2f}s, read+write copy "
              f"{user_copies[-1]:.2f}s  (load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
    shards = sorted((args.work / "hf" / "data").rglob("*.parquet"))
    written = sum(p.stat().st_size for p in shards)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"best: copy {min(copies):.2f}s, export {min(exports):.2f}s -> ratio {min(exports) / min(copies):.2f} "
          f"(goal <= 1.5; shared machine: noisy); against the read+write copy: "
          f"{min(exports) / min(user_copies):.2f}")
    print(f"shards: {len(shards)}, {written / 2**20:.1f} MiB ({written / total:.3f} x the images); "
          f"peak RSS of this process {rss:.0f} MiB for {total / 2**20:.0f} MiB of images")
    shutil.rmtree(args.work / "copy", ignore_errors=True)
    shutil.rmtree(args.work / "hf", ignore_errors=True)


if __name__ == "__main__":
    main()
