"""The sem_qa task (issue 15): strict judge parsing, aggregates against hand-computed values, a full run against
two scripted servers (answering model and judge, with malformed and refused judgements), resume and identity."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.judge import JUDGE_PROMPT_VERSION, judge_prompt, parse_judgement
from eval.qa_metrics import features_in_text, spearman
from eval.run import main as eval_main
from support import Reply, ScriptedServer


def J(quality, fid, rationale="r") -> Reply:
    return Reply(json.dumps({"quality": quality, "feature_identification": fid, "rationale": rationale}))


# --- judge prompt and parser ------------------------------------------------------------------------

def test_judge_prompt_snapshot() -> None:
    """Changing the judge prompt must be a visible, reviewed change (bump JUDGE_PROMPT_VERSION with it)."""
    system, text = judge_prompt("Q?", "Ref.", ["Ev one."], ["fatigue striations"], "Ans.")
    assert JUDGE_PROMPT_VERSION == "fracto-judge-v1"
    assert hashlib.sha256((system + "\n" + text).encode()).hexdigest() == (
        "320415747b7a159f229e4c61df32f5b491c0738963ed6b8e9501acfb142542e1")
    assert "(a refusal)" in judge_prompt("Q?", "No.", [], [], "", reference_refused=True)[1]


@pytest.mark.parametrize("text, status", [
    ('{"quality": 80, "feature_identification": 3, "rationale": "fine"}', "ok"),
    ('{"quality": 0, "feature_identification": 1, "rationale": ""}', "ok"),
    ('```json\n{"quality": 80, "feature_identification": 3, "rationale": "x"}\n```', "malformed"),
    ('{"quality": 80.0, "feature_identification": 3, "rationale": "x"}', "malformed"),
    ('{"quality": "80", "feature_identification": 3, "rationale": "x"}', "malformed"),
    ('{"quality": true, "feature_identification": 3, "rationale": "x"}', "malformed"),
    ('{"quality": 101, "feature_identification": 3, "rationale": "x"}', "malformed"),
    ('{"quality": 50, "feature_identification": 0, "rationale": "x"}', "malformed"),
    ('{"quality": 50, "feature_identification": 2}', "malformed"),
    ('{"quality": 50, "feature_identification": 2, "rationale": "x", "note": 1}', "malformed"),
    ('[80, 3]', "malformed"),
    ("Quality: 80", "malformed"),
    ("", "malformed"),
    ("I'm sorry, but I cannot evaluate this answer.", "refused"),
])
def test_parse_judgement_is_strict(text: str, status: str) -> None:
    verdict = parse_judgement(text)
    assert verdict.status == status, verdict
    if status != "ok":
        assert verdict.quality is None and verdict.feature_identification is None and verdict.detail


def test_features_in_text_and_spearman() -> None:
    assert features_in_text("Equiaxed dimples; no shear lip.") == ["equiaxed dimples"]
    assert features_in_text("Cleavage facets with river markings.") == ["cleavage facets", "river patterns"]
    assert features_in_text("") == []
    assert features_in_text("No fatigue striations but beach marks.") == ["beach marks"]
    assert features_in_text("Without dimples, whereas cleavage facets cover the rest") == ["cleavage facets"]
    assert features_in_text("No striations or beach marks.") == []  # the negation still spans "or"
    from scipy.stats import spearmanr

    rng = random.Random(0)
    for _ in range(20):
        a = [rng.randint(1, 4) for _ in range(15)]
        b = [rng.choice([0.0, 0.5, 0.67, 1.0]) for _ in range(15)]
        expected = spearmanr(a, b).statistic
        got = spearman(a, b)
        assert (got is None and np.isnan(expected)) or got == pytest.approx(expected)
    assert spearman([1, 1, 1], [0.1, 0.2, 0.3]) is None and spearman([1], [1]) is None


# --- a full run against scripted servers ------------------------------------------------------------

SAMPLES = [  # (id, kind, reference features, reference refused, model reply or None = server error)
    ("s1", "features", ["fatigue striations"], False, "Fatigue striations are visible."),
    ("s2", "features", ["equiaxed dimples", "shear lip"], False, "Equiaxed dimples; no shear lip."),
    ("s3", "mechanism", ["fatigue striations"], False, "Fatigue."),
    ("s4", "origin", [], True, "The image does not show the origin."),
    ("s5", "features", ["gas pore"], False, None),
    ("s6", "features", ["cleavage facets"], False, "Cleavage facets and river patterns."),
]
JUDGE_SCRIPT = {
    "s1": [J(90, 4), J(80, 4)],  # judged, then re-asked: |diff| 10
    "s2": [J(60, 2), Reply('```json\n{"quality": 60, "feature_identification": 2, "rationale": "x"}\n```')],
    "s3": [Reply("I'm sorry, I cannot evaluate this.")],  # refused (also when re-asked)
    "s4": [J(70, 3)],
    "s6": [J(101, 3)],  # out of range: malformed
}


def qa_benchmark(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "images").mkdir()
    lines = []
    for n, (sid, kind, feats, refused, _) in enumerate(SAMPLES):
        Image.new("L", (64 + n, 48), color=20 * n).save(root / "images" / f"{sid}.png")
        lines.append(json.dumps({"sample_id": sid, "item_id": f"item-{sid}", "image": f"images/{sid}.png", "kind": kind,
                                 "question": f"[[{sid}]] Question of kind {kind}?", "answer": f"Reference of {sid}.",
                                 "refused": refused, "sources": [] if refused else [f"Evidence of {sid}."],
                                 "features": feats, "item_features": feats}))
    (root / "fracto_qa_test_meta.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture()
def servers():
    model_script = {sid: [Reply(reply) if reply is not None else Reply(status=500, content=None)]
                    for sid, _, _, _, reply in SAMPLES}
    with ScriptedServer(script=model_script) as model, ScriptedServer(script=JUDGE_SCRIPT) as judge:
        yield model, judge


def run(tmp_path: Path, model: ScriptedServer, judge: ScriptedServer, *extra: str) -> int:
    bench = tmp_path / "bench"
    if not bench.exists():
        qa_benchmark(bench)
    return eval_main(["--task", "sem_qa", "--model", "vllm:tiny", "--base-url", model.base_url,
                      "--judge", "vllm:judge-model", "--judge-base-url", judge.base_url, "--benchmark", str(bench),
                      "--out", str(tmp_path / "run"), "--reask", "3", "--max-attempts", "1", "--quiet", *extra])


def test_sem_qa_scores_match_hand_computed_aggregates(tmp_path: Path, servers, monkeypatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    model, judge = servers
    assert run(tmp_path, model, judge) == 1  # failures present: exit 1
    out = tmp_path / "run"
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n_samples"], m["n_model_failed"], m["n_judged"], m["n_scored"]) == (6, 1, 5, 3)
    assert m["judge_status"] == {"ok": 3, "malformed": 1, "refused": 1, "failed": 0}
    assert m["judge_failure_share"] == pytest.approx(2 / 5)
    assert m["quality"]["mean"] == pytest.approx((90 + 60 + 70) / 3) and m["quality"]["n"] == 3
    assert m["quality"]["low"] <= m["quality"]["mean"] <= m["quality"]["high"]
    assert m["feature_identification"]["mean"] == pytest.approx(3.0)
    assert m["quality_features_questions"]["mean"] == pytest.approx(75.0)
    assert m["feature_identification_features_questions"]["mean"] == pytest.approx(3.0)
    assert m["quality_by_kind"] == {"features": 75.0, "origin": 70.0}
    sa = m["self_agreement"]  # re-asked: s1, s2, s3 (the first 3 by sample id); both ok only for s1
    assert (sa["n_reasked"], sa["n_both_ok"], sa["mean_abs_quality_diff"], sa["quality_within_10"],
            sa["feature_identification_equal"]) == (3, 1, 10.0, 1.0, 1.0)
    assert sa["reask_status"] == {"ok": 1, "malformed": 1, "refused": 1}
    ex = m["exact_match_agreement"]  # s1 exact (F1 1), s2 not (F1 2/3); judge 4 and 2: both agree with exact
    assert ex["n"] == 2 and ex["exact_set_share"] == 0.5 and ex["mean_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert ex["judge_ge3_equals_exact"] == 1.0 and ex["spearman_judge_vs_f1"] == pytest.approx(1.0)

    samples = {s["sample_id"]: s for s in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    assert samples["s5"]["model_error"] and samples["s5"]["judge"] is None
    assert samples["s6"]["judge"]["status"] == "malformed" and samples["s6"]["judge"]["quality"] is None
    assert "101" in samples["s6"]["judge"]["raw"] and "quality 101" in samples["s6"]["judge"]["detail"]
    assert samples["s3"]["judge"]["status"] == "refused"
    # what the judge saw: reference, evidence, the model's answer; never an image
    first = next(r.body for r in judge.requests if r.key == "s1")
    prompt = first["messages"][-1]["content"][0]["text"]
    assert "Reference of s1." in prompt and "Evidence of s1." in prompt and "Fatigue striations are visible." in prompt
    assert all(p["type"] == "text" for r in judge.requests for p in r.body["messages"][-1]["content"])
    assert first["temperature"] == 0.0 and first["max_tokens"] == 1024
    assert first["response_format"]["type"] == "json_schema"
    card = json.loads((out / "run_card.json").read_text())
    assert card["judge"]["model"] == "vllm:judge-model" and card["judge"]["prompt_version"] == JUDGE_PROMPT_VERSION
    assert card["judge"]["sampling"] == {"temperature": 0.0, "max_tokens": 1024} and card["judge"]["reasked"] == 3
    assert "judge malformed 1, refused 1" in (out / "report.md").read_text()
    assert (model.count(), judge.count()) == (6, 8)  # 5 judged + 3 re-asked

    # resume: cached replies are reused; the model failure and every failed judgement are asked again
    assert run(tmp_path, model, judge) == 1
    assert model.count() == 7 and [r.key for r in model.requests[6:]] == ["s5"]
    assert sorted(r.key for r in judge.requests[8:]) == ["s2", "s3", "s3", "s6"]
    # another judge in the same run directory is refused
    assert run(tmp_path, model, judge, "--judge-temperature", "0.5") == 2


def test_qa_meta_lines_split_at_newlines_only(tmp_path: Path) -> None:
    """The Q&A export writes ensure_ascii=False: evidence holding U+2028/U+2029/U+0085 (PDF text) stays raw in its
    line, where str.splitlines broke the line ("not a Q&A meta line")."""
    from eval.qa_task import load_qa_benchmark

    evidence = "Fatigue striations\u2028were seen\u2029near the origin\x85 of the crack."
    metas = [{"sample_id": f"s{i}", "item_id": f"i{i}", "image": f"images/i{i}.png", "kind": "features",
              "question": "Which features?", "answer": "Fatigue striations.", "refused": False,
              "sources": [evidence], "item_features": ["fatigue striations"]} for i in range(2)]
    path = tmp_path / "fracto_qa_test_meta.jsonl"
    path.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in metas), encoding="utf-8")
    _, items, _ = load_qa_benchmark(path)
    assert [it.sample_id for it in items] == ["s0", "s1"] and items[0].sources == [evidence]


def test_sem_qa_needs_a_judge(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        eval_main(["--task", "sem_qa", "--model", "vllm:x", "--base-url", "http://127.0.0.1:9/v1"])
    assert "--judge" in capsys.readouterr().err


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flag", ["--concurrency", "--max-attempts", "--limit"])
def test_sem_qa_refuses_a_count_below_one(tmp_path: Path, servers, capsys, flag: str) -> None:
    model, judge = servers  # (a concurrency of 0 waited forever; max attempts 0 failed every request silently)
    with pytest.raises(SystemExit) as exit_:
        run(tmp_path, model, judge, flag, "0")
    assert exit_.value.code == 2 and f"{flag} must be at least 1" in capsys.readouterr().err
    assert model.count() == 0


@pytest.mark.slow
def test_sem_qa_against_the_real_llamafactory_server(tmp_path: Path, built_qa, tiny_api_server) -> None:
    """`python -m eval.run --task sem_qa`: the answering model is the tiny Qwen3-VL behind `llamafactory-cli api`,
    the judge a scripted server (its first verdict malformed). Random weights answer garbage: every sample must
    end with a reply or a recorded failure, the judge counts must add up, the run card must name both models."""
    import os
    import subprocess
    import sys

    out, _ = built_qa
    base_url, name = tiny_api_server
    verdicts = iter([Reply("not a verdict")] + [J(50, 2)] * 100)
    with ScriptedServer(responder=lambda body, key, n: next(verdicts), model="judge-model") as judge:
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-m", "eval.run", "--task", "sem_qa", "--model", name, "--base-url",
                               base_url, "--judge", "vllm:judge-model", "--judge-base-url", judge.base_url,
                               "--benchmark", str(out / "dataset"), "--out", str(tmp_path / "run"), "--limit", "3",
                               "--reask", "1", "--max-tokens", "12", "--concurrency", "1", "--timeout", "120",
                               "--max-attempts", "1", "--quiet"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=600)
        n_judge_requests = judge.count()
    assert proc.returncode in (0, 1), proc.stderr
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 and len({s["sample_id"] for s in samples}) == 3
    assert all((s["model_reply"] is None) != (s["model_error"] is None) for s in samples)
    answered = [s for s in samples if s["model_reply"] is not None]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["n_samples"] == 3 and m["n_model_failed"] + m["n_judged"] == 3 and m["n_judged"] == len(answered)
    assert sum(m["judge_status"].values()) == m["n_judged"] and m["n_scored"] == m["judge_status"]["ok"]
    reasked = [s for s in answered if s["reask"] is not None]
    assert n_judge_requests == len(answered) + len(reasked) and len(reasked) <= 1
    statuses = [s["judge"]["status"] for s in answered] + [s["reask"]["status"] for s in reasked]
    assert statuses.count("malformed") == (1 if answered else 0) and proc.returncode == 1
    card = json.loads((tmp_path / "run" / "run_card.json").read_text())
    assert card["identity"]["parts"]["model"]["served"] == {"id": name}
    assert card["identity"]["parts"]["judge"]["served"] == {"id": "judge-model"}
    assert card["judge"]["prompt_version"] == JUDGE_PROMPT_VERSION and card["benchmark"]["n_items"] == 3
    assert card["settings"]["model"] == name and card["counts"]["n_samples"] == 3
    assert "judge malformed" in proc.stdout and f"run dir: {tmp_path / 'run'}" in proc.stdout


def test_sem_qa_takes_the_pixel_budget_of_the_cards_it_can_read(tmp_path: Path, servers) -> None:
    """A dataset card without image_max_pixels (or one that is not JSON) was a KeyError (JSONDecodeError) traceback;
    its image_min_pixels was ignored: a small image went out smaller than training ever showed one."""
    import base64
    import io

    model, judge = servers
    bench = qa_benchmark(tmp_path / "bench")
    (bench / "dataset_card.json").write_text(json.dumps({"image_max_pixels": 589_824, "image_min_pixels": 8192}))
    assert run(tmp_path, model, judge) == 1  # (s5's server error, as above)
    part = next(p for r in model.requests for p in r.body["messages"][-1]["content"] if p["type"] == "image_url")
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as im:
        assert im.width * im.height >= 8000  # 64 x 48 raised to about the floor (int() truncates, as LlamaFactory)
    for k, card in enumerate(['{"image_min_pixels": 8192}', "{not json"], 2):  # no budget, no JSON: the defaults
        (bench / "dataset_card.json").write_text(card)
        assert run(tmp_path, model, judge, "--out", str(tmp_path / f"run{k}")) == 1
