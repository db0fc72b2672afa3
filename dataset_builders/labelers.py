"""Labellers: who turns a deduplicated image (and its captions/excerpts) into a LabelRecord.

The label stage (``dataset_builders.label``) builds one ``LabelTask`` per dedup group and hands the whole
list to the configured labeller in one call, so a labeller decides itself how to batch, cache, retry
and account for cost; the stage only writes what comes back. Adding a labeller = one class with
``name``, ``origin``, ``prompt_version`` and ``label()``, plus ``@register("<name>")`` on its factory;
``label.py`` does not change.

The LLM labellers "openai", "gemini" and "vllm" (``llm_labeler.LLMLabeler``, one class, provider presets
in ``vlm_api.backends``) build their API client inside ``label()``, read keys from the environment at
call time, keep a response cache under ``StagePaths(config.out).stages`` keyed by the request fingerprint,
never cache failures, return failed LabelRecords (status "failed", detail) rather than raise on one bad
answer, and report call/caching/cost counts in ``LabelOutcome.counts``. Their factories raise
LabelerUnavailableError when they cannot run (no --label-model, no key, vllm without --base-url).

Usage:
    from dataset_builders.labelers import get_labeler
    labeler = get_labeler("caption_rules", config)
    outcome = labeler.label(tasks, progress=False)   # outcome.records: one LabelRecord per task
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from tqdm import tqdm

from dataset_builders.caption_labeler import ORIGIN as CAPTION_RULES_ORIGIN
from dataset_builders.caption_labeler import label_panel
from dataset_builders.config import BuildConfig
from dataset_builders.records import LabelRecord, PanelRecord, Problem
from dataset_builders.vocabulary import sort_features


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
    prompt_version: str | None  # label_schema.LABEL_PROMPT_VERSION for model labellers, None for rules

    def label(self, tasks: Sequence[LabelTask], progress: bool = True) -> LabelOutcome:
        """Label every task; never raise for one bad item (return a status="failed" record instead)."""
        ...


class UnknownLabelerError(ValueError):
    """--labeler names no registered labeller."""


class LabelerUnavailableError(RuntimeError):
    """--labeler names a labeller that is registered but cannot run (not shipped yet, missing key, ...)."""


LabelerFactory = Callable[[BuildConfig], Labeler]
_REGISTRY: dict[str, LabelerFactory] = {}


def register(name: str) -> Callable[[LabelerFactory], LabelerFactory]:
    """Decorator: make ``factory(config) -> Labeler`` available as --labeler <name>."""

    def add(factory: LabelerFactory) -> LabelerFactory:
        _REGISTRY[name] = factory
        return factory

    return add


def labeler_names() -> list[str]:
    """Every registered labeller name, sorted."""
    return sorted(_REGISTRY)


def get_labeler(name: str, config: BuildConfig) -> Labeler:
    """The labeller registered as ``name``, built for ``config``.

    Raises UnknownLabelerError (a ValueError) listing the valid names, or LabelerUnavailableError (a
    RuntimeError) when the labeller exists but cannot run here.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UnknownLabelerError(f"unknown labeller {name!r}; valid: {', '.join(labeler_names())}") from None
    return factory(config)


# --- caption rules ---------------------------------------------------------------------------------

class CaptionRulesLabeler:
    """Offline labels from captions and citing text (``caption_labeler.label_panel``).

    A dedup group is one image printed in one or more places, so its label is the union over all its
    panels' caption labels: features asserted by any member's caption or excerpts, each member's own
    caption negation applying to that member's text only. Evidence comes from the representative first;
    evidence from another member names that panel.
    """

    name = "caption_rules"
    origin = CAPTION_RULES_ORIGIN
    prompt_version: str | None = None

    def label(self, tasks: Sequence[LabelTask], progress: bool = True) -> LabelOutcome:
        records = [self.label_task(t) for t in tqdm(tasks, desc="label", unit="image", disable=not progress)]
        return LabelOutcome(records=records)

    def label_task(self, task: LabelTask) -> LabelRecord:
        per_panel = [label_panel(p) for p in task.panels]
        features: set[str] = set()
        negated: set[str] = set()
        evidence: dict[str, str] = {}
        for panel, record in zip(task.panels, per_panel):
            features.update(record.features)
            negated.update(record.negated)
            for feature, text in record.evidence.items():
                if feature not in evidence:
                    same = panel.panel_id == task.item_id
                    evidence[feature] = text if same else f"[{panel.panel_id}] {text}"
        negated -= features
        first = per_panel[0]
        if not features:
            return first.model_copy(update={"item_id": task.item_id, "negated": sort_features(negated)})
        ordered = sort_features(features)
        return LabelRecord(item_id=task.item_id, features=ordered, origin=self.origin,
                           evidence={f: evidence[f] for f in ordered}, negated=sort_features(negated),
                           status="labelled")


@register("caption_rules")
def _caption_rules(config: BuildConfig) -> Labeler:
    return CaptionRulesLabeler()


# --- LLM labellers (dataset_builders.llm_labeler, through the openai SDK) -------------------------

LLM_LABELERS = ("openai", "gemini", "vllm")


def _llm(name: str) -> LabelerFactory:
    def factory(config: BuildConfig) -> Labeler:
        from dataset_builders.llm_labeler import LLMLabeler  # imported on use: it imports this module

        return LLMLabeler(name, config)

    return factory


for _name in LLM_LABELERS:
    register(_name)(_llm(_name))
