"""LLM labelling: prompt/schema snapshots, reply validation, and the label stage against the scripted server
(faults, cache, SIGKILL + resume, cost, budget cap, dry run, dataset card) and against a real
`llamafactory-cli api` serving the tiny Qwen3-VL (slow)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_builders import label as label_stage
from dataset_builders.build import build
from dataset_builders.config import BuildConfig
from fracto_core.image_budget import image_tokens
from dataset_builders.labelling.schema import LABEL_PROMPT_VERSION, label_json_schema, label_prompt, parse_reply, system_prompt
from dataset_builders.labelling.registry import LabelerUnavailableError, get_labeler
from dataset_builders.labelling.llm import cache_path, calls_path
from dataset_builders.records import LabelRecord, PanelRecord
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl
from fracto_core.vlm_api.cache import ResponseCache
from fracto_core.vlm_api.client import CallResult
from fracto_core.vlm_api.payloads import ImageInput
from fracto_core.vlm_api.pricing import price_for
from fracto_core.vocabulary import canonical_names

from support import Reply, ScriptedServer

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-NEVER-WRITE-ME-41b2"
KEY_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "VLLM_API_KEY")


def answer(features, not_fracture=False) -> str:
    return json.dumps({"not_a_fracture_surface": not_fracture,
                       "features": [{"name": n, "confidence": c, "evidence": f"saw {n}"} for n, c in features]})


# --- prompt, schema, validation ------------------------------------------------------------------

def test_schema_snapshot():
    assert label_json_schema() == {
        "type": "object",
        "properties": {
            "not_a_fracture_surface": {"type": "boolean", "description": (
                "true if the image is not a fracture surface (plot, schematic, polished microstructure, photo of "
                "a part without a visible fracture surface)")},
            "features": {"type": "array", "description": "every listed feature that is visible in the image; "
                                                         "empty if none",
                         "items": {"type": "object", "properties": {
                             "name": {"type": "string", "enum": canonical_names()},
                             "confidence": {"type": "number", "description": "0 to 1: how sure you are it is visible"},
                             "evidence": {"type": "string", "description": "short: what in the image (and text) "
                                                                           "shows it"}},
                             "required": ["name", "confidence", "evidence"], "additionalProperties": False}},
        },
        "required": ["not_a_fracture_surface", "features"],
        "additionalProperties": False,
    }
    assert LABEL_PROMPT_VERSION == "fracto-label-v1"


def test_prompt_snapshot():
    def panel(pid, caption, excerpts=(), figure_caption=""):
        return PanelRecord(panel_id=pid, figure_id="f", paper_id="p", source_pdf="a.pdf", page=1, image="i.jpg",
                           width=10, height=10, split_method="single", caption=caption,
                           figure_caption=figure_caption or caption, excerpts=list(excerpts), phash="0" * 16,
                           cues={"white_fraction": 0, "colourfulness": 0, "edge_density": 0, "grey_levels": 9,
                                 "std": 1})
    system, text = label_prompt((panel("a", "(a) Striations near the origin.", ["Fig. 2a shows striations."],
                                       "Fig. 2. (a) Striations near the origin; (b) dimples."),
                                 panel("b", "Reprint: fatigue striations.", ["Fig. 2a shows striations."])))
    assert text == ("Label the fracture-surface features visible in this image.\n"
                    "Panel caption: (a) Striations near the origin.\n"
                    "Whole figure caption: Fig. 2. (a) Striations near the origin; (b) dimples.\n"
                    "Text of the paper citing this figure:\n"
                    "- Fig. 2a shows striations.\n"
                    "The same image is also printed elsewhere with these captions:\n"
                    "- Reprint: fatigue striations.")
    assert system == system_prompt()
    # the system prompt is long (every definition): its hash is the snapshot; bump LABEL_PROMPT_VERSION with it
    assert system.startswith("You are an expert in fractography (ASM Handbook Vol. 12).")
    assert all(f"- {name}:" in system for name in canonical_names())
    assert hashlib.sha256(system.encode()).hexdigest()[:16] == "779c192c29401609"


def test_parse_reply_maps_synonyms_and_rejects_the_rest():
    ok = parse_reply("```json\n" + answer([("striations", 0.9), ("equiaxed dimples", 0.6),
                                            ("fatigue striations", 0.4)]) + "\n```")
    assert ok.error == "" and ok.features == ("equiaxed dimples", "fatigue striations")
    assert ok.confidence == {"equiaxed dimples": 0.6, "fatigue striations": 0.9}
    assert ok.mapped == (("striations", "fatigue striations"),)
    bad = parse_reply(answer([("martensite laths", 0.9), ("dimples", 0.9)]))
    assert bad.features == () and bad.unknown == ("martensite laths",) and "outside the vocabulary" in bad.error
    assert "confidence" in parse_reply(answer([("dimples", 1.5)])).error
    assert "features" in parse_reply('{"not_a_fracture_surface": false}').error
    assert parse_reply('{"features": [}').error.startswith("invalid JSON")
    assert parse_reply("I cannot tell.").error == "no JSON object in the reply"
    assert "not_a_fracture_surface is true" in parse_reply(answer([("dimples", 0.9)], not_fracture=True)).error
    assert parse_reply(answer([], not_fracture=True)).not_a_fracture_surface


def test_factories_refuse_clearly(monkeypatch, tmp_path):
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(LabelerUnavailableError, match="needs --label-model"):
        get_labeler("openai", BuildConfig(out=tmp_path))
    with pytest.raises(LabelerUnavailableError, match="OPENAI_API_KEY"):
        get_labeler("openai", BuildConfig(out=tmp_path, label_model="gpt-5.2"))
    with pytest.raises(LabelerUnavailableError, match="--base-url"):
        get_labeler("vllm", BuildConfig(out=tmp_path, label_model="q"))
    with pytest.raises(LabelerUnavailableError, match="needs a price"):
        get_labeler("openai", BuildConfig(out=tmp_path, label_model="my-ft", max_cost=5, dry_run=True))
    dry = get_labeler("openai", BuildConfig(out=tmp_path, label_model="gpt-5.2", dry_run=True))  # no key needed
    assert (dry.name, dry.origin, dry.prompt_version) == ("openai", "model:gpt-5.2", LABEL_PROMPT_VERSION)
    monkeypatch.setenv("GOOGLE_API_KEY", "x")
    assert get_labeler("gemini", BuildConfig(out=tmp_path, label_model="gemini-2.5-pro")).origin == "model:gemini-2.5-pro"


# --- the label stage against the scripted server -------------------------------------------------

@pytest.fixture(scope="module")
def deduped(corpus_dir, tmp_path_factory) -> Path:
    """A build of the sample corpus up to dedup (the label stage's inputs)."""
    out = tmp_path_factory.mktemp("deduped") / "out"
    config = BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=out, workers=2, seed=3)
    build(config, to_stage="dedup", progress=False)
    return out


