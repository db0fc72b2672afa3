"""Runs whose samples need more than the single fixed-prompt call of eval.run: circular multiple choice,
context levels, failure mechanism, the hybrid specialist + reasoner, and the CLIP baseline (eval.clip_baseline).

eval.run hands a run over here (`wants_multicall`) when the task is multiple choice with lettered options
(circular unless --no-circular), the task is failure_mechanism, --context is not none, or --model is
hybrid:... / clip:... The run directory has the same files as eval.run's (samples.jsonl, run_card.json,
benchmark_card.json, response_cache.sqlite, report/) and eval.report reads it the same way; each sample
also lists every call behind it (SampleRecord.calls: rotations, or the hybrid's specialist and reasoner),
each with its reply, cache flag and tokens.

Calls go through the shared client (fracto_core.vlm_api) with the run's response cache: re-running the
same command re-sends only what has no cached reply (samples.jsonl is rewritten at the end of each run);
--no-resume ignores the cache. A sample whose call(s) failed is a failure (error set, calls kept).

Usage: python -m eval.run --task material_category --model vllm:fracto-32b --benchmark expert/labels.csv
       python -m eval.run --task failure_mechanism --model hybrid:vllm:fracto-32b+openai:gpt-5.5 --context caption
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fracto_core.files import write_json_atomic, write_text_atomic
from fracto_core.vlm_api.backends import Endpoint, ProviderError
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult, ClientOptions, run_requests
from fracto_core.vlm_api.payloads import ChatRequest, ImageInput, build_request
from fracto_core.vlm_api.pricing import price_for
from eval.benchmark import Benchmark, BenchmarkError, BenchmarkItem
from eval.circular import DEFAULT_SEED, chosen_position, circular_summary, option_orders, rotation_parse, rotation_prompt
from eval.context import check_level, coverage, with_context
from eval.mechanism import (HYBRID_PREFIX, ORACLE_SPECIALIST, RULES_REASONER, HybridNameError, parse_hybrid,
                            reasoner_prompt, reasons_of, rules_reply)
from eval.metrics import sample_scores
from eval.models import ModelError, resolve_model
from eval.plan import (CACHE_FILE, DEFAULT_BENCHMARK, DEFAULT_OUT_ROOT, RunError, RunOutcome, generation_params, now,
                       open_benchmark, pixel_budget, slug, versions)
from eval.requests import request_params
from eval.records import (BENCHMARK_CARD_FILE, RUN_CARD_FILE, SAMPLES_FILE, BenchmarkRef, CallLog, Cost,
                          RequestParams, RunCard, SampleRecord, SampleScores, TokenUsage)
from eval.tasks import Task, TaskAnswer, get_task

CLIP_PREFIX = "clip:"


def is_circular(task: Task, config) -> bool:
    return task.kind == "multiple_choice" and bool(task.question) and getattr(config, "circular", True)


def wants_multicall(config) -> bool:
    """True when eval.run should hand this run to run_multicall (see the module docstring)."""
    task = get_task(config.task)
    return (config.model.startswith((HYBRID_PREFIX, CLIP_PREFIX)) or getattr(config, "context", "none") != "none"
            or task.name == "failure_mechanism" or is_circular(task, config))


@dataclass
class Caller:
    """One model behind the run: its endpoint and the parameters sent (eval.run's helpers build them)."""

    name: str
    endpoint: Endpoint
    params: object  # vlm_api GenerationParams
    recorded: RequestParams


def _caller(name: str, config, task: Task, max_pixels: int, min_pixels: int) -> Caller:
    try:
        spec = resolve_model(name, config.base_url, config.endpoint_file)
        endpoint = spec.endpoint()
        endpoint.check_ready()
    except (ModelError, ProviderError) as exc:
        raise RunError(str(exc)) from None
    params = generation_params(config, task, endpoint)
    structured = config.structured_output and endpoint.provider.json_schema
    return Caller(name, endpoint, params, request_params(endpoint, params, None, max_pixels, min_pixels, structured))


def _send(caller: Caller, requests: list[ChatRequest], config, cache_path: Path) -> dict[str, CallResult]:
    if not requests:
        return {}
    options = ClientOptions(concurrency=config.concurrency, timeout_s=config.timeout_s, max_attempts=config.max_attempts,
                            backoff_base_s=config.backoff_base_s, price=price_for(caller.endpoint.provider.name,
                                                                                    caller.endpoint.model),
                            progress=config.progress, desc=f"eval {caller.name}")
    if config.resume:
        with ResponseCache(cache_path) as cache:
            results, _ = run_requests(caller.endpoint, requests, options, cache=cache)
    else:
        results, _ = run_requests(caller.endpoint, requests, options, cache=None)
    return {r.request_id: r for r in results}


def _request(caller: Caller, request_id: str, parts: list, task: Task, structured: bool) -> ChatRequest:
    schema = (task.response_schema()["name"], task.response_schema()["schema"]) if structured else None
    return build_request(request_id, caller.endpoint, parts, caller.params, task.version, schema=schema)


def _log(role: str, request: ChatRequest | None, result: CallResult | None, answer: TaskAnswer | None,
         **extra) -> CallLog:
    prompt = "" if request is None else "\n".join(p for p in request.parts if isinstance(p, str))
    if result is None:  # an offline step (rules reasoner, oracle specialist)
        return CallLog(role=role, request_id=extra.pop("request_id", role), prompt=prompt, **extra,
                       **({} if answer is None else {"parsed": list(answer.labels), "parse_status": answer.status}))
    failed = result.status in ("failed", "not_run") or result.text is None
    return CallLog(role=role, request_id=result.request_id, fingerprint=result.fingerprint, prompt=prompt,
                   raw_reply=None if failed else result.text, cached=result.cached, latency_s=result.latency_s,
                   tokens=TokenUsage(prompt=result.input_tokens, completion=result.output_tokens),
                   error=(result.error or f"no reply ({result.status})") if failed else None,
                   **({} if answer is None or failed else {"parsed": list(answer.labels),
                                                            "parse_status": answer.status}), **extra)


def make_record(item: BenchmarkItem, task: Task, model: str, reference: list[str], params: RequestParams,
                level: str, answer: TaskAnswer | None, raw: str | None, calls: list[CallLog], **extra) -> SampleRecord:
    """A SampleRecord for a multi-call sample; answer None (a call without reply) makes it a failure."""
    base = dict(item_id=item.item_id, image_sha256=item.image_sha256, task=task.name, model=model,
                reference=reference, request=params, context=level, calls=calls)
    if answer is None:
        errors = [c.error for c in calls if c.error]
        return SampleRecord(**base, attempts=0, error="; ".join(errors) or "no reply")
    tokens = TokenUsage(prompt=sum((c.tokens.prompt or 0) for c in calls if c.tokens),
                        completion=sum((c.tokens.completion or 0) for c in calls if c.tokens))
    return SampleRecord(**base, raw_reply=raw or "", parsed=list(answer.labels), parse_status=answer.status,
                        parse_detail=answer.detail, unknown_labels=list(answer.unknown),
                        scores=SampleScores(**sample_scores(reference, answer.labels)), tokens=tokens,
                        cached=all(c.cached for c in calls if c.fingerprint), **extra)


def _images(bench: Benchmark, max_pixels: int, min_pixels: int) -> tuple[dict[str, ImageInput], dict[str, str]]:
    images, unreadable = {}, {}
    for item in bench.items:
        try:
            images[item.item_id] = ImageInput.from_path(bench.image_path(item), max_pixels, min_pixels)
        except OSError as exc:
            unreadable[item.item_id] = f"image unreadable: {exc}"
    return images, unreadable


def _circular_samples(caller, task, bench, refs, images, config, cache_path, level) -> list[SampleRecord]:
    seed = DEFAULT_SEED if config.seed is None else config.seed
    orders = {it.item_id: option_orders(it.item_id, task, seed) for it in bench.items if it.item_id in images}
    requests = {f"{it.item_id}#{k}": _request(caller, f"{it.item_id}#{k}", [images[it.item_id], with_context(
        it, level, rotation_prompt(task, order))], task, caller.recorded.structured_output)
        for it in bench.items if it.item_id in orders for k, order in enumerate(orders[it.item_id])}
    results = _send(caller, list(requests.values()), config, cache_path)
    samples = []
    for it in bench.items:
        if it.item_id not in orders:
            continue
        calls, answers = [], []
        for k, order in enumerate(orders[it.item_id]):
            rid = f"{it.item_id}#{k}"
            res = results.get(rid)
            ans = rotation_parse(task, order, res.text) if res is not None and res.text is not None else None
            answers.append(ans)
            calls.append(_log(f"rotation {k}", requests[rid], res, ans, order=list(order),
                              position=None if ans is None else chosen_position(order, ans),
                              correct=None if ans is None else list(ans.labels) == refs[it.item_id]))
        complete = all(a is not None for a in answers)
        samples.append(make_record(it, task, caller.name, refs[it.item_id], caller.recorded, level,
                                   answers[0] if complete else None, calls[0].raw_reply, calls,
                                   **({"circular_correct": all(c.correct for c in calls)} if complete else {})))
    return samples


def _single_samples(caller, task, bench, refs, images, config, cache_path, level) -> list[SampleRecord]:
    requests = {it.item_id: _request(caller, it.item_id, [images[it.item_id], with_context(it, level, task.prompt())],
                                     task, caller.recorded.structured_output)
                for it in bench.items if it.item_id in images}
    results = _send(caller, list(requests.values()), config, cache_path)
    samples = []
    for it in bench.items:
        if it.item_id not in requests:
            continue
        res = results.get(it.item_id)
        ans = task.parse(res.text) if res is not None and res.text is not None else None
        extra = {"reasons": reasons_of(res.text)} if ans is not None and task.name == "failure_mechanism" else {}
        samples.append(make_record(it, task, caller.name, refs[it.item_id], caller.recorded, level, ans,
                                   None if res is None else res.text, [_log("model", requests[it.item_id], res, ans)],
                                   **extra))
    return samples


def _hybrid_samples(config, task, bench, refs, images, cache_path, level, pixels) -> tuple[list, RequestParams]:
    try:
        names = parse_hybrid(config.model)
    except HybridNameError as exc:
        raise RunError(str(exc)) from None
    morph = get_task("fracture_morphology")
    features: dict[str, tuple[TaskAnswer | None, CallLog]] = {}
    if names.specialist == ORACLE_SPECIALIST:
        for it in bench.items:
            ans = TaskAnswer(tuple(it.features), "ok", "benchmark labels (oracle specialist)")
            features[it.item_id] = (ans, _log("specialist", None, None, ans, request_id=f"{it.item_id}/truth",
                                              raw_reply=json.dumps({"features": list(it.features)})))
    else:  # the specialist gets the prompt it was trained on: image + instruction, no context
        spec = _caller(names.specialist, config, morph, *pixels)
        reqs = {it.item_id: _request(spec, f"{it.item_id}/specialist", [images[it.item_id], morph.prompt()], morph,
                                     spec.recorded.structured_output) for it in bench.items if it.item_id in images}
        res = {r.request_id: r for r in _send(spec, list(reqs.values()), config, cache_path).values()}
        for item_id, req in reqs.items():
            r = res.get(req.request_id)
            ans = morph.parse(r.text) if r is not None and r.text is not None else None
            features[item_id] = (ans, _log("specialist", req, r, ans))
    if names.reasoner == RULES_REASONER:
        recorded = RequestParams(model=RULES_REASONER, image_max_pixels=pixels[0],
                                 extra={"specialist": names.specialist, "reasoner": RULES_REASONER})
        replies = {i: (None, None if a is None else rules_reply(a.labels)) for i, (a, _) in features.items()}
    else:
        reasoner = _caller(names.reasoner, config, task, *pixels)
        recorded = reasoner.recorded.model_copy(update={"extra": {**reasoner.recorded.extra,
                                                                  "specialist": names.specialist}})
        items = {it.item_id: it for it in bench.items}
        reqs = {i: _request(reasoner, f"{i}/reasoner", [reasoner_prompt(a.labels, items[i], level)], task,
                            reasoner.recorded.structured_output) for i, (a, _) in features.items() if a is not None}
        res = {r.request_id: r for r in _send(reasoner, list(reqs.values()), config, cache_path).values()}
        replies = {i: (reqs.get(i), res.get(f"{i}/reasoner")) for i in features}
    samples = []
    for it in bench.items:
        if it.item_id not in features:
            continue
        ans_f, spec_log = features[it.item_id]
        req, reply = replies[it.item_id]
        if isinstance(reply, str) or reply is None:  # rules (or no features to reason from)
            text = reply
            ans = None if text is None else task.parse(text)
            reason_log = _log("reasoner", None, None, ans, request_id=f"{it.item_id}/rules", raw_reply=text)
        else:
            text = reply.text
            ans = task.parse(text) if text is not None else None
            reason_log = _log("reasoner", req, reply, ans)
        samples.append(make_record(it, task, config.model, refs[it.item_id], recorded, level, ans, text,
                                   [spec_log, reason_log], **({"reasons": reasons_of(text)} if ans else {})))
    return samples, recorded


def run_multicall(config) -> object:
    """Run one multi-call evaluation (see the module docstring)."""
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
    _check_previous(run_dir, task, config, level, bench)
    run_dir.mkdir(parents=True, exist_ok=True)
    cache_path = run_dir / CACHE_FILE
    protocol: dict = {"context": level, "context_coverage": coverage(bench.items, level)}
    started = now()
    if config.model.startswith(CLIP_PREFIX):
        from eval.clip_baseline import ClipError, clip_samples

        if level != "none":
            raise RunError("a CLIP baseline reads no text context: use --context none")
        try:
            samples, recorded, extra = clip_samples(config, task, bench, refs, max_pixels, min_pixels)
        except ClipError as exc:
            raise RunError(str(exc)) from None
        protocol.update(extra)
        backend = "open_clip"
    else:
        images, unreadable = _images(bench, max_pixels, min_pixels)
        if config.model.startswith(HYBRID_PREFIX):
            if task.name != "failure_mechanism":
                raise RunError(f"hybrid models answer the failure_mechanism task, not {task.name}")
            samples, recorded = _hybrid_samples(config, task, bench, refs, images, cache_path, level,
                                                (max_pixels, min_pixels))
            protocol["hybrid"] = recorded.extra.get("specialist"), config.model.rpartition("+")[2]
        else:
            caller = _caller(config.model, config, task, max_pixels, min_pixels)
            recorded = caller.recorded
            if is_circular(task, config):
                samples = _circular_samples(caller, task, bench, refs, images, config, cache_path, level)
                protocol.update({"circular": True, "seed": DEFAULT_SEED if config.seed is None else config.seed,
                                 "rotations": len(task.choices)})
            else:
                samples = _single_samples(caller, task, bench, refs, images, config, cache_path, level)
        items = {it.item_id: it for it in bench.items}
        for item_id, error in unreadable.items():
            samples.append(SampleRecord(item_id=item_id, image_sha256=items[item_id].image_sha256, task=task.name,
                                        model=config.model, reference=refs[item_id], request=recorded,
                                        context=level, attempts=0, error=error))
        backend = "multi-call"
    if protocol.get("circular"):
        protocol["circular_summary"] = circular_summary(
            [[c.model_dump() for c in s.calls] for s in samples if not s.failed], len(task.choices))
    write_text_atomic(run_dir / SAMPLES_FILE, "".join(s.model_dump_json() + "\n" for s in samples))
    scored = [s for s in samples if not s.failed]
    card = RunCard(task=task.name, task_version=task.version, prompt_version=task.prompt_version, model=config.model,
                   backend=backend, parameters=recorded,
                   benchmark=BenchmarkRef(name=bench.name, kind=bench.kind, hash=bench.hash, n_items=len(bench.items),
                                          path=str(config.benchmark or DEFAULT_BENCHMARK)),
                   limit=config.limit, concurrency=config.concurrency, versions=versions(), started_at=started,
                   finished_at=now(), n_samples=len(samples), n_failed=len(samples) - len(scored),
                   cost=Cost(prompt_tokens=sum((s.tokens.prompt or 0) for s in scored if s.tokens),
                             completion_tokens=sum((s.tokens.completion or 0) for s in scored if s.tokens),
                             pricing="see each call's tokens (multi-call run)"),
                   context=level, protocol=protocol)
    write_json_atomic(run_dir / RUN_CARD_FILE, json.loads(card.model_dump_json()))
    write_json_atomic(run_dir / BENCHMARK_CARD_FILE, bench.card())
    outcome = RunOutcome(run_dir=run_dir, card=card, n_items=len(bench.items), n_failed=card.n_failed,
                             n_unparseable=sum(s.parse_status == "unparseable" for s in scored))
    if config.report:
        _attach_report(outcome, task)
    return outcome


def _attach_report(outcome, task: Task) -> None:
    """The single-run report and its headline figure (as eval.run does for single-call runs)."""
    from eval.report import ReportError, build_report

    try:
        files = build_report([outcome.run_dir], out=outcome.run_dir / "report")
    except ReportError as exc:
        outcome.report_error = str(exc)
        return
    outcome.report_md = files.markdown
    metrics = json.loads(files.metrics[0].read_text(encoding="utf-8"))
    figure = metrics["figures"][task.metrics[0].name]
    outcome.headline = {"name": task.metrics[0].name, "estimate": figure["estimate"], "low": figure["low"],
                        "high": figure["high"], "n_scored": metrics["n_scored"]}


def _check_previous(run_dir: Path, task: Task, config, level: str, bench: Benchmark) -> None:
    card_path = run_dir / RUN_CARD_FILE
    if not card_path.exists() or not config.resume:
        return
    try:
        card = RunCard.model_validate_json(card_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunError(f"{card_path}: not a run card ({exc}); use another --out or --no-resume") from None
    for what, old, new in (("task", card.task_version, task.version), ("model", card.model, config.model),
                           ("context", card.context or "none", level), ("benchmark", card.benchmark.hash, bench.hash)):
        if old != new:
            raise RunError(f"{run_dir} holds another run: {what} {old!r}, not {new!r}; "
                               "use another --out, or --no-resume to start this run over in it")
