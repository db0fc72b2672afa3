"""Benchmark: the Hugging Face export (dataset_builders.export_hf) against copying the same image files.

Usage:
    python benchmarks/bench_export_hf.py                         # heavy corpus, 200 papers: generate, build, measure
    python benchmarks/bench_export_hf.py --build /tmp/heavy/out  # an existing build
    python benchmarks/bench_export_hf.py --repeats 9             # more repetitions on a busy machine

Goal (issue #25): the export takes <= 1.5x the time of copying its image files. Contestants, all on the
published samples' image files (every licence allowed, since the heavy corpus states none, so: every image of
the build), each writing into a fresh folder under --work:

- "copy2": shutil.copytree of the build's images folder, i.e. shutil.copy2 of every image file (data, then
  permissions and times), how a user copies a folder in Python;
- "cp -r": GNU cp -r of the build's images folder, how a user copies them in a shell (a child process; its
  CPU time is the children's rusage);
- "export": export_hf.export (selection, Parquet shards, card, attribution, LlamaFactory dataset_info) with
  --workers shard writer processes (default 2, as the command's default; forked, so their CPU time is the
  children's rusage, as cp's);
- "export 1w": the same with one worker, in this process: the peer of cp, which is single-threaded.

One repetition runs the four one after the other, in an order that rotates from one repetition to the next,
so that none always runs first or after the same other one; --repeats repetitions are timed after one untimed
warm-up repetition. Page cache: both warm. The warm-up reads every image file, and the image files (1 GiB at
most here) stay cached on this 24 GiB machine, so no contestant reads from the disk; before each timed run the
previous run's output is deleted and os.sync() writes back everything dirty, so every run starts with no
pending writeback (both untimed). Printed per contestant: the median wall time, its spread (min-max), the
median CPU time (user + system, and each); then the ratio of the median export (and export 1w) to the median copy2
and to the median cp -r (goal <= 1.5), and the median of the per-repetition ratios. The machine is shared (2 cores, several
engineers): the load average is printed with every repetition; a busy machine makes every contestant wait for
a core, which the medians of interleaved runs share out evenly. Also printed: the process's peak RSS, the largest
child's (a shard writer or cp) and the images' total size (the export never holds the image bytes in memory, so
the first two do not grow with the third).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import heavy_corpus  # noqa: E402
from dataset_builders import export_hf  # noqa: E402
from dataset_builders.hf_card import features  # noqa: E402
from dataset_builders.licences import KNOWN_IDS  # noqa: E402
from dataset_builders.publish import SPLITS, select  # noqa: E402

CONTESTANTS = ("copy2", "cp -r", "export", "export 1w")


def cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process and of its finished children so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + kids.ru_utime, own.ru_stime + kids.ru_stime


def cp_images(folder: Path, dest: Path) -> None:
    subprocess.run(["cp", "-r", str(folder), str(dest)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, help="an existing build's output folder (default: build the heavy corpus)")
    ap.add_argument("--papers", type=int, default=200, help="heavy corpus papers to generate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions of each contestant (median kept)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fracto-bench-export-hf"))
    ap.add_argument("--workers", type=int, default=2, help="shard writer processes of the export contestant")
    args = ap.parse_args()
    if args.repeats < 1 or args.workers < 1 or args.papers < 1:  # 0 repeats: a median of no runs after the build
        ap.error(f"--repeats, --workers and --papers must be at least 1, got {args.repeats}, {args.workers}, "
                 f"{args.papers}")

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
    folder = build / "dataset" / "images"
    on_disk = sorted(p for p in folder.rglob("*") if p.is_file())
    if sorted(images) != on_disk:  # the copies copy the folder: it must hold exactly the published images
        sys.exit(f"{folder}: holds {len(on_disk)} files, the export publishes {len(images)}; use a build whose "
                 f"images are all published")
    total = sum(p.stat().st_size for p in images)
    print(f"{len(images)} images, {total / 2**20:.1f} MiB, from {build}")
    features(decode=True)  # import datasets before measuring: its import is a one-off ~2 s per process
    dest = {"copy2": args.work / "copy2", "cp -r": args.work / "cp", "export": args.work / "hf",
            "export 1w": args.work / "hf1"}
    run = {"copy2": lambda: shutil.copytree(folder, dest["copy2"]), "cp -r": lambda: cp_images(folder, dest["cp -r"]),
           "export": lambda: export_hf.export(build, dest["export"], KNOWN_IDS, progress=False, workers=args.workers),
           "export 1w": lambda: export_hf.export(build, dest["export 1w"], KNOWN_IDS, progress=False, workers=1)}
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in CONTESTANTS}  # wall, user, sys
    rss_before = 0.0
    for rep in range(args.repeats + 1):  # repetition 0: the untimed warm-up
        order = CONTESTANTS[rep % 4:] + CONTESTANTS[:rep % 4]
        for name in order:
            shutil.rmtree(dest[name], ignore_errors=True)
            os.sync()
            if rep == 0 and name.startswith("export") and not rss_before:
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            (user0, sys0), wall0 = cpu(), time.perf_counter()
            run[name]()
            wall, (user1, sys1) = time.perf_counter() - wall0, cpu()
            if rep:
                times[name].append((wall, user1 - user0, sys1 - sys0))
        if rep:
            print(f"run {rep}: wall (cpu) seconds: " + ", ".join(
                f"{n} {times[n][-1][0]:.2f} ({times[n][-1][1] + times[n][-1][2]:.2f})" for n in order)
                + f"  (load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})", flush=True)
    med = {n: statistics.median(w for w, _, _ in times[n]) for n in CONTESTANTS}
    for n in CONTESTANTS:
        walls = [w for w, _, _ in times[n]]
        print(f"{n:9s} median {med[n]:.2f}s (min {min(walls):.2f}, max {max(walls):.2f}), "
              f"cpu median {statistics.median(u + s for _, u, s in times[n]):.2f}s "
              f"(user {statistics.median(u for _, u, _ in times[n]):.2f}, "
              f"system {statistics.median(s for _, _, s in times[n]):.2f})")
    for name in ("export", "export 1w"):
        for floor in ("copy2", "cp -r"):
            paired = statistics.median(e[0] / c[0] for e, c in zip(times[name], times[floor]))
            print(f"{name} / {floor}: {med[name] / med[floor]:.2f} (ratio of medians; median of the "
                  f"{args.repeats} per-run ratios {paired:.2f}; goal <= 1.5)")
    shards = sorted((dest["export"] / "data").rglob("*.parquet"))
    written = sum(p.stat().st_size for p in shards)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kid = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"shards: {len(shards)}, {written / 2**20:.1f} MiB ({written / total:.3f} x the images); "
          f"peak RSS of this process {rss:.0f} MiB ({rss_before:.0f} MiB before the first export, after the imports, "
          f"the selection and the first copies), of the largest child {kid:.0f} MiB (pages shared with this process "
          f"count in both) for {total / 2**20:.0f} MiB of images")
    for d in dest.values():
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
