"""The whole builder, end to end, on generated papers with known ground truth."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fracto_core.answer_format import instruction_prompt, parse_answer
from dataset_builders.config import BuildConfig
from dataset_builders.sample_corpus import CorpusTruth
from dataset_builders.validate import validate_dataset
from support.build_outputs import all_outputs

REPO = Path(__file__).resolve().parents[1]
# floors just below what the sample corpus (8 papers, seed 3) reaches: see docs/sample_corpus.md
LABEL_PRECISION_FLOOR, LABEL_RECALL_FLOOR = 0.88, 0.84
ITEM_RECALL_FLOOR = 0.88


def _meta(out: Path, split: str) -> list[dict]:
    lines = (out / "dataset" / f"fracto_{split}_meta.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _truth(corpus: Path) -> CorpusTruth:
    return CorpusTruth.model_validate_json((corpus / "ground_truth.json").read_text())


def _truth_panels(truth: CorpusTruth) -> dict[tuple[str, int, str | None], object]:
    """(pdf name, figure number, panel letter) -> truth panel, for fracture figures."""
    index = {}
    for paper in truth.papers:
        for fig in paper.figures:
            for panel in fig.panels:
                index[(Path(paper.file).name, fig.number, panel.letter)] = (fig, panel)
    return index


def test_dataset_files_and_self_validation(built):
    out, _ = built
    info = json.loads((out / "dataset" / "dataset_info.json").read_text())
    assert set(info) == {"fracto_train", "fracto_val", "fracto_test", "fracto_train_no_manual",
                         "fracto_train_no_rotation"}
    for name, entry in info.items():
        samples = json.loads((out / "dataset" / entry["file_name"]).read_text())
        assert samples, f"{name} is empty"
        for s in samples:
            assert s["messages"][0] == {"role": "user", "content": "<image>" + instruction_prompt()}
            assert parse_answer(s["messages"][1]["content"]).status == "ok"
            assert (out / "dataset" / s["images"][0]).is_file()
    config = BuildConfig.model_validate_json((out / "build_config.json").read_text())
    assert validate_dataset(out / "dataset", config) == []


def test_labels_match_ground_truth(built, corpus_dir):
    """Caption-rule labels of every mined item against the generator's per-panel truth.

    A self-consistency check on generated text, not accuracy: the truth is the expert reading of captions
    and excerpts that also use paraphrases, abbreviations and hedges the rules do not know (a paraphrase the
    rules miss costs recall, a hedge read as an assertion costs precision)."""
    out, _ = built
    truth = _truth_panels(_truth(corpus_dir))
    tp = fp = fn = 0
    items = [m for split in ("train", "val", "test") for m in _meta(out, split)
             if m["label_origin"] == "caption_rules" and m["augmentation"] is None]
    assert len(items) >= 20
    for m in items:
        p = m["provenance"]
        fig, panel = truth[(p["source_pdf"], p["figure_number"], p["panel"])]
        assert fig.is_fracture, f"non-fracture figure {fig.figure_id} made it into the dataset"
        predicted, expected = set(m["features"]), set(panel.features)
        tp += len(predicted & expected)
        fp += len(predicted - expected)
        fn += len(expected - predicted)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= LABEL_PRECISION_FLOOR and recall >= LABEL_RECALL_FLOOR, (precision, recall)


# the sample corpus's materials as eval's material_category classes (by hand; None: no caption rule names it)
CORPUS_MATERIALS = {"AA7075-T6": "aluminium alloy", "Ti-6Al-4V": "titanium alloy", "316L stainless steel": "steel",
                    "AISI 4340 steel": "steel", "Inconel 718": "nickel superalloy", "S355 structural steel": "steel",
                    "AZ31 magnesium alloy": "magnesium alloy", "17-4PH steel": "steel", "PMMA": "polymer",
                    "polycarbonate": "polymer", "alumina": "ceramic/glass"}


def test_test_split_is_a_benchmark_with_class_columns_and_context(built, corpus_dir):
    """The test split's meta file carries caption, citing excerpts, technique and material (issue 14), and
    eval.benchmark reads them: checked against the generator's truth for every single-panel SEM figure."""
    from eval.benchmark import load_benchmark

    out, _ = built
    corpus = _truth(corpus_dir)
    papers = {Path(p.file).name: p for p in corpus.papers}
    # reprints share an item with their original, whose caption may name another material: left out here
    reprinted = {":".join(d.split(":")[:2]) for p in corpus.papers for f in p.figures
                 for d in [f.duplicate_of, *(panel.duplicate_of for panel in f.panels)] if d}
    bench = load_benchmark(out / "dataset")  # the test split
    meta = {m["item_id"]: m for m in _meta(out, "test")}
    checked = 0
    for it in bench.items:
        prov = meta[it.item_id]["provenance"]
        paper = papers.get(prov["source_pdf"])
        if paper is None:  # a manual item: no caption, no classes
            assert (it.caption, it.excerpts, it.technique, it.material) == ("", (), None, None)
            continue
        fig = next(f for f in paper.figures if f.number == prov["figure_number"])
        if (fig.layout != "single" or paper.material not in CORPUS_MATERIALS
                or fig.duplicate_of or fig.panels[0].duplicate_of or fig.figure_id in reprinted):
            continue
        assert it.caption == fig.caption
        says_sem = any(w in fig.caption.lower() for w in ("sem ", "secondary electron", "scanning electron"))
        assert it.technique == ("SEM" if says_sem else it.technique) and (it.technique is not None) == says_sem
        # the material is the paper's, or none when the caption names none or several (never another one)
        assert it.material in (None, CORPUS_MATERIALS[paper.material])
        cited = [c.text for c in paper.citations if c.figure == fig.number]
        text = " ".join(" ".join(it.excerpts).split())
        assert cited and all(" ".join(c.split()) in text for c in cited), (cited, it.excerpts)
        checked += 1
    assert checked >= 1, "no single-panel figure of a known material in the test split"
    assert "mechanism" not in next(iter(meta.values()))  # not emitted (see dataset_builders.export.meta_record)


