"""The per-sample log of a run and its resume check: one scored SampleRecord per reply, and which earlier samples
a resumed run may keep.

Scoring rule (every reply is scored): the reply is read feature by feature (fracto_core.answer_format);
names in the vocabulary and their synonyms count, each name outside it is a false positive listed in the
record; a reply without an answer in the format -- empty, invalid, cut at max tokens -- is a parse failure
that names no feature (it costs recall; the strict figures count it as one wrong answer).

Resume rule: samples.jsonl of run_dir is kept only if the run card names the same task, model, benchmark,
parameters and model identity (eval.identity); anything else is refused with both sides named and the ways
on (--out, --no-resume), never reused silently. Reads run_card.json and samples.jsonl; writes nothing
except cutting a torn last line.

Usage:
    done = previous_samples(run_dir, task, spec.name, bench, references, params, identity)
    record = record_for(result, task, spec, item, reference, params)
"""

from __future__ import annotations

from pathlib import Path

from fracto_core.vlm_api.client import CallResult
from eval.benchmark import Benchmark, BenchmarkItem
from eval.metrics import sample_scores
from eval.models import ModelSpec
from eval.plan import RunError
from eval.records import (
    RUN_CARD_FILE,
    SAMPLES_FILE,
    ModelIdentity,
    RequestParams,
    RunCard,
    RunFormatError,
    SampleRecord,
    SampleScores,
    TokenUsage,
    read_samples,
)
from eval.tasks import Task

WAYS_ON = "; use another --out for a new run folder, or --no-resume to start this run over in it"


def record_for(result: CallResult, task: Task, spec: ModelSpec, item: BenchmarkItem, reference: list[str],
               params: RequestParams) -> SampleRecord:
    """A SampleRecord for one call result: every reply is scored (see the module docstring); no reply is a failure."""
    base = dict(item_id=item.item_id, image_sha256=item.image_sha256, task=task.name, model=spec.name,
                reference=reference, request=params, attempts=result.attempts, cached=result.cached)
    if result.status in ("failed", "not_run") or result.text is None:
        return SampleRecord(**base, error=result.error or f"no reply ({result.status})",
                            latency_s=None if result.attempts == 0 else result.latency_s)
    answer = task.parse(result.text)
    status, labels, unknown, detail = answer.status, answer.labels, answer.unknown, answer.detail
    if result.status == "invalid":  # empty, or cut at max tokens: a parse failure whatever it holds
        status, labels, unknown = "unparseable", (), ()
        detail = f"{result.error}; {detail}" if detail else result.error
    off_vocab = len(unknown) if status == "off_vocabulary" else 0
    scores = SampleScores(**sample_scores(reference, labels, off_vocab))
    return SampleRecord(**base, raw_reply=result.text, parsed=list(labels), parse_status=status,
                        parse_detail=detail, unknown_labels=list(unknown), scores=scores,
                        served_model=result.model, latency_s=None if result.cached else result.latency_s,
                        tokens=TokenUsage(prompt=result.input_tokens, completion=result.output_tokens))


def failed_record(item: BenchmarkItem, task: Task, spec: ModelSpec, reference: list[str], params: RequestParams,
                  error: str) -> SampleRecord:
    return SampleRecord(item_id=item.item_id, image_sha256=item.image_sha256, task=task.name, model=spec.name,
                        reference=reference, request=params, attempts=0, error=error)


def check_identity(run_dir: Path, recorded: ModelIdentity | None, now: ModelIdentity) -> None:
    """RunError naming both identities when the run folder holds replies of another model."""
    if recorded is not None and recorded.key == now.key:
        return
    old = recorded.describe() if recorded is not None else "none recorded (a run card written before identities)"
    raise RunError(f"{run_dir} holds replies of another model (or of a run that recorded none): its replies are "
                   f"not reused.\n  recorded: {old}\n  now:      {now.describe()}\n"
                   + WAYS_ON.lstrip("; ").capitalize())


def previous_samples(run_dir: Path, task: Task, model: str, bench: Benchmark, references: dict[str, list[str]],
                     params: RequestParams, identity: ModelIdentity | None,
                     context: str = "none", circular: bool = False) -> dict[str, SampleRecord]:
    """The samples an earlier run of the same settings and model left in run_dir (RunError if they belong to
    another run). model: the registry name (RunCard.model); identity None: not checked (a dry run that could
    not ask the server); context: the context level (eval.context); circular: multiple choice asked in every
    rotation (eval.circular; RunCard.protocol["circular"]) rather than once."""
    samples_path = run_dir / SAMPLES_FILE
    if not samples_path.exists():
        return {}
    card_path = run_dir / RUN_CARD_FILE
    where = f"{run_dir} holds another run"
    if card_path.exists():
        try:
            card = RunCard.model_validate_json(card_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunError(f"{card_path}: not a run card ({exc}){WAYS_ON}") from None
        for what, old, new in (("task", card.task_version, task.version), ("model", card.model, model),
                               ("context", card.context or "none", context), ("benchmark", card.benchmark.name,
                                                                              bench.name)):
            if old != new:
                raise RunError(f"{where}: {what} {old!r}, not {new!r}{WAYS_ON}")
        if bool(card.protocol.get("circular")) != circular:  # one sample per image either way: never mixed
            asked = {True: "circular (every rotation)", False: "once (--no-circular)"}
            raise RunError(f"{where}: its options were asked {asked[not circular]}, not {asked[circular]}{WAYS_ON}")
        if card.parameters != params:
            raise RunError(f"{where}: parameters {card.parameters.model_dump()} differ from "
                           f"{params.model_dump()}{WAYS_ON}")
        if identity is not None:
            check_identity(run_dir, card.identity, identity)
    try:
        samples, _ = read_samples(samples_path)
    except RunFormatError as exc:
        raise RunError(f"{exc}{WAYS_ON}") from None
    by_id = {it.item_id: it for it in bench.items}
    outside = [s.item_id for s in samples if s.item_id not in by_id]
    if outside:
        raise RunError(f"{where}: samples of items not in this benchmark (or beyond --limit): {outside[:5]}{WAYS_ON}")
    for s in samples:
        item = by_id[s.item_id]
        if s.image_sha256 != item.image_sha256 or s.reference != references[s.item_id] or s.request != params:
            raise RunError(f"{where}: sample {s.item_id} was made with another image, labels or parameters{WAYS_ON}")
    return {s.item_id: s for s in samples}
