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
a JSON-schema response_format. Replies are always parsed leniently by the task's parser; a reply that
cannot be parsed is recorded and counted as unparseable (scored as an empty answer), never guessed.

The run directory (--out, default output/eval/<task>/<model>) holds
    samples.jsonl          one eval.records.SampleRecord per image, appended and flushed as each reply arrives
    run_card.json          model, endpoint (no credentials), parameters, prompt version, benchmark hash,
                           versions, start/end time, tokens and cost (usage x vlm_api.pricing)
    benchmark_card.json    class distribution and sources of the benchmark
    response_cache.sqlite  replies of deterministic requests keyed by the request fingerprint (as in labelling)
    report/                the single-model report of eval.report (report.md, report.csv, plots)
Failures (no reply after the retries) are recorded with their error and never cached. Resume is the
default: running the same command again sends only the images without a reply (failures included);
--no-resume starts over without reading the cache. Exit code: 0 every image has a reply, 1 some failed
(run again to retry them), 2 bad arguments or setup.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fracto_core.files import write_json_atomic
from fracto_core.image_budget import IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS
from fracto_core.vlm_api.backends import Endpoint, GenerationParams, ProviderError
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult, ClientOptions, RunSummary, run_requests
from fracto_core.vlm_api.payloads import ChatRequest, ImageInput, build_request
from fracto_core.vlm_api.pricing import PRICES_AS_OF, Estimate, Price, estimated_output_tokens, price_for
from eval.benchmark import Benchmark, BenchmarkError, BenchmarkItem, load_benchmark
from eval.metrics import sample_scores
from eval.models import ModelError, ModelSpec, resolve_model
from eval.records import (
    BENCHMARK_CARD_FILE,
    RUN_CARD_FILE,
    SAMPLES_FILE,
    BenchmarkRef,
    Cost,
    RequestParams,
    RunCard,
    RunFormatError,
    SampleRecord,
    SampleScores,
    TokenUsage,
    read_samples,
)
from eval.tasks import JUDGED_TASKS, Task, UnknownTaskError, get_task, task_names

DEFAULT_BENCHMARK = Path("output/sample_build/dataset")  # the builder's default --out + /dataset (test split)
DEFAULT_OUT_ROOT = Path("output/eval")
REASONING_MAX_TOKENS = 8_192  # reasoning models spend output tokens thinking before the ~150-token answer
CACHE_FILE = "response_cache.sqlite"
REPORT_DIR = "report"


class RunError(ValueError):
    """A run that cannot start (bad benchmark, model, run directory); the message says what to do."""


@dataclass
class RunConfig:
    """Everything one run needs (the CLI fills it from its flags; tests and scripts build it directly)."""

    model: str
    task: str = "fracture_morphology"
    benchmark: Path | None = None  # None: DEFAULT_BENCHMARK
    out: Path | None = None  # None: output/eval/<task>/<model slug>
    base_url: str | None = None
    endpoint_file: Path | None = None
    limit: int | None = None
    concurrency: int = 8
    timeout_s: float = 120.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    temperature: float | None = None  # None: the task's default (0)
    max_tokens: int | None = None  # None: the task's default (reasoning models: REASONING_MAX_TOKENS)
    reasoning_effort: str | None = None
    seed: int | None = None
    image_max_pixels: int | None = None  # None: the benchmark's dataset card, else IMAGE_MAX_PIXELS
    structured_output: bool = True
    resume: bool = True
    dry_run: bool = False
    progress: bool = True
    report: bool = True


@dataclass
class RunOutcome:
    """What a run did (the CLI prints it; tests and the benchmark script read it)."""

    run_dir: Path
    card: RunCard | None = None
    summary: RunSummary | None = None  # the API client's totals for this invocation
    n_items: int = 0
    already_done: int = 0  # items with a reply from an earlier (killed) run, not asked again
    n_failed: int = 0
    n_unparseable: int = 0
    headline: dict | None = None  # {"name", "estimate", "low", "high"} from the report
    report_md: Path | None = None
    report_error: str | None = None
    estimate: Estimate | None = None  # dry run only
    request_phase_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


