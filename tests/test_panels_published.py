"""The splitter on figures shaped like published multi-panel figures, mined from generated journal pages.

Each case is a PyMuPDF page holding one raster figure (micrograph-like textures; letters printed in the
pixels in Helvetica-Bold, as journals set them) and its caption set as real text, with bold panel letters
where the case says so. The page goes through the real mine and panels stages; the test asserts the number
of panels, each panel's box in the figure image's pixels and on the page (IoU >= 0.5 with the truth) and its
letter or name. The shapes are the misses seen on published Nature-family figures (issue 22): bare bold
letters ("a Schematic … b Power …"), letters printed column-major (a, c on top; b, d below), a letter the
caption parser misses, a figure on a black background, and panels named by numeral or position.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from dataset_builders import mine, panels
from dataset_builders.config import BuildConfig
from dataset_builders.records import PaperPanels, PaperRecord
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model

SCALE = 1.5  # figure pixels per point: a 400 x 300 pt figure is 600 x 450 px (0.27 Mpx, the median of real papers)
FIG_RECT = pymupdf.Rect(90, 90, 490, 390)  # where the figure sits on the journal page


@dataclass
class Case:
    name: str
    rows: int
    cols: int
    caption_html: str  # the caption as HTML (<b> for bold)
    printed: str = ""  # letters printed in the cells, row-major ("acbd": column-major); "" = none
    dark: bool = False  # black background and gutters
    expected: list[str | None] = field(default_factory=list)  # per cell, row-major: letter/name; [] = one panel
    own_text: dict[str, str] = field(default_factory=dict)  # panel key -> words its caption must hold


def _texture(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (h // 6 + 2, w // 6 + 2))
    image = Image.fromarray(np.uint8(np.clip(coarse * 35 + 115, 25, 210))).resize((w, h), Image.BICUBIC)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _cells(case: Case, width: float, height: float) -> list[tuple[float, float, float, float]]:
    """Cell rectangles in figure points, row-major: 8 pt outer margin, 10 pt gutters."""
    margin, gutter = 8.0, 10.0
    cw = (width - 2 * margin - (case.cols - 1) * gutter) / case.cols
    ch = (height - 2 * margin - (case.rows - 1) * gutter) / case.rows
    return [(margin + c * (cw + gutter), margin + r * (ch + gutter),
             margin + c * (cw + gutter) + cw, margin + r * (ch + gutter) + ch)
            for r in range(case.rows) for c in range(case.cols)]


def figure_png(case: Case, seed: int) -> tuple[bytes, list[tuple[float, float, float, float]]]:
    """The figure as a PNG rendered by MuPDF (textures, letters in Helvetica-Bold) and its cell boxes in pixels."""
    width, height = FIG_RECT.width, FIG_RECT.height
    doc = pymupdf.open()
    page = doc.new_page(width=width, height=height)
    if case.dark:
        page.draw_rect(page.rect, color=None, fill=(0, 0, 0))
    cells = _cells(case, width, height)
    for i, (x0, y0, x1, y1) in enumerate(cells):
        page.insert_image(pymupdf.Rect(x0, y0, x1, y1), stream=_texture(int(x1 - x0), int(y1 - y0), seed + i))
        if case.printed:
            page.draw_rect(pymupdf.Rect(x0 + 4, y0 + 4, x0 + 22, y0 + 24), color=None, fill=(1, 1, 1))
            page.insert_text((x0 + 7, y0 + 19), case.printed[i], fontname="hebo", fontsize=16)
    png = page.get_pixmap(matrix=pymupdf.Matrix(SCALE, SCALE)).tobytes("png")
    doc.close()
    return png, [tuple(v * SCALE for v in c) for c in cells]


def journal_pdf(case: Case, path: Path, seed: int) -> list[tuple[float, float, float, float]]:
    """A one-column journal page: a paragraph, the figure, its caption below. Returns the true pixel boxes."""
    png, boxes = figure_png(case, seed)
    journal_page(path, png, case.caption_html)
    return boxes


def journal_page(path: Path, image: bytes, caption_html: str) -> None:
    """A one-column journal page: a paragraph, the figure image at FIG_RECT, its caption below, more text."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_htmlbox(pymupdf.Rect(90, 40, 505, 85),
                        "<p style='font-size:9pt'>The specimens were broken at room temperature and the fracture "
                        "surfaces examined in a scanning electron microscope.</p>")
    page.insert_image(FIG_RECT, stream=image)
    page.insert_htmlbox(pymupdf.Rect(90, FIG_RECT.y1 + 8, 505, FIG_RECT.y1 + 120),
                        f"<p style='font-size:8pt;font-family:sans-serif'>{caption_html}</p>")
    page.insert_htmlbox(pymupdf.Rect(90, 540, 505, 800),
                        "<p style='font-size:9pt'>" + "The results are discussed below in some detail. " * 12 + "</p>")
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    doc.close()


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


