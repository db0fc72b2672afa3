"""eval.run: the model registry, request snapshots (OpenAI, Gemini; none sent), scoring against the scripted
server (hand-computed and scikit-learn metrics, faults, SIGKILL + resume, cost, keys never written, dry run),
and, slow: the real `llamafactory-cli api` serving the tiny Qwen3-VL, and slurm/eval.sh on the local Slurm
against the endpoint slurm/serve.sh wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fracto_core.answer_format import PROMPT_VERSION, instruction_prompt
from fracto_core.vlm_api.payloads import ImageInput
from fracto_core.vlm_api.pricing import price_for
from fracto_core.vocabulary import canonical_names, rare_names
from eval.benchmark import load_benchmark
from eval.models import ModelError, resolve_model
from eval.records import read_run, read_samples
from eval.run import RunConfig, RunError, build_requests, generation_params, main, run_eval
from eval.tasks import get_task

from support import Reply, ScriptedServer, free_port
from support.eval_bench import config, features, image_keys, item_responder, make_benchmark

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-NEVER-WRITE-ME-eval-77"
KEY_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "VLLM_API_KEY")
TASK = get_task("fracture_morphology")


# --- helpers -----------------------------------------------------------------------------------------

def by_item(run_dir: Path) -> dict[str, dict]:
    samples, torn = read_samples(run_dir / "samples.jsonl")
    assert not torn
    return {s.item_id: {"parsed": s.parsed, "status": s.parse_status, "scores": s.scores, "error": s.error,
                        "raw": s.raw_reply} for s in samples}


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)


# --- registry ----------------------------------------------------------------------------------------

def test_model_forms_resolve_and_unknown_forms_list_the_valid_ones(tmp_path, monkeypatch):
    spec = resolve_model("openai:gpt-5.5")
    assert (spec.provider, spec.model, spec.backend, spec.public_url()) == \
        ("openai", "gpt-5.5", "openai", "https://api.openai.com/v1")
    assert spec.endpoint().dialect == "reasoning"
    spec = resolve_model("gemini:gemini-3.1-pro")
    assert (spec.provider, spec.model, spec.public_url()) == \
        ("gemini", "gemini-3.1-pro", "https://generativelanguage.googleapis.com/v1beta/openai/")
    spec = resolve_model("fracto-32b", base_url="http://u:pw@gpu01:8000/v1?token=abc")
    assert (spec.provider, spec.model, spec.backend) == ("vllm", "fracto-32b", "openai-compatible")
    assert spec.public_url() == "http://gpu01:8000/v1"  # no credentials in the run card
    assert resolve_model("vllm:org/model:v2", base_url="http://h:1/v1").model == "org/model:v2"

    # the endpoint file slurm/serve.sh writes: $ENDPOINT_DIR/<name>.json, or --endpoint-file
    endpoints = tmp_path / "endpoints"
    endpoints.mkdir()
    (endpoints / "fracto-tiny.json").write_text(json.dumps(
        {"base_url": "http://node7:8123/v1", "model": "fracto-tiny", "backend": "vllm", "job_id": "42", "host": "n"}))
    monkeypatch.setenv("ENDPOINT_DIR", str(endpoints))
    for name in ("fracto-tiny", "vllm:fracto-tiny"):
        spec = resolve_model(name)
        assert (spec.model, spec.base_url) == ("fracto-tiny", "http://node7:8123/v1")
        assert spec.endpoint_source == f"endpoint file {endpoints / 'fracto-tiny.json'}"
    assert resolve_model("fracto-tiny", endpoint_file=endpoints / "fracto-tiny.json").base_url == "http://node7:8123/v1"
    with pytest.raises(ModelError, match="serves model 'fracto-tiny', not 'other'"):
        resolve_model("other", endpoint_file=endpoints / "fracto-tiny.json")
    with pytest.raises(ModelError, match=r"no --base-url and no endpoint file .*missing\.json.*slurm/serve\.sh"):
        resolve_model("missing")
    with pytest.raises(ModelError, match=r"(?s)unknown model form 'claude:opus'.*openai:<model>.*gemini:<model>"
                                         r".*vllm:<served name>"):
        resolve_model("claude:opus")
    with pytest.raises(ModelError, match="names no model"):
        resolve_model("openai:")


def test_cli_help_lists_every_flag_and_errors_exit_2(tmp_path, monkeypatch, capsys):
    done = subprocess.run([sys.executable, "-m", "eval.run", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m eval.run")
    assert "Usage: python -m eval.run" in done.stdout
    for flag in ("--model", "--task", "--benchmark", "--out", "--base-url", "--endpoint-file", "--limit",
                 "--concurrency", "--dry-run", "--no-resume", "--reasoning-effort", "--temperature", "--max-tokens",
                 "--image-max-pixels"):
        assert flag in done.stdout
    assert main(["--model", "mistral:large", "--dry-run"]) == 2
    assert "valid --model forms" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # no output/sample_build/dataset here
    assert main(["--model", "openai:gpt-5.5", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "output/sample_build/dataset" in err and "python -m dataset_builders.build" in err


# --- request snapshots (nothing is sent) -------------------------------------------------------------

@pytest.fixture
def one_image_bench(tmp_path):
    return load_benchmark(make_benchmark(tmp_path / "b1", {"img-1": ["equiaxed dimples"]}))


def snapshot_body(spec_name: str, bench, **kw) -> dict:
    spec = resolve_model(spec_name)
    endpoint = spec.endpoint()
    params = generation_params(RunConfig(model=spec_name, **kw), TASK, endpoint)
    requests, unreadable = build_requests(endpoint, TASK, bench, bench.items, params, 589_824, 1024)
    assert not unreadable and len(requests) == 1
    body = requests[0].body()
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    # the image is sent at its own bytes (64x80 is within the budget): a PNG data URL of the file
    raw = bench.image_path(bench.items[0]).read_bytes()
    import base64
    assert url == "data:image/png;base64," + base64.b64encode(raw).decode()
    body["messages"][0]["content"][0]["image_url"]["url"] = "<image>"
    return body


def test_openai_request_body_snapshot(one_image_bench):
    body = snapshot_body("openai:gpt-5.5", one_image_bench, reasoning_effort="high")
    assert body == {
        "model": "gpt-5.5",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "<image>"}},
            {"type": "text", "text": instruction_prompt()},
        ]}],
        "reasoning_effort": "high",
        "max_completion_tokens": 8192,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "fracture_morphology", "strict": True,
            "schema": {"type": "object",
                       "properties": {"features": {"type": "array",
                                                   "items": {"type": "string", "enum": canonical_names()}}},
                       "required": ["features"], "additionalProperties": False}}},
    }
    assert PROMPT_VERSION == "fracto-prompt-v1" and TASK.version == "fracture_morphology-2/fracto-prompt-v1"
    # the same text the training data uses after <image> (dataset_builders.export)
    assert instruction_prompt().startswith("You are an expert in fractography. Identify every fracture-surface")


def test_gemini_request_body_snapshot(one_image_bench):
    body = snapshot_body("gemini:gemini-3.1-pro", one_image_bench)
    assert body == {
        "model": "gemini-3.1-pro",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "<image>"}},
            {"type": "text", "text": instruction_prompt()},
        ]}],
        "max_completion_tokens": 8192,  # reasoning model: no temperature, the model's own reasoning effort
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "fracture_morphology",  # Gemini's subset: no "strict", no additionalProperties
            "schema": {"type": "object",
                       "properties": {"features": {"type": "array",
                                                   "items": {"type": "string", "enum": canonical_names()}}},
                       "required": ["features"]}}},
    }


def test_served_model_request_sends_explicit_sampling_and_the_pixel_budget(tmp_path):
    csv_path = make_benchmark(tmp_path / "b", {"big": []})
    Image.new("L", (1000, 700), 128).save(tmp_path / "b" / "big.png")  # larger than the budget
    bench = load_benchmark(csv_path)
    endpoint = resolve_model("fracto-32b", base_url="http://h:1/v1").endpoint()
    params = generation_params(RunConfig(model="x"), TASK, endpoint)
    (req,), _ = build_requests(endpoint, TASK, bench, bench.items, params, 65_536, 1024)
    body = req.body()
    assert (body["temperature"], body["max_tokens"]) == (0.0, 512)
    assert body["response_format"]["json_schema"].get("strict") is None
    import base64
    import io
    data = base64.b64decode(body["messages"][0]["content"][0]["image_url"]["url"].split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.size == (305, 214)  # int(sqrt(65536 / 700000) x (1000, 700))


# --- scripted server: metrics ------------------------------------------------------------------------

TRUTHS = {
    "a": ["equiaxed dimples"],
    "b": ["cleavage facets", "river patterns"],
    "c": ["fatigue striations"],
    "d": ["intergranular facets"],
    "e": ["crazing"],  # rare
    "f": ["gas pore"],
}
REPLIES = {
    "a": features("equiaxed dimples"),                          # tp 1
    "b": features("cleavage facets"),                           # tp 1, fn 1
    "c": features("fatigue striations", "beach marks"),         # tp 1, fp 1
    "d": "I cannot tell from this image.",                      # unparseable: fn 1
    "e": "```json\n" + features("crazing") + "\n```",           # tp 1 (rare)
    "f": features("dimples"),                                   # synonym of equiaxed dimples: fp 1, fn 1
}


def test_metrics_equal_hand_computed_values_and_scikit_learn(tmp_path):
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    csv_path = make_benchmark(tmp_path / "bench", TRUTHS)
    keys = image_keys(csv_path)
    script = {item: [Reply(content=text)] for item, text in REPLIES.items()}
    with ScriptedServer(responder=item_responder(keys, script)) as srv:
        outcome = run_eval(config(csv_path, tmp_path / "run", srv.base_url))
        assert srv.count() == 6
        sent = srv.requests[0].body
    assert sent["temperature"] == 0 and sent["max_tokens"] == 512 and sent["messages"][0]["content"][1]["text"] \
        == instruction_prompt()
    samples = by_item(tmp_path / "run")
    assert {k: v["status"] for k, v in samples.items()} == {"a": "ok", "b": "ok", "c": "ok", "d": "unparseable",
                                                             "e": "ok", "f": "mapped"}
    assert samples["f"]["parsed"] == ["equiaxed dimples"] and samples["d"]["parsed"] == []
    assert samples["d"]["raw"] == "I cannot tell from this image."
    assert (samples["c"]["scores"].tp, samples["c"]["scores"].fp, samples["c"]["scores"].precision) == (1, 1, 0.5)
    assert outcome.n_failed == 0 and outcome.n_unparseable == 1

    # by hand: TP 4, predicted 6, true 7; exact a, e; per-image precision 1, 1, .5, n/a (d named nothing), 1, 0
    metrics = json.loads(next((tmp_path / "run" / "report").glob("metrics_*.json")).read_text())
    fig = {k: v["estimate"] for k, v in metrics["figures"].items()}
    assert fig["micro_precision"] == pytest.approx(4 / 6)
    assert fig["micro_recall"] == pytest.approx(4 / 7)
    assert fig["micro_f1"] == pytest.approx(8 / 13)
    assert fig["exact_match"] == pytest.approx(2 / 6)
    assert fig["sample_precision"] == pytest.approx(3.5 / 5)
    assert fig["strict_micro_precision"] == pytest.approx(4 / 7)  # the parse failure d: one wrong answer
    assert fig["rare_recall"] == pytest.approx(1.0)
    assert fig["unparseable_share"] == pytest.approx(1 / 6)
    assert outcome.headline["name"] == "micro_precision" and outcome.headline["estimate"] == pytest.approx(4 / 6)
    assert outcome.headline["low"] <= 4 / 6 <= outcome.headline["high"]

    # scikit-learn on the arrays of the per-sample log
    labels = canonical_names()
    run = read_run(tmp_path / "run")
    yt = np.array([[lab in s.reference for lab in labels] for s in run.samples], dtype=int)
    yp = np.array([[lab in s.parsed for lab in labels] for s in run.samples], dtype=int)
    assert fig["micro_precision"] == pytest.approx(precision_score(yt, yp, average="micro", zero_division=np.nan))
    assert fig["micro_recall"] == pytest.approx(recall_score(yt, yp, average="micro", zero_division=0))
    assert fig["micro_f1"] == pytest.approx(f1_score(yt, yp, average="micro", zero_division=0))
    assert fig["macro_f1"] == pytest.approx(f1_score(yt, yp, average="macro", zero_division=np.nan))
    assert fig["sample_precision"] == pytest.approx(precision_score(yt, yp, average="samples", zero_division=np.nan))
    assert fig["exact_match"] == pytest.approx(accuracy_score(yt, yp))
    rare = [labels.index(r) for r in rare_names()]
    assert fig["rare_recall"] == pytest.approx(recall_score(yt[:, rare], yp[:, rare], average="micro"))

    card = run.card
    assert (card.n_samples, card.n_failed, card.backend, card.prompt_version) == (6, 0, "openai-compatible",
                                                                                  PROMPT_VERSION)
    assert card.benchmark.hash == load_benchmark(csv_path).hash and card.parameters.image_max_pixels == 589_824
    assert card.cost.prompt_tokens == 6 * 1000 and card.cost.usd == 0.0 and card.finished_at is not None
    assert json.loads((tmp_path / "run" / "benchmark_card.json").read_text())["n_items"] == 6
    for name in ("report.md", "report.csv", "per_feature_f1.png", "headline_metrics.png"):
        assert (tmp_path / "run" / "report" / name).stat().st_size > 0

    # the same run dir with other parameters is refused (no silent mixing); --no-resume starts over
    with pytest.raises(RunError, match="parameters"):
        run_eval(config(csv_path, tmp_path / "run", "http://127.0.0.1:9/v1", max_tokens=64, dry_run=True))


# --- scripted server: faults, failures, resume -------------------------------------------------------

def test_faults_end_scored_or_failed_failures_not_cached_and_retried_on_resume(tmp_path):
    ok = Reply(content=features("shear lip"))
    script = {
        "ok": [ok],
        "rate_limited": [Reply(status=429, headers={"Retry-After": "0.3"}), ok],
        "server_error": [Reply(status=500), ok],
        "timeout": [Reply(content=features("shear lip"), delay_s=3.0), ok],
        "bad_body": [Reply(raw_body=b"<html>502 bad gateway</html>", status=200)],
        "bad_json": [Reply(content='{"features": ["shear lip",')],
        "down": [Reply(status=503)] * 3 + [ok],
        "truncated": [Reply(content='{"features": ["shear', finish_reason="length")],
    }
    csv_path = make_benchmark(tmp_path / "bench", {k: ["shear lip"] for k in script})
    keys = image_keys(csv_path)
    inverse = {v: k for k, v in keys.items()}
    with ScriptedServer(responder=item_responder(keys, script)) as srv:
        cfg = config(csv_path, tmp_path / "run", srv.base_url, timeout_s=1.0, max_attempts=3)
        t0 = time.monotonic()
        outcome = run_eval(cfg)
        samples = by_item(tmp_path / "run")
        assert set(samples) == set(script)
        assert {k for k, v in samples.items() if v["error"]} == {"bad_body", "down"}
        assert "malformed response body" in samples["bad_body"]["error"]
        assert "gave up after 3 attempts" in samples["down"]["error"] and "503" in samples["down"]["error"]
        for item in ("ok", "rate_limited", "server_error", "timeout"):
            assert (samples[item]["status"], samples[item]["parsed"]) == ("ok", ["shear lip"]), item
        assert samples["bad_json"]["status"] == samples["truncated"]["status"] == "unparseable"
        assert samples["truncated"]["raw"] == '{"features": ["shear'
        run = read_run(tmp_path / "run")
        attempts = {s.item_id: s.attempts for s in run.samples}
        assert attempts["rate_limited"] == attempts["server_error"] == attempts["timeout"] == 2
        truncated = next(s for s in run.samples if s.item_id == "truncated")
        assert "truncated: finish_reason 'length'" in truncated.parse_detail
        assert outcome.n_failed == 2 and run.card.n_failed == 2 and outcome.n_unparseable == 2
        assert time.monotonic() - t0 >= 0.3  # the Retry-After was honoured
        with sqlite3.connect(tmp_path / "run" / "response_cache.sqlite") as db:
            cached = {r[0] for r in db.execute("SELECT request_id FROM replies")}
        assert cached == {"ok", "rate_limited", "server_error", "timeout", "bad_json"}  # no failure, no cut reply

        # resume: exactly the two failures are asked again; "down" now answers, "bad_body" still fails
        before = srv.keys()
        again = run_eval(cfg)
        new = srv.keys() - before
        assert {keys[k] for k in new} == {"bad_body", "down"}
        assert new[inverse["down"]] == 1 and new[inverse["bad_body"]] == 3
        assert again.already_done == 6 and again.n_failed == 1
        samples = by_item(tmp_path / "run")
        assert samples["down"]["parsed"] == ["shear lip"] and samples["down"]["error"] is None
        assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 10  # appended, last one wins
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "1 failed request(s)" in md


@pytest.mark.slow  # two CLI start-ups in subprocesses: ~12 s here
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    truths = {f"i{n:02d}": [canonical_names()[n % 5]] for n in range(12)}
    csv_path = make_benchmark(tmp_path / "bench", truths)
    keys = image_keys(csv_path)
    script = {item: [Reply(content=features(canonical_names()[(n * 7) % 5], "shear lip") if n % 3
                           else "no idea")] for n, item in enumerate(truths)}
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}

    # uninterrupted reference run
    with ScriptedServer(responder=item_responder(keys, script)) as srv:
        run_eval(config(csv_path, tmp_path / "whole", srv.base_url))
    with ScriptedServer(responder=item_responder(keys, script), latency_s=0.3) as srv:
        cmd = [sys.executable, "-m", "eval.run", "--model", "scripted-vlm", "--base-url", srv.base_url,
               "--benchmark", str(csv_path), "--out", str(tmp_path / "killed"), "--concurrency", "2", "--quiet"]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert srv.wait_for(5, timeout_s=60)
            time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        first = srv.keys()
        recorded = set(by_item(tmp_path / "killed"))
        with sqlite3.connect(tmp_path / "killed" / "response_cache.sqlite") as db:
            cached = {r[0] for r in db.execute("SELECT request_id FROM replies")}
        answered = recorded | cached
        assert 3 <= len(recorded) < 12 and not (tmp_path / "killed" / "report").exists()
        with open(tmp_path / "killed" / "samples.jsonl", "a") as fh:
            fh.write('{"item_id": "i00", "image_sha')  # a line cut by the kill
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        resumed = srv.keys() - first
    # the server saw exactly the requests that had no stored answer, each once
    assert {keys[k] for k in resumed} == set(truths) - answered
    assert all(c == 1 for c in resumed.values())
    assert f"({len(recorded)} from an earlier run)" in done.stdout
    whole, killed = by_item(tmp_path / "whole"), by_item(tmp_path / "killed")
    assert {k: (v["parsed"], v["status"], v["scores"]) for k, v in killed.items()} == \
        {k: (v["parsed"], v["status"], v["scores"]) for k, v in whole.items()}
    fig = [json.loads(next((tmp_path / d / "report").glob("metrics_*.json")).read_text())["figures"]
           for d in ("whole", "killed")]
    # estimates and bootstrap bounds equal: the report sorts samples by item id, not by reply order
    assert fig[0] == fig[1]


# --- cost, keys, dry run -----------------------------------------------------------------------------

def test_cost_from_usage_and_pricing_and_the_key_is_never_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    csv_path = make_benchmark(tmp_path / "bench", {"x": ["shear lip"], "y": [], "z": ["crazing"]})
    with ScriptedServer(responder=lambda b, k, n: Reply(content=features("shear lip")), prompt_tokens=1234,
                        completion_tokens=321) as srv:
        base_url = srv.base_url
        code = main(["--model", "openai:gpt-5-mini", "--base-url", srv.base_url, "--benchmark", str(csv_path),
                     "--out", str(tmp_path / "run"), "--reasoning-effort", "low", "--quiet"])
        assert code == 0
        assert all(r.authorization == f"Bearer {SECRET}" for r in srv.requests)
        body = srv.requests[0].body
    assert body["model"] == "gpt-5-mini" and body["reasoning_effort"] == "low"
    assert body["max_completion_tokens"] == 8192 and "temperature" not in body
    assert body["response_format"]["json_schema"]["strict"] is True
    expected = 3 * price_for("openai", "gpt-5-mini").cost(1234, 321)
    card = read_run(tmp_path / "run").card
    assert (card.cost.prompt_tokens, card.cost.completion_tokens) == (3 * 1234, 3 * 321)
    assert card.cost.usd == pytest.approx(expected) and "vlm_api.pricing" in card.cost.pricing
    assert card.endpoint == base_url and card.parameters.reasoning_effort == "low"
    assert card.parameters.extra["sent"] == {"max_completion_tokens": 8192, "reasoning_effort": "low"}
    out = capsys.readouterr().out
    assert f"cost ${expected:.4f}" in out and "micro_precision: 0.333 [95% CI" in out
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_dry_run_prints_requests_tokens_and_cost_and_sends_nothing(tmp_path, capsys):
    csv_path = make_benchmark(tmp_path / "bench", {f"p{n}": [] for n in range(5)})
    out = tmp_path / "run"
    code = main(["--model", "openai:gpt-5-mini", "--benchmark", str(csv_path), "--out", str(out), "--dry-run",
                 "--reasoning-effort", "low"])  # no key in the environment: not needed for a dry run
    assert code == 0
    text = capsys.readouterr().out
    bench = load_benchmark(csv_path)
    tokens = sum(ImageInput.from_path(bench.image_path(it), 589_824).estimated_tokens() for it in bench.items)
    assert "requests: 5 (0 already cached, 5 to send)" in text and "nothing sent" in text
    assert f"input image tokens: {tokens:,} (from the pixel budget)" in text
    assert re.search(r"estimated cost: \$\d+\.\d\d \(worst case \$", text)
    assert not out.exists()
    # without --dry-run the missing key is a clear error, before anything is written
    assert main(["--model", "openai:gpt-5-mini", "--benchmark", str(csv_path), "--out", str(out)]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err and not out.exists()


# --- the real local server (slow) --------------------------------------------------------------------

def test_default_pixel_budget_comes_from_the_dataset_card(built):
    from eval.run import pixel_budget

    bench = load_benchmark(built[0] / "dataset")
    card = json.loads((built[0] / "dataset" / "dataset_card.json").read_text())
    assert pixel_budget(bench, None) == (card["image_max_pixels"], card["image_min_pixels"],
                                         "dataset_card.json of the benchmark")
    assert pixel_budget(bench, 65_536)[0] == 65_536


@pytest.mark.slow
def test_real_llamafactory_server_end_to_end(tiny_api_server, built, tmp_path, capsys):
    base_url, model = tiny_api_server
    out = tmp_path / "run"
    t0 = time.perf_counter()
    code = main(["--model", model, "--base-url", base_url, "--benchmark", str(built[0] / "dataset"), "--out", str(out),
                 "--max-tokens", "24", "--image-max-pixels", "65536", "--concurrency", "2", "--timeout", "120",
                 "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    n = len(load_benchmark(built[0] / "dataset").items)
    run = read_run(out)
    assert len(run.samples) == n and run.card.n_failed == 0
    assert all(s.parse_status == "unparseable" and s.raw_reply is not None for s in run.samples), \
        "a random tiny model cannot answer in the format"
    assert all(s.tokens.prompt > 0 and s.tokens.completion > 0 for s in run.samples)  # usage from the real server
    md = (out / "report" / "report.md").read_text()
    # all parse failures: precision n/a (never "0"), recall 0, parse failures 1.000, strict precision 0
    assert "| tiny-qwen3vl | n/a | 0.000 [0.000, 0.000] | 0.000 [0.000, 0.000] | 1.000 [1.000, 1.000] | " \
           "0.000 [0.000, 0.000]" in md
    assert run.card.identity.served == {"id": "tiny-qwen3vl"}  # what llamafactory-cli api says it serves
    for name in ("report.csv", "per_feature_f1.png", "headline_metrics.png"):
        assert (out / "report" / name).stat().st_size > 0
    shutil.copy(out / "report" / "report.md", tmp_path / "real_server_report.md")  # kept for the closing note
    print(f"[eval] real server run: {n} images in {time.perf_counter() - t0:.1f} s")


# --- slurm/eval.sh on the local Slurm (slow) ---------------------------------------------------------

EVAL_CPU_JOB = ["--gres=none", "--cpus-per-task=1", "--mem=3G"]  # serve + eval side by side on a 2-CPU node


@pytest.fixture(scope="module")
def eval_cluster():
    """A one-node Slurm of its own (other ports than tests/test_slurm.py's, so both can run in one session)."""
    if not shutil.which("slurmctld") or not shutil.which("sbatch"):
        pytest.skip("Slurm is not installed (slurm/local_cluster/install.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("the local Slurm needs root (munged, slurmctld and slurmd are started here)")
    from test_slurm import Cluster, run

    state = Path(tempfile.mkdtemp(prefix="fracto-eval-slurm-", dir="/tmp"))  # the munge user must enter it
    env = {**os.environ, "SLURMCTLD_PORT": str(free_port()), "SLURMD_PORT": str(free_port())}
    done = run(["bash", REPO / "slurm" / "local_cluster" / "start.sh", state], env=env, timeout=120)
    if done.returncode != 0:
        run(["bash", REPO / "slurm" / "local_cluster" / "stop.sh", state, "--purge"])
        raise AssertionError(f"local Slurm did not start:\n{done.stdout[-1000:]}\n{done.stderr[-1000:]}")
    try:
        yield Cluster(state, {**os.environ, "SLURM_CONF": str(state / "etc" / "slurm.conf")})
    finally:
        run(["bash", REPO / "slurm" / "local_cluster" / "stop.sh", state, "--purge"])


@pytest.mark.slow
def test_slurm_eval_job_scores_the_model_serve_sh_serves(eval_cluster, tiny_dir, built, train_env, tmp_path):
    from test_slurm import TINY_RECIPE, run

    t0 = time.perf_counter()
    jobdir = tmp_path / "jobs"
    (jobdir / "logs").mkdir(parents=True)
    endpoints = tmp_path / "endpoints"
    env = {**train_env, "SERVE_BACKEND": "llamafactory", "SERVE_HOST": "127.0.0.1", "ENDPOINT_DIR": str(endpoints)}
    serve = eval_cluster.sbatch([*EVAL_CPU_JOB, REPO / "slurm" / "serve.sh", "--recipe", TINY_RECIPE,
                                 "--set", f"model_name_or_path={tiny_dir}", "--model-name", "fracto-tiny",
                                 "--out", tmp_path / "serve", "--health-timeout", "180"],
                                cwd=jobdir, env=env, wait=False)
    run_dir = tmp_path / "eval_run"
    try:
        deadline = time.monotonic() + 200
        while not (endpoints / "fracto-tiny.json").exists():
            state = eval_cluster.scontrol_state(serve)
            assert state in ("PENDING", "RUNNING", "CONFIGURING"), \
                (jobdir / "logs" / f"fracto-serve-{serve}.out").read_text()
            assert time.monotonic() < deadline, "no endpoint file after 200 s"
            time.sleep(1)
        job = eval_cluster.sbatch([*EVAL_CPU_JOB, REPO / "slurm" / "eval.sh", "--model", "fracto-tiny", "--",
                                   "--benchmark", built[0] / "dataset", "--out", run_dir, "--max-tokens", "16",
                                   "--concurrency", "1", "--quiet"], cwd=jobdir, env=env)
        log = (jobdir / "logs" / f"fracto-eval-{job}.out").read_text()
        assert eval_cluster.state_of(job, timeout=60) == "COMPLETED", log
    finally:
        run(["scancel", str(serve)], env=eval_cluster.env)
    assert "eval.sh: fracto-tiny at http://127.0.0.1:" in log and "report: " in log
    run_ = read_run(run_dir)
    assert run_.card.model == "fracto-tiny" and run_.card.n_failed == 0
    assert len(run_.samples) == len(load_benchmark(built[0] / "dataset").items)
    assert run_.card.parameters.image_max_pixels == json.loads(
        (built[0] / "dataset" / "dataset_card.json").read_text())["image_max_pixels"]
    assert (run_dir / "report" / "report.md").exists() and (run_dir / "report" / "report.csv").exists()
    print(f"[eval] slurm serve.sh + eval.sh: {time.perf_counter() - t0:.1f} s")
