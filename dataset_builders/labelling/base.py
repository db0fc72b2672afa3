"""What every labeller shares: the task it gets, the outcome it returns, its interface and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from dataset_builders.records import LabelRecord, PanelRecord, Problem


@dataclass(frozen=True)
class LabelTask:
    """One image to label: a dedup group's representative and every panel showing the same image."""

    item_id: str  # the representative's panel id (the LabelRecord's item_id)
    panels: tuple[PanelRecord, ...]  # representative first, then the other members (reprints)
    image: Path  # absolute path of the representative's image file

    @property
    def representative(self) -> PanelRecord:
        return self.panels[0]


@dataclass
class LabelOutcome:
    """What a labeller returns: one record per task (any order), its own counts and problems."""

    records: list[LabelRecord]
    counts: dict[str, int] = field(default_factory=dict)  # e.g. api_calls, cache_hits, prompt_tokens
    problems: list[Problem] = field(default_factory=list)


@runtime_checkable
class Labeler(Protocol):
    """The interface every labeller implements."""

    name: str  # registry name, as given to --labeler
    origin: str  # LabelRecord.origin it writes: "caption_rules" or "model:<model name>"
    prompt_version: str | None  # labelling.schema.LABEL_PROMPT_VERSION for model labellers, None for rules

    def label(self, tasks: Sequence[LabelTask], progress: bool = True) -> LabelOutcome:
        """Label every task; never raise for one bad item (return a status="failed" record instead)."""
        ...

    # Optional, for labellers that need no view of the whole list (the caption rules):
    # label_stream(tasks: Iterable[LabelTask], total: int, progress: bool) -> Iterator[LabelRecord], one record
    # per task in task order, taking tasks as it goes; the label stage then streams records to its file.


class UnknownLabelerError(ValueError):
    """--labeler names no registered labeller."""


class LabelerUnavailableError(RuntimeError):
    """--labeler names a labeller that is registered but cannot run (not shipped yet, missing key, ...)."""