@pytest.fixture
def out(deduped, tmp_path) -> Path:
    dest = tmp_path / "out"
    shutil.copytree(deduped, dest)
    return dest


def tasks_of(out: Path, config: BuildConfig):
    paths = StagePaths(out)
    return list(label_stage.iter_tasks(paths, label_stage.load_kept(paths), label_stage.load_groups(paths), []))


def image_key(task, config: BuildConfig) -> str:
    """The scripted server's key of a task's request (hash of its image data URL)."""
    url = ImageInput.from_path(task.image, config.image_max_pixels, config.image_min_pixels).data_url()
    return hashlib.sha256(url.encode()).hexdigest()[:16]


BEHAVIOURS = ("ok", "rate_limited", "server_error", "malformed", "unknown_label", "truncated", "not_fracture",
              "low_confidence")


def behaviour(key: str) -> str:
    return BEHAVIOURS[int(key, 16) % len(BEHAVIOURS)]


def scripted_responder(body, key, n) -> Reply:
    kind = behaviour(key) if key != "-" else "ok"
    good = Reply(content=answer([("dimples", 0.9), ("striations", 0.8)]))
    if kind == "rate_limited":
        return Reply(status=429, headers={"Retry-After": "0.1"}) if n == 0 else good
    if kind == "server_error":
        return Reply(status=500) if n == 0 else good
    if kind == "malformed":
        return Reply(content='{"not_a_fracture_surface": false, "features": [{"name": "dimples",')
    if kind == "unknown_label":
        return Reply(content=answer([("martensite laths", 0.9)]))
    if kind == "truncated":
        return Reply(content='{"not_a_fracture_surface": false, "feat', finish_reason="length")
    if kind == "not_fracture":
        return Reply(content=answer([], not_fracture=True))
    if kind == "low_confidence":
        return Reply(content=answer([("dimples", 0.2)]))
    return good


