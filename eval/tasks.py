"""Evaluation tasks: one declarative definition each (lmms-eval style).

A Task says everything that decides what a model is asked and how its answer is read: the instruction
prompt, the answer parser, the label set, the benchmark column holding the truth, the metrics (with
`higher_is_better`), the generation defaults (temperature 0) and a version that changes whenever any of
these does. `fracture_morphology` takes its prompt and parser from fracto_core.answer_format —
the text the model was trained on — never from here.

Multiple-choice tasks (`microscopy_technique`, `material_category`) list lettered choices; their parser
accepts the letter or the choice name (or a synonym), and never guesses: an answer that names no
choice, or several, is 'unparseable'.

Usage:
    from eval.tasks import get_task, task_names
    task = get_task("fracture_morphology")
    task.prompt()                      # the user-turn text after the image
    task.parse('{"features": ["dimples"]}').labels   # ('equiaxed dimples',)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from fracto_core.answer_format import PROMPT_VERSION, answer_json_schema, instruction_prompt, parse_answer
from fracto_core.vocabulary import canonical_names, rare_names
from eval.letters import read_letter

TaskKind = Literal["multilabel", "multiple_choice"]
ParseStatus = Literal["ok", "mapped", "off_vocabulary", "unparseable"]


@dataclass(frozen=True)
class MetricSpec:
    """One reported figure: its key in eval.metrics' results and which direction is better."""

    name: str
    higher_is_better: bool
    description: str


@dataclass(frozen=True)
class GenerationDefaults:
    """Sampling parameters sent explicitly with every request (a run may override them; the run card records them)."""

    temperature: float = 0.0
    max_tokens: int = 512  # 28 labels x ~6 tokens + JSON ~ 200 tokens; room for a chatty prefix
    top_p: float = 1.0


@dataclass(frozen=True)
class TaskAnswer:
    """A parsed reply. `labels` is empty whenever status is 'unparseable' (it names nothing). For multilabel
    tasks, status 'off_vocabulary' keeps the labels in the vocabulary and lists the others in `unknown`:
    each of those is scored as a wrong feature."""

    labels: tuple[str, ...]
    status: ParseStatus
    detail: str = ""
    unknown: tuple[str, ...] = ()  # names the parser could not map (the per-sample log lists them)


@dataclass(frozen=True)
class Choice:
    """One answer option of a multiple-choice task."""

    name: str
    synonyms: tuple[str, ...] = ()

    @property
    def phrases(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms)


@dataclass(frozen=True)
class Task:
    name: str
    version: str  # changes whenever prompt, parser, labels or generation defaults change
    kind: TaskKind
    labels: tuple[str, ...]  # canonical labels, in report order
    label_field: str  # BenchmarkItem field holding the truth: "features" | "technique" | "material"
    prompt: Callable[[], str]
    parse: Callable[[str], TaskAnswer]
    metrics: tuple[MetricSpec, ...]
    generation: GenerationDefaults = field(default_factory=GenerationDefaults)
    prompt_version: str = ""
    rare: tuple[str, ...] = ()  # labels counted in rare-feature recall (multilabel only)
    description: str = ""
    question: str = ""  # multiple choice: the question before the lettered choices (eval.circular reorders them)
    choices: tuple["Choice", ...] = ()  # multiple choice: the options, in the task's own order
    schema: dict | None = None  # structured-output schema when it is not the kind's default

    def response_schema(self) -> dict:
        """JSON schema for structured output (`response_format={"type": "json_schema", ...}`).

        It describes the same answer format the prompt asks for; replies are still parsed by `parse`
        (the raw text is kept), because backends enforce schemas unevenly.
        """
        if self.schema is not None:
            return {"name": self.name, "strict": True, "schema": self.schema}
        if self.kind == "multilabel":  # the training answer format's own schema (one source)
            return {"name": self.name, "strict": True, "schema": answer_json_schema()}
        body = {"answer": {"type": "string", "enum": list(self.labels)}}
        return {"name": self.name, "strict": True,
                "schema": {"type": "object", "properties": body, "required": ["answer"],
                           "additionalProperties": False}}


class UnknownTaskError(LookupError):
    """Raised for a task name that is not registered; the message lists the valid names."""


# --- fracture morphology (multi-label; prompt and parser shared with training) ---------------------

