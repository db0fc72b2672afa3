"""Multi-call runs (eval.multicall: --context levels, circular multiple choice, the hybrid) read and score every
reply as eval.run does: off-vocabulary names, truncated replies, failures; and a run folder of another protocol
is refused. Against the scripted server."""

from __future__ import annotations

import json

from eval.records import read_run
from eval.run import RunConfig, run_eval

from support import Reply, ScriptedServer
from support.eval_classes import make_class_benchmark, prompt_text

OFF_VOCAB = json.dumps({"features": ["river patterns", "unicorn marks"]})
ROWS = [{"item_id": "i1", "features": "river patterns", "technique": "SEM", "mechanism": "brittle overload",
         "caption": "Cleavage fracture of a steel plate"}]


def cfg(csv_path, out, url, **kw) -> RunConfig:
    values = dict(model="scripted-vlm", benchmark=csv_path, out=out, base_url=url, concurrency=2, timeout_s=5.0,
                  max_attempts=1, backoff_base_s=0.05, progress=False, report=False)
    return RunConfig(**{**values, **kw})


def test_off_vocabulary_reply_in_a_context_run_and_from_a_hybrid_specialist(tmp_path):
    """A name outside the vocabulary used to crash the run (CallLog refused parse_status 'off_vocabulary')."""
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)

    def respond(body, key, n):
        if "specialist model examined" in prompt_text(body):
            return Reply(content=json.dumps({"mechanism": "brittle overload", "reasons": ["cleavage"]}))
        return Reply(content=OFF_VOCAB)

    with ScriptedServer(responder=respond) as server:
        ctx = run_eval(cfg(csv_path, tmp_path / "ctx", server.base_url, context="caption"))
        hybrid = run_eval(cfg(csv_path, tmp_path / "hyb", server.base_url, task="failure_mechanism",
                              model="hybrid:vllm:specialist+vllm:reasoner"))
    s = read_run(ctx.run_dir).samples[0]
    assert ctx.n_failed == 0 and s.parse_status == "off_vocabulary" and s.unknown_labels == ["unicorn marks"]
    assert s.parsed == ["river patterns"] and s.calls[0].parse_status == "off_vocabulary"
    h = read_run(hybrid.run_dir).samples[0]
    assert hybrid.n_failed == 0 and h.parsed == ["brittle overload"]
    assert h.calls[0].role == "specialist" and h.calls[0].parse_status == "off_vocabulary"
    assert h.calls[0].parsed == ["river patterns"]


def test_per_sample_scores_count_off_vocabulary_names_as_in_a_single_call_run(tmp_path):
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)
    with ScriptedServer(responder=lambda body, key, n: Reply(content=OFF_VOCAB)) as server:
        runs = {level: run_eval(cfg(csv_path, tmp_path / level, server.base_url, context=level))
                for level in ("none", "caption")}  # none: eval.run's single call; caption: eval.multicall
    single, multi = (read_run(runs[level].run_dir).samples[0] for level in ("none", "caption"))
    assert single.calls == [] and multi.calls  # the two code paths
    assert single.scores.fp == 1 and single.scores.precision == 0.5
    assert multi.scores == single.scores


def test_a_reply_cut_at_max_tokens_is_a_parse_failure_in_every_multi_call_run(tmp_path):
    """eval.run scores an empty or truncated reply (finish_reason 'length') as a parse failure whatever it holds;
    the multi-call runs used to parse it and score what it named (the right letter, mechanism, features)."""
    from support.eval_classes import answer_letter

    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)

    def respond(body, key, n):
        text = prompt_text(body)
        if "Choices:" in text:
            return Reply(content=f"The answer is {answer_letter(body, 'SEM')} because the", finish_reason="length")
        if "failure mechanism" in text:
            return Reply(content='{"mechanism": "brittle overload", "reasons": ["cleav', finish_reason="length")
        return Reply(content='{"features": ["river patterns"]} The surface also shows', finish_reason="length")

    runs = {"none": dict(), "caption": dict(context="caption"),
            "once": dict(task="microscopy_technique", circular=False), "circular": dict(task="microscopy_technique"),
            "mechanism": dict(task="failure_mechanism"),
            "hybrid": dict(task="failure_mechanism", model="hybrid:vllm:specialist+rules")}
    with ScriptedServer(responder=respond) as server:
        samples = {name: read_run(run_eval(cfg(csv_path, tmp_path / name, server.base_url, **kw)).run_dir).samples[0]
                   for name, kw in runs.items()}
    for name in ("none", "caption", "once", "circular", "mechanism"):
        s = samples[name]
        assert not s.failed and s.parse_status == "unparseable" and s.parsed == [], name
        assert "truncated" in s.parse_detail and s.raw_reply, name
    circular = samples["circular"]
    assert circular.circular_correct is False and len(circular.calls) == 6
    assert all(c.parse_status == "unparseable" and c.position is None and not c.correct for c in circular.calls)
    hybrid = samples["hybrid"]  # the specialist's cut reply names no feature: the rules find no mechanism
    assert hybrid.calls[0].parse_status == "unparseable" and hybrid.calls[0].parsed == []
    assert hybrid.parsed == ["undetermined"]


