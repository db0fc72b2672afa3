"""Context levels: what a model is told about an image besides the image itself (GlassLLaVA's finding).

GlassLLaVA (arXiv 2309.12460) found defect detection on SEM images of glass rising from 75 % with no
context to 95 % with rich context. Every task can run at three levels, each a separate run reported side
by side (eval.report):

  none               the image and the task prompt (what the specialist was trained on)
  caption            + the figure caption (BenchmarkItem.caption)
  caption+excerpts   + the caption and the paper's sentences citing the figure (BenchmarkItem.excerpts)

The context goes before the task prompt, in one text part after the image. An item without a caption
gets no context text at a higher level (it is counted: `coverage`), so a level never invents context.

Usage:
    from eval.context import CONTEXT_LEVELS, context_text, coverage
    context_text(item, "caption")  + task.prompt()
"""

from __future__ import annotations

from collections.abc import Sequence

from eval.benchmark import BenchmarkItem

CONTEXT_LEVELS = ("none", "caption", "caption+excerpts")
MAX_EXCERPTS = 5  # excerpts beyond these are left out (long papers cite a figure many times)


class ContextError(ValueError):
    """An unknown context level (the message lists the valid ones)."""


def check_level(level: str) -> str:
    if level not in CONTEXT_LEVELS:
        raise ContextError(f"unknown context level {level!r}; valid: {', '.join(CONTEXT_LEVELS)}")
    return level


def context_text(item: BenchmarkItem, level: str) -> str:
    """The context paragraph for one item at one level ('' at level none or when the item has none)."""
    check_level(level)
    if level == "none" or not item.caption:
        return ""
    lines = [f"Figure caption from the source paper: {item.caption.strip()}"]
    if level == "caption+excerpts" and item.excerpts:
        lines.append("Sentences of the paper that cite this figure:")
        lines += [f"- {e.strip()}" for e in item.excerpts[:MAX_EXCERPTS]]
    return "\n".join(lines) + "\n\n"


def with_context(item: BenchmarkItem, level: str, prompt: str) -> str:
    """The task prompt preceded by the item's context at this level."""
    return context_text(item, level) + prompt


def coverage(items: Sequence[BenchmarkItem], level: str) -> dict[str, int]:
    """How many items got a caption / excerpts at this level (the report shows it beside the scores)."""
    check_level(level)
    if level == "none":
        return {"items": len(items), "with_caption": 0, "with_excerpts": 0}
    return {"items": len(items), "with_caption": sum(bool(i.caption) for i in items),
            "with_excerpts": sum(bool(i.caption and i.excerpts) for i in items) if level == "caption+excerpts" else 0}
