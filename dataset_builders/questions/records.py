"""Typed records of the Q&A stage (dataset_builders.qa): the text an image comes with, and its question-answer pairs.

stages/qa.jsonl holds one ``QAItem`` per kept item (its pairs, or why it has none); the export
(dataset_builders.questions.export) turns the pairs into the second LlamaFactory dataset and its meta files.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QAKind = Literal["features", "origin", "mechanism", "measure"]
QA_KINDS: tuple[str, ...] = ("features", "origin", "mechanism", "measure")
MIN_QUESTIONS, MAX_QUESTIONS = 2, 5

# The fixed question of each kind: the same text in the training data and at evaluation (sem_qa).
QUESTIONS: dict[str, str] = {
    "features": "Which fracture-surface morphology features are visible in this image?",
    "origin": "Where did the crack or fracture originate in this image?",
    "mechanism": "Which fracture mechanism does this surface indicate, and why?",
    "measure": "What would you measure on this fracture surface to characterise it quantitatively?",
}


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceText(Record):
    """The paper text that belongs to one item: its caption(s) and the body-text excerpts citing it.

    ``captions`` are the panels' own caption parts: for a lettered panel the builder stitches the caption's
    opening to the panel's part ("SEM fractographs of X: closely spaced striations" where the PDF has
    "SEM fractographs of X: (a) closely spaced striations; (b) ..."), which is not text of the PDF.
    ``figure_captions`` are the whole captions as printed: evidence is quoted from them and the excerpts
    only (when it is empty, the captions are taken as printed: hand-made sources and tests)."""

    item_id: str
    captions: list[str] = Field(default_factory=list)
    figure_captions: list[str] = Field(default_factory=list)
    excerpts: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)  # the item's labels (canonical)
    label_origin: str = ""

    @property
    def has_text(self) -> bool:
        return any(t.strip() for t in (*self.captions, *self.excerpts))

    @property
    def printed(self) -> list[str]:
        """The texts as printed in the paper, which evidence must quote: whole captions, then excerpts."""
        return [*(self.figure_captions or self.captions), *self.excerpts]


class QAPair(Record):
    """One question about one image, answered from the text (or refused), with the sentence(s) it rests on."""

    kind: QAKind
    question: str
    answer: str
    refused: bool = False  # the text does not support an answer; `answer` says so
    # sentences of the caption/excerpts as printed in the PDF (findable with a reader's search; empty when refused)
    sources: list[str] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)  # canonical features the answer names (kind features)


class QAItem(Record):
    """One line of stages/qa.jsonl."""

    item_id: str
    origin: str  # "templates" | "model:<name>"
    prompt_version: str
    status: Literal["ok", "no_text", "failed"] = "ok"
    detail: str = ""
    pairs: list[QAPair] = Field(default_factory=list)
    panel_captions: list[str] = Field(default_factory=list)  # the stitched panel captions (SourceText.captions)
