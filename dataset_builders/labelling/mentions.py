"""Vocabulary features mentioned in free text (captions, excerpts), and whether each mention is negated.

This runs over every caption and every excerpt of a build, so all patterns are compiled once at import:
the vocabulary's phrases are found by the shared matcher (fracto_core.phrases, ``loose`` spelling: any
case, words joined by spaces or any dash, the longest phrase wins: "quasi-cleavage" is not also
"cleavage", "lack-of-fusion pores" is not also "pores"), plus small patterns here for negation cues and
clause breaks.

Negation is a small NegEx-style scope rule, tuned to how fractography captions are written:

* a *forward* cue ("no", "not", "without", "absence of", "free of", "lack of", "neither"/"nor",
  "no evidence of", "rather than", "instead of", ...) negates the first mention that follows it within a
  few words, and then every mention chained to that one by a list ("no dimples, striations or beach marks");
* a *backward* cue ("were not observed", "was not found", "are absent", ...) negates the mention just
  before it and the list that ends there ("dimples and striations were not observed");
* a "-free" suffix ("pore-free") negates the mention it is glued to.

Besides hedges ("possibly", "-like"), two kinds of mention are recorded as uncertain, never as labels:
alternatives ("a transgranular or intergranular path", "gas pores or lack-of-fusion defects": possibilities,
not what the image shows) and the features of the thing compared ("unlike the dimples of the as-built
sample", "in contrast to ..."), scoped like a forward negation cue.

A scope never crosses a clause break (sentence end, ";", ":", "but", "while", "whereas", "which", ...), and a
forward cue's scope ends at a predicate verb ("the absence of dimples *indicates* cleavage": cleavage stays
asserted). "lack of fusion" is a feature, not a negation cue.

Usage:
    from dataset_builders.labelling.mentions import find_mentions, features_in
    features_in("Dimples, but no fatigue striations were observed.")
    # ({'equiaxed dimples'}, {'fatigue striations'})
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from collections.abc import Iterable, Mapping

from fracto_core.phrases import DASH_CHARS, loose_key, unify_text, vocabulary_matcher
from fracto_core.vocabulary import ABBREVIATIONS, CO_MENTIONS, HEDGE_CUES, SENSE_EXCLUSIONS

_PHRASES = vocabulary_matcher("loose")

# --- negation cues ----------------------------------------------------------------------------------

# Forward cues. "lack of" is not a cue when "fusion" follows (the lack-of-fusion defect); "no." is the
# abbreviation of "number"; "not only" is not a negation.
_FORWARD_CUE = re.compile(
    r"(?<![\w-])(?:no\s+evidence\s+of|no\s+signs?\s+of|no\s+traces?\s+of|no\s+indications?\s+of"
    r"|(?:the\s+)?absence\s+of|free\s+of|devoid\s+of|lack\s+of(?!\s*[-\s]?\s*fusion)|lacks|lacking|lacked"
    r"|rather\s+than|instead\s+of|none\s+of|without|neither|nor|never|cannot|not(?!\s+only)|no(?!\s*\.)"
    # German, Spanish, French (the vocabulary names their commonest features): "keine Waben", "ohne Schwingstreifen",
    # "sin hoyuelos", "sans cupules", "pas de stries", "aucune strie"; "sin" only lower or title case before a
    # lower-case word: "SiN" is silicon nitride, "sin θ" a sine
    r"|kein(?:e[mnrs]?)?|ohne|(?-i:[Ss]in(?=\s+[a-záéíóúüñ]))|sans|pas\s+de|pas\s+d['\u2019]|aucune?s?)(?![\w-])",
    re.IGNORECASE,
)
# A quantity compared between the cue and the mention: "no difference in (the) dimple size", "no change of the
# striation spacing", "without any effect on the cleavage facet size" deny a difference, not the feature.
_MEASURE_NOUN = re.compile(r"(?<![\w-])(?:differences?|changes?|variations?|effects?|influences?|increases?|"
                           r"decreases?|reductions?|correlations?|dependen(?:ce|cy))\s+(?:in|of|on|between)(?![\w-])",
                           re.IGNORECASE)
# Cues after which the scope may run over a verb ("did not show dimples", "is not dominated by dimples").
_VERB_TOLERANT_CUES = frozenset({"not", "never", "cannot"})

_AUX = r"(?:is|are|was|were|be|been|being|has|have|had|could|can|did|do|does|would|will|may|might|should)"
_ADV = r"(?:also|completely|entirely|totally|largely|generally|clearly|usually|even|ever|always|readily)"
_SEEN = (r"(?:observed|found|seen|detected|visible|present|evident|apparent|identified|noticed|noted|"
         r"revealed|discernible|discernable|recogni[sz]ed|distinguishable|resolved|shown)")
_BACKWARD_CUE = re.compile(
    rf"(?<![\w-])(?:"
    rf"(?:{_AUX}\s+){{0,2}}(?:not|never|no\s+longer)\s+(?:{_ADV}\s+)?(?:be\s+|been\s+)?(?:{_ADV}\s+)?{_SEEN}"
    rf"|(?:isn|aren|wasn|weren|couldn|can|didn|don|doesn|won|hasn|haven|hadn)['\u2019]t\s+(?:be\s+|been\s+)?{_SEEN}"
    rf"|(?:{_AUX}\s+)?(?:{_ADV}\s+)?(?:absent|missing)"
    rf")(?![\w-])",
    re.IGNORECASE,
)
_FREE_SUFFIX = re.compile(rf"\s*[{DASH_CHARS}]?\s*free(?![\w-])", re.IGNORECASE)

# --- clause structure -------------------------------------------------------------------------------

# Words that open a new clause: a negation never reaches across them.
_HARD_WORDS = (
    "but while whilst whereas although though however yet which that where when whose because since unlike "
    "except thus hence therefore whereby then with within indicating suggesting implying confirming showing "
    "revealing exhibiting demonstrating"
).split()
_HARD = re.compile(
    r"[;:]"  # sentence ends are added from _SENTENCE_END (full stops after "Fig", "e.g" are none)
    rf"|(?<!\w)(?:{'|'.join(_HARD_WORDS)}|instead(?!\s+of)|rather(?!\s+than))(?!\w)",
    re.IGNORECASE,
)
# A word before a full stop that makes it no sentence end: "Fig.", "e.g.", "et al.", an initial "J.". A lower-case
# single letter is a panel letter ("in Fig. 2b. Cleavage ..."), so it does end the sentence.
_ABBREVIATION_BEFORE_DOT = re.compile(
    r"(?<![\w.])(?:(?i:figs?|abb|eqs?|refs?|e\.g|i\.e|al|vs|approx|ca|cf|no|nos|resp|viz)|[A-Z])$")
_SENTENCE_END = re.compile(r"[.!?](?=[\"'\u201d)\]]*(?:\s+[A-Z(\[]|\s*$))")


def _is_abbreviation(text: str, dot: int) -> bool:
    return text[dot] == "." and bool(_ABBREVIATION_BEFORE_DOT.search(text[max(0, dot - 10): dot]))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, without the surrounding space; "Fig. 2" does not end one."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        if _is_abbreviation(text, m.start()):
            continue
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        stripped = text[a:b]
        if stripped.strip():
            a += len(stripped) - len(stripped.lstrip())
            b -= len(stripped) - len(stripped.rstrip())
            out.append((a, b))
    return out


# Predicate verbs: they end a forward cue's reach ("the absence of dimples indicates cleavage").
_VERBS = frozenset((
    "is are was were be been being has have had can could may might will would should must "
    "indicates indicate indicated shows show showed shown reveals reveal revealed exhibits exhibit exhibited "
    "displays display displayed confirms confirm confirmed demonstrates demonstrate demonstrated implies imply "
    "implied dominates dominate dominated appears appear appeared seems seem seemed contains contain contained "
    "covers cover covered consists consist occurs occur occurred forms form formed suggests suggest suggested "
    "points point presents present presented characterizes characterize characterises characterise "
    "characterized characterised observed found seen detected prevails prevail prevailed"
).split())
# Words allowed between two mentions of one negated list ("no dimples, striations or any clear beach marks").
_LIST_CONNECTORS = frozenset("or and nor".split())
_LIST_FILLERS = frozenset((
    "any other also even either neither no not the a an of some fine small large clear clearly obvious typical "
    "visible distinct ductile brittle fatigue numerous many few shallow deep significant evident apparent "
    "characteristic pronounced noticeable faint well defined similar as"
).split())
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")

_FORWARD_WINDOW = 4  # words allowed between a forward cue and the first mention it negates
_BACKWARD_WINDOW = 3  # words allowed between the last negated mention and a backward cue
_LIST_WINDOW = 2  # filler words allowed between two mentions of one list


@dataclass(frozen=True)
class Mention:
    """One vocabulary phrase found in a text."""

    feature: str  # canonical name
    phrase: str  # the text as written ("Fish-eye")
    start: int
    end: int
    negated: bool = False
    uncertain: bool = False  # hedged or compared ("possibly", "-like", "resembling"): not a label


class _Clauses:
    """Clause-break positions of one text, for quick 'is there a break between a and b' questions."""

    def __init__(self, text: str):
        self.text = text
        ends = [m.start() for m in _SENTENCE_END.finditer(text) if not _is_abbreviation(text, m.start())]
        self.breaks: list[int] = sorted(ends + [m.start() for m in _HARD.finditer(text)])

    def broken(self, a: int, b: int) -> bool:
        i = bisect.bisect_left(self.breaks, a)
        return i < len(self.breaks) and self.breaks[i] < b

    def last_break_before(self, pos: int) -> int:
        i = bisect.bisect_left(self.breaks, pos)
        return self.breaks[i - 1] if i else 0


def _cue_reach_ok(text: str, clauses: _Clauses, a: int, b: int, window: int, allow_verbs: bool) -> bool:
    """Can a cue at one end of text[a:b] reach a mention at the other end?"""
    gap = text[a:b]
    if "," in gap or clauses.broken(a, b):
        return False
    words = [w.lower() for w in _WORD.findall(gap)]
    if len(words) > window:
        return False
    return allow_verbs or not any(w in _VERBS for w in words)


def _list_link(text: str, clauses: _Clauses, a: int, b: int) -> str | None:
    """How two mentions separated by text[a:b] form a list: 'word' (or/and/nor), 'comma', or None."""
    gap = text[a:b]
    if clauses.broken(a, b):
        return None
    words = [w.lower() for w in _WORD.findall(gap)]
    connectors = [w for w in words if w in _LIST_CONNECTORS]
    others = [w for w in words if w not in _LIST_CONNECTORS]
    if any(w not in _LIST_FILLERS for w in others) or len(others) > _LIST_WINDOW:
        return None
    if connectors or "/" in gap or "&" in gap:
        return "word"
    return "comma" if "," in gap else None


def _forward_scope(text: str, clauses: _Clauses, mentions: list[Mention], cue: re.Match[str]) -> list[int]:
    """Indexes of the mentions a forward cue negates."""
    first = next((i for i, m in enumerate(mentions) if m.start >= cue.end()), None)
    if first is None:
        return []
    if _MEASURE_NOUN.search(text, cue.end(), mentions[first].start):
        return []  # "no significant difference in dimple size": the cue denies a change, not the feature
    cue_word = " ".join(cue.group(0).lower().split())
    if not _cue_reach_ok(text, clauses, cue.end(), mentions[first].start, _FORWARD_WINDOW,
                         allow_verbs=cue_word in _VERB_TOLERANT_CUES):
        return []
    chain, links = [first], []
    for i in range(first + 1, len(mentions)):
        link = _list_link(text, clauses, mentions[i - 1].end, mentions[i].start)
        if link is None:
            break
        chain.append(i)
        links.append(link)
    # "no dimples, cleavage facets dominate": a list joined by commas only is no list; keep up to the
    # last member joined by or/and/nor ("no dimples, striations or beach marks").
    last_word = max((k for k, link in enumerate(links) if link == "word"), default=-1)
    return chain[: last_word + 2]


def _backward_scope(text: str, clauses: _Clauses, mentions: list[Mention], cue: re.Match[str]) -> list[int]:
    """Indexes of the mentions a backward cue ("were not observed") negates."""
    last = next((i for i in range(len(mentions) - 1, -1, -1) if mentions[i].end <= cue.start()), None)
    if last is None:
        return []
    if not _cue_reach_ok(text, clauses, mentions[last].end, cue.start(), _BACKWARD_WINDOW, allow_verbs=False):
        return []
    chain, links = [last], []
    for i in range(last - 1, -1, -1):
        link = _list_link(text, clauses, mentions[i].end, mentions[i + 1].start)
        if link is None:
            break
        # "The surface shows dimples and striations were not observed": dimples is the object of another
        # verb, so the list that the cue negates starts after it.
        left = text[clauses.last_break_before(mentions[i].start): mentions[i].start]
        if any(w.lower() in _VERBS for w in _WORD.findall(left)):
            break
        chain.append(i)
        links.append(link)
    # "dimples, striations and beach marks were not observed": read backwards, the or/and/nor comes first
    # and the commas before it continue the list; commas alone make no list ("X dominates, Y is absent").
    return chain if "word" in links else chain[:1]


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


# --- abbreviations, word senses, hedges ------------------------------------------------------------------

_ABBREV_DEF = re.compile(r"[\"'\u201d\u2019]?\s*\(\s*([A-Z][A-Za-z]{0,4}[A-Z])\s*\)")
_ANY_DEF = re.compile(r"((?:[A-Za-z][\w-]*\s+){1,4})\(\s*([A-Z][A-Za-z]{0,4}[A-Z])\s*\)")
# "it could be seen / may be observed that ..." reports what the image shows (past or general "can"), no hedge:
# a modal "be" cue followed by a verb of seeing is not one
_SEEING = r"\s+(?:clearly\s+|also\s+|readily\s+|easily\s+)?(?:seen|observed|noticed|found|identified|detected|" \
          r"distinguished|recogni[sz]ed|visible|noted)\b"
_HEDGE_BEFORE = re.compile(r"(?<![\w-])(?:" + "|".join(sorted((re.escape(c).replace("\\ ", r"\s+") for c in HEDGE_CUES),
                                                               key=len, reverse=True))
                           + rf")(?![\w-])(?<!\bbe)|(?<![\w-])(?:may|might|could)\s+be(?!{_SEEING})(?![\w-])",
                           re.IGNORECASE)
_LIKE_AFTER = re.compile(r"[\"'\u201d\u2019)]*\s*(?:\(\s*[A-Z][A-Za-z]{0,4}[A-Z]\s*\)\s*)?(?:-|\s)like(?!\w)", re.IGNORECASE)
_HEDGE_BREAK = re.compile(r"[;:]|(?<!\w)(?:but|while|whereas|although|however)(?!\w)", re.IGNORECASE)
_HEDGE_WINDOW = 5  # words allowed between a hedge cue and the mention it qualifies
_CO_MENTIONS = [(feature, re.compile(pattern, re.IGNORECASE)) for feature, pattern in CO_MENTIONS]
_SENSES = [(s.feature, frozenset(loose_key(p) for p in s.phrases), re.compile(s.context, re.IGNORECASE))
           for s in SENSE_EXCLUSIONS]


def defined_abbreviations(texts: Iterable[str]) -> dict[str, str | None]:
    """Abbreviations a paper introduces: "quasi-cleavage (QC)" -> {"QC": "quasi-cleavage"}.

    A definition with another meaning ("inert gas (IG)": the initials spell it) maps to None, which
    switches the built-in reading of that abbreviation off for these texts.
    """
    out: dict[str, str | None] = {}
    for text in texts:
        for m in _PHRASES.finditer(text):
            d = _ABBREV_DEF.match(text, m.end)
            if d:
                out[d.group(1)] = m.name
        for d in _ANY_DEF.finditer(text):
            abbr, words = d.group(2), d.group(1).split()
            if abbr in out or abbr not in ABBREVIATIONS:
                continue
            initials = "".join(w[0] for w in words[-len(abbr):]).upper()
            if initials == abbr.upper() and not _PHRASES.pattern.search(d.group(1)):
                out[abbr] = None
    return out


def _abbreviation_pattern(table: Mapping[str, str]) -> re.Pattern[str] | None:
    if not table:
        return None
    names = "|".join(sorted(map(re.escape, table), key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{names})(?![\w])")


_BUILTIN_ABBREVIATIONS = _abbreviation_pattern(ABBREVIATIONS)


def _sentence_of(spans: list[tuple[int, int]], pos: int) -> tuple[int, int]:
    return next(((a, b) for a, b in spans if a <= pos < b), (0, 0))


def _wrong_sense(text: str, sentence: tuple[int, int], feature: str, phrase: str) -> bool:
    for sense_feature, phrases, context in _SENSES:
        if sense_feature == feature and (not phrases or loose_key(phrase) in phrases):
            if context.search(text, sentence[0], sentence[1]):
                return True
    return False


def _hedged(text: str, sentence: tuple[int, int], start: int, end: int) -> bool:
    if _LIKE_AFTER.match(text, end):
        return True
    for cue in _HEDGE_BEFORE.finditer(text, sentence[0], start):
        gap = text[cue.end():start]
        if not _HEDGE_BREAK.search(gap) and len(_WORD.findall(gap)) <= _HEDGE_WINDOW:
            return True
    return False


# Alternatives: "via a transgranular or intergranular path", "at precipitates or inclusions", "either IG, MVC or
# cleavage" name possibilities, not what an image shows. A mention joined by "or" to a word or a mention of
# another feature is uncertain; synonyms joined by "or" ("beach marks or clamshell marks") stay asserted, and
# "one or more", "with or without", "and/or" lists of one feature are no alternative.
_OR_BEFORE = re.compile(r"([^\W\d_][\w-]*)\s*,?\s+(?:and/)?or\s+(?:either\s+)?(?:an?\s+|the\s+)?(?:[^\W\d_][\w-]*\s+)?$",
                        re.IGNORECASE)
_OR_AFTER = re.compile(r"\s*,?\s+(?:and/)?or\s+(?:an?\s+|the\s+)?([^\W\d_][\w-]*)", re.IGNORECASE)
# Contrasts: "unlike the dimples of the as-built sample", "in contrast to the cleavage seen at -60 C", "compared
# with the striations of Fig. 3": the features after such a cue belong to the other thing compared, not to this
# image (scope as a forward negation cue: the first mention within a few words and the list chained to it).
_CONTRAST_CUE = re.compile(
    r"(?<![\w-])(?:unlike|in\s+contrast\s+(?:to|with)|contrary\s+to|as\s+opposed\s+to|compared\s+(?:to|with)|"
    r"in\s+comparison\s+(?:to|with)|differ(?:s|ed|ent)?\s+from)(?![\w-])", re.IGNORECASE)
_NOT_ALTERNATIVE = frozenset("one two three more less with without not both other others so less".split())
_OR_REACH = 40  # characters looked at on each side of a mention for "X or"


def _alternatives(text: str, mentions: list["Mention"]) -> set[int]:
    """Indexes of mentions offered as one of several alternatives (see _OR_BEFORE)."""
    out: set[int] = set()
    for i, m in enumerate(mentions):
        before = _OR_BEFORE.search(text[max(0, m.start - _OR_REACH): m.start])
        after = _OR_AFTER.match(text, m.end)
        for hit, other in ((before, i - 1), (after, i + 1)):
            if hit is None or hit.group(1).lower() in _NOT_ALTERNATIVE:
                continue
            neighbour = mentions[other] if 0 <= other < len(mentions) else None
            hit_start = (max(0, m.start - _OR_REACH) + hit.start(1)) if hit is before else hit.start(1)
            if neighbour is not None and neighbour.start <= hit_start < neighbour.end:
                if neighbour.feature != m.feature:  # two different features offered as alternatives
                    out.update((i, other))
            else:
                out.add(i)  # a feature offered against another word ("transgranular or intergranular")
    return out


def find_mentions(text: str, abbreviations: Mapping[str, str | None] | None = None) -> list[Mention]:
    """Every vocabulary phrase and abbreviation in ``text`` (in order, non-overlapping, longest match),
    negation and hedging marked; mentions in another word sense (vocabulary.SENSE_EXCLUSIONS) are left out.

    abbreviations: the paper's own definitions (``defined_abbreviations``), layered over the vocabulary's.
    Positions index ``unify_text(text)`` (NFC, "'" for typographic apostrophes): the same as in ``text`` when
    ``text`` is NFC.
    """
    text = unify_text(text)
    found = [
        (m.start, m.end, m.text, m.name)
        for m in _PHRASES.finditer(text)
    ]
    table: Mapping[str, str | None] = ABBREVIATIONS
    pattern = _BUILTIN_ABBREVIATIONS
    if abbreviations:
        table = {**ABBREVIATIONS, **abbreviations}
        pattern = _abbreviation_pattern({k: v for k, v in table.items() if v})
    for feature, co in _CO_MENTIONS:  # "the mirror ... the mist/hackle part"
        taken = [(a, b) for a, b, _, _ in found]
        found += [(m.start(), m.end(), m.group(0), feature) for m in co.finditer(text)
                  if not _overlaps(m.start(), m.end(), taken)]
    if pattern is not None:
        taken = [(a, b) for a, b, _, _ in found]
        for m in pattern.finditer(text):
            if table.get(m.group(0)) and not _overlaps(m.start(), m.end(), taken):
                found.append((m.start(), m.end(), m.group(0), table[m.group(0)]))
    found.sort()
    sentences = sentence_spans(text)
    found = [f for f in found if not _wrong_sense(text, _sentence_of(sentences, f[0]), f[3], f[2])]
    if not found:
        return []
    mentions = [Mention(feature, phrase, start, end) for start, end, phrase, feature in found]
    spans = [(m.start, m.end) for m in mentions]
    clauses = _Clauses(text)
    negated: set[int] = set()

    backward = [c for c in _BACKWARD_CUE.finditer(text) if not _overlaps(c.start(), c.end(), spans)]
    backward_spans = [(c.start(), c.end()) for c in backward]
    for cue in backward:
        negated.update(_backward_scope(text, clauses, mentions, cue))
    for cue in _FORWARD_CUE.finditer(text):
        if _overlaps(cue.start(), cue.end(), spans) or _overlaps(cue.start(), cue.end(), backward_spans):
            continue  # "lack of" inside "lack of fusion"; "not" inside "were not observed"
        negated.update(_forward_scope(text, clauses, mentions, cue))
    for i, m in enumerate(mentions):
        if _FREE_SUFFIX.match(text, m.end):
            negated.add(i)
    alternatives = _alternatives(text, mentions) - negated  # "no dimples or striations" stays negated
    for cue in _CONTRAST_CUE.finditer(text):
        alternatives.update(set(_forward_scope(text, clauses, mentions, cue)) - negated)
    return [Mention(m.feature, m.phrase, m.start, m.end, i in negated,
                    i in alternatives or _hedged(text, _sentence_of(sentences, m.start), m.start, m.end))
            for i, m in enumerate(mentions)]


def features_in(text: str) -> tuple[set[str], set[str]]:
    """(asserted, negated) canonical features of a text.

    A feature is asserted when at least one of its mentions is not negated, and negated when every
    mention of it is; the two sets are disjoint.
    """
    asserted, negated, _ = feature_sets(text)
    return asserted, negated


def feature_sets(text: str, abbreviations: Mapping[str, str | None] | None = None
                 ) -> tuple[set[str], set[str], set[str]]:
    """(asserted, negated, uncertain) canonical features of a text, pairwise disjoint.

    Hedged mentions ("possibly striations", "dimple-like") are uncertain unless another mention asserts
    the feature plainly.
    """
    mentions = find_mentions(text, abbreviations)
    asserted = {m.feature for m in mentions if not m.negated and not m.uncertain}
    negated = {m.feature for m in mentions if m.negated} - asserted
    uncertain = {m.feature for m in mentions if m.uncertain and not m.negated} - asserted - negated
    return asserted, negated, uncertain
