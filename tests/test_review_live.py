"""Expert review against the real tools (slow): a Label Studio 1.23.2 round trip through its API, and the gallery
in a real headless Chromium driven by Playwright. Tools are installed once into cached venvs (tests/review_tools.py);
everything runs on loopback or from file:// URLs."""

from __future__ import annotations

import json
import shutil
import urllib.request
from urllib.parse import unquote

import pytest
from PIL import Image
from sklearn.metrics import cohen_kappa_score

from dataset_builders import items as items_stage
from dataset_builders.config import BuildConfig
from dataset_builders.records import Item
from dataset_builders.review.__main__ import main
from dataset_builders.review.collect import collect_items
from dataset_builders.review.gallery import write_gallery
from dataset_builders.review.importer import ReviewImportError, parse_export
from dataset_builders.review.label_studio import LabelStudioClient, NOT_FRACTOGRAPH
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl
from fracto_core.vocabulary import canonical_names

from support.review_tools import USER, ensure_chromium, fresh_data_dir, label_studio, run_browser_script

pytestmark = pytest.mark.slow


def _expert_choices(k: int, labels: list[str]) -> list[str]:
    """A deterministic 'expert': agrees, adds a feature, drops one, or rejects the image."""
    if k % 4 == 1:
        return sorted(set(labels) | {"secondary cracks"}, key=canonical_names().index)
    if k % 4 == 2 and len(labels) > 1:
        return labels[1:]
    if k == 3:
        return [NOT_FRACTOGRAPH]
    return labels


def _tasks(client: LabelStudioClient, project: int) -> list[dict]:
    page = client.request("GET", "/api/tasks", query={"project": project, "page_size": 1000})
    return page["tasks"] if isinstance(page, dict) else page


