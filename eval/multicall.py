"""Runs whose samples need more than the single fixed-prompt call of eval.run: circular multiple choice,
context levels, failure mechanism, the hybrid specialist + reasoner, and the CLIP baseline (eval.clip_baseline).

eval.run hands a run over here (`wants_multicall`) when the task is multiple choice with lettered options
(circular unless --no-circular), the task is failure_mechanism, --context is not none, or --model is
hybrid:... / clip:... The run directory has the same files as eval.run's (samples.jsonl, run_card.json,
benchmark_card.json, response_cache.sqlite, report/) and eval.report reads it the same way; each sample
also lists every call behind it (SampleRecord.calls: rotations, or the hybrid's specialist and reasoner),
each with its reply, cache flag and tokens.

Model identity and resume as in eval.run: every model behind the run (each part of a hybrid) records its
identity (eval.identity) before anything is sent; the run card holds it (a hybrid's combined over both
parts), every request's cache key holds its model's, and a run folder made by another identity, task,
model, context level or parameters is refused naming both (ways on: --out, --no-resume). Each sample is
appended to samples.jsonl and flushed the moment its last call returns, so a killed run keeps every
finished sample; running the same command again skips them and asks only for the rest (calls already
answered come from the response cache); failed samples are asked again. --no-resume starts over without
the cache. A sample whose call(s) failed is a failure (error set, calls kept). CLIP runs (local, no
calls) are scored whole each time.

Usage: python -m eval.run --task material_category --model vllm:fracto-32b --benchmark expert/labels.csv
       python -m eval.run --task failure_mechanism --model hybrid:vllm:fracto-32b+openai:gpt-5.5 --context caption
"""

from __future__ import annotations

import json
from pathlib import Path

from fracto_core.files import write_json_atomic
from fracto_core.vlm_api.payloads import ImageInput
from eval.benchmark import Benchmark, BenchmarkError
from eval.calls import Caller, answer_of, call_log, chat_request, gather, make_caller, make_record, send
from eval.circular import DEFAULT_SEED, chosen_position, circular_summary, option_orders, rotation_parse, rotation_prompt
from eval.context import check_level, coverage, with_context
from eval.identity import offline_identity
from eval.mechanism import HYBRID_PREFIX, reasons_of
from eval.plan import (CACHE_FILE, DEFAULT_BENCHMARK, DEFAULT_OUT_ROOT, RunError, RunOutcome, attach_report, now,
                       open_benchmark,
                       pixel_budget, slug, versions)
from eval.records import (BENCHMARK_CARD_FILE, RUN_CARD_FILE, SAMPLES_FILE, BenchmarkRef, Cost, RunCard, SampleLog,
                          SampleRecord, read_samples)
from eval.resume import check_identity, previous_samples
from eval.tasks import Task, get_task

CLIP_PREFIX = "clip:"


def is_circular(task: Task, config) -> bool:
    return task.kind == "multiple_choice" and bool(task.question) and getattr(config, "circular", True)


def wants_multicall(config) -> bool:
    """True when eval.run should hand this run to run_multicall (see the module docstring)."""
    task = get_task(config.task)
    return (config.model.startswith((HYBRID_PREFIX, CLIP_PREFIX)) or getattr(config, "context", "none") != "none"
            or task.name == "failure_mechanism" or is_circular(task, config))


def _images(bench: Benchmark, items, max_pixels: int, min_pixels: int) -> tuple[dict[str, ImageInput], dict[str, str]]:
    images, unreadable = {}, {}
    for item in items:
        try:
            images[item.item_id] = ImageInput.from_path(bench.image_path(item), max_pixels, min_pixels)
        except OSError as exc:
            unreadable[item.item_id] = f"image unreadable: {exc}"
    return images, unreadable


