"""vlm_api: provider presets, request payloads (snapshots), fingerprints, the cache, and the client's
retry/cache/budget logic against the scripted local server (no network anywhere)."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from fracto_core.image_budget import llamafactory_resize
from fracto_core.vlm_api import backends, client, payloads, pricing
from fracto_core.vlm_api.backends import Endpoint, GenerationParams, ProviderError
from fracto_core.vlm_api.cache import CachedReply, ResponseCache
from fracto_core.vlm_api.client import ClientOptions, run_requests

from support import Reply, ScriptedServer

SECRET = "sk-test-DO-NOT-LEAK-7f3a9c"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_url_cache():
    """Every test starts and ends with an empty data-URL cache (payloads._URLS is per process)."""
    payloads._URLS.clear()
    yield
    payloads._URLS.clear()


def png_bytes(w=64, h=48, value=120) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h), value).save(buf, "PNG")
    return buf.getvalue()


def shorten_images(body: dict) -> dict:
    """The body with every data URL cut to its header + 12 characters (for snapshots)."""
    body = json.loads(json.dumps(body))
    for m in body["messages"]:
        if isinstance(m["content"], list):
            for part in m["content"]:
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    head, data = url.split(",", 1)
                    part["image_url"]["url"] = f"{head},{data[:12]}..."
    return body


# --- backends -----------------------------------------------------------------------------------

@pytest.mark.parametrize("provider,model,dialect", [
    ("openai", "gpt-5.2", "reasoning"), ("openai", "gpt-5-mini", "reasoning"), ("openai", "o3", "reasoning"),
    ("openai", "gpt-5-chat-latest", "chat"), ("openai", "gpt-4o", "chat"), ("openai", "gpt-4.1-mini", "chat"),
    ("gemini", "gemini-2.5-pro", "reasoning"), ("gemini", "gemini-3-pro-preview", "reasoning"),
    ("gemini", "gemini-2.0-flash", "chat"),
])
def test_dialect_from_model_name(provider, model, dialect):
    assert Endpoint.create(provider, model).dialect == dialect


def test_generation_kwargs_per_dialect():
    params = GenerationParams(max_output_tokens=4000, temperature=0.0, reasoning_effort="high")
    assert Endpoint.create("openai", "gpt-5.2").generation_kwargs(params) == {
        "reasoning_effort": "high", "max_completion_tokens": 4000}
    assert Endpoint.create("openai", "gpt-4o").generation_kwargs(params) == {"temperature": 0.0, "max_tokens": 4000}
    no_effort = GenerationParams(max_output_tokens=10)
    assert Endpoint.create("gemini", "gemini-2.5-pro").generation_kwargs(no_effort) == {"max_completion_tokens": 10}
    assert Endpoint.create("openai", "gpt-4o").is_deterministic(GenerationParams(temperature=0))
    assert not Endpoint.create("openai", "gpt-4o").is_deterministic(GenerationParams(temperature=0.7))
    assert Endpoint.create("openai", "gpt-5.2").is_deterministic(GenerationParams(temperature=0.7))


def test_presets_urls_and_keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "VLLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    gem = Endpoint.create("gemini", "gemini-2.5-pro")
    assert gem.base_url == "https://generativelanguage.googleapis.com/v1beta/openai/"
    with pytest.raises(ProviderError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        gem.api_key()
    monkeypatch.setenv("GOOGLE_API_KEY", "g-key")  # read at call time, after the endpoint was built
    assert gem.api_key() == "g-key" and gem.key_source() == "GOOGLE_API_KEY"
    monkeypatch.setenv("GEMINI_API_KEY", "g2")
    assert gem.api_key() == "g2"
    assert Endpoint.create("openai", "gpt-5.2").base_url is None  # the SDK default
    with pytest.raises(ProviderError, match="--base-url"):
        Endpoint.create("vllm", "qwen")
    vllm = Endpoint.create("vllm", "qwen", base_url="http://user:pw@gpu01:8000/v1?token=x")
    assert vllm.api_key() == "EMPTY"
    assert vllm.describe() == {"provider": "vllm", "model": "qwen", "base_url": "http://gpu01:8000/v1",
                               "dialect": "chat", "key_from": None}
    with pytest.raises(ProviderError, match="valid: gemini, openai, vllm"):
        backends.get_provider("anthropic")


# --- payloads -----------------------------------------------------------------------------------

def test_openai_request_snapshot():
    img = payloads.ImageInput.from_bytes(png_bytes(), 589_824)
    ep = Endpoint.create("openai", "gpt-5.2")
    req = payloads.build_request("x", ep, [img, "Caption: dimples."], GenerationParams(8192, reasoning_effort="high"),
                                 "v1", system="You label.", schema=("labels", {"type": "object", "properties": {
                                     "f": {"type": "string", "enum": ["a", "b"]}}, "required": ["f"],
                                     "additionalProperties": False}))
    assert shorten_images(req.body()) == {
        "model": "gpt-5.2",
        "messages": [
            {"role": "system", "content": "You label."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoA..."}},
                {"type": "text", "text": "Caption: dimples."}]},
        ],
        "max_completion_tokens": 8192,
        "reasoning_effort": "high",
        "response_format": {"type": "json_schema", "json_schema": {"name": "labels", "strict": True, "schema": {
            "type": "object", "properties": {"f": {"type": "string", "enum": ["a", "b"]}}, "required": ["f"],
            "additionalProperties": False}}},
    }
    assert req.cacheable


def test_gemini_request_snapshot():
    img = payloads.ImageInput.from_bytes(png_bytes(), 589_824)
    ep = Endpoint.create("gemini", "gemini-2.0-flash")
    schema = {"type": "object", "properties": {"f": {"type": "array", "items": {
        "type": "object", "properties": {"n": {"type": "string", "enum": ["a"]}}, "required": ["n"],
        "additionalProperties": False}}}, "required": ["f"], "additionalProperties": False}
    req = payloads.build_request("x", ep, [img, "t"], GenerationParams(1024), "v1", schema=("labels", schema))
    assert shorten_images(req.body()) == {
        "model": "gemini-2.0-flash",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoA..."}},
            {"type": "text", "text": "t"}]}],
        "max_tokens": 1024,
        "temperature": 0.0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "labels", "schema": {
            "type": "object", "properties": {"f": {"type": "array", "items": {
                "type": "object", "properties": {"n": {"type": "string", "enum": ["a"]}}, "required": ["n"]}}},
            "required": ["f"]}}},
    }


def test_image_kept_within_budget_and_resized_like_training(tmp_path):
    small = png_bytes(64, 48)
    mime, data = payloads.ImageInput.from_bytes(small, 589_824).encode()
    assert (mime, data) == ("image/png", small)  # source bytes kept, no re-encode
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1500), (90, 90, 90)).save(big)
    img = payloads.ImageInput.from_path(big, 100_000)
    mime, data = img.encode()
    with Image.open(io.BytesIO(data)) as sent:
        assert mime == "image/jpeg" and sent.format == "JPEG"
        assert sent.size == llamafactory_resize(2000, 1500, 100_000, 1024) == (365, 273)
    assert img.data_url().startswith("data:image/jpeg;base64,/9j/")
    with pytest.raises(OSError, match="not a readable image"):
        payloads.ImageInput.from_bytes(b"not an image", 1000)


def test_fingerprint_covers_what_changes_the_answer_and_nothing_secret(monkeypatch):
    img = payloads.ImageInput.from_bytes(png_bytes(), 589_824)
    params = GenerationParams(100)

    def fp(ep=None, image=img, text="t", params=params, version="v1"):
        return payloads.build_request("id", ep or Endpoint.create("openai", "gpt-4o"), [image, text], params,
                                      version).fingerprint

    base = fp()
    assert fp() == base
    assert fp(ep=Endpoint.create("openai", "gpt-4o", base_url="http://other:1/v1")) == base
    monkeypatch.setenv("OPENAI_API_KEY", "another-key")
    assert fp() == base
    others = {fp(ep=Endpoint.create("openai", "gpt-4.1")), fp(text="u"), fp(version="v2"),
              fp(params=GenerationParams(101)), fp(params=GenerationParams(100, temperature=0.5)),
              fp(image=payloads.ImageInput.from_bytes(png_bytes(value=121), 589_824)),
              fp(image=payloads.ImageInput.from_bytes(png_bytes(), 300_000))}
    assert base not in others and len(others) == 7


# --- cache --------------------------------------------------------------------------------------

def test_cache_round_trip_and_survives_sigkill(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        cache.put("fp1", "a", CachedReply("hello", "stop", 10, 2, "m"))
        assert cache.get("fp1") == CachedReply("hello", "stop", 10, 2, "m")
        assert cache.get("nope") is None
    code = (f"import os, signal\nfrom fracto_core.vlm_api.cache import ResponseCache, CachedReply\n"
            f"c = ResponseCache({str(path)!r})\n"
            "for i in range(50): c.put(f'k{i}', str(i), CachedReply('t', 'stop', 1, 1))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with ResponseCache(path) as cache:
        assert len(cache) == 51
        assert set(cache.get_many([f"k{i}" for i in range(60)])) == {f"k{i}" for i in range(50)}


def test_a_cache_file_that_is_not_sqlite_is_an_error_naming_it(tmp_path):
    """It was sqlite3.DatabaseError 'file is not a database' (no path), which the build does not report as a
    stage failure (it catches ValueError and OSError): a traceback."""
    bad = tmp_path / "label_cache.sqlite"
    bad.write_bytes(b"this is not an SQLite database, only some text that is long enough to have a header" * 4)
    with pytest.raises(OSError, match="label_cache.sqlite: not a usable response cache"):
        ResponseCache(bad)


# --- client against the scripted server ---------------------------------------------------------

def make_requests(ep: Endpoint, keys: list[str], params=GenerationParams(max_output_tokens=200)):
    img = payloads.ImageInput.from_bytes(png_bytes(), 589_824)
    return [payloads.build_request(k, ep, [img, f"[[{k}]] describe"], params, "v1") for k in keys]


FAST = dict(timeout_s=1.0, max_attempts=3, backoff_base_s=0.05, backoff_max_s=0.2)


def test_faults_become_retries_or_failure_values_and_only_valid_replies_are_cached(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    script = {
        "rate": [Reply(status=429, headers={"Retry-After": "0.3"}), Reply(content='{"v": "rate"}')],
        "flaky": [Reply(status=500), Reply(status=503), Reply(content='{"v": "flaky"}')],
        "down": [Reply(status=500)],
        "hang": [Reply(delay_s=5)],
        "garbled": [Reply(raw_body=b"{not json")],
        "truncated": [Reply(content='{"v": "trun', finish_reason="length")],
        "badjson": [Reply(content='{"v": oops}')],
        "auth": [Reply(status=401)],
    }
    keys = [*script, "plain"]
    with ScriptedServer(script=script) as srv:
        ep = Endpoint.create("openai", "gpt-5-mini", base_url=srv.base_url)
        price = pricing.price_for("openai", "gpt-5-mini")
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            results, summary = run_requests(ep, make_requests(ep, keys), ClientOptions(concurrency=4, price=price, **FAST),
                                            cache=cache, validate=lambda t: None if t.startswith('{"') and
                                            json.loads(t) else "bad")
        by = {r.request_id: r for r in results}
        assert [r.request_id for r in results] == keys  # input order
        assert (by["rate"].status, by["rate"].attempts, by["rate"].text) == ("ok", 2, '{"v": "rate"}')
        gap = [r.t for r in srv.requests if r.key == "rate"]
        assert gap[1] - gap[0] >= 0.29  # Retry-After honoured
        assert (by["flaky"].status, by["flaky"].attempts) == ("ok", 3)
        assert by["down"].status == "failed" and by["down"].attempts == 3 and "gave up after 3" in by["down"].error
        assert by["hang"].status == "failed" and "timeout" in by["hang"].error and by["hang"].attempts == 3
        assert by["garbled"].status == "failed" and "malformed response body" in by["garbled"].error
        assert by["truncated"].status == "invalid" and "truncated" in by["truncated"].error
        assert by["truncated"].text == '{"v": "trun'  # raw text kept
        assert by["badjson"].status == "invalid"
        assert by["auth"].status == "failed" and by["auth"].attempts == 1 and "HTTP 401" in by["auth"].error
        assert by["plain"].status == "ok"
        assert srv.keys()["auth"] == 1 and srv.keys()["down"] == 3
        # usage only from replies that arrived: rate, flaky, truncated, badjson, plain (1000 in / 100 out each)
        assert (summary.input_tokens, summary.output_tokens) == (5000, 500)
        assert summary.cost_usd == pytest.approx(price.cost(5000, 500))
        assert (summary.ok, summary.invalid, summary.failed, summary.cache_hits) == (3, 2, 4, 0)
        assert summary.retries == 1 + 2 + 2 + 2 + 2  # rate, flaky, down, hang, garbled

        # only the 3 valid replies were cached: a re-run asks again for exactly the 6 others
        n_before = srv.count()
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            assert len(cache) == 3
            results2, summary2 = run_requests(ep, make_requests(ep, keys), ClientOptions(concurrency=4, price=price,
                                                                                         **FAST), cache=cache)
        assert summary2.cache_hits == 3 and summary2.api_calls == 6
        assert {r.request_id for r in results2 if r.cached} == {"rate", "flaky", "plain"}
        assert srv.count("plain") == 1 and srv.count("rate") == 2
        assert srv.count() > n_before
        assert all(r.authorization == f"Bearer {SECRET}" for r in srv.requests)
    # the key reached the server and nothing else
    blob = (tmp_path / "cache.sqlite").read_bytes() + json.dumps([r.model_dump() for r in results + results2]).encode()
    blob += summary.line().encode() + caplog.text.encode()
    for f in tmp_path.iterdir():
        blob += f.read_bytes()
    assert SECRET.encode() not in blob


def test_concurrency_bound_and_fully_cached_rerun_makes_no_call(tmp_path):
    keys = [f"k{i}" for i in range(24)]
    with ScriptedServer(latency_s=0.1) as srv:
        ep = Endpoint.create("vllm", "tiny", base_url=srv.base_url)
        with ResponseCache(tmp_path / "c.sqlite") as cache:
            t0 = time.monotonic()
            _, s1 = run_requests(ep, make_requests(ep, keys), ClientOptions(
                concurrency=6, price=pricing.price_for("vllm", "tiny"), **FAST), cache=cache)
            wall = time.monotonic() - t0
            assert srv.max_in_flight == 6
            assert 0.4 <= wall < 1.5  # 24 x 0.1 s / 6 = 0.4 s
            _, s2 = run_requests(ep, make_requests(ep, keys), ClientOptions(concurrency=6, **FAST), cache=cache)
        assert s1.api_calls == 24 and s1.cost_usd == 0.0
        assert (s2.cache_hits, s2.api_calls, srv.count()) == (24, 0, 24)


def test_an_image_gone_before_sending_fails_that_request_only(tmp_path):
    """Bodies are built ahead of a free slot (client.arun_requests): an image that cannot be read then is
    that request's failure, recorded with the reason, and sends nothing; the others are answered."""
    with ScriptedServer(latency_s=0.05) as srv:
        ep = Endpoint.create("vllm", "tiny", base_url=srv.base_url)
        requests = make_requests(ep, [f"k{i}" for i in range(8)])
        gone = tmp_path / "gone.png"
        gone.write_bytes(png_bytes(61, 47, 3))  # bytes no other test sends (data URLs are kept by digest)
        image = payloads.ImageInput.from_path(gone, 589_824)
        gone.unlink()  # read for its digest and size when the request was made, gone when it is sent
        requests.insert(3, payloads.build_request("gone", ep, [image, "[[gone]] describe"],
                                                  GenerationParams(max_output_tokens=200), "v1"))
        results, summary = run_requests(ep, requests, ClientOptions(concurrency=2, **FAST))
    by_id = {r.request_id: r for r in results}
    assert [r.request_id for r in results] == [r.request_id for r in requests]
    assert by_id["gone"].status == "failed" and by_id["gone"].error.startswith("image: ")
    assert "gone.png" in by_id["gone"].error
    assert all(by_id[f"k{i}"].status == "ok" for i in range(8))
    assert srv.count() == 8 and summary.api_calls == 8


