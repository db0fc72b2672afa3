"""LLM labellers (openai, gemini, vllm): image + caption + citing text -> validated LabelRecords.

One labeller class for the three providers; the differences (base URL, key variable, parameter dialect,
schema support) are presets in ``vlm_api.backends``. For each dedup group the labeller sends the
representative's image at the pixel budget (--label-max-pixels, default --image-max-pixels: the model
sees what the fine-tuned model will see) with the label prompt of ``labelling.schema``, through
``vlm_api.client`` (cache, concurrency, retries, budget cap), and turns every reply into a LabelRecord:

- valid reply with features   -> status "labelled", origin "model:<model>", evidence "<text> (confidence c)"
- valid reply, nothing left   -> status "no_features" (not a fracture surface / none visible / all below
                                 --label-min-confidence), detail says which
- invalid reply               -> status "failed", detail = why + the raw reply text (clipped)
- transport failure / not run -> status "failed", detail = the error (budget: "not run: ...; re-run")

The cache (OUT/label_cache.sqlite, kept by --fresh) holds valid replies only, keyed by the request fingerprint (model,
LABEL_PROMPT_VERSION, image bytes, texts, generation parameters), so re-running the label stage sends
only what is missing. Each run also writes stages/label_calls.jsonl, one ``client.CallResult`` per image
(a log: attempts and latency vary from run to run).

Usage:
    python -m dataset_builders.build --labeler openai --label-model gpt-5.2 --reasoning-effort high --out runs/ds1
    python -m dataset_builders.label --out runs/ds1 --labeler vllm --base-url http://gpu01:8000/v1 --label-model qwen
"""

from __future__ import annotations

from collections.abc import Sequence

from dataset_builders.config import BuildConfig
from dataset_builders.labelling.schema import (
    LABEL_PROMPT_VERSION,
    SCHEMA_NAME,
    label_json_schema,
    label_prompt,
    parse_reply,
)
from dataset_builders.labelling.base import LabelerUnavailableError, LabelOutcome, LabelTask
from dataset_builders.records import LabelRecord, Problem
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import write_jsonl_atomic
from fracto_core.vlm_api.backends import Endpoint, GenerationParams, ProviderError
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult, ClientOptions, RunSummary, run_requests
from fracto_core.vlm_api.payloads import ChatRequest, ImageInput, build_request
from fracto_core.vlm_api.pricing import Estimate, estimated_output_tokens, price_for

RAW_DETAIL_CHARS = 500  # raw reply text kept in a failed record's detail


def cache_path(paths: StagePaths):
    return paths.out / "label_cache.sqlite"  # outside stages/: --fresh must not delete paid replies


def calls_path(paths: StagePaths):
    return paths.stages / "label_calls.jsonl"


