"""Every reply scored: a scripted server answers micrograph-like images with exact, over-called, wrong, synonym,
empty, truncated, invalid and off-vocabulary replies; eval.run's precision / recall / F1 (lenient and strict), the
parse-failure rate and the per-sample log equal an independent count made here, and the report never says
"precision 0" for a parse failure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eval.records import read_run
from eval.run import run_eval

from support import Reply, ScriptedServer
from support.eval_bench import config, features, image_keys, item_responder, make_benchmark

# item: (true features, reply, finish_reason)
CASES = {
    "exact":      (["equiaxed dimples", "shear lip"], features("equiaxed dimples", "shear lip"), "stop"),
    "overcalled": (["fatigue striations"], features("fatigue striations", "beach marks", "ratchet marks"), "stop"),
    "wrong":      (["cleavage facets"], features("intergranular facets"), "stop"),
    "synonym":    (["intergranular facets"], features("rock candy"), "stop"),
    "empty":      (["gas pore"], "", "stop"),
    "off_vocab":  (["river patterns"], features("river patterns", "martensite laths", "unicorn marks"), "stop"),
    "only_off":   (["crazing"], features("polymer crazes everywhere"), "stop"),
    "truncated":  (["secondary cracks"], '{"features": ["secondary cracks", "tear', "length"),
    "invalid":    (["quasi-cleavage"], '{"features": [quasi-cleavage]}', "stop"),
    "prose":      (["tear ridges"], "The surface shows tear ridges.", "stop"),
    "none_true":  ([], features(), "stop"),
}
# The count, by hand, feature by feature (names outside the vocabulary are wrong features):
#   exact 2 tp | overcalled 1 tp 2 fp | wrong 1 fp 1 fn | synonym 1 tp | empty 1 fn (parse failure)
#   off_vocab 1 tp 2 fp | only_off 1 fp 1 fn | truncated 1 fn (parse failure) | invalid 1 fn (parse failure)
#   prose 1 fn (parse failure) | none_true: nothing, exact
TP, FP, FN, PARSE_FAILURES = 2 + 1 + 1 + 1, 2 + 1 + 2 + 1, 1 + 1 + 1 + 1 + 1 + 1, 4


def test_precision_recall_f1_equal_an_independent_count(tmp_path):
    csv_path = make_benchmark(tmp_path / "bench", {k: v[0] for k, v in CASES.items()}, seed=11)
    keys = image_keys(csv_path)
    script = {k: [Reply(content=reply, finish_reason=finish)] for k, (_, reply, finish) in CASES.items()}
    with ScriptedServer(responder=item_responder(keys, script)) as srv:
        outcome = run_eval(config(csv_path, tmp_path / "run", srv.base_url))
        assert srv.count() == len(CASES)
    run = read_run(tmp_path / "run")
    assert run.card.n_failed == 0 and outcome.n_unparseable == PARSE_FAILURES and outcome.n_off_vocabulary == 2
    samples = {s.item_id: s for s in run.samples}
    # the per-sample log: statuses, kept names, listed unknown names, scores
    assert {k: s.parse_status for k, s in samples.items()} == {
        "exact": "ok", "overcalled": "ok", "wrong": "ok", "synonym": "mapped", "empty": "unparseable",
        "off_vocab": "off_vocabulary", "only_off": "off_vocabulary", "truncated": "unparseable",
        "invalid": "unparseable", "prose": "unparseable", "none_true": "ok"}
    assert samples["off_vocab"].parsed == ["river patterns"]
    assert samples["off_vocab"].unknown_labels == ["martensite laths", "unicorn marks"]
    assert (samples["off_vocab"].scores.tp, samples["off_vocab"].scores.fp) == (1, 2)
    assert samples["off_vocab"].scores.precision == pytest.approx(1 / 3)
    assert samples["synonym"].parsed == ["intergranular facets"] and samples["synonym"].scores.exact
    for k in ("empty", "truncated", "invalid", "prose"):
        s = samples[k]
        assert s.parsed == [] and s.scores.precision is None and s.scores.fn == 1 and s.raw_reply is not None, k
    assert "truncated: finish_reason 'length'" in samples["truncated"].parse_detail
    assert samples["truncated"].unknown_labels == []  # a cut reply names nothing, not even its complete names

    metrics = json.loads(next((tmp_path / "run" / "report").glob("metrics_*.json")).read_text())
    fig = {k: v["estimate"] for k, v in metrics["figures"].items()}
    assert fig["micro_precision"] == pytest.approx(TP / (TP + FP))
    assert fig["micro_recall"] == pytest.approx(TP / (TP + FN))
    assert fig["micro_f1"] == pytest.approx(2 * TP / (2 * TP + FP + FN))
    assert fig["strict_micro_precision"] == pytest.approx(TP / (TP + FP + PARSE_FAILURES))
    assert fig["strict_micro_f1"] == pytest.approx(2 * TP / (2 * TP + FP + FN + PARSE_FAILURES))
    assert fig["unparseable_share"] == pytest.approx(PARSE_FAILURES / len(CASES))
    assert fig["exact_match"] == pytest.approx(3 / len(CASES))  # exact, synonym, none_true
    assert metrics["parse_status"] == {"ok": 4, "mapped": 1, "off_vocabulary": 2, "unparseable": 4}
    assert metrics["off_vocabulary_names"] == {"martensite laths": 1, "unicorn marks": 1,
                                               "polymer crazes everywhere": 1}
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "parse failures" in md and "precision (strict)" in md and "precision 0" not in md


def test_a_model_answering_off_vocabulary_is_not_rewarded(tmp_path):
    """The issue's example: off-vocabulary answers used to score precision 1.000 beside 0.833 for one wrong label."""
    truths = {f"i{n}": ["equiaxed dimples", "shear lip"] for n in range(6)}
    csv_path = make_benchmark(tmp_path / "bench", truths, seed=5)
    keys = image_keys(csv_path)
    honest = {k: [Reply(content=features("equiaxed dimples", "shear lip"))] for k in truths}
    honest["i0"] = [Reply(content=features("equiaxed dimples", "cleavage facets"))]  # one wrong label
    vague = {k: [Reply(content=features("equiaxed dimples", "shear lip"))] for k in truths}
    for k in ("i0", "i1", "i2"):
        vague[k] = [Reply(content=features("equiaxed dimples", "ductile-looking stuff"))]
    scores = {}
    for name, script in (("honest", honest), ("vague", vague)):
        with ScriptedServer(responder=item_responder(keys, script)) as srv:
            run_eval(config(csv_path, tmp_path / name, srv.base_url, report=True))
        metrics = json.loads(next((tmp_path / name / "report").glob("metrics_*.json")).read_text())
        scores[name] = metrics["figures"]["micro_precision"]["estimate"]
    assert scores["honest"] == pytest.approx(11 / 12)
    assert scores["vague"] == pytest.approx(9 / 12) and scores["vague"] < scores["honest"]


def test_a_run_of_parse_failures_reports_precision_na_not_zero(tmp_path, capsys):
    from eval.run import main

    csv_path = make_benchmark(tmp_path / "bench", {"a": ["shear lip"], "b": ["crazing"]}, seed=2)
    with ScriptedServer(responder=lambda body, key, n: Reply(content="I am not sure.")) as srv:
        code = main(["--model", "scripted-vlm", "--base-url", srv.base_url, "--benchmark", str(csv_path),
                     "--out", str(tmp_path / "run"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "micro_precision: n/a (no reply named a feature" in out and "parse failures: 2 (100.0% of replies)" in out
    assert "strict precision counts each as a wrong answer: 0.000" in out
    metrics = json.loads(next((tmp_path / "run" / "report").glob("metrics_*.json")).read_text())
    assert np.isnan(metrics["figures"]["micro_precision"]["estimate"])
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "| scripted-vlm | n/a |" in md
