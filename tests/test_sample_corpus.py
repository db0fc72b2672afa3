"""Tests of the sample corpus generator: determinism, ground truth against the real PDFs, bad inputs."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zlib
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from dataset_builders.sample_corpus import bad_inputs, generator, textures
from dataset_builders.sample_corpus.text import KIND_PHRASES, MATERIALS, NEG_WORDS, SYNONYMS
from dataset_builders.sample_corpus.truth import CorpusTruth
from dataset_builders.labelling.mentions import features_in
from dataset_builders.sample_corpus.page_layout import COL_GAP, COL_W, X0
from fracto_core.vocabulary import canonicalize, feature, phrase_index

N_PAPERS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, CorpusTruth]:
    dest = tmp_path_factory.mktemp("corpus")
    return dest, generator.generate_corpus(dest, N_PAPERS, seed=0)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    dest = tmp_path_factory.mktemp("bad")
    return dest, bad_inputs.write_bad_inputs(dest, seed=0)


def _norm(text: str) -> str:
    return " ".join(text.split())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- textures ------------------------------------------------------------------------------------

def test_textures_are_seeded_shaped_and_distinct():
    shapes = {}
    for kind in textures.KINDS:
        a = textures.render(kind, 200, 150, np.random.default_rng(3))
        b = textures.render(kind, 200, 150, np.random.default_rng(3))
        assert a.dtype == np.uint8 and np.array_equal(a, b), kind
        assert a.shape == ((150, 200, 3) if kind in ("test_rig_photo", "ebsd_map") else (150, 200)), kind
        assert a.std() > 10, f"{kind} is nearly flat"
        shapes[kind] = a
    c = textures.render("cleavage", 200, 150, np.random.default_rng(4))
    assert not np.array_equal(c, shapes["cleavage"])
    photo = shapes["test_rig_photo"].astype(int)
    assert np.abs(photo[..., 0] - photo[..., 2]).mean() > 20  # colourful, unlike the grey SEM kinds
    assert shapes["etched_microstructure"].mean() > 170  # light background optical micrograph
    with pytest.raises(KeyError, match="valid"):
        textures.render("nonsense", 10, 10, np.random.default_rng(0))


def test_kind_features_and_caption_words_are_vocabulary():
    for kind in textures.KINDS.values():
        for name in kind.features:
            feature(name)
    assert textures.KINDS["cleavage"].features == ("cleavage facets", "river patterns")
    index = phrase_index()
    for name, words in SYNONYMS.items():
        for w in words:
            assert index.get(w.lower()) == name, (w, name)
    for name, words in NEG_WORDS.items():
        for w in words:
            assert index.get(w.lower()) == name, (w, name)
    assert set(KIND_PHRASES) == set(textures.FRACTURE_KINDS)


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_gives_identical_bytes_and_other_seed_differs(corpus, tmp_path):
    dest, _ = corpus
    again = tmp_path / "again"
    generator.generate_corpus(again, N_PAPERS, seed=0)
    files = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (dest / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    generator.generate_corpus(other, 2, seed=1)
    assert _digest(other / "papers/paper_000.pdf") != _digest(dest / "papers/paper_000.pdf")
    # a smaller run into the same folder leaves exactly its own papers
    generator.generate_corpus(again, 2, seed=0)
    assert sorted(p.name for p in (again / "papers").iterdir()) == ["paper_000.pdf", "paper_001.pdf"]
    assert (again / "papers/paper_001.pdf").read_bytes() == (dest / "papers/paper_001.pdf").read_bytes()


def test_truth_json_round_trips(corpus):
    dest, truth = corpus
    loaded = CorpusTruth.model_validate_json((dest / "ground_truth.json").read_text(encoding="utf-8"))
    assert loaded == truth
    assert loaded.n_papers == N_PAPERS and len(loaded.papers) == N_PAPERS


# --- ground truth against the PDFs ---------------------------------------------------------------

def test_papers_have_title_doi_header_logo_and_page_count(corpus):
    dest, truth = corpus
    for paper in truth.papers:
        doc = pymupdf.open(dest / paper.file)
        assert 2 <= doc.page_count <= 5 and doc.page_count == paper.n_pages
        assert doc[0].rect == pymupdf.paper_rect("a4")
        first = _norm(doc[0].get_text())
        assert _norm(paper.title) in first and paper.doi in first
        assert paper.doi == f"https://doi.org/10.5555/fracto.0.{paper.index}"
        # the logo: one image xref drawn in the header of every page
        logo_xrefs = []
        for page in doc:
            header = [i for i in page.get_image_info(xrefs=True) if i["bbox"][3] < 60 and i["width"] >= 200]
            assert len(header) == 1
            logo_xrefs.append(header[0]["xref"])
        assert len(set(logo_xrefs)) == 1
        # the largest text on page 1 is the title
        spans = [s for b in doc[0].get_text("dict")["blocks"] for ln in b.get("lines", []) for s in ln["spans"]]
        biggest = max(spans, key=lambda s: s["size"])
        assert biggest["text"].strip() in paper.title


def test_figures_images_and_captions_match_the_pdf(corpus):
    dest, truth = corpus
    seen_layouts, seen_styles = set(), set()
    for paper in truth.papers:
        doc = pymupdf.open(dest / paper.file)
        assert 2 <= len(paper.figures) <= 5
        assert [f.number for f in paper.figures] == list(range(1, len(paper.figures) + 1))
        for fig in paper.figures:
            seen_layouts.add(fig.layout)
            page = doc[fig.page - 1]
            bbox = pymupdf.Rect(fig.bbox)
            assert page.rect.contains(bbox) and not bbox.is_empty
            text = _norm(page.get_text())
            assert _norm(fig.caption) in text, fig.caption
            seen_styles.add(re.match(r"(Fig\.|Figure|FIG\.) \d+[.:]?", fig.caption).group(0).split()[0])
            # the caption sits directly below the figure, or (caption_above) its first line a little above it
            hits = page.search_for(fig.caption[:25])
            if fig.caption_above:
                assert any(0 <= bbox.y0 - h.y1 <= 80 for h in hits), fig.figure_id
            else:
                assert any(0 <= h.y0 - bbox.y1 <= 20 for h in hits), fig.figure_id
            seen_layouts.add("above" if fig.caption_above else "below")
            if paper.columns == 2:  # inside one column, or across both
                left, right = X0 + COL_W, X0 + COL_W + COL_GAP
                assert fig.spans_columns or bbox.x1 <= left + 0.5 or bbox.x0 >= right - 0.5, fig.figure_id
                seen_layouts.add("span" if fig.spans_columns else "column")
                if fig.spans_columns:
                    assert bbox.x0 < left and bbox.x1 > right
            infos = page.get_image_info(hashes=True, xrefs=True)
            for im in fig.images:
                rect = pymupdf.Rect(im.bbox)
                assert bbox.contains(rect)
                match = [i for i in infos if pymupdf.Rect(i["bbox"]).intersect(rect).get_area()
                         > 0.95 * rect.get_area()]
                assert len(match) == 1, (fig.figure_id, im.bbox)
                assert (match[0]["width"], match[0]["height"]) == (im.width, im.height)
                assert any(tuple(r) == pytest.approx(im.bbox, abs=0.01) for r in page.get_image_rects(match[0]["xref"]))
                if im.format == "jpeg":  # JPEG bytes are embedded unchanged
                    assert hashlib.sha256(doc.xref_stream_raw(match[0]["xref"])).hexdigest() == im.sha256
            if fig.kind == "vector":
                assert not fig.images
                drawings = [d["rect"] for d in page.get_drawings() if d["rect"].y0 > 60]
                inside = [r for r in drawings if bbox.contains(r)]
                assert len(inside) >= 3
            elif fig.layout == "separate":
                assert fig.kind == "multi_raster" and len(fig.images) == len(fig.panels) >= 2
                for p in fig.panels:
                    label = page.search_for(f"({p.letter})", clip=pymupdf.Rect(p.bbox))
                    assert label and label[0].y0 - p.bbox[1] < 15
            else:
                assert fig.kind == "raster" and len(fig.images) == 1
            if fig.layout == "grid":
                assert len(fig.panels) == fig.grid[0] * fig.grid[1] and [p.letter for p in fig.panels] == \
                    list("abcdef"[:len(fig.panels)])
                for p in fig.panels:
                    assert bbox.contains(pymupdf.Rect(p.bbox))
            # captions assert exactly the truth features; negated ones are absent
            for p in fig.panels:
                assert set(p.features) == set(textures.KINDS[p.texture].features) if p.texture in textures.KINDS \
                    else p.features == []
                assert not set(p.features) & set(p.negated) and not set(p.features) & set(p.hedged)
            assert fig.is_fracture == (fig.layout in ("single", "grid", "separate"))
            if fig.layout == "distractor":
                assert fig.panels[0].texture in textures.DISTRACTOR_KINDS and fig.panels[0].features == []
    assert seen_layouts == {"single", "grid", "separate", "plot", "schematic", "micrograph", "photo", "distractor",
                            "above", "below", "span", "column"}
    assert seen_styles == {"Fig.", "Figure", "FIG."}


def test_grid_raster_has_white_gutters_and_letters(corpus):
    dest, truth = corpus
    grids = [(p, f) for p in truth.papers for f in p.figures if f.layout == "grid"]
    assert grids
    for paper, fig in grids:
        doc = pymupdf.open(dest / paper.file)
        infos = doc[fig.page - 1].get_image_info(xrefs=True)
        xref = [i["xref"] for i in infos if tuple(i["bbox"]) == pytest.approx(fig.images[0].bbox, abs=0.01)][0]
        img = np.asarray(Image.open(io.BytesIO(doc.extract_image(xref)["image"])).convert("L")).astype(int)
        scale = img.shape[1] / (fig.bbox[2] - fig.bbox[0])

        def px(box):
            return [round((box[0] - fig.bbox[0]) * scale), round((box[1] - fig.bbox[1]) * scale),
                    round((box[2] - fig.bbox[0]) * scale), round((box[3] - fig.bbox[1]) * scale)]

        a, b = px(fig.panels[0].bbox), px(fig.panels[1].bbox)
        assert 6 <= b[0] - a[2] <= 12  # white gutter of 6-12 px between panels a and b
        assert img[a[1]:a[3], a[2] + 1:b[0] - 1].mean() > 240
        for panel in fig.panels:  # a white letter box in one corner of every panel
            x0, y0, x1, y1 = px(panel.bbox)
            cw, ch = (x1 - x0) // 6, (y1 - y0) // 6
            corners = [img[y0:y0 + ch, x0:x0 + cw], img[y1 - ch:y1, x0:x0 + cw], img[y0:y0 + ch, x1 - cw:x1]]
            assert max((c > 240).mean() for c in corners) > 0.2, (fig.figure_id, panel.letter)


def test_citations_and_negations(corpus):
    dest, truth = corpus
    styles = set()
    negations = 0
    for paper in truth.papers:
        doc = pymupdf.open(dest / paper.file)
        numbers = {f.number: f for f in paper.figures}
        assert {c.figure for c in paper.citations} == set(numbers)
        for c in paper.citations:
            # the sentence's start is on its page (it may wrap onto the next one)
            assert _norm(c.text)[:40] in _norm(doc[c.page - 1].get_text()) or \
                _norm(c.text)[:40] in _norm(" ".join(p.get_text() for p in doc)), c.text
            fig = numbers[c.figure]
            panel_features = {f for p in fig.panels if not c.panels or p.letter in c.panels for f in p.features}
            assert set(c.features) <= panel_features
            assert not set(c.negated) & panel_features
            assert not set(c.hedged) & panel_features
            negations += bool(c.negated)
            for style, pattern in (("Fig. 2b", r"Fig\. \d[a-f]\b"), ("Fig. 2(b)", r"Fig\. \d\([a-f]\)"),
                                   ("Figs.", r"Figs\. \d[a-f] and \d[a-f]"), ("Figure", r"Figure \d"),
                                   ("range", r"Fig\. \d[a-f]–[a-f]"), ("range()", r"Figs\. \d\([a-f]\)–\([a-f]\)"),
                                   ("side", r"Fig\. \d \((left|right)\)"), ("two figures", r"Figures \d and \d")):
                if re.search(pattern, c.text):
                    styles.add(style)
    assert negations >= 3
    assert styles >= {"Fig. 2b", "Figs.", "Figure", "range", "range()", "two figures"}


def test_wording_goes_beyond_the_rules_lexicon(corpus):
    """Captions name features by paraphrases and paper-defined abbreviations the rules may not know, hedge
    others, and distractor captions use fracture words in another sense: the truth is the expert reading."""
    _, truth = corpus
    missed = hedged = mixed = 0
    for paper in truth.papers:  # a polymer paper has no feature with a usual abbreviation (MVC, IG, LOF, ...)
        assert paper.abbreviations or MATERIALS[paper.material] == "polymer"
        for fig in paper.figures:
            if not fig.is_fracture:
                continue
            said, _ = features_in(fig.caption)
            truth_feats = {f for p in fig.panels for f in p.features}
            missed += len(truth_feats - said)
            hedged += sum(bool(p.hedged) for p in fig.panels)
            mixed += bool(re.search(r"\([a-f], [a-f]\)", fig.caption))
    assert missed >= 3 and hedged >= 2 and mixed >= 1, (missed, hedged, mixed)
    assert {p.columns for p in truth.papers} == {1, 2}


def test_reprints_are_recorded_and_really_duplicate(corpus):
    dest, truth = corpus
    figs = {f.figure_id: (p, f) for p in truth.papers for f in p.figures}
    reprints = [(p, f) for p, f in figs.values() if f.duplicate_of]
    assert {f.duplicate_mode for _, f in reprints} == {"identical", "reencoded", "rescaled"}
    for paper, fig in reprints:
        src_paper, src = figs[fig.duplicate_of]
        assert src_paper.index < paper.index and fig.panels[0].duplicate_of == src.figure_id
        assert fig.panels[0].features == src.panels[0].features
        if fig.duplicate_mode == "identical":
            assert fig.images[0].sha256 == src.images[0].sha256
        else:
            assert fig.images[0].sha256 != src.images[0].sha256
        if fig.duplicate_mode == "rescaled":
            assert fig.images[0].width == int(src.images[0].width * 0.75)


def test_manual_collection(corpus):
    dest, truth = corpus
    with open(dest / "manual/manual.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert 8 <= len(rows) <= 12 and list(rows[0]) == ["file", "features", "source", "notes"]
    for row, t in zip(rows, truth.manual):
        assert row["file"] == t.file
        img = Image.open(dest / "manual" / row["file"])
        assert img.format in ("PNG", "JPEG") and img.size == (512, 384)
        canon = {canonicalize(x) for x in row["features"].split(";")}
        assert None not in canon and canon == set(t.features) == set(textures.KINDS[t.texture].features)
        assert any(feature(f).rare for f in t.features)


# --- bad inputs ----------------------------------------------------------------------------------

def test_bad_inputs_have_the_claimed_properties(bad, tmp_path):
    dest, expected = bad
    assert set(expected.values()) <= set(bad_inputs.BAD_INPUT_REASONS)
    assert expected["encrypted.pdf"] == "encrypted" and expected["decompression_bomb.pdf"] == "decompression_bomb"
    assert (dest / "empty.pdf").stat().st_size == 0
    assert not (dest / "corrupt.pdf").read_bytes().startswith(b"%PDF")
    assert (dest / "png_renamed.pdf").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (dest / "notes.txt").read_bytes().startswith(b"%PDF")
    trunc = (dest / "truncated.pdf").read_bytes()
    assert trunc.startswith(b"%PDF") and b"%%EOF" not in trunc[-1024:]

    enc = pymupdf.open(dest / "encrypted.pdf")
    assert enc.needs_pass and enc.is_encrypted
    assert enc.authenticate("wrong") == 0 and enc.authenticate(bad_inputs.USER_PASSWORD) > 0
    assert enc[0].get_images()

    text_only = pymupdf.open(dest / "text_only.pdf")
    assert text_only[0].get_text().strip() and not text_only[0].get_images() and not text_only[0].get_drawings()

    def only_image(name: str) -> tuple[pymupdf.Document, int, dict]:
        doc = pymupdf.open(dest / name)
        assert bad_inputs.BAD_CAPTION in doc[0].get_text()
        images = doc[0].get_images(full=True)
        assert len(images) == 1
        return doc, images[0][0], images[0]

    doc, xref, _ = only_image("cmyk_jpeg.pdf")
    assert doc.extract_image(xref)["colorspace"] == 4 and doc.xref_get_key(xref, "Filter")[1] == "/DCTDecode"
    doc, xref, _ = only_image("gray16.pdf")
    assert doc.xref_get_key(xref, "BitsPerComponent")[1] == "16"
    doc, xref, _ = only_image("bilevel_1bit.pdf")
    assert doc.xref_get_key(xref, "BitsPerComponent")[1] == "1"
    doc, xref, info = only_image("rgba_alpha.pdf")
    assert info[1] > 0  # has an SMask (alpha)
    doc, xref, _ = only_image("jpx.pdf")
    assert doc.xref_get_key(xref, "Filter")[1] == "/JPXDecode"
    assert doc.extract_image(xref)["width"] == 480

    bomb_path = dest / "decompression_bomb.pdf"
    assert bomb_path.stat().st_size < 3_000_000
    doc = pymupdf.open(bomb_path)
    images = doc[0].get_images(full=True)
    assert len(images) == 1 and images[0][2] == images[0][3] == bad_inputs.BOMB_SIDE
    raw = doc.xref_stream_raw(images[0][0])
    head = zlib.decompressobj().decompress(raw, 1 << 20)
    assert len(head) == 1 << 20 and not any(head)


def test_zero_flate_is_a_valid_zlib_stream():
    data = bad_inputs.zero_flate(800, 1000)
    assert zlib.decompress(data) == bytes(800_000)  # also checks the Adler-32 trailer


def test_cli_help_and_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        generator.main(["--help"])
    assert exc.value.code == 0 and "--bad-inputs" in capsys.readouterr().out
    assert generator.main(["--out", str(tmp_path / "c"), "--papers", "1", "--seed", "5"]) == 0
    assert (tmp_path / "c/papers/paper_000.pdf").is_file() and (tmp_path / "c/ground_truth.json").is_file()
    assert "https://doi.org/10.5555/fracto.5.0" in pymupdf.open(tmp_path / "c/papers/paper_000.pdf")[0].get_text()
