"""The multiple-choice letter parser: which option letter a reply gives as its answer (not its first capital).

A parser that takes the first capital letter of the reply scores "The answer is D" as "T" (the DoITPoMS
CLIP + VLM study did). This one reads, in order of trust, and stops at the first tier that names a letter:

  1. the whole reply is a letter: "B", "b", "(b)", "B.", "[C]", "D)"
  2. an answer phrase: "The answer is D", "Answer: C) Ceramic", "correct option is (b)", "I choose B",
     "I think it is B, not C", "it's option E"
  3. a marked letter at the start of a line: "B) optical microscopy", "(C) TEM", "C. TEM"
  4. a stand-alone capital letter word that is a valid choice ("B seems right"), where "A" and "I" count
     only when marked ("(A)", "A)", "A." ...), because as words they are the article and the pronoun.

Letters that the reply rejects ("not C", "rather than C", "instead of C", "isn't C", "excluding C") are
dropped. A tier naming two different letters is ambiguous: no answer (the caller scores it as wrong,
never as a guess). Lower-case letters count only when marked or alone ("the answer is a SEM image" has no
letter), except right after an explicit "answer:".

Usage:
    from eval.letters import read_letter
    read_letter("I think it is B, not C", "ABCDEF")     # LetterRead(letter='B', tier='answer phrase', ...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN, _CLOSE = r"[\(\[]", r"[\)\]]"
_BARE = re.compile(rf"\s*{_OPEN}?\s*([A-Za-z])\s*(?:{_CLOSE}|[.:])?\s*")
# "answer is D", "answer: (c)", "correct option is b)", "choice - B"
_TRAIL = r"(\s*[\)\].:,;!]|\s*$)?(?![A-Za-z0-9])"
_ANSWER = re.compile(
    rf"\b(?:answer|(?:correct|right|best)\s+(?:option|choice|letter))\s*(?:would\s+be|should\s+be|is|=|:|-)?\s*"
    rf"(?:option\s+|choice\s+)?(?:({_OPEN})\s*([A-Za-z])\s*{_CLOSE}|([A-Za-z]){_TRAIL})", re.IGNORECASE)
# "it is B", "it's (b)", "I choose B", "I pick option C", "I'd say D", "I would go with E"
_VERB = re.compile(
    rf"\b(?:it\s+is|it's|it\s+would\s+be|choose|pick|select|go\s+with|say)\s+(?:option\s+|choice\s+)?"
    rf"(?:({_OPEN})\s*([A-Za-z])\s*{_CLOSE}|([A-Za-z]){_TRAIL})", re.IGNORECASE)
_LINE_START = re.compile(rf"(?m)^\s*(?:{_OPEN}([A-Za-z]){_CLOSE}|([A-Z])[\).:])(?=\s|$)")
_WORD = re.compile(rf"(?<![A-Za-z0-9'’\-])(?:{_OPEN}([A-Za-z]){_CLOSE}|([A-Z])(?![A-Za-z0-9'’\-]))(\s*[\).:])?")
_NEGATION = re.compile(rf"\b(?:not|rather\s+than|instead\s+of|isn't|is\s+not|excluding|except|but\s+not)\s+"
                       rf"(?:option\s+|choice\s+)?{_OPEN}?([A-Za-z]){_CLOSE}?(?![A-Za-z])", re.IGNORECASE)


@dataclass(frozen=True)
class LetterRead:
    """The letter a reply answers with (None: none or ambiguous), the tier that found it, and why."""

    letter: str | None
    tier: str
    detail: str = ""
    candidates: tuple[str, ...] = ()


def _case_ok(letter: str, marked: bool, after_answer: bool) -> bool:
    """Lower-case letters only when marked or after an explicit 'answer'; 'A'/'I' words only when marked."""
    if letter.islower():
        return marked or after_answer
    return marked or after_answer or letter not in "AI"


def _decide(found: list[str], rejected: set[str], valid: str, tier: str) -> LetterRead | None:
    letters = [x for x in dict.fromkeys(found) if x in valid and x not in rejected]
    out_of_range = [x for x in dict.fromkeys(found) if x not in valid]
    if len(letters) == 1:
        return LetterRead(letters[0], tier, candidates=tuple(letters))
    if len(letters) > 1:
        return LetterRead(None, tier, f"several letters as the answer: {', '.join(letters)}", tuple(letters))
    if out_of_range and tier in ("whole reply", "answer phrase"):
        return LetterRead(None, tier, f"letter {out_of_range[0]} is not one of {', '.join(valid)}",
                          tuple(out_of_range))
    return None


def read_letter(text: str, valid: str) -> LetterRead:
    """The option letter (upper case, one of `valid`) the reply gives as its answer; see the module docstring."""
    raw = re.sub(r"[*`_]", "", text or "").strip()  # markdown emphasis: "**B**"
    if not raw:
        return LetterRead(None, "none", "empty reply")
    bare = _BARE.fullmatch(raw)
    if bare:
        got = _decide([bare.group(1).upper()], set(), valid, "whole reply")
        if got is not None:
            return got
    rejected = {m.group(1).upper() for m in _NEGATION.finditer(raw)
                if m.group(1).isupper() or "(" in m.group(0) or "[" in m.group(0)}
    for tier, pattern, after_answer in (("answer phrase", _ANSWER, True), ("answer phrase", _VERB, False)):
        found = []
        for m in pattern.finditer(raw):
            letter = m.group(2) or m.group(3)
            marked = m.group(1) is not None or m.group(4) is not None  # "(b)", "b)", "b." or the end
            if _case_ok(letter, marked, after_answer and letter.isupper()):
                found.append(letter.upper())
        got = _decide(found, rejected, valid, tier)
        if got is not None:
            return got
    found = [(m.group(1) or m.group(2)).upper() for m in _LINE_START.finditer(raw)]
    got = _decide(found, rejected, valid, "marked letter")
    if got is not None:
        return got
    found = []
    for m in _WORD.finditer(raw):
        letter, marked = m.group(1) or m.group(2), bool(m.group(1) or m.group(3))
        if _case_ok(letter, marked, False):
            found.append(letter.upper())
    got = _decide(found, rejected, valid, "letter word")
    return got if got is not None else LetterRead(None, "none", "no option letter in the reply")
