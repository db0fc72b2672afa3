"""Failure mechanism from features: the rule-based reasoner, the reasoning-model prompt, and hybrid model names.

The reference paper (arXiv 2605.07145) pairs the fine-tuned specialist (which features are visible) with a
general reasoning model (which failure mechanism they point to). `--model hybrid:<specialist>+<reasoner>`:

  specialist  any eval.models name (the fracture_morphology prompt, as trained), or `truth` for the
              benchmark's own feature labels (an oracle: isolates the reasoner's share of the error)
  reasoner    any eval.models name (text only: the features, plus the caption / excerpts at context levels
              above none), or `rules` for the offline baseline below

The mechanism list is eval.tasks.MECHANISMS (ductile overload, brittle overload, fatigue, very-high-cycle
fatigue, intergranular embrittlement, creep, stress-corrosion cracking, hydrogen embrittlement,
defect-initiated, undetermined). The rule-based reasoner takes the first (most specific) of the
vocabulary's mechanism hints (fracto_core.vocabulary.mechanism_hints), mapped onto that list, and gives
as reasons the features that point to it; no hint gives 'undetermined'.

Usage:
    from eval.mechanism import rules_reasoner, reasoner_prompt, parse_hybrid
    rules_reasoner(["fatigue striations", "beach marks"])   # ('fatigue', ['fatigue striations -> fatigue', ...])
    parse_hybrid("hybrid:vllm:fracto-32b+openai:gpt-5.5")   # HybridName('vllm:fracto-32b', 'openai:gpt-5.5')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from fracto_core.vocabulary import feature, mechanism_hints
from eval.benchmark import BenchmarkItem
from eval.context import context_text
from eval.tasks import MECHANISMS, json_object, mechanism_answer_format

HYBRID_PREFIX = "hybrid:"
ORACLE_SPECIALIST = "truth"
RULES_REASONER = "rules"
UNDETERMINED = "undetermined"

# fracto_core.vocabulary's hint wording -> the fixed mechanism list (eval.tasks.MECHANISMS)
HINT_TO_MECHANISM = {
    "ductile overload": "ductile overload",
    "brittle overload": "brittle overload",
    "fatigue": "fatigue",
    "very-high-cycle fatigue": "very-high-cycle fatigue",
    "embrittlement": "intergranular embrittlement",
    "creep": "creep",
    "intergranular stress corrosion cracking": "stress-corrosion cracking",
    "hydrogen embrittlement": "hydrogen embrittlement",
    "defect-initiated fracture": "defect-initiated",
}
assert set(HINT_TO_MECHANISM.values()) <= {c.name for c in MECHANISMS}


class HybridNameError(ValueError):
    """A hybrid:<specialist>+<reasoner> name that cannot be split."""


@dataclass(frozen=True)
class HybridName:
    specialist: str  # an eval.models name or "truth"
    reasoner: str  # an eval.models name or "rules"


def parse_hybrid(name: str) -> HybridName:
    """Split hybrid:<specialist>+<reasoner> (at the last '+')."""
    body = name[len(HYBRID_PREFIX):] if name.startswith(HYBRID_PREFIX) else ""
    specialist, plus, reasoner = body.rpartition("+")
    if not plus or not specialist.strip() or not reasoner.strip():
        raise HybridNameError(f"--model {name!r}: expected hybrid:<specialist>+<reasoner>, e.g. "
                              f"hybrid:vllm:fracto-32b+openai:gpt-5.5, hybrid:{ORACLE_SPECIALIST}+{RULES_REASONER}")
    return HybridName(specialist.strip(), reasoner.strip())


def rules_reasoner(features: Sequence[str]) -> tuple[str, list[str]]:
    """(mechanism, reasons) from the vocabulary's mechanism hints; 'undetermined' when no feature points anywhere."""
    hints = mechanism_hints(list(features))
    if not hints:
        listed = ", ".join(features) if features else "no feature"
        return UNDETERMINED, [f"{listed}: no feature points to a mechanism"]
    mechanism = HINT_TO_MECHANISM[hints[0]]
    support = [f for f in features if hints[0] in feature(f).mechanisms]
    reasons = [f"{f} -> {mechanism}" for f in support] or [f"feature combination {', '.join(features)} -> {mechanism}"]
    others = [HINT_TO_MECHANISM[h] for h in hints[1:]]
    if others:
        reasons.append(f"also consistent with: {', '.join(others)} (less specific)")
    return mechanism, reasons


def reasoner_prompt(features: Sequence[str], item: BenchmarkItem, level: str) -> str:
    """The text-only request to a reasoning model: the specialist's features, the context, the answer format."""
    found = ", ".join(features) if features else "none of the listed features"
    return (f"{context_text(item, level)}A fractography specialist model examined an image of a fracture surface "
            f"and found these morphology features: {found}. Which failure mechanism do they point to? "
            f"{mechanism_answer_format()}")


def rules_reply(features: Sequence[str]) -> str:
    """The rule-based reasoner's answer written as a reasoning model would reply (parsed by the same parser)."""
    mechanism, reasons = rules_reasoner(features)
    return json.dumps({"mechanism": mechanism, "reasons": reasons})


def reasons_of(text: str | None) -> list[str]:
    """The 'reasons' list of a reply (empty when absent or not JSON)."""
    reasons = json_object(text).get("reasons")
    return [str(r) for r in reasons] if isinstance(reasons, list) else []
