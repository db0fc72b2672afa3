"""Provider presets and per-model parameter dialects for OpenAI-compatible chat-completions APIs.

Three presets, one client path (the ``openai`` SDK):

| provider | base URL                                                   | key (read at call time)            |
|----------|------------------------------------------------------------|------------------------------------|
| openai   | the SDK default (https://api.openai.com/v1)                | OPENAI_API_KEY (required)          |
| gemini   | https://generativelanguage.googleapis.com/v1beta/openai/   | GEMINI_API_KEY or GOOGLE_API_KEY   |
| vllm     | --base-url (any OpenAI-compatible server)                  | VLLM_API_KEY, optional ("EMPTY")   |

Parameter dialect (DESIGN §6): reasoning models (OpenAI o-series and gpt-5*, except the *-chat variants;
Gemini 2.5+/3 thinking models) take ``reasoning_effort`` and ``max_completion_tokens`` and no
``temperature``; every other model takes ``temperature`` and ``max_tokens``.

Keys are never stored on any object here: ``Endpoint.api_key()`` reads the environment each time it is
called, and ``Endpoint`` has no field that could carry a key into a repr, a log or a cache.

Usage:
    endpoint = Endpoint.create("gemini", "gemini-2.5-pro")
    endpoint.generation_kwargs(GenerationParams(reasoning_effort="high", max_output_tokens=8192))
    # {'reasoning_effort': 'high', 'max_completion_tokens': 8192}
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Dialect = Literal["reasoning", "chat"]
SchemaDialect = Literal["strict", "gemini", "plain"]


class ProviderError(ValueError):
    """Unknown provider, or a provider that cannot run with these settings (missing key or base URL)."""


@dataclass(frozen=True)
class Provider:
    """How to reach one kind of OpenAI-compatible API."""

    name: str
    default_base_url: str | None  # None: the SDK default (OpenAI) or must be given (vllm)
    key_env: tuple[str, ...]  # environment variables tried in order
    key_required: bool
    needs_base_url: bool
    json_schema: bool  # accepts response_format {"type": "json_schema", ...}
    schema_dialect: SchemaDialect  # strict: OpenAI strict mode; gemini: narrower subset; plain: no strict flag
    reasoning_patterns: tuple[str, ...] = ()  # model-name regexes that use the reasoning dialect


PROVIDERS: dict[str, Provider] = {
    "openai": Provider(
        name="openai", default_base_url=None, key_env=("OPENAI_API_KEY",), key_required=True,
        needs_base_url=False, json_schema=True, schema_dialect="strict",
        reasoning_patterns=(r"^o\d", r"^gpt-5(?!.*-chat)"),
    ),
    "gemini": Provider(
        name="gemini", default_base_url="https://generativelanguage.googleapis.com/v1beta/openai/",
        key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), key_required=True, needs_base_url=False,
        json_schema=True, schema_dialect="gemini",
        reasoning_patterns=(r"^gemini-(2\.5|[3-9])",),
    ),
    "vllm": Provider(
        name="vllm", default_base_url=None, key_env=("VLLM_API_KEY",), key_required=False,
        needs_base_url=True, json_schema=True, schema_dialect="plain",
    ),
}


def provider_names() -> list[str]:
    return sorted(PROVIDERS)


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"unknown provider {name!r}; valid: {', '.join(provider_names())}") from None


@dataclass(frozen=True)
class GenerationParams:
    """What the caller wants from the model; turned into the provider's own parameter names."""

    max_output_tokens: int = 4096  # max_completion_tokens (reasoning: includes reasoning tokens) or max_tokens
    temperature: float = 0.0  # chat dialect only
    reasoning_effort: str | None = None  # reasoning dialect only; None: the model's default
    seed: int | None = None  # sent when set (OpenAI and vLLM honour it; best effort)


def redact_url(url: str | None) -> str | None:
    """A URL without user:password@ or query string (which may hold credentials)."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class Endpoint:
    """A provider + model (+ base URL). Holds no secret: the key is read from the environment on use."""

    provider: Provider
    model: str
    base_url: str | None = None
    dialect: Dialect = "chat"

    @classmethod
    def create(cls, provider: str, model: str, base_url: str | None = None,
               dialect: Dialect | None = None) -> "Endpoint":
        """Preset for ``provider``; ``dialect`` None = guessed from the model name."""
        p = get_provider(provider)
        if not model:
            raise ProviderError(f"{provider}: a model name is required (--label-model)")
        url = base_url or p.default_base_url
        if p.needs_base_url and not url:
            raise ProviderError(f"{provider}: the server's --base-url is required (e.g. http://host:8000/v1)")
        guessed: Dialect = "reasoning" if any(re.search(r, model) for r in p.reasoning_patterns) else "chat"
        return cls(provider=p, model=model, base_url=url, dialect=dialect or guessed)

    def key_source(self) -> str | None:
        """Name of the environment variable that holds the key now (never its value)."""
        return next((name for name in self.provider.key_env if os.environ.get(name)), None)

    def api_key(self) -> str:
        """The key, read from the environment at call time. Optional keys fall back to "EMPTY"."""
        source = self.key_source()
        if source is not None:
            return os.environ[source]
        if self.provider.key_required:
            raise ProviderError(f"{self.provider.name}: set {' or '.join(self.provider.key_env)} in the environment")
        return "EMPTY"

    def check_ready(self) -> None:
        """Raise ProviderError if a call could not even be attempted (missing key)."""
        self.api_key()

    def describe(self) -> dict[str, str | None]:
        """Safe description for logs and reports (no key, no URL credentials)."""
        return {"provider": self.provider.name, "model": self.model, "base_url": redact_url(self.base_url),
                "dialect": self.dialect, "key_from": self.key_source()}

    def generation_kwargs(self, params: GenerationParams) -> dict[str, object]:
        """The request-body parameters for ``params`` in this model's dialect."""
        kwargs: dict[str, object] = {}
        if self.dialect == "reasoning":
            if params.reasoning_effort is not None:
                kwargs["reasoning_effort"] = params.reasoning_effort
            kwargs["max_completion_tokens"] = params.max_output_tokens
        else:
            kwargs["temperature"] = params.temperature
            kwargs["max_tokens"] = params.max_output_tokens
        if params.seed is not None:
            kwargs["seed"] = params.seed
        return kwargs

    def is_deterministic(self, params: GenerationParams) -> bool:
        """Whether a reply may be cached: temperature 0, or a reasoning model (no temperature to set).

        Reasoning models are not bit-deterministic, but asking again buys a different sample at full
        price, not a better label: the first valid answer is the one we keep (and pay for once).
        """
        return self.dialect == "reasoning" or params.temperature == 0
