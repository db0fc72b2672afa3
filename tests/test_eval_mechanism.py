"""Issue 14: the failure_mechanism task, the rule-based reasoner, the hybrid specialist + reasoner (both calls
logged and cached, against the scripted server) and context levels; metrics against scikit-learn."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from eval.mechanism import parse_hybrid, HybridNameError, rules_reasoner
from eval.records import read_run
from eval.run import RunConfig, RunError, run_eval
from eval.tasks import get_task

from support.eval_classes import make_class_benchmark, prompt_text
from support import Reply, ScriptedServer

TASK = get_task("failure_mechanism")
ROWS = [
    {"item_id": "m1", "features": "fatigue striations;beach marks", "mechanism": "fatigue",
     "caption": "Fatigue fracture of a 4340 steel shaft [[m1]]", "excerpts": "striations were seen near the origin"},
    {"item_id": "m2", "features": "equiaxed dimples", "mechanism": "ductile overload",
     "caption": "Overload fracture [[m2]]", "excerpts": ""},
    {"item_id": "m3", "features": "intergranular facets;creep cavities", "mechanism": "creep",
     "caption": "Creep rupture of a superalloy blade [[m3]]", "excerpts": "cavities on grain boundaries||at 750 C"},
    {"item_id": "m4", "features": "cleavage facets;river patterns", "mechanism": "hydrogen embrittlement",
     "caption": "", "excerpts": ""},
    {"item_id": "m5", "features": "", "mechanism": "undetermined", "caption": "Surface [[m5]]", "excerpts": ""},
]


@pytest.mark.parametrize("features, mechanism", [
    (["fatigue striations", "beach marks"], "fatigue"),
    (["fish-eye", "fatigue striations"], "very-high-cycle fatigue"),
    (["intergranular facets", "creep cavities"], "creep"),
    (["intergranular facets", "corrosion products"], "stress-corrosion cracking"),
    (["intergranular facets", "quasi-cleavage"], "hydrogen embrittlement"),
    (["intergranular facets"], "intergranular embrittlement"),
    (["gas pore"], "defect-initiated"),
    (["equiaxed dimples"], "ductile overload"),
    (["cleavage facets"], "brittle overload"),
    ([], "undetermined"),
])
def test_rules_reasoner(features, mechanism):
    got, reasons = rules_reasoner(features)
    assert got == mechanism and reasons
    assert got in TASK.labels


def test_hybrid_names():
    assert parse_hybrid("hybrid:vllm:fracto+openai:gpt-5.5").specialist == "vllm:fracto"
    assert parse_hybrid("hybrid:truth+rules").reasoner == "rules"
    with pytest.raises(HybridNameError):
        parse_hybrid("hybrid:fracto")


def test_mechanism_parser():
    assert TASK.parse('{"mechanism": "SCC", "reasons": ["x"]}').labels == ("stress-corrosion cracking",)
    assert TASK.parse("This is very high cycle fatigue fracture.").labels == ("very-high-cycle fatigue",)
    assert TASK.parse('{"mechanism": "lightning"}').status == "unparseable"


def cfg(csv_path, out, **kw) -> RunConfig:
    values = dict(benchmark=csv_path, out=out, concurrency=4, timeout_s=5.0, max_attempts=2, backoff_base_s=0.05,
                  progress=False, task="failure_mechanism")
    return RunConfig(**{**values, **kw})


def test_oracle_features_with_rules_offline_and_metrics_vs_sklearn(tmp_path):
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)
    outcome = run_eval(cfg(csv_path, tmp_path / "rules", model="hybrid:truth+rules"))
    run = read_run(outcome.run_dir)
    got = {s.item_id: s.parsed[0] for s in run.samples}
    assert got == {"m1": "fatigue", "m2": "ductile overload", "m3": "creep", "m4": "brittle overload",
                   "m5": "undetermined"}
    assert [c.role for c in run.samples[0].calls] == ["specialist", "reasoner"]
    assert run.samples[0].reasons and "fatigue striations -> fatigue" in run.samples[0].reasons
    labels = list(TASK.labels)
    y_true = [labels.index(s.reference[0]) for s in run.samples]
    y_pred = [labels.index(s.parsed[0]) for s in run.samples]
    metrics = json.loads(next((outcome.run_dir / "report").glob("metrics_*.json")).read_text())
    figs = {k: v["estimate"] for k, v in metrics["figures"].items()}
    assert figs["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred)) == pytest.approx(0.8)
    assert figs["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    present = sorted(set(y_true) | set(y_pred))
    assert figs["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro"))
    assert "hydrogen embrittlement" in outcome.report_md.read_text()


def test_hybrid_both_calls_logged_and_cached_with_context(tmp_path):
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)

    def respond(body, key, n):
        text = prompt_text(body)
        if body["model"] == "specialist":  # no marker (the specialist sees no caption): answer by image
            return Reply(content=json.dumps({"features": ["fatigue striations"]}))
        assert "specialist model examined" in text
        return Reply(content=json.dumps({"mechanism": "fatigue", "reasons": [f"saw caption: {'caption' in text}"]}))

    with ScriptedServer(responder=respond) as server:
        model = "hybrid:vllm:specialist+vllm:reasoner"
        outcome = run_eval(cfg(csv_path, tmp_path / "h", model=model, base_url=server.base_url, context="caption"))
        assert server.count() == 10  # 5 specialist + 5 reasoner calls
        texts = [prompt_text(r.body) for r in server.requests]
        specialist = [t for r, t in zip(server.requests, texts) if r.body["model"] == "specialist"]
        reasoner = [t for r, t in zip(server.requests, texts) if r.body["model"] == "reasoner"]
        assert all("Figure caption" not in t for t in specialist)  # trained prompt, no context
        assert sum("Figure caption from the source paper: Fatigue fracture" in t for t in reasoner) == 1
        assert all("Sentences of the paper" not in t for t in reasoner)  # level caption: no excerpts
        again = run_eval(cfg(csv_path, tmp_path / "h", model=model, base_url=server.base_url, context="caption"))
        assert again.already_done == 5 and server.count() == 10  # resumed: every sample was done
        (tmp_path / "h" / "samples.jsonl").unlink()  # the log lost: both calls of every sample from the cache
        again = run_eval(cfg(csv_path, tmp_path / "h", model=model, base_url=server.base_url, context="caption"))
        assert again.already_done == 0 and server.count() == 10
        with pytest.raises(RunError, match="context"):  # another context level is another run
            run_eval(cfg(csv_path, tmp_path / "h", model=model, base_url=server.base_url, context="caption+excerpts"))
    run = read_run(again.run_dir)
    for s in run.samples:
        assert [c.role for c in s.calls] == ["specialist", "reasoner"] and all(c.cached for c in s.calls)
        assert s.calls[0].parsed == ["fatigue striations"] and s.parsed == ["fatigue"] and s.context == "caption"
    assert run.card.context == "caption" and run.card.protocol["context_coverage"]["with_caption"] == 4
    assert "[context caption]" in outcome.report_md.read_text()


def test_context_levels_side_by_side(tmp_path):
    """The same scripted VLM answers right only when told the caption (GlassLLaVA's finding, reproduced)."""
    from eval.report import build_report

    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)

    def respond(body, key, n):
        text = prompt_text(body)
        for r in ROWS:
            if f"[[{r['item_id']}]]" in text:
                return Reply(content=json.dumps({"mechanism": r["mechanism"], "reasons": ["caption"]}))
        return Reply(content='{"mechanism": "undetermined", "reasons": []}')

    dirs = []
    with ScriptedServer(responder=respond) as server:
        for level in ("none", "caption", "caption+excerpts"):
            out = run_eval(cfg(csv_path, tmp_path / level, model="vlm", base_url=server.base_url, context=level,
                               report=False))
            dirs.append(out.run_dir)
        sent = [prompt_text(r.body) for r in server.requests]
    assert sum("cavities on grain boundaries" in t for t in sent) == 1  # excerpts only at the top level
    files = build_report(dirs, out=tmp_path / "report")
    md = files.markdown.read_text()
    assert "## Context levels" in md and "vlm [context caption+excerpts]" in md
    acc = [json.loads(p.read_text())["figures"]["accuracy"]["estimate"] for p in files.metrics]
    assert acc == [pytest.approx(0.2), pytest.approx(0.8), pytest.approx(0.8)]  # m5 undetermined; m4 no caption


