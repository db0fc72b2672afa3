"""The calls behind a multi-call sample (eval.multicall, eval.hybrid): one Caller per model, its requests (the model
identity in every cache key, as in eval.run), how each call is logged, and the SampleRecord made from them.

A Caller is resolved once per run: its endpoint, the sampling parameters sent, what is recorded, and its
identity (eval.identity via eval.plan.identify: GET /v1/models and the weights fingerprint for self-served
models, asked before anything is sent). `send` runs the requests through the shared client with the run's
response cache; `gather` turns the client's per-result callback into one call per finished sample, so a
sample is written (and flushed) the moment its last call returns. Reads and writes nothing itself.

Usage:
    caller = make_caller("vllm:fracto-32b", config, task, 589_824, 1024, warnings)
    request = chat_request(caller, "item-1#0", [image, prompt], task)
    send(caller, [request], config, cache_path, on_result=gather({"item-1": ["item-1#0"]}, finish))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fracto_core.vlm_api.backends import Endpoint, GenerationParams, ProviderError
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult, ClientOptions, run_requests
from fracto_core.vlm_api.payloads import ChatRequest, build_request
from fracto_core.vlm_api.pricing import price_for
from eval.benchmark import BenchmarkItem
from eval.metrics import sample_scores
from eval.models import ModelError, resolve_model
from eval.plan import RunError, generation_params, identify
from eval.records import CallLog, ModelIdentity, RequestParams, SampleRecord, SampleScores, TokenUsage
from eval.requests import request_params
from eval.tasks import Task, TaskAnswer


@dataclass
class Caller:
    """One model behind the run: its endpoint, the parameters sent, what is recorded, and its identity."""

    name: str
    endpoint: Endpoint
    params: GenerationParams
    recorded: RequestParams
    identity: ModelIdentity


def make_caller(name: str, config, task: Task, max_pixels: int, min_pixels: int, warnings: list[str]) -> Caller:
    """Resolve `name` (RunError with what to do when it cannot be resolved or asked what it serves)."""
    try:
        spec = resolve_model(name, config.base_url, config.endpoint_file)
        endpoint = spec.endpoint()
        endpoint.check_ready()
    except (ModelError, ProviderError) as exc:
        raise RunError(str(exc)) from None
    identity, _ = identify(spec, endpoint, False, warnings)
    params = generation_params(config, task, endpoint)
    structured = config.structured_output and endpoint.provider.json_schema
    return Caller(name, endpoint, params, request_params(endpoint, params, None, max_pixels, min_pixels, structured),
                  identity)


def chat_request(caller: Caller, request_id: str, parts: list, task: Task) -> ChatRequest:
    """A request of `caller`; its fingerprint (the cache key) holds the caller's model identity."""
    structured = caller.recorded.structured_output
    schema = (task.response_schema()["name"], task.response_schema()["schema"]) if structured else None
    return build_request(request_id, caller.endpoint, parts, caller.params, task.version, schema=schema,
                         identity=caller.identity.key)


def send(caller: Caller, requests: list[ChatRequest], config, cache_path: Path,
         on_result: Callable[[CallResult], None] | None = None) -> dict[str, CallResult]:
    """{request_id: result}; the response cache is used unless --no-resume (then nothing is read or stored)."""
    if not requests:
        return {}
    options = ClientOptions(concurrency=config.concurrency, timeout_s=config.timeout_s, max_attempts=config.max_attempts,
                            backoff_base_s=config.backoff_base_s, price=price_for(caller.endpoint.provider.name,
                                                                                    caller.endpoint.model),
                            progress=config.progress, desc=f"eval {caller.name}")
    if config.resume:
        with ResponseCache(cache_path) as cache:
            results, _ = run_requests(caller.endpoint, requests, options, cache=cache, on_result=on_result)
    else:
        results, _ = run_requests(caller.endpoint, requests, options, cache=None, on_result=on_result)
    return {r.request_id: r for r in results}


def gather(groups: dict[str, list[str]], finish: Callable[[str, dict[str, CallResult]], None]
           ) -> Callable[[CallResult], None]:
    """An on_result callback: finish(sample_id, {request_id: result}) once every request of a sample is in."""
    owner = {rid: sample for sample, rids in groups.items() for rid in rids}
    got: dict[str, dict[str, CallResult]] = {}

    def on_result(result: CallResult) -> None:
        sample = owner[result.request_id]
        got.setdefault(sample, {})[result.request_id] = result
        if len(got[sample]) == len(groups[sample]):
            finish(sample, got.pop(sample))
    return on_result


def answer_of(result: CallResult | None, parse: Callable[[str], TaskAnswer]) -> TaskAnswer | None:
    """How a call's reply is read, as eval.run reads it (eval.resume.record_for): None without a reply; an empty
    or truncated reply (the client's status "invalid") is a parse failure that names nothing, whatever it holds."""
    if result is None or result.status in ("failed", "not_run") or result.text is None:
        return None
    if result.status == "invalid":
        return TaskAnswer((), "unparseable", result.error or "invalid reply")
    return parse(result.text)


def call_log(role: str, request: ChatRequest | None, result: CallResult | None, answer: TaskAnswer | None,
             **extra) -> CallLog:
    """The log of one call (result None: an offline step -- rules reasoner, oracle specialist)."""
    prompt = "" if request is None else "\n".join(p for p in request.parts if isinstance(p, str))
    if result is None:
        return CallLog(role=role, request_id=extra.pop("request_id", role), prompt=prompt, **extra,
                       **({} if answer is None else {"parsed": list(answer.labels), "parse_status": answer.status}))
    failed = result.status in ("failed", "not_run") or result.text is None
    return CallLog(role=role, request_id=result.request_id, fingerprint=result.fingerprint, prompt=prompt,
                   raw_reply=None if failed else result.text, cached=result.cached, latency_s=result.latency_s,
                   served_model=None if failed else result.model,
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
    off_vocab = len(answer.unknown) if answer.status == "off_vocabulary" else 0  # false positives, as eval.resume
    served = {c.served_model for c in calls if c.served_model}  # one model behind the sample: its snapshot
    return SampleRecord(**base, raw_reply=raw or "", parsed=list(answer.labels), parse_status=answer.status,
                        parse_detail=answer.detail, unknown_labels=list(answer.unknown),
                        scores=SampleScores(**sample_scores(reference, answer.labels, off_vocab)), tokens=tokens,
                        cached=all(c.cached for c in calls if c.fingerprint),
                        served_model=served.pop() if len(served) == 1 else None, **extra)
