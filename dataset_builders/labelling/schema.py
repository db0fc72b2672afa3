"""The LLM labelling prompt, its JSON schema (generated from the vocabulary) and reply validation.

This is the *labelling* prompt: the image plus what the paper says about it, asking for features with a
confidence and a short evidence string each. It is not the training/eval instruction prompt
(``fracto_core.answer_format``), which sees the image alone. Its version, LABEL_PROMPT_VERSION, is in every cache key
and every label record, and the dataset card lists it: change the text or the schema -> bump it
(tests/test_llm_labels.py snapshots both).

Reply shape (JSON schema ``fracto_labels``; OpenAI strict mode needs every property required and
``additionalProperties: false``; Gemini gets the same schema reduced to its subset by
``fracto_core.vlm_api.payloads.gemini_schema``):
    {"not_a_fracture_surface": false,
     "features": [{"name": "fatigue striations", "confidence": 0.9, "evidence": "fine parallel ridges"}]}

Every reply is validated here with pydantic whatever the provider promised; names are mapped through the
vocabulary's synonyms, and a reply naming anything outside the vocabulary is rejected whole (with the
raw text kept by the caller), never half-used.

Usage:
    system, text = label_prompt(panels, max_excerpts=4)
    parsed = parse_reply('{"not_a_fracture_surface": false, "features": []}')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataset_builders.records import PanelRecord
from fracto_core.vocabulary import FEATURES, canonical_names, canonicalize, sort_features

LABEL_PROMPT_VERSION = "fracto-label-v1"
SCHEMA_NAME = "fracto_labels"
EVIDENCE_MAX_CHARS = 300  # longer evidence strings are clipped (not rejected)
EXCERPT_MAX_CHARS = 600


def label_json_schema() -> dict:
    """The response schema: features as an enum of canonical names, confidence and evidence each."""
    return {
        "type": "object",
        "properties": {
            "not_a_fracture_surface": {
                "type": "boolean",
                "description": "true if the image is not a fracture surface (plot, schematic, polished "
                               "microstructure, photo of a part without a visible fracture surface)",
            },
            "features": {
                "type": "array",
                "description": "every listed feature that is visible in the image; empty if none",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "enum": canonical_names()},
                        "confidence": {"type": "number", "description": "0 to 1: how sure you are it is visible"},
                        "evidence": {"type": "string", "description": "short: what in the image (and text) shows it"},
                    },
                    "required": ["name", "confidence", "evidence"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["not_a_fracture_surface", "features"],
        "additionalProperties": False,
    }


def system_prompt() -> str:
    """The fixed part (same for every image, so providers' prompt caching can reuse it)."""
    definitions = "\n".join(f"- {f.name}: {f.definition}" for f in FEATURES)
    return (
        "You are an expert in fractography (ASM Handbook Vol. 12). You label fracture-surface micrographs "
        "(SEM or optical fractographs) from scientific papers with the morphology features they show.\n"
        "Use only these labels (exact names):\n"
        f"{definitions}\n"
        "Rules: list a feature only if it is visible in the image. The caption and the paper's text help you "
        "to recognise features, but a feature that the text names and the image does not show must be left "
        "out. Give each feature a confidence between 0 and 1 and a short evidence string. Set "
        "not_a_fracture_surface to true (and list no features) if the image is not a fracture surface.\n"
        'Answer with JSON only: {"not_a_fracture_surface": false, "features": [{"name": "<label>", '
        '"confidence": 0.9, "evidence": "<short>"}]}'
    )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def label_prompt(panels: tuple[PanelRecord, ...] | list[PanelRecord], max_excerpts: int = 4) -> tuple[str, str]:
    """(system, user text) for a dedup group: the representative first, then its reprints."""
    rep = panels[0]
    lines = ["Label the fracture-surface features visible in this image."]
    lines.append(f"Panel caption: {_clip(rep.caption or rep.figure_caption, EXCERPT_MAX_CHARS) or '(none)'}")
    if rep.figure_caption and rep.figure_caption != rep.caption:
        lines.append(f"Whole figure caption: {_clip(rep.figure_caption, EXCERPT_MAX_CHARS)}")
    excerpts: list[str] = []
    for panel in panels:
        for text in panel.excerpts:
            if text not in excerpts:
                excerpts.append(text)
    if excerpts:
        lines.append("Text of the paper citing this figure:")
        lines += [f"- {_clip(t, EXCERPT_MAX_CHARS)}" for t in excerpts[:max_excerpts]]
    if rep.context:
        lines.append(f"Text printed next to this uncaptioned figure: {_clip(rep.context, EXCERPT_MAX_CHARS)}")
    others = [p for p in panels[1:] if p.caption or p.figure_caption]
    if others:
        lines.append("The same image is also printed elsewhere with these captions:")
        lines += [f"- {_clip(p.caption or p.figure_caption, EXCERPT_MAX_CHARS)}" for p in others[:max_excerpts]]
    return system_prompt(), "\n".join(lines)


# --- validation ------------------------------------------------------------------------------------

class FeatureClaim(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    confidence: float = Field(ge=0, le=1)
    evidence: str = ""


class LabelReply(BaseModel):
    """A reply as the schema asks for it (extra keys ignored: not every provider enforces the schema)."""

    model_config = ConfigDict(extra="ignore")

    not_a_fracture_surface: bool
    features: list[FeatureClaim]


@dataclass(frozen=True)
class ParsedReply:
    """A validated reply: canonical features (vocabulary order), or an error saying why it was rejected."""

    features: tuple[str, ...] = ()
    confidence: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    not_a_fracture_surface: bool = False
    mapped: tuple[tuple[str, str], ...] = ()  # (label as written, canonical name) for synonyms
    unknown: tuple[str, ...] = ()  # labels outside the vocabulary (-> error)
    error: str = ""


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_reply(text: str) -> ParsedReply:
    """Validate a reply (a JSON object, possibly inside prose or a code fence) against LabelReply."""
    match = _JSON_OBJECT.search(text or "")
    if not match:
        return ParsedReply(error="no JSON object in the reply")
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        return ParsedReply(error=f"invalid JSON: {exc.msg} at char {exc.pos}")
    try:
        reply = LabelReply.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "reply"
        return ParsedReply(error=f"reply does not match the schema: {where}: {first['msg']} "
                                 f"({exc.error_count()} error(s))")
    confidence: dict[str, float] = {}
    evidence: dict[str, str] = {}
    mapped: list[tuple[str, str]] = []
    unknown: list[str] = []
    for claim in reply.features:
        name = canonicalize(claim.name)
        if name is None:
            unknown.append(claim.name)
            continue
        if name != claim.name:
            mapped.append((claim.name, name))
        if claim.confidence >= confidence.get(name, -1.0):
            confidence[name] = claim.confidence
            evidence[name] = _clip(claim.evidence, EVIDENCE_MAX_CHARS)
    if unknown:
        return ParsedReply(unknown=tuple(unknown), error=f"labels outside the vocabulary: {unknown}")
    if reply.not_a_fracture_surface and confidence:
        return ParsedReply(error="not_a_fracture_surface is true but features are listed")
    names = tuple(sort_features(confidence))
    return ParsedReply(features=names, confidence={n: confidence[n] for n in names},
                       evidence={n: evidence[n] for n in names}, not_a_fracture_surface=reply.not_a_fracture_surface,
                       mapped=tuple(mapped))
