"""Q&A generation through the labelling client (openai, gemini or a vLLM-served model): prompt, schema, strict check.

The model gets the item's caption(s), citing excerpts and labels (text only: the answers must rest on
the text, GlassLLaVA-style) and returns 2-5 pairs of the fixed kinds. A reply is accepted only if it is
JSON of the schema below, every kind is one of ``QA_KINDS`` (each at most once), and every answered
pair quotes at least one source sentence that really occurs in the given text (whitespace and case
aside); refused pairs carry no source. Anything else makes the reply "invalid" (the client keeps the raw
text, never caches it) and the item gets no pairs and a problem line — never a template in its place.

Reply shape (schema ``fracto_qa``):
    {"item": "<item id>", "pairs": [{"kind": "features", "answer": "...", "refused": false, "sources": ["<sentence of the text>"]}]}
The question text is ours (``QUESTIONS``): the model chooses kinds and writes answers.

Usage:
    gen = LLMQAGenerator("openai", config)         # --label-model, --base-url, --label-* settings
    items, summary = gen.generate(sources, progress=True)
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from dataset_builders.config import BuildConfig
from dataset_builders.questions.records import MAX_QUESTIONS, MIN_QUESTIONS, QA_KINDS, QUESTIONS, QAItem, QAPair, SourceText
from fracto_core.vocabulary import canonicalize
from fracto_core.vlm_api.backends import Endpoint, GenerationParams
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult, ClientOptions, RunSummary, run_requests
from fracto_core.vlm_api.payloads import build_request
from fracto_core.vlm_api.pricing import price_for

QA_PROMPT_VERSION = "fracto-qa-llm-v2"  # v2: quotes come from the printed caption (issue 27)
SCHEMA_NAME = "fracto_qa"
RAW_DETAIL_CHARS = 300


def qa_json_schema() -> dict:
    pair = {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": list(QA_KINDS)},
            "answer": {"type": "string"},
            "refused": {"type": "boolean"},
            "sources": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["kind", "answer", "refused", "sources"],
        "additionalProperties": False,
    }
    return {"type": "object", "properties": {"item": {"type": "string"}, "pairs": {"type": "array", "items": pair}},
            "required": ["item", "pairs"], "additionalProperties": False}


def system_prompt() -> str:
    kinds = "\n".join(f"- {k}: \"{q}\"" for k, q in QUESTIONS.items())
    return (
        "You write question-answer pairs for training a fractography assistant. You get the caption and the "
        "body-text excerpts that a scientific paper writes about one fracture-surface image, and the image's "
        "morphology labels. The questions are fixed, one per kind:\n"
        f"{kinds}\n"
        f"Answer between {MIN_QUESTIONS} and {MAX_QUESTIONS} kinds, each at most once. Answer ONLY from the "
        "given text: copy into `sources` the sentence(s) of the text your answer rests on, verbatim. When the "
        "text does not support an answer to a question you include, set refused true, say so in `answer` and "
        "leave `sources` empty. Reply with JSON only: {\"item\": <the item id given>, \"pairs\": [{\"kind\", "
        "\"answer\", \"refused\", \"sources\"}]}."
    )


def user_prompt(src: SourceText) -> str:
    """The caption as printed (what `sources` may quote) and, for a panel of a composite, its own part."""
    captions = "\n".join(f"- {c}" for c in (src.figure_captions or src.captions)) or "- (none)"
    parts = [c for c in src.captions if src.figure_captions and c not in src.figure_captions]
    part = ("This image is the panel described by (not a quote):\n" + "\n".join(f"- {c}" for c in parts) + "\n"
            if parts else "")
    excerpts = "\n".join(f"- {e}" for e in src.excerpts) or "- (none)"
    labels = ", ".join(src.features) or "(none)"
    return (f"Item: {src.item_id}\nCaption(s):\n{captions}\n{part}Excerpts citing the figure:\n{excerpts}\n"
            f"Labels: {labels}")


class _Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    answer: str
    refused: bool
    sources: list[str]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str
    pairs: list[_Pair]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def parse_qa_reply(text: str, src: SourceText) -> tuple[list[QAPair], str | None]:
    """(pairs, None) for an acceptable reply, else ([], the reason). See the module docstring for the rules."""
    try:
        reply = _Reply.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError, TypeError) as exc:
        return [], f"not a {SCHEMA_NAME} JSON object: {str(exc).splitlines()[0]}"
    if reply.item != src.item_id:
        return [], f"reply is about item {reply.item!r}, not {src.item_id!r}"
    kinds = [p.kind for p in reply.pairs]
    if not MIN_QUESTIONS <= len(kinds) <= MAX_QUESTIONS:
        return [], f"{len(kinds)} pairs; expected {MIN_QUESTIONS} to {MAX_QUESTIONS}"
    bad = [k for k in kinds if k not in QA_KINDS]
    if bad or len(set(kinds)) != len(kinds):
        return [], f"kinds must be distinct and among {list(QA_KINDS)}; got {kinds}"
    # quotes of the printed texts only (never of a stitched panel caption), each within one text: joined, a quote
    # could run from a caption's end into an excerpt's start, words that stand together nowhere in the paper
    printed = [_norm(t) for t in src.printed]
    pairs: list[QAPair] = []
    for p in reply.pairs:
        if not p.answer.strip():
            return [], f"{p.kind}: empty answer"
        if p.refused:
            if p.sources:
                return [], f"{p.kind}: a refused pair must have no sources"
        else:
            if not p.sources:
                return [], f"{p.kind}: an answered pair needs a source sentence"
            missing = [s for s in p.sources if not _norm(s) or not any(_norm(s) in t for t in printed)]
            if missing:
                return [], f"{p.kind}: source not in the text: {missing[0][:120]!r}"
        named = [f for f in src.features if canonicalize(f) and _norm(f) in _norm(p.answer)]
        pairs.append(QAPair(kind=p.kind, question=QUESTIONS[p.kind], answer=p.answer.strip(), refused=p.refused,
                            sources=[" ".join(s.split()) for s in p.sources],
                            features=named if p.kind == "features" else []))
    return pairs, None


def reply_error(request_id: str, text: str, sources: dict[str, SourceText]) -> str | None:
    """The client's validator: None for an acceptable reply to the request for item ``request_id``, else why not
    (a reply that echoes another item's id is rejected, not cached as that item's answer).

    Rejected replies are "invalid": kept raw in the call result, never cached, so a re-run asks again.
    """
    return parse_qa_reply(text, sources[request_id])[1]


class LLMQAGenerator:
    """Q&A pairs from an OpenAI-compatible model, through vlm_api (cache, retries, budget, failures as values)."""

    def __init__(self, provider: str, config: BuildConfig):
        if not config.label_model:
            raise ValueError(f"--qa-generator {provider} needs --label-model")
        self.endpoint = Endpoint.create(provider, config.label_model, config.base_url)
        self.config = config
        self.origin = f"model:{config.label_model}"
        self.params = GenerationParams(max_output_tokens=config.label_max_tokens,
                                       temperature=config.label_temperature, reasoning_effort=config.reasoning_effort)

    def check_ready(self) -> None:
        self.endpoint.check_ready()

    def generate(self, sources: Sequence[SourceText], cache_file, progress: bool = True
                 ) -> tuple[list[QAItem], RunSummary]:
        by_id = {s.item_id: s for s in sources}
        requests = [build_request(s.item_id, self.endpoint, [user_prompt(s)], self.params, QA_PROMPT_VERSION,
                                  system=system_prompt(), schema=(SCHEMA_NAME, qa_json_schema()))
                    for s in sources]
        price = price_for(self.endpoint.provider.name, self.endpoint.model)
        options = ClientOptions(concurrency=self.config.concurrency, timeout_s=self.config.label_timeout,
                                max_attempts=self.config.label_max_attempts, max_cost_usd=self.config.max_cost,
                                price=price, progress=progress, desc=f"qa ({self.endpoint.model})")
        with ResponseCache(cache_file) as cache:
            results, summary = run_requests(self.endpoint, requests, options, cache=cache,
                                            validate_for=lambda request_id, text: reply_error(request_id, text, by_id))
        return [self.item(r, by_id[r.request_id]) for r in results], summary

    def item(self, result: CallResult, src: SourceText) -> QAItem:
        base = dict(item_id=src.item_id, origin=self.origin, prompt_version=QA_PROMPT_VERSION)
        if result.status in ("failed", "not_run") or result.text is None:
            return QAItem(**base, status="failed", detail=f"API call {result.status}: {result.error}")
        pairs, error = parse_qa_reply(result.text, src)
        if error is not None:
            raw = " ".join(result.text.split())[:RAW_DETAIL_CHARS]
            return QAItem(**base, status="failed", detail=f"invalid reply: {error}; raw: {raw}")
        return QAItem(**base, pairs=pairs)