def _circular(caller: Caller, config, task: Task, items, refs, images, cache_path: Path, level: str, write) -> None:
    seed = DEFAULT_SEED if config.seed is None else config.seed
    by_id = {it.item_id: it for it in items}
    orders = {it.item_id: option_orders(it.item_id, task, seed) for it in items if it.item_id in images}
    requests = {f"{i}#{k}": chat_request(caller, f"{i}#{k}", [images[i], with_context(
        by_id[i], level, rotation_prompt(task, order))], task) for i in orders for k, order in enumerate(orders[i])}

    def finish(item_id, results):
        calls, answers = [], []
        for k, order in enumerate(orders[item_id]):
            res = results[f"{item_id}#{k}"]
            ans = answer_of(res, lambda text, order=order: rotation_parse(task, order, text))
            answers.append(ans)
            calls.append(call_log(f"rotation {k}", requests[f"{item_id}#{k}"], res, ans, order=list(order),
                                  position=None if ans is None else chosen_position(order, ans),
                                  correct=None if ans is None else list(ans.labels) == refs[item_id]))
        complete = all(a is not None for a in answers)
        write(make_record(by_id[item_id], task, caller.name, refs[item_id], caller.recorded, level,
                          answers[0] if complete else None, calls[0].raw_reply, calls,
                          **({"circular_correct": all(c.correct for c in calls)} if complete else {})))

    groups = {i: [f"{i}#{k}" for k in range(len(orders[i]))] for i in orders}
    send(caller, list(requests.values()), config, cache_path, on_result=gather(groups, finish))


def _single(caller: Caller, config, task: Task, items, refs, images, cache_path: Path, level: str, write) -> None:
    by_id = {it.item_id: it for it in items}
    requests = {i: chat_request(caller, i, [images[i], with_context(by_id[i], level, task.prompt())], task)
                for i in by_id if i in images}

    def finish(item_id, results):
        res = results[item_id]
        ans = answer_of(res, task.parse)
        extra = {"reasons": reasons_of(res.text)} if ans is not None and task.name == "failure_mechanism" else {}
        write(make_record(by_id[item_id], task, caller.name, refs[item_id], caller.recorded, level, ans, res.text,
                          [call_log("model", requests[item_id], res, ans)], **extra))

    send(caller, list(requests.values()), config, cache_path, on_result=gather({i: [i] for i in requests}, finish))


def run_multicall(config) -> object:
    """Run (or resume) one multi-call evaluation (see the module docstring)."""
    from eval import hybrid as hybrid_run

    task = get_task(config.task)
    level = check_level(config.context)
    if config.dry_run:
        raise RunError("--dry-run is not available yet for circular, context, hybrid and CLIP runs")
    bench = open_benchmark(config.benchmark, config.limit)
    try:
        refs = {it.item_id: ref for it, ref in zip(bench.items, bench.references(task))}
    except BenchmarkError as exc:
        raise RunError(str(exc)) from None
    max_pixels, min_pixels, _ = pixel_budget(bench, config.image_max_pixels)
    suffix = "" if level == "none" else f"__ctx-{slug(level)}"
    run_dir = Path(config.out) if config.out is not None else (
        DEFAULT_OUT_ROOT / task.name / f"{slug(config.model)}{suffix}")
    warnings: list[str] = []
    protocol: dict = {"context": level, "context_coverage": coverage(bench.items, level)}
    clip = config.model.startswith(CLIP_PREFIX)
    caller = hybrid = None
    clip_scored: list[SampleRecord] = []
    if clip:  # local and scored whole (the morphology threshold comes from the validation split)
        from eval.clip_baseline import ClipError, clip_samples, clip_weights

        if level != "none":
            raise RunError("a CLIP baseline reads no text context: use --context none")
        try:
            identity = offline_identity(*clip_weights(config.model, config.seed))
            clip_scored, recorded, extra = clip_samples(config, task, bench, refs, max_pixels, min_pixels)
        except ClipError as exc:
            raise RunError(str(exc)) from None
        protocol.update(extra)
    elif config.model.startswith(HYBRID_PREFIX):
        hybrid = hybrid_run.setup(config, task, (max_pixels, min_pixels), warnings)
        identity, recorded = hybrid.identity, hybrid.recorded
        protocol["hybrid"] = hybrid.names.specialist, hybrid.names.reasoner
    else:
        caller = make_caller(config.model, config, task, max_pixels, min_pixels, warnings)
        identity, recorded = caller.identity, caller.recorded
        if is_circular(task, config):
            protocol.update({"circular": True, "seed": DEFAULT_SEED if config.seed is None else config.seed,
                             "rotations": len(task.choices)})
    done: dict[str, SampleRecord] = {}
    if config.resume and clip:  # scored whole: only the model identity must match
        _check_clip_folder(run_dir, identity)
    elif config.resume:
        done = {k: s for k, s in previous_samples(run_dir, task, config.model, bench, refs, recorded, identity,
                                                  level, bool(protocol.get("circular"))).items() if not s.failed}
    todo = [it for it in bench.items if it.item_id not in done]
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_path = run_dir / CACHE_FILE
    card = RunCard(task=task.name, task_version=task.version, prompt_version=task.prompt_version, model=config.model,
                   backend="open_clip" if clip else "multi-call", parameters=recorded,
                   benchmark=BenchmarkRef(name=bench.name, kind=bench.kind, hash=bench.hash, n_items=len(bench.items),
                                          expert=bench.expert_card,
                                          path=str(config.benchmark or DEFAULT_BENCHMARK)),
                   limit=config.limit, concurrency=config.concurrency, versions=versions(), started_at=now(),
                   context=level, protocol=protocol, identity=identity)
    write_json_atomic(run_dir / RUN_CARD_FILE, json.loads(card.model_dump_json()))  # before any call: resume checks it
    write_json_atomic(run_dir / BENCHMARK_CARD_FILE, bench.card())
    with SampleLog(run_dir / SAMPLES_FILE, fresh=clip or not config.resume) as log:
        for s in clip_scored:
            log.write(s)
        if not clip:
            images, unreadable = _images(bench, todo, max_pixels, min_pixels)
            by_id = {it.item_id: it for it in todo}
            for item_id, error in unreadable.items():
                log.write(SampleRecord(item_id=item_id, image_sha256=by_id[item_id].image_sha256, task=task.name,
                                       model=config.model, reference=refs[item_id], request=recorded,
                                       context=level, attempts=0, error=error))
            args = (config, task, todo, refs, images, cache_path, level, log.write)
            if hybrid is not None:
                hybrid_run.run_hybrid(hybrid, *args)
            elif protocol.get("circular"):
                _circular(caller, *args)
            else:
                _single(caller, *args)
    return _finish(card, run_dir, task, bench, config, len(done), warnings)


