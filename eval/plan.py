"""What one evaluation run will do: its settings (RunConfig), what it reports back (RunOutcome), and the plan
resolved from them -- task, model, benchmark, pixel budget, sampling parameters, run directory.

Reads the benchmark (eval.benchmark) and its dataset_card.json for the training pixel budget; writes nothing.

Usage:
    p = plan(RunConfig(model="vllm:fracto-32b", benchmark=Path("expert/labels.csv")))
    p.run_dir, p.max_pixels, p.params
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import subprocess
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path

from fracto_core.image_budget import IMAGE_MAX_PIXELS, IMAGE_MIN_PIXELS
from fracto_core.vlm_api.backends import Endpoint, GenerationParams, ProviderError
from fracto_core.vlm_api.client import RunSummary
from fracto_core.vlm_api.pricing import Estimate
from eval.benchmark import Benchmark, BenchmarkError, load_benchmark
from eval.identity import IdentityError, model_identity
from eval.models import ModelError, ModelSpec, resolve_model
from eval.records import ModelIdentity, RunCard
from eval.tasks import Task, UnknownTaskError, get_task

DEFAULT_BENCHMARK = Path("output/sample_build/dataset")  # the builder's default --out + /dataset (test split)
DEFAULT_OUT_ROOT = Path("output/eval")
REASONING_MAX_TOKENS = 8_192  # reasoning models spend output tokens thinking before the ~150-token answer


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
    context: str = "none"  # none | caption | caption+excerpts (eval/context.py; eval/multicall.py runs it)
    circular: bool = True  # multiple choice: rotate the shuffled options through every position (eval/circular.py)


@dataclass
class RunOutcome:
    """What a run did (the CLI prints it; tests and the benchmark script read it)."""

    run_dir: Path
    card: RunCard | None = None
    summary: RunSummary | None = None  # the API client's totals for this invocation
    n_items: int = 0
    already_done: int = 0  # items with a reply from an earlier (killed) run, not asked again
    n_failed: int = 0
    n_unparseable: int = 0  # parse failures: replies with no answer in the format
    n_off_vocabulary: int = 0  # replies naming features outside the vocabulary (each one a false positive)
    headline: dict | None = None  # {"name", "estimate", "low", "high"} from the report
    report_md: Path | None = None
    report_error: str | None = None
    estimate: Estimate | None = None  # dry run only
    request_phase_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Plan:
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
    return folder_pixel_budget(bench.root, override)


def folder_pixel_budget(root: Path, override: int | None) -> tuple[int, int, str]:
    """pixel_budget of the dataset card in ``root`` (a card that is missing, unreadable or without the budget: the
    defaults)."""
    card_path = root / "dataset_card.json"
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


def plan(config: RunConfig) -> Plan:
    """Resolve task, model, benchmark and budget (RunError with what to do when one cannot be resolved)."""
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
    bench.references(task)  # BenchmarkError for MC tasks without labels
    max_pixels, min_pixels, source = pixel_budget(bench, config.image_max_pixels)
    structured = config.structured_output and endpoint.provider.json_schema
    run_dir = Path(config.out) if config.out is not None else default_out(task, spec)
    return Plan(spec, task, bench, endpoint, generation_params(config, task, endpoint), max_pixels, min_pixels,
                source, run_dir, structured)


def identify(spec: ModelSpec, endpoint: Endpoint, dry_run: bool, warnings: list[str]) -> tuple[ModelIdentity, bool]:
    """(identity, checked): the served model's identity (eval.identity), asked before anything is sent; RunError
    when the server cannot say what it serves, except in a dry run, which goes on unchecked."""
    try:
        identity = model_identity(spec, endpoint)
    except IdentityError as exc:
        if not dry_run:
            raise RunError(str(exc)) from None
        warnings.append(f"{exc}; dry run: the model identity is not checked and cache hits are not counted")
        return model_identity(spec, endpoint, contact_server=False), False
    if identity.note and identity.served is not None:
        warnings.append(identity.note)
    return identity, True


# --- run bookkeeping -------------------------------------------------------------------------------

CACHE_FILE = "response_cache.sqlite"


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


REPORT_DIR = "report"


def attach_report(outcome: RunOutcome, task: Task) -> None:
    """Write the single-run report to run_dir/report and put its headline figure on the outcome."""
    from eval.report import ReportError, build_report  # matplotlib: loaded only when a report is made

    try:
        files = build_report([outcome.run_dir], out=outcome.run_dir / REPORT_DIR)
    except ReportError as exc:
        outcome.report_error = str(exc)
        return
    outcome.report_md = files.markdown
    metrics = json.loads(files.metrics[0].read_text(encoding="utf-8"))
    key = task.metrics[0].name
    figure = metrics["figures"][key]
    strict = metrics["figures"].get("strict_" + key, {}).get("estimate")
    outcome.headline = {"name": key, "estimate": figure["estimate"], "low": figure["low"], "high": figure["high"],
                        "n_scored": metrics["n_scored"], "strict": strict}
