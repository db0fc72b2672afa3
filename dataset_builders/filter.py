"""Stage 3, filter: is this panel a fracture surface? Evidence from its caption, excerpts and pixels.

Usage:
    python -m dataset_builders.build --from-stage filter --to-stage filter

Reads stages/panels/*.json and writes stages/filter.jsonl: one FilterDecision per panel, sorted by
panel id. The score adds up weighted evidence:
- caption terms (the panel's own caption part): fracture words ("fractograph", "fracture surface",
  any vocabulary feature phrase such as "dimples") push up; words of the other figure types papers
  print (stress-strain curves, plots, schematics, test rigs, etched microstructures, EBSD, XRD,
  spectra, tables) push down;
- the same terms in the excerpts citing the panel, at half weight (body text wanders more); a figure
  without a caption is judged by the text printed next to it (its label line and the paragraph before it,
  PanelRecord.context, set only in documents without any caption) at full weight: it plays the caption's role;
- vocabulary features count through labelling.mentions, so a negated, hedged ("possibly striations") or
  other-sense mention ("cavitation erosion", "X-ray CT ... porosity") is no evidence of a fracture surface;
- the broken test piece itself counts as a fracture surface ("samples after the impact test", "broken bars",
  "cup-and-cone fracture"): a photo of it shows its fracture faces; "photographs of the fracture surfaces"
  is no photo negative, and a view across the surface ("perpendicular to / beneath the fracture surface",
  "cross-section of the fracture surface") is no fracture-surface evidence (reason "section view");
- what the text says the image is, when that is not a fracture surface, pushes down with the reason named:
  X-ray CT, wear/fretting, cavitation erosion, corrosion surfaces, oxide scales and coatings, melt tracks,
  TEM/APT, photographs, besides plots, schematics, microstructures, EBSD, spectra, tables, simulations;
- an image kept whole for several named panels is dropped when its panels' caption parts disagree on being
  a fracture surface (reason unsplit_multipanel; see labelling.multipanel);
- what the paper says of all its figures (read once per paper, PaperHints): sections made by freeze
  fracturing make its "SEM cross-sections" fractured sections (FREEZE_FRACTURED); a title naming fractography
  gives its captioned figures a small prior (FRACTOGRAPHY_TITLE);
- image cues: mostly white or few grey levels (line art), strongly coloured (plots, maps, photos), mostly
  light grey yet not white (a polished/etched section under bright-field light),
  or, upwards, a grey, textured image (what an SEM fractograph looks like).
keep = score >= config.filter_min_score. Every piece of evidence is listed in the decision's reasons
("caption:+fractograph", "cue:-white_fraction=0.82"), so a wrong decision can be traced to its cause.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from dataset_builders.config import BuildConfig
from dataset_builders.labelling.mentions import find_mentions
from dataset_builders.labelling.multipanel import REASON as UNSPLIT, lettered_views
from dataset_builders.records import FilterDecision, ImageCues, PanelRecord, PaperPanels, Problem, StageResult
from dataset_builders.stage_cache import Entry, StageKeys, iter_entries, library_versions, read_index, write_entry
from dataset_builders.stage_paths import StagePaths
from dataset_builders.workers import run_jobs
from fracto_core.files import open_text_atomic, read_model
from fracto_core.phrases import normalize_text

STAGE = "filter"
EXCERPT_WEIGHT = 0.5  # excerpts count half: a paragraph citing a figure often talks about others too
CONTEXT_WEIGHT = 1.0  # the label line / paragraph next to a figure in a document without any caption
FEATURE_WEIGHT = 1.0  # per distinct vocabulary feature named ...
FEATURE_CAP = 3.0  # ... up to this much
# defects a process leaves in the bulk, and damage inside it, show on a polished section as well as on a fracture
# surface: an AM paper's "gas pores", "lack-of-fusion defects" and "unmelted powder" are imaged on sections at
# least as often as on fracture surfaces, so naming them says little about which of the two an image is (the
# labeller still names them on a fractograph); features only a fracture leaves (dimples, striations, cleavage,
# an initiation site, ...) keep the full weight
SECTION_FEATURES = frozenset({"gas pore", "lack-of-fusion defect", "unmelted powder particles", "creep cavities",
                              "secondary cracks", "matrix cracking", "corrosion products"})
SECTION_FEATURE_WEIGHT = 0.25  # once per text, however many of them it names
CAPTION_ONLY = {"table"}  # body text cites "Table 2" beside figures all the time: no evidence there

# (reason label, pattern, caption weight). Patterns match normalize_text's output: lower case, dashes unified to "-".
POSITIVE_TERMS: tuple[tuple[str, str, float], ...] = (
    # German and Spanish spell it with f/ph and k ("Fraktographie", "fractografía"); French "fractographie" matches
    ("fractograph", r"fractograph\w*|fractography|fractograf\w*|fraktogra(?:f|ph)\w*", 2.0),
    # the surface a rupture leaves is a fracture surface, whatever the paper calls it ("rupture surface" of a
    # creep test); a "crack surface" too, but fracture mechanics and simulations also speak of crack surfaces
    # (their displacement, traction, opening, a rendered crack surface): weaker, and not in those senses; the
    # "crack faces" of a sketch are no evidence
    # German "Bruchfläche"/"Bruchoberfläche", Spanish "superficie de fractura", French "faciès/surface de rupture":
    # theses and lecture notes in those languages name their fractographs so
    ("fracture surface", r"(?:fracture[ds]?|rupture[ds]?) surfaces?|fractured? (?:face|plane)s?|"
                         r"\bbruch(?:ober)?fl(?:ä|ae|a)chen?\b|superficies? de (?:la )?fractura|"
                         r"(?:faci[eè]s|surfaces?) de (?:la )?rupture", 2.0),
    # a "failure surface" is also the locus of a failure criterion in stress space (Tsai-Wu, Hashin, a yield or
    # failure envelope plotted as a chart): half the weight, so a chart's line-art cues outweigh it
    ("failure surface", r"failure surfaces?", 1.0),
    # a section obtained by fracturing: soft materials (polymers, films, composites) are broken below their glass
    # transition, in liquid nitrogen, to show their inside for SEM, since a cut smears them: "cryo-fractured
    # cross-sections", "freeze-fracture surfaces" are fracture surfaces (see FREEZE_FRACTURED for the paper-level case)
    ("fractured section", r"\bfractured cross-? ?sections?|(?:freeze|cryo\w*)-?fractur\w* (?:[\w-]+ )?(?:surfaces?|sections?)",
     2.0),
    # a heading "Fracture types - surface photographs": the surfaces shown under a heading about fracture are
    # its fracture surfaces (slides and web pages label their pictures with such headings only)
    ("surface photographs", r"\bfractur\w*(?: [\w]+){0,2} ?[-:] ?surface (?:photo\w*|images?|micrographs?)", 1.5),
    ("crack surface", (r"crack surfaces?(?! (?:displacement|traction|opening|load\w*|energy|area|separation|"
                       r"contact|interaction|tension|element|node|mesh|evolution)s?\b)"), 1.5),
    ("fracture morphology", r"fracture (?:morphology|morphologies|appearance|features?|topograph\w*)", 1.5),
    ("SEM of fracture", r"(?:\bsem|micrographs?|images?|views?) of (?:the |a )?(?:fracture|fractured|failed)\b", 1.5),
    # the broken test piece itself: "fractured specimens", "broken bars", "samples after (the) impact test" (a
    # photo of a test piece after a test that breaks it shows its fracture faces), "cup-and-cone fracture"
    # (the macroscopic fracture surface of a necked tensile bar, ASM Handbook Vol. 12)
    ("fractured", (r"(?:fractured|broken|failed) (?:specimens?|samples?|parts?|bars?|halves|pieces?|coupons?|"
                   r"components?|shafts?|bolts?|rods?|wires?|pins?|gears?|axles?|rails?|tubes?|pipes?|springs?|"
                   r"blades?)|after fractur\w*|"
                   # the test piece itself is shown ("Specimens after the tensile test", "SEM image of the sample
                   # after testing"), not a view of its gauge surface ("Slip bands of the specimen after tensile
                   # testing", "Etched microstructure after tensile testing"); or a break is named near the test
                   r"(?:^|[:.] |\b(?:images?|photos?|photographs?|views?|micrographs?|macrographs?|sem) of "
                   r"(?:the |a |an |two )?)(?:[\w-]+ )?(?:specimens?|samples?|bars?) after (?:the )?(?:[\w-]+ ){0,2}"
                   r"(?:tests?|testing)\b|"
                   r"\b(?:fractur\w*|broken|failed)\b[^.;]{0,40}\bafter (?:the )?(?:tensile|impact|charpy|izod) "
                   r"(?:tests?|testing)\b|"
                   r"cup-and-cone"), 1.0),
    # German REM (Rasterelektronenmikroskop), Spanish/French MEB
    ("SEM", r"\bsem\b|scanning electron|\brem\b|\bmeb\b|rasterelektronen\w*", 0.25),
)
NEGATIVE_TERMS: tuple[tuple[str, str, float], ...] = (
    ("stress-strain", (r"stress-strain|strain-stress|load-displacement|force-displacement|\bs-n\b|"
                      r"true stress|engineering stress"), -2.0),
    ("curve", r"\bcurves?\b", -2.0),
    ("plot", r"\bplots?\b|\bgraphs?\b|\bcharts?\b|histograms?|\bversus\b|\bvs\.?\s", -2.0),
    ("schematic", r"schematic\w*|\bdiagrams?\b|illustrations?|\bsketch\w*|\bdrawings?\b", -2.0),
    ("geometry", r"geometr\w*|dimensions|\bdrawn to scale", -1.5),
    ("setup", (r"set-?ups?\b|\brigs?\b|apparatus|test(?:ing)? machines?|fixtures?|\bgrips?\b|"
              r"photographs? of the (?:machine|rig|equipment)"), -1.5),
    ("microstructure", (r"microstructur\w*|\betch\w*|optical micrographs?|metallograph\w*|"
                       r"grain structure|phase distribution"), -1.5),
    ("EBSD", r"\bebsd\b|inverse pole figure|\bipf\b|kikuchi|orientation maps?", -2.0),
    ("XRD", r"\bxrd\b|x-ray diffraction|diffraction patterns?|diffractograms?", -2.0),
    ("spectrum", r"spectr(?:um|a)\b|\beds\b|\bedx\b|elemental maps?", -1.5),
    ("table", r"\btables?\b", -1.5),
    ("simulation", r"finite element|\bfem\b|\bfea\b|simulat\w*|\bmesh\b|contour maps?", -1.5),
    # a polished (and etched or unetched) section, "as-polished" samples: a fracture surface is never polished
    ("cross-section", r"(?<!fractured )cross-? ?sections?|\bpolished\b|\bunetched\b", -1.0),
    ("X-ray CT", r"x-ray (?:computed )?tomograph\w*|computed tomography|\b(?:micro-?|µ)?ct\b|tomograph\w*", -2.5),
    ("wear", r"\bwear\b|\bworn\b|fretting|abrasi\w*|tribolog\w*", -2.0),
    ("erosion", r"erosi\w*|\beroded\b", -2.0),
    ("corrosion surface", r"corroded surfaces?|corrosion pits?|\bpitting\b|salt spray|immersion test\w*", -1.5),
    ("oxide scale", r"oxide (?:scales?|layers?|films?)|\bscales?\b(?! bars?)|coatings?\b|zn-coated", -1.5),
    ("melt track", r"melt (?:tracks?|pools?)|single tracks?|scan tracks?", -1.5),
    ("TEM/APT", r"\btem\b|\bstem\b|haadf|transmission electron|atom probe|\bapt\b|\btkd\b|\bsaed\b", -2.0),
    # a photograph of fracture surfaces is a macro fractograph: "surface photographs", "photographs of the
    # fracture surfaces" name no other kind of image (the -1 is for photos of rigs, specimens, parts)
    ("photograph", (r"(?<!surface )(?<!fracture )(?:\bphotos?|photograph(?:s|ic|y|ed)?)\b"
                    r"(?! of (?:the |a |an )?(?:[\w-]+ ){0,2}fracture)|\bcamera\b|macrograph\w*"), -1.0),
    # a view across the fracture surface, not of it: a section or side view "perpendicular to the fracture
    # surface", "beneath the fracture surface", "profile of the fracture surface" shows the crack path and the
    # material under it (SECTION_VIEW below removes such a mention from the fracture-surface evidence)
    ("section view", r"\bsection view", -0.5),
)

# image cues (see image_cues.py); thresholds sit between typical SEM fractographs and line art
WHITE_STRONG, WHITE_WEAK = 0.5, 0.3
FEW_GREY_LEVELS = 32
COLOURFUL = 40.0
TEXTURE_GREY_LEVELS = 64
TEXTURE_MAX_WHITE = 0.1
TEXTURE_MAX_COLOUR = 15.0
TEXTURE_MIN_STD = 20.0
# a polished or etched section under bright-field (reflected) light: the flat, polished matrix reflects evenly, so
# most of the image is light grey, yet not paper white (a macro photo on a white background is), with only grain
# boundaries, cracks and pores dark; the relief of a fracture surface shades most of it darker (at most 0.48 light
# on every annotated fractograph of both real sets, 0.82-0.92 on etched sections shown as "fracture surfaces")
BRIGHT_FIELD_LIGHT = 0.75  # light (grey >= 170) share at least ...
BRIGHT_FIELD_GREY = 0.45  # ... of which light grey, not white, at least this share of the image
BRIGHT_FIELD_WEIGHT = -2.5  # another kind of image, as an X-ray CT slice is: outweighs a title's "fracture surfaces"


# paper-level: the paper says its sections were made by fracturing at low temperature ("SEM cross sections generated
# from freeze fracturing", "fractured in liquid nitrogen", "cryogenically fractured"): then its captions' "SEM
# cross-sections" show fracture surfaces, also where the sentence saying so cites another figure or none
# ("cryogenic fracture toughness" is a property measured cold, not a way to prepare a section: not read as one)
FREEZE_FRACTURED = re.compile(r"\b(?:freeze|cryo)-? ?fractur\w*|\bcryogenically (?:fractured|broken)|"
                              r"\b(?:fractured|broken|snapped) (?:[\w-]+ ){0,3}in liquid nitrogen|"
                              r"\bliquid nitrogen(?: [\w-]+){0,3} (?:fractured|broken|snapped)\b")
_CROSS_SECTION = re.compile(r"(?<!fractured )(?<!polished )\bcross-? ?sections?")

SECTION_VIEW = re.compile(
    r"(?:(?P<axis>perpendicular|normal|parallel|transverse)(?:ly)? to|beneath|below|under(?:neath)?|just under|"
    r"(?:cross-? ?sections?|profiles?|side views?|sections?) (?:of|through|across)) "
    r"(?:the |a |an |its |their )?(?:[\w-]+ )?(?:fracture[ds]? surfaces?|fractured? faces?|fracture planes?)")
# "viewed / imaged / taken normal to the fracture surface" is the plan view, the fractograph itself: a
# viewing word just before "normal/perpendicular to" keeps the mention (a section "normal to" it does not)
_PLAN_VIEW = re.compile(r"\b(?:view(?:ed|ing)?|observ\w*|imaged|seen|look\w*|tilt\w*|taken|recorded)\s+(?:[\w-]+\s+)?$")


def _section_views(text: str) -> str:
    """text with every view across the fracture surface (SECTION_VIEW, not a plan view) replaced by "section view"."""
    def replace(m: re.Match[str]) -> str:
        plan = m.group("axis") in ("normal", "perpendicular") and _PLAN_VIEW.search(text, max(0, m.start() - 30), m.start())
        return m.group(0) if plan else " section view "
    return SECTION_VIEW.sub(replace, text)


@lru_cache(maxsize=1)
def _term_patterns() -> tuple[tuple[str, re.Pattern[str], float], ...]:
    return tuple((label, re.compile(pattern), weight) for label, pattern, weight in POSITIVE_TERMS + NEGATIVE_TERMS)


# paper-level: a paper whose title names fractography or fracture surfaces as its subject ("Computer vision methods
# for fractographic defect detection", "Fatigue fracture surfaces") shows fracture surfaces in the figures it does not
# name otherwise (a caption naming a plot, map or microstructure still pushes down): a small prior, which alone
# keeps nothing, for its captioned figures (an uncaptioned image in a captioned paper is a logo or a piece)
FRACTOGRAPHY_TITLE = re.compile(r"\bfractograph\w*|\bfracture surfaces?\b")
SUBJECT_WEIGHT = 0.5


class PaperHints(NamedTuple):
    """What one paper says of all its figures (paper_hints), read once per paper."""

    fractured_sections: bool = False  # sections_fractured
    fractography_subject: bool = False  # FRACTOGRAPHY_TITLE in the title


def paper_hints(paper: PaperPanels) -> PaperHints:
    return PaperHints(fractured_sections=sections_fractured(paper.panels),
                      fractography_subject=bool(FRACTOGRAPHY_TITLE.search(normalize_text(paper.title or ""))))


def sections_fractured(panels: list[PanelRecord]) -> bool:
    """True when the text a paper's panels carry (captions, excerpts, context) says its sections were fractured
    at low temperature (FREEZE_FRACTURED): one pass over the paper's own figure text, no other input."""
    texts = {t for p in panels for t in (p.figure_caption, p.context, *p.excerpts) if t}
    return any(FREEZE_FRACTURED.search(normalize_text(t)) for t in texts)


