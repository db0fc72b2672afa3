"""The instruction prompt and the answer format: one text for training data and for evaluation.

The fine-tuned model must be tested on the question it was trained on, so the ShareGPT export, the
LLM labellers and the eval harness all take the prompt and the answer format from this module.
Changing either is a visible change: bump PROMPT_VERSION (a snapshot test guards the text).

Usage:
    from fracto_core.answer_format import instruction_prompt, format_answer, parse_answer
    format_answer(["fatigue striations"])   # '{"features": ["fatigue striations"]}'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from fracto_core.vocabulary import canonical_names, canonicalize, sort_features

PROMPT_VERSION = "fracto-prompt-v1"


def instruction_prompt() -> str:
    """The user-turn text that follows the image."""
    labels = "; ".join(canonical_names())
    return (
        "You are an expert in fractography. Identify every fracture-surface morphology feature visible "
        "in this image. Use only these labels: "
        f"{labels}. "
        'Answer with JSON only, in the form {"features": ["label", ...]}; '
        'use {"features": []} if none is visible.'
    )


def format_answer(features: list[str] | set[str]) -> str:
    """The assistant-turn text for a set of canonical features (vocabulary order, compact JSON)."""
    return json.dumps({"features": sort_features(features)}, ensure_ascii=False)


def answer_json_schema() -> dict:
    """JSON schema of the answer format, for structured output (`response_format` json_schema).

    Replies are still parsed with parse_answer (backends enforce schemas unevenly; the raw text is kept).
    """
    return {"type": "object",
            "properties": {"features": {"type": "array", "items": {"type": "string", "enum": canonical_names()}}},
            "required": ["features"], "additionalProperties": False}


ParseStatus = Literal["ok", "mapped", "off_vocabulary", "unparseable"]


@dataclass(frozen=True)
class ParsedAnswer:
    """A reply read feature by feature.

    status: ok (answer format, canonical names), mapped (synonyms mapped to canonical names),
    off_vocabulary (answer format, but some names are outside the vocabulary: `features` holds the names
    that are in it, `unknown` the others -- for scoring, each unknown name is a wrong feature), or
    unparseable (no answer in the format: empty, not JSON, cut off, no "features" list; no features).
    """

    features: tuple[str, ...]
    status: ParseStatus
    unknown: tuple[str, ...] = ()  # names outside the vocabulary, once each, in reply order
    detail: str = ""


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_answer(text: str) -> ParsedAnswer:
    """Parse a reply in the answer format, name by name. Never guesses a name.

    Accepts the JSON object alone or wrapped in prose/code fences; names are mapped through the
    vocabulary's synonyms (status 'mapped'); names outside the vocabulary are kept apart in `unknown`
    (status 'off_vocabulary') while the others still count. Anything without a "features" list of the
    answer format is 'unparseable' and names no feature.
    """
    match = _JSON_OBJECT.search(text or "")
    if not match:
        return ParsedAnswer((), "unparseable", detail="empty reply" if not (text or "").strip()
                            else "no JSON object in the reply")
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        return ParsedAnswer((), "unparseable", detail=f"invalid JSON: {exc.msg}")
    if not isinstance(obj, dict) or not isinstance(obj.get("features"), list):
        return ParsedAnswer((), "unparseable", detail='no "features" list in the JSON object')
    names: list[str] = []
    unknown: list[str] = []
    mapped = False
    for raw in obj["features"]:
        name = canonicalize(raw) if isinstance(raw, str) else None
        if name is None:
            shown = raw.strip() if isinstance(raw, str) else json.dumps(raw)
            if shown.lower() not in {u.lower() for u in unknown}:
                unknown.append(shown)
        else:
            mapped = mapped or name != raw
            names.append(name)
    features = tuple(sort_features(names))
    if unknown:
        return ParsedAnswer(features, "off_vocabulary", tuple(unknown),
                            detail=f"names outside the vocabulary (each a wrong feature): {unknown}")
    return ParsedAnswer(features, "mapped" if mapped else "ok")
