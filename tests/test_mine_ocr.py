"""Scanned pages without a text layer (dataset_builders/pdf/ocr.py): OCR'd with Tesseract through PyMuPDF, then
cut like any scan. The OCR tests need Tesseract's English data (Debian: tesseract-ocr tesseract-ocr-eng, which
.ci/run installs); where it is absent they skip with that reason."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest
from test_mine import A4, cfg, jpeg_bytes, mine_one, text, texture
from test_mine_layouts import panels_config, scanned

from dataset_builders import mine, panels
from dataset_builders.labelling.caption_rules import label_panel
from dataset_builders.pdf import ocr
from dataset_builders.records import PaperPanels, PaperRecord
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model

needs_tesseract = pytest.mark.skipif(ocr.tessdata() is None,
                                     reason="Tesseract's English data not found (apt-get install tesseract-ocr "
                                            "tesseract-ocr-eng; .ci/run does)")
FIGURE = (150, 250, 450, 470)  # where the generated paper puts its fractograph


PAGE_TEXT = [  # (box, text, font size) of the generated paper page, around the micrograph at FIGURE
    ((60, 60, 540, 90), "Fracture of the annealed plate", 16),
    ((60, 110, 540, 230), "The specimens were broken in tension at room temperature and the fracture surfaces were "
                          "examined in the scanning electron microscope. The overload region is shown in Fig. 3 at "
                          "a higher magnification.", 11),
    ((150, 480, 450, 500), "Fig. 3. SEM fractograph showing dimples", 11),
    ((60, 530, 540, 620), "The size of the voids agrees with the spacing of the carbides measured on polished "
                          "sections of the same plate.", 11),
]


def paper_page(path: Path) -> None:
    """A born-digital paper page: text, a micrograph, its caption below, more text."""
    with pymupdf.open() as doc:
        page = doc.new_page(width=A4[0], height=A4[1])
        page.insert_image(pymupdf.Rect(FIGURE), stream=jpeg_bytes(texture(600, 440, 5)))
        for box, words, size in PAGE_TEXT:
            text(page, box, words, size=size)
        doc.save(path)


def image_only(build):
    """A PDF builder turned into a scan without text layer: each page rendered at 200 dpi and nothing else."""
    return scanned(build, dpi=200, text_layer=False)


@needs_tesseract
def test_a_scan_without_text_layer_is_read_by_ocr_and_its_figure_cut_at_its_box(tmp_path):
    rec, paths, result = mine_one(tmp_path, image_only(paper_page))
    assert [p.reason for p in result.problems] == []
    (fig,) = rec.figures  # the micrograph, not the page image
    assert fig.number == "3" and fig.caption.startswith("Fig. 3. SEM fractograph showing dimples"), fig.caption
    assert all(abs(a - b) <= 4 for a, b in zip(fig.bbox, FIGURE)), fig.bbox
    (part,) = fig.parts
    assert part.origin == "rendered" and fig.kind == "raster"
    assert any(e.figure_number == "3" and "overload region" in e.text for e in rec.excerpts)  # the OCR'd citing text
    panels.run(paths, panels_config(paths), progress=False)
    (panel,) = read_model(paths.panels / f"{rec.paper_id}.json", PaperPanels).panels
    assert panel.figure_number == "3"
    assert "equiaxed dimples" in label_panel(panel).features


def test_without_tesseract_the_page_stays_one_image_and_is_reported(tmp_path, monkeypatch):
    # a language-data folder without English: PyMuPDF takes TESSDATA_PREFIX as given (get_tessdata), so this
    # is the machine without Tesseract's data, for real
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    ocr.tessdata.cache_clear()
    try:
        rec, _, result = mine_one(tmp_path, image_only(paper_page))
    finally:
        ocr.tessdata.cache_clear()
    (problem,) = [p for p in result.problems if p.reason == "scan_without_text_layer"]
    assert "page(s) 1" in problem.detail and "install tesseract-ocr" in problem.detail
    (fig,) = rec.figures  # as before this change: the page image, uncaptioned
    assert fig.caption == "" and all(abs(a - b) < 1 for a, b in zip(fig.bbox, (0, 0, *A4))), fig.bbox


def test_ocr_off_reports_the_page_and_reads_nothing(tmp_path):
    rec, _, result = mine_one(tmp_path, image_only(paper_page), ocr="off")
    assert [(p.reason, "--ocr off" in p.detail) for p in result.problems] == [("scan_without_text_layer", True)]
    assert [f.caption for f in rec.figures] == [""]


def test_one_full_page_photo_in_a_born_digital_document_is_not_ocrd(tmp_path):
    def deck(path: Path) -> None:  # a full-bleed photo slide between two text slides: not a scan
        doc = pymupdf.open()
        for k in range(3):
            p = doc.new_page(width=720, height=540)
            if k == 1:
                p.insert_image(p.rect, stream=jpeg_bytes(texture(960, 720, 9)))
                p.insert_text((30, 40), "Ice Age", fontsize=24)
            else:
                text(p, (40, 40, 680, 500), "Ductile and brittle fracture of steels. " * 12, size=14)
        doc.save(path)
    rec, _, result = mine_one(tmp_path, deck)
    assert [p.reason for p in result.problems] == []
    (fig,) = rec.figures  # the photo, embedded, as before
    assert fig.parts[0].origin == "embedded"


@needs_tesseract
def test_a_scan_mined_without_tesseract_is_mined_again_once_it_is_there(tmp_path, monkeypatch):
    papers = tmp_path / "papers"
    papers.mkdir()
    image_only(paper_page)(papers / "scan.pdf")
    paper_page(papers / "digital.pdf")  # born digital: no OCR needed, never mined again
    scan, digital = mine.paper_id_of(papers / "scan.pdf"), mine.paper_id_of(papers / "digital.pdf")
    paths = StagePaths(tmp_path / "out")
    config = cfg(papers, paths.out)
    no_tesseract = tmp_path / "bin"  # PATH without tesseract (nor whereis): PyMuPDF finds no language data
    no_tesseract.mkdir()
    with monkeypatch.context() as m:
        m.setenv("PATH", str(no_tesseract))
        m.delenv("TESSDATA_PREFIX", raising=False)
        ocr.tessdata.cache_clear()
        try:
            assert ocr.tessdata() is None
            first = mine.run(paths, config, progress=False)
            panels.run(paths, panels_config(paths), progress=False)
        finally:
            ocr.tessdata.cache_clear()
    assert first.counts["mined"] == 2
    old = read_model(paths.mine / scan / "paper.json", PaperRecord)
    assert old.ocr == "unavailable" and [f.caption for f in old.figures] == [""]
    assert read_model(paths.mine / digital / "paper.json", PaperRecord).ocr is None
    digital_files = {p: p.stat().st_mtime_ns for p in [paths.mine / digital / "paper.json",
                                                        paths.panels / f"{digital}.json"]}

    second = mine.run(paths, config, progress=False)  # Tesseract is on PATH again
    assert (second.counts["ocr_remined"], second.counts["mined"], second.counts["resumed"]) == (1, 1, 1)
    new = read_model(paths.mine / scan / "paper.json", PaperRecord)
    (fig,) = new.figures
    assert new.ocr == "used" and fig.caption.startswith("Fig. 3. SEM fractograph showing dimples")
    assert not (paths.panels / f"{scan}.json").exists()  # its old panels are gone: split again below
    assert {p: p.stat().st_mtime_ns for p in digital_files} == digital_files  # the other paper untouched
    panels.run(paths, panels_config(paths), progress=False)
    assert [p.figure_number for p in read_model(paths.panels / f"{scan}.json", PaperPanels).panels] == ["3"]
    third = mine.run(paths, config, progress=False)
    assert third.counts["resumed"] == 2 and "ocr_remined" not in third.counts
