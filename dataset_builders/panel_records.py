"""Which papers the panels stage splits and which it resumes: the key of its per-paper records and their resume.

stages/panels/<paper_id>.json (PaperPanels) is written after <paper_id>.key beside it (stage_cache record keys:
the fingerprint of dataset_builders.panels and what it imports, and the versions of the libraries that decide
its crops, hashes and cues) and resumed while that key is the running code's; a record made by other code or
libraries is removed with its crops before the paper is split again (count ``code_resplit``). Resumed papers
are found in the main process: only papers to split go to the worker pool.

Usage:
    key = record_key()
    outcomes = resumed_outcomes(paths, paper_ids, key)   # (counts, problems) of a resumed paper, else None
    counts = clear_stale(paths, target, key)             # in a worker, before the paper is split
    write_record(target, record, key)                    # once it is split
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path

from dataset_builders.records import PaperPanels, Problem
from dataset_builders.resume_summaries import ResumeSummaries
from dataset_builders.stage_cache import (
    StageKeys, current_record, key_file, library_versions, record_is_current, write_record_key,
)
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import write_model_atomic

LIBRARIES = ("PIL", "numpy", "scipy", "imagehash", "pymupdf")  # their versions decide the crops, hashes, cues
Outcome = tuple[dict[str, int], list[Problem]]


def record_key() -> str:
    """The key of the panels records this code makes with these libraries (stage_cache.StageKeys)."""
    return StageKeys(["dataset_builders.panels"], library_versions(*LIBRARIES)).base


def resumed_outcome(target: Path, key: str) -> Outcome | None:
    """(counts, problems) of the paper whose record is at ``target`` when it is resumed (its key current, the
    record readable: the problems of the run that wrote it are reported again), else None."""
    record = current_record(target, PaperPanels, key)
    return None if record is None else ({"papers_resumed": 1}, record.problems)


def resumed_outcomes(paths: StagePaths, paper_ids: list[str], key: str) -> list[Outcome | None]:
    """resumed_outcome of every paper, in order (one record held at a time): an update's ~2,000 resumed papers
    sent to workers one by one cost more than reading their records here. A current record's problems come
    from its kept summary (resume_summaries: stages/panels_resumed.tsv) when it is the same file, else from
    the record, whose summary is kept for the next build."""
    with ExitStack() as stack:
        summaries = ResumeSummaries(paths.stages / "panels_resumed.tsv", key, stack)
        return [_resumed(summaries, paths.panels / f"{paper_id}.json", key) for paper_id in paper_ids]


def _resumed(summaries: ResumeSummaries, target: Path, key: str) -> Outcome | None:
    if not record_is_current(key_file(target), key):
        return None
    outcome, line = None, summaries.take(target.stem, target)
    if line is not None:
        try:
            outcome = {"papers_resumed": 1}, [Problem.model_validate(p) for p in json.loads(line)]
        except (ValueError, TypeError):  # an unreadable summary: the record decides
            outcome = None
    if outcome is None and (outcome := resumed_outcome(target, key)) is not None:
        line = json.dumps([p.model_dump(mode="json") for p in outcome[1]], separators=(",", ":"))
    if outcome is not None:
        summaries.keep(target.stem, target, line)
    return outcome


def clear_stale(paths: StagePaths, target: Path, key: str) -> dict[str, int]:
    """Remove the record at ``target`` and its crops, unreadable or made by other code, before the paper is split
    again (before the new key is written: a kill in between leaves no record to resume); returns the counts
    ({"code_resplit": 1} when its key was another code's)."""
    counts = {"code_resplit": 1} if target.exists() and not record_is_current(key_file(target), key) else {}
    if target.exists():
        target.unlink()
        shutil.rmtree(paths.panels / target.stem, ignore_errors=True)
    return counts


def write_record(target: Path, record: PaperPanels, key: str) -> None:
    """The paper's key file, then its record (a record a power loss left unreadable is split again)."""
    write_record_key(key_file(target), key)
    write_model_atomic(target, record, durable=False)
