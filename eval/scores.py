"""Scoring evaluation runs for eval.report: one run's figures with bootstrap intervals, paired comparisons.

A run (eval/records.py: LoadedRun) becomes a RunScores: the scored samples (failures left out, sorted by
item id so the intervals do not depend on reply order) as indicator matrices, the task's figures with 95 %
intervals (eval.metrics), per-label scores, and the counts of failed and missing items. ``compare`` is the
paired bootstrap of two runs on the images scored in both; ``check_comparable`` refuses runs on different
benchmarks or tasks and warns about softer mismatches. eval.report writes what these compute.

Usage:
    scores = [score_run(run, name) for run, name in ...]; scores[1].comparison = compare(scores[1], scores[0])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eval.metrics import (
    DEFAULT_RESAMPLES,
    MULTIPLE_CHOICE_FROM_MULTILABEL,
    Interval,
    LabelScore,
    PairedDifference,
    bootstrap_multilabel,
    indicator_matrix,
    paired_bootstrap,
    per_label_scores,
)
from eval.records import LoadedRun, SampleRecord
from eval.tasks import Task, UnknownTaskError, get_task

# Paired comparisons: (key in eval.metrics figures, title). For one-hot MC rows exact match = accuracy.
MULTILABEL_PAIRED = (("micro_precision", "precision (micro)"), ("micro_f1", "F1 (micro)"))
MULTIPLE_CHOICE_PAIRED = (("exact_match", "accuracy"), ("macro_f1", "F1 (macro)"))


class ReportError(ValueError):
    """Runs that cannot be reported together (different benchmark or task, unreadable run dir)."""


@dataclass
class RunScores:
    """One run, scored."""

    run: LoadedRun
    name: str  # display name, unique within the report
    task: Task
    item_ids: list[str]  # scored items (failures excluded), in sample order
    y_true: np.ndarray
    y_pred: np.ndarray
    unparseable: np.ndarray
    off_vocab: np.ndarray  # names outside the vocabulary per image (each a false positive)
    figures: dict[str, Interval]
    per_label: list[LabelScore]
    n_failed: int
    n_missing: int  # benchmark items with no record at all (run incomplete or --limit)
    comparison: dict[str, PairedDifference] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # issue 14: eval.task_report.extra_metrics

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.name).strip("_") or "run"


def _matrices(task: Task, samples: list[SampleRecord], where: Path) -> tuple[np.ndarray, ...]:
    try:
        y_true = indicator_matrix([s.reference for s in samples], task.labels)
        y_pred = indicator_matrix([s.parsed for s in samples], task.labels)
    except KeyError as exc:
        raise ReportError(f"{where}: {exc.args[0]}") from None
    if task.kind == "multiple_choice" and (y_true.sum(1) != 1).any():
        raise ReportError(f"{where}: a multiple-choice reference must be exactly one choice")
    if task.kind == "multiple_choice" and (y_pred.sum(1) > 1).any():
        raise ReportError(f"{where}: a multiple-choice answer must be at most one choice")
    unparseable = np.array([s.parse_status == "unparseable" for s in samples], dtype=bool)
    off_vocab = np.array([len(s.unknown_labels) if s.parse_status == "off_vocabulary" else 0 for s in samples],
                         dtype=float)
    return y_true, y_pred, unparseable, off_vocab


def score_run(run: LoadedRun, name: str, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> RunScores:
    try:
        task = get_task(run.card.task)
    except UnknownTaskError as exc:
        raise ReportError(f"{run.path}: {exc}") from None
    wrong_task = [s.item_id for s in run.samples if s.task != task.name]
    if wrong_task:
        raise ReportError(f"{run.path}: samples of another task than {task.name}: {wrong_task[:5]}")
    # sorted by item id: the bootstrap resamples rows, so intervals must not depend on reply arrival order
    scored = sorted((s for s in run.samples if not s.failed), key=lambda s: s.item_id)
    n_failed = len(run.samples) - len(scored)
    if not scored:
        raise ReportError(f"{run.path}: no scored sample ({n_failed} failures): nothing to report")
    y_true, y_pred, unparseable, off_vocab = _matrices(task, scored, run.path)
    rare = np.array([label in task.rare for label in task.labels], dtype=bool)
    raw = bootstrap_multilabel(y_true, y_pred, unparseable, rare, n_resamples=n_resamples, seed=seed,
                               off_vocab=off_vocab)
    figures = raw if task.kind == "multilabel" else {mc: raw[ml] for mc, ml in MULTIPLE_CHOICE_FROM_MULTILABEL.items()}
    return RunScores(run=run, name=name, task=task, item_ids=[s.item_id for s in scored], y_true=y_true,
                     y_pred=y_pred, unparseable=unparseable, off_vocab=off_vocab, figures=figures,
                     per_label=per_label_scores(y_true, y_pred, task.labels), n_failed=n_failed,
                     n_missing=max(run.card.benchmark.n_items - len(run.samples), 0))


def compare(a: RunScores, b: RunScores, n_resamples: int = DEFAULT_RESAMPLES,
            seed: int = 0) -> dict[str, PairedDifference]:
    """Paired bootstrap of run A vs run B on the images scored in both."""
    index_b = {item: i for i, item in enumerate(b.item_ids)}
    rows_a = [i for i, item in enumerate(a.item_ids) if item in index_b]
    rows_b = [index_b[a.item_ids[i]] for i in rows_a]
    if not rows_a:
        raise ReportError(f"{a.name} and {b.name} have no scored image in common")
    if not np.array_equal(a.y_true[rows_a], b.y_true[rows_b]):
        raise ReportError(f"{a.name} and {b.name} disagree on the true labels of shared images "
                          "(same benchmark hash, so a run dir was edited)")
    rare = np.array([label in a.task.rare for label in a.task.labels], dtype=bool)
    paired = MULTILABEL_PAIRED if a.task.kind == "multilabel" else MULTIPLE_CHOICE_PAIRED
    return paired_bootstrap(a.y_true[rows_a], a.y_pred[rows_a], b.y_pred[rows_b], a.unparseable[rows_a],
                            b.unparseable[rows_b], rare, metrics=[k for k, _ in paired],
                            n_resamples=n_resamples, seed=seed, off_vocab_a=a.off_vocab[rows_a],
                            off_vocab_b=b.off_vocab[rows_b])


def check_comparable(runs: list[LoadedRun]) -> list[str]:
    """Raise ReportError for runs on different benchmarks or tasks; return warnings for softer mismatches."""
    first = runs[0].card
    for run in runs[1:]:
        card = run.card
        if card.benchmark.hash != first.benchmark.hash:
            raise ReportError(
                f"runs are on different benchmarks and cannot be compared: {runs[0].path} has benchmark "
                f"{first.benchmark.name!r} hash {first.benchmark.hash[:16]}… but {run.path} has "
                f"{card.benchmark.name!r} hash {card.benchmark.hash[:16]}…; re-run both on the same benchmark")
        if card.task != first.task:
            raise ReportError(f"runs are on different tasks: {runs[0].path} is {first.task!r}, {run.path} is "
                              f"{card.task!r}")
    warnings = []
    for attr, what in (("prompt_version", "prompt versions"), ("task_version", "task versions")):
        values = sorted({getattr(r.card, attr) for r in runs})
        if len(values) > 1:
            warnings.append(f"runs use different {what}: {', '.join(values)}")
    for name in sorted({r.card.model for r in runs}):
        keys = sorted({r.card.identity.key[:12] for r in runs if r.card.model == name and r.card.identity})
        if len(keys) > 1:
            warnings.append(f"runs named {name!r} were answered by different model identities: {', '.join(keys)}")
    for r in runs:
        if r.card.identity is not None and len(r.card.identity.snapshots) > 1:
            warnings.append(f"{r.path}: replies came from several model snapshots {r.card.identity.snapshots}")
    pixels = sorted({r.card.parameters.image_max_pixels for r in runs})
    if len(pixels) > 1:
        warnings.append(f"runs use different image pixel budgets (image_max_pixels): {pixels}")
    return warnings
