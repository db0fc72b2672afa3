"""Panels stage: gutter splitting, part figures, caption/excerpt scoping, problems, resume, determinism.

The mined input (paper.json + image files) is written here directly from records.py, with small
synthetic images: smooth-noise grey textures (fractograph-like: no white rows or columns) pasted on
white canvases with gutters.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dataset_builders import panel_grid, panels
from dataset_builders.config import BuildConfig
from dataset_builders.records import Excerpt, FigurePart, FigureRecord, PaperPanels, PaperRecord
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model

PAPER = "0123456789abcdef"


def texture(w: int, h: int, seed: int) -> Image.Image:
    """Grey smooth-noise texture with values well below white (no gutter-like rows inside)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (h // 4 + 2, w // 4 + 2))
    img = Image.fromarray(np.uint8(np.clip(coarse * 35 + 110, 10, 215))).resize((w + 8, h + 8), Image.BICUBIC)
    return img.crop((4, 4, w + 4, h + 4))


def grid_figure(rows: int, cols: int, cell: tuple[int, int] = (220, 180), gutter: int = 18, margin: int = 25,
                seed: int = 0) -> tuple[Image.Image, list[tuple[int, int, int, int]], list[Image.Image]]:
    """A white canvas with rows x cols textures; returns (image, cell boxes row-major, textures)."""
    cw, ch = cell
    width = 2 * margin + cols * cw + (cols - 1) * gutter
    height = 2 * margin + rows * ch + (rows - 1) * gutter
    canvas = Image.new("L", (width, height), 255)
    boxes, tiles = [], []
    for r in range(rows):
        for c in range(cols):
            x, y = margin + c * (cw + gutter), margin + r * (ch + gutter)
            tile = texture(cw, ch, seed + 10 * r + c)
            canvas.paste(tile, (x, y))
            boxes.append((x, y, x + cw, y + ch))
            tiles.append(tile)
    return canvas, boxes, tiles


def save_jpeg(img: Image.Image, path: Path, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=quality)


def figure_record(paths: StagePaths, paper_id: str, index: int, img: Image.Image | None, caption: str, *,
                  kind: str = "raster", number: int | None = None, parts: list[FigurePart] | None = None,
                  panel_letters: list | None = None, bbox=(50.0, 100.0, 550.0, 500.0)) -> FigureRecord:
    """A FigureRecord whose single image (if img) is saved as JPEG under stages/mine/<paper>/."""
    figure_id = f"{paper_id}-p1-f{index}"
    if parts is None:
        file = paths.mine / paper_id / f"{figure_id}.jpg"
        save_jpeg(img, file)
        parts = [FigurePart(image=paths.rel(file), width=img.width, height=img.height, bbox=bbox,
                            origin="embedded", source_format="jpeg")]
    return FigureRecord(figure_id=figure_id, paper_id=paper_id, page=1, bbox=bbox, kind=kind,
                        number=number if number is not None else index, caption=caption, parts=parts,
                        panel_letters=panel_letters or [])


def write_paper(paths: StagePaths, figures: list[FigureRecord], excerpts: list[Excerpt] | None = None,
                paper_id: str = PAPER) -> None:
    record = PaperRecord(paper_id=paper_id, source_pdf=f"{paper_id}.pdf", n_pages=1, figures=figures,
                         excerpts=excerpts or [])
    target = paths.mine / paper_id / "paper.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(record.model_dump_json(indent=1), encoding="utf-8")


def run_panels(paths: StagePaths, workers: int = 1):
    return panels.run(paths, BuildConfig(out=paths.out, workers=workers), progress=False)


def read_panels(paths: StagePaths, paper_id: str = PAPER) -> PaperPanels:
    return read_model(paths.panels / f"{paper_id}.json", PaperPanels)


def letters_caption(n: int) -> str:
    words = ["dimples", "cleavage facets", "river patterns", "striations", "beach marks", "pores"]
    inner = "; ".join(f"({chr(97 + i)}) {words[i]}" for i in range(n))
    return f"Fig. 1. SEM fractographs of the fracture surfaces: {inner}."


# --- gutter splitting ------------------------------------------------------------------------------

@pytest.mark.parametrize("rows,cols", [(1, 2), (2, 2), (2, 3)])
def test_gutter_grid_is_split_row_major_with_exact_crops(tmp_path, rows, cols):
    paths = StagePaths(tmp_path)
    img, boxes, tiles = grid_figure(rows, cols, seed=rows * 7 + cols)
    write_paper(paths, [figure_record(paths, PAPER, 1, img, letters_caption(rows * cols))])
    result = run_panels(paths)
    assert result.problems == []
    got = read_panels(paths).panels
    letters = [chr(97 + i) for i in range(rows * cols)]
    assert [p.letter for p in got] == letters
    assert [p.panel_id for p in got] == [f"{PAPER}-p1-f1-{l}" for l in letters]
    assert {p.split_method for p in got} == {"gutter"}
    for p, box, tile in zip(got, boxes, tiles):
        assert abs(p.width - (box[2] - box[0])) <= 3 and abs(p.height - (box[3] - box[1])) <= 3
        assert p.image == f"stages/panels/{PAPER}/{p.panel_id}.jpg"
        crop = Image.open(paths.abs(p.image))
        assert crop.format == "JPEG" and crop.size == (p.width, p.height)
        # the crop shows this cell's own texture (not a neighbour's): compare on the common area
        a = np.asarray(crop.convert("L"), dtype=np.float32)[2:-2, 2:-2]
        shifted = [np.abs(a - np.asarray(tile, dtype=np.float32)[dy:dy + a.shape[0], dx:dx + a.shape[1]]).mean()
                   for dy in range(5) for dx in range(5)
                   if dy + a.shape[0] <= tile.height and dx + a.shape[1] <= tile.width]
        assert min(shifted) < 6.0, "crop does not match its cell"
        assert p.cues.white_fraction < 0.01  # the white margin was trimmed
    assert got[0].caption == "SEM fractographs of the fracture surfaces: dimples"
    assert got[1].caption == "SEM fractographs of the fracture surfaces: cleavage facets"
    assert all(p.figure_caption == letters_caption(rows * cols) for p in got)
    assert result.counts["split_gutter"] == rows * cols


def test_thin_gutters_in_a_large_figure_are_found_exactly():
    img, boxes, _ = grid_figure(2, 3, cell=(900, 700), gutter=3, margin=7)  # 2728 x 1417 px
    grid = panel_grid.find_grid(img)
    assert grid.problem == "" and grid.cells == [tuple(b) for b in boxes]


def test_labels_printed_in_the_gutters_do_not_break_the_split(tmp_path):
    """'(a)' / '(b)' drawn above each panel form thin content bands that merge into their panel."""
    paths = StagePaths(tmp_path)
    img, boxes, _ = grid_figure(1, 2, gutter=30, margin=40)
    draw = ImageDraw.Draw(img)
    for letter, box in zip("ab", boxes):
        draw.text((box[0], box[1] - 14), f"({letter})", fill=0)
    write_paper(paths, [figure_record(paths, PAPER, 1, img, "Fig. 1. Fractographs: (a) dimples; (b) cleavage.")])
    run_panels(paths)
    got = read_panels(paths).panels
    assert [p.letter for p in got] == ["a", "b"]
    assert [p.split_method for p in got] == ["gutter", "gutter"]
    assert abs(got[0].width - 220) <= 3 and 180 <= got[0].height <= 180 + 16  # panel (+ its label)


def test_texture_without_gutters_and_without_letters_stays_single_uncopied(tmp_path):
    paths = StagePaths(tmp_path)
    img = texture(500, 400, 3)
    fig = figure_record(paths, PAPER, 1, img, "Fig. 1. Fracture surface of the tensile specimen.")
    write_paper(paths, [fig])
    run_panels(paths)
    (p,) = read_panels(paths).panels
    assert p.split_method == "single" and p.letter is None and p.panel_id == f"{PAPER}-p1-f1-whole"
    assert p.image == fig.parts[0].image  # the mined file, no copy
    assert not (paths.panels / PAPER).exists()  # nothing re-encoded
    assert (p.width, p.height) == (500, 400)
    assert p.caption == fig.caption


def test_letters_without_gutters_give_whole_unsure(tmp_path):
    paths = StagePaths(tmp_path)
    fig = figure_record(paths, PAPER, 1, texture(500, 400, 4), "Fig. 1. Fractographs: (a) dimples; (b) cleavage.")
    write_paper(paths, [fig])
    run_panels(paths)
    (p,) = read_panels(paths).panels
    assert p.split_method == "whole_unsure"
    assert "names 2 panels" in p.split_note and "no gutters" in p.split_note
    assert p.image == fig.parts[0].image and p.caption == fig.caption


def test_caption_letters_disagreeing_with_the_grid_give_whole_unsure(tmp_path):
    paths = StagePaths(tmp_path)
    img, _, _ = grid_figure(2, 2)
    fig = figure_record(paths, PAPER, 1, img, letters_caption(3))
    write_paper(paths, [fig])
    run_panels(paths)
    (p,) = read_panels(paths).panels
    assert p.split_method == "whole_unsure"
    assert "names 3 panels" in p.split_note and "found 4 cells" in p.split_note
    assert p.image == fig.parts[0].image


def test_grid_without_caption_letters_is_kept_whole(tmp_path):
    paths = StagePaths(tmp_path)
    img, _, _ = grid_figure(1, 2)
    write_paper(paths, [figure_record(paths, PAPER, 1, img, "Fig. 1. Fracture surfaces of A and B.")])
    run_panels(paths)
    (p,) = read_panels(paths).panels
    assert p.split_method == "single" and "2-cell gutter grid" in p.split_note


def test_tiny_cells_are_not_a_confident_split(tmp_path):
    """Eight narrow cells in a row (each ~10 % of the width) are refused, even with 8 caption letters."""
    paths = StagePaths(tmp_path)
    img, _, _ = grid_figure(1, 8, cell=(90, 200), gutter=12)
    write_paper(paths, [figure_record(paths, PAPER, 1, img, "Fig. 1. Fractographs: " +
                                      ", ".join(f"({chr(97 + i)}) x{i}" for i in range(8)) + ".")])
    run_panels(paths)
    (p,) = read_panels(paths).panels
    assert p.split_method == "whole_unsure"


def test_printed_letters_decide_column_major_order(tmp_path):
    """A vector figure whose printed letters run down the columns: cells get those letters."""
    paths = StagePaths(tmp_path)
    img, boxes, _ = grid_figure(2, 2)
    bbox = (100.0, 200.0, 100.0 + img.width / 2, 200.0 + img.height / 2)  # 2 px per point
    column_major = ["a", "c", "b", "d"]  # row-major cell k carries this printed letter
    printed = [(l, (bbox[0] + b[0] / 2 + 2, bbox[1] + b[1] / 2 + 2, bbox[0] + b[0] / 2 + 8, bbox[1] + b[1] / 2 + 10))
               for l, b in zip(column_major, boxes)]
    fig = figure_record(paths, PAPER, 1, img, letters_caption(4), kind="vector", panel_letters=printed, bbox=bbox)
    write_paper(paths, [fig])
    run_panels(paths)
    got = {p.letter: p for p in read_panels(paths).panels}
    assert set(got) == {"a", "b", "c", "d"}
    assert "printed letters" in got["a"].split_note
    # printed letters run down the columns: "c" is the top-right cell, "b" the bottom-left one
    tops = {l: int(p.split_note.split("crop (")[1].split(",")[1]) for l, p in got.items()}
    lefts = {l: int(p.split_note.split("crop (")[1].split(",")[0]) for l, p in got.items()}
    assert tops["a"] == tops["c"] < tops["b"] == tops["d"]
    assert lefts["a"] == lefts["b"] < lefts["c"] == lefts["d"]


# --- multi-part figures --------------------------------------------------------------------------------

def _parts(paths: StagePaths, figure_id: str, boxes: list, labels: list) -> list[FigurePart]:
    out = []
    for k, (box, label) in enumerate(zip(boxes, labels)):
        img = texture(160, 120, 100 + k)
        file = paths.mine / PAPER / f"{figure_id}-i{k}.png"
        file.parent.mkdir(parents=True, exist_ok=True)
        img.save(file)
        out.append(FigurePart(image=paths.rel(file), width=160, height=120, bbox=box, origin="embedded",
                              source_format="png", label=label))
    return out


def test_parts_keep_the_mined_files_and_find_their_letters(tmp_path):
    paths = StagePaths(tmp_path)
    grid = [(50, 100, 250, 250), (260, 100, 460, 250), (50, 260, 250, 410), (260, 260, 460, 410)]
    caption = "Fig. 2. SEM fractographs of AA7075: (a) equiaxed dimples; (b) river patterns; (c) striations; (d) pores."
    # figure 2: labels known for two parts, printed letters for one, reading order for the last
    parts2 = _parts(paths, f"{PAPER}-p1-f1", [grid[3], grid[0], grid[2], grid[1]], ["d", "A", None, None])
    printed = [("c", (55, 265, 62, 275))]  # top-left corner of grid[2]
    fig2 = figure_record(paths, PAPER, 1, None, caption, kind="multi_raster", number=2, parts=parts2,
                         panel_letters=printed)
    # figure 3: no labels at all, caption letters in reading order (parts listed out of order)
    parts3 = _parts(paths, f"{PAPER}-p1-f2", [grid[1], grid[0]], [None, None])
    fig3 = figure_record(paths, PAPER, 2, None, "Fig. 3. Fracture surfaces: (a) overview; (b) detail.",
                         kind="multi_raster", number=3, parts=parts3)
    # figure 4: three parts but the caption names two panels: no letters can be trusted
    parts4 = _parts(paths, f"{PAPER}-p1-f3", grid[:3], [None, None, None])
    fig4 = figure_record(paths, PAPER, 3, None, "Fig. 4. Fractographs: (a) dimples; (b) cleavage.",
                         kind="multi_raster", number=4, parts=parts4)
    write_paper(paths, [fig2, fig3, fig4])
    result = run_panels(paths)
    assert result.problems == []
    got = read_panels(paths).panels
    by_id = {p.panel_id: p for p in got}
    f2 = [p for p in got if p.figure_id == fig2.figure_id]
    assert [p.letter for p in f2] == ["a", "b", "c", "d"]  # sorted by letter
    assert by_id[f"{PAPER}-p1-f1-a"].image == parts2[1].image
    assert by_id[f"{PAPER}-p1-f1-b"].image == parts2[3].image  # the one part left: reading order
    assert by_id[f"{PAPER}-p1-f1-c"].image == parts2[2].image  # nearest printed letter
    assert by_id[f"{PAPER}-p1-f1-d"].image == parts2[0].image  # its own label
    assert by_id[f"{PAPER}-p1-f1-b"].caption == "SEM fractographs of AA7075: river patterns"
    assert all(p.split_method == "parts" for p in got)
    f3 = {p.letter: p.image for p in got if p.figure_id == fig3.figure_id}
    assert f3 == {"a": parts3[1].image, "b": parts3[0].image}
    f4 = [p for p in got if p.figure_id == fig4.figure_id]
    assert [p.letter for p in f4] == [None, None, None]
    assert [p.panel_id for p in f4] == [f"{fig4.figure_id}-part{k}" for k in (1, 2, 3)]
    assert all(p.caption == fig4.caption and "without a letter" in p.split_note for p in f4)
    assert not (paths.panels / PAPER).exists()  # no part was re-encoded
    assert all(p.phash and len(p.phash) == 16 for p in got)
    assert all((p.width, p.height) == (160, 120) for p in got)


def test_excerpts_are_scoped_to_the_panel_or_the_whole_figure(tmp_path):
    paths = StagePaths(tmp_path)
    img, _, _ = grid_figure(1, 2)
    split_fig = figure_record(paths, PAPER, 1, img, "Fig. 1. Fractographs: (a) dimples; (b) cleavage.", number=1)
    whole_fig = figure_record(paths, PAPER, 2, texture(400, 300, 9), "Fig. 2. Fractographs: (a) x; (b) y.",
                              number=2)
    excerpts = [
        Excerpt(figure_number=1, panels=[], text="Fig. 1 shows both fracture surfaces.", page=1),
        Excerpt(figure_number=1, panels=["a"], text="Dimples cover Fig. 1a.", page=1),
        Excerpt(figure_number=1, panels=["b"], text="Fig. 1b shows cleavage facets.", page=1),
        Excerpt(figure_number=1, panels=["a", "b"], text="Figs. 1a,b compare the alloys.", page=1),
        Excerpt(figure_number=2, panels=["b"], text="Fig. 2b is unrelated to figure 1.", page=1),
        Excerpt(figure_number=3, panels=[], text="Fig. 3 is another figure.", page=1),
    ]
    write_paper(paths, [split_fig, whole_fig], excerpts)
    run_panels(paths)
    got = {p.panel_id: p for p in read_panels(paths).panels}
    assert got[f"{PAPER}-p1-f1-a"].excerpts == ["Fig. 1 shows both fracture surfaces.", "Dimples cover Fig. 1a.",
                                                "Figs. 1a,b compare the alloys."]
    assert got[f"{PAPER}-p1-f1-b"].excerpts == ["Fig. 1 shows both fracture surfaces.",
                                                "Fig. 1b shows cleavage facets.", "Figs. 1a,b compare the alloys."]
    whole = got[f"{PAPER}-p1-f2-whole"]
    assert whole.split_method == "whole_unsure"
    assert whole.excerpts == ["Fig. 2b is unrelated to figure 1."]  # a whole figure shows panel b too


# --- problems, resume, determinism ---------------------------------------------------------------------

def test_unreadable_image_is_a_problem_and_the_rest_goes_on(tmp_path):
    paths = StagePaths(tmp_path)
    good = figure_record(paths, PAPER, 1, texture(300, 200, 1), "Fig. 1. Fracture surface.")
    bad_file = paths.mine / PAPER / "broken.jpg"
    bad_file.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    bad = figure_record(paths, PAPER, 2, None, "Fig. 2. Fracture surface.", parts=[
        FigurePart(image=paths.rel(bad_file), width=10, height=10, bbox=(0, 0, 10, 10), origin="embedded",
                   source_format="jpeg")])
    write_paper(paths, [bad, good])
    (paths.mine / "ffffffffffffffff").mkdir(parents=True)
    (paths.mine / "ffffffffffffffff" / "paper.json").write_text("{not json", encoding="utf-8")
    result = run_panels(paths)
    assert [p.panel_id for p in read_panels(paths).panels] == [f"{PAPER}-p1-f1-whole"]
    reasons = sorted((p.reason, p.stage) for p in result.problems)
    assert reasons == [("bad_paper_record", "panels"), ("unreadable_image", "panels")]
    img_problem = next(p for p in result.problems if p.reason == "unreadable_image")
    assert img_problem.file == f"{PAPER}.pdf" and "broken.jpg" in img_problem.detail
    assert result.counts["panels"] == 1 and result.counts["papers_failed"] == 1


def _build_two_papers(out: Path) -> StagePaths:
    paths = StagePaths(out)
    img, _, _ = grid_figure(2, 2, seed=5)
    write_paper(paths, [figure_record(paths, PAPER, 1, img, letters_caption(4)),
                        figure_record(paths, PAPER, 2, texture(300, 240, 8), "Fig. 2. Fractograph.")])
    img2, _, _ = grid_figure(1, 3, seed=6)
    write_paper(paths, [figure_record(paths, "fedcba9876543210", 1, img2, letters_caption(3))],
                paper_id="fedcba9876543210")
    return paths


def _snapshot(paths: StagePaths) -> dict[str, bytes]:
    return {f.relative_to(paths.panels).as_posix(): f.read_bytes()
            for f in sorted(paths.panels.rglob("*")) if f.is_file()}


def test_outputs_are_deterministic_across_workers_and_resume_skips(tmp_path):
    a = _build_two_papers(tmp_path / "a")
    b = _build_two_papers(tmp_path / "b")
    ra = run_panels(a, workers=1)
    rb = run_panels(b, workers=2)
    assert ra.counts == rb.counts and ra.counts["panels"] == 8
    snap = _snapshot(a)
    assert snap == _snapshot(b)
    assert not any(name.endswith(".tmp") for name in snap)
    # resume: a finished paper is not redone (its JSON is trusted), a missing one is
    (a.panels / f"{PAPER}.json").unlink()
    again = run_panels(a)
    assert again.counts["papers_resumed"] == 1 and again.counts["papers"] == 1
    assert _snapshot(a) == snap


@pytest.mark.parametrize("damage", ["garbled key", "no key", "other key", "cut record", "record not a model"])
def test_a_record_resumed_only_with_its_key_and_readable(tmp_path, damage):
    """Resumed papers are found in the main process (stage_cache.current_record); any doubt about a record
    (its key file missing, garbled or another code's, the record cut short or not a PaperPanels) splits it
    again, with the same bytes as before."""
    paths = _build_two_papers(tmp_path / "a")
    run_panels(paths, workers=2)
    snap = _snapshot(paths)
    record = paths.panels / f"{PAPER}.json"
    key = record.with_suffix(".key")
    if damage == "garbled key":
        key.write_bytes(b"\xff\xfe")
    elif damage == "no key":
        key.unlink()
    elif damage == "other key":
        key.write_text("0" * 64 + "\n")
    elif damage == "cut record":
        record.write_bytes(record.read_bytes()[:40])
    else:
        record.write_text('{"paper_id": 1}')
    again = run_panels(paths, workers=2)
    assert again.counts["papers_resumed"] == 1 and again.counts["papers"] == 1
    assert again.counts.get("code_resplit", 0) == (damage in ("garbled key", "no key", "other key"))
    assert _snapshot(paths) == snap


# --- helpers --------------------------------------------------------------------------------------------

def test_reading_order_groups_rows_by_overlap():
    boxes = [(300, 12, 400, 100), (0, 0, 100, 100), (150, 110, 250, 200), (0, 105, 100, 210)]
    assert panels.reading_order(boxes) == [1, 0, 3, 2]


def test_panel_caption_joins_common_and_own_parts():
    assert panels.panel_caption("full", "SEM of X", {"a": "dimples"}, "a") == "SEM of X: dimples"
    assert panels.panel_caption("full", "SEM of X.", {"a": "dimples"}, "a") == "SEM of X. dimples"
    assert panels.panel_caption("full", "", {"a": "dimples"}, "a") == "dimples"
    assert panels.panel_caption("full", "SEM of X", {"a": "", "b": "dimples"}, "a") == "SEM of X"
    assert panels.panel_caption("full", "SEM of X", {"a": "dimples"}, "b") == "full"
    assert panels.panel_caption("full", "SEM of X", {}, None) == "full"


def test_jpeg_noise_and_rgb_figures_are_split(tmp_path):
    """An RGB figure saved at JPEG q60 (ringing in the gutters) still splits cleanly."""
    paths = StagePaths(tmp_path)
    img, boxes, _ = grid_figure(2, 2, gutter=10)
    rgb = img.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=60)
    noisy = Image.open(buf)
    write_paper(paths, [figure_record(paths, PAPER, 1, noisy, letters_caption(4))])
    run_panels(paths)
    got = read_panels(paths).panels
    assert [p.split_method for p in got] == ["gutter"] * 4
    for p, box in zip(got, boxes):
        assert abs(p.width - (box[2] - box[0])) <= 3 and abs(p.height - (box[3] - box[1])) <= 3



