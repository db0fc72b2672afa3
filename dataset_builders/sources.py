"""A paper's source metadata (DOI, title, authors, venue, licence, download URL) from the fetch manifest.

The mine stage reads the PDF (title, DOI, its own licence statement: dataset_builders.pdf.licence) and
overlays what the fetch manifest (dataset_builders.fetch.manifest, papers.jsonl) says about the file. A paper
mined before its manifest line existed, or whose line changed, is brought up to date on the next build
without being mined again: its paper.json and panels JSON get the new metadata (refresh_source).
Later stages read it back from the panels JSON with paper_meta (the held-out pool, the dataset card).
"""

from __future__ import annotations

import json

from dataset_builders.records import PaperPanels, PaperRecord, SourceMeta
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model, write_model_atomic

PAPER_META_FIELDS = ("title", "doi", "source_pdf", "licence", "licence_url", "source_url")


def apply_source(record: SourceMeta, source: SourceMeta | None) -> None:
    """Overlay the manifest's metadata on what was read from the PDF; the manifest's licence wins unless it is
    "unknown" (then the PDF's own statement, if any, stays)."""
    if source is None:
        return
    for name in ("title", "doi", "year", "venue", "source_url"):
        if getattr(source, name) is not None:
            setattr(record, name, getattr(source, name))
    if source.authors:
        record.authors = list(source.authors)
    if source.licence != "unknown":
        record.licence, record.licence_url, record.licence_source = source.licence, source.licence_url, "manifest"


def refresh_source(paths: StagePaths, record: PaperRecord, source: SourceMeta) -> bool:
    """Apply source to a resumed paper's stage files (paper.json, and panels/<paper_id>.json if written);
    True when something changed."""
    fields = set(SourceMeta.model_fields)
    before = record.model_dump(include=fields)
    apply_source(record, source)
    if record.model_dump(include=fields) == before:
        return False
    # the panels file first, paper.json last: a run killed between the two leaves paper.json as it was, so
    # the next run sees the change again and rewrites both (the other order left the panels file stale for good)
    panels_file = paths.panels / f"{record.paper_id}.json"
    if panels_file.exists():
        panels = read_model(panels_file, PaperPanels)
        for name, value in record.model_dump(include=fields).items():
            setattr(panels, name, value)
        write_model_atomic(panels_file, panels, durable=False)
    write_model_atomic(paths.mine / record.paper_id / "paper.json", record, durable=False)
    return True


def paper_meta(paths: StagePaths, paper_id: str, missing_ok: bool = False) -> dict:
    """{title, doi, source_pdf, licence, licence_url, source_url} of a paper from stages/panels/<paper_id>.json
    (None where the file has no value). A missing or unreadable file raises OSError / ValueError naming it, or,
    with missing_ok, gives {}."""
    path = paths.panels / f"{paper_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:  # its message names the file
        if missing_ok:
            return {}
        raise
    except ValueError as exc:  # not JSON, or not UTF-8
        if missing_ok:
            return {}
        raise ValueError(f"{path}: unreadable panels file: {exc}") from exc
    if not isinstance(data, dict):  # valid JSON, not a panels record
        if missing_ok:
            return {}
        raise ValueError(f"{path}: unreadable panels file: a JSON {type(data).__name__}, not an object")
    return {k: data.get(k) for k in PAPER_META_FIELDS}
