"""Typed records of an evaluation run: what eval.run writes and eval.report reads.

A run directory holds
    run_card.json         RunCard: model, endpoint, parameters, prompt version, benchmark hash, versions,
                          time, cost, counts
    samples.jsonl         one SampleRecord per line, appended and flushed per sample (a resumed run appends;
                          the LAST record of an item wins, so a retried failure replaces the failed one)
    benchmark_card.json   optional: Benchmark.card() of the benchmark used (the report shows it)

Failures. A sample is a failure when the request produced no reply (transport error, HTTP error after
retries, timeout, malformed response body): `error` is set, `raw_reply`, `parse_status` and `scores` are
None. Any reply the model did give is scored. It is read feature by feature: names in the vocabulary (or
synonyms) count, each name outside it is a false positive listed in `unknown_labels` (parse_status
'off_vocabulary'); a reply with no answer in the format -- empty, a refusal, garbage, cut at max tokens --
is a parse failure (parse_status 'unparseable'): it names no feature (costs recall), is counted in the
run's parse-failure rate and, in the strict figures, as one wrong answer. eval.report leaves failures OUT of the scored set (they are missing measurements, not
answers), counts them in a 'failures' column, prints a warning when any run has them, and compares runs
pairwise only on images scored in both.

Usage:
    from eval.records import RunCard, SampleRecord, read_run
    run = read_run(Path("runs/qwen-ft"))      # LoadedRun(card, samples) with the last record per item
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fracto_core.files import text_lines

SAMPLES_FILE = "samples.jsonl"
RUN_CARD_FILE = "run_card.json"
BENCHMARK_CARD_FILE = "benchmark_card.json"
R = TypeVar("R", bound=BaseModel)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestParams(Record):
    """What was sent besides the prompt and the image (explicit, so runs can be reproduced and cached)."""

    model: str  # the model name sent to the endpoint (served name / API model id)
    temperature: float = 0.0
    max_tokens: int | None = None  # max_tokens, or max_completion_tokens for reasoning models
    top_p: float | None = None
    seed: int | None = None
    reasoning_effort: str | None = None
    structured_output: bool = False  # response_format json_schema sent
    image_max_pixels: int  # the pixel budget the image was resized to (same as training)
    extra: dict[str, Any] = Field(default_factory=dict)  # any other request field, verbatim


class TokenUsage(Record):
    prompt: int | None = None
    completion: int | None = None
    reasoning: int | None = None


class SampleScores(Record):
    """Per-image scores (eval.metrics.sample_scores for multilabel; MC uses tp=1 for a correct answer)."""

    tp: int
    fp: int
    fn: int
    precision: float | None  # None: the reply named nothing (undefined, never 0)
    recall: float
    f1: float
    exact: bool


class CallLog(Record):
    """One of several calls behind a sample (issue 14): a rotation of a circular run, a hybrid's specialist or
    reasoner. Holds what was asked (text only, the image is the sample's), the reply and how it was read."""

    role: str  # "rotation 0".."rotation n-1" | "specialist" | "reasoner"
    request_id: str
    fingerprint: str = ""  # the response-cache key
    prompt: str = ""
    order: list[str] = Field(default_factory=list)  # the options as lettered in this rotation
    raw_reply: str | None = None
    parsed: list[str] = Field(default_factory=list)
    parse_status: Literal["ok", "mapped", "off_vocabulary", "unparseable"] | None = None  # as SampleRecord's
    position: str | None = None  # the letter chosen (rotations)
    correct: bool | None = None
    cached: bool = False
    latency_s: float | None = None
    tokens: TokenUsage | None = None
    error: str | None = None
    served_model: str | None = None  # the `model` field of the reply (API models: the dated snapshot)


class SampleRecord(Record):
    """One benchmark image sent to one model."""

    item_id: str
    image_sha256: str
    task: str
    model: str  # the registry name the user gave (e.g. "openai:gpt-5.5", "vllm:qwen-ft")
    reference: list[str]  # the true labels (canonical), so the run dir alone can be scored
    request: RequestParams
    raw_reply: str | None = None  # the model's text, verbatim; None only for failures
    parsed: list[str] = Field(default_factory=list)  # canonical labels; [] when unparseable
    parse_status: Literal["ok", "mapped", "off_vocabulary", "unparseable"] | None = None
    parse_detail: str = ""
    unknown_labels: list[str] = Field(default_factory=list)  # off_vocabulary: each one a false positive
    served_model: str | None = None  # the `model` field of the reply (API models: the dated snapshot)
    scores: SampleScores | None = None
    latency_s: float | None = None
    tokens: TokenUsage | None = None
    attempts: int = 1
    cached: bool = False
    error: str | None = None  # set <=> failure (no reply)
    # --- issue 14 (all optional; absent in single-call runs) ---
    context: str | None = None  # context level: none | caption | caption+excerpts
    calls: list[CallLog] = Field(default_factory=list)  # every call behind this sample, in order
    circular_correct: bool | None = None  # circular runs: right in every rotation
    reasons: list[str] = Field(default_factory=list)  # failure_mechanism: the reasoner's reasons
    choice_scores: dict[str, float] | None = None  # embedding baselines (CLIP): score per label

    @property
    def failed(self) -> bool:
        return self.error is not None

    @model_validator(mode="after")
    def _consistent(self) -> "SampleRecord":
        if self.error is not None:
            if self.raw_reply is not None or self.parse_status is not None or self.scores is not None or self.parsed:
                raise ValueError("a failed sample (error set) must have no raw_reply, parse_status, parsed or scores")
        else:
            if self.raw_reply is None or self.parse_status is None or self.scores is None:
                raise ValueError("a sample without error needs raw_reply (may be ''), parse_status and scores")
            if self.parse_status == "unparseable" and self.parsed:
                raise ValueError("an unparseable reply is scored as empty: parsed must be []")
            if self.parse_status == "off_vocabulary" and not self.unknown_labels:
                raise ValueError("an off_vocabulary reply lists its unknown names in unknown_labels")
        return self


class ModelIdentity(Record):
    """Which model answered: what the server says it serves, a fingerprint of the weights, API snapshots.

    `key` (a digest of `served` and `weights`) is part of the resume check and of every cache key, so
    replies of other weights are never reused; eval.identity builds it.
    """

    key: str
    served: dict[str, Any] | None = None  # GET /v1/models entry: id, root, parent, max_model_len (self-served)
    weights: list[dict[str, Any]] = Field(default_factory=list)  # per weights folder: path, files, digest
    snapshots: list[str] = Field(default_factory=list)  # `model` fields of the replies (API: dated snapshot)
    note: str = ""
    # a run of several models (hybrid specialist + reasoner, sem_qa model + judge): role -> its identity; `key`
    # then digests the roles' keys (eval.identity.combined_identity)
    parts: dict[str, "ModelIdentity"] = Field(default_factory=dict)

    def describe(self) -> str:
        if self.parts:
            inner = "; ".join(f"{role}: {part.describe()}" for role, part in self.parts.items())
            return f"identity {self.key[:12]} ({inner}{'; ' + self.note if self.note else ''})"
        served = self.served or {}
        parts = [f"{k} {served[k]}" for k in ("id", "root", "parent", "max_model_len") if served.get(k) is not None]
        parts += [f"weights {w.get('path')} sha256 {str(w.get('sha256', 'n/a'))[:12]}" for w in self.weights]
        parts += [f"snapshots {', '.join(self.snapshots)}"] if self.snapshots else []
        return f"identity {self.key[:12]} (" + ("; ".join(parts) or self.note or "no details") + ")"


class BenchmarkRef(Record):
    name: str
    kind: Literal["builder_split", "csv"]
    path: str  # as given by the user (informative only; the hash identifies the benchmark)
    hash: str
    n_items: int
    expert: dict[str, Any] | None = None  # the expert benchmark's card (selection, protocol, kappa), when it has one


class Cost(Record):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float | None = None  # None when no price is known (e.g. a local server)
    pricing: str = ""  # where the price per token came from


class RunCard(Record):
    """Everything that identifies a run; the report refuses to compare runs whose benchmark hashes differ."""

    task: str
    task_version: str
    prompt_version: str
    model: str  # registry name
    backend: str  # "openai-compatible" | "openai" | "gemini" | ...
    endpoint: str | None = None  # base URL (never a key)
    parameters: RequestParams
    benchmark: BenchmarkRef
    limit: int | None = None
    concurrency: int | None = None
    versions: dict[str, str] = Field(default_factory=dict)  # fractovlm, python, openai, ...
    started_at: str  # ISO 8601, UTC
    finished_at: str | None = None
    n_samples: int = 0
    n_failed: int = 0
    cost: Cost = Field(default_factory=Cost)
    identity: ModelIdentity | None = None  # what served the replies (eval.identity); None: an older run card
    # --- issue 14 (optional) ---
    context: str | None = None  # none | caption | caption+excerpts
    protocol: dict[str, Any] = Field(default_factory=dict)  # circular seed/rotations, hybrid parts, CLIP threshold


class RunFormatError(ValueError):
    """A run directory that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LoadedRun:
    path: Path
    card: RunCard
    samples: list[SampleRecord]  # one per item (the last record written), in file order of first appearance
    benchmark_card: dict | None = None
    torn_last_line: bool = False  # a final line cut by a kill was skipped


def read_latest(path: Path, model: type[R], key: str) -> tuple[list[R], bool]:
    """Records of a per-sample log (JSON lines of `model`), the last per `key` winning, in order of first
    appearance; a torn (unparseable) final line -- a kill mid-write -- is skipped and reported (True)."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text_lines(text)  # "\n" only: JSON keeps U+2028, U+0085 ... raw in a reply
    latest: dict[str, R] = {}
    torn = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = model.model_validate_json(line)
        except ValidationError as exc:
            if number == len(lines) and (not text.endswith("\n") or not line.rstrip().endswith("}")):
                torn = True  # killed mid-write (no newline after it yet): the sample is redone by a resumed run
                continue
            raise RunFormatError(f"{path}:{number}: not a {model.__name__}: {exc}") from None
        latest[getattr(record, key)] = record
    return list(latest.values()), torn


def read_samples(path: Path) -> tuple[list[SampleRecord], bool]:
    """Records of samples.jsonl, the last per item_id winning; a torn (unparseable) final line is skipped."""
    return read_latest(path, SampleRecord, "item_id")


class SampleLog:
    """A per-sample log opened for appending: each record is one line, flushed as it is written, so a SIGKILL
    loses no finished sample. A last line torn by an earlier kill is cut first; fresh=True starts over.

    Usage: with SampleLog(run_dir / SAMPLES_FILE) as log: log.write(record)
    """

    def __init__(self, path: Path, fresh: bool = False):
        self.path = Path(path)
        if fresh:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: BaseModel) -> None:
        self._fh.write(record.model_dump_json() + "\n")
        self._fh.flush()  # in the OS once written: a SIGKILL of this process loses nothing written

    def __enter__(self) -> "SampleLog":
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def read_run(run_dir: Path) -> LoadedRun:
    run_dir = Path(run_dir)
    card_path, samples_path = run_dir / RUN_CARD_FILE, run_dir / SAMPLES_FILE
    for p in (card_path, samples_path):
        if not p.is_file():
            raise RunFormatError(f"{run_dir}: missing {p.name} (is this a run directory written by eval.run?)")
    try:
        card = RunCard.model_validate_json(card_path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise RunFormatError(f"{card_path}: not a RunCard: {exc}") from None
    samples, torn = read_samples(samples_path)
    bench_path = run_dir / BENCHMARK_CARD_FILE
    bench = json.loads(bench_path.read_text(encoding="utf-8")) if bench_path.is_file() else None
    return LoadedRun(run_dir, card, samples, bench, torn)
