"""Prices per model (USD per 1M tokens), cost from the API's usage fields, and dry-run estimates.

The table is small and meant to be edited: providers change prices. PRICES_AS_OF says when the numbers
were taken from the providers' public price pages; they were NOT re-checked on this machine (no
internet), so check them before trusting a budget. Reasoning tokens are billed as output tokens (they are
included in the API's ``completion_tokens``). A self-served vLLM model costs 0 here (your GPUs are not
on this bill). A model missing from the table has an unknown cost: the run says so (missing_price_message
says how to add a row), and ``--max-cost`` refuses to run with it (it could not be enforced). Rows added
after PRICES_AS_OF carry their own source and date (``Price.source``).

Example: 13,168 images x (~900 input tokens at $1.75/M + ~3,000 output tokens at $14/M) = $20.7 + $553.

Usage:
    price = price_for("openai", "gpt-5.2")        # Price(input_per_m=1.75, output_per_m=14.0)
    price.cost(input_tokens=1_000, output_tokens=500)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRICES_AS_OF = "2025-12-15"  # date the table was copied from the providers' price pages


@dataclass(frozen=True)
class Price:
    input_per_m: float  # USD per 1M input tokens
    output_per_m: float  # USD per 1M output tokens (reasoning tokens included)
    source: str = ""  # where and when the row was taken, if not the PRICES_AS_OF copy

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_per_m / 1e6 + output_tokens * self.output_per_m / 1e6


# provider -> model name (or name prefix before a "-<date>", "-preview" or "-latest" suffix) -> Price. Edit freely.
PRICE_TABLE: dict[str, dict[str, Price]] = {
    "openai": {
        # The paper's GPT baseline. Not checked on openai.com from here (no internet): the published rate as
        # reported by apidog.com/blog/how-to-use-gpt-5-5-api (launch, 2026-04-23) and
        # benchr.org/articles/gpt-5-5-pricing-explained; prompts > 272k tokens cost more (not our case).
        "gpt-5.5": Price(5.00, 30.00, source="apidog.com + benchr.org, GPT-5.5 launch pricing, 2026-04"),
        "gpt-5.2": Price(1.75, 14.00),
        "gpt-5.1": Price(1.25, 10.00),
        "gpt-5": Price(1.25, 10.00),
        "gpt-5-mini": Price(0.25, 2.00),
        "gpt-5-nano": Price(0.05, 0.40),
        "gpt-4.1": Price(2.00, 8.00),
        "gpt-4.1-mini": Price(0.40, 1.60),
        "gpt-4o": Price(2.50, 10.00),
        "gpt-4o-mini": Price(0.15, 0.60),
    },
    "gemini": {
        # The paper's Gemini baseline (API id gemini-3.1-pro-preview, matched as a "-" suffix). Not checked on
        # ai.google.dev from here: cloudprice.net/models/vertex_ai/gemini-3.1-pro-preview and
        # hivebook.wiki (gemini-3.1-pro-preview, launched 2026-02-19) give $2 / $12 for prompts <= 200k tokens.
        "gemini-3.1-pro": Price(2.00, 12.00, source="cloudprice.net + hivebook.wiki, Gemini 3.1 Pro Preview, 2026-02"),
        "gemini-3-pro-preview": Price(2.00, 12.00),  # prompts <= 200k tokens
        "gemini-2.5-pro": Price(1.25, 10.00),  # prompts <= 200k tokens
        "gemini-2.5-flash": Price(0.30, 2.50),
        "gemini-2.5-flash-lite": Price(0.10, 0.40),
    },
}
FREE_PROVIDERS = ("vllm",)  # self-served: no per-token bill

# Rough output tokens per reply for estimates: the JSON answer itself (~150 tokens) plus reasoning.
REASONING_OUTPUT_ESTIMATE = {None: 2000, "none": 150, "minimal": 300, "low": 800, "medium": 2000, "high": 4000,
                             "xhigh": 8000, "max": 8000}
CHAT_OUTPUT_ESTIMATE = 150


# what may follow a table name in a snapshot of the same model: dates (2025-08-07, 0613, 06-05, 09-2025), preview,
# latest. Another word names another model (gpt-5-pro, gpt-5.2-pro: ~12x gpt-5's price; gpt-4.1-nano): no price.
_SNAPSHOT_SUFFIX = re.compile(r"(-(\d+|preview|latest))+")


def price_for(provider: str, model: str) -> Price | None:
    """The model's price: exact name, else the longest table name followed by a snapshot suffix (dated snapshots,
    -preview, -latest); None for any other name (a variant such as -pro may cost far more than its base)."""
    if provider in FREE_PROVIDERS:
        return Price(0.0, 0.0)
    table = PRICE_TABLE.get(provider, {})
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name + "-")
                and _SNAPSHOT_SUFFIX.fullmatch(model[len(name):])]
    return table[max(prefixes, key=len)] if prefixes else None


def missing_price_message(provider: str, model: str) -> str:
    """What to do when a model has no price: where the table is and what a row looks like."""
    return (f"no price for {provider}:{model} in fracto_core/vlm_api/pricing.py (table as of {PRICES_AS_OF}); add "
            f'a row PRICE_TABLE["{provider}"]["{model}"] = Price(<USD per 1M input>, <USD per 1M output>, '
            'source="<price page, date>") from the provider\'s price page')


def estimated_output_tokens(dialect: str, reasoning_effort: str | None, max_output_tokens: int) -> int:
    """A rough per-reply output estimate (never above the max_output_tokens cap)."""
    guess = REASONING_OUTPUT_ESTIMATE.get(reasoning_effort, 2000) if dialect == "reasoning" else CHAT_OUTPUT_ESTIMATE
    return min(guess, max_output_tokens)


@dataclass(frozen=True)
class Estimate:
    """What a dry run reports: nothing is sent."""

    requests: int
    cached: int  # of which already answered by the cache (cost 0)
    image_tokens: int  # input image tokens of the requests to send, from the pixel budget
    text_tokens: int  # estimated input text tokens of the requests to send
    output_tokens: int  # estimated output tokens of the requests to send
    cost_usd: float | None  # None: the model is not in the price table
    worst_case_cost_usd: float | None  # every reply using max_output_tokens
    missing_price: str | None = None  # why the cost is unknown and how to add a price

    def lines(self) -> list[str]:
        cost = (f"unknown ({self.missing_price or 'model not in the price table'})" if self.cost_usd is None
                else f"${self.cost_usd:,.2f}")
        worst = "" if self.worst_case_cost_usd is None else f" (worst case ${self.worst_case_cost_usd:,.2f})"
        return [f"requests: {self.requests} ({self.cached} already cached, {self.requests - self.cached} to send)",
                f"input image tokens: {self.image_tokens:,} (from the pixel budget)",
                f"input text tokens (estimated): {self.text_tokens:,}",
                f"output tokens (estimated): {self.output_tokens:,}",
                f"estimated cost: {cost}{worst}; prices as of {PRICES_AS_OF}"]