def _check_clip_folder(run_dir: Path, identity) -> None:
    card_path = run_dir / RUN_CARD_FILE
    if card_path.exists():
        try:
            card = RunCard.model_validate_json(card_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunError(f"{card_path}: not a run card ({exc}); use another --out or --no-resume") from None
        check_identity(run_dir, card.identity, identity)


def _finish(card: RunCard, run_dir: Path, task: Task, bench: Benchmark, config, already_done: int,
            warnings: list[str]) -> RunOutcome:
    """Counts, tokens and the circular summary from samples.jsonl into the run card; the report."""
    order = {it.item_id: n for n, it in enumerate(bench.items)}
    samples = sorted(read_samples(run_dir / SAMPLES_FILE)[0], key=lambda s: order.get(s.item_id, len(order)))
    scored = [s for s in samples if not s.failed]
    if card.protocol.get("circular") and scored:  # no scored sample (every call failed): nothing to summarise
        card.protocol["circular_summary"] = circular_summary([[c.model_dump() for c in s.calls] for s in scored],
                                                             len(task.choices))
    card.finished_at, card.n_samples, card.n_failed = now(), len(samples), len(samples) - len(scored)
    for role, part in (card.identity.parts or {"": card.identity}).items():  # the replies' snapshots, per model
        part.snapshots = sorted({c.served_model for s in scored for c in s.calls
                                 if c.served_model and (not role or c.role == role)})
        if len(part.snapshots) > 1:
            warnings.append(f"the {role or 'model'}'s replies came from several model snapshots: {part.snapshots}")
    card.cost = Cost(prompt_tokens=sum((s.tokens.prompt or 0) for s in scored if s.tokens),
                     completion_tokens=sum((s.tokens.completion or 0) for s in scored if s.tokens),
                     pricing="see each call's tokens (multi-call run)")
    write_json_atomic(run_dir / RUN_CARD_FILE, json.loads(card.model_dump_json()))
    outcome = RunOutcome(run_dir=run_dir, card=card, n_items=len(bench.items), n_failed=card.n_failed,
                         already_done=already_done, warnings=warnings,
                         n_unparseable=sum(s.parse_status == "unparseable" for s in scored))
    if config.report:
        attach_report(outcome, task)
    return outcome
