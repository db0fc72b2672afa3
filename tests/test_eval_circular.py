"""Issue 14: the letter parser on tricky phrasings, option shuffling/rotation, and circular evaluation catching
a position-biased model served by the scripted server; multiple-choice metrics against scikit-learn."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, precision_score

from fracto_core.vlm_api.payloads import ImageInput
from eval.benchmark import load_benchmark
from eval.circular import option_orders, rotation_parse, rotation_prompt
from eval.letters import read_letter
from eval.records import read_run
from eval.run import RunConfig, main, run_eval
from eval.tasks import LETTERS, get_task

from support.eval_classes import answer_letter, make_class_benchmark
from support import Reply, ScriptedServer

TECH, MAT = get_task("microscopy_technique"), get_task("material_category")


@pytest.mark.parametrize("reply, letter", [
    ("The answer is D", "D"),  # a first-capital parser reads "T"
    ("(b)", "B"),
    ("Answer: C) Ceramic", "C"),
    ("I think it is B, not C", "B"),
    ("I think B", "B"),  # "I" is the pronoun, not option I
    ("A scanning electron micrograph, so C.", "C"),  # "A" is the article
    ("**C**", "C"),
    ("the answer is b", "B"),
    ("It is A.", "A"),
    ("not A but D", "D"),
    ("C) TEM", "C"),
    ("I would say E", "E"),
    ("The correct option is B because option A is wrong", "B"),
    ("I choose I", "I"),
])
def test_letter_parser_reads_the_answer(reply, letter):
    assert read_letter(reply, LETTERS[:10]).letter == letter


@pytest.mark.parametrize("reply", ["The answer is a SEM image", "B and C", "Answer: Z", "SEM", "", "I cannot tell."])
def test_letter_parser_never_guesses(reply):
    assert read_letter(reply, LETTERS[:10]).letter is None


def test_task_parser_uses_the_letter_and_checks_the_name():
    order = ("steel", "polymer", "ceramic/glass", "composite", "aluminium alloy", "titanium alloy",
             "nickel superalloy", "magnesium alloy", "copper alloy", "other metal")
    assert rotation_parse(MAT, order, "Answer: C) Ceramic").labels == ("ceramic/glass",)
    assert rotation_parse(MAT, order, "I think it is B, not C").labels == ("polymer",)
    assert rotation_parse(MAT, order, "The answer is D").labels == ("composite",)
    contradiction = rotation_parse(MAT, order, "Answer: A) Ceramic")  # A is steel in this order
    assert contradiction.status == "unparseable" and contradiction.labels == ()
    assert "C. ceramic/glass" in rotation_prompt(MAT, order)


def test_orders_rotate_every_option_through_every_position():
    orders = option_orders("item-7", MAT, seed=0)
    assert len(orders) == len(MAT.choices) == 10
    for name in MAT.labels:
        assert sorted(o.index(name) for o in orders) == list(range(10))
    assert orders == option_orders("item-7", MAT, seed=0)  # fixed seed: the same for every model and run
    assert orders[0] != option_orders("item-8", MAT, seed=0)[0] or orders[0] != option_orders("item-7", MAT, 1)[0]
    assert orders[1] == orders[0][1:] + orders[0][:1]


ROWS = [
    {"item_id": "i1", "features": "", "technique": "SEM", "material": "steel"},
    {"item_id": "i2", "features": "", "technique": "SEM", "material": "polymer"},
    {"item_id": "i3", "features": "", "technique": "TEM", "material": "steel"},
    {"item_id": "i4", "features": "", "technique": "optical microscopy", "material": "composite"},
    {"item_id": "i5", "features": "", "technique": "stereo microscopy", "material": "titanium alloy"},
    {"item_id": "i6", "features": "", "technique": "macro photograph", "material": "ceramic/glass"},
]


def image_truth(csv_path: Path, field: str) -> dict[str, str]:
    bench = load_benchmark(csv_path)
    return {hashlib.sha256(ImageInput.from_path(bench.image_path(it), 589_824).data_url().encode()).hexdigest()[:16]:
            getattr(it, field) for it in bench.items}


def run_config(csv_path, out, url, **kw) -> RunConfig:
    return RunConfig(model="scripted-vlm", benchmark=csv_path, out=out, base_url=url, concurrency=4, timeout_s=5.0,
                     max_attempts=2, backoff_base_s=0.05, progress=False, **kw)


def test_circular_evaluation_catches_a_position_biased_model(tmp_path):
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)
    with ScriptedServer(responder=lambda body, key, n: Reply(content="The answer is A")) as server:
        outcome = run_eval(run_config(csv_path, tmp_path / "biased", server.base_url, task="microscopy_technique"))
        assert server.count() == 6 * 6  # six images x six rotations
    run = read_run(outcome.run_dir)
    summary = run.card.protocol["circular_summary"]
    assert summary["circular_accuracy"] == 0.0  # right in exactly one rotation of each image, never in all
    assert summary["per_rotation_accuracy"] == pytest.approx(1 / 6)
    assert summary["position_share"]["A"] == 1.0
    for s in run.samples:
        assert sum(c.correct for c in s.calls) == 1 and s.circular_correct is False
        assert [c.position for c in s.calls] == ["A"] * 6
    report = outcome.report_md.read_text(encoding="utf-8")
    assert "circular" in report and "position" in report


def test_circular_evaluation_of_a_knowing_model_and_metrics_vs_sklearn(tmp_path):
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS)
    truth = image_truth(csv_path, "material")
    wrong = {"i5"}  # this image: always "steel"
    bench = load_benchmark(csv_path)
    id_of = {k: it.item_id for k, it in zip(image_truth(csv_path, "item_id"), bench.items)}

    def respond(body, key, n):
        name = "steel" if id_of[key] in wrong else truth[key]
        letter = answer_letter(body, name)
        other = LETTERS[(LETTERS.index(letter) + 1) % 10]
        return Reply(content=f"I think it is {letter}, not {other}.")

    with ScriptedServer(responder=respond) as server:
        outcome = run_eval(run_config(csv_path, tmp_path / "run", server.base_url, task="material_category"))
        n_first = server.count()
        assert n_first == 6 * 10
        again = run_eval(run_config(csv_path, tmp_path / "run", server.base_url, task="material_category"))
        assert again.already_done == 6 and server.count() == n_first  # resumed: every sample was done
        (tmp_path / "run" / "samples.jsonl").unlink()  # the log lost: every rotation comes from the cache
        again = run_eval(run_config(csv_path, tmp_path / "run", server.base_url, task="material_category"))
        assert again.already_done == 0 and server.count() == n_first
    run = read_run(again.run_dir)
    assert all(c.cached for s in run.samples for c in s.calls)
    summary = run.card.protocol["circular_summary"]
    assert summary["circular_accuracy"] == pytest.approx(5 / 6)
    # first-rotation figures vs scikit-learn (the report's table)
    labels = list(MAT.labels)
    y_true = [labels.index(s.reference[0]) for s in run.samples]
    y_pred = [labels.index(s.parsed[0]) for s in run.samples]
    metrics = json.loads(next((outcome.run_dir / "report").glob("metrics_*.json")).read_text())
    figs = {k: v["estimate"] for k, v in metrics["figures"].items()}
    assert figs["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert figs["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    present = sorted(set(y_true) | set(y_pred))
    assert figs["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=present, average="macro"))
    assert figs["macro_precision"] == pytest.approx(
        precision_score(y_true, y_pred, labels=sorted(set(y_pred)), average="macro"))
    cm = np.array(metrics["confusion_matrix"]["counts"])
    assert (cm[:, :-1] == confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))).all()
    assert cm[:, -1].sum() == 0  # no unanswered image
    assert (outcome.run_dir / "report" / "confusion_matrix_scripted-vlm.png").stat().st_size > 1000


def test_cli_no_circular_asks_once(tmp_path):
    csv_path = make_class_benchmark(tmp_path / "bench", ROWS[:2])
    with ScriptedServer(responder=lambda body, key, n: Reply(content="(a)")) as server:
        code = main(["--model", "scripted-vlm", "--base-url", server.base_url, "--task", "microscopy_technique",
                     "--benchmark", str(csv_path), "--out", str(tmp_path / "once"), "--quiet", "--no-circular"])
        assert code == 0 and server.count() == 2
