"""The offline labeller: features named in a panel's caption and in the body text that cites it.

A panel gets every vocabulary feature that its own caption part (with the figure's common part) or a
citing excerpt *asserts*, minus the features its own caption *negates* (the caption is about exactly this
image; an excerpt may be looser). Negation and phrase matching live in ``labelling.mentions``.

Excerpts arrive already chosen by the panels stage (they cite this panel or the whole figure), but one
excerpt often speaks about several panels: "Fig. 2a shows dimples while Fig. 2b shows cleavage facets".
``excerpt_segments`` cuts such an excerpt into sentence/clause segments, gives each segment the figure
citations it is about, and ``label_panel`` keeps only the mentions in segments about this panel:

* a sentence whose citations all name the same panels stays whole;
* a sentence citing different panels is cut at clause joints (";", ",", "and", "while", "whereas", "but",
  ...) that are not inside a citation; a segment without a citation belongs to the segment before it in the
  sentence ("Fig. 2a shows dimples, cleavage and ..."), else to the next one ("Dimples are visible, as
  seen in Fig. 2a");
* a sentence without citation continues the previous sentence's subject; text before the first citation
  of an excerpt is the window's lead-in and is ignored;
* "Fig. 2a and b show dimples and cleavage facets, respectively" pairs mentions with letters in order
  when the counts agree.

Usage:
    from dataset_builders.labelling.caption_rules import label_panel
    record = label_panel(panel)   # LabelRecord(origin="caption_rules", features=[...], evidence={...})
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import pairwise

from dataset_builders.pdf.captions import expand_letters, find_citations
from dataset_builders.labelling.base import LabelOutcome, LabelTask
from dataset_builders.labelling.mentions import Mention, defined_abbreviations, find_mentions, sentence_spans
from dataset_builders.labelling.multipanel import REASON as UNSPLIT, lettered_views
from dataset_builders.records import LabelRecord, PanelRecord
from dataset_builders.workers import run_jobs
from fracto_core.vocabulary import sort_features

ORIGIN = "caption_rules"
EVIDENCE_CHARS = 200  # evidence snippets are clipped to this many characters around the mention


@dataclass(frozen=True)
class Reference:
    """One figure (and panel letters) cited in an excerpt; panels () = the whole figure."""

    figure: str
    panels: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Segment:
    """A span of an excerpt and the references it is about (empty: not known to be about any figure)."""

    start: int
    end: int
    refs: tuple[Reference, ...]


# A bare panel marker after a figure citation in the same sentence: "Fig. 2 shows (a) dimples and (b) ...".
_BARE_MARKER = re.compile(r"(?<![\w)])\(\s*([a-z](?:\s*(?:,|&|and|to|[-\u2013])\s*[a-z])*)\s*\)")
_STRONG_JOINTS = r";|(?<!\w)(?:while|whilst|whereas|but|although|though|however|in\s+contrast)(?!\w)"
_CLAUSE_JOINT = re.compile(rf"{_STRONG_JOINTS}|,|(?<!\w)and(?!\w)", re.IGNORECASE)
# A "respectively" sentence keeps its lists whole ("Figs. 2a and 2b show X and Y, respectively").
_STRONG_JOINT = re.compile(_STRONG_JOINTS, re.IGNORECASE)
_RESPECTIVELY = re.compile(r"(?<!\w)respectively(?!\w)", re.IGNORECASE)
_LIST_JOINT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+", re.IGNORECASE)


def find_references(text: str, dash_numbers: bool = False) -> list[Reference]:
    """Figure citations in ``text`` (captions.find_citations) plus bare "(b)" markers that follow one."""
    sentences = sentence_spans(text)
    refs = [Reference(c.figure_number, tuple(c.panels), c.start, c.end)
            for c in find_citations(text, dash_numbers)]
    extra: list[Reference] = []
    for m in _BARE_MARKER.finditer(text):
        if any(r.start <= m.start() < r.end for r in refs):
            continue  # the "(b)" of "Fig. 2(b)"
        sentence = next(((s, e) for s, e in sentences if s <= m.start() < e), (0, len(text)))
        before = [r for r in refs if sentence[0] <= r.start and r.end <= m.start()]
        if before:
            extra.append(Reference(before[-1].figure, tuple(expand_letters(m.group(1))), m.start(), m.end()))
    return sorted(refs + extra, key=lambda r: (r.start, r.figure))


# The panels of one figure share its caption and most citing excerpts, so the per-text work below is done
# once per text and process (heavy benchmark corpus: 1,400 panels, label stage 1.45 -> 0.47 s with one
# worker, the same records). The cached results are tuples of frozen records and a dict nobody writes to.
_CACHE_TEXTS = 4096


@lru_cache(maxsize=_CACHE_TEXTS)
def _abbreviations(texts: tuple[str, ...]) -> dict[str, str | None]:
    return defined_abbreviations(texts)


@lru_cache(maxsize=_CACHE_TEXTS)
def _mentions(text: str, abbreviations: tuple[tuple[str, str | None], ...]) -> tuple[Mention, ...]:
    return tuple(find_mentions(text, dict(abbreviations)))


def mentions_of(text: str, abbreviations: Mapping[str, str | None] | None) -> tuple[Mention, ...]:
    """find_mentions(text, abbreviations), computed once per (text, abbreviations) in this process."""
    return _mentions(text, tuple(sorted((abbreviations or {}).items())))


# A table flattened into the text layer: three or more bare numbers in a row, separated by spaces only, two
# of them with decimals ("S5 3 (left) 157 30.10 21.11 8.99 MVC+TG"; footnote letters allowed: "28.28a").
# Prose writes numbers with units, commas or words between them; a table's cells come out in column order, so
# which figure a feature cell belongs to cannot be read from the words around it. A list of figure numbers
# ("Figs. 1.2 1.3 1.4") is not a table.
_NUMBER_RUN = re.compile(r"(?<![\w.])(?:\d+(?:\.\d+)?[a-z]?\s+){2,}\d+(?:\.\d+)?[a-z]?(?![\w.])")
_AFTER_FIGURE_LABEL = re.compile(r"(?:fig(?:ure)?s?\.?|and|to)\s*$", re.IGNORECASE)


def _is_table_row(text: str, start: int, end: int) -> bool:
    for m in _NUMBER_RUN.finditer(text, start, end):
        if m.group().count(".") >= 2 and not _AFTER_FIGURE_LABEL.search(text, max(0, m.start() - 12), m.start()):
            return True
    return False


@lru_cache(maxsize=_CACHE_TEXTS)
def table_sentences(text: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of the sentences of ``text`` that are table rows read as text (``_NUMBER_RUN``)."""
    if not _is_table_row(text, 0, len(text)):
        return ()
    return tuple((s, e) for s, e in sentence_spans(text) if _is_table_row(text, s, e))


