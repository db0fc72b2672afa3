"""Expert review (dataset_builders.review): Label Studio config and tasks, the stratified sample, the JSON-MIN
import with its vocabulary check and audit, expert labels winning in the items stage, the dataset card, and
the static gallery. The real Label Studio and browser round trips are in test_review_live.py (slow)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest
from sklearn.metrics import cohen_kappa_score

from dataset_builders import items as items_stage
from dataset_builders.config import BuildConfig
from dataset_builders.dataset_card import card_markdown, write_card
from dataset_builders.manual import ExpertLabel
from dataset_builders.records import Item, Problem
from dataset_builders.review import label_studio as ls
from dataset_builders.review.__main__ import main
from dataset_builders.review.collect import collect_items
from dataset_builders.review.gallery import read_eval_run, write_gallery
from dataset_builders.review.importer import ReviewImportError, import_review, parse_export
from dataset_builders.review.sample import stratified_sample
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl
from fracto_core.vocabulary import FEATURES, VOCABULARY_VERSION, canonical_names

V = VOCABULARY_VERSION


def test_vocabulary_version_guards_the_feature_list():
    # Changing the features must come with a new VOCABULARY_VERSION (old reviews are then refused).
    names = hashlib.sha256("\n".join(canonical_names()).encode()).hexdigest()[:16]
    assert (V, len(FEATURES), names) == ("fracto-vocab-v1", 28, "0dda91ade2414cbd")


def test_label_config_has_every_feature_with_its_definition():
    root = ET.fromstring(ls.label_config())
    choices = root.find("Choices")
    assert choices.get("choice") == "multiple" and choices.get("name") == ls.FEATURES_TAG
    assert choices.get("toName") == root.find("Image").get("name") == ls.IMAGE_TAG
    got = [(c.get("value"), c.get("hint")) for c in choices.findall("Choice")]
    assert got[:-1] == [(f.name, f.definition) for f in FEATURES]
    assert got[-1][0] == ls.NOT_FRACTOGRAPH
    assert root.find("TextArea").get("name") == ls.NOTE_TAG
    assert root.find("Image").get("value") == "$image"


def test_stratified_sample_oversamples_rare_features_and_is_reproducible():
    items = {f"c{i:03d}": ["equiaxed dimples"] for i in range(180)}
    items.update({f"s{i:02d}": ["fatigue striations"] for i in range(17)})
    items.update({"r0": ["fish-eye"], "r1": ["fish-eye", "fatigue striations"], "r2": ["crazing"]})
    a = stratified_sample(items, n=12, seed=7)
    assert a.chosen == stratified_sample(items, n=12, seed=7).chosen
    assert a.chosen != stratified_sample(items, n=12, seed=8).chosen
    assert len(a.chosen) == len(set(a.chosen)) == 12
    assert {"r0", "r1", "r2"} <= set(a.chosen)  # every rare image although they are 1.5 % of the population
    summary = a.summary()
    assert summary["seed"] == 7 and summary["features"]["fish-eye"]["population"] == 2
    assert summary["features"]["equiaxed dimples"]["in_sample"] >= 4  # common features still get their share
    assert len(stratified_sample(items, n=1000, seed=0).chosen) == len(items)
    with pytest.raises(ValueError):
        stratified_sample(items, n=0, seed=0)


@pytest.mark.timeout(30)
def test_a_rare_weight_below_one_is_refused_not_looped_on():
    # export --rare-weight 0: a rare feature that draws nothing per round never empties its pool (the old loop ran
    # for ever once the other features were drawn)
    for weight in (0, -1):
        with pytest.raises(ValueError, match="--rare-weight must be at least 1"):
            stratified_sample({"r0": ["fish-eye"], "c0": ["equiaxed dimples"]}, n=2, seed=0, rare_weight=weight)


def test_export_writes_config_tasks_and_sample(built, tmp_path, capsys):
    out, _ = built
    dest = tmp_path / "ls"
    assert main(["export", "--to", "label-studio", "--out", str(out), "--n", "15", "--seed", "3",
                 "--dest", str(dest)]) == 0
    assert "local-files storage with path" in capsys.readouterr().out
    tasks = json.loads((dest / "tasks.json").read_text())
    sample = json.loads((dest / "sample.json").read_text())
    assert len(tasks) == sample["n"] == 15 and sample["seed"] == 3
    items = {i.item_id: i for i in read_jsonl(StagePaths(out).items, Item)}
    for task in tasks:
        data = task["data"]
        assert data["vocabulary_version"] == V
        url = data["image"]
        assert url.startswith("/data/local-files/?d=")
        assert (out / unquote(url.split("?d=", 1)[1])).resolve() == (out / items[data["item_id"]].image).resolve()
        pred = task["predictions"][0]
        assert pred["model_version"] == data["label_origin"] == items[data["item_id"]].label_origin
        assert pred["result"][0]["value"]["choices"] == items[data["item_id"]].features
        assert pred["result"][0]["from_name"] == "features" and pred["result"][0]["type"] == "choices"
    assert [t["data"]["item_id"] for t in tasks] == [x["item_id"] for x in sample["items"]]


def _record(item, chosen, labels, *, annotator="expert@lab.org", updated="2026-11-02T10:00:00Z", version=V, **extra):
    rec = {"id": hash(item) % 1000, "item_id": item, "vocabulary_version": version, "label_origin": "model:gpt",
           "label_features": labels, "annotator": annotator, "annotation_id": 1, "created_at": updated,
           "updated_at": updated, "lead_time": 3.0, **extra}
    if chosen is not None:  # JSON-MIN: one choice is a bare string, several are {"choices": [...]}
        rec["features"] = chosen[0] if len(chosen) == 1 else {"choices": chosen}
    return rec


def test_parse_export_reads_json_min_shapes_and_keeps_the_latest_annotation():
    records = [
        _record("a", ["fatigue striations"], ["fatigue striations"], note="clear striations"),
        _record("b", ["beach marks", "fatigue striations"], ["fatigue striations"]),
        _record("c", ["not a fractograph"], ["gas pore"]),
        _record("a", ["beach marks"], ["fatigue striations"], updated="2026-11-01T09:00:00Z", annotator="other"),
    ]
    labels = {x.item_id: x for x in parse_export(records, "export.json")}
    assert labels["a"].features == ["fatigue striations"] and labels["a"].reviewer == "expert@lab.org"
    assert labels["a"].note == "clear striations" and labels["a"].reviewed_at == "2026-11-02T10:00:00Z"
    assert labels["b"].features == ["fatigue striations", "beach marks"]  # vocabulary order
    assert labels["c"].not_fractograph and labels["c"].features == []
    assert labels["a"].previous_origin == "model:gpt" and "export.json#task=" in labels["a"].source


@pytest.mark.parametrize("records, message", [
    ([_record("a", ["gas pore"], [], version="fracto-vocab-v0")],
     "'fracto-vocab-v0', but this code uses 'fracto-vocab-v1'"),
    ([_record("a", ["gas bubbles"], [])], "not in vocabulary"),
    ([{"id": 3, "features": "gas pore"}], "no item_id"),
    ({"not": "a list"}, "not a JSON-MIN export"),
])
def test_parse_export_refuses_bad_exports_clearly(records, message):
    with pytest.raises(ReviewImportError, match=re.escape(message)):
        parse_export(records, "x.json")


def test_import_audit_figures_match_sklearn(built, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(built[0], out)
    expert = {"i1": ["fatigue striations"], "i2": ["fatigue striations", "beach marks"], "i3": ["gas pore"],
              "i4": ["gas pore"], "i5": ["fatigue striations"]}
    model = {"i1": ["fatigue striations"], "i2": ["fatigue striations"], "i3": ["gas pore"],
             "i4": ["fatigue striations"], "i5": []}
    records = [_record(i, expert[i], model[i]) for i in expert] + [_record("i6", ["not a fractograph"], ["gas pore"])]
    data = import_review(out, records, "export.json")
    assert data["reviewed"] == 6 and data["not_fractograph"] == 1 and data["compared"] == 5
    by_feature = {a["feature"]: a for a in data["features"]}
    for name in ("fatigue striations", "beach marks", "gas pore"):
        h = [name in expert[i] for i in sorted(expert)]
        m = [name in model[i] for i in sorted(expert)]
        assert by_feature[name]["agreement"] == pytest.approx(sum(x == y for x, y in zip(h, m)) / 5)
        if len(set(h)) > 1 or len(set(m)) > 1:
            assert by_feature[name]["kappa"] == pytest.approx(cohen_kappa_score(h, m))
    assert data["confusion"]["fatigue striations"] == {"both": 2, "only_labels": 1, "only_expert": 1, "neither": 1}
    assert data["exact_set_agreement"] == pytest.approx(2 / 5)
    assert (out / "review" / "audit.md").read_text().count("| gas pore |") == 1
    # a second import adds to the first; the card shows the review
    import_review(out, [_record("i7", ["crazing"], ["crazing"])], "export2.json")
    assert len(read_jsonl(out / "review" / "expert_labels.jsonl", ExpertLabel)) == 7
    card = write_card(StagePaths(out), BuildConfig(out=out))
    assert card["expert_review"]["reviewed"] == 7
    assert "## Expert review: 7 image(s) reviewed by expert@lab.org" in card_markdown(card)


def test_expert_labels_win_in_the_items_stage(built, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(built[0], out)
    paths = StagePaths(out)
    before = {i.item_id: i for i in read_jsonl(paths.items, Item)}
    mined = sorted(i for i, it in before.items() if not i.startswith("manual-"))
    manual = sorted(i for i in before if i.startswith("manual-"))
    target, rejected, manual_target = mined[0], mined[1], manual[0]
    import_review(out, [_record(target, ["crazing", "gas pore"], before[target].features),
                        _record(rejected, ["not a fractograph"], before[rejected].features),
                        _record(manual_target, ["fish-eye"], before[manual_target].features)], "e.json")
    result = items_stage.run(paths, BuildConfig(out=out), progress=False)
    after = {i.item_id: i for i in read_jsonl(paths.items, Item)}
    assert after[target].features == ["gas pore", "crazing"] and after[target].label_origin == "expert"
    assert after[target].provenance["reviewer"] == "expert@lab.org"
    assert after[target].provenance["previous_origin"] == before[target].label_origin
    assert after[manual_target].features == ["fish-eye"] and after[manual_target].label_origin == "expert"
    assert rejected not in after and len(after) == len(before) - 1
    assert result.counts["expert_labelled"] == 2 and result.counts["expert_dropped"] == 1
    assert [p.reason for p in result.problems if isinstance(p, Problem) and p.stage == "review"] == [
        "expert_not_fractograph"]


def test_gallery_is_self_contained_and_carries_eval_answers(built, tmp_path):
    out, _ = built
    items = collect_items(out, include_rejected=True)
    assert any(not i.kept for i in items) and any(i.evidence for i in items)
    test_items = [i for i in items if i.split == "test"]
    run = tmp_path / "run1"
    run.mkdir()
    lines = [{"item_id": test_items[0].item_id, "model": "vllm:ft", "reference": test_items[0].features,
              "parsed": test_items[0].features, "scores": {"tp": 1, "exact": True}, "raw_reply": "ok"},
             {"item_id": test_items[1].item_id, "model": "vllm:ft", "reference": test_items[1].features,
              "parsed": [], "scores": {"tp": 0, "exact": False}, "raw_reply": "</script><b>x</b>"},
             {"item_id": "bench-only", "model": "vllm:ft", "reference": ["gas pore"], "parsed": [],
              "error": "timeout"}]
    (run / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"item_id": "torn', "utf-8")
    dest = tmp_path / "g.html"
    counts = write_gallery(dest, items, [run])
    page = dest.read_text()
    assert counts["items"] == len(items) + 1 and counts["images"] == len(items) and counts["with_answers"] == 3
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing to fetch: opens offline
    assert page.count("</script>") == 2  # the reply's "</script>" cannot close the data block
    data = json.loads(re.search(r'<script id="gallery-data" type="application/json">(.*?)</script>', page, re.S)[1])
    recs = {r["id"]: r for r in data["items"]}
    assert recs[test_items[0].item_id]["answers"][0]["status"] == "correct"
    assert recs[test_items[1].item_id]["answers"][0]["status"] == "wrong"
    assert recs["bench-only"]["answers"][0]["status"] == "failed" and recs["bench-only"]["img"] is None
    assert all(r["img"].startswith("data:image/jpeg;base64,") for r in data["items"] if r["id"] != "bench-only")


def test_gallery_refuses_an_eval_run_whose_labels_are_not_lists(tmp_path):
    # a sem_qa run's samples.jsonl has item_id too, but its reference is the answer text: the page's script joins
    # reference and parsed as lists and stopped on the first such card (no card after it, no filter worked)
    run = tmp_path / "sem_qa_run"
    run.mkdir()
    qa = {"sample_id": "s1", "item_id": "i1", "kind": "describe", "question": "What is visible?",
          "reference": "Fatigue striations.", "reference_refused": False, "model_reply": "Dimples."}
    (run / "samples.jsonl").write_text(json.dumps(qa) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"samples.jsonl:1: not a label-task sample"):
        read_eval_run(run)
    ok = {"item_id": "i1", "model": "m", "reference": ["fatigue striations"], "parsed": [], "error": None}
    (run / "samples.jsonl").write_text(json.dumps(ok) + "\n", encoding="utf-8")
    assert read_eval_run(run)[1]["i1"]["reference"] == ["fatigue striations"]
    # a model's reply may hold U+2028 (JSON keeps it raw): the record is one line, not two unparseable halves
    odd = {**ok, "raw_reply": "dimples\u2028and\x85shear lips"}
    (run / "samples.jsonl").write_text(json.dumps(odd, ensure_ascii=False) + "\n" + json.dumps(ok) + "\n",
                                       encoding="utf-8")
    assert read_eval_run(run)[1]["i1"]["reference"] == ["fatigue striations"]


def test_a_url_that_answers_html_is_named_in_the_error(tmp_path, capsys):
    # --url at another web service (or a login page) answering 200 with HTML: the error names the call and the
    # server, not only "Expecting value: line 1 column 1 (char 0)"
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b"<!DOCTYPE html><html><body>Jupyter</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["import", "--out", str(tmp_path), "--url", url, "--token", "t0k", "--project", "1"]) == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    err = capsys.readouterr().err
    assert f"GET /api/projects/1/export: {url} did not answer with JSON" in err and "Jupyter" in err
    assert "t0k" not in err


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["gallery", "--out", str(tmp_path)]) == 2
    assert "items.jsonl: not found" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("not json")
    assert main(["import", "--out", str(tmp_path), "--export", str(tmp_path / "x.json")]) == 2
    assert "x.json: not JSON" in capsys.readouterr().err
