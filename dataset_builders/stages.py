"""The stage registry and how one stage is run and reported (shared by the build and label commands)."""

from __future__ import annotations

import importlib

from dataset_builders.config import BuildConfig
from dataset_builders.records import Problem, StageResult
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model, write_jsonl_atomic, write_model_atomic, write_text_atomic

# stage name -> module with run(paths, config, progress) -> StageResult
STAGE_MODULES: dict[str, str] = {
    "mine": "dataset_builders.mine",
    "panels": "dataset_builders.panels",
    "filter": "dataset_builders.filter",
    "dedup": "dataset_builders.dedup",
    "label": "dataset_builders.label",
    "manual": "dataset_builders.manual",
    "items": "dataset_builders.items",
    "split": "dataset_builders.split",
    "augment": "dataset_builders.augment",
    "export": "dataset_builders.export",
    "qa": "dataset_builders.qa",  # only with --qa (BuildConfig.qa); see build.build
}
STAGE_NAMES = tuple(STAGE_MODULES)


def run_stage(name: str, paths: StagePaths, config: BuildConfig, progress: bool) -> StageResult:
    module = importlib.import_module(STAGE_MODULES[name])
    result = module.run(paths, config, progress=progress)
    write_model_atomic(paths.stages / "results" / f"{name}.json", result)
    return result


def collect_report(paths: StagePaths, before: str | None = None) -> list[Problem]:
    """All problems of all stages that have run, in stage order (the build report); with ``before``, only
    those of the stages that come before that one (what the export puts in the dataset card, with its own)."""
    problems: list[Problem] = []
    for name in STAGE_NAMES[:STAGE_NAMES.index(before) if before else None]:
        f = paths.stages / "results" / f"{name}.json"
        if f.exists():
            problems.extend(read_model(f, StageResult).problems)
    return problems


def write_report(paths: StagePaths, problems: list[Problem]) -> None:
    write_jsonl_atomic(paths.report, problems)
    lines = ["# Build report", "", f"{len(problems)} problem(s).", "",
             "| file | stage | reason | detail |", "|---|---|---|---|"]
    def cell(text: str) -> str:  # one table row: a multi-line detail (a pydantic error) broke the table
        return " ".join(text.split()).replace("|", "/")

    lines += [f"| {cell(p.file)} | {p.stage} | {p.reason} | {cell(p.detail)} |" for p in problems]
    write_text_atomic(paths.out / "build_report.md", "\n".join(lines) + "\n")