@lru_cache(maxsize=_CACHE_TEXTS)
def excerpt_segments(text: str, dash_numbers: bool = False) -> tuple[Segment, ...]:
    """Cut an excerpt into segments, each with the figure references it speaks about (see module doc).
    ``dash_numbers``: the figure is numbered "3-2", so "Fig. 3-2" is one figure (captions.find_citations)."""
    refs = find_references(text, dash_numbers)
    if not refs:
        return (Segment(0, len(text), ()),)
    per_sentence: list[list[Segment]] = []
    for s, e in sentence_spans(text):
        own = [r for r in refs if s <= r.start < e]
        if len({(r.figure, r.panels) for r in own}) <= 1:
            per_sentence.append([Segment(s, e, tuple(own))])
            continue
        joints = _STRONG_JOINT if _RESPECTIVELY.search(text, s, e) else _CLAUSE_JOINT
        cuts = [m.start() for m in joints.finditer(text, s, e)
                if m.start() > s and not any(r.start <= m.start() < r.end for r in own)]
        bounds = [s, *cuts, e]
        per_sentence.append([Segment(a, b, tuple(r for r in own if a <= r.start < b))
                             for a, b in pairwise(bounds) if text[a:b].strip(" ;,")])

    segments: list[Segment] = []
    carried: tuple[Reference, ...] = ()
    for sentence in per_sentence:
        for i, seg in enumerate(sentence):
            refs_here = seg.refs
            if not refs_here:
                earlier = [x.refs for x in sentence[:i] if x.refs]
                later = [x.refs for x in sentence[i + 1:] if x.refs]
                refs_here = earlier[-1] if earlier else later[0] if later else carried
            segments.append(Segment(seg.start, seg.end, refs_here))
        if segments:
            carried = segments[-1].refs
    return tuple(segments)


