"""Typed records exchanged between the builder's stages (each stage reads the previous one's files).

All paths inside records are POSIX paths relative to the build's output folder (``--out``), so an
output folder can be moved as a whole. Boxes are PDF page coordinates in points: (x0, y0, x1, y1),
y growing downwards (PyMuPDF's convention).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from dataset_builders.pdf.numbers import number_json

Box = tuple[float, float, float, float]


def _number_text(value: object) -> object:
    """Stage files written before figure numbers were text hold integers: read them as text ("3")."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# A figure number as text ("3", "7.5", "3-2", "S3", "A.1"; dataset_builders.pdf.numbers). In JSON a plain
# integer stays a JSON integer (3, as stage files and datasets always had it) and any other number is a
# string ("7.5"): files of ordinary papers are unchanged, and old files load.
FigureNumber = Annotated[str, BeforeValidator(_number_text), PlainSerializer(number_json, return_type=int | str)]
Split = Literal["train", "val", "test"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --- build report --------------------------------------------------------------------------------

class Problem(Record):
    """One line of the build report: an input or item that was skipped or failed, and why."""

    file: str  # the input file concerned (PDF, manual CSV row, image), as given by the user
    stage: str  # mine | panels | filter | dedup | label | manual | split | augment | export
    reason: str  # short machine-friendly reason, e.g. "encrypted", "not_a_pdf", "decompression_bomb"
    detail: str = ""  # human-readable explanation
    paper_id: str | None = None
    item_id: str | None = None
    severity: Literal["skipped", "failed"] = "skipped"


# --- stage 1: mine (dataset_builders.mine) ------------------------------------------------

class FigurePart(Record):
    """One raster piece of a figure, saved as an image file."""

    image: str  # relative path of the saved image
    width: int
    height: int
    bbox: Box  # where it sits on the page
    origin: Literal["embedded", "rendered"]  # embedded raster (source bytes kept when possible) or rendered region
    source_format: str  # e.g. "jpeg" (source bytes kept), "png", "jpx", "rendered"
    label: str | None = None  # panel letter printed next to this part ("a"), if any


class Excerpt(Record):
    """A bounded window of body text that cites a figure (or some of its panels)."""

    figure_number: FigureNumber
    panels: list[str] = Field(default_factory=list)  # panel letters cited, [] = the whole figure
    text: str
    page: int


class FigureRecord(Record):
    figure_id: str  # "<paper_id>-p<page>-f<index on page>"
    paper_id: str
    page: int  # 1-based
    bbox: Box
    kind: Literal["raster", "multi_raster", "vector"]
    number: FigureNumber | None = None  # figure number from the matched caption
    caption: str = ""  # full caption text ("" if none was matched)
    context: str = ""  # uncaptioned figures only: the text printed next to it (label line, paragraph before)
    parts: list[FigurePart]
    panel_letters: list[tuple[str, Box]] = Field(default_factory=list)  # letters printed inside the figure
    caption_bold: list[str] = Field(default_factory=list)  # short bold span texts of the caption (panel letters)


class SkippedGraphic(Record):
    page: int
    bbox: Box
    reason: str  # "too_small", "repeated_publisher_image", "page_background", "decompression_bomb", ...


LicenceSource = Literal["manifest", "pdf_text", "xmp", "unknown"]


class SourceMeta(Record):
    """Where a paper came from and under which licence (the fetch manifest, else the PDF's own statement).

    Contract for the export and licence-filter tools: these names are relied on. ``licence`` is a
    dataset_builders.licences id ("cc-by", "cc-by-nc-nd", "cc0", ...) or "unknown", never guessed.
    """

    title: str | None = None
    doi: str | None = None
    licence: str = "unknown"
    licence_url: str | None = None
    authors: list[str] = Field(default_factory=list)
    year: int | None = None
    venue: str | None = None
    source_url: str | None = None  # where the PDF was downloaded from
    licence_source: LicenceSource = "unknown"


class PaperRecord(SourceMeta):
    """Everything mined from one PDF (stages/mine/<paper_id>/paper.json)."""

    paper_id: str  # first 16 hex of the PDF's SHA-256
    source_pdf: str  # path relative to the papers folder
    n_pages: int
    figures: list[FigureRecord]
    excerpts: list[Excerpt]
    skipped: list[SkippedGraphic] = Field(default_factory=list)
    problems: list["Problem"] = Field(default_factory=list)  # per-image problems, re-reported on resume
    # pages that were bare page images (a scan without text layer, pdf.ocr): "used" = read by OCR, "unavailable"
    # = left unread because Tesseract's English data was missing (mined again once it is there), "off" = --ocr off;
    # None: no such pages (or a record written before the field existed)
    ocr: Literal["used", "unavailable", "off"] | None = None


# --- stage 2: panels (dataset_builders.panels) ---------------------------------------------------

class ImageCues(Record):
    """Cheap image statistics computed once, when the panel's pixels are at hand."""

    white_fraction: float  # share of near-white pixels (plots and schematics are mostly background)
    colourfulness: float  # Hasler-Suesstrunk colourfulness (plots and photos are colourful, SEM is not)
    edge_density: float  # share of strong-gradient pixels (texture)
    grey_levels: int  # distinct grey levels in a downsampled copy (line art has few)
    std: float  # grey-level standard deviation
    # share of light pixels (grey >= LIGHT_LEVEL, light grey or white): a polished/etched section under
    # bright-field light is mostly light grey; 0.0 in stage files written before the field existed
    light_fraction: float = 0.0


class PanelRecord(Record):
    panel_id: str  # "<figure_id>-<letter>" or "<figure_id>-whole"
    figure_id: str
    paper_id: str
    source_pdf: str
    page: int
    letter: str | None = None
    image: str
    width: int
    height: int
    split_method: Literal["single", "parts", "gutter", "layout", "seam", "whole_unsure"]
    split_note: str = ""  # why a split was or was not made
    name: str | None = None  # a panel named otherwise than by a letter: "ii", "left", "top right"
    box: tuple[int, int, int, int] | None = None  # the panel in the mined figure image, pixels (x0, y0, x1, y1)
    page_box: Box | None = None  # the same on the PDF page, points (None when the figure has no page box)
    caption: str = ""  # this panel's own part of the caption (falls back to the whole caption)
    figure_caption: str = ""
    figure_number: FigureNumber | None = None
    excerpts: list[str] = Field(default_factory=list)  # excerpt texts citing this panel or the whole figure
    context: str = ""  # uncaptioned figure in a document without captions: the text printed next to it
    phash: str  # perceptual hash, hex
    cues: ImageCues


class PaperPanels(SourceMeta):
    """stages/panels/<paper_id>.json (title, DOI, licence ... copied from the PaperRecord)"""

    paper_id: str
    source_pdf: str
    panels: list[PanelRecord]
    problems: list["Problem"] = Field(default_factory=list)  # re-reported when a resumed run skips the paper


# --- stage 3: filter (dataset_builders.filter) ------------------------------------------

class FilterDecision(Record):
    panel_id: str
    keep: bool
    score: float  # > 0 leans fracture surface
    reasons: list[str]  # every piece of evidence that moved the score, e.g. "caption:+fractograph"


# --- stage 4: dedup (dataset_builders.dedup) -----------------------------------------------------

class DuplicateGroup(Record):
    group_id: str  # the representative's panel id
    representative: str  # panel id kept as the item
    members: list[str]  # all panel ids (representative first)
    paper_ids: list[str]  # every paper the image appears in


# --- stage 5/6: label + manual (dataset_builders.labelling.caption_rules, dataset_builders.manual) -------

LabelOrigin = str  # "caption_rules" | "manual" | "model:<name>"


class LabelRecord(Record):
    item_id: str  # panel id (mined) or "manual-<hash>" (manual)
    features: list[str]  # canonical names, vocabulary order
    origin: LabelOrigin
    evidence: dict[str, str] = Field(default_factory=dict)  # feature -> text that supports it
    negated: list[str] = Field(default_factory=list)  # features mentioned but negated
    uncertain: list[str] = Field(default_factory=list)  # features only hedged ("possibly", "-like"): no label
    prompt_version: str | None = None  # for model labels
    status: Literal["labelled", "no_features", "failed"] = "labelled"
    detail: str = ""


class Item(Record):
    """A labelled image ready to be split: the unit of the dataset."""

    item_id: str
    image: str
    width: int
    height: int
    phash: str
    paper_ids: list[str]  # source papers (several if the image was reprinted); manual: ["manual:<source>"]
    features: list[str]
    label_origin: LabelOrigin
    # source_pdf, page, figure, panel, panel_box (pixels), panel_page_box (points), ...
    provenance: dict[str, str | int | list[int] | list[float] | None] = Field(default_factory=dict)


# --- stage 7: split (dataset_builders.split) ----------------------------------------------------

class SplitAssignment(Record):
    item_id: str
    split: Split
    group: str  # the paper group that decided the split


# --- stage 8: augment (dataset_builders.augment) -------------------------------------------------

class AugmentedImage(Record):
    item_id: str  # "<original item id>-rot<angle>" (or with an oversampling suffix)
    original_id: str
    image: str
    angle: float
    kind: Literal["rotation", "oversample"]


# --- every stage ---------------------------------------------------------------------------------

class StageResult(Record):
    """What a stage's run() returns: counts for the summary and the problems it met."""

    stage: str
    counts: dict[str, int] = Field(default_factory=dict)
    problems: list[Problem] = Field(default_factory=list)
