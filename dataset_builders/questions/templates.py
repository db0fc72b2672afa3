"""Offline Q&A generation: fixed-kind questions answered by templates over an item's labels and its text.

No model and no key: what the default `--qa` build and the tests run. Every answer rests on sentences of
the item's caption(s) or citing excerpts (``QAPair.sources``); where the text supports no answer the pair
is a refusal. Evidence (``QAPair.sources``) is text as printed in the PDF, findable with a reader's search
(whitespace aside): a panel's stitched caption part ("SEM fractographs of X: closely spaced striations") is
read for matching and answers, but quoted as the printed caption sentence that holds it. Per image:
- features  (always): the labelled features and the sentences naming them (negated mentions skipped);
  no feature -> refusal;
- mechanism (always): a sentence naming a mechanism (fatigue, cleavage fracture, creep, ...), else the
  vocabulary's mechanism hint for the grounded features (DESIGN §4), else a refusal;
- origin: a sentence about where the crack started (initiation, origin, nucleation, fish-eye) — asked
  when the text has one;
- measure: what to measure for the grounded features (MEASUREMENTS below) — asked when there is one;
if neither origin nor measure is supported, the origin question is kept as a refusal, so the model also
learns to say when the text (and so the image evidence) does not tell. 2 to 4 pairs per image.

Usage:
    pairs = template_pairs(SourceText(item_id="x", captions=["SEM image showing fatigue striations."],
                                      features=["fatigue striations"]))
"""

from __future__ import annotations

import re

from dataset_builders.questions.records import QUESTIONS, QAPair, SourceText
from fracto_core.phrases import CONTRAST_WORDS
from fracto_core.vocabulary import feature, mechanism_hints

TEMPLATE_PROMPT_VERSION = "fracto-qa-templates-v2"  # v2: evidence quoted as printed (issue 27)
ORIGIN = "templates"

# A sentence ends at . ! ? followed by space and a capital, except after common abbreviations.
_SENTENCE_END = re.compile(r"(?<!\bFig)(?<!\bFIG)(?<!\bfig)(?<!\bRef)(?<!\bEq)(?<!\bNo)(?<!\bal)(?<!\be\.g)"
                           r"(?<!\bi\.e)(?<!\bca)(?<=[.!?])\s+(?=[A-Z(\[])")
_NEGATION = re.compile(r"\b(no|not|without|absence|absent|neither|nor|free of|lack of)\b", re.IGNORECASE)
# a negation governs the phrase within its clause: up to punctuation or a contrasting conjunction, either side
# ("no beach marks but fatigue striations", "striations are present but dimples are absent" name the striations)
_CLAUSE_BEFORE = re.compile(rf"[;,:]|{CONTRAST_WORDS}")
_CLAUSE_AFTER = re.compile(rf"[;,.:]|{CONTRAST_WORDS}")
_ORIGIN = re.compile(r"\b(initiat\w*|originat\w*|origin|nucleat\w*|fish[- ]?eyes?|started (at|from))\b",
                     re.IGNORECASE)
_MECHANISM = re.compile(r"\b(fatigue (crack|fracture|failure|loading)|ductile (fracture|failure|overload)|"
                        r"brittle (fracture|failure)|cleavage fracture|intergranular (fracture|cracking)|"
                        r"transgranular (fracture|cracking)|overload|creep (rupture|failure|damage)|"
                        r"stress corrosion( cracking)?|hydrogen embrittlement|temper embrittlement|"
                        r"embrittlement|microvoid coalescence)\b", re.IGNORECASE)
_CAPTION_LEAD = re.compile(r"^\s*(fig(ure)?\.?|FIG\.?)\s*\d+[a-z]?\s*[:.]?\s*", re.IGNORECASE)

# What an analyst measures for a feature (ASM Handbook Vol. 12 practice). Features not listed: nothing.
MEASUREMENTS: dict[str, str] = {
    "fatigue striations": "the striation spacing at several crack lengths (local crack growth rate per cycle)",
    "beach marks": "the spacing and number of beach marks (crack front positions and load history)",
    "ratchet marks": "the number and positions of ratchet marks (how many initiation sites)",
    "equiaxed dimples": "the dimple size distribution (mean diameter and depth)",
    "elongated dimples": "the dimple size and elongation direction (shear or tearing direction)",
    "shear lip": "the shear-lip width relative to the section thickness",
    "cleavage facets": "the cleavage facet size (compared with the grain size)",
    "river patterns": "the river-pattern direction (local crack propagation direction)",
    "chevron marks": "the chevron orientation, which points back to the origin",
    "intergranular facets": "the share of intergranular fracture on the surface (compared with the grain size)",
    "fish-eye": "the fish-eye diameter and its distance from the surface",
    "fine granular area": "the size of the fine granular area around the origin",
    "inclusion at origin": "the inclusion size as the square root of its projected area and its depth",
    "gas pore": "the pore size (square root of projected area) and its distance from the surface",
    "lack-of-fusion defect": "the defect size and shape and its distance from the surface",
    "unmelted powder particles": "the particle size and how many particles lie on the surface",
    "creep cavities": "the cavity size and the number of cavities per grain-boundary length",
    "secondary cracks": "the length and spacing of the secondary cracks",
    "mirror-mist-hackle": "the fracture mirror radius (which gives the fracture stress)",
    "fibre pull-out": "the fibre pull-out length distribution",
    "corrosion products": "the extent of the corroded area and the product composition (EDS)",
}