def is_about(refs: tuple[Reference, ...], figure_number: str | None, letter: str | None) -> bool:
    """Does a segment with these references speak about this panel (or its whole figure)?

    Named panels are more specific than a whole-figure citation in the same segment: in
    "Fig. 2 shows (a) dimples" the segment is about panel a only.
    """
    ours = [r for r in refs if figure_number is None or r.figure == figure_number]
    named = {p for r in ours for p in r.panels}
    if named:
        return letter is None or letter in named
    return bool(ours)


def panel_mentions(text: str, figure_number: str | None, letter: str | None,
                   abbreviations: dict[str, str | None] | None = None) -> list[tuple[Mention, Segment]]:
    """Mentions of an excerpt that lie in segments about this panel, each with its segment."""
    text = unicodedata.normalize("NFC", text)  # the text whose positions the mentions index
    mentions = mentions_of(text, abbreviations)
    if not mentions:
        return []
    letter = letter.lower() if letter else None
    segments = excerpt_segments(text, figure_number is not None and "-" in figure_number)
    cites_any = any(seg.refs for seg in segments)  # without any citation the whole excerpt counts
    tables = table_sentences(text)
    out: list[tuple[Mention, Segment]] = []
    for seg in segments:
        if seg.refs and not is_about(seg.refs, figure_number, letter):
            continue
        if not seg.refs and cites_any:
            continue  # lead-in before the excerpt's first citation
        inside = [m for m in mentions if seg.start <= m.start < seg.end
                  and not any(a <= m.start < b for a, b in tables)]  # table cells are no statement
        inside = _respectively(text, seg, inside, figure_number, letter)
        out.extend((m, seg) for m in inside)
    return out


def _respectively(text: str, seg: Segment, inside: list[Mention], figure_number: str | None,
                  letter: str | None) -> list[Mention]:
    """"Figs. 2a and 2c show dimples near the origin and cleavage facets, respectively": this letter's part.

    The text between the citation and "respectively" is cut at its list joints (",", "and"); when there
    are as many parts as cited letters, the k-th part belongs to the k-th letter. Otherwise, when there are
    as many mentions as letters, the k-th mention does; otherwise every mention stays (no guess).
    """
    resp = _RESPECTIVELY.search(text, seg.start, seg.end)
    if letter is None or not resp:
        return inside
    ours = [r for r in seg.refs if (figure_number is None or r.figure == figure_number) and r.panels]
    panels = [p for r in ours for p in r.panels]
    if letter not in panels or len(set(panels)) != len(panels) or len(panels) < 2:
        return inside
    k = panels.index(letter)
    list_start = max(r.end for r in ours)
    if list_start < resp.start():
        cuts = [m for m in _LIST_JOINT.finditer(text, list_start, resp.start())]
        bounds = [list_start, *[x for m in cuts for x in (m.start(), m.end())], resp.start()]
        parts = [(a, b) for a, b in zip(bounds[::2], bounds[1::2])]
        parts = [(a, b) for a, b in parts if any(a <= m.start < b for m in inside)]
        if len(parts) == len(panels):
            a, b = parts[k]
            return [m for m in inside if a <= m.start < b]
    own = [m for m in inside if m.start >= list_start]
    if len(own) == len(panels):
        return [own[k]]
    return inside


