"""Mine and panels records are resumed only while the code that made them is the code that runs (stage_cache
record keys): a changed rule makes again what it decides, and nothing else; unchanged code resumes as before."""

from __future__ import annotations

from pathlib import Path

from test_mine import cfg, paper_caption_above, paper_main

from dataset_builders import mine, panel_records, panels
from dataset_builders.records import PaperRecord, Problem
from dataset_builders.stage_cache import code_modules
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model, write_model_atomic


def _two_papers(tmp_path: Path) -> tuple[StagePaths, object, str, str]:
    papers = tmp_path / "papers"
    papers.mkdir()
    paper_main(papers / "main.pdf")
    paper_caption_above(papers / "above.pdf")
    paths = StagePaths(tmp_path / "out")
    config = cfg(papers, paths.out)
    assert mine.run(paths, config, progress=False).counts["mined"] == 2
    assert panels.run(paths, config, progress=False).counts["papers"] == 2
    return paths, config, mine.paper_id_of(papers / "main.pdf"), mine.paper_id_of(papers / "above.pdf")


def _stamps(paths: StagePaths, pid: str) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (paths.mine / pid / "paper.json", paths.panels / f"{pid}.json")}


def test_unchanged_code_resumes_every_record(tmp_path):
    paths, config, main, above = _two_papers(tmp_path)
    before = _stamps(paths, main) | _stamps(paths, above)
    again = mine.run(paths, config, progress=False)
    assert again.counts["resumed"] == 2 and again.counts["mined"] == 0 and "code_remined" not in again.counts
    split = panels.run(paths, config, progress=False)
    assert split.counts["papers_resumed"] == 2 and "code_resplit" not in split.counts
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_record_mined_by_other_code_is_mined_and_split_again_alone(tmp_path):
    """A paper.json without a key (written before keys existed) or with another one (a mine rule changed since)
    is mined again, its panels with it; the other paper is resumed untouched. Failed before: resumed."""
    paths, config, main, above = _two_papers(tmp_path)
    record, panels_file = (paths.mine / main / "paper.json").read_bytes(), (paths.panels / f"{main}.json").read_bytes()
    untouched = _stamps(paths, above)
    for stale in (lambda key: key.unlink(missing_ok=True), lambda key: key.write_text("0" * 64 + "\n")):
        stale(paths.mine / main / "paper.key")
        again = mine.run(paths, config, progress=False)
        assert (again.counts["code_remined"], again.counts["mined"], again.counts["resumed"]) == (1, 1, 1)
        assert not (paths.panels / f"{main}.json").exists()  # split again below, from the new record
        assert (paths.mine / main / "paper.json").read_bytes() == record  # same code: the same record
        split = panels.run(paths, config, progress=False)
        assert (split.counts["papers"], split.counts["papers_resumed"]) == (1, 1)
        assert (paths.panels / f"{main}.json").read_bytes() == panels_file
    assert _stamps(paths, above) == untouched


def test_panels_split_by_other_code_are_split_again_and_the_mine_record_kept(tmp_path):
    """A changed panels rule re-splits (stale crops removed), without mining again. Failed before: resumed."""
    paths, config, main, above = _two_papers(tmp_path)
    panels_file = (paths.panels / f"{main}.json").read_bytes()
    mined = {p: p.stat().st_mtime_ns for p in (paths.mine / main / "paper.json", paths.mine / above / "paper.json")}
    (paths.panels / f"{main}.key").write_text("0" * 64 + "\n")
    stale_crop = paths.panels / main / "left-over.jpg"
    stale_crop.parent.mkdir(exist_ok=True)
    stale_crop.write_bytes(b"not a crop of this code")
    assert mine.run(paths, config, progress=False).counts["resumed"] == 2
    split = panels.run(paths, config, progress=False)
    assert (split.counts["code_resplit"], split.counts["papers"], split.counts["papers_resumed"]) == (1, 1, 1)
    assert (paths.panels / f"{main}.json").read_bytes() == panels_file and not stale_crop.exists()
    assert {p: p.stat().st_mtime_ns for p in mined} == mined


def test_a_panels_rule_is_not_part_of_the_mine_key_and_a_pdf_rule_not_of_the_panels_key():
    """So a changed seam rule re-splits the panels but mines nothing again, and a changed PDF rule re-mines."""
    mined, split = set(code_modules("dataset_builders.mine")), set(code_modules("dataset_builders.panels"))
    assert {"dataset_builders.panel_seams", "dataset_builders.panel_layout", "dataset_builders.panel_grid"} <= split - mined
    assert {"dataset_builders.pdf.background", "dataset_builders.pdf.figures"} <= mined - split


