"""What a resumed per-paper record tells its stage, kept between builds so the record need not be parsed again.

An update of 100 papers onto 2,000 resumes ~2,000 papers in mine and in panels; each resumed record
(stages/mine/<id>/paper.json, stages/panels/<id>.json) was parsed (pydantic) only to report its problems and
counts again (~0.1-0.15 s CPU per stage at 2,000 papers). The summary of a record, one JSON line with what the
stage takes from it, is kept in stages/<stage>_resumed.tsv (kept_lines format, in paper id order; its file key
is the stage's record key, so a summary made by other code or settings is never read) under the identity of
the record file: inode, size and modification time in ns. Records are written atomically (a new file), so a
rewritten, restored or edited record does not match its old summary and is parsed as before.

A summary replaces the parse, not the check: it is used only for a record whose key file holds the running
code's key (stage_cache.record_is_current, checked first as without summaries). A missing, cut, garbled or
other-key file, or an unreadable summary: the records are parsed (kept_lines; tested in
tests/test_resume_summaries.py). Summaries are kept for the records this build resumed; a record written in
this build gets its summary in the next one.

Usage (mine.run, panel_records.resumed_outcomes):
    with ExitStack() as stack:
        summaries = ResumeSummaries(paths.stages / "panels_resumed.tsv", key, stack)
        line = summaries.take(paper_id, record)      # the kept JSON line, or None: parse the record
        summaries.keep(paper_id, record, line)       # in increasing paper id order
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from dataset_builders.kept_lines import KeptLines, key_of
from fracto_core.files import file_identity

FORMAT = "resume-summary-1"  # part of the file key: a change of what a summary holds reads no old file


def identity(record: Path) -> str | None:
    """inode, size and modification time (ns) of the record file; None when it cannot be read."""
    found = file_identity(record)
    return None if found is None else ":".join(map(str, found))


class ResumeSummaries:
    """The last build's summaries of one stage's records, read in paper id order; this build's, written."""

    def __init__(self, path: Path, record_key: str, stack: ExitStack):
        self._kept = KeptLines.open(path, key_of(FORMAT, record_key), stack)

    def take(self, paper_id: str, record: Path, also: str = "") -> str | None:
        """The summary kept for this record file when it is the same file (identity) and was kept with the same
        ``also`` (e.g. the fetch manifest's entry the record was brought up to date with), else None."""
        key = _key(record, also)
        lines = self._kept.take(paper_id, key) if key is not None else None
        return lines[0] if lines is not None and len(lines) == 1 else None

    def keep(self, paper_id: str, record: Path, line: str, also: str = "") -> None:
        """Keep a record's summary (a JSON line) for the next build, under the file's identity now."""
        key = _key(record, also)
        if key is not None:
            self._kept.record(paper_id, key, [line])


def _key(record: Path, also: str) -> str | None:
    ident = identity(record)
    return ident if ident is None or not also else f"{ident}:{key_of(also)}"