CASES = [
    Case("nature_bold_capitals", 2, 2,
         "<b>Fig. 2 | Fracture of the welded joints.</b> <b>a</b> Overview of the fracture surface. <b>b</b> Dimples "
         "in the weld metal. <b>c</b> Cleavage facets near the fusion line. <b>d</b> Fatigue striations.",
         printed="abcd", expected=["a", "b", "c", "d"], own_text={"b": "Dimples", "c": "Cleavage"}),
    Case("nature_bold_lowercase_text_unprinted", 1, 3,
         "<b>Fig. 3 | Hydrogen-charged steel.</b> <b>a</b> overview at low magnification; <b>b</b> quasi-cleavage "
         "facets; <b>c</b> secondary cracks along the prior austenite grain boundaries.",
         expected=["a", "b", "c"], own_text={"b": "quasi-cleavage", "c": "secondary cracks"}),
    Case("bold_title_runs_into_first_letter", 1, 2,  # one bold span "Fig. 4 | … of a weld. a"
         "<b>Fig. 4 | Fracture of a weld. a</b> overview of the joint; <b>b</b> dimples in the fusion zone.",
         expected=["a", "b"], own_text={"a": "overview", "b": "dimples"}),
    Case("column_major_printed", 2, 2,
         "Fig. 4. SEM fractographs: (a) dimples; (b) cleavage facets; (c) striations; (d) a pore at the origin.",
         printed="acbd", expected=["a", "c", "b", "d"], own_text={"c": "striations", "b": "cleavage"}),
    Case("missed_letter_printed_column_major", 2, 2,
         "Fig. 5. Fracture surfaces: (a) dimples; (b) cleavage facets; c\u2014striations; (d) a pore.",
         printed="acbd", expected=["a", "c", "b", "d"], own_text={"c": "striations", "b": "cleavage"}),
    Case("missed_letter_unprinted", 1, 4,  # "and c striations": no marker the parser can recover
         "Fig. 6. Fracture surfaces: (a) dimples; (b) cleavage facets and c striations; (d) a pore.",
         expected=["a", "b", "c", "d"], own_text={"c": "Fracture surfaces", "d": "pore"}),
    Case("caption_without_letters_printed", 2, 2,
         "Fig. 7. SEM fractographs of the four tested specimens.",
         printed="acbd", expected=["a", "c", "b", "d"]),
    Case("dark_background", 1, 2,
         "Fig. 8. Optical fractographs of the lap joint: (a) general overview and (b) detailed view.",
         dark=True, expected=["a", "b"]),
    Case("roman_numerals", 1, 3,
         "Fig. 9. Fracture surfaces of the (i) as-built, (ii) HIPed and (iii) machined specimens.",
         expected=["i", "ii", "iii"], own_text={"ii": "HIPed"}),
    Case("left_right", 1, 2,
         "Fig. 10. Fracture surfaces of the uncharged (left) and H-charged (right) specimens.",
         expected=["left", "right"], own_text={"right": "H-charged"}),
    Case("top_bottom", 2, 1,
         "Fig. 11. SEM of the 316L (top) and 17-4PH (bottom) steel fracture surfaces.",
         expected=["top", "bottom"], own_text={"bottom": "17-4PH"}),
    Case("no_letters_anywhere_stays_whole", 1, 2,
         "Fig. 12. SEM fractographs of the tested specimens.", expected=[]),
]


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """All cases mined and split in one build (one PDF per case)."""
    root = tmp_path_factory.mktemp("published")
    truth = {}
    for seed, case in enumerate(CASES):
        truth[case.name] = journal_pdf(case, root / "papers" / f"{case.name}.pdf", seed * 10)
    return mine_and_split(root / "papers", root / "build"), truth


