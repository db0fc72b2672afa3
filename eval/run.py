"""Score one model on a benchmark: requests through the shared API client, a per-sample log, a run card, a report.

Usage: python -m eval.run --model openai:gpt-5.5 --reasoning-effort high --benchmark expert/labels.csv

More:
    python -m eval.run --model fracto-32b --base-url http://gpu01:8000/v1 --concurrency 16
    python -m eval.run --model vllm:fracto-32b               # URL from output/endpoints/fracto-32b.json (serve.sh)
    python -m eval.run --model gemini:gemini-3.1-pro --dry-run   # requests, input tokens, cost; sends nothing
    python -m eval.report output/eval/fracture_morphology/*     # side by side
    python -m eval.run --task sem_qa --model vllm:fracto-32b --judge openai:gpt-5.2   # judged free text (eval.qa_task)

Models (eval/models.py): openai:<model>, gemini:<model>, vllm:<served name> or a bare served name with
--base-url / --endpoint-file / the endpoint file slurm/serve.sh wrote ($ENDPOINT_DIR/<name>.json,
default output/endpoints). Keys come from the environment when requests are sent (OPENAI_API_KEY,
GEMINI_API_KEY or GOOGLE_API_KEY, optional VLLM_API_KEY) and are never written anywhere.

What is sent: the benchmark image (resized to the pixel budget exactly as in training: the benchmark's
dataset_card.json image_max_pixels, else 589,824; the same for every model, --image-max-pixels to change
it) followed by the task's instruction prompt -- for fracture_morphology the very text of the training
data (fracto_core.answer_format) -- with explicit sampling parameters (temperature 0 unless given;
reasoning models take reasoning_effort and max_completion_tokens instead) and, where the backend takes it,
a JSON-schema response_format.

Model identity (eval/identity.py): before anything is sent, the run records what the server says it
serves (GET /v1/models: id, root, parent, max_model_len) and, with slurm/serve.sh's endpoint file, a
fingerprint of the weights files; API models record each reply's dated snapshot. The identity is in the
run card, in the resume check and in every response-cache key: a run folder holding replies of another
identity is refused, naming both (ways on: --out, --no-resume); replies are never reused across weights.

Scoring (eval/resume.py): every reply is scored, feature by feature -- vocabulary names and synonyms count,
each unknown name is a false positive listed in the sample log; an empty, invalid or truncated reply is a
parse failure that names no feature (it costs recall), counted in the parse-failure rate shown next to
the scores, and counted as one wrong answer in the strict figures.

The run directory (--out, default output/eval/<task>/<model>) holds
    samples.jsonl          one eval.records.SampleRecord per image, appended and flushed as each reply arrives
    run_card.json          model, model identity, endpoint (no credentials), parameters, prompt version,
                           benchmark hash, versions, start/end time, tokens and cost (usage x vlm_api.pricing)
    benchmark_card.json    class distribution and sources of the benchmark
    response_cache.sqlite  replies of deterministic requests keyed by the request fingerprint (as in labelling)
    report/                the single-model report of eval.report (report.md, report.csv, plots)
Failures (no reply after the retries) are recorded with their error and never cached. Resume is the
default: running the same command again (same model identity) sends only the images without a reply
(failures included); --no-resume starts over without reading the cache. Exit code: 0 every image has a reply, 1 some failed
(run again to retry them), 2 bad arguments or setup.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

from fracto_core.files import write_json_atomic
from fracto_core.vlm_api.backends import ProviderError
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult, ClientOptions, run_requests, warm_tls
from fracto_core.vlm_api.pricing import price_for
from eval.benchmark import BenchmarkError
from eval.cli import config_from_args, judged_task_module, parser, summary_lines
from eval.plan import (  # noqa: F401  (RunConfig, pixel_budget, generation_params: the public API of eval.run)
    CACHE_FILE,
    DEFAULT_BENCHMARK,
    Plan,
    RunConfig,
    RunError,
    RunOutcome,
    attach_report,
    generation_params,
    identify,
    pixel_budget,
    now,
    plan,
    versions,
)
from eval.records import (
    BENCHMARK_CARD_FILE,
    RUN_CARD_FILE,
    SAMPLES_FILE,
    BenchmarkRef,
    Cost,
    RunCard,
    SampleLog,
    SampleRecord,
    read_samples,
)
from eval.requests import build_requests, estimate, price_note, request_params
from eval.resume import failed_record, previous_samples, record_for



def run_eval(config: RunConfig) -> RunOutcome:
    """Run (or resume, or dry-run) one model on one benchmark; see the module docstring. Raises RunError."""
    from eval.multicall import run_multicall, wants_multicall  # circular, context, hybrid, CLIP runs

    if not config.dry_run:
        warm_tls()  # the API client's TLS context is built while the benchmark loads (0.1-0.2 s; once a process)
    if wants_multicall(config):
        return run_multicall(config)
    p = plan(config)
    task, bench, spec = p.task, p.bench, p.spec
    references = {it.item_id: ref for it, ref in zip(bench.items, bench.references(task))}
    items = {it.item_id: it for it in bench.items}
    outcome = RunOutcome(run_dir=p.run_dir, n_items=len(bench.items))
    identity, checked = identify(p.spec, p.endpoint, config.dry_run, outcome.warnings)
    first_requests, _ = build_requests(p.endpoint, task, bench, bench.items[:1], p.params, p.max_pixels,
                                       p.min_pixels, p.structured, identity.key)
    params = request_params(p.endpoint, p.params, first_requests[0] if first_requests else None, p.max_pixels,
                            p.min_pixels, p.structured)
    if p.endpoint.dialect == "reasoning" and config.temperature not in (None, 0, 0.0):
        outcome.warnings.append(f"{spec.model} is a reasoning model: temperature is not sent (the API refuses it)")

    done: dict[str, SampleRecord] = {}
    if config.resume:
        done = {k: s for k, s in previous_samples(p.run_dir, task, spec.name, bench, references, params,
                                                  identity if checked else None).items() if not s.failed}
    todo_items = [it for it in bench.items if it.item_id not in done]
    outcome.already_done = len(done)
    requests, unreadable = build_requests(p.endpoint, task, bench, todo_items, p.params, p.max_pixels,
                                          p.min_pixels, p.structured, identity.key)
    cache_path = p.run_dir / CACHE_FILE

    if config.dry_run:  # nothing written, no chat request sent, no key needed
        cached: set[str] = set()
        if config.resume and checked and cache_path.exists():
            with ResponseCache(cache_path) as cache:
                cached = set(cache.get_many([r.fingerprint for r in requests if r.cacheable]))
        outcome.estimate = estimate(p, requests, cached)
        return outcome

    try:
        p.endpoint.check_ready()  # the key must be there now; the client reads it again when it starts
    except ProviderError as exc:
        raise RunError(str(exc)) from None
    p.run_dir.mkdir(parents=True, exist_ok=True)
    samples_path = p.run_dir / SAMPLES_FILE
    price = price_for(spec.provider, spec.model)
    card = RunCard(task=task.name, task_version=task.version, prompt_version=task.prompt_version, model=spec.name,
                   backend=spec.backend, endpoint=spec.public_url(), parameters=params,
                   benchmark=BenchmarkRef(name=bench.name, kind=bench.kind, hash=bench.hash, n_items=len(bench.items),
                                          expert=bench.expert_card,
                                          path=str(config.benchmark or DEFAULT_BENCHMARK)),
                   limit=config.limit, concurrency=config.concurrency, versions=versions(), started_at=now(),
                   cost=Cost(pricing=price_note(spec, price)), identity=identity)
    write_json_atomic(p.run_dir / RUN_CARD_FILE, json.loads(card.model_dump_json()))
    write_json_atomic(p.run_dir / BENCHMARK_CARD_FILE, bench.card())

    with SampleLog(samples_path, fresh=not config.resume) as log:
        write = log.write
        for item_id, error in unreadable.items():
            write(failed_record(items[item_id], task, spec, references[item_id], params, error))

        def on_result(result: CallResult) -> None:
            item = items[result.request_id]
            write(record_for(result, task, spec, item, references[item.item_id], params))

        options = ClientOptions(concurrency=config.concurrency, timeout_s=config.timeout_s,
                                max_attempts=config.max_attempts, backoff_base_s=config.backoff_base_s,
                                price=price, progress=config.progress, desc=f"eval {spec.name}")
        t0 = time.perf_counter()
        if config.resume:
            with ResponseCache(cache_path) as cache:
                _, summary = run_requests(p.endpoint, requests, options, cache=cache, on_result=on_result)
        else:  # start over: no cached reply is reused (and none stored)
            _, summary = run_requests(p.endpoint, requests, options, cache=None, on_result=on_result)
        outcome.request_phase_s = time.perf_counter() - t0
    outcome.summary = summary
    finish(card, p, read_samples(samples_path)[0], price, outcome)
    if config.report:
        attach_report(outcome, p.task)
    return outcome


def finish(card: RunCard, p: Plan, samples: list[SampleRecord], price, outcome: RunOutcome) -> None:
    """Counts, tokens, cost and the replies' model snapshots into the run card (rewritten) and the outcome."""
    scored = [s for s in samples if not s.failed]
    prompt_tokens = sum((s.tokens.prompt or 0) for s in scored if s.tokens)
    completion_tokens = sum((s.tokens.completion or 0) for s in scored if s.tokens)
    card.finished_at = now()
    card.n_samples = len(samples)
    card.n_failed = len(samples) - len(scored)
    card.cost = Cost(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     usd=None if price is None else round(price.cost(prompt_tokens, completion_tokens), 8),
                     pricing=price_note(p.spec, price))
    card.identity.snapshots = sorted({s.served_model for s in scored if s.served_model})
    if len(card.identity.snapshots) > 1:
        outcome.warnings.append(f"the replies came from several model snapshots: {card.identity.snapshots}")
    write_json_atomic(p.run_dir / RUN_CARD_FILE, json.loads(card.model_dump_json()))
    outcome.card = card
    outcome.n_failed = card.n_failed
    outcome.n_unparseable = sum(s.parse_status == "unparseable" for s in scored)
    outcome.n_off_vocabulary = sum(s.parse_status == "off_vocabulary" for s in scored)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    judged = judged_task_module(argv)  # sem_qa has its own runner and flags (--judge ...): eval/qa_task.py
    if judged is not None:
        return importlib.import_module(judged).main(argv)
    config = config_from_args(parser(__doc__), argv)
    try:
        outcome = run_eval(config)
    except (RunError, BenchmarkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in outcome.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if outcome.estimate is not None:
        print(f"dry run of {config.model} on {outcome.n_items} image(s) "
              f"({outcome.already_done} already answered in {outcome.run_dir}); nothing sent")
        for line in outcome.estimate.lines():
            print(line)
        return 0
    for line in summary_lines(outcome):
        print(line)
    return 1 if outcome.n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