def llm_config(out: Path, base_url: str, **kw) -> BuildConfig:
    values = dict(out=out, labeler="vllm", label_model="qwen-test", base_url=base_url, concurrency=4,
                  label_timeout=5.0, label_max_attempts=3)
    values.update(kw)
    return BuildConfig(**values)


def test_every_image_ends_labelled_or_failed_and_only_valid_replies_are_cached(out, monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    paths = StagePaths(out)
    with ScriptedServer(responder=scripted_responder) as srv:
        config = llm_config(out, srv.base_url)
        tasks = tasks_of(out, config)
        kinds = {t.item_id: behaviour(image_key(t, config)) for t in tasks}
        assert len(set(kinds.values())) >= 4, "the corpus should exercise several behaviours"
        result = label_stage.run(paths, config, progress=False)
        records = {r.item_id: r for r in read_jsonl(paths.labels, LabelRecord)}
        assert set(records) == set(kinds)
        for item, kind in kinds.items():
            rec = records[item]
            assert rec.origin == "model:qwen-test" and rec.prompt_version == LABEL_PROMPT_VERSION
            if kind in ("ok", "rate_limited", "server_error"):
                assert (rec.status, rec.features) == ("labelled", ["equiaxed dimples", "fatigue striations"]), item
                assert rec.evidence["equiaxed dimples"] == "saw dimples (confidence 0.90)"
            elif kind in ("not_fracture", "low_confidence"):
                assert rec.status == "no_features" and rec.features == []
            else:
                assert rec.status == "failed" and "invalid reply" in rec.detail
        unknown = [r for i, r in records.items() if kinds[i] == "unknown_label"]
        for rec in unknown:
            assert "martensite laths" in rec.detail and "raw: {" in rec.detail
        n_bad = sum(k in ("malformed", "unknown_label", "truncated") for k in kinds.values())
        assert result.counts["failed"] == n_bad
        assert result.counts["retries"] == sum(k in ("rate_limited", "server_error") for k in kinds.values())
        with ResponseCache(cache_path(paths)) as cache:
            assert len(cache) == len(kinds) - n_bad
        calls = read_jsonl(calls_path(paths), CallResult)
        assert sorted(c.request_id for c in calls) == sorted(kinds)
        sources = {s.item_id: s for s in read_jsonl(label_stage.sources_path(paths), label_stage.LabelSources)}
        assert set(sources) == set(kinds)

        # re-run: exactly the failed ones are asked again
        before = srv.count()
        again = label_stage.run(paths, config, progress=False)
        assert srv.count() - before == n_bad
        assert again.counts["cache_hits"] == len(kinds) - n_bad and again.counts["api_calls"] == n_bad
        assert read_jsonl(paths.labels, LabelRecord) == sorted(records.values(), key=lambda r: r.item_id)


def test_cost_summary_matches_scripted_usage_and_the_key_is_never_written(out, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    paths = StagePaths(out)
    good = Reply(content=answer([("cleavage", 0.9)]))
    with ScriptedServer(responder=lambda b, k, n: good, prompt_tokens=1234, completion_tokens=321) as srv:
        config = llm_config(out, srv.base_url, labeler="openai", label_model="gpt-5-mini", reasoning_effort="low")
        result = label_stage.run(paths, config, progress=False)
        n = len(tasks_of(out, config))
        assert srv.count() == n and all(r.authorization == f"Bearer {SECRET}" for r in srv.requests)
        body = srv.requests[0].body
        assert body["model"] == "gpt-5-mini" and body["reasoning_effort"] == "low"
        assert body["max_completion_tokens"] == 8192 and "temperature" not in body and "max_tokens" not in body
        assert body["response_format"]["json_schema"]["strict"] is True
    expected = n * price_for("openai", "gpt-5-mini").cost(1234, 321)
    assert (result.counts["input_tokens"], result.counts["output_tokens"]) == (n * 1234, n * 321)
    assert result.counts["cost_microusd"] == round(expected * 1e6)
    assert f"cost ${expected:.4f}" in capsys.readouterr().out
    assert sum(c.cost_usd for c in read_jsonl(calls_path(paths), CallResult)) == pytest.approx(expected)
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_budget_cap_stops_cleanly_and_a_later_run_completes(out, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    paths = StagePaths(out)
    with ScriptedServer(responder=lambda b, k, n: Reply(content=answer([("dimples", 0.9)]))) as srv:
        config = llm_config(out, srv.base_url, labeler="openai", label_model="gpt-5-mini", label_max_tokens=200,
                            concurrency=1, max_cost=0.004)
        n = len(tasks_of(out, config))
        result = label_stage.run(paths, config, progress=False)
        sent = srv.count()
        assert 0 < sent < n
        assert result.counts["cost_microusd"] <= 4000 and result.counts["not_run"] == n - sent
        assert [p.reason for p in result.problems] == ["budget_cap"]
        records = read_jsonl(paths.labels, LabelRecord)
        assert sum(r.status == "labelled" for r in records) == sent
        assert all("not run: budget" in r.detail for r in records if r.status == "failed")
        done = label_stage.run(paths, config.model_copy(update={"max_cost": 1.0}), progress=False)
        assert srv.count() == n  # nothing asked twice
        assert done.counts["labelled"] == n and done.counts["cache_hits"] == sent


def test_sigkill_mid_run_then_rerun_makes_exactly_the_missing_calls(out):
    paths = StagePaths(out)
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    with ScriptedServer(responder=lambda b, k, n: Reply(content=answer([("dimples", 0.9)])), latency_s=0.15) as srv:
        cmd = [sys.executable, "-m", "dataset_builders.label", "--out", str(out), "--labeler", "vllm",
               "--label-model", "qwen-test", "--base-url", srv.base_url, "--concurrency", "2", "--quiet"]
        n = len(tasks_of(out, BuildConfig(out=out)))
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert srv.wait_for(6, timeout_s=60)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert not paths.labels.exists()
        first = srv.count()
        with ResponseCache(cache_path(paths)) as cache:
            kept = len(cache)
        assert 4 <= kept <= first < n
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert srv.count() - first == n - kept
        assert f"{kept} cache hits, {n - kept} API calls" in done.stdout
    records = read_jsonl(paths.labels, LabelRecord)
    assert len(records) == n and all(r.status == "labelled" for r in records)


def test_dry_run_in_the_build_prints_the_estimate_and_sends_nothing(corpus_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "dataset_builders.build", "--papers", str(corpus_dir / "papers"),
                           "--manual", str(corpus_dir / "manual"), "--out", str(out), "--seed", "3", "--quiet",
                           "--labeler", "openai", "--label-model", "gpt-5.2", "--reasoning-effort", "high",
                           "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    config = BuildConfig(out=out)
    tasks = tasks_of(out, config)
    tokens = 0
    for t in tasks:
        img = ImageInput.from_path(t.image, config.image_max_pixels)
        tokens += image_tokens(img.width, img.height, config.image_max_pixels, config.image_min_pixels)
    assert f"requests: {len(tasks)} (0 already cached, {len(tasks)} to send)" in proc.stdout
    assert f"input image tokens: {tokens:,} (from the pixel budget)" in proc.stdout
    assert "estimated cost: $" in proc.stdout
    paths = StagePaths(out)
    assert paths.dedup.exists() and not paths.labels.exists() and not paths.items.exists()
    assert not cache_path(paths).exists()


def test_label_cli_help_and_card_lists_disagreements(out, monkeypatch):
    help_text = subprocess.run([sys.executable, "-m", "dataset_builders.label", "--help"], cwd=REPO,
                               capture_output=True, text=True, timeout=60).stdout
    for flag in ("--out", "--labeler", "--label-model", "--reasoning-effort", "--base-url", "--concurrency",
                 "--max-cost", "--dry-run", "--label-max-pixels"):
        assert flag in help_text
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    paths = StagePaths(out)
    with ScriptedServer(responder=lambda b, k, n: Reply(content=answer([("dimples", 0.9)]))) as srv:
        label_stage.run(paths, llm_config(out, srv.base_url), progress=False)
    stored = json.loads((out / "build_config.json").read_text())
    config = BuildConfig(**{**stored, "out": out})
    build(config, from_stage="manual", progress=False)
    card = json.loads((paths.dataset / "dataset_card.json").read_text())
    sources = read_jsonl(label_stage.sources_path(paths), label_stage.LabelSources)
    disagree = [s.item_id for s in sources if s.only_caption_rules or s.only_model]
    assert disagree, "caption rules name other features than the scripted 'dimples'"
    cmp = card["labelling"]["model_vs_caption_rules"]
    assert (cmp["compared"], cmp["disagree"]) == (len(sources), len(disagree))
    assert [i["item_id"] for i in cmp["items"]] == disagree
    assert card["labelling"]["label_prompt_versions"] == [LABEL_PROMPT_VERSION]
    md = (paths.dataset / "dataset_card.md").read_text()
    assert "## Labelling" in md and f"`{LABEL_PROMPT_VERSION}`" in md and "### Disagreements" in md


# --- the real local OpenAI-compatible server: llamafactory-cli api on the tiny Qwen3-VL ------------
# (the `tiny_api_server` fixture lives in conftest.py, shared with tests/test_eval_run.py)

@pytest.mark.slow
def test_real_llamafactory_server_garbage_answers_become_failures_and_the_build_finishes(tiny_api_server, out,
                                                                                        monkeypatch):
    base_url, model = tiny_api_server
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    paths = StagePaths(out)
    config = llm_config(out, base_url, label_model=model, label_max_tokens=24, concurrency=2, label_timeout=120)
    n = len(tasks_of(out, config))
    result = label_stage.run(paths, config, progress=False)
    records = read_jsonl(paths.labels, LabelRecord)
    assert len(records) == n
    assert result.counts["api_calls"] == n and result.counts["failed_calls"] == 0  # every call answered
    assert result.counts["input_tokens"] > 0  # usage fields from the real server
    failed = [r for r in records if r.status == "failed"]
    assert len(failed) == n, "a random tiny model cannot produce a valid label"
    assert all(r.detail.startswith("invalid reply:") for r in failed)
    with ResponseCache(cache_path(paths)) as cache:
        assert len(cache) == 0  # nothing cached from a failure
    stored = json.loads((out / "build_config.json").read_text())
    results = build(BuildConfig(**{**stored, "out": out}), from_stage="manual", progress=False)
    assert results["items"].counts["dropped_unlabelled"] == n
    assert (paths.dataset / "dataset_info.json").exists()