def mine_and_split(papers: Path, out: Path) -> dict[str, tuple[PaperRecord, list]]:
    """Run the real mine and panels stages on a folder of PDFs: {pdf stem: (paper, its panels)}."""
    config = BuildConfig(out=out, papers=papers, workers=1)
    paths = StagePaths(config.out)
    assert mine.run(paths, config, progress=False).problems == []
    assert panels.run(paths, config, progress=False).problems == []
    got = {}
    for f in paths.mine.glob("*/paper.json"):
        paper = read_model(f, PaperRecord)
        got[Path(paper.source_pdf).stem] = (paper, read_model(paths.panels / f"{paper.paper_id}.json", PaperPanels).panels)
    return got


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_published_shapes_are_split_into_their_panels(mined, case):
    out, truth = mined
    paper, got = out[case.name]
    assert len(paper.figures) == 1, [f.figure_id for f in paper.figures]
    figure = paper.figures[0]
    if not case.expected:
        assert len(got) == 1 and got[0].letter is None and got[0].name is None
        assert got[0].box == (0, 0, figure.parts[0].width, figure.parts[0].height)
        return
    assert len(got) == len(case.expected), [(p.panel_id, p.split_note) for p in got]
    part = figure.parts[0]
    sx, sy = part.width / (FIG_RECT.width * SCALE), part.height / (FIG_RECT.height * SCALE)
    for key, true_box in zip(case.expected, truth[case.name]):
        mine_box = (true_box[0] * sx, true_box[1] * sy, true_box[2] * sx, true_box[3] * sy)
        (panel,) = [p for p in got if (p.letter or p.name) == key]
        assert iou(panel.box, mine_box) >= 0.5, (key, panel.box, mine_box, panel.split_note)
        page_truth = (FIG_RECT.x0 + true_box[0] / SCALE, FIG_RECT.y0 + true_box[1] / SCALE,
                      FIG_RECT.x0 + true_box[2] / SCALE, FIG_RECT.y0 + true_box[3] / SCALE)
        assert iou(panel.page_box, page_truth) >= 0.5, (key, panel.page_box, page_truth)
        named = case.name in ("roman_numerals", "left_right", "top_bottom")
        assert (panel.letter, panel.name) == ((None, key) if named else (key, None))
    for key, words in case.own_text.items():
        (panel,) = [p for p in got if (p.letter or p.name) == key]
        assert words in panel.caption, (key, panel.caption)


def test_bold_caption_letters_reach_the_figure_record(mined):
    out, _ = mined
    paper, _ = out["nature_bold_lowercase_text_unprinted"]
    assert paper.figures[0].caption_bold[-3:] == ["a", "b", "c"]


def test_missed_letter_gets_only_the_common_caption_part(mined):
    out, _ = mined
    _, got = out["missed_letter_unprinted"]
    (c,) = [p for p in got if p.letter == "c"]
    assert "dimples" not in c.caption and "pore" not in c.caption  # not its neighbours' words
    out_recovered = out["missed_letter_printed_column_major"][1]
    (b,) = [p for p in out_recovered if p.letter == "b"]
    assert "striations" not in b.caption  # "c\u2014striations" was cut off (b)'s part


def test_panel_boxes_reach_the_item_provenance(mined):
    """A reviewer can draw each dataset item's panel on the mined figure image and on the PDF page."""
    from dataset_builders.items import _mined_item
    from dataset_builders.records import DuplicateGroup, LabelRecord, SourceMeta

    out, _ = mined
    _, got = out["left_right"]
    (right,) = [p for p in got if p.name == "right"]
    group = DuplicateGroup(group_id=right.panel_id, representative=right.panel_id, members=[right.panel_id],
                           paper_ids=[right.paper_id])
    label = LabelRecord(item_id=right.panel_id, features=["equiaxed dimples"], origin="caption_rules")
    provenance = _mined_item(right, group, label, SourceMeta()).provenance
    assert provenance["panel_box"] == list(right.box) and provenance["panel_page_box"] == list(right.page_box)
    assert provenance["panel_name"] == "right" and provenance["panel"] is None
    assert right.page_box[0] > (FIG_RECT.x0 + FIG_RECT.x1) / 2  # the right half of the figure on the page


# --- panels named otherwise, one embedded image each ------------------------------------------------------

