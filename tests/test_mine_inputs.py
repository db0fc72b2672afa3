"""The mine stage and the papers folder as users keep it: files renamed, moved, linked."""

from __future__ import annotations

import os
from pathlib import Path

import pymupdf
import pytest

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


def test_a_symlink_leading_nowhere_is_reported_not_lost(tmp_path):
    papers, paths = tmp_path / "papers", StagePaths(tmp_path / "out")
    (papers / "sub").mkdir(parents=True)
    _paper(papers / "good.pdf")
    (papers / "gone.pdf").symlink_to(tmp_path / "deleted.pdf")  # its target deleted
    (papers / "sub" / "loop_a.pdf").symlink_to("loop_b.pdf")  # a loop
    (papers / "sub" / "loop_b.pdf").symlink_to("loop_a.pdf")
    (papers / "sub" / "up").symlink_to("..")  # a folder loop: not followed, not a file
    result = _run(papers, paths)
    got = {p.file: (p.reason, p.severity, p.detail) for p in result.problems}
    assert set(got) == {"gone.pdf", "sub/loop_a.pdf", "sub/loop_b.pdf"}, got
    assert got["gone.pdf"][:2] == ("unreadable", "failed") and "No such file" in got["gone.pdf"][2]
    assert "symbolic links" in got["sub/loop_a.pdf"][2]
    assert result.counts["files"] == 4 and result.counts["mined"] == 1


def test_a_folder_holding_only_a_dangling_pdf_link_is_refused(tmp_path):
    from dataset_builders.build import BuildError, check_papers

    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "gone.pdf").symlink_to(tmp_path / "deleted.pdf")
    with pytest.raises(BuildError, match="no PDF under"):
        check_papers(BuildConfig(papers=papers, out=tmp_path / "out"))


def test_a_rendered_figure_fits_in_max_image_pixels(tmp_path):
    """A vector figure whose render at --render-dpi would exceed --max-image-pixels (a poster-size page; here a
    small budget) is rendered at the resolution that fits, not as a bomb the panels stage refuses."""
    from test_mine import mine_one
    from test_mine_vector import side_caption_paper

    default, _, _ = mine_one(tmp_path / "default", side_caption_paper)
    chart = next(f for f in default.figures if f.kind == "vector")
    full = chart.parts[0].width * chart.parts[0].height
    assert full > 50_000  # ~383 x 275 px at 150 dpi
    small, _, _ = mine_one(tmp_path / "small", side_caption_paper, max_image_pixels=50_000)
    part = next(f for f in small.figures if f.kind == "vector").parts[0]
    assert 0.9 * 50_000 <= part.width * part.height <= 50_000
    assert abs(part.width / part.height - chart.parts[0].width / chart.parts[0].height) < 0.02


def test_a_web_page_saved_as_pdf_is_not_a_pdf_whatever_its_encoding(tmp_path):
    from dataset_builders.pdf.file_check import check_file

    page = ("<!DOCTYPE html><html><head><meta charset=utf-8><title>论文下载</title></head><body>"
            + "断裂面" * 400).encode()
    for cut in range(1020, 1026):  # the first KiB ends inside a character, or not
        (tmp_path / "cn.pdf").write_bytes(page[:cut] + b"x" * 10)
        assert check_file(str(tmp_path / "cn.pdf"))[1][0] == "not_a_pdf", cut
    (tmp_path / "fr.pdf").write_bytes("<html><body>Accès refusé</body></html>".encode("latin-1"))
    assert check_file(str(tmp_path / "fr.pdf"))[1][0] == "not_a_pdf"
    (tmp_path / "bin.pdf").write_bytes(bytes(range(256)) * 8)  # unknown bytes named .pdf: still damaged
    assert check_file(str(tmp_path / "bin.pdf"))[1][:1] == ("truncated_or_corrupt",)


def test_a_file_name_that_is_not_utf8_is_reported_and_the_rest_is_mined(tmp_path):
    papers, paths = tmp_path / "papers", StagePaths(tmp_path / "out")
    papers.mkdir()
    _paper(papers / "good.pdf")
    latin1 = papers / os.fsdecode(b"caf\xe9.pdf")  # a name written by a Latin-1 system
    latin1.write_bytes((papers / "good.pdf").read_bytes() + b"%another paper")
    for _ in range(2):  # the second run resumes (the name is not kept in mine_ids.tsv either)
        result = _run(papers, paths)
        assert [(p.file, p.reason, p.severity) for p in result.problems] == [("caf\\xe9.pdf", "unreadable", "failed")]
        assert "not valid UTF-8" in result.problems[0].detail
        assert result.counts["mined"] + result.counts["resumed"] == 1
