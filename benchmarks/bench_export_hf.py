"""Benchmark: the Hugging Face export (dataset_builders.export_hf) against copying the same image files.

Usage:
    python benchmarks/bench_export_hf.py                         # heavy corpus, 200 papers: generate, build, measure
    python benchmarks/bench_export_hf.py --build /tmp/heavy/out  # an existing build

All measurements run in this process, interleaved, on the same files: "copy" copies every image file of the
published samples (shutil.copyfile, i.e. sendfile: the kernel copies page cache to page cache) into a fresh
folder; "read+write copy" does the same through user space (what any format that packs the files must do at
least); "export" writes the Parquet shards, card and
attribution (export_hf.export, every licence allowed, since the heavy corpus states none). The best of
--repeats runs of each is kept and the ratio export / copy printed (goal: <= 1.5), for wall time and for this
process's CPU time (user + system). The machine is shared: the wall times are noisy (the load average is
printed with them; a busy machine makes a process wait for a core); the CPU ratio is the steadier figure. Also printed: the process's peak RSS and the images' total size (the export streams bounded row
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


def cpu() -> float:
    """User + system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, *args) -> tuple[float, float]:
    """(wall, cpu) seconds of fn(*args); on a busy machine the wall time also holds the wait for a core."""
    cpu0, wall0 = cpu(), time.perf_counter()
    fn(*args)
    return time.perf_counter() - wall0, cpu() - cpu0


def copy_images(images: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True)
    for i, src in enumerate(images):
        shutil.copyfile(src, dest / f"{i:06d}{src.suffix}")


def read_write_images(images: list[Path], dest: Path) -> None:
    """The same copy through user space (read, then write): the least any format that packs files must do."""
    dest.mkdir(parents=True)
    for i, src in enumerate(images):
        (dest / f"{i:06d}{src.suffix}").write_bytes(src.read_bytes())


def run_export(build: Path, dest: Path) -> None:
    export_hf.export(build, dest, KNOWN_IDS, progress=False)


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
    export_hf.features(decode=True)  # import datasets before measuring: its import is a one-off ~2 s per process
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    copies, user_copies, exports = [], [], []
    for i in range(args.repeats):
        copies.append(timed(copy_images, images, args.work / "copy"))
        shutil.rmtree(args.work / "copy", ignore_errors=True)
        exports.append(timed(run_export, build, args.work / "hf"))
        if i < args.repeats - 1:
            shutil.rmtree(args.work / "hf", ignore_errors=True)
        user_copies.append(timed(read_write_images, images, args.work / "copy"))
        shutil.rmtree(args.work / "copy", ignore_errors=True)
        print(f"run {i + 1}: wall (cpu) seconds: copy {copies[-1][0]:.2f} ({copies[-1][1]:.2f}), export "
              f"{exports[-1][0]:.2f} ({exports[-1][1]:.2f}), read+write copy {user_copies[-1][0]:.2f} "
              f"({user_copies[-1][1]:.2f})  (load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})",
              flush=True)
    best = {name: (min(w for w, _ in runs), min(c for _, c in runs))
            for name, runs in (("copy", copies), ("export", exports), ("rw", user_copies))}
    shards = sorted((args.work / "hf" / "data").rglob("*.parquet"))
    written = sum(p.stat().st_size for p in shards)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for k, label in ((0, "wall"), (1, "cpu")):
        print(f"best {label}: copy {best['copy'][k]:.2f}s, export {best['export'][k]:.2f}s -> ratio "
              f"{best['export'][k] / best['copy'][k]:.2f} (goal <= 1.5; shared machine: noisy); against the "
              f"read+write copy ({best['rw'][k]:.2f}s): {best['export'][k] / best['rw'][k]:.2f}")
    print(f"shards: {len(shards)}, {written / 2**20:.1f} MiB ({written / total:.3f} x the images); "
          f"peak RSS of this process {rss:.0f} MiB ({before:.0f} MiB before the first run, after the imports and the "
          f"selection) for {total / 2**20:.0f} MiB of images")
    shutil.rmtree(args.work / "copy", ignore_errors=True)
    shutil.rmtree(args.work / "hf", ignore_errors=True)


if __name__ == "__main__":
    main()
