"""eval.records + eval.report: synthetic run dirs -> report whose numbers equal metrics computed directly."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import precision_score

from fracto_core.vocabulary import canonical_names, rare_names
from eval.metrics import bootstrap_multilabel, indicator_matrix, paired_bootstrap, sample_scores
from eval.records import (
    BenchmarkRef,
    Cost,
    RequestParams,
    RunCard,
    SampleRecord,
    SampleScores,
    TokenUsage,
    read_run,
)
from eval.report import ReportError, build_report, main
from eval.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
LABELS = canonical_names()
RESAMPLES = 1000


def truth(n: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        out.append(sorted(rng.choice(LABELS, size=k, replace=False).tolist(), key=LABELS.index))
    return out


def answers(reference: list[list[str]], skill: float, seed: int) -> list[str]:
    """Raw replies: keep each true feature with prob. skill, add a wrong one sometimes, some garbage."""
    rng = np.random.default_rng(seed)
    replies = []
    for ref in reference:
        roll = rng.random()
        if roll < 0.08:
            replies.append("The image shows a fracture surface.")  # unparseable
            continue
        feats = [f for f in ref if rng.random() < skill]
        if rng.random() > skill:
            feats.append(str(rng.choice(LABELS)))
        replies.append(json.dumps({"features": sorted(set(feats), key=LABELS.index)}))
    return replies


def write_run(folder: Path, model: str, reference: list[list[str]], replies: list[str | None],
              bench_hash: str = "a" * 64, task_name: str = "fracture_morphology", usd: float | None = 1.25,
              extra_lines: list[str] = ()) -> Path:
    """A run dir as eval.run writes it; a None reply is a failed request."""
    task = get_task(task_name)
    params = RequestParams(model=model.split(":")[-1], temperature=0.0, max_tokens=512, image_max_pixels=589_824)
    folder.mkdir(parents=True)
    lines = []
    for i, (ref, reply) in enumerate(zip(reference, replies)):
        base = dict(item_id=f"item{i:03d}", image_sha256=f"{i:064x}", task=task_name, model=model, reference=ref,
                    request=params)
        if reply is None:
            rec = SampleRecord(**base, error="APITimeoutError: request timed out after 3 attempts", attempts=3)
        else:
            ans = task.parse(reply)
            s = sample_scores(ref, ans.labels)
            rec = SampleRecord(**base, raw_reply=reply, parsed=list(ans.labels), parse_status=ans.status,
                               parse_detail=ans.detail, unknown_labels=list(ans.unknown), scores=SampleScores(**s),
                               latency_s=0.2 + i / 1000, tokens=TokenUsage(prompt=900, completion=20))
        lines.append(rec.model_dump_json())
    (folder / "samples.jsonl").write_text("\n".join([*lines, *extra_lines]) + "\n")
    card = RunCard(task=task_name, task_version=task.version, prompt_version=task.prompt_version, model=model,
                   backend="openai-compatible", endpoint="http://127.0.0.1:8000/v1", parameters=params,
                   benchmark=BenchmarkRef(name="fracto_test", kind="builder_split", path="out/dataset",
                                          hash=bench_hash, n_items=len(reference)),
                   versions={"fractovlm": "0.1.0"}, started_at="2026-11-01T10:00:00Z",
                   finished_at="2026-11-01T10:05:00Z", n_samples=len(reference),
                   n_failed=sum(r is None for r in replies),
                   cost=Cost(prompt_tokens=900 * len(reference), completion_tokens=20 * len(reference), usd=usd))
    (folder / "run_card.json").write_text(card.model_dump_json(indent=1))
    return folder


@pytest.fixture
def runs(tmp_path):
    reference = truth(100)
    replies_ft = answers(reference, 0.9, 1)
    replies_base = answers(reference, 0.5, 2)
    replies_base[3] = None  # two failed requests in the baseline run
    replies_base[40] = None
    ft = write_run(tmp_path / "runs" / "ft", "vllm:qwen-ft", reference, replies_ft)
    base = write_run(tmp_path / "runs" / "base", "vllm:qwen-base", reference, replies_base, usd=None)
    return reference, {"ft": (ft, replies_ft), "base": (base, replies_base)}


def direct(reference, replies):
    """Matrices of the scored samples (failures left out), computed without eval.report."""
    task = get_task("fracture_morphology")
    keep = [i for i, r in enumerate(replies) if r is not None]
    parsed = [task.parse(replies[i]) for i in keep]
    yt = indicator_matrix([reference[i] for i in keep], LABELS)
    yp = indicator_matrix([p.labels for p in parsed], LABELS)
    unp = np.array([p.status == "unparseable" for p in parsed])
    rare = np.array([label in rare_names() for label in LABELS])
    return keep, yt, yp, unp, rare


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    return {row["model"]: row for row in csv.DictReader(io.StringIO(path.read_text()))}


def test_report_numbers_equal_direct_metrics(runs, tmp_path):
    reference, dirs = runs
    out = tmp_path / "report"
    assert main([str(dirs["base"][0]), str(dirs["ft"][0]), "--out", str(out), "--resamples", str(RESAMPLES)]) == 0
    rows = read_csv(out / "report.csv")
    assert list(rows) == ["vllm:qwen-base", "vllm:qwen-ft"]
    for key, model in (("ft", "vllm:qwen-ft"), ("base", "vllm:qwen-base")):
        keep, yt, yp, unp, rare = direct(reference, dirs[key][1])
        expected = bootstrap_multilabel(yt, yp, unp, rare, n_resamples=RESAMPLES, seed=0)
        row = rows[model]
        for name in ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "sample_precision",
                     "exact_match", "rare_recall", "unparseable_share"):
            assert float(row[name]) == expected[name].estimate, (model, name)
            assert float(row[f"{name}_low"]) == expected[name].low, (model, name)
            assert float(row[f"{name}_high"]) == expected[name].high, (model, name)
        # the headline also equals scikit-learn's on the same arrays
        assert float(row["micro_precision"]) == pytest.approx(precision_score(yt, yp, average="micro"))
        assert int(row["n_scored"]) == len(keep) and int(row["n_items"]) == 100
        assert int(row["failures"]) == 100 - len(keep)
    assert rows["vllm:qwen-base"]["failures"] == "2" and rows["vllm:qwen-ft"]["failures"] == "0"
    assert rows["vllm:qwen-ft"]["cost_usd"] == "1.25" and rows["vllm:qwen-base"]["cost_usd"] == ""
    # the fine-tuned model is better here, and unparseable replies were counted
    assert float(rows["vllm:qwen-ft"]["micro_f1"]) > float(rows["vllm:qwen-base"]["micro_f1"])
    assert float(rows["vllm:qwen-ft"]["unparseable_share"]) > 0


def test_metrics_json_and_paired_comparison(runs, tmp_path):
    reference, dirs = runs
    files = build_report([dirs["base"][0], dirs["ft"][0]], tmp_path / "rep", n_resamples=RESAMPLES)
    assert [p.name for p in files.metrics] == ["metrics_vllm_qwen-base.json", "metrics_vllm_qwen-ft.json"]
    ft = json.loads(files.metrics[1].read_text())
    base = json.loads(files.metrics[0].read_text())
    assert base["n_failed"] == 2 and base["failure_reasons"] == {"APITimeoutError": 2}
    assert base["comparison_vs_first"] == {}
    per_label = {p["label"]: p for p in ft["per_label"]}
    _, yt, yp, unp, rare = direct(reference, dirs["ft"][1])
    j = LABELS.index("fatigue striations")
    assert per_label["fatigue striations"]["support"] == int(yt[:, j].sum())
    assert ft["parse_status"]["unparseable"] == int(unp.sum())
    # paired: only the 98 images scored in both runs, A = ft, B = the first run (base)
    keep_b, _, yp_b_all, unp_b_all, _ = direct(reference, dirs["base"][1])
    both = [i for i in range(100) if i in set(keep_b)]
    pos_b = {i: k for k, i in enumerate(keep_b)}
    expected = paired_bootstrap(yt[both], yp[both], yp_b_all[[pos_b[i] for i in both]], unp[both],
                                unp_b_all[[pos_b[i] for i in both]], rare, n_resamples=RESAMPLES, seed=0)
    for name in ("micro_precision", "micro_f1"):
        got = ft["comparison_vs_first"][name]
        assert got["n_images"] == 98
        assert got["difference"] == expected[name].difference and got["low"] == expected[name].low
        assert got["share_a_better"] == expected[name].share_a_better
    md = files.markdown.read_text()
    assert md.index("precision (micro)") < md.index("recall (micro)") < md.index("F1 (macro)")
    assert "±0.06" in md and "Failures (requests that produced no reply" in md
    assert "2 failed request(s)" in md and "Paired comparisons vs vllm:qwen-base" in md


def test_plots_are_valid_pngs(runs, tmp_path):
    _, dirs = runs
    files = build_report([dirs["ft"][0], dirs["base"][0]], tmp_path / "rep", n_resamples=RESAMPLES)
    assert sorted(p.name for p in files.plots) == ["headline_metrics.png", "per_feature_f1.png"]
    for path in files.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200
            assert len(set(im.convert("L").getdata())) > 10  # something was drawn


def test_mismatched_benchmark_hash_refused(tmp_path, capsys):
    reference = truth(10)
    a = write_run(tmp_path / "a", "m1", reference, answers(reference, 0.9, 1), bench_hash="a" * 64)
    b = write_run(tmp_path / "b", "m2", reference, answers(reference, 0.9, 2), bench_hash="b" * 64)
    with pytest.raises(ReportError, match="different benchmarks"):
        build_report([a, b], tmp_path / "rep")
    assert main([str(a), str(b), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "different benchmarks" in err and "aaaaaaaa" in err and "bbbbbbbb" in err
    assert not (tmp_path / "rep" / "report.md").exists()


def test_different_tasks_refused(tmp_path):
    reference = truth(5)
    a = write_run(tmp_path / "a", "m1", reference, answers(reference, 0.9, 1))
    b = write_run(tmp_path / "b", "m2", [["SEM"]] * 5, ["A"] * 5, task_name="microscopy_technique")
    with pytest.raises(ReportError, match="different tasks"):
        build_report([a, b], tmp_path / "rep")


def test_resume_last_record_wins_and_torn_line_skipped(tmp_path):
    reference = truth(4)
    replies = answers(reference, 1.0, 3)
    replies[1] = None
    run = write_run(tmp_path / "r", "m", reference, replies)
    # a resumed run retried item001 successfully, then was killed mid-write
    task = get_task("fracture_morphology")
    first = SampleRecord.model_validate_json((run / "samples.jsonl").read_text().splitlines()[1])
    ok = first.model_copy(update={"error": None, "raw_reply": json.dumps({"features": reference[1]}),
                                  "parsed": reference[1], "parse_status": "ok", "attempts": 1,
                                  "scores": SampleScores(**sample_scores(reference[1], reference[1]))})
    SampleRecord.model_validate(ok.model_dump())  # still a valid record
    with open(run / "samples.jsonl", "a") as fh:
        fh.write(ok.model_dump_json() + "\n" + ok.model_dump_json()[:40])
    loaded = read_run(run)
    assert loaded.torn_last_line and len(loaded.samples) == 4
    assert [s.item_id for s in loaded.samples] == ["item000", "item001", "item002", "item003"]
    assert not loaded.samples[1].failed and task.name == loaded.card.task
    files = build_report([run], tmp_path / "rep", n_resamples=RESAMPLES)
    row = read_csv(files.csv)["m"]
    assert row["failures"] == "0" and row["n_scored"] == "4"
    assert "torn last line" in files.markdown.read_text()


def test_torn_last_line_ending_in_an_inner_brace_is_skipped(tmp_path):
    """A kill can cut the last line right after a nested object ('"request": {...}'): it is still torn (no
    newline after it), skipped like any torn line -- not a RunFormatError that stops resume and report."""
    reference = truth(3)
    run = write_run(tmp_path / "r", "m", reference, answers(reference, 1.0, 3))
    whole = (run / "samples.jsonl").read_text().splitlines()[2]
    cut = whole.index("}") + 1  # the end of the first nested object
    assert cut < len(whole) - 1
    with open(run / "samples.jsonl", "a") as fh:
        fh.write(whole[:cut])
    loaded = read_run(run)
    assert loaded.torn_last_line and [s.item_id for s in loaded.samples] == ["item000", "item001", "item002"]


def test_a_reply_holding_unicode_line_separators_reads_back(tmp_path):
    """JSON keeps U+2028, U+2029 and U+0085 raw inside strings; the log is split at newlines only."""
    from eval.records import SampleLog, read_samples

    reference = truth(2)
    run = write_run(tmp_path / "r", "m", reference, answers(reference, 1.0, 3))
    first = read_run(run).samples[0]
    reply = first.raw_reply + " and\u2028a second line\u2029and\x85a third"
    with SampleLog(run / "samples.jsonl") as log:
        log.write(first.model_copy(update={"raw_reply": reply}))
    assert "\u2028" in (run / "samples.jsonl").read_text()  # written raw, as pydantic writes JSON
    samples, torn = read_samples(run / "samples.jsonl")
    assert not torn and len(samples) == 2 and samples[0].raw_reply == reply


def test_record_validation():
    params = RequestParams(model="m", image_max_pixels=1024)
    base = dict(item_id="x", image_sha256="0" * 64, task="fracture_morphology", model="m", reference=[],
                request=params)
    with pytest.raises(ValueError, match="failed sample"):
        SampleRecord(**base, error="boom", raw_reply="text")
    with pytest.raises(ValueError, match="needs raw_reply"):
        SampleRecord(**base, raw_reply="{}")
    with pytest.raises(ValueError, match="scored as empty"):
        SampleRecord(**base, raw_reply="x", parse_status="unparseable", parsed=["shear lip"],
                     scores=SampleScores(tp=0, fp=1, fn=0, precision=0, recall=0, f1=0, exact=False))
    with pytest.raises(ValueError):
        SampleRecord(**base, error="boom", surprise=1)  # extra fields are refused


def test_multiple_choice_report(tmp_path):
    refs = [["SEM"]] * 6 + [["optical microscopy"]] * 4
    replies_a = ["A"] * 6 + ["B", "B", "A", "no idea"]
    replies_b = ["A"] * 3 + ["C"] * 3 + ["B"] * 4
    a = write_run(tmp_path / "a", "m-a", refs, replies_a, task_name="microscopy_technique")
    b = write_run(tmp_path / "b", "m-b", refs, replies_b, task_name="microscopy_technique")
    files = build_report([a, b], tmp_path / "rep", n_resamples=RESAMPLES)
    rows = read_csv(files.csv)
    assert float(rows["m-a"]["accuracy"]) == pytest.approx(0.8)
    assert float(rows["m-a"]["balanced_accuracy"]) == pytest.approx((1 + 0.5) / 2)
    assert float(rows["m-a"]["unparseable_share"]) == pytest.approx(0.1)
    assert float(rows["m-b"]["accuracy"]) == pytest.approx(0.7)
    comp = json.loads(files.metrics[1].read_text())["comparison_vs_first"]
    assert comp["exact_match"]["difference"] == pytest.approx(-0.1)
    assert "balanced accuracy" in files.markdown.read_text()


def test_too_few_resamples_refused(runs, tmp_path):
    _, dirs = runs
    with pytest.raises(SystemExit) as exit_info:
        main([str(dirs["ft"][0]), "--out", str(tmp_path / "rep"), "--resamples", "200"])
    assert exit_info.value.code == 2


def test_help_and_usage():
    result = subprocess.run([sys.executable, "-m", "eval.report", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    assert "Usage: python -m eval.report RUN_DIR" in result.stdout and "--out" in result.stdout
    assert "--resamples" in result.stdout


def test_scoring_stands_without_the_report_writer(runs):
    """eval.scores (scoring, comparisons) is the layer below eval.report (writing): usable alone, same numbers."""
    from eval.scores import compare, score_run

    reference, dirs = runs
    base, ft = (score_run(read_run(dirs[k][0]), k, n_resamples=RESAMPLES) for k in ("base", "ft"))
    keep, yt, yp, unp, rare = direct(reference, dirs["ft"][1])
    expected = bootstrap_multilabel(yt, yp, unp, rare, n_resamples=RESAMPLES, seed=0)
    assert ft.figures["micro_precision"] == expected["micro_precision"] and len(ft.item_ids) == len(keep)
    assert compare(ft, base, RESAMPLES)["micro_f1"].n_images > 0
    code = "import sys, eval.scores; sys.exit('eval.report' in sys.modules or 'matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120).returncode == 0