def sentences(text: str, keep_unterminated: bool = False) -> list[str]:
    """The sentences of a caption or excerpt.

    Excerpts are windows cut out of the body text: a piece without an end mark, or starting where the
    window cut it ("…"), is a cut sentence and is dropped. Captions (keep_unterminated) are whole: a panel's
    caption part ("fatigue striations") is kept.
    """
    text = " ".join(text.split())
    out = []
    for s in _SENTENCE_END.split(text):
        s = s.strip()
        if keep_unterminated and len(s) >= 3:
            out.append(s)
        elif len(s) >= 12 and s[-1] in ".!?" and not s.startswith("…"):
            out.append(s)
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def printed_sentence(sentence: str, printed: list[str]) -> str | None:
    """What to quote for a sentence: itself when it is printed text (inside one of `printed`, whitespace aside),
    else the printed sentence holding most of its words (a stitched panel caption -> its caption sentence,
    at least 60 % of the words), else None."""
    if any(sentence in p for p in printed):
        return sentence
    want = _words(sentence)
    best, best_share = None, 0.6
    for p in printed:
        have = _words(p)
        share = sum(min(want.count(w), have.count(w)) for w in set(want)) / max(1, len(want))
        if share > best_share or (share == best_share and (best is None or len(p) < len(best))):  # at least 60 %
            best, best_share = p, share
    return best


def source_sentences(src: SourceText) -> list[tuple[str, str]]:
    """(sentence, its printed evidence): caption sentences first, then excerpt sentences, without repeats.

    A caption sentence with no printed counterpart is left out (it could not be quoted)."""
    printed = [s for c in (src.figure_captions or src.captions) for s in sentences(c, keep_unterminated=True)]
    seen: dict[str, str] = {}
    for caption in src.captions:
        for s in sentences(caption, keep_unterminated=True):
            evidence = printed_sentence(s, printed)
            if evidence is not None and s not in seen:
                seen[s] = evidence
    for excerpt in src.excerpts:
        for s in sentences(excerpt):
            seen.setdefault(s, s)
    return list(seen.items())


def mentions(sentence: str, phrase: str) -> bool:
    """The sentence names the phrase (whole words) and no negation governs it in its clause."""
    low = sentence.lower()
    for m in re.finditer(r"(?<![a-z])" + re.escape(phrase.lower()) + r"(?![a-z])", low):
        before = _CLAUSE_BEFORE.split(low[:m.start()])[-1]
        after = _CLAUSE_AFTER.split(low[m.end():])[0]
        if not _NEGATION.search(before) and not re.search(r"\b(not|absent)\b", after):
            return True
    return False


def feature_sentence(feature_name: str, pool: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first (sentence, evidence) whose sentence names the feature (canonical name or a synonym), not negated."""
    phrases = feature(feature_name).phrases
    for s in pool:
        if any(mentions(s[0], p) for p in phrases):
            return s
    return None


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _clean(sentence: str) -> str:
    """A source sentence as answer text: without the leading 'Fig. 2:', capitalised, with a full stop."""
    s = _CAPTION_LEAD.sub("", sentence).strip()
    s = s[:1].upper() + s[1:]
    return s if s.endswith((".", "!", "?")) else s + "."


def _refusal(kind: str, why: str) -> QAPair:
    return QAPair(kind=kind, question=QUESTIONS[kind], answer=f"The text about this image does not say {why}, "
                  "so I cannot tell it reliably from this image.", refused=True)


def template_pairs(src: SourceText) -> list[QAPair]:
    """2-4 question-answer pairs for one item (see the module docstring)."""
    pool = source_sentences(src)
    grounded = {f: s for f in src.features if (s := feature_sentence(f, pool)) is not None}
    pairs: list[QAPair] = []

    if grounded:
        names = list(grounded)
        said = list(dict.fromkeys(s for s, _ in grounded.values()))
        support = list(dict.fromkeys(e for _, e in grounded.values()))
        pairs.append(QAPair(kind="features", question=QUESTIONS["features"], features=names, sources=support,
                            answer=f"The image shows {_join(names)}. " + " ".join(_clean(s) for s in said)))
    elif src.features and src.label_origin == "manual":  # an expert label without text: the label is the source
        names = list(src.features)
        pairs.append(QAPair(kind="features", question=QUESTIONS["features"], features=names,
                            sources=[f"manual label: {', '.join(names)}"],
                            answer=f"The image shows {_join(names)}."))
    else:
        pairs.append(_refusal("features", "which morphology features are visible"))

    stated = next((s for s in pool if _MECHANISM.search(s[0]) and not _NEGATION.search(s[0])), None)
    hints = mechanism_hints(list(grounded))
    if stated is not None:
        pairs.append(QAPair(kind="mechanism", question=QUESTIONS["mechanism"], sources=[stated[1]],
                            answer=f"According to the text: {_clean(stated[0])}"))
    elif hints:
        basis = [f for f in grounded if any(h in feature(f).mechanisms for h in hints)] or list(grounded)
        pairs.append(QAPair(kind="mechanism", question=QUESTIONS["mechanism"],
                            sources=list(dict.fromkeys(grounded[f][1] for f in basis)),
                            answer=f"The {_join(basis)} indicate {hints[0]}."))
    else:
        pairs.append(_refusal("mechanism", "which fracture mechanism acted"))

    origin = next((s for s in pool if _ORIGIN.search(s[0]) and not _NEGATION.search(s[0])), None)
    if origin is not None:
        pairs.append(QAPair(kind="origin", question=QUESTIONS["origin"], sources=[origin[1]],
                            answer=_clean(origin[0])))
    measurable = [f for f in grounded if f in MEASUREMENTS]
    if measurable:
        pairs.append(QAPair(kind="measure", question=QUESTIONS["measure"],
                            sources=list(dict.fromkeys(grounded[f][1] for f in measurable)),
                            answer="Measure " + "; and ".join(MEASUREMENTS[f] for f in measurable) + "."))
    if origin is None and not measurable:
        pairs.append(_refusal("origin", "where the fracture started"))
    return pairs
