"""The one phrase matcher: finds the vocabulary's phrases (canonical names and synonyms) in free text.

Holds `PhraseMatcher`: compiled once from a phrase -> name mapping, it finds phrases left to right,
non-overlapping, the longest phrase at each position ("quasi-cleavage" is not also "cleavage",
"lack-of-fusion pores" is not also "pores"). The regex is a word trie whose alternations put the longest
word first, with a greedy optional continuation where a phrase may end: the same matches as a flat
longest-first alternation, ~2x faster. Two spelling rules:

* ``loose`` (feature mentions, hence the caption-rule labeller): any case; the words of a phrase may be
  joined by any run of spaces or dashes ("fish eye", "Fish–Eye", "fish - eye" all read "fish eye"); a
  phrase does not touch a letter or digit on either side.
* ``exact`` (the filter stage's evidence): the text is first put through `normalize_text` (lower case,
  dashes unified to "-", whitespace collapsed); a phrase matches as spelled, hyphens included, and does
  not touch a letter, digit or hyphen ("pore-free" names no pore here).

Label look-up (one label -> its canonical name) is `vocabulary.canonicalize`, not this.

Usage:
    from fracto_core.phrases import vocabulary_matcher
    [(m.name, m.text) for m in vocabulary_matcher("loose").finditer("No fish–eye, but dimples.")]
    # [('fish-eye', 'fish–eye'), ('equiaxed dimples', 'dimples')]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from fracto_core.vocabulary import phrase_index

Spelling = Literal["loose", "exact"]

DASH_CHARS = "\\-\u2010\u2011\u2012\u2013\u2014\u2212"  # regex class body: hyphen(s), figure/en/em dash, minus
_LOOSE_SEP = rf"(?:\s*[{DASH_CHARS}]\s*|\s+)"  # between the words of a phrase: space or any dash
_SPLIT_WORDS = re.compile(rf"[\s{DASH_CHARS}]+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})  # typographic apostrophes: "Lignes d’arrêt"
# contrasting conjunctions, which end a negation's reach ("no striations but beach marks" names beach marks): a
# regex alternative to split clauses at, beside punctuation (eval/qa_metrics.py spells the same words)
CONTRAST_WORDS = r"\b(?:but|whereas|while|although|though|however|yet)\b"


def unify_text(text: str) -> str:
    """NFC (a decomposed "e" + U+0300 reads as "è") and typographic apostrophes as "'". Within NFC text the
    positions do not change (one apostrophe for another)."""
    return unicodedata.normalize("NFC", text).translate(_APOSTROPHES)


def normalize_text(text: str) -> str:
    """Lower case, dashes unified to '-', whitespace collapsed (the ``exact`` rule's text and phrases), as
    `unify_text`."""
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", unify_text(text).lower())
    return " ".join(text.split())


def loose_key(phrase: str) -> str:
    """Lower case, every run of spaces/dashes as one space: 'Fish–Eye' -> 'fish eye'; as `unify_text`."""
    return " ".join(w for w in _SPLIT_WORDS.split(unify_text(phrase).lower()) if w)


@dataclass(frozen=True)
class PhraseMatch:
    """One phrase found in a text."""

    name: str  # the name the phrase maps to (for the vocabulary: the canonical feature name)
    text: str  # the matched text as it stands in the searched string
    start: int
    end: int


class PhraseMatcher:
    """Every phrase of ``phrases`` (phrase -> name) in a text, under one spelling rule."""

    def __init__(self, phrases: Mapping[str, str], spelling: Spelling):
        if spelling not in ("loose", "exact"):
            raise ValueError(f"unknown spelling rule {spelling!r}; valid: loose, exact")
        self.spelling = spelling
        self._key = loose_key if spelling == "loose" else normalize_text
        self._names: dict[str, str] = {}
        for phrase, name in phrases.items():
            key = self._key(phrase)
            if self._names.get(key, name) != name:
                raise ValueError(f"phrase {phrase!r} and another phrase of {self._names[key]!r} read the same")
            self._names[key] = name
        trie: dict = {}
        for key in self._names:
            node = trie
            for word in key.split(" "):
                node = node.setdefault(word, {})
            node[""] = {}  # a phrase ends here
        if spelling == "loose":
            self.pattern = re.compile(rf"(?<!\w){_trie_pattern(trie, _LOOSE_SEP)}(?!\w)", re.IGNORECASE)
        else:
            self.pattern = re.compile(rf"(?<![\w-]){_trie_pattern(trie, ' ')}(?![\w-])")

    def prepare(self, text: str) -> str:
        """The text as the matcher searches it (``exact``: normalized; ``loose``: `unify_text`)."""
        return normalize_text(text) if self.spelling == "exact" else unify_text(text)

    def finditer(self, text: str) -> Iterator[PhraseMatch]:
        """Phrases in ``text`` as prepared (positions index `prepare(text)`), left to right."""
        for m in self.pattern.finditer(self.prepare(text)):
            yield PhraseMatch(self._names[self._key(m.group(0))], m.group(0), m.start(), m.end())


def _trie_pattern(node: dict, sep: str) -> str:
    """One alternation per trie level, longest word first, with a greedy optional continuation where a
    phrase may end: at any position the regex takes the longest phrase (and backtracks to a shorter one
    only when the longer cannot match)."""
    branches = []
    for word in sorted((w for w in node if w), key=lambda w: (-len(w), w)):
        child = node[word]
        rest = _trie_pattern(child, sep)
        if not rest:
            branches.append(re.escape(word))
        elif "" in child:
            branches.append(f"{re.escape(word)}(?:{sep}{rest})?")
        else:
            branches.append(f"{re.escape(word)}{sep}{rest}")
    return f"(?:{'|'.join(branches)})" if branches else ""


@lru_cache(maxsize=2)
def vocabulary_matcher(spelling: Spelling) -> PhraseMatcher:
    """The matcher of every vocabulary phrase (canonical names and synonyms), built once per rule."""
    return PhraseMatcher(phrase_index(), spelling)
