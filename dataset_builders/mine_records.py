"""A mined paper's records on disk: whether the mine stage resumes them, and their removal.

stages/mine/<paper_id>/paper.json (PaperRecord) is resumed while its key file (paper.key, stage_cache record
keys: mine.record_key) holds the running code's key and, for a scan left unread for want of Tesseract, while
Tesseract is still missing. A paper mined again, or whose PDF left the papers folder, loses its mine and panels
files (forget_paper, forget_removed).

Usage (mine.run):
    record, again = resumable(paths, paper_id, key, config.ocr)   # (None, "code_remined") ...: mine it again
    forget_paper(paths, paper_id)
    removed = forget_removed(paths, {paper ids of this run's PDFs})
"""

from __future__ import annotations

import shutil

from dataset_builders.pdf.ocr import tessdata
from dataset_builders.records import PaperRecord
from dataset_builders.stage_cache import key_file, record_is_current
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model


def resumable(paths: StagePaths, paper_id: str, key: str, ocr: str) -> tuple[PaperRecord | None, str]:
    """(its record, "") when the paper is resumed, else (None, why it is mined again: the count's name, "" for an
    unreadable record): made by other code or settings, or its scan left unread for want of Tesseract."""
    if not record_is_current(key_file(paths.mine / paper_id / "paper.json"), key):
        return None, "code_remined"
    try:
        record = read_model(paths.mine / paper_id / "paper.json", PaperRecord)
    except ValueError:
        return None, ""
    if record.ocr == "unavailable" and ocr != "off" and tessdata() is not None:
        return None, "ocr_remined"
    return record, ""


def forget_paper(paths: StagePaths, paper_id: str) -> None:
    """Delete a paper's mine and panels outputs, panels first (a kill in between leaves the mine record, which
    asks for this again; never a panels file of a paper mined anew)."""
    (paths.panels / f"{paper_id}.json").unlink(missing_ok=True)
    key_file(paths.panels / f"{paper_id}.json").unlink(missing_ok=True)
    shutil.rmtree(paths.panels / paper_id, ignore_errors=True)
    shutil.rmtree(paths.mine / paper_id, ignore_errors=True)


def forget_removed(paths: StagePaths, inputs: set[str]) -> int:
    """forget_paper every paper with mine or panels files whose PDF is not among this run's inputs (it left the
    papers folder): no later stage sees its records. Returns how many."""
    found = {p.name for p in paths.mine.iterdir() if p.is_dir()} if paths.mine.is_dir() else set()
    if paths.panels.is_dir():  # <id>.json, <id>.key, <id>/ (a killed forget_paper may leave a panels file alone)
        found |= {p.name.split(".")[0] for p in paths.panels.iterdir() if p.is_dir() or p.suffix in (".json", ".key")}
    gone = sorted(found - inputs - {""})
    for paper_id in gone:
        forget_paper(paths, paper_id)
    return len(gone)