def test_every_fracture_panel_is_an_item_once(built, corpus_dir):
    """Every item is a labelled fracture panel, once; a reprinted figure and its original are one item; most
    labelled fracture panels are items (a panel whose features are all paraphrased is a legitimate miss)."""
    out, _ = built
    truth = _truth(corpus_dir)
    figure_key = {fig.figure_id: (Path(paper.file).name, fig.number) for paper in truth.papers for fig in paper.figures}
    canonical = {}  # (pdf, figure number) of a reprint -> its original's
    expected = set()
    for paper in truth.papers:
        for fig in paper.figures:
            key = (Path(paper.file).name, fig.number)
            if fig.duplicate_of:
                canonical[key] = figure_key[fig.duplicate_of]
            elif fig.is_fracture:
                expected |= {(*key, p.letter) for p in fig.panels if p.features}
    assert canonical, "the corpus should contain reprinted figures"
    mined = []
    for m in (m for split in ("train", "val", "test") for m in _meta(out, split)):
        if m["label_origin"] == "caption_rules" and m["augmentation"] is None:
            p = m["provenance"]
            key = (p["source_pdf"], p["figure_number"])
            mined.append((*canonical.get(key, key), p["panel"]))
    assert len(mined) == len(set(mined)), "an image appears twice"
    assert set(mined) <= expected, sorted(set(mined) - expected)
    assert len(set(mined)) / len(expected) >= ITEM_RECALL_FLOOR, (len(set(mined)), len(expected),
                                                                  sorted(expected - set(mined)))


def test_splits_keep_papers_and_duplicates_together(built):
    out, _ = built
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for m in _meta(out, split):
            for paper in m["paper_ids"]:
                assert seen.setdefault(paper, split) == split, f"paper {paper} in {seen[paper]} and {split}"
    for split in ("val", "test"):
        assert all(m["augmentation"] is None for m in _meta(out, split)), "augmented images outside train"
    train = json.loads((out / "dataset" / "fracto_train.json").read_text())
    no_rot = json.loads((out / "dataset" / "fracto_train_no_rotation.json").read_text())
    assert len(train) > len(no_rot)


def test_rerun_is_byte_identical_and_resumes(built, corpus_dir, tmp_path):
    """A second run over a finished output reuses the mined papers and rewrites the same bytes."""
    from dataset_builders.build import build

    out, _ = built
    before = _tree_digest(out)
    config = BuildConfig.model_validate_json((out / "build_config.json").read_text())
    results = build(config, progress=False)
    assert results["mine"].counts["resumed"] == results["mine"].counts["pdfs"]
    assert _tree_digest(out) == before