def text_evidence(text: str, source: str, scale: float = 1.0, fractured_sections: bool = False) -> list[tuple[float, str]]:
    """(weight, reason) for every term and vocabulary feature found in one text. fractured_sections: the paper
    made its cross-sections by fracturing (sections_fractured), so a "cross-section" is a fractured one."""
    return [(weight, reason) for weight, reason, _ in _text_evidence(text, source, scale, fractured_sections)]


@lru_cache(maxsize=8192)  # the same excerpts are scored for every panel of a figure
def _text_evidence(text: str, source: str, scale: float,
                   fractured_sections: bool) -> tuple[tuple[float, str, str], ...]:
    """(weight, reason, key): key names what the evidence is (a term, a canonical feature, or "section feature" for
    any of SECTION_FEATURES), so several excerpts wording it differently count it once."""
    features: dict[str, str] = {}  # canonical name -> first phrase that asserts it
    for m in find_mentions(text):
        if not m.negated and not m.uncertain:
            features.setdefault(m.feature, m.phrase.lower())
    text = _section_views(normalize_text(text))
    if fractured_sections:
        text = _CROSS_SECTION.sub("fractured cross-section", text)
    found: list[tuple[float, str, str]] = []
    if not text:
        return ()
    for label, pattern, weight in _term_patterns():
        if source != "caption" and label in CAPTION_ONLY:
            continue
        if pattern.search(text):
            reason = f"{source}:{'+' if weight > 0 else '-'}{label}"
            found.append((weight * scale, reason, reason))
    total = 0.0
    section_named = False  # the features a section shows too count once, however many are named
    for name in sorted(features):
        if name in SECTION_FEATURES:
            if section_named:
                continue
            section_named = True
        weight = min(SECTION_FEATURE_WEIGHT if name in SECTION_FEATURES else FEATURE_WEIGHT, FEATURE_CAP - total)
        if weight <= 0:
            break
        total += weight
        key = "section feature" if name in SECTION_FEATURES else name
        found.append((weight * scale, f"{source}:+feature={features[name]}", f"{source}:feature={key}"))
    return tuple(found)


