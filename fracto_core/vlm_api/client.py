"""Run many chat-completions requests through the official ``openai`` SDK: cached, bounded, retried, costed.

One ``AsyncOpenAI`` client per run (built when the run starts, never at import; the key is read from
the environment then), ``concurrency`` requests in flight (an asyncio semaphore: at 16 in flight and
200 ms per reply, 500 requests take ~500 x 0.2 / 16 = 6.25 s; see benchmarks/bench_labeling.py).
The SDK's own retries are switched off so that every attempt is counted here:

- 429: wait for ``Retry-After`` / ``retry-after-ms`` when the server sends it (all workers pause, since
  the limit is shared), else exponential backoff; 5xx, 408, timeouts and connection errors: exponential
  backoff ``base * 2^(attempt-1)`` capped at ``backoff_max_s``, times a random jitter in [0.5, 1];
- after ``max_attempts`` (or at once for other 4xx and unexpected errors): a ``CallResult`` with status
  "failed" and the error. Nothing here raises for one bad request.

A reply that arrives but is unusable (empty, truncated with finish_reason "length", or rejected by the
caller's ``validate``) is status "invalid", keeps its raw text and its usage (it was paid for), and is
never cached. Valid replies of cacheable (deterministic) requests are committed to the cache on arrival,
and requests already in the cache are answered from it without any API call.

Budget (``max_cost_usd``): before a request is sent, its worst case (2x the estimated input tokens or the
largest input a reply has reported so far, whichever is more, plus all ``max_output_tokens``) is reserved on top of the cost already spent and reserved; if that would exceed
the cap, this and every later request is reported as "not_run" (the run stops cleanly; a re-run with a
higher cap continues from the cache).

Usage:
    results, summary = run_requests(endpoint, requests, ClientOptions(concurrency=16), cache=cache,
                                    validate=lambda text: None if text.startswith("{") else "not JSON")
    print(summary.line())
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

from pydantic import BaseModel
from tqdm import tqdm

from fracto_core.vlm_api.backends import Endpoint
from fracto_core.vlm_api.cache import CachedReply, ResponseCache
from fracto_core.vlm_api.payloads import ChatRequest
from fracto_core.vlm_api.pricing import Price

CallStatus = Literal["ok", "invalid", "failed", "not_run"]
Validator = Callable[[str], str | None]  # reply text -> error message, or None if usable
# (request id, reply text) -> error or None: for replies that are right or wrong only for the request they answer
RequestValidator = Callable[[str, str], str | None]
RETRYABLE_STATUS = {408, 409, 429}  # plus every 5xx
INPUT_ESTIMATE_MARGIN = 2.0  # the budget reservation assumes up to 2x the estimated input tokens


@dataclass(frozen=True)
class ClientOptions:
    concurrency: int = 8
    timeout_s: float = 120.0  # per attempt
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 600.0  # a longer Retry-After is capped to this
    max_cost_usd: float | None = None
    price: Price | None = None  # None: cost unknown (then max_cost_usd cannot be enforced)
    progress: bool = False
    desc: str = "api"


class CallResult(BaseModel):
    """One request's outcome: the per-call log line (no key, no image data)."""

    request_id: str
    fingerprint: str
    status: CallStatus
    cached: bool = False
    text: str | None = None  # raw reply text (kept for invalid replies too)
    finish_reason: str | None = None
    model: str | None = None  # the reply's `model` field (API models: the dated snapshot that answered)
    input_tokens: int = 0  # from the API's usage fields, summed over the attempts that returned a reply
    output_tokens: int = 0
    cost_usd: float | None = 0.0  # None: unknown price
    latency_s: float = 0.0  # wall time of the last attempt
    attempts: int = 0
    error: str = ""