def _tree_digest(out: Path) -> dict[str, str]:
    """sha256 of every output that must not depend on interruptions (stage result counts do)."""
    files = [*(out / "dataset").rglob("*"), *(out / "stages").glob("*.jsonl"), out / "stages" / "dedup.json",
             out / "build_report.jsonl"]
    return {f.relative_to(out).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


# --- the command line --------------------------------------------------------------------------

def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataset_builders.build", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_help_explains_every_setting():
    proc = _cli("--help")
    assert proc.returncode == 0
    for name in BuildConfig.model_fields:
        assert "--" + name.replace("_", "-") in proc.stdout
    assert "--from-stage" in proc.stdout and "--fresh" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["--papers", "/nonexistent/pdfs"], "--papers /nonexistent/pdfs: no such folder"),
    (["--labeler", "openai"], "--labeler openai"),
    (["--labeler", "nonsense"], "caption_rules"),
    (["--val-ratio", "0.6", "--test-ratio", "0.5"], "val_ratio + test_ratio must be below 1"),
    (["--rotations", "45"], "rotations must be among 90, 180, 270"),
])
def test_bad_settings_fail_fast_with_a_clear_message(args, message, tmp_path):
    proc = _cli("--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "out" / "stages").exists(), "nothing should run on bad settings"


def test_bad_manual_csv_names_the_row_and_keeps_earlier_stages(corpus_dir, tmp_path):
    import shutil

    manual = tmp_path / "manual"
    shutil.copytree(corpus_dir / "manual", manual)
    csv = manual / "manual.csv"
    csv.write_text(csv.read_text() + "images/nothing.png;,martensite laths,lab,\n")
    out = tmp_path / "out"
    proc = _cli("--papers", str(corpus_dir / "papers"), "--manual", str(manual), "--out", str(out), "--quiet")
    assert proc.returncode == 2
    assert "manual.csv" in proc.stderr and "row" in proc.stderr
    assert len(list((out / "stages" / "mine").glob("*/paper.json"))) == 8  # earlier work kept


def test_bad_inputs_are_all_accounted_for(corpus_dir, tmp_path):
    """Every bad file gets a report line, the good files in the same folder are still built."""
    import shutil

    from dataset_builders.build import build
    from dataset_builders.sample_corpus import write_bad_inputs

    papers = tmp_path / "papers"
    shutil.copytree(corpus_dir / "papers", papers)
    expected = write_bad_inputs(papers / "bad")
    out = tmp_path / "out"
    build(BuildConfig(papers=papers, out=out, workers=2), progress=False)
    report = [json.loads(line) for line in (out / "build_report.jsonl").read_text().splitlines()]
    reported = {Path(r["file"]).name: r for r in report if r["stage"] == "mine"}
    for name, reason in expected.items():
        if reason == "ok":  # odd colour spaces / bit depths: mined, not reported as failures
            assert name not in reported or reported[name]["severity"] != "failed", reported.get(name)
        else:
            assert name in reported, f"{name} ({reason}) missing from the build report"
    mine = json.loads((out / "stages" / "results" / "mine.json").read_text())["counts"]
    assert mine["files"] == 8 + len(expected)
    odd = {"cmyk_jpeg.pdf", "gray16.pdf", "bilevel_1bit.pdf", "rgba_alpha.pdf", "jpx.pdf"}
    kept = {json.loads(line)["panel_id"] for line in (out / "stages" / "filter.jsonl").read_text().splitlines()
            if json.loads(line)["keep"]}
    kept_sources = {p["source_pdf"] for f in (out / "stages" / "panels").glob("*.json")
                    for p in json.loads(f.read_text())["panels"] if p["panel_id"] in kept}
    assert {f"bad/{n}" for n in odd} <= kept_sources, "odd image formats should be mined and kept"
    # the card lists this run's report (a first build too), not the previous run's
    card_problems = json.loads((out / "dataset" / "dataset_card.json").read_text())["dropped"]["problems"]
    assert card_problems == report and any(r["reason"] == "not_a_pdf" for r in report)
    # a resumed run (every paper already mined) reports exactly the same lines
    first = (out / "build_report.jsonl").read_bytes()
    card = (out / "dataset" / "dataset_card.md").read_bytes()
    again = build(BuildConfig(papers=papers, out=out, workers=2), progress=False)
    assert again["mine"].counts["resumed"] > 0 and again["panels"].counts["papers_resumed"] > 0
    assert (out / "build_report.jsonl").read_bytes() == first
    assert (out / "dataset" / "dataset_card.md").read_bytes() == card


# --- SIGKILL at any point, then resume ---------------------------------------------------------

KILL_POINTS = [  # (description, condition on the output folder) — each kill happens as soon as it holds
    ("while mining", lambda out: len(list((out / "stages" / "mine").glob("*/paper.json"))) >= 2),
    ("while splitting panels", lambda out: len(list((out / "stages" / "panels").glob("*.json"))) >= 1),
    ("after filter", lambda out: (out / "stages" / "filter.jsonl").exists()),
    ("while augmenting", lambda out: len(list((out / "stages" / "augment").glob("*.jpg"))) >= 3),
    ("while exporting", lambda out: (out / "dataset" / "images").exists()),
    ("after the card", lambda out: (out / "dataset" / "dataset_card.md").exists()),
]


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process, from /proc/<pid>/stat."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _group(pgid: int) -> list[int]:
    return [pid for pid, (_, group) in _process_table().items() if group == pgid]


def _start_build(cmd: list[str]) -> subprocess.Popen:
    """The build in its own session (process group = its pid), so everything it starts can be found."""
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def _kill_group(proc: subprocess.Popen) -> None:
    """Reap the build and SIGKILL anything left in its process group (a test leaves nothing behind)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _run_until(cmd: list[str], out: Path, condition) -> bool:
    """Start the build; SIGKILL it as soon as condition(out) holds. True if it was killed."""
    proc = _start_build(cmd)
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                hit = condition(out)
            except OSError:
                hit = False
            if hit:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        _kill_group(proc)


def test_workers_die_with_the_main_process(corpus_dir, tmp_path):
    """SIGKILL of the main build process (as the OOM killer does) leaves no worker behind."""
    cmd = [sys.executable, "-m", "dataset_builders.build", "--papers", str(corpus_dir / "papers"),
           "--manual", str(corpus_dir / "manual"), "--out", str(tmp_path / "out"), "--workers", "2", "--quiet"]
    proc = _start_build(cmd)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while proc.poll() is None and time.monotonic() < deadline and len(workers) < 2:
            workers = [pid for pid, (ppid, _) in _process_table().items() if ppid == proc.pid]
            time.sleep(0.002)
        assert len(workers) >= 2, "the build never started its 2 workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group(proc.pid) == [], f"workers survived the main process: {_group(proc.pid)}"
    finally:
        _kill_group(proc)


@pytest.mark.slow
def test_sigkill_at_any_stage_then_resume_gives_the_same_dataset(corpus_dir, tmp_path):
    """Killed at several stages and resumed, the build writes every file byte for byte as an uninterrupted
    build does: dataset, card and report (the papers folder holds non-PDF files, so the report is not empty)."""
    import shutil

    from dataset_builders.build import build

    papers = tmp_path / "papers"
    shutil.copytree(corpus_dir / "papers", papers)
    (papers / "notes.txt").write_text("not a paper\n")
    (papers / "empty.pdf").write_bytes(b"")
    reference = tmp_path / "reference"
    build(BuildConfig(papers=papers, manual=corpus_dir / "manual", out=reference, workers=2, seed=3), progress=False)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dataset_builders.build", "--papers", str(papers),
           "--manual", str(corpus_dir / "manual"), "--out", str(out), "--workers", "2", "--seed", "3", "--quiet"]
    killed = [name for name, cond in KILL_POINTS if _run_until(cmd, out, cond)]
    assert len(killed) >= 4, f"the kills landed only {killed}: the run was too fast to interrupt"
    final = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    expected = all_outputs(reference)
    assert {"build_report.jsonl", "build_report.md", "dataset/dataset_card.md", "dataset/dataset_card.json"} <= set(expected)
    got = all_outputs(out)
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []
    report = [json.loads(line) for line in (out / "build_report.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in report} >= {"not_a_pdf", "zero_bytes"}
    card = json.loads((out / "dataset" / "dataset_card.json").read_text())
    assert card["dropped"]["problems"] == report


def test_unreadable_per_paper_records_are_redone(built, tmp_path):
    """Per-paper records skip fsync; one left unreadable (e.g. by a power loss) is mined/split again."""
    import shutil

    from dataset_builders.build import build

    reference, _ = built
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    paper_json = sorted((out / "stages" / "mine").glob("*/paper.json"))[0]
    panels_json = sorted((out / "stages" / "panels").glob("*.json"))[-1]
    paper_json.write_bytes(b"")  # what delayed allocation can leave after a crash
    panels_json.write_text('{"paper_id": "trunc')
    config = BuildConfig.model_validate_json((out / "build_config.json").read_text()).model_copy(update={"out": out})
    results = build(config, progress=False)
    assert results["mine"].counts["mined"] == 1
    assert results["panels"].counts["papers"] >= 1
    assert _tree_digest(out) == _tree_digest(reference)