def _parse_morphology(text: str) -> TaskAnswer:
    """Feature by feature (fracto_core.answer_format): known names and synonyms kept, unknown names listed."""
    parsed = parse_answer(text)
    return TaskAnswer(parsed.features, parsed.status, parsed.detail, parsed.unknown)


MULTILABEL_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("micro_precision", True, "correct predicted features / all predicted features (the paper's headline)"),
    MetricSpec("micro_recall", True, "correct predicted features / all true features"),
    MetricSpec("micro_f1", True, "harmonic mean of micro precision and recall"),
    MetricSpec("macro_precision", True, "mean per-feature precision over features the model predicted"),
    MetricSpec("macro_recall", True, "mean per-feature recall over features present in the benchmark"),
    MetricSpec("macro_f1", True, "mean per-feature F1 over features predicted or present"),
    MetricSpec("sample_precision", True, "mean per-image precision (an empty answer scores 0)"),
    MetricSpec("exact_match", True, "share of images whose predicted set equals the true set"),
    MetricSpec("rare_recall", True, "micro recall over the vocabulary's rare features"),
    MetricSpec("unparseable_share", False, "parse failures: share of replies with no answer in the format (empty, "
               "invalid, truncated); they name no feature"),
    MetricSpec("strict_micro_precision", True, "micro precision counting each parse failure as one wrong answer"),
    MetricSpec("strict_micro_f1", True, "micro F1 counting each parse failure as one wrong answer"),
)

MULTIPLE_CHOICE_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("accuracy", True, "share of images answered with the true choice"),
    MetricSpec("balanced_accuracy", True, "mean per-class recall over classes present in the benchmark"),
    MetricSpec("macro_precision", True, "mean per-class precision over classes the model chose"),
    MetricSpec("macro_recall", True, "mean per-class recall over classes present (= balanced accuracy)"),
    MetricSpec("macro_f1", True, "mean per-class F1 over classes chosen or present"),
    MetricSpec("top1_accuracy", True, "top-1 accuracy from ranked choice scores (embedding baselines)"),
    MetricSpec("top2_accuracy", True, "top-2 accuracy from ranked choice scores (embedding baselines)"),
    MetricSpec("unparseable_share", False, "share of replies naming no choice or several (scored as wrong)"),
)


# --- multiple choice ---------------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


def multiple_choice_prompt(question: str, choices: tuple[Choice, ...]) -> str:
    """The user-turn text: the question, lettered choices, and the answer format (one letter)."""
    listed = "; ".join(f"{LETTERS[i]}. {c.name}" for i, c in enumerate(choices))
    return (f"{question} Choices: {listed}. "
            "Answer with the letter of exactly one choice and nothing else.")


def _names_in(text: str, choices: tuple[Choice, ...]) -> list[str]:
    """Choice names whose phrases occur in text as whole words (longest phrase first, no overlaps)."""
    words = re.sub(r"[^0-9A-Za-z_/+\- ]", " ", text)
    norm = f" {_normalise(words)} "
    phrases = sorted(((_normalise(p), c.name) for c in choices for p in c.phrases), key=lambda x: -len(x[0]))
    found: list[str] = []
    for phrase, name in phrases:
        token = f" {phrase} "
        while token in norm:
            norm = norm.replace(token, " | ", 1)
            if name not in found:
                found.append(name)
    return found


def json_object(text: str | None) -> dict:
    """The first {...} JSON object in a reply ({} when there is none or it is not valid JSON)."""
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    try:
        obj = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def parse_choice(text: str, choices: tuple[Choice, ...]) -> TaskAnswer:
    """Read one choice from a reply: a letter ("B", "(B)", "B.", "Answer: B"), {"answer": ...}, or a name.

    Status 'ok' for a bare letter or an exact choice name, 'mapped' when it was found inside prose or
    through a synonym, 'unparseable' for no choice, several different choices, or a letter out of range.
    """
    raw = (text or "").strip()
    if not raw:
        return TaskAnswer((), "unparseable", "empty reply")
    valid = LETTERS[: len(choices)]
    by_letter = {LETTERS[i]: c.name for i, c in enumerate(choices)}
    obj = json_object(raw)
    if isinstance(obj.get("answer"), str):
        return parse_choice(obj["answer"], choices)
    exact = {_normalise(c.name): c.name for c in choices}
    if _normalise(raw.rstrip(".")) in exact:
        return TaskAnswer((exact[_normalise(raw.rstrip("."))],), "ok")
    # --- issue 14: the letter the reply gives as its answer (eval.letters), not its first capital ---
    read = read_letter(raw, valid)
    if read.letter is not None:
        letter_name = by_letter[read.letter]
        names = _names_in(raw, choices)
        if names and letter_name not in names:
            return TaskAnswer((), "unparseable", f"letter {read.letter} ({letter_name}) contradicts {names}", (raw,))
        return TaskAnswer((letter_name,), "ok" if read.tier == "whole reply" else "mapped", read.tier)
    if read.candidates:  # several letters, or one out of range: never a guess
        return TaskAnswer((), "unparseable", read.detail, (raw,))
    # --- end issue 14 ---
    names = _names_in(raw, choices)
    if len(names) == 1:
        return TaskAnswer((names[0],), "mapped")
    if len(names) > 1:
        return TaskAnswer((), "unparseable", f"reply names several choices: {names}", (raw,))
    return TaskAnswer((), "unparseable", "reply names no choice", (raw,))