def test_a_circular_run_and_a_single_pass_run_do_not_resume_each_other(tmp_path):
    """Both default to output/eval/<task>/<model>: the resume check compared no protocol, so the second run took
    the first one's samples (single-pass ones in a circular run: a ZeroDivisionError in its circular summary)."""
    import pytest
    from eval.run import RunError
    from support.eval_classes import answer_letter

    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)
    with ScriptedServer(responder=lambda body, key, n: Reply(content=answer_letter(body, "SEM"))) as server:
        for first in (False, True):
            out = tmp_path / f"first-circular-{first}"
            done = run_eval(cfg(csv_path, out, server.base_url, task="microscopy_technique", circular=first))
            assert done.n_failed == 0 and read_run(out).samples[0].parsed == ["SEM"]
            n = server.count()
            with pytest.raises(RunError, match="circular"):
                run_eval(cfg(csv_path, out, server.base_url, task="microscopy_technique", circular=not first))
            assert server.count() == n
            again = run_eval(cfg(csv_path, out, server.base_url, task="microscopy_technique", circular=first))
            assert again.already_done == 1 and server.count() == n  # the same protocol still resumes


def test_a_circular_run_whose_every_request_failed_ends_with_its_failures_not_a_traceback(tmp_path):
    from eval.run import main

    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)
    with ScriptedServer(responder=lambda body, key, n: Reply(status=404, content=None)) as server:
        code = main(["--model", "scripted-vlm", "--base-url", server.base_url, "--task", "microscopy_technique",
                     "--benchmark", str(csv_path), "--out", str(tmp_path / "run"), "--quiet", "--max-attempts", "1"])
    assert code == 1  # as eval.run with --no-circular: some images got no reply
    run = read_run(tmp_path / "run")
    assert run.card.n_failed == 1 and run.samples[0].failed and "circular_summary" not in run.card.protocol


def test_multi_call_runs_record_the_replies_model_snapshots_as_eval_run_does(tmp_path, monkeypatch):
    """'API models record the dated snapshot of each reply' (docs/evaluation.md): per call, per sample, and in the
    run card (per part of a hybrid); multi-call runs recorded none."""
    from support.eval_classes import answer_letter

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)

    def respond(body, key, n):
        text = prompt_text(body)
        if "Choices:" in text:
            return Reply(content=answer_letter(body, "SEM"))
        if "specialist model examined" in text:
            return Reply(content=json.dumps({"mechanism": "brittle overload", "reasons": ["cleavage"]}))
        return Reply(content=json.dumps({"features": ["river patterns"]}))

    with ScriptedServer(responder=respond) as server:  # it answers with the model name it was asked for
        circular = run_eval(cfg(csv_path, tmp_path / "c", server.base_url, model="openai:gpt-5.5",
                                task="microscopy_technique"))
        hybrid = run_eval(cfg(csv_path, tmp_path / "h", server.base_url, task="failure_mechanism",
                              model="hybrid:vllm:specialist+openai:gpt-5.5"))
    run = read_run(circular.run_dir)
    assert all(c.served_model == "gpt-5.5" for c in run.samples[0].calls) and run.samples[0].served_model == "gpt-5.5"
    assert run.card.identity.snapshots == ["gpt-5.5"]
    run = read_run(hybrid.run_dir)
    assert [c.served_model for c in run.samples[0].calls] == ["specialist", "gpt-5.5"]
    assert run.samples[0].served_model is None  # two models behind the sample: each call names its own
    parts = run.card.identity.parts
    assert parts["specialist"].snapshots == ["specialist"] and parts["reasoner"].snapshots == ["gpt-5.5"]