def test_sampling_calls_are_not_cached(tmp_path):
    with ScriptedServer() as srv:
        ep = Endpoint.create("vllm", "tiny", base_url=srv.base_url)
        reqs = make_requests(ep, ["a"], GenerationParams(max_output_tokens=50, temperature=0.8))
        assert not reqs[0].cacheable
        with ResponseCache(tmp_path / "c.sqlite") as cache:
            run_requests(ep, reqs, ClientOptions(**FAST), cache=cache)
            run_requests(ep, reqs, ClientOptions(**FAST), cache=cache)
            assert len(cache) == 0
        assert srv.count() == 2


def test_budget_cap_stops_before_exceeding_and_a_later_run_completes(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    keys = [f"k{i:02d}" for i in range(12)]
    price = pricing.Price(input_per_m=100.0, output_per_m=1000.0)  # 1000 in + 100 out = $0.2 per reply
    with ScriptedServer(latency_s=0.02) as srv:
        ep = Endpoint.create("openai", "gpt-4o", base_url=srv.base_url)
        reqs = make_requests(ep, keys, GenerationParams(max_output_tokens=100))
        cap = 1.0
        with ResponseCache(tmp_path / "c.sqlite") as cache:
            results, s = run_requests(ep, reqs, ClientOptions(concurrency=1, max_cost_usd=cap, price=price, **FAST),
                                      cache=cache)
            # the first reply shows 1000 input tokens (far above the estimate): from then on $0.2 is reserved,
            # so after 5 replies ($1.0 spent) the 6th would exceed the cap
            assert s.cost_usd == pytest.approx(1.0) and s.stopped_by_budget
            assert s.ok == srv.count() == 5 and s.not_run == 7
            assert all(r.status == "not_run" and r.attempts == 0 for r in results[s.ok:])
            done = s.ok
            _, s2 = run_requests(ep, reqs, ClientOptions(concurrency=4, max_cost_usd=100.0, price=price, **FAST),
                                 cache=cache)
        assert (s2.cache_hits, s2.api_calls, s2.ok) == (done, 12 - done, 12)
        assert srv.count() == 12
        assert s2.cost_usd == pytest.approx((12 - done) * price.cost(1000, 100))
    with pytest.raises(ValueError, match="needs a price"):
        run_requests(ep, reqs, ClientOptions(max_cost_usd=1.0, price=None))


def test_zero_concurrency_is_an_error_not_a_hang():
    """concurrency 0 made both semaphores 0: every request waited forever and the run never returned
    (eval.qa_task's --concurrency is not range-checked)."""
    ep = Endpoint.create("vllm", "tiny", base_url="http://127.0.0.1:9/v1")
    requests = [payloads.build_request("a", ep, ["hello"], GenerationParams(8), "v1")]
    code = ("from fracto_core.vlm_api import payloads\n"
            "from fracto_core.vlm_api.backends import Endpoint, GenerationParams\n"
            "from fracto_core.vlm_api.client import ClientOptions, run_requests\n"
            "ep = Endpoint.create('vllm', 'tiny', base_url='http://127.0.0.1:9/v1')\n"
            "run_requests(ep, [payloads.build_request('a', ep, ['hi'], GenerationParams(8), 'v1')], "
            "ClientOptions(concurrency=0, max_attempts=1))\n")
    try:  # in a child process: on the old code it never returns
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=30, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("run_requests with concurrency 0 did not return")
    assert proc.returncode != 0 and "concurrency and max_attempts must be at least 1" in proc.stderr
    with pytest.raises(ValueError, match="at least 1, got 4 and 0"):
        run_requests(ep, requests, ClientOptions(concurrency=4, max_attempts=0))


def test_retry_after_parsing():
    assert client.retry_after_seconds({"retry-after": "2"}) == 2.0
    assert client.retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert client.retry_after_seconds({}) is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= client.retry_after_seconds({"retry-after": date}) <= 31


def test_an_unparseable_retry_after_is_no_wait_and_does_not_end_the_run():
    """A 429 whose Retry-After is neither seconds nor an HTTP date (Python 3.10+'s parsedate_to_datetime raises
    for it) is retried with the usual backoff; it crashed the whole run, every other request's result lost."""
    assert client.retry_after_seconds({"retry-after": "soon"}) is None
    script = {"a": [Reply(status=429, headers={"Retry-After": "soon"}), Reply(content='{"v": 1}')]}
    with ScriptedServer(script=script) as srv:
        ep = Endpoint.create("vllm", "tiny", base_url=srv.base_url)
        reqs = [payloads.build_request(k, ep, [f"[[{k}]] hi"], GenerationParams(50), "v1") for k in ("a", "b")]
        results, summary = run_requests(ep, reqs, ClientOptions(**FAST))
    assert [(r.request_id, r.status, r.attempts) for r in results] == [("a", "ok", 2), ("b", "ok", 1)]


def test_price_table_lookup_and_estimate():
    assert pricing.price_for("openai", "gpt-5.2") == pricing.Price(1.75, 14.0)
    assert pricing.price_for("openai", "gpt-5-mini-2025-08-07") == pricing.Price(0.25, 2.0)  # dated snapshot
    assert pricing.price_for("vllm", "anything") == pricing.Price(0.0, 0.0)
    assert pricing.price_for("openai", "unknown-model") is None
    # the paper's baselines have a price, with its source; the Gemini API id carries a -preview suffix
    assert (pricing.price_for("openai", "gpt-5.5").input_per_m, pricing.price_for("openai", "gpt-5.5").output_per_m) \
        == (5.0, 30.0) and "2026" in pricing.price_for("openai", "gpt-5.5").source
    assert pricing.price_for("gemini", "gemini-3.1-pro-preview").output_per_m == 12.0
    assert pricing.price_for("gemini", "gemini-2.5-flash-lite-preview-06-17") == pricing.Price(0.10, 0.40)
    assert pricing.price_for("openai", "gpt-4o-2024-08-06") == pricing.Price(2.50, 10.00)
    # another model, not a snapshot: no price (gpt-5-pro was priced as gpt-5, ~12x too low for a --max-cost cap)
    for model in ("gpt-5-pro", "gpt-5.2-pro", "gpt-5-pro-2025-10-06", "gpt-4.1-nano", "gpt-4o-audio-preview"):
        assert pricing.price_for("openai", model) is None, model
    message = pricing.missing_price_message("openai", "gpt-9")
    assert "fracto_core/vlm_api/pricing.py" in message and 'PRICE_TABLE["openai"]["gpt-9"] = Price(' in message
    assert pricing.Price(2.0, 8.0).cost(1_000_000, 500_000) == pytest.approx(6.0)
    assert pricing.estimated_output_tokens("reasoning", "high", 100_000) == 4000
    assert pricing.estimated_output_tokens("reasoning", "high", 1000) == 1000


def test_an_image_sent_several_times_is_encoded_once(tmp_path, monkeypatch):
    """The requests of a multi-call sample (circular rotations) send one image: its data URL is made once (by
    source digest and budget, the last payloads.URL_CACHE_IMAGES images kept), and equals a fresh encoding."""
    path = tmp_path / "big.png"
    Image.new("L", (1600, 1200), 90).save(path)
    image = payloads.ImageInput.from_path(path, 589_824)
    fresh = image.data_url()
    payloads._URLS.clear()
    encoded = []
    real = payloads.ImageInput.encode
    monkeypatch.setattr(payloads.ImageInput, "encode", lambda self: encoded.append(1) or real(self))
    urls = [payloads.ImageInput.from_path(path, 589_824).data_url() for _ in range(4)]
    assert urls == [fresh] * 4 and len(encoded) == 1
    payloads.ImageInput.from_path(path, 400_000).data_url()  # another budget: encoded anew
    assert len(encoded) == 2


@pytest.mark.parametrize("caller_froze", [False, True])
def test_the_gc_freeze_is_undone_and_a_callers_own_is_kept(monkeypatch, caller_froze):
    """run_requests leaves gc.get_freeze_count() as it found it: after a normal run, after one whose client.close()
    raised, and when the caller had frozen objects of its own (they are not frozen again)."""
    import gc

    class Fake:
        close_fails = False

        async def post(self, *args, **kwargs):
            raise RuntimeError("no server")

        async def close(self):
            if Fake.close_fails:
                raise OSError("close failed")

    monkeypatch.setattr(client._Runner, "make_client", lambda self: Fake())
    ep = Endpoint.create("vllm", "tiny", base_url="http://127.0.0.1:9/v1")
    requests = [payloads.build_request("a", ep, ["hello"], GenerationParams(8), "v1")]
    options = ClientOptions(progress=False, max_attempts=1)
    gc.unfreeze()
    try:
        if caller_froze:
            gc.freeze()
        before = gc.get_freeze_count()
        keep = [[i] for i in range(1000)]  # made after the caller's freeze: not frozen by the run
        run_requests(ep, requests, options)
        assert gc.get_freeze_count() == before
        Fake.close_fails = True
        with pytest.raises(OSError, match="close failed"):
            run_requests(ep, requests, options)
        assert gc.get_freeze_count() == before and keep
    finally:
        gc.unfreeze()


def _at_once(threads: int, fn) -> None:
    """fn() in ``threads`` threads released together (a barrier), joined."""
    import threading
    start = threading.Barrier(threads)

    def run():
        start.wait()
        fn()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()


def test_one_image_prepared_by_four_threads_at_once_is_encoded_once(tmp_path, monkeypatch):
    """Bodies are built in threads (client._Runner.prepare): the circular rotations of one sample ask for its URL at
    the same time; the first encodes, the others wait for it."""
    path = tmp_path / "big.png"
    Image.new("L", (1600, 1200), 90).save(path)
    encoded = []
    real = payloads.ImageInput.encode

    def slow_encode(self):
        encoded.append(1)
        time.sleep(0.2)  # the others arrive while it runs
        return real(self)

    monkeypatch.setattr(payloads.ImageInput, "encode", slow_encode)
    urls = []
    _at_once(4, lambda: urls.append(payloads.ImageInput.from_path(path, 589_824).data_url()))
    assert len(encoded) == 1 and len(urls) == 4 and len(set(urls)) == 1
    assert not payloads._PENDING


def test_an_encoding_error_reaches_every_waiting_thread_and_is_not_kept(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (1600, 1200), 90).save(path)
    calls, errors = [], []

    def failing_encode(self):
        calls.append(1)
        time.sleep(0.2)
        raise OSError("unreadable")

    def prepare():
        try:
            payloads.ImageInput.from_path(path, 589_824).data_url()
        except OSError as exc:
            errors.append(str(exc))

    monkeypatch.setattr(payloads.ImageInput, "encode", failing_encode)
    _at_once(3, prepare)
    assert errors == ["unreadable"] * 3 and len(calls) == 1 and not payloads._PENDING and not payloads._URLS