# --- setup -----------------------------------------------------------------------------------------

def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def default_out(task: Task, spec: ModelSpec) -> Path:
    return DEFAULT_OUT_ROOT / task.name / slug(spec.name)


def open_benchmark(path: Path | None, limit: int | None) -> Benchmark:
    if path is None:
        if not DEFAULT_BENCHMARK.exists():
            raise RunError(f"no --benchmark given and the builder's default test split {DEFAULT_BENCHMARK}/ does not "
                           "exist here: build one with `python -m dataset_builders.build` (the sample corpus, "
                           "offline) or pass --benchmark DATASET_DIR | LABELS.csv")
        path = DEFAULT_BENCHMARK
    try:
        return load_benchmark(Path(path)).limited(limit)
    except BenchmarkError as exc:
        raise RunError(str(exc)) from None


def pixel_budget(bench: Benchmark, override: int | None) -> tuple[int, int, str]:
    """(image_max_pixels, image_min_pixels, where they came from): the training budget of the benchmark's dataset."""
    card_path = bench.root / "dataset_card.json"
    card: dict = {}
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            card = {}
    min_pixels = int(card.get("image_min_pixels") or IMAGE_MIN_PIXELS)
    if override is not None:
        return override, min(min_pixels, override), "--image-max-pixels"
    if card.get("image_max_pixels"):
        return int(card["image_max_pixels"]), min_pixels, f"{card_path.name} of the benchmark"
    return IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS, "default (no dataset card beside the benchmark)"


def generation_params(config: RunConfig, task: Task, endpoint: Endpoint) -> GenerationParams:
    default_max = REASONING_MAX_TOKENS if endpoint.dialect == "reasoning" else task.generation.max_tokens
    temperature = task.generation.temperature if config.temperature is None else config.temperature
    return GenerationParams(max_output_tokens=config.max_tokens or default_max, temperature=temperature,
                            reasoning_effort=config.reasoning_effort, seed=config.seed)


def request_params(endpoint: Endpoint, params: GenerationParams, sample: ChatRequest | None, max_pixels: int,
                   min_pixels: int, structured: bool) -> RequestParams:
    """The RequestParams recorded with every sample and in the run card (what was really sent, besides text+image)."""
    sent = endpoint.generation_kwargs(params) if sample is None else dict(sample.generation)
    reasoning = endpoint.dialect == "reasoning"
    return RequestParams(
        model=endpoint.model, temperature=params.temperature, max_tokens=params.max_output_tokens, top_p=None,
        seed=params.seed, reasoning_effort=params.reasoning_effort if reasoning else None,
        structured_output=structured, image_max_pixels=max_pixels,
        extra={"dialect": endpoint.dialect, "sent": sent, "image_min_pixels": min_pixels,
               **({"temperature_sent": False} if "temperature" not in sent else {})},
    )


def build_requests(endpoint: Endpoint, task: Task, bench: Benchmark, items: Sequence[BenchmarkItem],
                   params: GenerationParams, max_pixels: int, min_pixels: int,
                   structured: bool = True) -> tuple[list[ChatRequest], dict[str, str]]:
    """One request per item: the image at the pixel budget, then the task prompt (as in the training data).

    Returns the requests and {item_id: error} for images that cannot be read (recorded as failures).
    """
    prompt = task.prompt()
    schema = (task.response_schema()["name"], task.response_schema()["schema"]) if structured else None
    requests: list[ChatRequest] = []
    unreadable: dict[str, str] = {}
    for item in items:
        try:
            image = ImageInput.from_path(bench.image_path(item), max_pixels, min_pixels)
        except OSError as exc:
            unreadable[item.item_id] = f"image unreadable: {exc}"
            continue
        requests.append(build_request(item.item_id, endpoint, [image, prompt], params, task.version, schema=schema))
    return requests, unreadable