def cue_evidence(cues: ImageCues) -> list[tuple[float, str]]:
    """(weight, reason) from the panel's image statistics."""
    found: list[tuple[float, str]] = []
    if cues.white_fraction >= WHITE_STRONG:
        found.append((-1.5, f"cue:-white_fraction={cues.white_fraction:.2f}"))
    elif cues.white_fraction >= WHITE_WEAK:
        found.append((-0.5, f"cue:-white_fraction={cues.white_fraction:.2f}"))
    if cues.grey_levels < FEW_GREY_LEVELS:
        found.append((-1.5, f"cue:-grey_levels={cues.grey_levels}"))
    if cues.colourfulness >= COLOURFUL:
        found.append((-1.0, f"cue:-colourfulness={cues.colourfulness:.1f}"))
    if (cues.grey_levels >= TEXTURE_GREY_LEVELS and cues.white_fraction < TEXTURE_MAX_WHITE
            and cues.colourfulness < TEXTURE_MAX_COLOUR and cues.std >= TEXTURE_MIN_STD):
        found.append((0.5, f"cue:+grey_texture(std={cues.std:.0f},levels={cues.grey_levels})"))
    if (cues.light_fraction >= BRIGHT_FIELD_LIGHT and cues.light_fraction - cues.white_fraction >= BRIGHT_FIELD_GREY
            and cues.colourfulness < TEXTURE_MAX_COLOUR):
        found.append((BRIGHT_FIELD_WEIGHT, f"cue:-bright_field(light={cues.light_fraction:.2f},"
                                           f"white={cues.white_fraction:.2f})"))
    return found