@dataclass
class RunSummary:
    """Totals of one run (cost and tokens: this run's API usage only; cache hits cost nothing)."""

    requests: int = 0
    cache_hits: int = 0
    api_calls: int = 0  # requests sent at least once
    attempts: int = 0
    retries: int = 0
    ok: int = 0
    invalid: int = 0
    failed: int = 0
    not_run: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    wall_s: float = 0.0
    stopped_by_budget: bool = False

    def plus(self, other: RunSummary) -> RunSummary:
        """The totals of two runs one after the other (cost unknown when either's is)."""
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return RunSummary(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                             if f.name not in ("cost_usd", "stopped_by_budget")},
                          cost_usd=cost, stopped_by_budget=self.stopped_by_budget or other.stopped_by_budget)

    def line(self) -> str:
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        text = (f"{self.requests} requests: {self.ok} ok, {self.invalid} invalid, {self.failed} failed, "
                f"{self.not_run} not run; {self.cache_hits} cache hits, {self.api_calls} API calls, "
                f"{self.retries} retries; tokens in {self.input_tokens:,} / out {self.output_tokens:,}; "
                f"cost {cost}; {self.wall_s:.1f}s")
        return text + (" (stopped by the budget cap: re-run to continue)" if self.stopped_by_budget else "")

    def counts(self) -> dict[str, int]:
        """Integer counts for a StageResult (cost in micro-dollars; -1 if unknown)."""
        return {"requests": self.requests, "api_calls": self.api_calls, "cache_hits": self.cache_hits,
                "retries": self.retries, "failed_calls": self.failed, "invalid_replies": self.invalid,
                "not_run": self.not_run, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_microusd": -1 if self.cost_usd is None else round(self.cost_usd * 1e6)}


def summarize(results: Sequence[CallResult], wall_s: float = 0.0) -> RunSummary:
    s = RunSummary(requests=len(results), wall_s=wall_s)
    known = True
    total = 0.0
    for r in results:
        setattr(s, r.status, getattr(s, r.status) + 1)
        s.cache_hits += r.cached
        if not r.cached:
            s.api_calls += r.attempts > 0
            s.attempts += r.attempts
            s.retries += max(0, r.attempts - 1)
            s.input_tokens += r.input_tokens
            s.output_tokens += r.output_tokens
            if r.cost_usd is None:
                known = False
            else:
                total += r.cost_usd
        s.stopped_by_budget = s.stopped_by_budget or (r.status == "not_run" and r.error.startswith("budget"))
    s.cost_usd = total if known else None
    return s


def retry_after_seconds(headers) -> float | None:
    """Seconds the server asks us to wait (retry-after-ms, retry-after as seconds or HTTP date), if any."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date; anything else (Python 3.10+ raises for it) is no usable wait, not a crash of the run
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


@dataclass
class _Attempt:
    """What one attempt produced: a reply, or an error and whether to try again (after how long)."""

    reply: CachedReply | None = None
    error: str = ""
    retry: bool = False
    wait_s: float | None = None  # server-requested wait (Retry-After)


@dataclass
class _Budget:
    cap: float | None
    price: Price | None
    spent: float = 0.0
    reserved: float = 0.0
    stopped: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    max_input_seen: int = 0  # largest input-token count a reply reported so far (estimates can be low)

    def worst_case(self, request: ChatRequest) -> float:
        if self.price is None:
            return 0.0
        input_tokens = max(int(request.estimated_input_tokens() * INPUT_ESTIMATE_MARGIN), self.max_input_seen)
        return self.price.cost(input_tokens, request.max_output_tokens)

    async def reserve(self, request: ChatRequest) -> float | None:
        """The amount reserved, or None if the request must not be sent (cap reached)."""
        if self.cap is None:
            return 0.0
        async with self.lock:
            need = self.worst_case(request)
            if self.stopped or self.spent + self.reserved + need > self.cap:
                self.stopped = True
                return None
            self.reserved += need
            return need

    async def settle(self, reserved: float, cost: float, input_tokens: int) -> None:
        async with self.lock:
            self.reserved -= reserved
            self.spent += cost
            self.max_input_seen = max(self.max_input_seen, input_tokens)


class _Runner:
    def __init__(self, endpoint: Endpoint, options: ClientOptions, cache: ResponseCache | None,
                 validate: RequestValidator | None):
        self.endpoint = endpoint
        self.options = options
        self.cache = cache
        self.validate = validate
        self.pause_until = 0.0  # monotonic time before which nobody sends (shared 429 back-off)
        self.rng = random.Random()
        self.budget = _Budget(options.max_cost_usd, options.price)
        self.client = None

    def make_client(self):
        import httpx2  # the openai SDK's HTTP layer (pinned with it)
        import openai  # imported here: building a client is the first thing a run does, never at import

        size = max(100, self.options.concurrency)  # the connection pool holds every request in flight
        return openai.AsyncOpenAI(api_key=self.endpoint.api_key(), base_url=self.endpoint.base_url,
                                  max_retries=0, timeout=self.options.timeout_s,
                                  # the SDK's aiohttp transport: ~20 % less CPU per request than its default
                                  # httpx one (measured with benchmarks/bench_eval.py at 16 in flight)
                                  http_client=openai.DefaultAioHttpClient(
                                      timeout=self.options.timeout_s, verify=tls_context(),
                                      limits=httpx2.Limits(max_connections=size, max_keepalive_connections=size)))

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        price = self.options.price
        return None if price is None else price.cost(input_tokens, output_tokens)

    def check_reply(self, reply: CachedReply, request_id: str) -> str:
        """Why a reply is unusable ("" if usable)."""
        if reply.finish_reason == "length":
            return "truncated: finish_reason 'length' (raise the max output tokens)"
        if not reply.text:
            return f"empty reply (finish_reason {reply.finish_reason!r})"
        if self.validate is not None:
            try:
                return self.validate(request_id, reply.text) or ""
            except Exception as exc:  # a validator that raises rejects the reply; it does not end the run
                return f"rejected by the validator: {type(exc).__name__}: {_short(str(exc))}"
        return ""

    def from_cache(self, request: ChatRequest, reply: CachedReply) -> CallResult:
        error = self.check_reply(reply, request.request_id)
        return CallResult(request_id=request.request_id, fingerprint=request.fingerprint,
                          status="invalid" if error else "ok", cached=True, text=reply.text,
                          finish_reason=reply.finish_reason, model=reply.model, input_tokens=reply.input_tokens,
                          output_tokens=reply.output_tokens, cost_usd=0.0, error=error)

    async def attempt(self, body: bytes) -> _Attempt:
        import httpx2
        import openai

        try:
            # client.post (the SDK's documented way to send a raw body) with the JSON already encoded (in
            # prepare's thread) and the raw HTTP response back: the same transport, status errors and retries
            # as chat.completions.create, without the SDK re-walking the body or building a ChatCompletion
            # model per reply (its typed-dict transform and model construction were most of the harness CPU)
            response = await self.client.post("/chat/completions", content=body, cast_to=httpx2.Response)
            data = json.loads(response.content)
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = f"HTTP {status}: {_short(exc.message)}"
            retry = status in RETRYABLE_STATUS or status >= 500
            wait = retry_after_seconds(exc.response.headers) if status == 429 else None
            return _Attempt(error=message, retry=retry, wait_s=wait)
        except openai.APITimeoutError:
            return _Attempt(error=f"timeout after {self.options.timeout_s:g}s", retry=True)
        except openai.APIConnectionError as exc:
            return _Attempt(error=f"connection error: {_short(str(exc.__cause__ or exc))}", retry=True)
        except ValueError as exc:  # a body that is not JSON (a proxy's error page, a cut connection): transient
            return _Attempt(error=f"malformed response body: {_short(str(exc))}", retry=True)
        except Exception as exc:  # anything else the SDK raises: a failure value, not a crash
            return _Attempt(error=f"{type(exc).__name__}: {_short(str(exc))}", retry=False)
        try:
            reply = reply_from_json(data)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            return _Attempt(error=f"unexpected response shape: {_short(str(exc))}", retry=False)
        return _Attempt(reply=reply)

    def backoff(self, attempt_no: int) -> float:
        base = min(self.options.backoff_max_s, self.options.backoff_base_s * 2 ** (attempt_no - 1))
        return base * self.rng.uniform(0.5, 1.0)

    async def wait_pause(self) -> None:
        while (delay := self.pause_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    @staticmethod
    async def prepare(request: ChatRequest) -> bytes | str:
        """The JSON request body (images encoded, in a thread), or the error text when an image cannot be read."""
        try:
            return await asyncio.to_thread(encode_body, request)
        except OSError as exc:
            return f"image: {_short(str(exc))}"

    async def call(self, request: ChatRequest, body: bytes | str) -> CallResult:
        """Send one request whose body prepare() built (an error text is recorded as the failure)."""
        result = CallResult(request_id=request.request_id, fingerprint=request.fingerprint, status="failed")
        reserved = await self.budget.reserve(request)
        if reserved is None:
            result.status, result.error = "not_run", f"budget: the cap ${self.options.max_cost_usd} would be exceeded"
            return result
        spent = 0.0
        try:
            if isinstance(body, str):
                result.error = body
                return result
            for attempt_no in range(1, self.options.max_attempts + 1):
                await self.wait_pause()
                result.attempts = attempt_no
                t0 = time.monotonic()
                outcome = await self.attempt(body)
                result.latency_s = round(time.monotonic() - t0, 4)
                if outcome.reply is not None:
                    reply = outcome.reply
                    result.input_tokens += reply.input_tokens
                    result.output_tokens += reply.output_tokens
                    cost = self.cost(reply.input_tokens, reply.output_tokens)
                    spent += cost or 0.0
                    result.text, result.finish_reason, result.model = reply.text, reply.finish_reason, reply.model
                    error = self.check_reply(reply, request.request_id)
                    result.status, result.error = ("invalid", error) if error else ("ok", "")
                    if not error and request.cacheable and self.cache is not None:
                        self.cache.put(request.fingerprint, request.request_id, reply)
                    break
                result.error = outcome.error
                if not outcome.retry or attempt_no == self.options.max_attempts:
                    if outcome.retry:
                        result.error = f"gave up after {attempt_no} attempts; last: {outcome.error}"
                    break
                if outcome.wait_s is not None:
                    wait = min(outcome.wait_s, self.options.max_retry_after_s)
                    self.pause_until = max(self.pause_until, time.monotonic() + wait)
                else:
                    await asyncio.sleep(self.backoff(attempt_no))
        finally:
            await self.budget.settle(reserved, spent, result.input_tokens)
        result.cost_usd = None if self.options.price is None else round(spent, 8)
        return result


_TLS_LOCK = threading.Lock()
_TLS: list = []


def tls_context():
    """The TLS context every API client of this process uses, built once (the SDK's transport built one per
    client from the same defaults: loading the CA bundle took 0.1-0.2 s of every run's request phase)."""
    with _TLS_LOCK:
        if not _TLS:
            import httpx2

            _TLS.append(httpx2.create_ssl_context())
        return _TLS[0]


def warm_tls() -> None:
    """Build tls_context() in a background thread now (a run calls this before its own setup work)."""
    threading.Thread(target=tls_context, name="tls-context", daemon=True).start()


def encode_body(request: ChatRequest) -> bytes:
    """The request body as the SDK would serialise it (compact UTF-8 JSON, as its openapi_dumps)."""
    return json.dumps(request.body(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def reply_from_json(data: dict) -> CachedReply:
    """The reply of a chat-completions response body (the fields a ChatCompletion model would give)."""
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    return CachedReply(text=choice["message"].get("content") or "", finish_reason=choice.get("finish_reason"),
                       input_tokens=int(usage.get("prompt_tokens") or 0),
                       output_tokens=int(usage.get("completion_tokens") or 0), model=data.get("model"))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


async def arun_requests(endpoint: Endpoint, requests: Sequence[ChatRequest], options: ClientOptions = ClientOptions(),
                        cache: ResponseCache | None = None, validate: Validator | None = None,
                        on_result: Callable[[CallResult], None] | None = None,
                        validate_for: RequestValidator | None = None) -> tuple[list[CallResult], RunSummary]:
    """Answer every request (cache first, then the API); results in input order, plus the totals.

    ``validate`` judges a reply by its text; ``validate_for`` by the request it answers too (request id, text)."""
    if options.concurrency < 1 or options.max_attempts < 1:  # 0 in flight: every request waited forever (a hang)
        raise ValueError(f"concurrency and max_attempts must be at least 1, got {options.concurrency} and "
                         f"{options.max_attempts}")
    if options.max_cost_usd is not None and options.price is None:
        raise ValueError(f"a budget cap needs a price for {endpoint.provider.name}/{endpoint.model}: "
                         "add it to vlm_api/pricing.py PRICE_TABLE")
    t0 = time.monotonic()
    runner = _Runner(endpoint, options, cache, _request_validator(validate, validate_for))
    results: list[CallResult | None] = [None] * len(requests)
    cached = cache.get_many([r.fingerprint for r in requests if r.cacheable]) if cache is not None else {}
    todo: list[int] = []
    for i, request in enumerate(requests):
        reply = cached.get(request.fingerprint) if request.cacheable else None
        if reply is not None:
            results[i] = runner.from_cache(request, reply)
            if on_result:
                on_result(results[i])
        else:
            todo.append(i)
    if todo:
        runner.client = runner.make_client()
        in_flight = asyncio.Semaphore(options.concurrency)
        # bodies are built ahead of a free slot (at most `concurrency` of them waiting, so memory stays
        # bounded): encoding an image inside the slot added its time to every round of requests
        ahead = asyncio.Semaphore(2 * options.concurrency)
        bar = tqdm(total=len(todo), desc=options.desc, unit="req", disable=not options.progress)

        async def one(i: int) -> None:
            async with ahead:
                body = await runner.prepare(requests[i])
                async with in_flight:
                    results[i] = await runner.call(requests[i], body)
            bar.update(1)
            if on_result:
                on_result(results[i])

        # the objects alive before the requests (modules, the caller's data: ~10^5) are left out of the cyclic
        # GC while they run: a full collection over them took 74-136 ms and stalled every request in flight
        freeze = gc.get_freeze_count() == 0  # a caller's own freeze is left as it was (not frozen again)
        if freeze:
            gc.freeze()
        try:
            try:
                await asyncio.gather(*(one(i) for i in todo))
            finally:
                bar.close()
                await runner.client.close()
        finally:  # even when close() raises
            if freeze:
                gc.unfreeze()
    done = [r for r in results if r is not None]
    return done, summarize(done, wall_s=time.monotonic() - t0)


def run_requests(endpoint: Endpoint, requests: Sequence[ChatRequest], options: ClientOptions = ClientOptions(),
                 cache: ResponseCache | None = None, validate: Validator | None = None,
                 on_result: Callable[[CallResult], None] | None = None,
                 validate_for: RequestValidator | None = None) -> tuple[list[CallResult], RunSummary]:
    """Synchronous wrapper of ``arun_requests`` (for code that is not already inside an event loop)."""
    return asyncio.run(arun_requests(endpoint, requests, options, cache, validate, on_result, validate_for))


def _request_validator(validate: Validator | None, validate_for: RequestValidator | None) -> RequestValidator | None:
    """One (request id, text) validator from either or both (the first error wins)."""
    if validate is None or validate_for is None:
        return validate_for or (None if validate is None else lambda _request_id, text: validate(text))
    return lambda request_id, text: validate(text) or validate_for(request_id, text)
