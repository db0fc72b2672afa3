"""The expert benchmark (issue 26): the held-out pool kept out of every training split (by paper and by perceptual
hash, a reprint in a training paper included), the seeded stratified sample exported blind, inter-annotator
agreement equal to scikit-learn's, adjudication, the benchmark CSV + card that eval.run reads and eval.report
shows. The round trip through a real Label Studio with two users is in test_expert_benchmark_live.py (slow)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, cohen_kappa_score

from dataset_builders.build import BuildError, build
from dataset_builders.config import BuildConfig
from dataset_builders.holdout import pool_path, read_pool
from dataset_builders.records import Item, PaperPanels, SplitAssignment
from dataset_builders.review.__main__ import main as review_main
from dataset_builders.review.agreement import agreement, nominal_kappa
from dataset_builders.review.benchmark import CLASS_CHOICES, draw, load_pool
from dataset_builders.review.label_studio import NOT_FRACTOGRAPH
from dataset_builders.stage_paths import StagePaths
from eval.benchmark import load_benchmark
from eval.tasks import get_task
from fracto_core.files import read_jsonl, read_model
from fracto_core.vocabulary import VOCABULARY_VERSION, canonical_names, rare_names

from support import Reply, ScriptedServer
from support.eval_bench import config as eval_config, features as reply_features, image_keys, item_responder


def _rebuild(src: Path, dest: Path, corpus: Path, **kw) -> Path:
    shutil.copytree(src, dest)
    build(BuildConfig(papers=corpus / "papers", manual=corpus / "manual", out=dest, workers=1, seed=3, **kw),
          from_stage="split", progress=False)
    return dest


def _papers(out: Path) -> dict[str, PaperPanels]:
    return {p.source_pdf: p for p in (read_model(f, PaperPanels) for f in sorted(StagePaths(out).panels.glob("*.json")))}


def _trained(out: Path) -> list[Item]:
    """Every item of train/val/test (splits.jsonl) and of the exported meta files."""
    paths = StagePaths(out)
    items = {i.item_id: i for i in read_jsonl(paths.items, Item)}
    in_splits = {a.item_id for a in read_jsonl(paths.splits, SplitAssignment)}
    exported = {json.loads(line)["item_id"] for m in paths.dataset.glob("*_meta.jsonl")
                for line in m.read_text().splitlines() if line.strip()}
    assert exported <= in_splits
    return [items[i] for i in sorted(in_splits)]


def _bits(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_held_out_papers_never_reach_a_split_by_paper_or_by_hash(built, corpus_dir, tmp_path):
    src, _ = built
    papers = _papers(src)
    items = read_jsonl(StagePaths(src).items, Item)
    reprinted = [i for i in items if len(i.paper_ids) > 1]  # one image printed in two papers (dedup merged it)
    assert reprinted
    by_id = {p.paper_id: p for p in papers.values()}
    first, second = by_id[reprinted[0].paper_ids[0]], by_id[reprinted[1].paper_ids[1]]
    listing = tmp_path / "heldout.txt"
    listing.write_text(f"# held out for the benchmark\nhttps://doi.org/{first.doi.upper()}\n{second.source_pdf}\n")
    out = _rebuild(src, tmp_path / "out", corpus_dir, holdout_list=listing)

    held = {first.paper_id, second.paper_id}
    pool = read_pool(out)
    assert {p.item_id for p in pool} == {i.item_id for i in items if held & set(i.paper_ids)}
    assert {reprinted[0].item_id, reprinted[1].item_id} <= {p.item_id for p in pool}  # also printed elsewhere
    assert {p.doi for p in pool} <= {first.doi, second.doi} and all(p.held_out_by == "list" for p in pool)
    trained = _trained(out)
    assert trained and not [i.item_id for i in trained if held & set(i.paper_ids)]
    assert min(_bits(i.phash, p.phash) for i in trained for p in pool) > 6  # no near-duplicate either
    card = json.loads((out / "dataset" / "dataset_card.json").read_text())["held_out"]
    assert card["pool_images"] == len(pool) == card["kept_out_by_paper"] and card["kept_out_by_hash"] == 0
    assert "Held-out pool" in (out / "dataset" / "dataset_card.md").read_text()

    listing.write_text("10.5555/no.such.paper\n")
    with pytest.raises(BuildError, match=r"line 1: '10.5555/no.such.paper'"):
        build(BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=out, workers=1, seed=3,
                          holdout_list=listing), from_stage="split", progress=False)


def test_a_separate_pool_keeps_its_reprint_in_a_training_paper_out_by_hash(built, corpus_dir, tmp_path):
    """The pool is a separate folder of PDFs; a training paper reprints one of its images (rescaled, recompressed)."""
    src, _ = built
    items = read_jsonl(StagePaths(src).items, Item)
    twin = next(i for i in items if len(i.paper_ids) > 1 and i.features)
    with Image.open(StagePaths(src).abs(twin.image)) as im:
        im = im.convert("RGB").resize((int(im.width * 0.9), int(im.height * 0.9)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=70)
    (tmp_path / "pool_pdfs").mkdir()
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 60), "Defects in additively manufactured alloys", fontsize=14)
    rect = pymupdf.Rect(72, 100, 72 + im.width * 0.6, 100 + im.height * 0.6)
    page.insert_image(rect, stream=buf.getvalue())
    page.insert_text((72, rect.y1 + 20), "Fig. 1. SEM fractograph of the fracture surface showing unmelted powder "
                     "particles.", fontsize=9)
    doc.save(tmp_path / "pool_pdfs" / "reprint.pdf")
    pool_out = tmp_path / "pool"
    build(BuildConfig(papers=tmp_path / "pool_pdfs", out=pool_out, workers=1, holdout_share=1.0),
          to_stage="split", progress=False)
    pool = read_pool(pool_out)
    assert len(pool) == 1 and not read_jsonl(StagePaths(pool_out).splits, SplitAssignment)
    assert _bits(pool[0].phash, twin.phash) <= 6  # a near-duplicate, not the same file:
    assert (pool_out / pool[0].image).read_bytes() != StagePaths(src).abs(twin.image).read_bytes()

    out = _rebuild(src, tmp_path / "out", corpus_dir, holdout_build=pool_out)
    trained = _trained(out)
    assert twin.item_id not in {i.item_id for i in trained}
    others = {i.item_id for i in items if set(i.paper_ids) & set(twin.paper_ids)} - {twin.item_id}
    assert others and others <= {i.item_id for i in trained}  # the papers stay: only the reprint went
    dropped = [json.loads(x) for x in (out / "stages" / "splits_dropped.jsonl").read_text().splitlines()]
    assert [(d["item_id"], d["reason"]) for d in dropped] == [(twin.item_id, "near_holdout")]
    assert json.loads((out / "dataset" / "dataset_card.json").read_text())["held_out"]["kept_out_by_hash"] == 1


def test_share_is_seeded_and_never_takes_the_manual_collection(built, corpus_dir, tmp_path):
    src, _ = built
    a = _rebuild(src, tmp_path / "a", corpus_dir, holdout_share=0.25)
    b = _rebuild(src, tmp_path / "b", corpus_dir, holdout_share=0.25)
    pa, pb = read_pool(a), read_pool(b)
    assert [p.item_id for p in pa] == [p.item_id for p in pb] and pa
    assert len({x for p in pa for x in p.paper_ids} & {p.paper_id for p in _papers(a).values()}) >= 2
    assert not [p for p in pa if p.label_origin == "manual" or any(x.startswith("manual:") for x in p.paper_ids)]


# --- agreement ---------------------------------------------------------------------------------------

def test_kappa_and_agreement_equal_scikit_learn():
    rng = np.random.default_rng(4)
    labels = [*canonical_names()[:6], NOT_FRACTOGRAPH]
    a = [set(np.array(labels)[rng.random(len(labels)) < 0.35]) for _ in range(60)]
    b = [set(x) ^ ({labels[int(rng.integers(len(labels)))]} if rng.random() < 0.4 else set()) for x in a]
    b[0] = {labels[0]} if labels[0] not in a[0] else set()
    tech_a = [str(rng.choice(["SEM", "optical microscopy", "TEM"])) for _ in range(60)]
    tech_b = [t if rng.random() < 0.8 else "SEM" for t in tech_a]
    tech_b[5] = None
    data = agreement(a, b, labels, {"technique": tech_a}, {"technique": tech_b}, n_resamples=200, seed=1)
    A = np.array([[x in s for x in labels] for s in a])
    B = np.array([[x in s for x in labels] for s in b])
    for j, name in enumerate(labels):
        if name in data["per_label"]:
            row = data["per_label"][name]
            assert row["kappa"] == pytest.approx(cohen_kappa_score(A[:, j], B[:, j]))
            assert row["agreement"] == pytest.approx(accuracy_score(A[:, j], B[:, j]))
            assert row["confusion"]["only_a"] == int((A[:, j] & ~B[:, j]).sum())
            lo, hi = row["kappa_ci"]
            assert lo <= row["kappa"] <= hi
    assert data["kappa"] == pytest.approx(cohen_kappa_score(A.ravel(), B.ravel()))
    assert data["agreement"] == pytest.approx(accuracy_score(A.ravel(), B.ravel()))
    assert data["exact_set_agreement"] == pytest.approx(np.mean([x == y for x, y in zip(a, b)]))
    assert data["kappa_ci"][0] < data["kappa"] < data["kappa_ci"][1]
    both = [i for i in range(60) if tech_b[i] is not None]
    t = data["classes"]["technique"]
    assert t["kappa"] == pytest.approx(cohen_kappa_score([tech_a[i] for i in both], [tech_b[i] for i in both]))
    assert t["n_images"] == 59 and t["answered_by_one_only"] == 1
    assert agreement(a, b, labels, n_resamples=200, seed=1)["kappa_ci"] == data["kappa_ci"]  # seeded
    # undefined kappa (both say "absent" always) is None where scikit-learn gives nan
    assert agreement([set()] * 5, [set()] * 5, labels[:1], n_resamples=10)["kappa"] is None
    assert nominal_kappa(["SEM"] * 4, ["SEM"] * 4) is None
    with pytest.raises(ValueError):
        agreement(a, b[:-1], labels)


def test_class_choices_are_the_eval_tasks_choices():
    assert set(CLASS_CHOICES["technique"]) == set(get_task("microscopy_technique").labels)
    assert set(CLASS_CHOICES["material"]) == set(get_task("material_category").labels)
    assert CLASS_CHOICES["mechanism"] == get_task("failure_mechanism").labels


# --- sample, blind export, agreement, adjudication, benchmark, eval ------------------------------------

@pytest.fixture(scope="module")
def pool_build(built, corpus_dir, tmp_path_factory):
    return _rebuild(built[0], tmp_path_factory.mktemp("pool") / "out", corpus_dir, holdout_share=0.5)


def _record(task: dict, k: int, feats: list[str], annotator: str, **classes) -> dict:
    rec = {"id": k, **task["data"], "annotator": annotator, "annotation_id": 100 + k,
           "created_at": "2026-12-01T10:00:00Z", "updated_at": f"2026-12-01T10:{k:02d}:00Z", "lead_time": 3.0}
    if feats:
        rec["features"] = feats[0] if len(feats) == 1 else {"choices": feats}
    rec.update({c: v for c, v in classes.items() if v})
    return rec


def simulate(tasks: list[dict], truth: dict[str, list[str]]) -> tuple[list, list, dict]:
    """A agrees with the build's labels; B adds a feature on every third image, rejects one image as 'not a
    fractograph' and names another technique on one; returns both exports and B's answers."""
    ea, eb, b_answers = [], [], {}
    for k, t in enumerate(tasks):
        i = t["data"]["item_id"]
        fa = truth[i]
        fb = list(fa)
        tech_b = "SEM"
        if k == 1:
            fb = [NOT_FRACTOGRAPH]
        elif k % 3 == 2:
            fb = sorted(set(fa) | {"secondary cracks"}, key=canonical_names().index)
        elif k == 3:
            tech_b = "optical microscopy"
        ea.append(_record(t, k, fa, "ann1@lab", technique="SEM", mechanism="fatigue" if k == 0 else None))
        eb.append(_record(t, k, fb, "ann2@lab", technique=tech_b, mechanism="fatigue" if k == 0 else None))
        b_answers[i] = (fb, tech_b)
    return ea, eb, b_answers


def test_benchmark_from_pool_to_eval_report(pool_build, tmp_path, capsys):
    out = pool_build
    assert review_main(["benchmark", "export", "--out", str(out), "--n", "9", "--seed", "4",
                        "--annotators", "ann1@lab", "ann2@lab", "--rare-min", "2"]) == 0
    bench = out / "benchmark"
    tasks = json.loads((bench / "tasks.json").read_text())
    sample = json.loads((bench / "sample.json").read_text())
    pool = {p.pool.item_id: p for p in load_pool(out)}
    assert len(tasks) == sample["n"] == 9 and [t["data"]["item_id"] for t in tasks] == \
        [x["item_id"] for x in sample["items"]]
    for t in tasks:  # blind: no prediction, none of the build's labels
        assert set(t) == {"data"} and "label_features" not in t["data"] and "label_origin" not in t["data"]
    assert set(t["data"]) == {"image", "caption", "excerpt", "item_id", "vocabulary_version"}
    for f, row in sample["features"].items():  # every rare feature got its minimum (or all the pool has)
        if row["rare"]:
            assert row["in_sample"] >= min(2, row["pool"])
    assert sum(sample["techniques"].values()) == 9
    assert draw(list(pool.values()), 9, 4, 2)["items"] == sample["items"]  # reproducible from its seed
    assert draw(list(pool.values()), 9, 5, 2)["items"] != sample["items"]

    truth = {i: p.pool.features for i, p in pool.items()}
    ea, eb, b_answers = simulate(tasks, truth)
    (tmp_path / "a.json").write_text(json.dumps(ea))
    (tmp_path / "b.json").write_text(json.dumps(eb))
    assert review_main(["benchmark", "agree", "--out", str(out), "--export-a", str(tmp_path / "a.json"),
                        "--export-b", str(tmp_path / "b.json"), "--resamples", "200"]) == 0
    ag = json.loads((bench / "agreement.json").read_text())
    labels = [*canonical_names(), NOT_FRACTOGRAPH]
    ids = [t["data"]["item_id"] for t in tasks]
    A = np.array([[x in truth[i] for x in labels] for i in ids])
    B = np.array([[x in b_answers[i][0] for x in labels] for i in ids])
    assert ag["kappa"] == pytest.approx(cohen_kappa_score(A.ravel(), B.ravel()))
    assert ag["agreement"] == pytest.approx(accuracy_score(A.ravel(), B.ravel()))
    differ = [i for k, i in enumerate(ids) if k == 1 or k == 3 or k % 3 == 2]
    assert ag["disagreements"] == differ
    adj = json.loads((bench / "adjudication_tasks.json").read_text())
    assert [t["data"]["item_id"] for t in adj] == differ
    assert "not a fractograph" in adj[0]["data"]["answer_b"] and "technique: SEM" in adj[0]["data"]["answer_a"]
    assert "predictions" not in adj[0]

    # the adjudicator keeps the rejection, sides with A elsewhere
    dec = [_record(t, k, [NOT_FRACTOGRAPH] if k == 0 else truth[t["data"]["item_id"]], "judge@lab",
                   technique=None if k == 0 else "SEM") for k, t in enumerate(adj)]
    (tmp_path / "adj.json").write_text(json.dumps(dec[:-1]))
    assert review_main(["benchmark", "finish", "--out", str(out), "--export", str(tmp_path / "adj.json")]) == 2
    assert "1 disagreement(s) not adjudicated yet" in capsys.readouterr().err
    (tmp_path / "adj.json").write_text(json.dumps(dec))
    # the pool built again since the sample was drawn (an image gone): refused naming it, nothing written
    pool_file = pool_path(StagePaths(out))
    kept_text = pool_file.read_text()
    pool_file.write_text("".join(ln for ln in kept_text.splitlines(keepends=True) if ids[2] not in ln))
    assert review_main(["benchmark", "finish", "--out", str(out), "--export", str(tmp_path / "adj.json")]) == 2
    err = capsys.readouterr().err
    assert "no longer in the build's pool" in err and ids[2] in err and "Traceback" not in err
    assert not (bench / "consensus.jsonl").exists()
    pool_file.write_text(kept_text)
    assert review_main(["benchmark", "finish", "--out", str(out), "--export", str(tmp_path / "adj.json")]) == 0

    csv_path = bench / "set" / "benchmark.csv"
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["item_id"] for r in rows] == [i for i in ids if i != ids[1]]
    loaded = load_benchmark(csv_path)
    assert {it.item_id: list(it.features) for it in loaded.items} == {i: truth[i] for i in ids if i != ids[1]}
    assert {it.technique for it in loaded.items} == {"SEM"}
    assert {it.item_id: it.mechanism for it in loaded.items if it.mechanism} == {ids[0]: "fatigue"}
    card = json.loads((bench / "set" / "benchmark.card.json").read_text())
    assert card["agreement"]["kappa"] == ag["kappa"] and card["n_annotators"] == 2
    assert card["adjudication"] == {"disagreements": len(differ), "adjudicated": len(differ),
                                    "adjudicators": ["judge@lab"]}
    assert card["not_fractograph"] == 1 and card["selection"]["seed"] == 4 and card["n_items"] == len(rows)
    assert sum(p["benchmark_images"] for p in card["pool"]["papers"]) == 9
    assert card["pool"]["kept_out_of_training"] == {"by_paper": len(pool), "by_hash": 0}
    assert all(p["doi"] for p in card["pool"]["papers"])
    assert loaded.card()["expert"] == card

    # eval.run copies the card into its run card; eval.report prints the kappa beside the scores
    keys = image_keys(csv_path)
    script = {it.item_id: [Reply(content=reply_features(*it.features))] for it in loaded.items}
    with ScriptedServer(responder=item_responder(keys, script)) as srv:
        from eval.run import run_eval

        run_eval(eval_config(csv_path, tmp_path / "run", srv.base_url))
    run_card = json.loads((tmp_path / "run" / "run_card.json").read_text())
    assert run_card["benchmark"]["expert"] == card
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("Expert agreement on this benchmark"))
    assert f"Cohen's kappa {ag['kappa']:.3f}" in line and "between 2 annotators" in line
    assert report.index("## Results") < report.index(line) < report.index("## Per-")  # beside the scores


def test_export_refuses_a_build_without_pool_and_bad_answers(built, pool_build, tmp_path, capsys):
    assert review_main(["benchmark", "export", "--out", str(built[0]), "--annotators", "a", "b"]) == 2
    assert "holdout.jsonl: not found" in capsys.readouterr().err
    assert review_main(["benchmark", "export", "--out", str(pool_build), "--annotators", "a", "a"]) == 2
    assert "two different names" in capsys.readouterr().err
    from dataset_builders.review.benchmark import parse_answers
    from dataset_builders.review.importer import ReviewImportError

    rec = {"id": 1, "item_id": "x", "vocabulary_version": VOCABULARY_VERSION, "features": "crazing",
           "technique": "X-ray"}
    with pytest.raises(ReviewImportError, match="technique \\['X-ray'\\] is not one of"):
        parse_answers([rec], "a.json")
    with pytest.raises(ReviewImportError, match="carries a prediction"):
        parse_answers([{**rec, "technique": "SEM", "predictions": []}], "a.json")
    assert rare_names()  # the sample's minimum is about these


def test_image_only_export_hides_the_text_and_a_known_licence_reaches_the_pool(pool_build, corpus_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pool_build, out, ignore=shutil.ignore_patterns("benchmark"))
    paper = next(p.paper_ids[0] for p in read_pool(out) if len(p.paper_ids) == 1)  # a held-out paper
    panels = out / "stages" / "panels" / f"{paper}.json"  # as if the manifest had named its licence
    panels.write_text(json.dumps({**json.loads(panels.read_text()), "licence": "cc-by"}))
    build(BuildConfig(papers=corpus_dir / "papers", manual=corpus_dir / "manual", out=out, workers=1, seed=3,
                      holdout_share=0.5), from_stage="split", to_stage="split", progress=False)
    assert {p.licence for p in read_pool(out) if p.paper_ids == [paper]} == {"cc-by"}
    assert review_main(["benchmark", "export", "--out", str(out), "--n", "4", "--annotators", "a", "b",
                        "--image-only"]) == 0
    tasks = json.loads((out / "benchmark" / "tasks.json").read_text())
    assert {t["data"]["caption"] for t in tasks} == {t["data"]["excerpt"] for t in tasks} == {
        "(not shown for this benchmark: judge the image alone)"}
    assert json.loads((out / "benchmark" / "sample.json").read_text())["text_shown"] is False


def test_a_second_sample_and_one_person_in_both_projects_are_refused(pool_build, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(pool_build, out, ignore=shutil.ignore_patterns("benchmark"))
    args = ["benchmark", "export", "--out", str(out), "--annotators", "a", "b", "--n", "5"]
    assert review_main([*args, "--seed", "1"]) == 0 and review_main([*args, "--seed", "1"]) == 0  # same draw: fine
    assert review_main([*args, "--seed", "2"]) == 2
    assert "holds another sample (seed 1, 5 images)" in capsys.readouterr().err
    assert review_main([*args, "--seed", "2", "--replace"]) == 0
    tasks = json.loads((out / "benchmark" / "tasks.json").read_text())
    truth = {p.item_id: p.features for p in read_pool(out)}
    ea, eb, _ = simulate(tasks, truth)
    (tmp_path / "a.json").write_text(json.dumps(ea))
    (tmp_path / "b.json").write_text(json.dumps([{**r, "annotator": "ann1@lab"} for r in eb]))
    assert review_main(["benchmark", "agree", "--out", str(out), "--export-a", str(tmp_path / "a.json"),
                        "--export-b", str(tmp_path / "b.json")]) == 2
    assert "ann1@lab answered in both annotators' projects" in capsys.readouterr().err
    (tmp_path / "b.json").write_text(json.dumps(eb[:-1]))
    assert review_main(["benchmark", "agree", "--out", str(out), "--export-a", str(tmp_path / "a.json"),
                        "--export-b", str(tmp_path / "b.json")]) == 2
    assert "annotator B lacks 1" in capsys.readouterr().err