TECHNIQUES: tuple[Choice, ...] = (
    Choice("SEM", ("scanning electron microscopy", "scanning electron microscope", "scanning electron micrograph",
                   "sem image", "sem fractograph", "secondary electron image", "fesem", "fe-sem")),
    Choice("optical microscopy", ("optical microscope", "light microscopy", "light microscope",
                                  "optical micrograph", "light optical microscopy", "om")),
    Choice("stereo microscopy", ("stereo microscope", "stereomicroscope", "stereomicroscopy",
                                 "stereo optical microscope", "stereo optical microscopy", "stereo optical",
                                 "stereo")),
    Choice("TEM", ("transmission electron microscopy", "transmission electron microscope", "tem replica",
                   "replica tem")),
    Choice("confocal microscopy", ("confocal laser scanning microscopy", "clsm", "laser scanning confocal microscopy",
                                   "confocal", "3d optical profilometry", "optical profilometry")),
    Choice("macro photograph", ("photograph", "macrograph", "camera photograph", "digital photograph",
                                "macrophotograph")),
)

MATERIALS: tuple[Choice, ...] = (
    Choice("steel", ("steels", "stainless steel", "carbon steel", "low-alloy steel", "tool steel",
                     "maraging steel", "martensitic steel", "austenitic steel")),
    Choice("aluminium alloy", ("aluminum alloy", "aluminium", "aluminum", "al alloy", "aluminium alloys",
                               "aluminum alloys")),
    Choice("titanium alloy", ("titanium", "ti alloy", "ti-6al-4v", "ti6al4v", "titanium alloys")),
    Choice("nickel superalloy", ("nickel-based superalloy", "nickel base superalloy", "ni-based superalloy",
                                 "superalloy", "inconel", "nickel alloy", "nickel superalloys")),
    Choice("magnesium alloy", ("magnesium", "mg alloy", "magnesium alloys")),
    Choice("copper alloy", ("copper", "brass", "bronze", "cu alloy", "copper alloys")),
    Choice("other metal", ("cast iron", "other metallic alloy", "high-entropy alloy", "intermetallic")),
    Choice("polymer", ("plastic", "polymers", "thermoplastic", "thermoset", "epoxy resin")),
    Choice("ceramic/glass", ("ceramic", "ceramics", "glass", "glass ceramic", "ceramic or glass")),
    Choice("composite", ("composites", "fibre composite", "fiber composite", "cfrp", "gfrp",
                         "fibre-reinforced polymer", "fiber-reinforced polymer", "metal matrix composite")),
)


def _choice_task(name: str, version: str, label_field: str, question: str, choices: tuple[Choice, ...],
                 description: str) -> Task:
    return Task(
        name=name, version=version, kind="multiple_choice", labels=tuple(c.name for c in choices),
        label_field=label_field, prompt=lambda: multiple_choice_prompt(question, choices),
        parse=lambda text: parse_choice(text, choices), metrics=MULTIPLE_CHOICE_METRICS,
        generation=GenerationDefaults(max_tokens=64), prompt_version=version, description=description,
        question=question, choices=choices,
    )


# --- issue 14: failure mechanism (one of a fixed list, with reasons; eval/mechanism.py reasons about it) ----

