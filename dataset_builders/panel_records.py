"""Which papers the panels stage splits and which it resumes: the key of its per-paper records and their resume.

stages/panels/<paper_id>.json (PaperPanels) is written after <paper_id>.key beside it (stage_cache record keys:
the fingerprint of dataset_builders.panels and what it imports, and the versions of the libraries that decide
its crops, hashes and cues) and resumed while that key is the running code's; a record made by other code or
libraries is removed with its crops before the paper is split again (count ``code_resplit``). Resumed papers
are found in the main process: only papers to split go to the worker pool.

Usage:
    key = record_key()
    with ExitStack() as stack:
        kept = summaries(paths, key, stack)
        outcomes = resumed_outcomes(paths, paper_ids, key, kept)   # (counts, problems) of a resumed paper, else None
        keep_summaries(paths, paper_ids, outcomes, kept)  # once every paper has its outcome
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

LIBRARIES = ("PIL", "numpy", "scipy", "imagehash", "pymupdf", "pydantic")  # crops, hashes, cues; the records' text
Outcome = tuple[dict[str, int], list[Problem]]


def record_key() -> str:
    """The key of the panels records this code makes with these libraries (stage_cache.StageKeys)."""
    return StageKeys(["dataset_builders.panels"], library_versions(*LIBRARIES)).base


def resumed_outcome(target: Path, key: str) -> Outcome | None:
    """(counts, problems) of the paper whose record is at ``target`` when it is resumed (its key current, the
    record readable: the problems of the run that wrote it are reported again), else None."""
    record = current_record(target, PaperPanels, key)
    return None if record is None else ({"papers_resumed": 1}, record.problems)


def summaries(paths: StagePaths, key: str, stack: ExitStack) -> ResumeSummaries:
    """The kept summaries of the records (stages/panels_resumed.tsv, resume_summaries), written when stack closes."""
    return ResumeSummaries(paths.stages / "panels_resumed.tsv", key, stack)


def resumed_outcomes(paths: StagePaths, paper_ids: list[str], key: str, kept: ResumeSummaries
                     ) -> list[Outcome | None]:
    """resumed_outcome of every paper, in order (one record held at a time): an update's ~2,000 resumed papers
    sent to workers one by one cost more than reading their records here. A current record's problems come
    from its kept summary when it is the same file (the key file is read first, as without summaries), else
    from the record."""
    return [_resumed(kept, paths.panels / f"{paper_id}.json", key) for paper_id in paper_ids]


def _resumed(kept: ResumeSummaries, target: Path, key: str) -> Outcome | None:
    if not record_is_current(key_file(target), key):
        return None
    if (line := kept.take(target.stem, target)) is not None:
        try:
            return {"papers_resumed": 1}, [Problem.model_validate(p) for p in json.loads(line)]
        except (ValueError, TypeError):  # an unreadable summary: the record decides
            pass
    return resumed_outcome(target, key)


def keep_summaries(paths: StagePaths, paper_ids: list[str], outcomes: list[Outcome], kept: ResumeSummaries) -> None:
    """Keep the summary (its problems) of every paper's record, resumed or written now, in paper id order."""
    for paper_id, (counts, problems) in sorted(zip(paper_ids, outcomes), key=lambda pair: pair[0]):
        if counts.get("papers") or counts.get("papers_resumed"):  # a record (not a paper that failed)
            line = json.dumps([p.model_dump(mode="json") for p in problems], separators=(",", ":"))
            kept.keep(paper_id, paths.panels / f"{paper_id}.json", line)


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
