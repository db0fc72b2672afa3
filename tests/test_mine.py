"""Stage 1 (mine) on PDFs built here with PyMuPDF: layouts, image formats, bad inputs, resume, parallelism."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from dataset_builders import mine
from dataset_builders.config import BuildConfig
from dataset_builders.pdf.floor import floor_pass
from dataset_builders.records import PaperRecord
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_model

A4 = (595, 842)
BODY = ("The fracture surfaces were examined by scanning electron microscopy after tensile testing at room "
        "temperature. As shown in Fig. 1b, the overload region is covered by equiaxed dimples. Figs. 2a and 2c "
        "compare the two heat treatments. The fatigue region shows striations (Fig. 3).")


def texture(w: int, h: int, seed: int, mode: str = "L") -> Image.Image:
    """A noisy, blurred grey texture: a stand-in for a micrograph."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8)), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    return img.convert(mode)


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def text(page: pymupdf.Page, rect: tuple, s: str, size: float = 9) -> None:
    rc = page.insert_textbox(pymupdf.Rect(rect), s, fontsize=size, fontname="helv")
    assert rc >= 0, f"text did not fit: {s[:40]}"


def raw_image(doc: pymupdf.Document, page: pymupdf.Page, rect: tuple, w: int, h: int, bpc: int, cs: str | None,
              data: bytes, extra: str = "", seed: int = 0) -> int:
    """Place an image XObject with a hand-written dictionary (16-bit, 1-bit, CMYK, Lab, bombs ...)."""
    placeholder = png_bytes(Image.new("L", (17 + seed, 13), seed))  # unique, so PyMuPDF does not share it
    xref = page.insert_image(pymupdf.Rect(rect), stream=placeholder)
    cs_entry = f"/ColorSpace {cs}" if cs else ""
    doc.update_object(xref, f"<</Type/XObject/Subtype/Image/Width {w}/Height {h}/BitsPerComponent {bpc}{cs_entry}"
                            f"{extra}>>")
    doc.update_stream(xref, zlib.compress(data), compress=False)
    doc.xref_set_key(xref, "Filter", "/FlateDecode")
    assert doc.xref_get_key(xref, "Filter") == ("name", "/FlateDecode")
    return xref