MECHANISMS: tuple[Choice, ...] = (
    Choice("ductile overload", ("ductile fracture", "ductile overload fracture", "microvoid coalescence",
                                "ductile")),
    Choice("brittle overload", ("brittle fracture", "cleavage fracture", "brittle overload fracture", "brittle")),
    Choice("fatigue", ("fatigue fracture", "fatigue failure", "low cycle fatigue", "high cycle fatigue")),
    Choice("very-high-cycle fatigue", ("vhcf", "gigacycle fatigue", "very high cycle fatigue fracture")),
    Choice("intergranular embrittlement", ("embrittlement", "temper embrittlement", "grain boundary embrittlement")),
    Choice("creep", ("creep fracture", "creep rupture", "stress rupture")),
    Choice("stress-corrosion cracking", ("stress corrosion cracking", "scc", "igscc",
                                         "intergranular stress corrosion cracking")),
    Choice("hydrogen embrittlement", ("hydrogen assisted cracking", "hydrogen induced cracking", "hydrogen damage")),
    Choice("defect-initiated", ("defect initiated fracture", "defect initiated failure", "defect initiated fatigue")),
    Choice("undetermined", ("unknown", "cannot be determined", "indeterminate", "inconclusive")),
)
MECHANISM_QUESTION = "You are an expert in fractography. Which failure mechanism does this fracture surface show?"
MECHANISM_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["mechanism", "reasons"],
    "properties": {"mechanism": {"type": "string", "enum": [c.name for c in MECHANISMS]},
                   "reasons": {"type": "array", "items": {"type": "string"}}},
}


def mechanism_answer_format() -> str:
    """The answer instruction shared by the image prompt and the reasoner prompt (eval.mechanism)."""
    names = "; ".join(c.name for c in MECHANISMS)
    return (f"Choose exactly one of: {names}. Answer 'undetermined' when the evidence does not decide. "
            'Reply with JSON only: {"mechanism": "<one of the list>", "reasons": ["<short reason>", ...]}')


def parse_mechanism(text: str) -> TaskAnswer:
    """{"mechanism": ..., "reasons": [...]} (or prose naming exactly one mechanism) -> the mechanism."""
    obj = json_object(text)
    if isinstance(obj.get("mechanism"), str):
        return parse_choice(obj["mechanism"], MECHANISMS)
    return parse_choice(text, MECHANISMS)


# --- registry ----------------------------------------------------------------------------------------

TASKS: dict[str, Task] = {
    t.name: t for t in (
        Task(
            name="fracture_morphology", version=f"fracture_morphology-2/{PROMPT_VERSION}", kind="multilabel",
            labels=tuple(canonical_names()), label_field="features", prompt=instruction_prompt,
            parse=_parse_morphology, metrics=MULTILABEL_METRICS, prompt_version=PROMPT_VERSION,
            rare=tuple(rare_names()),
            description="Name every fracture-surface morphology feature in the image (multi-label).",
        ),
        _choice_task(
            "microscopy_technique", "microscopy_technique-1", "technique",
            "You are an expert in fractography. Which imaging technique recorded this fracture-surface image?",
            TECHNIQUES, "Which imaging technique recorded the image (multiple choice).",
        ),
        _choice_task(
            "material_category", "material_category-1", "material",
            "You are an expert in fractography. Which class of material does this fracture surface belong to?",
            MATERIALS, "Which material class the fractured part is made of (multiple choice).",
        ),
        Task(  # issue 14
            name="failure_mechanism", version="failure_mechanism-1", kind="multiple_choice",
            labels=tuple(c.name for c in MECHANISMS), label_field="mechanism",
            prompt=lambda: f"{MECHANISM_QUESTION} {mechanism_answer_format()}", parse=parse_mechanism,
            metrics=MULTIPLE_CHOICE_METRICS, generation=GenerationDefaults(max_tokens=400),
            prompt_version="failure_mechanism-1", choices=MECHANISMS, schema=MECHANISM_SCHEMA,
            description="Which failure mechanism the fracture surface points to, with reasons (eval/mechanism.py).",
        ),
    )
}


# Free-text tasks scored by an LLM judge: their own runner, not the Task machinery above (issue 15).
JUDGED_TASKS: dict[str, str] = {"sem_qa": "eval.qa_task"}  # task name -> module with main(argv)


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    """The registered task; UnknownTaskError lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None


def canonical_choice(task: Task, value: str) -> str | None:
    """A benchmark cell (choice name or synonym, any case) as the task's canonical choice, or None."""
    choices = {"technique": TECHNIQUES, "material": MATERIALS, "mechanism": MECHANISMS}.get(task.label_field, ())
    key = _normalise(value)
    for c in choices:
        if key in {_normalise(p) for p in c.phrases}:
            return c.name
    return None