def _parts_pdf(path: Path, caption: str, rects: list[pymupdf.Rect]) -> None:
    """A page whose figure is several embedded images (one per panel) with one caption below them all."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    for k, rect in enumerate(rects):
        page.insert_image(rect, stream=_texture(int(rect.width * SCALE), int(rect.height * SCALE), 500 + k))
    bottom = max(r.y1 for r in rects)
    page.insert_htmlbox(pymupdf.Rect(90, bottom + 8, 505, bottom + 80), f"<p style='font-size:8pt'>{caption}</p>")
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    doc.close()


def test_parts_named_by_numeral_or_position_get_their_caption_parts(tmp_path):
    papers = tmp_path / "papers"
    side = [pymupdf.Rect(90, 90, 285, 260), pymupdf.Rect(295, 90, 490, 260)]
    _parts_pdf(papers / "positions.pdf", "Fig. 1. Fracture surfaces of the uncharged (left) and H-charged (right) "
               "specimens.", side)
    row = [pymupdf.Rect(90 + k * 135, 90, 215 + k * 135, 230) for k in range(3)]
    _parts_pdf(papers / "numerals.pdf", "Fig. 2. Fractographs of the (i) as-built, (ii) HIPed and (iii) machined "
               "specimens.", row)
    config = BuildConfig(out=tmp_path / "build", papers=papers, workers=1)
    paths = StagePaths(config.out)
    assert mine.run(paths, config, progress=False).problems == []
    assert panels.run(paths, config, progress=False).problems == []
    for f in paths.mine.glob("*/paper.json"):
        paper = read_model(f, PaperRecord)
        (figure,) = paper.figures
        assert figure.kind == "multi_raster"
        got = read_model(paths.panels / f"{paper.paper_id}.json", PaperPanels).panels
        names = {p.name: p for p in got}
        rects = side if paper.source_pdf == "positions.pdf" else row
        expected = ["left", "right"] if paper.source_pdf == "positions.pdf" else ["i", "ii", "iii"]
        assert sorted(names) == sorted(expected) and all(p.letter is None for p in got)
        for name, rect in zip(expected, rects):
            assert iou(names[name].page_box, tuple(rect)) >= 0.9, (name, names[name].page_box, rect)
            part = next(pt for pt in figure.parts if pt.image == names[name].image)
            assert names[name].box == (0, 0, part.width, part.height)
        key, own, neighbour = (("right", "H-charged", "uncharged") if expected[0] == "left"
                               else ("ii", "HIPed", "as-built"))
        assert own in names[key].caption and neighbour not in names[key].caption, names[key].caption


def test_a_legend_cut_off_its_plot_joins_the_lettered_panel(tmp_path):
    """Two lettered micrographs and a framed legend beside (b), set apart by a gutter: the grid has three cells
    for two caption letters; the printed letters say which cells are panels, the legend joins (b)."""
    doc = pymupdf.open()
    fig = doc.new_page(width=400, height=200)
    boxes = [(8, 8, 168, 192), (178, 8, 338, 192)]
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        fig.insert_image(pymupdf.Rect(x0, y0, x1, y1), stream=_texture(int(x1 - x0), int(y1 - y0), 700 + k))
        fig.draw_rect(pymupdf.Rect(x0 + 4, y0 + 4, x0 + 22, y0 + 24), color=None, fill=(1, 1, 1))
        fig.insert_text((x0 + 7, y0 + 19), "ab"[k], fontname="hebo", fontsize=16)
    fig.draw_rect(pymupdf.Rect(346, 40, 396, 150), color=(0, 0, 0), width=1)  # the legend of (b)
    for k, word in enumerate(("100 h", "200 h", "500 h", "1000 h")):
        fig.draw_line((350, 55 + 25 * k), (362, 55 + 25 * k), color=(0, 0, 0), width=2)
        fig.insert_text((364, 58 + 25 * k), word, fontname="helv", fontsize=6)
    png = fig.get_pixmap(matrix=pymupdf.Matrix(SCALE, SCALE)).tobytes("png")
    page = doc.new_page(width=595, height=842)
    rect = pymupdf.Rect(90, 90, 490, 290)
    page.insert_image(rect, stream=png)
    page.insert_htmlbox(pymupdf.Rect(90, 298, 505, 360), "<p style='font-size:8pt'>Fig. 1. Fracture surfaces after "
                        "creep: (a) at 100 h; (b) cavities after 1000 h.</p>")
    doc.delete_page(0)
    (tmp_path / "papers").mkdir()
    doc.save(tmp_path / "papers" / "legend.pdf")
    doc.close()
    config = BuildConfig(out=tmp_path / "build", papers=tmp_path / "papers", workers=1)
    paths = StagePaths(config.out)
    assert mine.run(paths, config, progress=False).problems == []
    assert panels.run(paths, config, progress=False).problems == []
    (f,) = paths.panels.glob("*.json")
    got = {p.letter: p for p in read_model(f, PaperPanels).panels}
    assert sorted(got) == ["a", "b"], [(p.panel_id, p.split_note) for p in got.values()]
    assert "joined" in got["b"].split_note
    assert iou(got["a"].box, tuple(v * SCALE for v in boxes[0])) >= 0.9
    assert iou(got["b"].box, (boxes[1][0] * SCALE, boxes[1][1] * SCALE, 396 * SCALE, boxes[1][3] * SCALE)) >= 0.8
    assert "cavities" in got["b"].caption and "at 100 h" not in got["b"].caption
