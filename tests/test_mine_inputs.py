"""The mine stage and the papers folder as users keep it: files renamed, moved, linked."""

from __future__ import annotations

from pathlib import Path

import pymupdf

from dataset_builders import mine
from dataset_builders.config import BuildConfig
from dataset_builders.records import PaperRecord
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model


def _paper(path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 300, 200), False)
    pix.set_rect(pix.irect, (120, 80, 40))
    page.insert_image(pymupdf.Rect(72, 100, 372, 300), pixmap=pix)
    page.insert_text((72, 320), "Fig. 1. SEM fractograph showing equiaxed dimples.", fontsize=10)
    doc.save(path)


def _run(papers: Path, paths: StagePaths):
    return mine.run(paths, BuildConfig(papers=papers, out=paths.out, workers=1), progress=False)


def test_a_renamed_pdf_is_reported_and_recorded_under_its_new_name(tmp_path):
    papers, paths = tmp_path / "papers", StagePaths(tmp_path / "out")
    papers.mkdir()
    _paper(papers / "old.pdf")
    pid = mine.paper_id_of(papers / "old.pdf")
    assert _run(papers, paths).counts["mined"] == 1
    (papers / "sub").mkdir()
    (papers / "old.pdf").rename(papers / "sub" / "new.pdf")
    again = _run(papers, paths)
    record = read_model(paths.mine / pid / "paper.json", PaperRecord)
    assert record.source_pdf == "sub/new.pdf"  # was "old.pdf": a file no longer there, carried into the dataset
    assert again.counts.get("renamed_remined") == 1
    third = _run(papers, paths)  # and then it resumes
    assert third.counts["resumed"] == 1 and third.counts["mined"] == 0


def test_the_first_of_two_copies_removed_the_other_names_the_paper(tmp_path):
    papers, paths = tmp_path / "papers", StagePaths(tmp_path / "out")
    papers.mkdir()
    _paper(papers / "a.pdf")
    (papers / "b.pdf").write_bytes((papers / "a.pdf").read_bytes())
    first = _run(papers, paths)
    assert [(p.file, p.reason) for p in first.problems] == [("b.pdf", "duplicate_pdf")]
    (papers / "a.pdf").unlink()
    again = _run(papers, paths)
    pid = mine.paper_id_of(papers / "b.pdf")
    assert read_model(paths.mine / pid / "paper.json", PaperRecord).source_pdf == "b.pdf"
    assert again.problems == []