def paper_main(path: Path, seed: int = 0) -> None:
    """Three pages: single raster (caption below), a 2x2 grid with letters, a vector plot; title, DOI, body."""
    doc = pymupdf.open()
    p1 = doc.new_page(width=A4[0], height=A4[1])
    text(p1, (60, 50, 540, 100), "Fractography of AA7075 after overload", size=18)
    text(p1, (60, 105, 540, 120), "https://doi.org/10.1016/j.engfailanal.2024.108123.", size=8)
    text(p1, (60, 130, 540, 200), BODY)
    p1.insert_image(pymupdf.Rect(150, 220, 450, 445), stream=jpeg_bytes(texture(800, 600, seed, "RGB")))
    text(p1, (150, 452, 450, 480), "Fig. 1. SEM fractograph of the overload zone showing equiaxed dimples.")
    text(p1, (60, 520, 540, 580), "Fig. 1 shows the overload zone at low magnification; see also Fig. 2(b).")
    p2 = doc.new_page(width=A4[0], height=A4[1])
    letters = "abcd"
    for k in range(4):
        x0 = 100 + (k % 2) * 205
        y0 = 80 + (k // 2) * 165
        p2.insert_image(pymupdf.Rect(x0, y0, x0 + 195, y0 + 155), stream=jpeg_bytes(texture(390, 310, seed + 10 + k)))
        p2.insert_text((x0 + 4, y0 + 14), f"({letters[k]})", fontsize=10, color=(1, 1, 1))
    text(p2, (100, 410, 500, 450), "Fig. 2. Fractographs of the two tempers: (a) dimples; (b) cleavage facets; "
                                   "(c) fatigue striations; (d) intergranular facets.")
    text(p2, (60, 480, 540, 540), "The grid in Fig. 2a-c is typical. Striations are visible in Fig. 2c.")
    p3 = doc.new_page(width=A4[0], height=A4[1])
    x0, y0, x1, y1 = 150, 100, 450, 300
    p3.draw_rect(pymupdf.Rect(x0, y0, x1, y1), color=(0, 0, 0), width=0.8)
    pts = [pymupdf.Point(x0 + i * 6, y1 - 180 * (1 - np.exp(-i / 12))) for i in range(50)]
    p3.draw_polyline(pts, color=(0.8, 0, 0), width=1.2)
    for i in range(6):
        p3.draw_line(pymupdf.Point(x0 + i * 60, y1), pymupdf.Point(x0 + i * 60, y1 + 4))
        p3.insert_text((x0 + i * 60 - 5, y1 + 14), str(i * 10), fontsize=7)
    p3.insert_text((270, y1 + 28), "Strain (%)", fontsize=8)
    text(p3, (150, 340, 450, 370), "Fig. 3. Engineering stress-strain curves of the two tempers.")
    doc.set_metadata({"title": "Microsoft Word - draft7.docx"})
    doc.save(path)


def cfg(papers: Path, out: Path, **kw) -> BuildConfig:
    return BuildConfig(papers=papers, out=out, workers=kw.pop("workers", 1), **kw)


def mine_one(tmp_path: Path, build, **kw) -> tuple[PaperRecord, StagePaths, object]:
    papers = tmp_path / "papers"
    papers.mkdir(parents=True, exist_ok=True)
    build(papers / "p.pdf")
    paths = StagePaths(tmp_path / "out")
    result = mine.run(paths, cfg(papers, paths.out, **kw), progress=False)
    pid = mine.paper_id_of(papers / "p.pdf")
    return read_model(paths.mine / pid / "paper.json", PaperRecord), paths, result


# --- layouts ---------------------------------------------------------------------------------------

def test_main_paper_figures_captions_letters_title_doi(tmp_path):
    rec, paths, result = mine_one(tmp_path, paper_main)
    assert result.counts["mined"] == 1 and result.problems == []
    assert rec.title == "Fractography of AA7075 after overload"
    assert rec.doi == "10.1016/j.engfailanal.2024.108123"
    assert rec.n_pages == 3
    by_num = {f.number: f for f in rec.figures}
    assert sorted(by_num) == ["1", "2", "3"]

    f1 = by_num["1"]
    assert f1.kind == "raster" and f1.page == 1 and len(f1.parts) == 1
    assert f1.caption.startswith("Fig. 1. SEM fractograph of the overload zone")
    assert f1.bbox == pytest.approx((150, 220, 450, 445), abs=0.5)
    part = f1.parts[0]
    assert (part.width, part.height, part.origin, part.source_format) == (800, 600, "embedded", "jpeg")

    f2 = by_num["2"]
    assert f2.kind == "multi_raster" and len(f2.parts) == 4
    assert f2.caption.endswith("(d) intergranular facets.")
    assert [letter for letter, _ in f2.panel_letters] == ["a", "b", "c", "d"]
    # each part carries the letter printed in its own top-left corner (row-major order a, b, c, d)
    parts = sorted(f2.parts, key=lambda p: (p.bbox[1], p.bbox[0]))
    assert [p.label for p in parts] == ["a", "b", "c", "d"]
    assert all(p.width == 390 and p.height == 310 for p in parts)

    f3 = by_num["3"]
    assert f3.kind == "vector" and len(f3.parts) == 1
    p3 = f3.parts[0]
    assert p3.origin == "rendered" and p3.image.endswith(".jpg")
    # the region covers the axes box and grows to the tick labels and axis title below it
    assert f3.bbox[0] <= 150 and f3.bbox[2] >= 450 and f3.bbox[3] >= 320 and f3.bbox[1] <= 101
    assert p3.width == pytest.approx((f3.bbox[2] - f3.bbox[0]) * 150 / 72, abs=2)
    with Image.open(paths.abs(p3.image)) as im:
        assert im.mode == "RGB" and im.size == (p3.width, p3.height)
        assert np.asarray(im.convert("L")).min() < 60  # the black axes were rendered

    # excerpts: the body citations, with panels, from body text only (not from the captions)
    cited = {(e.figure_number, tuple(e.panels), e.page) for e in rec.excerpts}
    assert {("1", ("b",), 1), ("2", ("a", "c"), 1), ("3", (), 1), ("1", (), 1), ("2", ("b",), 1),
            ("2", ("a", "b", "c"), 2), ("2", ("c",), 2)} <= cited
    assert all(len(e.text) <= 400 for e in rec.excerpts)
    assert not any("SEM fractograph of the overload zone" in e.text for e in rec.excerpts)
    ex = next(e for e in rec.excerpts if e.figure_number == "1" and e.panels == ["b"])
    assert "equiaxed dimples" in ex.text


def test_embedded_jpeg_written_with_its_source_bytes(tmp_path):
    rec, paths, _ = mine_one(tmp_path, paper_main)
    doc = pymupdf.open(tmp_path / "papers" / "p.pdf")
    for fig in rec.figures:
        for part in fig.parts:
            if part.origin != "embedded":
                continue
            xref = int(Path(part.image).stem.split("-x")[1])
            assert paths.abs(part.image).read_bytes() == doc.extract_image(xref)["image"]


def paper_body_not_caption(path: Path) -> None:
    """An image followed directly by a body paragraph that starts 'Fig. 1 shows' (no caption anywhere)."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    p.insert_image(pymupdf.Rect(150, 100, 450, 325), stream=jpeg_bytes(texture(600, 450, 3)))
    text(p, (150, 332, 450, 380), "Fig. 1 shows the fracture surface of the failed bolt with beach marks "
                                  "that run from the thread root.")
    doc.save(path)


def test_body_sentence_starting_with_fig_is_not_a_caption(tmp_path):
    rec, _, _ = mine_one(tmp_path, paper_body_not_caption)
    assert len(rec.figures) == 1
    fig = rec.figures[0]
    assert fig.number is None and fig.caption == ""
    assert [(e.figure_number, e.panels) for e in rec.excerpts] == [("1", [])]
    assert rec.excerpts[0].text.startswith("Fig. 1 shows the fracture surface")


def paper_caption_above(path: Path) -> None:
    """Captions above their figures (two figures on one page), body text around them."""
    doc = pymupdf.open()
    p = doc.new_page(width=A4[0], height=A4[1])
    text(p, (60, 40, 540, 80), "Intro paragraph of the results section with two figures on this page and "
                               "nothing else of note to say about them here.")
    text(p, (120, 100, 480, 125), "Figure 4: Fish-eye at the origin of a very-high-cycle fatigue crack.")
    p.insert_image(pymupdf.Rect(120, 130, 480, 330), stream=jpeg_bytes(texture(720, 400, 4)))
    text(p, (120, 360, 480, 385), "Figure 5 - Fine granular area around an inclusion.")
    p.insert_image(pymupdf.Rect(120, 390, 480, 590), stream=png_bytes(texture(720, 400, 5)))
    text(p, (60, 620, 540, 680), "Closing paragraph below both figures, long enough to be a body text block "
                                 "with two or more lines of running text in it.")
    doc.save(path, deflate=True)  # the PNG's pixels are stored with /FlateDecode, as publishers do


def test_caption_above_figure(tmp_path):
    rec, paths, _ = mine_one(tmp_path, paper_caption_above)
    got = {f.number: (f.bbox[1], f.caption) for f in rec.figures}
    assert set(got) == {"4", "5"}
    assert got["4"][0] == pytest.approx(130, abs=0.5) and got["4"][1].startswith("Figure 4: Fish-eye")
    assert got["5"][0] == pytest.approx(390, abs=0.5) and got["5"][1].startswith("Figure 5 - Fine granular")
    png_part = next(f for f in rec.figures if f.number == "5").parts[0]
    assert png_part.source_format == "png" and png_part.image.endswith(".jpg")  # decoded, written as JPEG q95
    with Image.open(paths.abs(png_part.image)) as im:
        assert im.format == "JPEG" and im.mode == "L" and im.size == (720, 400)


def paper_logos(path: Path) -> None:
    """A publisher logo in the header of 3 pages, a tiny icon, and one real figure."""
    doc = pymupdf.open()
    logo = png_bytes(texture(300, 100, 9, "RGB"))
    for i in range(3):
        p = doc.new_page(width=A4[0], height=A4[1])
        p.insert_image(pymupdf.Rect(40, 20, 190, 70), stream=logo)
        if i == 1:
            p.insert_image(pymupdf.Rect(500, 400, 520, 420), stream=png_bytes(texture(40, 40, 8)))
            p.insert_image(pymupdf.Rect(150, 200, 450, 425), stream=jpeg_bytes(texture(600, 450, 7)))
            text(p, (150, 432, 450, 460), "Fig. 1. Intergranular facets in a hydrogen-charged specimen.")
    doc.save(path)


def test_logos_and_icons_are_skipped_with_a_reason(tmp_path):
    rec, _, _ = mine_one(tmp_path, paper_logos)
    assert [(f.number, f.page) for f in rec.figures] == [("1", 2)]
    reasons = sorted((s.page, s.reason) for s in rec.skipped)
    assert reasons == [(1, "repeated_publisher_image"), (2, "repeated_publisher_image"), (2, "too_small"),
                       (3, "repeated_publisher_image")]


# --- image formats -----------------------------------------------------------------------------------

def paper_formats(path: Path) -> dict[str, int]:
    """One captioned figure per odd image format; returns name -> xref."""
    doc = pymupdf.open()
    w, h = 200, 150
    rng = np.random.default_rng(0)
    grey = np.asarray(texture(w, h, 1))
    specs = {
        "rgb16": (16, "/DeviceRGB", np.repeat(grey[..., None], 3, 2).astype(np.uint16).__mul__(257).astype(">u2").tobytes(), ""),
        "grey16": (16, "/DeviceGray", (grey.astype(np.uint16) * 257).astype(">u2").tobytes(), ""),
        "bit1": (1, "/DeviceGray", np.packbits(grey > 128, axis=1).tobytes(), ""),
        "cmyk": (8, "/DeviceCMYK", rng.integers(0, 256, (h, w, 4), dtype=np.uint8).tobytes(), ""),
        "lab": (8, "[/Lab <</WhitePoint [0.9505 1 1.089]>>]", rng.integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes(), ""),
        "indexed": (8, "[/Indexed /DeviceRGB 255 <" + "".join(f"{i:02x}{255 - i:02x}{i // 2:02x}" for i in range(256)) + ">]",
                    grey.tobytes(), ""),
    }
    xrefs = {}
    page = None
    for i, (name, (bpc, cs, data, extra)) in enumerate(specs.items()):
        if i % 3 == 0:
            page = doc.new_page(width=A4[0], height=A4[1])
        y = 60 + (i % 3) * 250
        xrefs[name] = raw_image(doc, page, (150, y, 350, y + 150), w, h, bpc, cs, data, extra, seed=i)
        text(page, (150, y + 158, 450, y + 185), f"Fig. {i + 1}. Image stored as {name}.")
    page = doc.new_page(width=A4[0], height=A4[1])
    rgba = texture(w, h, 2, "RGB").convert("RGBA")
    rgba.putalpha(Image.fromarray(np.full((h, w), 128, np.uint8)))
    xrefs["alpha"] = page.insert_image(pymupdf.Rect(150, 60, 350, 210), stream=png_bytes(rgba))
    text(page, (150, 218, 450, 245), "Fig. 7. Image with an alpha channel.")
    buf = io.BytesIO()
    texture(w, h, 3, "RGB").save(buf, "JPEG2000")
    xrefs["jpx"] = page.insert_image(pymupdf.Rect(150, 310, 350, 460), stream=buf.getvalue())
    text(page, (150, 468, 450, 495), "Fig. 8. JPEG 2000 image.")
    xrefs["cmyk_jpeg"] = page.insert_image(pymupdf.Rect(150, 560, 350, 710),
                                          stream=jpeg_bytes(texture(w, h, 4, "RGB").convert("CMYK")))
    text(page, (150, 718, 450, 745), "Fig. 9. CMYK JPEG.")
    page = doc.new_page(width=A4[0], height=A4[1])
    xrefs["bomb"] = raw_image(doc, page, (150, 60, 350, 210), 60000, 60000, 8, "/DeviceGray",
                              b"\0" * 1000, seed=40)  # declares 3.6 Gpx; the stream is tiny
    text(page, (150, 218, 450, 245), "Fig. 10. A decompression bomb.")
    doc.save(path, deflate=True)
    return xrefs


def test_odd_image_formats_become_8bit_jpegs_and_the_bomb_is_refused(tmp_path):
    rec, paths, result = mine_one(tmp_path, paper_formats)
    by_num = {int(f.number): f for f in rec.figures}
    assert sorted(by_num) == list(range(1, 10))  # the bomb's figure has no part left, so no figure
    expected_mode = {1: "RGB", 2: "L", 3: "L", 4: "RGB", 5: "RGB", 6: "RGB", 7: "RGB", 8: "RGB", 9: "RGB"}
    expected_format = {1: "png", 2: "png", 3: "png", 4: "png", 5: "png", 6: "png", 7: "png", 8: "jpx", 9: "jpeg"}
    for n, fig in by_num.items():
        (part,) = fig.parts
        assert part.image.endswith(".jpg") and part.source_format == expected_format[n], n
        with Image.open(paths.abs(part.image)) as im:
            im.load()
            assert im.format == "JPEG" and im.mode == expected_mode[n] and im.size == (200, 150), n
    # 16-bit grey kept its picture: compare with the 8-bit source texture
    with Image.open(paths.abs(by_num[2].parts[0].image)) as im:
        diff = np.abs(np.asarray(im, np.int16) - np.asarray(texture(200, 150, 1), np.int16))
        assert diff.mean() < 3
    with Image.open(paths.abs(by_num[3].parts[0].image)) as im:  # 1-bit: only black and white
        values = np.asarray(im)
        assert ((values < 40) | (values > 215)).mean() > 0.97
    bomb = [p for p in result.problems if p.reason == "decompression_bomb"]
    assert len(bomb) == 1 and bomb[0].paper_id == rec.paper_id and "page 4" in bomb[0].detail
    assert [s.reason for s in rec.skipped] == ["decompression_bomb"]
    # refused before decoding: MuPDF itself would have failed ("undecodable"), and no file was written
    files = {p.name for p in (paths.mine / rec.paper_id).iterdir()}
    assert len([f for f in files if f.startswith("img-")]) == 9


def test_max_image_pixels_refuses_a_real_image_without_writing_it(tmp_path):
    rec, _, _ = mine_one(tmp_path, paper_main, max_image_pixels=500_000)
    # the 800x600 raster of figure 1 (480,000 px) passes; lower the bound below it and it is refused
    assert any(f.number == "1" for f in rec.figures)
    rec2, paths2, result2 = mine_one(tmp_path / "second", paper_main, max_image_pixels=400_000)
    assert not any(f.number == "1" for f in rec2.figures)
    assert [p.reason for p in result2.problems] == ["decompression_bomb"]
    assert not any(p.name.startswith("img-") and p.stat().st_size > 100_000
                   for p in (paths2.mine / rec2.paper_id).iterdir())


def test_an_image_shown_on_two_pages_is_written_once(tmp_path):
    def build(path: Path) -> None:
        doc = pymupdf.open()
        data = png_bytes(texture(400, 300, 11))
        xref = 0
        for n in (1, 2):
            p = doc.new_page(width=A4[0], height=A4[1])
            if n == 1:
                xref = p.insert_image(pymupdf.Rect(150, 300, 450, 525), stream=data)
            else:
                p.insert_image(pymupdf.Rect(150, 300, 450, 525), xref=xref)
            text(p, (150, 532, 450, 560), f"Fig. {n}. The same micrograph again.")
        doc.save(path)

    rec, paths, _ = mine_one(tmp_path, build)
    assert [f.number for f in rec.figures] == ["1", "2"]
    assert rec.figures[0].parts[0].image == rec.figures[1].parts[0].image
    assert len([p for p in (paths.mine / rec.paper_id).iterdir() if p.suffix == ".jpg"]) == 1


# --- the stage: bad inputs, duplicates, resume, parallel ------------------------------------------------

def make_corpus(papers: Path) -> dict[str, str | None]:
    """A folder of good and bad inputs; returns file -> expected reason (None = mined, no problem)."""
    (papers / "sub").mkdir(parents=True)
    paper_main(papers / "a_main.pdf")
    paper_caption_above(papers / "sub" / "b_above.pdf")
    paper_logos(papers / "c_logos.pdf")
    (papers / "d_copy.pdf").write_bytes((papers / "a_main.pdf").read_bytes())
    (papers / "e_empty.pdf").write_bytes(b"")
    (papers / "f_notes.txt").write_text("not a paper")
    (papers / "g_html.pdf").write_text("<html><body>403 Forbidden</body></html>")
    data = (papers / "sub" / "b_above.pdf").read_bytes()
    (papers / "h_truncated.pdf").write_bytes(data[: len(data) // 2])
    doc = pymupdf.open()
    doc.new_page()
    doc.save(papers / "i_encrypted.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    doc = pymupdf.open()
    text(doc.new_page(), (60, 60, 500, 200), "A text-only note with no figures.")
    doc.save(papers / "j_textonly.pdf")
    return {"a_main.pdf": None, "c_logos.pdf": None, "d_copy.pdf": "duplicate_pdf", "e_empty.pdf": "zero_bytes",
            "f_notes.txt": "not_a_pdf", "g_html.pdf": "not_a_pdf", "h_truncated.pdf": "truncated_or_corrupt",
            "i_encrypted.pdf": "encrypted", "j_textonly.pdf": "no_figures", "sub/b_above.pdf": None}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_file_is_accounted_for_and_resume_is_byte_identical(tmp_path):
    papers = tmp_path / "papers"
    expected = make_corpus(papers)
    paths = StagePaths(tmp_path / "out")
    config = cfg(papers, paths.out)
    result = mine.run(paths, config, progress=False)
    got: dict[str, list[str]] = {}
    for p in result.problems:
        got.setdefault(p.file, []).append(p.reason)
    for name, reason in expected.items():
        if reason is None:
            assert name not in got, (name, got.get(name))
        else:
            assert reason in got.get(name, []), (name, got.get(name))
    assert set(got) == {n for n, r in expected.items() if r}
    assert [p.file for p in result.problems] == sorted(p.file for p in result.problems)  # sorted file order
    assert result.counts["files"] == 10 and result.counts["resumed"] == 0
    mined = sorted(p.parent.name for p in paths.mine.glob("*/paper.json"))
    ids = {name: mine.paper_id_of(papers / name) for name in
           ("a_main.pdf", "sub/b_above.pdf", "c_logos.pdf", "j_textonly.pdf", "h_truncated.pdf")}
    assert set(ids.values()) <= set(mined)
    assert read_model(paths.mine / ids["sub/b_above.pdf"] / "paper.json", PaperRecord).source_pdf == "sub/b_above.pdf"
    first = snapshot(paths.mine)
    assert not any(name.endswith(".tmp") for name in first)

    (paths.mine / ids["c_logos.pdf"] / "paper.json").unlink()
    again = mine.run(paths, config, progress=False)
    assert again.counts["mined"] == 1 and again.counts["resumed"] == len(mined) - 1
    assert snapshot(paths.mine) == first
    assert again.problems == result.problems  # a resumed paper reports the same lines
    assert again.counts == {**result.counts, "mined": 1, "resumed": len(mined) - 1}


def test_parallel_workers_give_the_same_outputs(tmp_path):
    papers = tmp_path / "papers"
    make_corpus(papers)
    one, two = StagePaths(tmp_path / "one"), StagePaths(tmp_path / "two")
    r1 = mine.run(one, cfg(papers, one.out, workers=1), progress=False)
    r2 = mine.run(two, cfg(papers, two.out, workers=2), progress=False)
    assert r1 == r2
    assert snapshot(one.mine) == snapshot(two.mine)


def test_floor_pass_decodes_each_image_once(tmp_path):
    paper_main(tmp_path / "p.pdf")
    assert floor_pass(tmp_path / "p.pdf") == 5  # 1 raster + 4 grid parts


# --- the sample corpus (dataset_builders.sample_corpus) and its ground truth ------------------------------

def _iou(a, b) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from dataset_builders import sample_corpus

    root = tmp_path_factory.mktemp("sample")
    truth = sample_corpus.generate_corpus(root / "corpus", n_papers=12, seed=0)
    paths = StagePaths(root / "out")
    result = mine.run(paths, cfg(root / "corpus" / "papers", paths.out, workers=2), progress=False)
    return root, truth, paths, result


def test_sample_corpus_recall_against_ground_truth(sample):
    root, truth, paths, result = sample
    assert result.problems == [] and result.counts["mined"] == 12
    n_fig = found = captions = kinds = 0
    n_cit = cited = 0
    for tp in truth.papers:
        rec = read_model(paths.mine / mine.paper_id_of(root / "corpus" / tp.file) / "paper.json", PaperRecord)
        assert rec.source_pdf == Path(tp.file).name and rec.n_pages == tp.n_pages
        assert rec.title == tp.title
        assert rec.doi and tp.doi.endswith(rec.doi) and rec.doi.startswith("10.")
        for tf in tp.figures:
            n_fig += 1
            on_page = [f for f in rec.figures if f.page == tf.page]
            best = max(on_page, key=lambda f: _iou(f.bbox, tf.bbox), default=None)
            if best is None or _iou(best.bbox, tf.bbox) < 0.5:
                continue
            found += 1
            captions += best.number == str(tf.number) and best.caption == tf.caption
            kinds += best.kind == tf.kind and (tf.kind == "vector" or len(best.parts) == len(tf.images))
        for c in tp.citations:
            n_cit += 1
            cited += any(e.figure_number == str(c.figure) and e.panels == c.panels and e.page == c.page
                         and len(e.text) <= 400 for e in rec.excerpts)
    assert n_fig >= 30 and n_cit >= 40
    assert found / n_fig >= 0.95, (found, n_fig)
    assert captions / n_fig >= 0.95, (captions, n_fig)
    assert kinds / n_fig >= 0.95, (kinds, n_fig)
    assert cited / n_cit >= 0.95, (cited, n_cit)


def test_sample_corpus_logos_skipped_and_jpegs_kept(sample):
    root, truth, paths, _ = sample
    for tp in truth.papers[:4]:
        pdf = root / "corpus" / tp.file
        rec = read_model(paths.mine / mine.paper_id_of(pdf) / "paper.json", PaperRecord)
        # the publisher logo is printed in every page header: skipped on each page, never a figure part
        header = [s for s in rec.skipped if s.bbox[3] < 0.12 * A4[1]]
        assert sorted(s.page for s in header) == list(range(1, tp.n_pages + 1))
        assert all(s.reason in ("too_small", "repeated_publisher_image") for s in header)
        assert not any(p.bbox[3] < 0.12 * A4[1] for f in rec.figures for p in f.parts)
        doc = pymupdf.open(pdf)
        for fig in rec.figures:
            for part in fig.parts:
                if part.source_format == "jpeg":
                    xref = int(Path(part.image).stem.split("-x")[1])
                    assert paths.abs(part.image).read_bytes() == doc.extract_image(xref)["image"]


EXPECTED_BAD = {"truncated": "truncated_or_corrupt", "corrupt": "truncated_or_corrupt", "encrypted": "encrypted",
                "empty_file": "zero_bytes", "not_a_pdf": "not_a_pdf", "no_figures": "no_figures",
                "decompression_bomb": "decompression_bomb", "ok": None}


def test_sample_bad_inputs_each_file_has_its_reason(tmp_path):
    from dataset_builders import sample_corpus

    bad = tmp_path / "bad"
    expected = sample_corpus.write_bad_inputs(bad)
    paths = StagePaths(tmp_path / "out")
    result = mine.run(paths, cfg(bad, paths.out, workers=2), progress=False)
    got: dict[str, set[str]] = {}
    for p in result.problems:
        got.setdefault(p.file, set()).add(p.reason)
    assert set(got) == {n for n, r in expected.items() if EXPECTED_BAD[r]}
    for name, kind in expected.items():
        if EXPECTED_BAD[kind]:
            assert EXPECTED_BAD[kind] in got[name], (name, got[name])
    assert result.counts["files"] == len(expected)
    ok = [n for n, k in expected.items() if k == "ok"]
    assert len(ok) >= 5
    for name in ok:  # CMYK, 16-bit, 1-bit, alpha, JPX: each kept as an 8-bit RGB/L JPEG that Pillow opens
        rec = read_model(paths.mine / mine.paper_id_of(bad / name) / "paper.json", PaperRecord)
        (fig,) = rec.figures
        assert fig.number == "1" and fig.caption == sample_corpus.BAD_CAPTION
        (part,) = fig.parts
        with Image.open(paths.abs(part.image)) as im:
            im.load()
            assert im.format == "JPEG" and im.mode in ("RGB", "L") and im.size == (part.width, part.height)
            assert np.asarray(im).std() > 10  # a picture, not a blank
    bomb = read_model(paths.mine / mine.paper_id_of(bad / "decompression_bomb.pdf") / "paper.json",
                      PaperRecord)
    assert [s.reason for s in bomb.skipped] == ["decompression_bomb"] and bomb.figures == []


def test_each_part_holds_the_image_placed_at_its_position(sample):
    """Same-size images side by side must not be confused (a JPEG part keeps its source bytes exactly)."""
    import hashlib

    root, truth, paths, _ = sample
    checked = distinct = 0
    for tp in truth.papers:
        rec = read_model(paths.mine / mine.paper_id_of(root / "corpus" / tp.file) / "paper.json", PaperRecord)
        parts = [(f.page, p) for f in rec.figures for p in f.parts]
        for tf in tp.figures:
            located = []
            for ti in tf.images:
                page_parts = [p for page, p in parts if page == tf.page]
                best = max(page_parts, key=lambda p: _iou(p.bbox, ti.bbox), default=None)
                assert best is not None and _iou(best.bbox, ti.bbox) > 0.9, (tf.figure_id, ti.bbox)
                data = (paths.out / best.image).read_bytes()
                located.append((ti.sha256, hashlib.sha256(data).hexdigest()))
                if ti.format == "jpeg":
                    assert hashlib.sha256(data).hexdigest() == ti.sha256, (tf.figure_id, best.image)
                    checked += 1
            # different source images -> different mined files
            for i, (src_a, got_a) in enumerate(located):
                for src_b, got_b in located[i + 1:]:
                    if src_a != src_b:
                        assert got_a != got_b, tf.figure_id
                        distinct += 1
    assert checked >= 20 and distinct >= 10, (checked, distinct)


def test_same_size_flate_images_side_by_side_keep_their_own_pixels(tmp_path):
    """Three same-size PNG (Flate) panels: each mined part must hold the pixels placed at its position."""
    import numpy as np

    papers = tmp_path / "papers"
    papers.mkdir()
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    sources = []
    for i in range(3):
        img = texture(320, 240, seed=10 + i)
        sources.append(np.asarray(img, dtype=np.float32))
        rect = (60 + i * 165, 200, 215 + i * 165, 316)
        page.insert_image(rect, stream=png_bytes(img))
        text(page, (rect[0], rect[1] - 20, rect[0] + 40, rect[1]), f"({'abc'[i]})")
    text(page, (60, 322, 560, 380), "Fig. 1. SEM fractographs: (a) dimples; (b) cleavage facets; (c) striations.")
    doc.save(papers / "p.pdf")
    paths = StagePaths(tmp_path / "out")
    mine.run(paths, cfg(papers, paths.out, workers=1), progress=False)
    rec = read_model(next(paths.mine.glob("*/paper.json")), PaperRecord)
    parts = sorted((p for f in rec.figures for p in f.parts), key=lambda p: p.bbox[0])
    assert len(parts) == 3
    for part, source in zip(parts, sources):
        with Image.open(paths.out / part.image) as im:
            mined = np.asarray(im.convert("L"), dtype=np.float32)
        assert mined.shape == source.shape
        assert np.abs(mined - source).mean() < 3, part.image  # JPEG q95 of the same pixels, not a neighbour


def test_check_files_rehashes_only_changed_files(tmp_path, monkeypatch):
    """Paper ids of unchanged files (inode, size, mtime) come from the earlier build's list, not a new read."""
    from dataset_builders.pdf import file_check

    papers = tmp_path / "papers"
    papers.mkdir()
    for name in ("a.pdf", "b.pdf"):
        doc = pymupdf.open()
        doc.new_page().insert_text((72, 72), f"paper {name}")
        doc.save(papers / name)
    (papers / "notes.txt").write_text("not a paper")
    files = sorted(papers.iterdir())
    known = tmp_path / "stages" / "mine_ids.tsv"
    first = file_check.check_files(files, known, workers=1)
    assert [pid for pid, _ in first[:2]] == [mine.paper_id_of(f) for f in files[:2]]
    assert first[2][0] == "" and first[2][1][0] == "not_a_pdf"
    read: list[str] = []
    real = file_check.check_file
    monkeypatch.setattr(file_check, "check_file", lambda f: read.append(Path(f).name) or real(f))
    assert file_check.check_files(files, known, workers=1) == first
    assert read == ["notes.txt"]  # only what was not a PDF is looked at again
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "a changed paper")
    doc.save(tmp_path / "new.pdf")
    (tmp_path / "new.pdf").replace(papers / "a.pdf")
    read.clear()
    again = file_check.check_files(files, known, workers=1)
    assert read == ["a.pdf", "notes.txt"]
    assert again[0][0] == mine.paper_id_of(papers / "a.pdf") != first[0][0] and again[1] == first[1]
    linked = tmp_path / "linked"  # the same files in another folder (hard links): not read again
    linked.mkdir()
    for f in files:
        os.link(f, linked / f.name)
    read.clear()
    assert file_check.check_files(sorted(linked.iterdir()), known, workers=1) == again
    assert read == ["notes.txt"]