def decide(panel: PanelRecord, min_score: float, hints: PaperHints = PaperHints()) -> FilterDecision:
    """Keep or drop one panel, with the score and every reason that moved it.

    An unlettered image standing for several named panels (labelling.multipanel) is also judged panel by
    panel on each one's own caption (common part + its part): when some read as fracture surfaces
    (score >= min_score) and others give no evidence of one (score <= 0: "(a) position of the specimens",
    "(f) mean hardness"), it is dropped (reason unsplit_multipanel): no crop isolates the fractographs.
    """
    decision = _decide_one(panel, min_score, hints)
    views = lettered_views(panel)
    if not views or not decision.keep:
        return decision
    scores = {v.letter: sum(w for w, _ in text_evidence(v.caption, "caption", 1.0, hints.fractured_sections))
              for v in views}
    if max(scores.values()) < min_score or min(scores.values()) > 0:
        return decision
    others = ", ".join(f"({k})" for k, score in scores.items() if score <= 0)
    return decision.model_copy(update={"keep": False, "reasons": [
        *decision.reasons, f"{UNSPLIT}:panels {others} of this unsplit image are not named fracture surfaces"]})


def _decide_one(panel: PanelRecord, min_score: float, hints: PaperHints) -> FilterDecision:
    fractured_sections = hints.fractured_sections
    evidence = text_evidence(panel.caption or panel.figure_caption, "caption", 1.0, fractured_sections)
    seen: set[str] = set()
    for excerpt in panel.excerpts:
        for weight, reason, key in _text_evidence(excerpt, "excerpt", EXCERPT_WEIGHT, fractured_sections):
            if key not in seen:  # a term or feature counts once however many excerpts repeat it, in any wording
                seen.add(key)
                evidence.append((weight, reason))
    if panel.context:  # no caption in the whole document: the text printed next to the figure plays its role
        evidence.extend(text_evidence(panel.context, "context", CONTEXT_WEIGHT, fractured_sections))
    if hints.fractography_subject and panel.figure_caption:
        evidence.append((SUBJECT_WEIGHT, "paper:+fractography subject"))
    evidence.extend(cue_evidence(panel.cues))
    score = round(sum(w for w, _ in evidence), 3)
    return FilterDecision(panel_id=panel.panel_id, keep=score >= min_score, score=score,
                          reasons=[r for _, r in evidence])