class LLMLabeler:
    """Labels through an OpenAI-compatible chat-completions API (see the module docstring)."""

    prompt_version: str | None = LABEL_PROMPT_VERSION

    def __init__(self, provider: str, config: BuildConfig):
        if not config.label_model:
            raise LabelerUnavailableError(f"--labeler {provider} needs --label-model (e.g. "
                                          + {"openai": "gpt-5.2", "gemini": "gemini-2.5-pro"}.get(provider, "the "
                                          "server's --served-model-name") + ")")
        try:
            self.endpoint = Endpoint.create(provider, config.label_model, config.base_url)
            if not config.dry_run:
                self.endpoint.check_ready()  # the key must exist now; it is read again when the run starts
        except ProviderError as exc:
            raise LabelerUnavailableError(str(exc)) from None
        self.price = price_for(provider, config.label_model)
        if config.max_cost is not None and self.price is None:
            raise LabelerUnavailableError(f"--max-cost needs a price for {provider}/{config.label_model}: add it to "
                                          "fracto_core/vlm_api/pricing.py PRICE_TABLE")
        self.name = provider
        self.origin = f"model:{config.label_model}"
        self.config = config
        self.paths = StagePaths(config.out)
        self.params = GenerationParams(max_output_tokens=config.label_max_tokens,
                                       temperature=config.label_temperature,
                                       reasoning_effort=config.reasoning_effort)
        self.summary: RunSummary | None = None

    # --- requests --------------------------------------------------------------------------------

    @property
    def max_pixels(self) -> int:
        return self.config.label_max_pixels or self.config.image_max_pixels

    def build_requests(self, tasks: Sequence[LabelTask]) -> tuple[list[ChatRequest], dict[str, LabelRecord]]:
        """One request per task; a task whose image cannot be read gets a failed record instead."""
        requests: list[ChatRequest] = []
        failed: dict[str, LabelRecord] = {}
        schema = (SCHEMA_NAME, label_json_schema())
        for task in tasks:
            try:
                image = ImageInput.from_path(task.image, self.max_pixels, self.config.image_min_pixels)
            except OSError as exc:
                failed[task.item_id] = self.failed(task.item_id, f"image unreadable: {exc}")
                continue
            system, text = label_prompt(task.panels)
            requests.append(build_request(task.item_id, self.endpoint, [image, text], self.params,
                                          LABEL_PROMPT_VERSION, system=system, schema=schema))
        return requests, failed

    def estimate(self, tasks: Sequence[LabelTask]) -> Estimate:
        """Dry run: requests, input image tokens, estimated text/output tokens and cost. Sends nothing."""
        requests, _ = self.build_requests(tasks)
        cached: set[str] = set()
        if cache_path(self.paths).exists():
            with ResponseCache(cache_path(self.paths)) as cache:
                cached = set(cache.get_many([r.fingerprint for r in requests if r.cacheable]))
        todo = [r for r in requests if r.fingerprint not in cached]
        image_tokens = sum(p.estimated_tokens() for r in todo for p in r.parts if isinstance(p, ImageInput))
        text_tokens = sum(r.estimated_input_tokens() for r in todo) - image_tokens
        per_reply = estimated_output_tokens(self.endpoint.dialect, self.params.reasoning_effort,
                                            self.params.max_output_tokens)
        output_tokens = per_reply * len(todo)
        cost = worst = None
        if self.price is not None:
            cost = self.price.cost(image_tokens + text_tokens, output_tokens)
            worst = self.price.cost(image_tokens + text_tokens, self.params.max_output_tokens * len(todo))
        return Estimate(requests=len(requests), cached=len(requests) - len(todo), image_tokens=image_tokens,
                        text_tokens=text_tokens, output_tokens=output_tokens, cost_usd=cost, worst_case_cost_usd=worst)

    # --- labelling -------------------------------------------------------------------------------

    def failed(self, item_id: str, detail: str) -> LabelRecord:
        return LabelRecord(item_id=item_id, features=[], origin=self.origin, prompt_version=LABEL_PROMPT_VERSION,
                           status="failed", detail=detail)

    def record(self, result: CallResult) -> LabelRecord:
        """The LabelRecord for one call result."""
        if result.status == "not_run":
            return self.failed(result.request_id, f"not run: {result.error}; run the label stage again to continue")
        if result.status == "failed":
            return self.failed(result.request_id, f"API call failed after {result.attempts} attempt(s): {result.error}")
        raw = " ".join((result.text or "").split())[:RAW_DETAIL_CHARS]
        if result.status == "invalid":
            return self.failed(result.request_id, f"invalid reply: {result.error}; raw: {raw}")
        parsed = parse_reply(result.text or "")
        if parsed.not_a_fracture_surface:
            return LabelRecord(item_id=result.request_id, features=[], origin=self.origin,
                               prompt_version=LABEL_PROMPT_VERSION, status="no_features",
                               detail="model: not a fracture surface")
        kept = [f for f in parsed.features if parsed.confidence[f] >= self.config.label_min_confidence]
        if not kept:
            low = [f"{f} ({parsed.confidence[f]:.2f})" for f in parsed.features]
            detail = (f"model: only low-confidence features {low}" if low
                      else "model: no vocabulary feature visible")
            return LabelRecord(item_id=result.request_id, features=[], origin=self.origin,
                               prompt_version=LABEL_PROMPT_VERSION, status="no_features", detail=detail)
        evidence = {f: f"{parsed.evidence[f]} (confidence {parsed.confidence[f]:.2f})".strip() for f in kept}
        dropped = [f for f in parsed.features if f not in kept]
        detail = f"below --label-min-confidence: {dropped}" if dropped else ""
        return LabelRecord(item_id=result.request_id, features=kept, origin=self.origin, evidence=evidence,
                           prompt_version=LABEL_PROMPT_VERSION, status="labelled", detail=detail)

    def label(self, tasks: Sequence[LabelTask], progress: bool = True) -> LabelOutcome:
        self.endpoint.check_ready()
        requests, failed = self.build_requests(tasks)
        options = ClientOptions(concurrency=self.config.concurrency, timeout_s=self.config.label_timeout,
                                max_attempts=self.config.label_max_attempts, max_cost_usd=self.config.max_cost,
                                price=self.price, progress=progress, desc=f"label ({self.endpoint.model})")
        with ResponseCache(cache_path(self.paths)) as cache:
            results, summary = run_requests(self.endpoint, requests, options, cache=cache,
                                            validate=lambda text: parse_reply(text).error or None)
        self.summary = summary
        write_jsonl_atomic(calls_path(self.paths), sorted(results, key=lambda r: r.request_id))
        records = [*failed.values(), *(self.record(r) for r in results)]
        not_run = sum(r.status == "not_run" for r in results)
        problems = [Problem(file=str(cache_path(self.paths).name), stage="label", reason="budget_cap",
                            detail=f"{not_run} image(s) not sent: the --max-cost ${self.config.max_cost} cap was "
                                   "reached; run the label stage again (with a higher cap) to continue")
                    ] if not_run else []
        counts = summary.counts()
        counts["image_unreadable"] = len(failed)
        return LabelOutcome(records=records, counts=counts, problems=problems)