def price_note(spec: ModelSpec, price: Price | None) -> str:
    if spec.provider == "vllm":
        return "self-served (no per-token price)"
    if price is None:
        return (f"unknown: {spec.provider}/{spec.model} is not in fracto_core/vlm_api/pricing.py "
                f"(prices as of {PRICES_AS_OF})")
    return (f"vlm_api.pricing as of {PRICES_AS_OF}: ${price.input_per_m}/M input, ${price.output_per_m}/M output "
            "tokens")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("fractovlm", "openai", "numpy", "pydantic"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                                capture_output=True, text=True, timeout=5)
        if commit.returncode == 0 and commit.stdout.strip():
            out["git"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- the per-sample log ----------------------------------------------------------------------------

def record_for(result: CallResult, task: Task, spec: ModelSpec, item: BenchmarkItem, reference: list[str],
               params: RequestParams) -> SampleRecord:
    """A SampleRecord for one call result: a reply (even empty or truncated) is parsed; no reply is a failure."""
    base = dict(item_id=item.item_id, image_sha256=item.image_sha256, task=task.name, model=spec.name,
                reference=reference, request=params, attempts=result.attempts, cached=result.cached)
    if result.status in ("failed", "not_run") or result.text is None:
        return SampleRecord(**base, error=result.error or f"no reply ({result.status})",
                            latency_s=None if result.attempts == 0 else result.latency_s)
    answer = task.parse(result.text)
    detail = answer.detail
    if result.status == "invalid":  # a reply that arrived but is empty or cut at max tokens: scored as given
        detail = f"{result.error}; {detail}" if detail else result.error
    scores = SampleScores(**sample_scores(reference, answer.labels))
    return SampleRecord(**base, raw_reply=result.text, parsed=list(answer.labels), parse_status=answer.status,
                        parse_detail=detail, unknown_labels=list(answer.unknown), scores=scores,
                        latency_s=None if result.cached else result.latency_s,
                        tokens=TokenUsage(prompt=result.input_tokens, completion=result.output_tokens))


def failed_record(item: BenchmarkItem, task: Task, spec: ModelSpec, reference: list[str], params: RequestParams,
                  error: str) -> SampleRecord:
    return SampleRecord(item_id=item.item_id, image_sha256=item.image_sha256, task=task.name, model=spec.name,
                        reference=reference, request=params, attempts=0, error=error)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left unfinished by a kill, so appended records start on a line of their own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def previous_samples(run_dir: Path, task: Task, spec: ModelSpec, bench: Benchmark, references: dict[str, list[str]],
                     params: RequestParams) -> dict[str, SampleRecord]:
    """The samples an earlier run of the same settings left in run_dir (RunError if they belong to another run)."""
    samples_path = run_dir / SAMPLES_FILE
    if not samples_path.exists():
        return {}
    card_path = run_dir / RUN_CARD_FILE
    where = f"{run_dir} holds another run"
    hint = "; use another --out, or --no-resume to start this run over in it"
    if card_path.exists():
        try:
            card = RunCard.model_validate_json(card_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunError(f"{card_path}: not a run card ({exc}){hint}") from None
        for what, old, new in (("task", card.task_version, task.version), ("model", card.model, spec.name),
                               ("benchmark", card.benchmark.name, bench.name)):
            if old != new:
                raise RunError(f"{where}: {what} {old!r}, not {new!r}{hint}")
        if card.parameters != params:
            raise RunError(f"{where}: parameters {card.parameters.model_dump()} differ from "
                           f"{params.model_dump()}{hint}")
    try:
        samples, _ = read_samples(samples_path)
    except RunFormatError as exc:
        raise RunError(f"{exc}{hint}") from None
    by_id = {it.item_id: it for it in bench.items}
    outside = [s.item_id for s in samples if s.item_id not in by_id]
    if outside:
        raise RunError(f"{where}: samples of items not in this benchmark (or beyond --limit): {outside[:5]}{hint}")
    for s in samples:
        item = by_id[s.item_id]
        if s.image_sha256 != item.image_sha256 or s.reference != references[s.item_id] or s.request != params:
            raise RunError(f"{where}: sample {s.item_id} was made with another image, labels or parameters{hint}")
    return {s.item_id: s for s in samples}


# --- the run ---------------------------------------------------------------------------------------

@dataclass
class _Plan:
    spec: ModelSpec
    task: Task
    bench: Benchmark
    endpoint: Endpoint
    params: GenerationParams
    max_pixels: int
    min_pixels: int
    pixel_source: str
    run_dir: Path
    structured: bool


def plan(config: RunConfig) -> _Plan:
    try:
        task = get_task(config.task)
    except UnknownTaskError as exc:
        raise RunError(str(exc)) from None
    try:
        spec = resolve_model(config.model, config.base_url, config.endpoint_file)
        endpoint = spec.endpoint()
    except (ModelError, ProviderError) as exc:
        raise RunError(str(exc)) from None
    bench = open_benchmark(config.benchmark, config.limit)
    task_refs_ok = bench.references(task)  # BenchmarkError for MC tasks without labels
    del task_refs_ok
    max_pixels, min_pixels, source = pixel_budget(bench, config.image_max_pixels)
    structured = config.structured_output and endpoint.provider.json_schema
    run_dir = Path(config.out) if config.out is not None else default_out(task, spec)
    return _Plan(spec, task, bench, endpoint, generation_params(config, task, endpoint), max_pixels, min_pixels,
                 source, run_dir, structured)


def estimate(p: _Plan, requests: list[ChatRequest], cached: set[str]) -> Estimate:
    """Requests, input tokens (image tokens from the pixel budget + text) and cost; nothing is sent."""
    todo = [r for r in requests if r.fingerprint not in cached]
    image_tokens = sum(part.estimated_tokens() for r in todo for part in r.parts if isinstance(part, ImageInput))
    text_tokens = sum(r.estimated_input_tokens() for r in todo) - image_tokens
    per_reply = estimated_output_tokens(p.endpoint.dialect, p.params.reasoning_effort, p.params.max_output_tokens)
    price = price_for(p.spec.provider, p.spec.model)
    cost = worst = None
    if price is not None:
        cost = price.cost(image_tokens + text_tokens, per_reply * len(todo))
        worst = price.cost(image_tokens + text_tokens, p.params.max_output_tokens * len(todo))
    return Estimate(requests=len(requests), cached=len(requests) - len(todo), image_tokens=image_tokens,
                    text_tokens=text_tokens, output_tokens=per_reply * len(todo), cost_usd=cost,
                    worst_case_cost_usd=worst)


def run_eval(config: RunConfig) -> RunOutcome:
    """Run (or resume, or dry-run) one model on one benchmark; see the module docstring. Raises RunError."""
    p = plan(config)
    task, bench, spec = p.task, p.bench, p.spec
    references = {it.item_id: ref for it, ref in zip(bench.items, bench.references(task))}
    items = {it.item_id: it for it in bench.items}
    first_requests, _ = build_requests(p.endpoint, task, bench, bench.items[:1], p.params, p.max_pixels,
                                       p.min_pixels, p.structured)
    params = request_params(p.endpoint, p.params, first_requests[0] if first_requests else None, p.max_pixels,
                            p.min_pixels, p.structured)
    outcome = RunOutcome(run_dir=p.run_dir, n_items=len(bench.items))
    if p.endpoint.dialect == "reasoning" and config.temperature not in (None, 0, 0.0):
        outcome.warnings.append(f"{spec.model} is a reasoning model: temperature is not sent (the API refuses it)")

    done: dict[str, SampleRecord] = {}
    if config.resume:
        done = {k: s for k, s in previous_samples(p.run_dir, task, spec, bench, references, params).items()
                if not s.failed}
    todo_items = [it for it in bench.items if it.item_id not in done]
    outcome.already_done = len(done)
    requests, unreadable = build_requests(p.endpoint, task, bench, todo_items, p.params, p.max_pixels,
                                          p.min_pixels, p.structured)
    cache_path = p.run_dir / CACHE_FILE

    if config.dry_run:  # nothing written, nothing sent, no key needed
        cached: set[str] = set()
        if config.resume and cache_path.exists():
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
    if not config.resume and samples_path.exists():
        samples_path.unlink()
    _drop_torn_tail(samples_path)
    price = price_for(spec.provider, spec.model)
    started = now()
    card = RunCard(task=task.name, task_version=task.version, prompt_version=task.prompt_version, model=spec.name,
                   backend=spec.backend, endpoint=spec.public_url(), parameters=params,
                   benchmark=BenchmarkRef(name=bench.name, kind=bench.kind, hash=bench.hash, n_items=len(bench.items),
                                          path=str(config.benchmark or DEFAULT_BENCHMARK)),
                   limit=config.limit, concurrency=config.concurrency, versions=versions(), started_at=started,
                   cost=Cost(pricing=price_note(spec, price)))
    write_json_atomic(p.run_dir / RUN_CARD_FILE, json.loads(card.model_dump_json()))
    write_json_atomic(p.run_dir / BENCHMARK_CARD_FILE, bench.card())

    with open(samples_path, "a", encoding="utf-8") as log:
        def write(record: SampleRecord) -> None:
            log.write(record.model_dump_json() + "\n")
            log.flush()  # in the OS once written: a SIGKILL of this process loses nothing written

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

    samples, _ = read_samples(samples_path)
    scored = [s for s in samples if not s.failed]
    prompt_tokens = sum((s.tokens.prompt or 0) for s in scored if s.tokens)
    completion_tokens = sum((s.tokens.completion or 0) for s in scored if s.tokens)
    card.finished_at = now()
    card.n_samples = len(samples)
    card.n_failed = len(samples) - len(scored)
    card.cost = Cost(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     usd=None if price is None else round(price.cost(prompt_tokens, completion_tokens), 8),
                     pricing=price_note(spec, price))
    write_json_atomic(p.run_dir / RUN_CARD_FILE, json.loads(card.model_dump_json()))
    outcome.card = card
    outcome.n_failed = card.n_failed
    outcome.n_unparseable = sum(s.parse_status == "unparseable" for s in scored)

    if config.report:
        from eval.report import ReportError, build_report

        try:
            files = build_report([p.run_dir], out=p.run_dir / REPORT_DIR)
        except ReportError as exc:
            outcome.report_error = str(exc)
        else:
            outcome.report_md = files.markdown
            metrics = json.loads(files.metrics[0].read_text(encoding="utf-8"))
            key = task.metrics[0].name
            figure = metrics["figures"][key]
            outcome.headline = {"name": key, "estimate": figure["estimate"], "low": figure["low"],
                                "high": figure["high"], "n_scored": metrics["n_scored"]}
    return outcome


# --- command line ----------------------------------------------------------------------------------

def summary_lines(outcome: RunOutcome) -> list[str]:
    card = outcome.card
    lines = []
    if outcome.summary is not None:
        note = (f" ('invalid' = {outcome.summary.invalid} reply/replies empty or cut at --max-tokens: parsed and "
                "scored as given, not failures)") if outcome.summary.invalid else ""
        lines.append(f"requests this run: {outcome.summary.line()}{note}")
    lines.append(f"samples: {card.n_samples} of {outcome.n_items} ({outcome.already_done} from an earlier run); "
                 f"failures: {card.n_failed}; unparseable: {outcome.n_unparseable}")
    if outcome.headline:
        h = outcome.headline
        lines.append(f"{h['name']}: {h['estimate']:.3f} [95% CI {h['low']:.3f}, {h['high']:.3f}] on "
                     f"{h['n_scored']} scored images")
    cost = "unknown" if card.cost.usd is None else f"${card.cost.usd:.4f}"
    lines.append(f"tokens: {card.cost.prompt_tokens:,} in / {card.cost.completion_tokens:,} out; cost {cost} "
                 f"({card.cost.pricing})")
    lines.append(f"run dir: {outcome.run_dir}")
    if outcome.report_md is not None:
        lines.append(f"report: {outcome.report_md}")
    elif outcome.report_error:
        lines.append(f"no report: {outcome.report_error}")
    if card.n_failed:
        lines.append(f"{card.n_failed} image(s) got no reply (see 'error' in samples.jsonl): run the same command "
                     "again to retry only those")
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True,
                    help="openai:<model> | gemini:<model> | vllm:<served name> | <served name> (see eval/models.py)")
    ap.add_argument("--task", default="fracture_morphology", choices=[*task_names(), *JUDGED_TASKS],
                    help="what the model is asked (default fracture_morphology: the training prompt and answer); "
                         "sem_qa: free-text questions scored by --judge (see python -m eval.qa_task --help)")
    ap.add_argument("--benchmark", type=Path, default=None,
                    help=f"a dataset folder (the builder's test split) or a labels CSV beside its images "
                         f"(default {DEFAULT_BENCHMARK})")
    ap.add_argument("--out", type=Path, default=None,
                    help="run directory (default output/eval/<task>/<model>); re-running resumes it")
    ap.add_argument("--base-url", default=None,
                    help="OpenAI-compatible server, e.g. http://gpu01:8000/v1 (also overrides openai:/gemini: URLs)")
    ap.add_argument("--endpoint-file", type=Path, default=None,
                    help="endpoint JSON written by slurm/serve.sh (default for served names without --base-url: "
                         "$ENDPOINT_DIR/<name>.json, ENDPOINT_DIR default output/endpoints)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N benchmark images")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per attempt (default 120)")
    ap.add_argument("--max-attempts", type=int, default=5,
                    help="attempts per request on 429/5xx/timeouts before it is recorded as failed (default 5)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature (default 0; not sent to reasoning models)")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help=f"max output tokens (default: the task's, 512; reasoning models {REASONING_MAX_TOKENS}, "
                         "sent as max_completion_tokens)")
    ap.add_argument("--reasoning-effort", default=None,
                    help="reasoning models only (e.g. none|minimal|low|medium|high); default: the model's own")
    ap.add_argument("--seed", type=int, default=None, help="sampling seed sent with each request (best effort)")
    ap.add_argument("--image-max-pixels", type=int, default=None,
                    help=f"pixel budget per image (default: the benchmark's dataset_card.json image_max_pixels, "
                         f"else {IMAGE_MAX_PIXELS}); keep it equal for every model you compare")
    ap.add_argument("--no-structured-output", dest="structured_output", action="store_false",
                    help="do not send a JSON-schema response_format (replies are parsed leniently either way)")
    ap.add_argument("--resume", dest="resume", action="store_true", default=True,
                    help="continue the run in --out: only images without a reply are sent (default)")
    ap.add_argument("--no-resume", dest="resume", action="store_false",
                    help="start over: samples.jsonl is replaced and the response cache is not used")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the requests, estimated input tokens and cost; send nothing, write nothing")
    ap.add_argument("--no-report", dest="report", action="store_false", help="skip the single-model report")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    # --- judged free-text tasks (sem_qa) have their own runner and flags (--judge ...) -- issue 15
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    task = pre.parse_known_args(sys.argv[1:] if argv is None else argv)[0].task
    if task in JUDGED_TASKS:
        import importlib

        return importlib.import_module(JUDGED_TASKS[task]).main(sys.argv[1:] if argv is None else argv)
    # ---
    ap = parser()
    args = ap.parse_args(argv)
    for flag, value, low in (("--limit", args.limit, 1), ("--concurrency", args.concurrency, 1),
                             ("--max-attempts", args.max_attempts, 1), ("--max-tokens", args.max_tokens, 1),
                             ("--image-max-pixels", args.image_max_pixels, 1024)):
        if value is not None and value < low:
            ap.error(f"{flag} must be at least {low}")
    config = RunConfig(model=args.model, task=args.task, benchmark=args.benchmark, out=args.out,
                       base_url=args.base_url, endpoint_file=args.endpoint_file, limit=args.limit,
                       concurrency=args.concurrency, timeout_s=args.timeout, max_attempts=args.max_attempts,
                       temperature=args.temperature, max_tokens=args.max_tokens,
                       reasoning_effort=args.reasoning_effort, seed=args.seed,
                       image_max_pixels=args.image_max_pixels, structured_output=args.structured_output,
                       resume=args.resume, dry_run=args.dry_run, progress=not args.quiet, report=args.report)
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
