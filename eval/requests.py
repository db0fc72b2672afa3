"""The requests of an evaluation run: one chat request per benchmark image, the parameters recorded with them,
the dry-run estimate of tokens and cost, and where the price came from.

Each request carries the image at the training pixel budget, then the task prompt (for fracture_morphology the
very text of the training data), explicit sampling parameters, a JSON-schema response_format where the backend
takes one, and the model identity in its cache key (eval.identity). Reads the benchmark images (their
digests and sizes; nothing is decoded until a request is sent); writes nothing.

Usage:
    requests, unreadable = build_requests(endpoint, task, bench, bench.items, params, 589_824, 1024,
                                          identity=identity.key)
"""

from __future__ import annotations

from collections.abc import Sequence

from fracto_core.vlm_api.backends import Endpoint, GenerationParams
from fracto_core.vlm_api.payloads import ChatRequest, ImageInput, build_request
from fracto_core.vlm_api.pricing import (
    PRICES_AS_OF,
    Estimate,
    Price,
    estimated_output_tokens,
    missing_price_message,
    price_for,
)
from eval.benchmark import Benchmark, BenchmarkItem
from eval.models import ModelSpec
from eval.plan import Plan
from eval.records import RequestParams
from eval.tasks import Task


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
                   params: GenerationParams, max_pixels: int, min_pixels: int, structured: bool = True,
                   identity: str | None = None) -> tuple[list[ChatRequest], dict[str, str]]:
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
        requests.append(build_request(item.item_id, endpoint, [image, prompt], params, task.version, schema=schema,
                                      identity=identity))
    return requests, unreadable


def price_note(spec: ModelSpec, price: Price | None) -> str:
    if spec.provider == "vllm":
        return "self-served (no per-token price)"
    if price is None:
        return f"unknown: {missing_price_message(spec.provider, spec.model)}"
    source = f"; {price.source}" if price.source else ""
    return (f"vlm_api.pricing as of {PRICES_AS_OF}: ${price.input_per_m}/M input, ${price.output_per_m}/M output "
            f"tokens{source}")


def estimate(p: Plan, requests: list[ChatRequest], cached: set[str]) -> Estimate:
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
                    worst_case_cost_usd=worst,
                    missing_price=None if price is not None else missing_price_message(p.spec.provider, p.spec.model))