def test_a_record_of_the_shape_written_before_paper_record_ocr_is_mined_again(tmp_path):
    """The legacy OCR branch (a record without PaperRecord.ocr naming the missing Tesseract only in a problem line)
    is gone: such a record was written before record keys existed, so it has none and is mined again whatever
    Tesseract's state. Every record with a key was written with PaperRecord.ocr set."""
    paths, config, main, _ = _two_papers(tmp_path)
    record = read_model(paths.mine / main / "paper.json", PaperRecord)
    record.ocr = None
    record.problems = [Problem(file=record.source_pdf, stage="mine", reason="scan_without_text_layer",
                               detail="page(s) 1: page images without text; install tesseract-ocr ...")]
    write_model_atomic(paths.mine / main / "paper.json", record)
    (paths.mine / main / "paper.key").unlink(missing_ok=True)
    again = mine.run(paths, config, progress=False)
    assert (again.counts["code_remined"], again.counts["mined"]) == (1, 1)
    assert read_model(paths.mine / main / "paper.json", PaperRecord).problems == []


def test_a_removed_pdf_takes_its_records_with_it(tmp_path):
    """A PDF gone from the papers folder: mine forgets its mine and panels files (count ``removed``), so no later
    stage sees them, whatever their key; the other paper is resumed untouched and the PDF put back is mined
    anew. Failed before: the record stayed (its stale key never checked), was split and exported on."""
    paths, config, main, above = _two_papers(tmp_path)
    untouched = _stamps(paths, main)
    (paths.mine / above / "paper.key").write_text("0" * 64 + "\n")  # mined by other (older) code, too
    pdf = config.papers / "above.pdf"
    kept = pdf.read_bytes()
    pdf.unlink()
    again = mine.run(paths, config, progress=False)
    assert (again.counts["removed"], again.counts["resumed"], again.counts["mined"]) == (1, 1, 0)
    assert not (paths.mine / above).exists() and not list(paths.panels.glob(f"{above}*"))
    split = panels.run(paths, config, progress=False)
    assert (split.counts["papers"], split.counts["papers_resumed"]) == (0, 1)
    assert _stamps(paths, main) == untouched
    pdf.write_bytes(kept)
    back = mine.run(paths, config, progress=False)
    assert (back.counts["mined"], back.counts["resumed"], "removed" in back.counts) == (1, 1, False)


def test_a_papers_folder_with_no_pdf_forgets_nothing(tmp_path):
    """An empty (mistyped, unmounted) papers folder is not "every paper removed": the records stay."""
    paths, config, main, above = _two_papers(tmp_path)
    stamps = _stamps(paths, main)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = mine.run(paths, config.model_copy(update={"papers": empty}), progress=False)
    assert "removed" not in result.counts
    assert (paths.mine / above / "paper.json").exists() and _stamps(paths, main) == stamps


def test_a_library_version_is_part_of_the_mine_and_panels_keys(tmp_path, monkeypatch):
    """Another PyMuPDF mines every paper again; another Pillow or numpy splits every paper again (mining none).
    Failed before: the versions were in no key, so records made by other libraries were resumed."""
    import numpy
    import PIL
    import pymupdf

    paths, config, _, _ = _two_papers(tmp_path)
    key = mine.record_key(config)
    for lib, attr in ((PIL, "__version__"), (numpy, "__version__")):
        with monkeypatch.context() as m:
            m.setattr(lib, attr, "0.0-other")
            assert mine.run(paths, config, progress=False).counts["resumed"] == 2
            split = panels.run(paths, config, progress=False)
            assert (split.counts["code_resplit"], split.counts["papers"]) == (2, 2)
    monkeypatch.setattr(pymupdf, "VersionBind", "0.0-other")
    assert mine.record_key(config) != key
    assert mine.run(paths, config, progress=False).counts["code_remined"] == 2


def test_pydantic_is_part_of_the_mine_and_panels_keys(tmp_path, monkeypatch):
    """Their records are pydantic serialisations (paper.json, panels/<id>.json), as the kept lines are: another
    pydantic makes them again, so an update writes what a fresh build would."""
    import pydantic

    paths, config, _, _ = _two_papers(tmp_path)
    key = mine.record_key(config)
    panels.run(paths, config, progress=False)
    monkeypatch.setattr(pydantic, "__version__", "0.0-other")
    assert mine.record_key(config) != key
    assert mine.run(paths, config, progress=False).counts["code_remined"] == 2
    panels_key = panel_records.record_key()
    monkeypatch.undo()
    assert panel_records.record_key() != panels_key
    monkeypatch.setattr(pydantic, "__version__", "0.0-other")
    assert panels.run(paths, config, progress=False).counts["papers_resumed"] == 0