def test_label_studio_round_trip(built, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(built[0], out)
    data_dir = fresh_data_dir(tmp_path / "ls_data", tmp_path / "scratch")
    with label_studio(data_dir, out, tmp_path / "label_studio.log") as (url, token):
        assert main(["export", "--to", "label-studio", "--out", str(out), "--n", "12", "--seed", "5",
                     "--url", url, "--token", token]) == 0
        project = json.loads((out / "review" / "label_studio" / "project.json").read_text())["project"]
        client = LabelStudioClient(url, token)
        tasks = sorted(_tasks(client, project), key=lambda t: t["id"])
        assert len(tasks) == 12
        info = client.request("GET", f"/api/projects/{project}")
        assert info["total_predictions_number"] == 12 and info["label_config"].count("<Choice ") == 29

        # the image is served through the project's local-files storage
        first = tasks[0]["data"]
        req = urllib.request.Request(url + first["image"], headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            image_bytes = resp.read()
        item_image = {i.item_id: i.image for i in read_jsonl(StagePaths(out).items, Item)}[first["item_id"]]
        assert unquote(first["image"].split("?d=")[1]) == item_image
        assert image_bytes == (out / item_image).read_bytes()

        expected: dict[str, list[str]] = {}
        for k, task in enumerate(tasks):
            choices = _expert_choices(k, task["data"]["label_features"])
            expected[task["data"]["item_id"]] = choices
            client.request("POST", f"/api/tasks/{task['id']}/annotations", {
                "result": [{"from_name": "features", "to_name": "image", "type": "choices",
                            "value": {"choices": choices}},
                           {"from_name": "note", "to_name": "image", "type": "textarea",
                            "value": {"text": [f"checked {k}"]}}],
                "lead_time": 2.5})
        records = client.export_json_min(project)
        assert main(["import", "--out", str(out), "--url", url, "--token", token, "--project", str(project)]) == 0

    assert len(records) == 12 and all(r["annotator"] == USER for r in records)
    audit = json.loads((out / "review" / "audit.json").read_text())
    assert audit["reviewed"] == 12 and audit["not_fractograph"] == 1 and audit["compared"] == 11
    assert audit["reviewers"] == [USER]
    compared = [t["data"] for t in tasks if NOT_FRACTOGRAPH not in expected[t["data"]["item_id"]]]
    h_all, m_all = [], []
    for name in canonical_names():
        h = [name in expected[d["item_id"]] for d in compared]
        m = [name in d["label_features"] for d in compared]
        h_all += h
        m_all += m
    assert audit["pooled_agreement"] == pytest.approx(sum(x == y for x, y in zip(h_all, m_all)) / len(h_all))
    assert audit["pooled_kappa"] == pytest.approx(cohen_kappa_score(h_all, m_all))
    added = "secondary cracks"
    assert audit["confusion"][added]["only_expert"] == sum(
        added in expected[d["item_id"]] and added not in d["label_features"] for d in compared) > 0
    assert audit["exact_set_agreement"] < 1.0

    result = items_stage.run(StagePaths(out), BuildConfig(out=out), progress=False)
    assert result.counts["expert_dropped"] == 1 and result.counts["expert_labelled"] == 11
    after = {i.item_id: i for i in read_jsonl(StagePaths(out).items, Item)}
    changed = tasks[1]["data"]["item_id"]
    assert after[changed].features == expected[changed] and after[changed].provenance["reviewer"] == USER

    stale = [dict(r, vocabulary_version="fracto-vocab-v0") for r in records]
    with pytest.raises(ReviewImportError, match="'fracto-vocab-v0', but this code uses 'fracto-vocab-v1'"):
        parse_export(stale, "old.json")


BROWSER_SCRIPT = r"""
import json, sys
from playwright.sync_api import sync_playwright
a = json.loads(sys.argv[1])
flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync"]
res = {}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=a["chromium"], headless=True, args=flags)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(a["url"])
    shown = lambda: page.eval_on_selector_all(".card:not([hidden])", "els => els.map(e => e.dataset.id)")
    current = lambda: page.evaluate("document.body.dataset.current")
    res["all"] = shown()
    res["count"] = page.text_content("#count")
    res["nav"] = [current()]
    page.click("h1")
    for key in ("j", "j", "ArrowRight", "k", "ArrowLeft"):
        page.keyboard.press(key)
        res["nav"].append(current())
    for name, value in a["filters"]:
        page.select_option("#f-" + name, value)
        res[name + "=" + value] = shown()
        page.select_option("#f-" + name, "")
    page.select_option("#f-feature", a["filters"][0][1])
    page.click("h1")
    page.keyboard.press("j")
    res["nav_filtered"] = current()
    page.select_option("#f-feature", "")
    page.screenshot(path=a["screenshot"])
    res["requests"] = [u for u in requests if not u.startswith(("file:", "data:"))]
    res["errors"] = errors
    browser.close()
print(json.dumps(res))
"""


def test_gallery_in_a_real_browser(built, tmp_path):
    chromium = ensure_chromium()
    if chromium is None:
        pytest.skip("no /usr/bin/chromium and no root apt-get to install Debian's chromium package")
    out, _ = built
    items = collect_items(out, include_rejected=True)
    test_items = [i for i in items if i.split == "test"][:3]
    run = tmp_path / "eval_run"
    run.mkdir()
    samples = [{"item_id": test_items[0].item_id, "model": "vllm:ft", "reference": test_items[0].features,
                "parsed": test_items[0].features, "scores": {"tp": len(test_items[0].features), "exact": True}},
               {"item_id": test_items[1].item_id, "model": "vllm:ft", "reference": test_items[1].features,
                "parsed": ["crazing"], "scores": {"tp": 0, "exact": False}}]
    (run / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    page = tmp_path / "gallery.html"
    write_gallery(page, items, [run])
    feature = "fatigue striations"
    rare_origin = "manual"
    res = run_browser_script(BROWSER_SCRIPT, {
        "chromium": str(chromium), "url": page.as_uri(), "screenshot": str(tmp_path / "gallery.png"),
        "filters": [["feature", feature], ["split", "test"], ["origin", rare_origin], ["decision", "rejected"],
                    ["correct", "wrong"], ["correct", "correct"]]})
    ids = [i.item_id for i in items]
    assert res["errors"] == [] and res["requests"] == []  # nothing fetched beyond the file itself
    assert res["all"] == ids and res["count"] == f"{len(ids)} of {len(ids)} shown"
    assert res["nav"] == [ids[0], ids[1], ids[2], ids[3], ids[2], ids[1]]
    with_feature = [i.item_id for i in items if feature in i.features]
    assert res[f"feature={feature}"] == with_feature and len(with_feature) > 1
    assert res["split=test"] == [i.item_id for i in items if i.split == "test"] != []
    assert res[f"origin={rare_origin}"] == [i.item_id for i in items if i.origin == rare_origin] != []
    assert res["decision=rejected"] == [i.item_id for i in items if not i.kept] != []
    assert res["correct=wrong"] == [test_items[1].item_id] and res["correct=correct"] == [test_items[0].item_id]
    assert res["nav_filtered"] == with_feature[1]  # j moves within the filtered cards
    with Image.open(tmp_path / "gallery.png") as shot:
        assert shot.size == (1400, 1000) and len(shot.convert("L").getcolors(65536) or []) > 50  # a rendered page
