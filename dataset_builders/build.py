"""Build a LlamaFactory fractography dataset from a folder of scientific PDFs.

Usage:
    python -m dataset_builders.build                       # built-in sample corpus -> output/sample_build
    python -m dataset_builders.build --papers pdfs/ --out runs/ds1 --manual rare/ --workers 8
    python -m dataset_builders.build --out runs/ds1 --from-stage label   # re-run the later stages only

Stages (each reads the previous stage's files under OUT/stages and writes its own, so a killed run
resumes where it stopped and any stage can be re-run alone):
    mine -> panels -> filter -> dedup -> label -> manual -> items -> split -> augment -> export [-> qa]
(qa only with --qa: question-answer pairs from captions and citing excerpts, a second dataset)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from dataset_builders.config import BuildConfig, flag_name, add_config_arguments
from dataset_builders.fetch.manifest import paper_files
from dataset_builders.mine import MINE_SETTINGS
from dataset_builders.pdf.file_check import classify_non_pdf
from dataset_builders.stage_cache import CodeError, pin_code, save_digests, shared_digest_folder
from dataset_builders.stages import STAGE_MODULES, STAGE_NAMES, collect_report, run_stage, write_report
from dataset_builders.records import StageResult
from dataset_builders.stage_paths import StagePaths
from dataset_builders.validate import NotALineList, iter_line_texts
from dataset_builders.workers import keep_freed_memory
from fracto_core.files import NotAJsonList, iter_json_list, write_text_atomic

# Settings baked into the cached per-paper outputs of mine/panels: changing them needs --fresh.
CACHED_SETTINGS = MINE_SETTINGS
CODE_DIGESTS = "code_digests.tsv"  # under OUT/stages: the code's digests by file sha256 (stage_cache.save_digests)


class BuildError(Exception):
    """A fatal, user-facing error (bad input or settings); the message says what to fix."""


# --- command line ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_builders.build",
        description="Scientific PDFs -> LlamaFactory ShareGPT dataset of fracture-surface images labelled with "
                    "morphology features. With no arguments: builds from the built-in sample corpus, offline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("--from-stage", choices=STAGE_NAMES, default="mine",
                        help="start at this stage, reusing the files of the earlier ones")
    parser.add_argument("--to-stage", choices=STAGE_NAMES, default="export", help="stop after this stage")
    parser.add_argument("--fresh", action="store_true",
                        help="delete OUT/stages and OUT/dataset first (needed after changing "
                             + ", ".join(flag_name(s) for s in CACHED_SETTINGS) + ")")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(ns: argparse.Namespace) -> BuildConfig:
    values = {k: getattr(ns, k) for k in BuildConfig.model_fields}
    try:
        return BuildConfig(**values)
    except ValidationError as exc:
        lines = [f"{flag_name(str(e['loc'][0])) if e['loc'] else 'settings'}: {e['msg']}" for e in exc.errors()]
        raise BuildError("invalid settings:\n  " + "\n  ".join(lines)) from None


# --- preparation -------------------------------------------------------------------------------

def prepare_inputs(config: BuildConfig) -> BuildConfig:
    """Resolve the input folders; generate the built-in sample corpus when no papers were given."""
    if config.out.exists() and not config.out.is_dir():
        raise BuildError(f"--out {config.out}: is a file, not a folder; choose a folder (it is created if missing)")
    if config.papers is None:
        from dataset_builders import sample_corpus

        corpus = config.out / "sample_corpus"
        if not (corpus / "ground_truth.json").exists():
            print(f"Generating the built-in sample corpus ({config.n_sample_papers} papers) in {corpus} ...")
            sample_corpus.generate_corpus(corpus, n_papers=config.n_sample_papers, seed=config.seed)
        update = {"papers": corpus / "papers"}
        if config.manual is None:
            update["manual"] = corpus / "manual"
        config = config.model_copy(update=update)
    if not config.papers.is_dir():
        raise BuildError(f"--papers {config.papers}: no such folder")
    if config.manual is not None and not (config.manual / "manual.csv").is_file():
        raise BuildError(f"--manual {config.manual}: expected a folder with manual.csv (file,features,source,notes)")
    if config.holdout_list is not None and not config.holdout_list.is_file():
        raise BuildError(f"--holdout-list {config.holdout_list}: no such file")
    if config.holdout_build is not None and not (config.holdout_build / "stages" / "holdout.jsonl").is_file():
        raise BuildError(f"--holdout-build {config.holdout_build}: no stages/holdout.jsonl (build the pool with "
                         "--holdout-share 1 --to-stage split)")
    if config.exclude_benchmark is not None and not config.exclude_benchmark.is_dir():
        raise BuildError(f"--exclude-benchmark {config.exclude_benchmark}: no such folder")
    return config


def first_pdf(root: Path) -> Path | None:
    """The first file under root (walk order) that mine would take for a PDF: named .pdf (a damaged one is
    reported, not skipped), else with a %PDF- header in its first KiB; None when there is none. The files are
    those mine lists (fetch.manifest.paper_files: no fetch bookkeeping). The walk stops at the first .pdf
    name; only when there is none is a KiB of every other file read."""
    others = []
    for f in paper_files(root):
        if f.name.lower().endswith(".pdf") and f.is_file():  # not a symlink leading nowhere
            return f
        others.append(f)
    for f in others:
        try:
            with open(f, "rb") as fh:
                if classify_non_pdf(fh.read(1024), f.name) is None:
                    return f
        except OSError:
            continue
    return None


def check_papers(config: BuildConfig) -> None:
    """Refuse a papers folder with no PDF under it (a typo, an unmounted share, a fetch that downloaded nothing)
    before anything is changed: its build would be an empty dataset, or the old papers' records under a new
    report. With --manual given the folder may be empty: the dataset is then the manual images alone."""
    if first_pdf(config.papers) is not None:
        return
    if config.manual is not None:
        print(f"note: no PDF under {config.papers}; the dataset holds the --manual images only", file=sys.stderr)
        return
    from dataset_builders.fetch.manifest import MANIFEST_NAME, read_manifest

    records = [r for m in config.papers.rglob(MANIFEST_NAME) for r in read_manifest(m).values()]
    fetched = ""
    if records:
        downloaded = sum(r.status == "downloaded" for r in records)
        fetched = f" (its {MANIFEST_NAME} lists {len(records)} candidate(s), {downloaded} downloaded" \
                  + (", none of them is there)" if downloaded else ": see its skip reasons)")
    linked = sum(1 for p in config.papers.rglob("*") if p.is_symlink() and p.is_dir())
    why = (f"{linked} symlinked folder(s) under it, which are not followed: link the PDFs, not their folder;"
           if linked else "a mistyped or unmounted folder?")
    raise BuildError(f"--papers {config.papers}: no PDF under {config.papers}{fetched}; nothing was built or "
                     f"changed ({why} give --manual to build from manual images alone)")


def check_cached_settings(paths: StagePaths, config: BuildConfig) -> None:
    """Refuse to mix cached per-paper outputs made with other settings into this run."""
    stored = paths.out / "build_config.json"
    if not stored.exists() or not paths.mine.exists():
        return
    old = json.loads(stored.read_text(encoding="utf-8"))
    changed = [s for s in CACHED_SETTINGS if s in old and old[s] != getattr(config, s)]
    if changed:
        raise BuildError(f"{paths.out} holds stage files made with other {', '.join(flag_name(s) for s in changed)}; "
                         "re-run with --fresh, or choose another --out")


def sweep_partial_files(paths: StagePaths) -> int:
    """Delete temporary files that a killed run left behind (atomic writers name them .<name>.*.tmp)."""
    removed = 0
    found = [*paths.out.glob(".*.tmp")]  # the report and build_config.json, written at the top
    for folder in (paths.stages, paths.dataset):
        if folder.exists():
            found += folder.rglob(".*.tmp")
    for tmp in found:
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


# --- running -----------------------------------------------------------------------------------

def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished (reaped) children, e.g. pool workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def stages_to_run(config: BuildConfig, from_stage: str, to_stage: str) -> tuple[str, ...]:
    """The stages from_stage..to_stage in order: with --dry-run up to label at most; qa after export with --qa,
    or when asked for by name."""
    if config.dry_run:  # the offline stages up to dedup, then the label estimate, then stop
        to_stage = STAGE_NAMES[min(STAGE_NAMES.index(to_stage), STAGE_NAMES.index("label"))]
    names = STAGE_NAMES[STAGE_NAMES.index(from_stage): STAGE_NAMES.index(to_stage) + 1]
    if config.qa and to_stage == "export" and not config.dry_run:  # --qa: the qa stage follows export
        names = (*names, "qa")
    return tuple(n for n in names if n != "qa" or config.qa or to_stage == "qa")  # --to-stage qa: asked for


def build(config: BuildConfig, from_stage: str = "mine", to_stage: str = "export", progress: bool = True,
          fresh: bool = False, timings: dict[str, tuple[float, float]] | None = None) -> dict[str, StageResult]:
    """Run the stages from_stage..to_stage; returns their results. Raises BuildError on bad input.

    timings: filled with stage name -> (wall, cpu) seconds (cpu: this process + its workers).
    """
    keep_freed_memory()  # before any worker is forked: they inherit it
    names = stages_to_run(config, from_stage, to_stage)
    modules = [STAGE_MODULES[name] for name in names]
    # the code of the stages this build runs, imported and read now (their workers fork from this process): an
    # edit made while the build runs changes none of its keys, nor the code that makes its records
    try:
        pin_code(modules, modules, None if fresh else config.out / "stages" / CODE_DIGESTS, shared_digest_folder())
    except CodeError as exc:
        raise BuildError(f"the project's code: {exc}") from None
    config = prepare_inputs(config)
    if from_stage == "mine":  # a later start reads the stage files, not the papers folder
        check_papers(config)
    paths = StagePaths(config.out)
    if fresh:
        for d in (paths.stages, paths.dataset):
            shutil.rmtree(d, ignore_errors=True)
    check_cached_settings(paths, config)
    sweep_partial_files(paths)
    from dataset_builders.labelling.registry import get_labeler

    try:
        get_labeler(config.labeler, config)  # fail before any work if the labeller cannot run
    except (KeyError, ValueError, RuntimeError) as exc:
        raise BuildError(f"--labeler {config.labeler}: {exc.args[0] if exc.args else exc}") from None
    if config.qa and not config.dry_run:  # the Q&A generator too (issue 15)
        from dataset_builders.qa import get_generator

        try:
            get_generator(config)
        except ValueError as exc:
            raise BuildError(f"--qa-generator: {exc}") from None
    paths.stages.mkdir(parents=True, exist_ok=True)
    save_digests(paths.stages / CODE_DIGESTS, modules)
    write_text_atomic(paths.out / "build_config.json", config.model_dump_json(indent=1) + "\n")

    results: dict[str, StageResult] = {}
    for name in names:
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        try:
            if name == "label" and config.dry_run:  # an estimate: no stage file, no stage result
                from dataset_builders import label

                results[name] = label.run(paths, config, progress)
                continue
            results[name] = run_stage(name, paths, config, progress)
        except (ValueError, OSError) as exc:
            write_report(paths, collect_report(paths))
            raise BuildError(f"stage {name} failed: {exc}") from exc
        if timings is not None:
            timings[name] = (time.perf_counter() - t0, cpu_seconds() - cpu0)
        n_problems = len(results[name].problems)
        print(f"[{name:>7}] {time.perf_counter() - t0:6.1f}s  {_format_counts(results[name].counts)}"
              + (f"  ({n_problems} problem(s) in the report)" if n_problems else ""), flush=True)
    write_report(paths, collect_report(paths))
    return results


def count_samples(path: Path) -> str:
    """How many samples a dataset file holds, counted without holding them parsed: the summary once read every
    file whole with json.loads, ~100 MiB more peak memory at 2,000 papers (the largest of the build) and 0.8 s.
    Export's layout (a value per line) is counted by lines, any other JSON list value by value; a file that is
    not one says why."""
    try:
        try:
            return str(sum(1 for _ in iter_line_texts(path)))
        except NotALineList:
            return str(sum(1 for _ in iter_json_list(path)))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, NotAJsonList) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"


def print_summary(config: BuildConfig, results: dict[str, StageResult]) -> None:
    paths = StagePaths(config.out)
    problems = collect_report(paths)
    by_reason = Counter((p.stage, p.reason) for p in problems)
    print("\nSummary")
    if problems:
        print("  skipped/failed, by stage and reason: "
              + "; ".join(f"{stage}/{reason} {n}" for (stage, reason), n in sorted(by_reason.items())))
    info = paths.dataset / "dataset_info.json"
    if info.exists():
        try:
            names = list(json.loads(info.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
            names = []
            print(f"  {info}: unreadable ({type(exc).__name__}: {exc})")
        sizes = [f"{n} {count_samples(paths.dataset / f'{n}.json')}" for n in names
                 if (paths.dataset / f"{n}.json").exists()]
        print(f"  dataset: {paths.dataset.resolve()}")
        print(f"  samples: {', '.join(sizes)}")
        print(f"  card:    {(paths.dataset / 'dataset_card.md').resolve()}")
    print(f"  report:  {paths.report.resolve()} ({len(problems)} line(s))")


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if STAGE_NAMES.index(ns.from_stage) > STAGE_NAMES.index(ns.to_stage):
        print(f"error: --from-stage {ns.from_stage} comes after --to-stage {ns.to_stage}", file=sys.stderr)
        return 2
    try:
        config = config_from_args(ns)
        t0 = time.perf_counter()
        results = build(config, ns.from_stage, ns.to_stage, progress=not ns.quiet, fresh=ns.fresh)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished stage files are kept; run the same command again to resume", file=sys.stderr)
        return 130
    print_summary(config, results)
    print(f"  done in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
