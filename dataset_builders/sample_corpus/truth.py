"""The sample corpus's ground truth: the pydantic records written to ``ground_truth.json``.

Per paper: its figures (page, bbox, number, caption as printed, kind, whether it is a fractograph, its
panels with the canonical features the text asserts and denies, the embedded images with their bboxes, and
which earlier figure a reprint duplicates) and the body sentences that cite them; plus the rows of the
manual rare-feature collection. Every record forbids unknown fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Box = tuple[float, float, float, float]


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
    # canonical names an expert reading the caption/text labels this panel with (negated and hedged ones
    # excluded): also features named by a paraphrase or an abbreviation the offline rules may not know
    features: list[str]
    negated: list[str] = []  # canonical names the caption/text explicitly deny for this panel
    hedged: list[str] = []  # canonical names only hedged ("possibly ...", "...-like"): uncertain, not labels
    bbox: Box  # the panel's area on the page (for a composed raster: its cell without gutters)
    duplicate_of: str | None = None  # "<paper stem>:fig<N>[:<letter>]" of the original of a reprint


class TruthFigure(_Truth):
    figure_id: str  # "<paper stem>:fig<N>"
    page: int  # 1-based
    bbox: Box  # union of the figure's images / drawings (and, for vector figures, their tick labels)
    number: int
    caption: str  # exactly as printed (line breaks as single spaces)
    kind: Literal["raster", "multi_raster", "vector"]
    layout: Literal["single", "grid", "separate", "plot", "schematic", "micrograph", "photo", "distractor"]
    grid: tuple[int, int] | None = None  # rows, cols of a multi-panel figure
    is_fracture: bool
    panels: list[TruthPanel]
    images: list[TruthImage]
    duplicate_of: str | None = None  # figure id of the original when the whole figure is a reprint
    duplicate_mode: Literal["identical", "reencoded", "rescaled"] | None = None
    caption_above: bool = False  # the caption is printed above the figure (else below)
    spans_columns: bool = False  # a figure across both columns of a two-column page


class TruthCitation(_Truth):
    """A body sentence that cites a figure (or some of its panels)."""

    text: str
    page: int  # page where the sentence starts
    figure: int
    panels: list[str]  # letters cited, [] = the whole figure
    features: list[str]  # canonical features the sentence asserts (as an expert reads it)
    negated: list[str]  # canonical features the sentence denies
    hedged: list[str] = []  # canonical features the sentence only hedges (not labels)


class TruthPaper(_Truth):
    file: str  # relative to the corpus folder, e.g. "papers/paper_000.pdf"
    index: int
    title: str
    authors: list[str]
    doi: str
    n_pages: int
    columns: Literal[1, 2] = 1
    abbreviations: dict[str, str] = {}  # abbreviation the paper defines in its text -> canonical feature
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