def test_crops_of_a_grey_rgb_figure_are_grey_and_of_a_colour_figure_stay_rgb(tmp_path):
    """A grey figure stored as RGB JPEG gives grey crops with the same pixels; a tinted one keeps RGB."""
    img, boxes, _ = grid_figure(2, 2, gutter=14)
    for name, figure, mode in (("grey", img.convert("RGB"), "L"),
                               ("tinted", Image.merge("RGB", (img, img, img.point(lambda v: max(0, v - 40)))), "RGB")):
        paths = StagePaths(tmp_path / name)
        record = figure_record(paths, PAPER, 1, figure, letters_caption(4))  # saved as an RGB JPEG
        write_paper(paths, [record])
        with Image.open(paths.abs(record.parts[0].image)) as source:
            source.load()
        run_panels(paths)
        got = read_panels(paths).panels
        assert [p.split_method for p in got] == ["gutter"] * 4
        for p in got:
            box = tuple(int(v) for v in p.split_note.split("crop (")[1].rstrip(")").split(", "))
            with Image.open(paths.abs(p.image)) as crop:
                assert crop.mode == mode, (name, crop.mode)
                expected = source.crop(box)
                if mode == "L":  # the source's own grey: R = G = B = L
                    expected = expected.getchannel(0)
                diff = np.abs(np.asarray(crop, dtype=int) - np.asarray(expected, dtype=int))
                assert diff.mean() < 2.5, (name, diff.mean())  # re-quantised (q90 tables); misplaced: ~30

