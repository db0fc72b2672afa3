"""The LLM judge of the sem_qa task: its prompt (versioned), response schema and a strict reply parser.

The judge sees the question, the reference answer, the evidence (the paper's sentences the reference
rests on), the reference's features and the model's answer — never the image — and scores, as GlassLLaVA
(arXiv 2309.12460) did:
- quality 0-100: correct, complete and grounded in the evidence; a correct refusal (the reference
  refuses) scores high, an invented answer where the reference refuses scores low;
- feature_identification 1-4: 1 wrong or no features, 2 some right with errors, 3 mostly right,
  4 exactly the reference's features (for questions that are not about features: how well the answer's
  features agree with the evidence).

Parsing is strict: the whole reply must be one JSON object with exactly the keys ``quality`` (integer
0-100), ``feature_identification`` (integer 1-4) and ``rationale`` (string). Anything else is a
judgement failure — "refused" when the judge declined in prose, else "malformed" — counted and reported,
never repaired, clipped or replaced by a guess. JUDGE_PROMPT_VERSION is in every cache key and the run
card: change the text or the schema -> bump it (tests/test_sem_qa.py snapshots the prompt).

Usage:
    system, text = judge_prompt(question, reference, evidence, features, answer)
    verdict = parse_judgement('{"quality": 80, "feature_identification": 3, "rationale": "..."}')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

JUDGE_PROMPT_VERSION = "fracto-judge-v1"
SCHEMA_NAME = "fracto_judgement"
JudgeStatus = Literal["ok", "malformed", "refused", "failed"]  # failed: no reply at all (API error)
KEYS = {"quality", "feature_identification", "rationale"}
_REFUSAL = re.compile(r"\b(i can(not|'t|’t)|i am unable|i'm unable|i’m unable|i won'?t|sorry|"
                      r"cannot (help|assist|evaluate|comply)|unable to (help|assist|evaluate|comply))\b",
                      re.IGNORECASE)


def judge_json_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "quality": {"type": "integer", "minimum": 0, "maximum": 100},
            "feature_identification": {"type": "integer", "minimum": 1, "maximum": 4},
            "rationale": {"type": "string"},
        },
        "required": ["quality", "feature_identification", "rationale"],
        "additionalProperties": False,
    }


SYSTEM = (
    "You are a strict examiner in fractography (ASM Handbook Vol. 12). You grade a model's answer to a question "
    "about a fracture-surface image against a reference answer and the evidence from the paper the image comes "
    "from. You do not see the image: judge only by the reference and the evidence.\n"
    "Scores:\n"
    "- quality (integer 0-100): how correct, complete and grounded the answer is. Contradicting the evidence, "
    "inventing features, origins or mechanisms the evidence does not support, or answering where the reference "
    "says the text does not tell: low. A justified statement that it cannot be told, where the reference "
    "refuses too: high.\n"
    "- feature_identification (integer 1-4): 1 = wrong or no features, 2 = some right but with wrong or missing "
    "ones, 3 = mostly right, 4 = exactly the reference's features. If the question is not about features, grade "
    "how well the features the answer names agree with the reference features.\n"
    "Reply with one JSON object only: {\"quality\": <int>, \"feature_identification\": <int>, \"rationale\": "
    "\"<one sentence>\"}."
)


def judge_prompt(question: str, reference: str, evidence: list[str], features: list[str], answer: str,
                 reference_refused: bool = False) -> tuple[str, str]:
    """(system, user text) of one judgement."""
    ev = "\n".join(f"- {e}" for e in evidence) or "- (none: the paper's text does not support an answer)"
    text = (f"Question: {question}\n"
            f"Reference answer{' (a refusal)' if reference_refused else ''}: {reference}\n"
            f"Evidence from the paper:\n{ev}\n"
            f"Reference features: {', '.join(features) or '(none)'}\n"
            f"Model answer: {answer if answer.strip() else '(empty)'}")
    return SYSTEM, text


@dataclass(frozen=True)
class Judgement:
    status: JudgeStatus
    quality: int | None = None
    feature_identification: int | None = None
    rationale: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_judgement(text: str | None) -> Judgement:
    """The judge's scores, or a failure status with the reason (see the module docstring)."""
    raw = (text or "").strip()
    if not raw:
        return Judgement("malformed", detail="empty reply")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        if _REFUSAL.search(raw):
            return Judgement("refused", detail=f"judge declined: {raw[:200]}")
        return Judgement("malformed", detail=f"not JSON: {exc.msg} at char {exc.pos}")
    if not isinstance(obj, dict):
        return Judgement("malformed", detail=f"JSON {type(obj).__name__}, not an object")
    if set(obj) != KEYS:
        return Judgement("malformed", detail=f"keys {sorted(obj)}; expected {sorted(KEYS)}")
    if not _int_in(obj["quality"], 0, 100):
        return Judgement("malformed", detail=f"quality {obj['quality']!r} is not an integer 0-100")
    if not _int_in(obj["feature_identification"], 1, 4):
        return Judgement("malformed", detail=f"feature_identification {obj['feature_identification']!r} is not an "
                                             "integer 1-4")
    if not isinstance(obj["rationale"], str):
        return Judgement("malformed", detail="rationale is not a string")
    return Judgement("ok", obj["quality"], obj["feature_identification"], obj["rationale"])
