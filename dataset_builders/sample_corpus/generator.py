"""Deterministic sample corpus: fake but realistic fractography papers as PDFs, with known ground truth.

The default build run, every test and the speed benchmark use it. Each paper is an A4 PDF made with
PyMuPDF: a title page (title, authors, DOI, abstract), body text citing figures and panels in the styles
real papers use ("Fig. 2b", "Fig. 2(b)", "Figs. 2a and 2c", "Figure 3", "Fig. 4a–c", negations), a
publisher logo repeated in every header, and 2-4 figures of four kinds (single raster, multi-panel in one
raster, multi-panel of separate rasters, non-fracture: vector plot / vector schematic / optical
micrograph / photograph), each with a caption directly below. Some figures reprint an image of another
paper (byte-identical, re-encoded or rescaled) so dedup across papers can be tested.

``ground_truth.json`` records, per figure, its page, bbox, number, caption as printed, kind, whether it is
a fractograph, its panels with the canonical features the text asserts (negated ones excluded), the
embedded images with their bboxes, and which earlier figure a reprint duplicates. Same (n_papers, seed)
-> byte-identical files.

Usage: python -m dataset_builders.sample_corpus --out output/sample_corpus --papers 12 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import random
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pymupdf
from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict

from fracto_core.files import write_bytes_atomic, write_text_atomic
from .textures import FRACTURE_KINDS, KINDS, render
from fracto_core.vocabulary import canonicalize, sort_features

Box = tuple[float, float, float, float]
GENERATOR_VERSION = "1"

# --- ground truth records ------------------------------------------------------------------------


class _Truth(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TruthImage(_Truth):
    """One raster embedded in the PDF as part of a figure."""

    bbox: Box  # where it is drawn on the page (PDF points, y down)
    width: int  # pixels of the embedded image
    height: int
    format: str  # how it was handed to PyMuPDF: "jpeg" (kept as DCT), "png" (stored as Flate)
    sha256: str  # of the encoded bytes handed to PyMuPDF


class TruthPanel(_Truth):
    letter: str | None  # None for a single-panel figure
    texture: str  # textures.KINDS key
    features: list[str]  # canonical names the caption/text assert for this panel (negated ones excluded)
    negated: list[str] = []  # canonical names the caption/text explicitly deny for this panel
    bbox: Box  # the panel's area on the page (for a composed raster: its cell without gutters)
    duplicate_of: str | None = None  # "<paper stem>:fig<N>[:<letter>]" of the original of a reprint


class TruthFigure(_Truth):
    figure_id: str  # "<paper stem>:fig<N>"
    page: int  # 1-based
    bbox: Box  # union of the figure's images / drawings (and, for vector figures, their tick labels)
    number: int
    caption: str  # exactly as printed (line breaks as single spaces)
    kind: Literal["raster", "multi_raster", "vector"]
    layout: Literal["single", "grid", "separate", "plot", "schematic", "micrograph", "photo"]
    grid: tuple[int, int] | None = None  # rows, cols of a multi-panel figure
    is_fracture: bool
    panels: list[TruthPanel]
    images: list[TruthImage]
    duplicate_of: str | None = None  # figure id of the original when the whole figure is a reprint
    duplicate_mode: Literal["identical", "reencoded", "rescaled"] | None = None


class TruthCitation(_Truth):
    """A body sentence that cites a figure (or some of its panels)."""

    text: str
    page: int  # page where the sentence starts
    figure: int
    panels: list[str]  # letters cited, [] = the whole figure
    features: list[str]  # canonical features the sentence asserts
    negated: list[str]  # canonical features the sentence denies


class TruthPaper(_Truth):
    file: str  # relative to the corpus folder, e.g. "papers/paper_000.pdf"
    index: int
    title: str
    authors: list[str]
    doi: str
    n_pages: int
    material: str
    figures: list[TruthFigure]
    citations: list[TruthCitation]


class TruthManualRow(_Truth):
    file: str  # relative to the manual folder (as written in manual.csv)
    features: list[str]  # canonical names of the row's features
    csv_features: str  # the features cell as written (synonyms allowed)
    texture: str


class CorpusTruth(_Truth):
    generator_version: str
    seed: int
    n_papers: int
    papers: list[TruthPaper]
    manual: list[TruthManualRow]


# --- words ---------------------------------------------------------------------------------------

# caption/body wording for each canonical feature; every phrase is a vocabulary name or synonym
# (tests/test_sample_corpus.py checks that each canonicalises back to its feature)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "equiaxed dimples": ("equiaxed dimples", "microvoid coalescence", "dimple rupture", "ductile dimples"),
    "elongated dimples": ("elongated dimples", "shear dimples", "parabolic dimples", "tear dimples"),
    "cleavage facets": ("cleavage facets", "transgranular cleavage", "cleavage planes"),
    "river patterns": ("river patterns", "river markings", "river lines"),
    "cleavage tongues": ("cleavage tongues", "tongues"),
    "intergranular facets": ("intergranular facets", "intergranular fracture", "rock candy",
                             "grain boundary decohesion"),
    "fatigue striations": ("fatigue striations", "striations", "ductile striations"),
    "gas pore": ("gas pores", "porosity", "spherical pores", "gas porosity"),
    "lack-of-fusion defect": ("lack-of-fusion defect", "lack of fusion", "LOF defect", "unfused regions"),
    "unmelted powder particles": ("unmelted powder particles", "unmelted powder", "partially melted powder"),
    "fish-eye": ("fish-eye", "fisheye", "fish eye"),
    "fine granular area": ("fine granular area", "FGA", "optically dark area"),
    "inclusion at origin": ("non-metallic inclusion", "oxide inclusion", "inclusion"),
    "creep cavities": ("creep cavities", "grain boundary cavities", "wedge cracks", "cavitation"),
    "ratchet marks": ("ratchet marks", "ratchet lines"),
    "crazing": ("crazing", "crazes"),
    "secondary cracks": ("secondary cracks", "secondary cracking"),
}

# how a texture's features are put into words ({canonical name} -> a synonym)
KIND_PHRASES: dict[str, tuple[str, ...]] = {
    "equiaxed_dimples": ("{equiaxed dimples}", "{equiaxed dimples} typical of ductile overload"),
    "elongated_dimples": ("{elongated dimples}", "{elongated dimples} pointing along the shear direction"),
    "cleavage": ("{river patterns} on {cleavage facets}", "{cleavage facets} with {river patterns}"),
    "cleavage_tongues": ("{cleavage tongues} on {cleavage facets}", "{cleavage facets} with {cleavage tongues}"),
    "intergranular": ("{intergranular facets}", "{intergranular facets} along prior austenite grains"),
    "striations": ("{fatigue striations}", "closely spaced {fatigue striations}"),
    "gas_pores": ("{gas pore}", "{gas pore} near the surface"),
    "lack_of_fusion": ("a {lack-of-fusion defect} with {unmelted powder particles}",
                       "{unmelted powder particles} inside a {lack-of-fusion defect}"),
    "fish_eye": ("a {fish-eye} around an {inclusion at origin}", "an {inclusion at origin} inside a {fish-eye}"),
    "fine_granular_area": ("a {fine granular area} around an {inclusion at origin}",
                           "an {inclusion at origin} surrounded by a {fine granular area}"),
    "creep_cavities": ("{creep cavities} on {intergranular facets}",
                       "{intergranular facets} decorated with {creep cavities}"),
    "unmelted_powder": ("{unmelted powder particles}", "{unmelted powder particles} on the fracture surface"),
    "ratchet_marks": ("{ratchet marks}", "{ratchet marks} at the specimen surface"),
    "crazing": ("{crazing}", "{crazing} in the polymer matrix"),
}

NEGATABLE = ("fatigue striations", "cleavage facets", "intergranular facets", "gas pore", "secondary cracks",
             "equiaxed dimples")
NEG_WORDS = {"fatigue striations": ("fatigue striations", "striations"), "cleavage facets": ("cleavage facets",),
             "intergranular facets": ("intergranular facets",), "gas pore": ("gas pores",),
             "secondary cracks": ("secondary cracks",), "equiaxed dimples": ("dimples",)}

MATERIALS = ("AA7075-T6", "Ti-6Al-4V", "316L stainless steel", "AISI 4340 steel", "Inconel 718",
             "AlSi10Mg", "S355 structural steel", "AZ31 magnesium alloy", "17-4PH steel", "CoCrMo alloy")
PROCESSES = ("laser powder bed fused", "wrought", "cast", "forged", "electron beam melted", "rolled")
TESTS = ("uniaxial tension", "high-cycle fatigue", "ultrasonic fatigue", "Charpy impact", "slow strain rate",
         "creep rupture")
SURNAMES = ("Nakamura", "Okafor", "Lindqvist", "Moreau", "Castillo", "Zhang", "Kowalski", "Haddad", "Rossi",
            "Petrov", "Fischer", "Singh", "Almeida", "O'Connor", "Tanaka", "Novak")
INITIALS = "ABCDEFGHJKLMNPRSTVW"
FILLER = (
    "Specimens were machined from the {material} plates with their axis parallel to the rolling direction.",
    "All tests were carried out at room temperature in laboratory air.",
    "The surfaces were ground with SiC paper up to grit 2000 before testing.",
    "Fracture surfaces were cleaned ultrasonically in acetone and examined in a field-emission SEM at 15 kV.",
    "The heat treatment consisted of solution annealing followed by artificial ageing.",
    "Load was applied with a sinusoidal waveform at a stress ratio of R = 0.1.",
    "Three specimens were tested for each condition and the scatter was below 5 %.",
    "Hardness was measured with a load of 0.5 kgf on polished cross sections.",
    "These observations agree with earlier reports on similar {material} grades.",
    "The yield strength increased after ageing while the elongation decreased slightly.",
    "Residual stresses were measured by X-ray diffraction using the sin²ψ method.",
    "The results are discussed in terms of the microstructure and the loading conditions.",
    "Further work will address the role of the build orientation and of the surface finish.",
    "A total of {n} specimens were tested, and the data are summarised in Table 1.",
)
JOURNAL = "Journal of Synthetic Fractography"

# --- page geometry -------------------------------------------------------------------------------

PAGE = pymupdf.paper_rect("a4")  # 595 x 842 pt
X0, X1 = 56.0, 539.0
TOP, BOTTOM = 74.0, 792.0
BODY_FS, BODY_LEAD = 9.5, 12.2
CAPTION_FS, CAPTION_LEAD = 8.5, 10.6
FONT = pymupdf.Font("helv")  # Nimbus Sans (Helvetica metrics), embedded so "–", "µ", "²" print and extract
FONT_BOLD = pymupdf.Font("hebo")
FIXED_DATE = "D:20260101000000Z"


_ADVANCE: dict[tuple[int, int], float] = {}


def _width(text: str, size: float, font: pymupdf.Font = FONT) -> float:
    """Printed width of text in points (glyph advances cached per font and character)."""
    key = id(font)
    total = 0.0
    for ch in text:
        adv = _ADVANCE.get((key, ord(ch)))
        if adv is None:
            adv = _ADVANCE[(key, ord(ch))] = font.glyph_advance(ord(ch))
        total += adv
    return total * size


def _text(page: pymupdf.Page, pos: tuple[float, float], text: str, fontname: str = "F1", fontsize: float = 9.5,
          color: tuple[float, float, float] = (0, 0, 0)) -> None:
    """Queue text for the page (F1 regular, F2 bold); _flush_text writes it, above any image."""
    writers = page.__dict__.setdefault("_fracto_writers", {})
    if color not in writers:
        writers[color] = pymupdf.TextWriter(page.rect)
    writers[color].append(pos, text, font=FONT_BOLD if fontname == "F2" else FONT, fontsize=fontsize)


def _flush_text(page: pymupdf.Page) -> None:
    for color, writer in page.__dict__.pop("_fracto_writers", {}).items():
        writer.write_text(page, color=color)


def _wrap(text: str, width: float, size: float, font: pymupdf.Font = FONT) -> list[tuple[int, str]]:
    """Greedy word wrap; returns (start offset in text, line) pairs. Lines joined by ' ' give text back."""
    lines: list[tuple[int, str]] = []
    space = _width(" ", size, font)
    start, cur, cur_w, pos = 0, [], 0.0, 0
    for word in text.split(" "):
        w = _width(word, size, font)
        if cur and cur_w + space + w > width:
            lines.append((start, " ".join(cur)))
            start, cur, cur_w = pos, [], 0.0
        cur_w = w if not cur else cur_w + space + w
        cur.append(word)
        pos += len(word) + 1
    if cur:
        lines.append((start, " ".join(cur)))
    return lines


def _encode(arr: np.ndarray, fmt: str, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- figure plans ----------------------------------------------------------------------------------

@dataclass
class _Panel:
    letter: str | None
    texture: str
    phrase: str = ""  # words naming its features
    negated: str | None = None  # canonical name denied in the caption
    pixels: np.ndarray | None = None
    encoded: bytes | None = None
    fmt: str = "jpeg"
    duplicate_of: str | None = None


@dataclass
class _Figure:
    number: int
    layout: str
    panels: list[_Panel]
    grid: tuple[int, int] | None = None
    caption: str = ""
    width: float = 0.0  # points
    height: float = 0.0
    duplicate_of: str | None = None
    duplicate_mode: str | None = None
    # filled when drawn
    truth: TruthFigure | None = None


@dataclass
class _Reprintable:
    figure_id: str
    texture: str
    pixels: np.ndarray
    encoded: bytes
    fmt: str


@dataclass
class _Sentence:
    text: str
    figure: int | None = None
    panels: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)


def _phrase(kind: str, r: random.Random) -> str:
    template = r.choice(KIND_PHRASES[kind])
    return template.format_map({name: r.choice(SYNONYMS[name]) for name in KINDS[kind].features})


def _negation_for(kind: str, r: random.Random) -> str:
    return r.choice([n for n in NEGATABLE if n not in KINDS[kind].features])


_LETTERS = "abcdef"
_COMMON = ("equiaxed_dimples", "elongated_dimples", "cleavage", "intergranular", "striations", "gas_pores",
           "lack_of_fusion", "creep_cavities", "fish_eye", "unmelted_powder")


class _PaperMaker:
    """Builds one paper: plans figures and text, lays them out, draws the PDF, records the truth."""

    def __init__(self, index: int, seed: int, reprint: tuple[_Reprintable, str] | None, logo: bytes,
                 icon: bytes):
        self.index, self.seed = index, seed
        self.stem = f"paper_{index:03d}"
        self.r = random.Random(f"{seed}:paper:{index}")
        self.rng = np.random.default_rng([seed, index])
        self.material = self.r.choice(MATERIALS)
        self.reprint = reprint
        self.logo, self.icon = logo, icon
        self.figures: list[_Figure] = []
        self.reprintables: list[_Reprintable] = []
        self._filler_pool: list[str] = []
        self._grids: dict[int, tuple[bytes, np.ndarray, list[tuple[int, int, int, int]]]] = {}

    # -- planning --------------------------------------------------------------------------------

    def _texture(self, kind: str, w: int, h: int) -> np.ndarray:
        return render(kind, w, h, self.rng)

    def plan_figures(self) -> None:
        r = self.r
        n = r.randint(2, 4)
        layouts = ["single"]  # every paper has a single fractograph (the reprint source for the next)
        pool = ["grid", "grid", "separate", "plot", "schematic", "micrograph", "photo", "single"]
        forced = ("grid", "separate", "plot", "micrograph", "schematic", "photo")[self.index % 6]
        layouts.append(forced)
        while len(layouts) < n:
            layouts.append(r.choice(pool))
        if self.reprint is not None:
            layouts[-1:] = [layouts[-1], "reprint"] if len(layouts) < 4 else ["reprint"]
        r.shuffle(layouts)
        for number, layout in enumerate(layouts, 1):
            self.figures.append(self._plan_figure(number, layout))

    def _plan_figure(self, number: int, layout: str) -> _Figure:
        r = self.r
        if layout == "single":
            kind = r.choice(_COMMON)
            fmt = "png" if r.random() < 0.25 else "jpeg"
            w, h = r.choice(((512, 384), (480, 360), (448, 352)))
            px = self._texture(kind, w, h)
            panel = _Panel(None, kind, _phrase(kind, r), pixels=px, encoded=_encode(px, fmt), fmt=fmt)
            fig = _Figure(number, layout, [panel], width=r.uniform(0.55, 0.7) * (X1 - X0))
            self.reprintables.append(_Reprintable(f"{self.stem}:fig{number}", kind, px, panel.encoded, fmt))
        elif layout == "reprint":
            src, mode = self.reprint  # type: ignore[misc]
            if mode == "identical":
                encoded, px, fmt = src.encoded, src.pixels, src.fmt
            elif mode == "reencoded":
                px, fmt = src.pixels, "jpeg"
                encoded = _encode(px, "jpeg", quality=70)
            else:  # rescaled
                img = Image.fromarray(src.pixels)
                img = img.resize((int(img.width * 0.75), int(img.height * 0.75)), Image.BILINEAR)
                px, fmt = np.asarray(img), "jpeg"
                encoded = _encode(px, "jpeg", quality=85)
            panel = _Panel(None, src.texture, _phrase(src.texture, r), pixels=px, encoded=encoded, fmt=fmt,
                           duplicate_of=src.figure_id)
            fig = _Figure(number, "single", [panel], width=r.uniform(0.5, 0.65) * (X1 - X0),
                          duplicate_of=src.figure_id, duplicate_mode=mode)
        elif layout in ("grid", "separate"):
            grid = r.choice(((1, 2), (2, 2), (1, 3), (2, 3))) if layout == "grid" else \
                r.choice(((1, 2), (2, 2), (1, 3)))
            n = grid[0] * grid[1]
            if layout == "separate" and grid == (2, 2) and r.random() < 0.4:
                n = 3  # a 2x2 grid with one empty cell
            kinds = [r.choice(_COMMON if r.random() < 0.8 else FRACTURE_KINDS) for _ in range(n)]
            panels = [_Panel(_LETTERS[i], k, _phrase(k, r)) for i, k in enumerate(kinds)]
            pw, ph = (320, 240) if grid[1] <= 2 else (288, 216)
            for p in panels:
                p.pixels = self._texture(p.texture, pw, ph)
                if layout == "separate":
                    p.fmt = "png" if r.random() < 0.2 else "jpeg"
                    p.encoded = _encode(p.pixels, p.fmt)
            if r.random() < 0.5:  # deny an absent feature for one panel
                target = r.choice(panels)
                target.negated = _negation_for(target.texture, r)
            fig = _Figure(number, layout, panels, grid=grid, width=(X1 - X0) * (0.85 if grid[1] == 2 else 1.0))
        elif layout in ("micrograph", "photo"):
            kind = "etched_microstructure" if layout == "micrograph" else "test_rig_photo"
            w, h = (480, 360) if layout == "micrograph" else (448, 336)
            px = self._texture(kind, w, h)
            panel = _Panel(None, kind, pixels=px, encoded=_encode(px, "jpeg"), fmt="jpeg")
            fig = _Figure(number, layout, [panel], width=r.uniform(0.45, 0.55) * (X1 - X0))
        else:  # vector plot / schematic
            fig = _Figure(number, layout, [_Panel(None, "vector_" + layout)],
                          width=(X1 - X0) * (0.6 if layout == "plot" else 0.75))
        fig.caption = self._caption(fig)
        fig.height = self._figure_height(fig)
        return fig

    def _figure_height(self, fig: _Figure) -> float:
        if fig.layout == "grid":
            self._compose_grid(fig)
            canvas = self._grids[fig.number][1]
            return fig.width * canvas.shape[0] / canvas.shape[1]
        if fig.layout == "separate":
            rows, cols = fig.grid  # type: ignore[misc]
            gut = 8.0
            cell_w = (fig.width - gut * (cols - 1)) / cols
            ph, pw = fig.panels[0].pixels.shape[:2]  # type: ignore[union-attr]
            return rows * cell_w * ph / pw + gut * (rows - 1)
        if fig.layout == "plot":
            return fig.width * 0.68
        if fig.layout == "schematic":
            return fig.width * 0.42
        px = fig.panels[0].pixels
        return fig.width * px.shape[0] / px.shape[1]  # type: ignore[union-attr]

    def _compose_grid(self, fig: _Figure) -> None:
        """Compose the panels into ONE raster with white gutters and a letter in a corner of each."""
        r = self.r
        rows, cols = fig.grid  # type: ignore[misc]
        ph, pw = fig.panels[0].pixels.shape[:2]  # type: ignore[union-attr]
        gut = r.randint(6, 12)
        canvas = Image.new("L", (cols * pw + (cols - 1) * gut, rows * ph + (rows - 1) * gut), 255)
        draw = ImageDraw.Draw(canvas)
        font = ImageFont.load_default(size=r.choice((20, 24, 28)))
        corner = r.choice(("tl", "tl", "bl", "tr"))
        cells = []
        for i, p in enumerate(fig.panels):
            y0, x0 = (i // cols) * (ph + gut), (i % cols) * (pw + gut)
            canvas.paste(Image.fromarray(p.pixels), (x0, y0))  # type: ignore[arg-type]
            l, t, rr, b = font.getbbox(p.letter or "")
            bw, bh = rr + 10, b + 8
            bx = x0 + 4 if corner in ("tl", "bl") else x0 + pw - bw - 4
            by = y0 + 4 if corner in ("tl", "tr") else y0 + ph - bh - 4
            draw.rectangle((bx, by, bx + bw, by + bh), fill=255)
            draw.text((bx + 5, by + 2), p.letter or "", fill=0, font=font)
            cells.append((x0, y0, x0 + pw, y0 + ph))
        pixels = np.asarray(canvas)
        self._grids[fig.number] = (_encode(pixels, "jpeg", quality=90), pixels, cells)

    def _caption(self, fig: _Figure) -> str:
        r = self.r
        lead = r.choice(("Fig. {n}.", "Figure {n}.", "FIG. {n}", "Fig. {n}:")).format(n=fig.number)
        m = self.material
        if fig.layout in ("grid", "separate"):
            if r.random() < 0.7:
                parts = []
                for p in fig.panels:
                    part = f"({p.letter}) {p.phrase}"
                    if p.negated:
                        part += f", no {r.choice(NEG_WORDS[p.negated])} visible"
                    parts.append(part)
                body = f"SEM fractographs of the {m} specimens: " + "; ".join(parts) + "."
            else:
                parts = [f"{p.phrase} ({p.letter})" + (f" without {r.choice(NEG_WORDS[p.negated])}"
                                                      if p.negated else "") for p in fig.panels]
                body = (f"Fracture surfaces of {m} after {r.choice(TESTS)} showing "
                        + ", ".join(parts[:-1]) + " and " + parts[-1] + ".")
        elif fig.layout == "single":
            p = fig.panels[0]
            body = r.choice((
                "SEM fractograph showing {ph}.",
                "SEM fractograph of the {m} specimen showing {ph}.",
                "Secondary electron image of the fracture surface of {m} with {ph}.",
            )).format(ph=p.phrase, m=m)
            if r.random() < 0.3:
                neg = _negation_for(p.texture, r)
                p.negated = neg
                body = body[:-1] + f"; no {r.choice(NEG_WORDS[neg])} are visible."
            if fig.duplicate_of:
                body += f" Reprinted from Ref. [{r.randint(3, 30)}] with permission."
        elif fig.layout == "plot":
            body = f"Engineering stress–strain curves of the {m} specimens in the as-built and heat-treated conditions."
        elif fig.layout == "schematic":
            body = "Schematic of the specimen geometry (dimensions in mm)."
        elif fig.layout == "micrograph":
            body = f"Optical micrograph of the etched microstructure of {m} (Kroll's reagent)."
        else:
            body = f"Photograph of the servo-hydraulic test rig used for the {r.choice(TESTS)} tests."
        return f"{lead} {body}"

    # -- text ------------------------------------------------------------------------------------

    def _ref(self, number: int, letters: list[str]) -> str:
        r = self.r
        if not letters:
            return r.choice(("Fig. {n}", "Figure {n}", "Fig. {n}")).format(n=number)
        if len(letters) == 1:
            return r.choice(("Fig. {n}{a}", "Fig. {n}({a})", "Figure {n}{a}")).format(n=number, a=letters[0])
        if len(letters) == 2:
            a, b = letters
            return r.choice(("Figs. {n}{a} and {n}{b}", "Fig. {n}{a},{b}")).format(n=number, a=a, b=b)
        return f"Fig. {number}{letters[0]}–{letters[-1]}"

    def citing_sentences(self, fig: _Figure) -> list[_Sentence]:
        r = self.r
        n = fig.number
        if fig.layout == "plot":
            return [_Sentence(f"The engineering stress–strain curves are plotted in {self._ref(n, [])}.", n)]
        if fig.layout == "schematic":
            return [_Sentence(f"The specimen geometry is given in {self._ref(n, [])}.", n)]
        if fig.layout == "micrograph":
            return [_Sentence(f"The etched microstructure ({self._ref(n, [])}) consists of fine grains.", n)]
        if fig.layout == "photo":
            return [_Sentence(f"The test set-up is shown in {self._ref(n, [])}.", n)]
        out: list[_Sentence] = []
        if fig.layout == "single":
            p = fig.panels[0]
            ph = _phrase(p.texture, r)
            ref = self._ref(n, [])
            out.append(_Sentence(r.choice((f"As shown in {ref}, the fracture surface exhibits {ph}.",
                                           f"The fracture surface in {ref} is dominated by {ph}.")),
                                 n, [], list(KINDS[p.texture].features)))
            if r.random() < 0.5:
                neg = _negation_for(p.texture, r)
                out.append(_Sentence(f"No {r.choice(NEG_WORDS[neg])} were observed in {self._ref(n, [])}.",
                                     n, [], [], [neg]))
            return out
        panels = fig.panels
        first = panels[0]
        ref = self._ref(n, [first.letter])  # type: ignore[list-item]
        out.append(_Sentence(f"{ref[0].upper()}{ref[1:]} reveals {_phrase(first.texture, r)}.", n,
                             [first.letter], list(KINDS[first.texture].features)))  # type: ignore[list-item]
        if len(panels) >= 3 and r.random() < 0.6:
            out.append(_Sentence(f"Several morphologies coexist, as shown in {self._ref(n, [p.letter for p in panels[:3]])}.",  # type: ignore[misc]
                                 n, [p.letter for p in panels[:3]]))  # type: ignore[misc]
        if len(panels) >= 3:
            a, c = panels[0], panels[2]
            out.append(_Sentence(
                f"{self._ref(n, [a.letter, c.letter])} show {_phrase(a.texture, r)} and {_phrase(c.texture, r)}, "
                "respectively.", n, [a.letter, c.letter],  # type: ignore[list-item]
                sorted(set(KINDS[a.texture].features) | set(KINDS[c.texture].features))))
        p = panels[1]
        neg = _negation_for(p.texture, r)
        out.append(_Sentence(f"No {r.choice(NEG_WORDS[neg])} were observed in {self._ref(n, [p.letter])}.",  # type: ignore[list-item]
                             n, [p.letter], [], [neg]))  # type: ignore[list-item]
        return out

    def filler(self, k: int) -> list[_Sentence]:
        """k filler sentences, without repeats within a paper until the bank is used up."""
        if len(self._filler_pool) < k:
            self._filler_pool = list(FILLER)
            self.r.shuffle(self._filler_pool)
        picks, self._filler_pool = self._filler_pool[:k], self._filler_pool[k:]
        return [_Sentence(s.format(material=self.material, n=self.r.randint(9, 40))) for s in picks]

    # -- layout and drawing ----------------------------------------------------------------------

    def build(self) -> tuple[bytes, TruthPaper]:
        r = self.r
        self.plan_figures()
        title = r.choice((
            "Fractographic analysis of {p} {m} under {t}",
            "On the failure mechanisms of {p} {m} in {t}",
            "Microstructure and fracture behaviour of {p} {m}: a {t} study",
        )).format(p=r.choice(PROCESSES), m=self.material, t=r.choice(TESTS))
        title = title[0].upper() + title[1:]
        authors = [f"{r.choice(INITIALS)}. {name}" for name in r.sample(SURNAMES, r.randint(2, 5))]
        doi = f"https://doi.org/10.5555/fracto.{self.seed}.{self.index}"
        abstract = " ".join(s.text for s in self.filler(3)) + (
            f" The fracture surfaces of {self.material} were examined by scanning electron microscopy"
            " and the failure mechanisms are discussed.")
        paragraphs: list[list[_Sentence]] = [self.filler(r.randint(3, 4))]
        for fig in self.figures:
            paragraphs.append(self.filler(r.randint(1, 2)) + self.citing_sentences(fig)
                              + self.filler(r.randint(0, 2)))
        paragraphs.append(self.filler(r.randint(2, 4)))
        blocks = self._blocks(title, authors, doi, abstract, paragraphs)
        pages = self._layout(blocks)
        if len(pages) > 5:  # keep papers to 2-5 pages: drop the filler-only closing paragraph
            blocks = [b for b in blocks if not b.droppable]
            pages = self._layout(blocks)
        while len(pages) < 2:
            extra = _Block("text", lines=_wrap(" ".join(s.text for s in self.filler(4)), X1 - X0, BODY_FS),
                           size=BODY_FS, lead=BODY_LEAD, gap_after=6, droppable=True)
            blocks.append(extra)
            pages = self._layout(blocks)
        return self._draw(title, authors, doi, blocks, pages)

    def _blocks(self, title, authors, doi, abstract, paragraphs) -> list["_Block"]:
        W = X1 - X0
        blocks = [
            _Block("text", lines=_wrap(title, W, 16, FONT_BOLD), size=16, lead=19, gap_after=6, bold=True),
            _Block("text", lines=_wrap(", ".join(authors), W, 10), size=10, lead=13, gap_after=2),
            _Block("text", lines=[(0, doi)], size=8.5, lead=11, gap_after=10, doi=True),
            _Block("text", lines=[(0, "Abstract")], size=10, lead=13, gap_after=1, bold=True),
            _Block("text", lines=_wrap(abstract, W, 9), size=9, lead=11.5, gap_after=12),
        ]
        figs_by_number = {f.number: f for f in self.figures}
        section_names = ["1. Introduction", "2. Results and discussion", "3. Conclusions"]
        for i, para in enumerate(paragraphs):
            if i == 0:
                blocks.append(_Block("text", lines=[(0, section_names[0])], size=10.5, lead=14, gap_after=3,
                                     bold=True))
            if i == 1:
                blocks.append(_Block("text", lines=[(0, section_names[1])], size=10.5, lead=14, gap_after=3,
                                     bold=True))
            if i == len(paragraphs) - 1:
                blocks.append(_Block("text", lines=[(0, section_names[2])], size=10.5, lead=14, gap_after=3,
                                     bold=True, droppable=True))
            text = " ".join(s.text for s in para)
            offsets, pos = [], 0
            for s in para:
                offsets.append(pos)
                pos += len(s.text) + 1
            blocks.append(_Block("text", lines=_wrap(text, W, BODY_FS), size=BODY_FS, lead=BODY_LEAD, gap_after=7,
                                 sentences=list(zip(offsets, para)), droppable=i == len(paragraphs) - 1))
            cited = [s.figure for s in para if s.figure is not None]
            if cited:
                fig = figs_by_number[cited[0]]
                cap_lines = _wrap(fig.caption, W, CAPTION_FS)
                blocks.append(_Block("figure", figure=fig, lines=cap_lines, size=CAPTION_FS, lead=CAPTION_LEAD,
                                     gap_after=14))
        return blocks

    @staticmethod
    def _layout(blocks: list["_Block"]) -> list[list[tuple["_Block", int, float]]]:
        """Place blocks top to bottom; text may break between lines, a figure+caption never breaks.

        Returns, per page, (block, first line index, y of the block's top) placements.
        """
        pages: list[list[tuple[_Block, int, float]]] = [[]]
        y = TOP
        for b in blocks:
            if b.kind == "figure":
                need = b.figure.height + 6 + len(b.lines) * b.lead  # type: ignore[union-attr]
                if y + need > BOTTOM and pages[-1]:
                    pages.append([])
                    y = TOP
                pages[-1].append((b, 0, y))
                y += need + b.gap_after
                continue
            i = 0
            while i < len(b.lines):
                fit = int((BOTTOM - y) // b.lead)
                if fit <= 0:
                    pages.append([])
                    y = TOP
                    continue
                pages[-1].append((b, i, y))
                take = min(fit, len(b.lines) - i)
                y += take * b.lead
                i += take
            y += b.gap_after
        return [p for p in pages if p]

    def _header(self, page: pymupdf.Page, pno: int, logo_xref: int) -> int:
        xref = page.insert_image(pymupdf.Rect(X0, 26, X0 + 58, 52), stream=self.logo if not logo_xref else None,
                                 xref=logo_xref)
        _text(page, (X0 + 66, 42), f"{JOURNAL} · Vol. 12 (2026)", fontname="F1", fontsize=8,
                         color=(0.25, 0.25, 0.25))
        page.draw_line((X0, 58), (X1, 58), color=(0.6, 0.6, 0.6), width=0.5)
        _text(page, ((X0 + X1) / 2 - 3, 818), str(pno), fontname="F1", fontsize=8)
        return xref

    def _draw(self, title, authors, doi, blocks, pages) -> tuple[bytes, TruthPaper]:
        doc = pymupdf.open()
        logo_xref = 0
        citations: list[TruthCitation] = []
        figures: list[TruthFigure] = []
        for pno, placements in enumerate(pages, 1):
            page = doc.new_page(width=PAGE.width, height=PAGE.height)
            logo_xref = self._header(page, pno, logo_xref)
            for block, first, y in placements:
                if block.kind == "figure":
                    figures.append(self._draw_figure(page, pno, block, y))
                    continue
                fit = int((BOTTOM - y) // block.lead)
                lines = block.lines[first:first + fit]
                for k, (_, line) in enumerate(lines):
                    baseline = y + (k + 1) * block.lead - block.lead * 0.25
                    _text(page, (X0, baseline), line, fontname="F2" if block.bold else "F1",
                                     fontsize=block.size, color=(0.1, 0.2, 0.6) if block.doi else (0, 0, 0))
                    if block.doi and self.index % 3 == 0 and k == 0:  # tiny open-access icon after the DOI
                        x = X0 + _width(line, block.size) + 4
                        page.insert_image(pymupdf.Rect(x, y + 1, x + 9, y + 10), stream=self.icon)
                if block.sentences:
                    end = lines[-1][0] + len(lines[-1][1]) if lines else 0
                    start = lines[0][0] if lines else 0
                    for off, s in block.sentences:
                        if s.figure is not None and start <= off < end + 1:
                            citations.append(TruthCitation(text=s.text, page=pno, figure=s.figure, panels=s.panels,
                                                           features=_sorted(s.features),
                                                           negated=_sorted(s.negated)))
            _flush_text(page)
        doc.set_metadata({"title": title, "author": "; ".join(authors), "subject": doi,
                          "creator": "fracto sample_corpus", "producer": "PyMuPDF",
                          "creationDate": FIXED_DATE, "modDate": FIXED_DATE, "keywords": "", "trapped": ""})
        n_pages = doc.page_count
        data = doc.tobytes(garbage=3, deflate=True, no_new_id=True)
        doc.close()
        figures.sort(key=lambda f: f.number)
        citations.sort(key=lambda c: (c.page, c.figure))
        truth = TruthPaper(file=f"papers/{self.stem}.pdf", index=self.index, title=title, authors=authors, doi=doi,
                           n_pages=n_pages, material=self.material, figures=figures, citations=citations)
        return data, truth

    def _draw_figure(self, page: pymupdf.Page, pno: int, block: "_Block", y: float) -> TruthFigure:
        fig: _Figure = block.figure  # type: ignore[assignment]
        x0 = X0 + ((X1 - X0) - fig.width) / 2
        rect = pymupdf.Rect(x0, y, x0 + fig.width, y + fig.height)
        images: list[TruthImage] = []
        panels: list[TruthPanel] = []
        kind: Literal["raster", "multi_raster", "vector"] = "raster"

        def put(r: pymupdf.Rect, data: bytes, fmt: str, px: np.ndarray) -> None:
            page.insert_image(r, stream=data, keep_proportion=False)
            images.append(TruthImage(bbox=_box(r), width=px.shape[1], height=px.shape[0], format=fmt,
                                     sha256=_sha(data)))

        def truth_panel(p: _Panel, box: Box) -> TruthPanel:
            feats = list(KINDS[p.texture].features) if p.texture in KINDS else []
            return TruthPanel(letter=p.letter, texture=p.texture, features=_sorted(feats),
                              negated=[p.negated] if p.negated else [], bbox=box, duplicate_of=p.duplicate_of)

        bbox = rect
        if fig.layout == "grid":
            put(rect, self._grid_encoded_of(fig), "jpeg", self._grid_pixels_of(fig))
            scale = rect.width / self._grid_pixels_of(fig).shape[1]
            for p, (cx0, cy0, cx1, cy1) in zip(fig.panels, self._grid_cells_of(fig)):
                panels.append(truth_panel(p, _box(pymupdf.Rect(rect.x0 + cx0 * scale, rect.y0 + cy0 * scale,
                                                               rect.x0 + cx1 * scale, rect.y0 + cy1 * scale))))
        elif fig.layout == "separate":
            kind = "multi_raster"
            rows, cols = fig.grid  # type: ignore[misc]
            gut = 8.0
            cw = (fig.width - gut * (cols - 1)) / cols
            ch = (fig.height - gut * (rows - 1)) / rows
            for i, p in enumerate(fig.panels):
                r = pymupdf.Rect(rect.x0 + (i % cols) * (cw + gut), rect.y0 + (i // cols) * (ch + gut), 0, 0)
                r.x1, r.y1 = r.x0 + cw, r.y0 + ch
                put(r, p.encoded, p.fmt, p.pixels)  # type: ignore[arg-type]
                _text(page, (r.x0 + 3, r.y0 + 11), f"({p.letter})", fontname="F2", fontsize=9,
                                 color=(1, 1, 1))
                panels.append(truth_panel(p, _box(r)))
            bbox = pymupdf.Rect()
            for im in images:
                bbox |= pymupdf.Rect(im.bbox)
        elif fig.layout in ("plot", "schematic"):
            kind = "vector"
            bbox = self._draw_plot(page, rect) if fig.layout == "plot" else self._draw_schematic(page, rect)
            panels.append(truth_panel(fig.panels[0], _box(bbox)))
        else:
            p = fig.panels[0]
            put(rect, p.encoded, p.fmt, p.pixels)  # type: ignore[arg-type]
            panels.append(truth_panel(p, _box(rect)))
        cap_y = y + fig.height + 6
        for k, (_, line) in enumerate(block.lines):
            _text(page, (X0, cap_y + (k + 1) * block.lead - block.lead * 0.25), line,
                             fontname="F1", fontsize=block.size)
        return TruthFigure(figure_id=f"{self.stem}:fig{fig.number}", page=pno, bbox=_box(bbox), number=fig.number,
                           caption=fig.caption, kind=kind, layout=fig.layout, grid=fig.grid,  # type: ignore[arg-type]
                           is_fracture=fig.layout in ("single", "grid", "separate"), panels=panels, images=images,
                           duplicate_of=fig.duplicate_of, duplicate_mode=fig.duplicate_mode)  # type: ignore[arg-type]

    # grid rasters are composed at planning time; keep them per figure
    def _grid_encoded_of(self, fig: _Figure) -> bytes:
        return self._grids[fig.number][0]

    def _grid_pixels_of(self, fig: _Figure) -> np.ndarray:
        return self._grids[fig.number][1]

    def _grid_cells_of(self, fig: _Figure) -> list[tuple[int, int, int, int]]:
        return self._grids[fig.number][2]

    def _draw_plot(self, page: pymupdf.Page, rect: pymupdf.Rect) -> pymupdf.Rect:
        """Engineering stress-strain curves: axes, ticks, tick labels, two or three curves, a legend."""
        r = self.r
        ax = pymupdf.Rect(rect.x0 + 36, rect.y0 + 6, rect.x1 - 8, rect.y1 - 30)
        black = (0, 0, 0)
        page.draw_line(ax.bl, ax.br, color=black, width=0.8)
        page.draw_line(ax.bl, ax.tl, color=black, width=0.8)
        max_strain, max_stress = 20, r.choice((600, 1200, 1600))
        for i in range(5):
            x = ax.x0 + ax.width * i / 4
            page.draw_line((x, ax.y1), (x, ax.y1 + 3), color=black, width=0.6)
            _text(page, (x - 4, ax.y1 + 12), str(max_strain * i // 4), fontname="F1", fontsize=7)
            yy = ax.y1 - ax.height * i / 4
            page.draw_line((ax.x0 - 3, yy), (ax.x0, yy), color=black, width=0.6)
            _text(page, (ax.x0 - 24, yy + 2.5), str(max_stress * i // 4), fontname="F1", fontsize=7)
        _text(page, (ax.x0 + ax.width / 2 - 40, rect.y1 - 6), "Engineering strain (%)", fontname="F1",
                         fontsize=7.5)
        _text(page, (rect.x0 + 2, ax.y0 + 10), "MPa", fontname="F1", fontsize=7.5)
        colours = ((0.85, 0.2, 0.15), (0.1, 0.35, 0.8), (0.15, 0.6, 0.25))
        n_curves = r.randint(2, 3)
        for c in range(n_curves):
            e_f = r.uniform(0.35, 0.95)
            uts = r.uniform(0.55, 0.95)
            pts = []
            for k in range(41):
                e = e_f * k / 40
                if e < 0.02:  # elastic line up to yield at 85 % of the tensile strength
                    s = uts * 0.85 * e / 0.02
                else:  # strain hardening towards the tensile strength
                    s = uts * (0.85 + 0.15 * min(1.0, (e - 0.02) / (e_f * 0.6)))
                if e > e_f * 0.85:
                    s *= 1 - (e - e_f * 0.85) / (e_f * 0.15) * 0.25
                pts.append((ax.x0 + e * ax.width, ax.y1 - s * ax.height))
            page.draw_polyline(pts, color=colours[c], width=1.2)
            ly = ax.y0 + 8 + c * 10
            page.draw_line((ax.x1 - 70, ly), (ax.x1 - 58, ly), color=colours[c], width=1.2)
            _text(page, (ax.x1 - 54, ly + 2.5), ("as-built", "heat-treated", "HIP")[c], fontname="F1",
                             fontsize=7)
        return pymupdf.Rect(rect)

    def _draw_schematic(self, page: pymupdf.Page, rect: pymupdf.Rect) -> pymupdf.Rect:
        """Dog-bone specimen outline with dimension lines."""
        cx, cy = rect.x0 + rect.width / 2, rect.y0 + rect.height * 0.45
        L, G = rect.width * 0.9, rect.width * 0.4
        H, g = rect.height * 0.5, rect.height * 0.22
        x0, x1 = cx - L / 2, cx + L / 2
        pts = [(x0, cy - H / 2), (cx - G / 2 - 20, cy - H / 2), (cx - G / 2, cy - g / 2), (cx + G / 2, cy - g / 2),
               (cx + G / 2 + 20, cy - H / 2), (x1, cy - H / 2), (x1, cy + H / 2), (cx + G / 2 + 20, cy + H / 2),
               (cx + G / 2, cy + g / 2), (cx - G / 2, cy + g / 2), (cx - G / 2 - 20, cy + H / 2), (x0, cy + H / 2),
               (x0, cy - H / 2)]
        page.draw_polyline(pts, color=(0, 0, 0), width=1.0, fill=(0.9, 0.9, 0.92))
        dy = rect.y1 - 14
        page.draw_line((x0, dy), (x1, dy), color=(0, 0, 0), width=0.5)
        page.draw_line((cx - G / 2, cy + g / 2 + 6), (cx + G / 2, cy + g / 2 + 6), color=(0, 0, 0), width=0.5)
        for x in (x0, x1):
            page.draw_line((x, dy - 4), (x, dy + 4), color=(0, 0, 0), width=0.5)
        _text(page, (cx - 8, dy - 3), str(self.r.choice((80, 100, 120))), fontname="F1", fontsize=7.5)
        _text(page, (cx - 8, cy + g / 2 + 16), str(self.r.choice((25, 30, 40))), fontname="F1", fontsize=7.5)
        _text(page, (cx + G / 2 + 24, cy - H / 2 - 4), "R15", fontname="F1", fontsize=7.5)
        _text(page, (x1 - 24, cy - H / 2 - 4), "Ø6", fontname="F1", fontsize=7.5)
        return pymupdf.Rect(x0 - 1, cy - H / 2 - 12, x1 + 1, dy + 5)


@dataclass
class _Block:
    kind: Literal["text", "figure"]
    lines: list[tuple[int, str]] = field(default_factory=list)
    size: float = BODY_FS
    lead: float = BODY_LEAD
    gap_after: float = 0.0
    bold: bool = False
    doi: bool = False
    figure: _Figure | None = None
    sentences: list[tuple[int, _Sentence]] = field(default_factory=list)
    droppable: bool = False


def _box(r: pymupdf.Rect) -> Box:
    return (round(r.x0, 3), round(r.y0, 3), round(r.x1, 3), round(r.y1, 3))


def _sorted(names: list[str]) -> list[str]:
    return sort_features(names)


# --- publisher artwork (the same bytes on every page of every paper) ------------------------------

def _logo() -> bytes:
    """Publisher logo: 240x104 px, big enough in pixels that only its repetition marks it as a logo."""
    img = Image.new("RGB", (240, 104), (236, 112, 20))
    draw = ImageDraw.Draw(img)
    draw.ellipse((12, 12, 92, 92), fill=(255, 255, 255))
    draw.rectangle((40, 30, 64, 74), fill=(236, 112, 20))
    draw.text((104, 28), "JSF", fill=(255, 255, 255), font=ImageFont.load_default(size=44))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _icon() -> bytes:
    """A tiny 16x16 open-access style icon."""
    img = Image.new("RGB", (16, 16), (255, 255, 255))
    ImageDraw.Draw(img).ellipse((1, 1, 14, 14), fill=(246, 130, 31))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# --- manual rare-feature collection -------------------------------------------------------------

# (texture, file format, the features cell as a curator would type it)
MANUAL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("fish_eye", "png", "fisheye;non-metallic inclusion"),
    ("fish_eye", "jpeg", "fish-eye;inclusion"),
    ("fine_granular_area", "png", "FGA;inclusion"),
    ("fine_granular_area", "jpeg", "fine granular area;oxide inclusion"),
    ("ratchet_marks", "png", "ratchet marks"),
    ("creep_cavities", "jpeg", "wedge cracks;intergranular fracture"),
    ("unmelted_powder", "png", "unmelted powder"),
    ("crazing", "jpeg", "crazes"),
    ("crazing", "png", "crazing"),
    ("cleavage_tongues", "jpeg", "tongues;cleavage facets"),
)


def write_manual(dest: Path, seed: int = 0) -> list[TruthManualRow]:
    """Write ``dest/manual.csv`` (file,features,source,notes) and ``dest/images/`` rare-feature images.

    ``file`` is relative to ``dest``; features are ';'-separated canonical names or synonyms.
    """
    dest = Path(dest)
    rows: list[TruthManualRow] = []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "features", "source", "notes"])
    for i, (kind, fmt, cell) in enumerate(MANUAL_ROWS):
        px = render(kind, 512, 384, np.random.default_rng([seed, 100_000 + i]))
        rel = f"images/manual_{i:02d}_{kind}.{'jpg' if fmt == 'jpeg' else 'png'}"
        write_bytes_atomic(dest / rel, _encode(px, fmt, quality=92))
        writer.writerow([rel, cell, f"synthetic sample collection (seed {seed})",
                         f"synthetic {KINDS[kind].description}"])
        canon = [canonicalize(x) for x in cell.split(";")]
        rows.append(TruthManualRow(file=rel, features=_sorted([c for c in canon if c]), csv_features=cell,
                                   texture=kind))
    write_text_atomic(dest / "manual.csv", buf.getvalue())
    return rows


# --- the corpus ----------------------------------------------------------------------------------

REPRINT_MODES = ("identical", "reencoded", "rescaled")


def generate_corpus(dest: Path, n_papers: int = 12, seed: int = 0) -> CorpusTruth:
    """Write ``dest/papers/paper_NNN.pdf``, ``dest/manual/`` and ``dest/ground_truth.json``.

    Every odd-numbered paper reprints the first single fractograph of the paper before it
    (identical bytes, re-encoded or rescaled, in turn). Stale ``paper_*.pdf`` files of an earlier,
    larger run in ``dest/papers`` are removed so the folder holds exactly this corpus.
    """
    if n_papers < 1:
        raise ValueError(f"n_papers must be at least 1 (got {n_papers})")
    dest = Path(dest)
    logo, icon = _logo(), _icon()
    papers: list[TruthPaper] = []
    previous: list[_Reprintable] = []
    wanted: set[str] = set()
    for i in range(n_papers):
        reprint = (previous[0], REPRINT_MODES[(i // 2) % 3]) if i % 2 == 1 and previous else None
        maker = _PaperMaker(i, seed, reprint, logo, icon)
        data, truth = maker.build()
        write_bytes_atomic(dest / truth.file, data)
        wanted.add(Path(truth.file).name)
        papers.append(truth)
        previous = maker.reprintables
    for stale in sorted((dest / "papers").glob("paper_*.pdf")):
        if stale.name not in wanted:
            stale.unlink()
    manual = write_manual(dest / "manual", seed)
    corpus = CorpusTruth(generator_version=GENERATOR_VERSION, seed=seed, n_papers=n_papers, papers=papers,
                         manual=manual)
    write_text_atomic(dest / "ground_truth.json", corpus.model_dump_json(indent=1) + "\n")
    return corpus


# --- bad inputs ----------------------------------------------------------------------------------

BAD_INPUT_REASONS = {
    "truncated": "a valid PDF cut in half (MuPDF may repair it partly)",
    "corrupt": "random bytes with a .pdf name",
    "encrypted": "needs a user password",
    "empty_file": "zero bytes",
    "not_a_pdf": "not a PDF at all (text, or a PNG renamed .pdf)",
    "no_figures": "a valid PDF with text but no images or drawings",
    "decompression_bomb": "an image declaring 40000x40000 pixels, small on disk",
    "ok": "an unusual but valid image that a good miner keeps",
}
BOMB_SIDE = 40_000
USER_PASSWORD = "fracto-user"
OWNER_PASSWORD = "fracto-owner"
BAD_CAPTION = "Fig. 1. SEM fractograph showing dimples."


def _single_figure_doc(insert) -> pymupdf.Document:
    """A one-page paper whose one figure is placed by ``insert(page, rect) -> None``, caption below."""
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE.width, height=PAGE.height)
    _text(page, (X0, 90), "Fracture of a test specimen", fontname="F1", fontsize=14)
    _text(page, (X0, 110), "As shown in Fig. 1, the fracture surface exhibits dimples.", fontname="F1",
                     fontsize=BODY_FS)
    rect = pymupdf.Rect(X0 + 80, 130, X0 + 80 + 320, 130 + 240)
    insert(page, rect)
    _text(page, (X0 + 80, rect.y1 + 14), BAD_CAPTION, fontname="F1", fontsize=CAPTION_FS)
    _flush_text(page)
    doc.set_metadata({"creationDate": FIXED_DATE, "modDate": FIXED_DATE, "producer": "PyMuPDF",
                      "creator": "fracto sample_corpus"})
    return doc


def _doc_bytes(doc: pymupdf.Document, **kw) -> bytes:
    data = doc.tobytes(garbage=kw.pop("garbage", 3), deflate=kw.pop("deflate", True), no_new_id=True, **kw)
    doc.close()
    return data


def _raw_image_doc(width: int, height: int, bpc: int, stream: bytes) -> bytes:
    """A figure whose image XObject is written by hand (16-bit grey, or a bomb that must never be decoded).

    A small placeholder is inserted with PyMuPDF, then its object and (already Flate-compressed)
    stream are replaced, so nothing ever decodes the declared pixels while writing.
    """
    placeholder = _encode(np.full((8, 8), 128, np.uint8), "png")
    holder: dict[str, int] = {}

    def insert(page: pymupdf.Page, rect: pymupdf.Rect) -> None:
        holder["xref"] = page.insert_image(rect, stream=placeholder, keep_proportion=False)

    doc = _single_figure_doc(insert)
    xref = holder["xref"]
    doc.update_object(xref, f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
                            f"/ColorSpace /DeviceGray /BitsPerComponent {bpc} >>")
    doc.update_stream(xref, stream, compress=False)
    doc.xref_set_key(xref, "Filter", "/FlateDecode")
    return _doc_bytes(doc, garbage=1, deflate=False)


def _zero_flate(n_rows: int, row_bytes: int, rows_per_chunk: int = 400) -> bytes:
    """zlib stream of n_rows*row_bytes zero bytes without compressing them all.

    After a full flush the deflate state restarts, so every identical chunk compresses to the same
    bytes: compress one chunk, repeat its output, finish, and append the Adler-32 of the zeros
    (a = 1, b = length mod 65521).
    """
    assert n_rows % rows_per_chunk == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(rows_per_chunk * row_bytes)
    first = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    assert first == again
    tail = comp.flush(zlib.Z_FINISH)
    total = n_rows * row_bytes
    adler = ((total % 65521) << 16) | 1
    return b"\x78\xda" + first * (n_rows // rows_per_chunk) + tail + adler.to_bytes(4, "big")


def write_bad_inputs(dest: Path, seed: int = 0) -> dict[str, str]:
    """Write a corpus of bad and unusual inputs to ``dest``; returns file name -> expected reason.

    Reasons are the keys of BAD_INPUT_REASONS; "ok" files hold one valid fractograph in an unusual
    encoding (CMYK JPEG, 16-bit grey, 1-bit, RGBA with an alpha mask, JPEG 2000) with the caption
    BAD_CAPTION, so a good miner keeps it.
    """
    dest = Path(dest)
    rng = np.random.default_rng([seed, 999])
    out: dict[str, str] = {}

    def put(name: str, data: bytes, reason: str) -> None:
        write_bytes_atomic(dest / name, data)
        out[name] = reason

    good, _ = _PaperMaker(0, seed, None, _logo(), _icon()).build()
    put("truncated.pdf", good[: len(good) // 2], "truncated")
    put("corrupt.pdf", rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes(), "corrupt")
    put("empty.pdf", b"", "empty_file")
    put("notes.txt", b"Reading list for the fractography project.\nNot a PDF.\n", "not_a_pdf")
    fracto = render("equiaxed_dimples", 480, 360, rng)
    put("png_renamed.pdf", _encode(fracto, "png"), "not_a_pdf")

    text_doc = pymupdf.open()
    page = text_doc.new_page(width=PAGE.width, height=PAGE.height)
    y = 90.0
    for _, line in _wrap(" ".join(FILLER[:8]).format(material="AA7075-T6", n=12), X1 - X0, BODY_FS):
        _text(page, (X0, y), line, fontname="F1", fontsize=BODY_FS)
        y += BODY_LEAD
    _flush_text(page)
    text_doc.set_metadata({"creationDate": FIXED_DATE, "modDate": FIXED_DATE})
    put("text_only.pdf", _doc_bytes(text_doc), "no_figures")

    def image_pdf(data: bytes) -> bytes:
        return _doc_bytes(_single_figure_doc(lambda pg, r: pg.insert_image(r, stream=data, keep_proportion=False)))

    rgb = Image.fromarray(fracto).convert("RGB")
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, "JPEG", quality=90)
    put("cmyk_jpeg.pdf", image_pdf(buf.getvalue()), "ok")
    buf = io.BytesIO()
    Image.fromarray(fracto).convert("1").save(buf, "PNG")  # Floyd-Steinberg dithered, 1 bit per pixel
    put("bilevel_1bit.pdf", image_pdf(buf.getvalue()), "ok")
    alpha = np.full(fracto.shape, 255, np.uint8)
    alpha[:, :24] = 0  # a transparent strip at the left edge
    buf = io.BytesIO()
    Image.fromarray(np.dstack([fracto, fracto, fracto, alpha])).save(buf, "PNG", compress_level=1)
    put("rgba_alpha.pdf", image_pdf(buf.getvalue()), "ok")
    buf = io.BytesIO()
    Image.fromarray(fracto).save(buf, "JPEG2000", quality_mode="rates", quality_layers=[20])
    put("jpx.pdf", image_pdf(buf.getvalue()), "ok")
    g16 = (fracto.astype(">u2") * 257).tobytes()
    put("gray16.pdf", _raw_image_doc(fracto.shape[1], fracto.shape[0], 16, zlib.compress(g16, 6)), "ok")

    encrypted = _single_figure_doc(lambda pg, r: pg.insert_image(r, stream=_encode(fracto, "jpeg")))
    put("encrypted.pdf", encrypted.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=USER_PASSWORD,
                                           owner_pw=OWNER_PASSWORD, garbage=3, deflate=True), "encrypted")
    encrypted.close()
    put("decompression_bomb.pdf", _raw_image_doc(BOMB_SIDE, BOMB_SIDE, 8, _zero_flate(BOMB_SIDE, BOMB_SIDE)),
        "decompression_bomb")
    return dict(sorted(out.items()))


# --- CLI -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_builders.sample_corpus",
        description="Write the deterministic sample corpus: fake fractography papers (PDF), a manual "
                    "rare-feature collection and ground_truth.json. Same --papers/--seed give byte-identical files.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write papers/, manual/, ground_truth.json")
    parser.add_argument("--papers", type=int, default=12, help="number of papers (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--bad-inputs", action="store_true",
                        help="also write the bad-input corpus to OUT/bad_inputs (truncated, encrypted, bomb, ...)")
    args = parser.parse_args(argv)
    truth = generate_corpus(args.out, args.papers, args.seed)
    n_figs = sum(len(p.figures) for p in truth.papers)
    n_panels = sum(len(f.panels) for p in truth.papers for f in p.figures)
    print(f"wrote {len(truth.papers)} papers ({n_figs} figures, {n_panels} panels), "
          f"{len(truth.manual)} manual images, ground truth to {args.out / 'ground_truth.json'}")
    if args.bad_inputs:
        for name, reason in write_bad_inputs(args.out / "bad_inputs", args.seed).items():
            print(f"bad input {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