def _decide_file(args: tuple[str, str, float]) -> tuple[list[FilterDecision], list[Problem]]:
    """The decisions for one paper's panels file (a worker job), or the problem reading it."""
    out, file, min_score = args
    try:
        paper = read_model(Path(file), PaperPanels)
    except Exception as exc:  # noqa: BLE001 - a broken file is reported, the rest goes on
        return [], [Problem(file=StagePaths(Path(out)).rel(Path(file)), stage=STAGE, reason="bad_panels_record",
                            detail=f"{type(exc).__name__}: {exc}", severity="failed")]
    hints = paper_hints(paper)
    return [decide(p, min_score, hints) for p in paper.panels], []


def cache_path(paths: StagePaths) -> Path:
    return paths.stages / "filter_cache.txt"


def paper_keys(paths: StagePaths, config: BuildConfig) -> dict[str, str]:
    """{paper id: key of its decisions}: this code, filter_min_score and the panels file's bytes (stage_cache)."""
    keys = StageKeys(["dataset_builders.filter"], {"filter_min_score": config.filter_min_score}
                     | library_versions("pydantic"))  # pydantic wrote the cached lines
    return {f.stem: keys.paper(f) for f in sorted(paths.panels.glob("*.json"))}


def cached_decisions(paths: StagePaths, keys: dict[str, str]) -> dict[str, Entry]:
    """The entries of the previous build's filter cache whose key is still the paper's key (stage_cache)."""
    cache = cache_path(paths)
    hits = {paper for paper, (key, _) in read_index(cache).items() if keys.get(paper) == key}
    try:
        return {e.entry_id: e for e in iter_entries(cache) if e.entry_id in hits} if hits else {}
    except (OSError, ValueError, UnicodeDecodeError):  # changed under us: recompute all
        return {}


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Decide every panel of every paper; write stages/filter.jsonl sorted by panel id.

    A paper whose panels file, filter_min_score and deciding code are those of an earlier build keeps that
    build's decisions (stages/filter_cache.txt, see stage_cache): an update decides only new or changed papers.
    """
    if not paths.panels.is_dir():  # the panels stage makes it, papers or none: read as empty, nothing was mined
        raise FileNotFoundError(f"{paths.panels}: missing; the panels stage has not run (re-run from it: "
                                "--from-stage panels)")
    result = StageResult(stage=STAGE)
    keys = paper_keys(paths, config)
    entries = cached_decisions(paths, keys)
    resumed = len(entries)
    jobs = [(str(paths.out), str(paths.panels / f"{paper}.json"), config.filter_min_score)
            for paper in keys if paper not in entries]
    for (_, file, _), (got, problems) in zip(jobs, run_jobs(_decide_file, jobs, config.workers, "filter", "paper",
                                                            progress, chunks_per_worker=4)):
        result.problems.extend(problems)
        if not problems:  # write_jsonl_atomic's lines; a paper that could not be read is not cached
            paper = Path(file).stem
            entries[paper] = Entry(paper, keys[paper], str(sum(d.keep for d in got)),
                                   [d.model_dump_json() + "\n" for d in got])
    # (panel id, JSON line): a third of a FilterDecision's memory
    lines = sorted((json.loads(line)["panel_id"], line) for e in entries.values() for line in e.lines)
    with open_text_atomic(paths.filter) as fh:
        fh.writelines(line for _, line in lines)
    with open_text_atomic(cache_path(paths)) as fh:
        for paper in sorted(entries):
            write_entry(fh, *entries[paper])
    kept = sum(int(e.meta) for e in entries.values())
    result.counts = {"panels": len(lines), "kept": kept, "dropped": len(lines) - kept, "papers_resumed": resumed}
    return result
