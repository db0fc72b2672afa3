"""The fetch manifest: papers.jsonl beside the downloaded PDFs, one ManifestRecord per line.

Append-only: every decision about a candidate paper (downloaded, skipped with a reason, failed) is one
line, flushed as it is made; the last line of a key wins. A line half-written when the process was
killed is ignored on reading (it is always the last one), so a killed fetch loses at most the paper it
was working on. The builder (dataset_builders.mine) reads the same file to give each PDF its DOI, title,
authors, venue and licence (matched by sha256, else by file name).

Usage:
    records = read_manifest(folder / MANIFEST_NAME)        # {key: latest ManifestRecord}
    index = ManifestIndex.load(papers_folder)               # builder side: every papers.jsonl under it
    index.lookup(sha256_hex, "sub/file.pdf")                # -> ManifestRecord | None
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from dataset_builders.records import Record, SourceMeta
from fracto_core.files import text_lines

MANIFEST_NAME = "papers.jsonl"


def paper_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` that may be a paper, in walk order (lazy): not the fetcher's manifest nor its
    in-progress downloads (.<name>.part). Symlinked folders are not followed; a symlink that leads nowhere (its
    target gone, or a loop) is listed, so that the mine stage reports it ("unreadable") instead of losing it."""
    for path in root.rglob("*"):
        if (path.is_file() or (path.is_symlink() and not path.exists())) and path.name != MANIFEST_NAME \
                and not (path.name.startswith(".") and path.name.endswith(".part")):
            yield path
SKIP_REASONS = ("no_pdf", "html_instead_of_pdf", "licence_not_allowed", "too_large", "duplicate_doi",
                "duplicate_file", "not_a_pdf", "truncated")  # plus "http_error:<code>" and "network_error"
# reasons that a later run does not try again (the bytes were seen and refused); the others are retried
FINAL_REASONS = frozenset({"html_instead_of_pdf", "not_a_pdf", "too_large", "duplicate_file"})


class ManifestRecord(Record):
    """One candidate paper and what the fetcher did with it."""

    key: str  # "openalex:W2741809807" | "europepmc:PMC1234567"
    source: Literal["openalex", "europepmc"]
    doi: str | None = None  # bare DOI, lower case ("10.1234/abc")
    openalex_id: str | None = None  # "W2741809807"
    pmcid: str | None = None
    title: str | None = None
    authors: list[str] = []
    year: int | None = None
    venue: str | None = None
    licence: str = "unknown"  # dataset_builders.licences id
    licence_raw: str | None = None  # as the index spelled it
    licence_url: str | None = None
    source_url: str | None = None  # the PDF URL
    landing_url: str | None = None
    pdf: str | None = None  # file name beside the manifest
    sha256: str | None = None
    bytes: int | None = None
    fetched_at: str  # ISO 8601 UTC of this decision
    status: Literal["downloaded", "skipped", "failed"]
    reason: str | None = None  # see SKIP_REASONS; "http_error:<code>" for HTTP failures
    detail: str = ""
    failed_runs: int = Field(0, ge=0)  # status "failed": how many runs in a row failed to download this PDF URL

    def source_meta(self) -> SourceMeta:
        return SourceMeta(title=self.title, doi=self.doi, licence=self.licence, licence_url=self.licence_url,
                          authors=list(self.authors), year=self.year, venue=self.venue, source_url=self.source_url,
                          licence_source="manifest" if self.licence != "unknown" else "unknown")


def read_manifest(path: Path) -> dict[str, ManifestRecord]:
    """{key: the last record of that key}. A torn or invalid line is skipped (a kill mid-write tears only the
    last line); an unreadable file raises naming it."""
    out: dict[str, ManifestRecord] = {}
    if not path.exists():
        return out
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise OSError(f"{path}: cannot read the fetch manifest: {exc}") from exc
    for line in text_lines(text):
        if not line.strip():
            continue
        try:
            record = ManifestRecord.model_validate_json(line)
        except ValidationError:
            continue
        out[record.key] = record
    return out


class ManifestWriter:
    """Appends records to papers.jsonl, one flushed and fsynced line each."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with open(path, "ab") as fh:  # a torn last line from a killed run: end it, so the next line parses
                fh.write(b"\n")

    def append(self, record: ManifestRecord) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(record.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())


class ManifestIndex:
    """Every downloaded record of every papers.jsonl under a papers folder, by sha256 and by file path."""

    def __init__(self) -> None:
        self.by_id: dict[str, ManifestRecord] = {}  # first 16 hex of sha256 (a paper id)
        self.by_path: dict[str, ManifestRecord] = {}

    @classmethod
    def load(cls, root: Path) -> "ManifestIndex":
        index = cls()
        for manifest in sorted(Path(root).rglob(MANIFEST_NAME)):
            folder = manifest.parent.relative_to(root).as_posix()
            for record in read_manifest(manifest).values():
                if record.status != "downloaded" or not record.pdf:
                    continue
                if record.sha256:
                    index.by_id[record.sha256.lower()[:16]] = record
                index.by_path[record.pdf if folder == "." else f"{folder}/{record.pdf}"] = record
        return index

    def __bool__(self) -> bool:
        return bool(self.by_id or self.by_path)

    def lookup(self, paper_id: str, rel_path: str) -> ManifestRecord | None:
        """The record of a PDF: its sha256 (paper_id is the first 16 hex digits) first, then its path."""
        return self.by_id.get(paper_id) or self.by_path.get(rel_path)
