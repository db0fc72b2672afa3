"""Labellers: who turns a deduplicated image (and its captions/excerpts) into a LabelRecord.

The label stage (``dataset_builders.label``) builds one ``LabelTask`` per dedup group and hands the whole
list to the configured labeller in one call, so a labeller decides itself how to batch, cache, retry
and account for cost; the stage only writes what comes back. A labeller that needs no view of the whole
list may also offer ``label_stream`` (see ``labelling.base.Labeler``): it then gets the tasks as a stream. Adding a labeller = one class with
``name``, ``origin``, ``prompt_version`` and ``label()``, plus ``@register("<name>")`` on its factory;
``label.py`` does not change.

The LLM labellers "openai", "gemini" and "vllm" (``labelling.llm.LLMLabeler``, one class, provider presets
in ``fracto_core.vlm_api.backends``) build their API client inside ``label()``, read keys from the environment at
call time, keep a response cache in ``OUT/label_cache.sqlite`` (outside stages/: --fresh keeps it) keyed by
the request fingerprint, never cache failures, return failed LabelRecords (status "failed", detail) rather than raise on one bad
answer, and report call/caching/cost counts in ``LabelOutcome.counts``. Their factories raise
LabelerUnavailableError when they cannot run (no --label-model, no key, vllm without --base-url).

Usage:
    from dataset_builders.labelling.registry import get_labeler
    labeler = get_labeler("caption_rules", config)
    outcome = labeler.label(tasks, progress=False)   # outcome.records: one LabelRecord per task
"""

from __future__ import annotations

from collections.abc import Callable

from dataset_builders.labelling.base import Labeler, LabelerUnavailableError, LabelOutcome, LabelTask, UnknownLabelerError  # noqa: F401 (re-exported)
from dataset_builders.labelling.caption_rules import CaptionRulesLabeler
from dataset_builders.config import BuildConfig


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


@register("caption_rules")
def _caption_rules(config: BuildConfig) -> Labeler:
    return CaptionRulesLabeler(workers=config.workers)


# --- LLM labellers (dataset_builders.labelling.llm, through the openai SDK) -------------------------

LLM_LABELERS = ("openai", "gemini", "vllm")


def _llm(name: str) -> LabelerFactory:
    def factory(config: BuildConfig) -> Labeler:
        from dataset_builders.labelling.llm import LLMLabeler  # imported on use: it pulls in the API client

        return LLMLabeler(name, config)

    return factory


for _name in LLM_LABELERS:
    register(_name)(_llm(_name))