def snippet(text: str, start: int, end: int, lo: int = 0, hi: int | None = None) -> str:
    """The sentence of text[lo:hi] holding text[start:end], whitespace squashed, clipped around the mention."""
    hi = len(text) if hi is None else hi
    s, e = next(((a, b) for a, b in sentence_spans(text) if a <= start < b), (lo, hi))
    s, e = max(s, lo), min(e, hi)
    if e - s > EVIDENCE_CHARS:
        half = max(0, (EVIDENCE_CHARS - (end - start)) // 2)
        a, b = max(s, start - half), min(e, end + half)
        if a > s and (space := text.find(" ", a, start)) != -1:
            a = space + 1  # start and end on word boundaries
        if b < e and (space := text.rfind(" ", end, b)) != -1:
            b = space
        return ("…" if a > s else "") + " ".join(text[a:b].split()) + ("…" if b < e else "")
    return " ".join(text[s:e].split()).strip(" ;,")


def label_panel(panel: PanelRecord) -> LabelRecord:
    """Caption-rule label of one panel: features asserted by its caption or citing excerpts, minus those
    its own caption negates; evidence holds, per feature, the caption or excerpt text that names it.

    An unlettered image standing for several named panels gets only the features of every panel
    (``labelling.multipanel``)."""
    views = lettered_views(panel)
    if views:
        return _label_unsplit(panel, [label_panel(v) for v in views], [v.letter or "" for v in views])
    caption = unicodedata.normalize("NFC", panel.caption or panel.figure_caption)  # as the mentions' positions
    abbreviations = _abbreviations((panel.figure_caption or caption, *panel.excerpts))
    cap_mentions = mentions_of(caption, abbreviations)
    uncertain = {m.feature for m in cap_mentions if m.uncertain and not m.negated}
    cap_mentions = [m for m in cap_mentions if not m.uncertain]
    cap_asserted = {m.feature for m in cap_mentions if not m.negated}
    cap_negated = {m.feature for m in cap_mentions if m.negated} - cap_asserted

    evidence: dict[str, str] = {}
    for m in cap_mentions:
        if not m.negated and m.feature not in evidence:
            evidence[m.feature] = "caption: " + snippet(caption, m.start, m.end)

    text_asserted: set[str] = set()
    text_negated: set[str] = set()
    for excerpt in [*panel.excerpts, *([panel.context] if panel.context else [])]:
        for m, seg in panel_mentions(excerpt, panel.figure_number, panel.letter, abbreviations):
            if m.uncertain:
                uncertain.add(m.feature)
                continue
            if m.negated:
                text_negated.add(m.feature)
                continue
            text_asserted.add(m.feature)
            if m.feature not in evidence:
                evidence[m.feature] = "excerpt: " + snippet(excerpt, m.start, m.end, seg.start, seg.end)

    features = (cap_asserted | text_asserted) - cap_negated
    negated = (cap_negated | text_negated) - features
    uncertain = sort_features(uncertain - features - negated)
    evidence = {f: evidence[f] for f in sort_features(features)}
    if features:
        return LabelRecord(item_id=panel.panel_id, features=sort_features(features), origin=ORIGIN,
                           evidence=evidence, negated=sort_features(negated), uncertain=uncertain,
                           status="labelled")
    if negated:
        detail = f"only negated features: {', '.join(sort_features(negated))}"
    elif not caption and not panel.excerpts:
        detail = "no caption and no citing text"
    else:
        detail = "no vocabulary feature in the caption or the citing text"
    if uncertain and not negated:
        detail = f"only hedged mentions: {', '.join(uncertain)}"
    return LabelRecord(item_id=panel.panel_id, features=[], origin=ORIGIN, evidence={},
                       negated=sort_features(negated), uncertain=uncertain, status="no_features", detail=detail)


def _label_unsplit(panel: PanelRecord, per_letter: list[LabelRecord], letters: list[str]) -> LabelRecord:
    """The features asserted for every named panel of an image the panels stage could not split."""
    sets = [set(r.features) for r in per_letter]
    if not any(sets):
        return per_letter[0]
    common = set.intersection(*sets)
    only = {k: sorted(s - common) for k, s in zip(letters, sets) if s - common}
    negated = set().union(*(r.negated for r in per_letter)) - common
    uncertain = set().union(*(r.uncertain for r in per_letter)) - common - negated
    dropped = "; ".join(f"({k}) {', '.join(v)}" for k, v in only.items())
    detail = (f"{UNSPLIT}: image kept whole for panels {', '.join(letters)}; features of some panels only "
              f"dropped: {dropped}") if only else ""
    evidence = {f: per_letter[0].evidence[f] for f in sort_features(common)}
    if common:
        return LabelRecord(item_id=panel.panel_id, features=sort_features(common), origin=ORIGIN, evidence=evidence,
                           negated=sort_features(negated), uncertain=sort_features(uncertain), status="labelled",
                           detail=detail)
    return LabelRecord(item_id=panel.panel_id, features=[], origin=ORIGIN, evidence={},
                       negated=sort_features(negated), uncertain=sort_features(uncertain), status="no_features",
                       detail=detail)


# --- the labeller (registered as caption_rules) ---------------------------------------------------------------------------------

STREAM_CHUNK = 64  # tasks per chunk handed to a worker: ~1 ms each, so round trips stay rare (16,000 tasks: 250)


class CaptionRulesLabeler:
    """Offline labels from captions and citing text (``caption_rules.label_panel``).

    A dedup group is one image printed in one or more places, so its label is the union over all its
    panels' caption labels: features asserted by any member's caption or excerpts, each member's own
    caption negation applying to that member's text only. Evidence comes from the representative first;
    evidence from another member names that panel.
    """

    name = "caption_rules"
    origin = ORIGIN
    prompt_version: str | None = None

    def __init__(self, workers: int = 1):
        self.workers = workers  # processes (dataset_builders.workers): the rules are pure Python, ~1 ms a panel

    def label(self, tasks: Sequence[LabelTask], progress: bool = True) -> LabelOutcome:
        return LabelOutcome(records=list(self.label_stream(tasks, len(tasks), progress)))

    def label_stream(self, tasks: Iterable[LabelTask], total: int, progress: bool = True) -> Iterator[LabelRecord]:
        """One record per task, in task order, taking the tasks as the workers need them: only the chunks
        in flight (workers.IN_FLIGHT_PER_WORKER per worker, at most STREAM_CHUNK tasks each) are held, so
        the label stage can hand over a generator instead of the corpus' task list.
        total: the number of tasks (chunk sizes and the progress bar)."""
        per_worker = max(4, -(-total // (self.workers * STREAM_CHUNK)))  # chunks of <= STREAM_CHUNK tasks
        return run_jobs(self.label_task, tasks, self.workers, "label", "image", progress,
                        chunks_per_worker=per_worker, total=total)

    def label_task(self, task: LabelTask) -> LabelRecord:
        per_panel = [label_panel(p) for p in task.panels]
        features: set[str] = set()
        negated: set[str] = set()
        evidence: dict[str, str] = {}
        for panel, record in zip(task.panels, per_panel):
            features.update(record.features)
            negated.update(record.negated)
            for feature, text in record.evidence.items():
                if feature not in evidence:
                    same = panel.panel_id == task.item_id
                    evidence[feature] = text if same else f"[{panel.panel_id}] {text}"
        negated -= features
        first = per_panel[0]
        if not features:
            return first.model_copy(update={"item_id": task.item_id, "negated": sort_features(negated)})
        ordered = sort_features(features)
        return LabelRecord(item_id=task.item_id, features=ordered, origin=self.origin,
                           evidence={f: evidence[f] for f in ordered}, negated=sort_features(negated),
                           status="labelled")