@pytest.mark.slow
def test_against_llamafactory_api_server(tmp_path, tiny_api_server):
    """The real `llamafactory-cli api` serving the tiny random Qwen3-VL: a hybrid (tiny specialist + rules) and a
    circular technique run; random weights answer garbage, which must be recorded and scored, never a failure."""
    base_url, name = tiny_api_server
    rows = [dict(r, technique="SEM") for r in ROWS[:2]]
    csv_path = make_class_benchmark(tmp_path / "bench", rows)
    hybrid = run_eval(cfg(csv_path, tmp_path / "h", model=f"hybrid:vllm:{name}+rules", base_url=base_url,
                          max_tokens=12, concurrency=1, timeout_s=120.0))
    run = read_run(hybrid.run_dir)
    assert run.card.n_failed == 0 and len(run.samples) == 2
    for s in run.samples:
        assert s.calls[0].raw_reply is not None and s.calls[0].tokens.completion > 0
        assert s.parsed and s.parsed[0] in TASK.labels  # rules answer from whatever the specialist said
    circ = run_eval(RunConfig(model=name, task="microscopy_technique", benchmark=csv_path, out=tmp_path / "c",
                              base_url=base_url, max_tokens=4, concurrency=1, timeout_s=120.0, progress=False))
    run = read_run(circ.run_dir)
    assert run.card.n_failed == 0 and all(len(s.calls) == 6 for s in run.samples)
    assert 0.0 <= run.card.protocol["circular_summary"]["circular_accuracy"] <= 1.0