# --- integration: the sample corpus, mined by the real miner ------------------------------------------

def test_sample_corpus_panels_match_ground_truth(tmp_path):
    """Mine 6 generated papers with the mine stage, split them, compare letters with the ground truth."""
    from dataset_builders import mine, sample_corpus

    truth = sample_corpus.generate_corpus(tmp_path / "corpus", n_papers=6, seed=3)
    config = BuildConfig(out=tmp_path / "build", papers=tmp_path / "corpus" / "papers", workers=1)
    paths = StagePaths(config.out)
    assert mine.run(paths, config, progress=False).problems == []
    result = panels.run(paths, config, progress=False)
    assert result.problems == []
    mined = {read_model(f, PaperRecord).source_pdf: read_model(f, PaperRecord)
             for f in paths.mine.glob("*/paper.json")}
    methods: set[str] = set()
    n_figures = 0
    for tp in truth.papers:
        paper = mined[Path(tp.file).name]
        got = read_panels(paths, paper.paper_id).panels
        for tf in tp.figures:
            (figure,) = [f for f in paper.figures if f.number == str(tf.number)]
            found = [p for p in got if p.figure_id == figure.figure_id]
            assert [p.letter for p in found] == [q.letter for q in tf.panels], (tp.file, tf.number, tf.layout)
            methods.update(p.split_method for p in found)
            if tf.kind == "multi_raster":
                assert all(p.image in {part.image for part in figure.parts} for p in found)
            n_figures += 1
    assert n_figures >= 12 and {"gutter", "parts", "single"} <= methods
