"""Issue 27 (4): images an expert marked "not a fractograph" stay visible in the review gallery, hidden by default,
with who rejected them; the slow test drives the page in a real headless Chromium (as test_review_live.py)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from dataset_builders import items as items_stage
from dataset_builders.config import BuildConfig
from dataset_builders.records import Item
from dataset_builders.review.collect import collect_items
from dataset_builders.review.gallery import EXPERT_REJECTED, write_gallery
from dataset_builders.review.importer import import_review
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl
from fracto_core.vocabulary import VOCABULARY_VERSION

from support.review_tools import ensure_chromium, run_browser_script

REVIEWER = "fractographer@lab.org"


def _json_min(item: Item, chosen: list[str], note: str = "") -> dict:
    """One annotation as Label Studio's JSON-MIN export writes it (one choice: a bare string)."""
    rec = {"id": 1, "item_id": item.item_id, "vocabulary_version": VOCABULARY_VERSION,
           "label_origin": item.label_origin, "label_features": item.features, "annotator": REVIEWER,
           "annotation_id": 1, "created_at": "2026-12-01T09:00:00Z", "updated_at": "2026-12-01T09:30:00Z",
           "lead_time": 4.0, "features": chosen[0] if len(chosen) == 1 else {"choices": chosen}}
    return {**rec, "note": note} if note else rec


@pytest.fixture(scope="module")
def reviewed(built, tmp_path_factory):
    """A copy of `built` where the expert rejected one mined and one manual image, then the items stage ran."""
    out = tmp_path_factory.mktemp("reviewed") / "out"
    shutil.copytree(built[0], out)
    paths = StagePaths(out)
    before = {i.item_id: i for i in read_jsonl(paths.items, Item)}
    mined = sorted(i for i in before if not i.startswith("manual-"))[0]
    manual = sorted(i for i in before if i.startswith("manual-"))[0]
    import_review(out, [_json_min(before[mined], ["not a fractograph"], note="EBSD map, not a fracture surface"),
                        _json_min(before[manual], ["not a fractograph"])], "review.json")
    items_stage.run(paths, BuildConfig(out=out), progress=False)
    after = {i.item_id for i in read_jsonl(paths.items, Item)}
    assert mined not in after and manual not in after  # the dataset drops them ...
    return out, before, (mined, manual)


def test_collect_keeps_expert_rejected_images_with_the_reviewer(reviewed):
    out, before, rejected = reviewed
    items = {i.item_id: i for i in collect_items(out, include_rejected=True)}
    for item_id in rejected:  # ... the review still shows them, with who rejected them and what they were
        it = items[item_id]
        assert it.rejected_by == REVIEWER and it.rejection.startswith("not a fractograph (reviewed 2026-12-01")
        assert it.features == before[item_id].features and it.image.is_file()
    assert items[rejected[0]].rejection.endswith(": EBSD map, not a fracture surface")
    assert not any(items[i].rejected_by for i in items if i not in rejected)
    assert not set(rejected) & {i.item_id for i in collect_items(out)}  # the Label Studio export: dataset only


def test_gallery_marks_expert_rejected_images(reviewed, tmp_path):
    out, _, rejected = reviewed
    items = collect_items(out, include_rejected=True)
    counts = write_gallery(tmp_path / "g.html", items)
    page = (tmp_path / "g.html").read_text()
    data = json.loads(re.search(r'<script id="gallery-data" type="application/json">(.*?)</script>', page, re.S)[1])
    recs = {r["id"]: r for r in data["items"]}
    assert counts["expert_rejected"] == 2 and counts["items"] == len(items)
    assert {i for i, r in recs.items() if r["decision"] == EXPERT_REJECTED} == set(rejected)
    assert all(recs[i]["rejected_by"] == REVIEWER and recs[i]["img"] for i in rejected)
    assert 'id="f-expert"' in page


BROWSER_SCRIPT = r"""
import json, sys
from playwright.sync_api import sync_playwright
a = json.loads(sys.argv[1])
res = {}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=a["chromium"], headless=True,
                                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                      "--disable-component-update", "--no-first-run", "--disable-sync"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(a["url"])
    shown = lambda: page.eval_on_selector_all(".card:not([hidden])", "els => els.map(e => e.dataset.id)")
    res["default"] = shown()
    res["count"] = page.text_content("#count")
    page.select_option("#f-decision", "expert-rejected")
    res["decision"] = shown()
    res["texts"] = page.eval_on_selector_all(".card:not([hidden]) .rejection", "els => els.map(e => e.textContent)")
    page.select_option("#f-decision", "")
    page.check("#f-expert")
    res["ticked"] = shown()
    page.uncheck("#f-expert")
    res["unticked"] = shown()
    res["errors"] = errors
    browser.close()
print(json.dumps(res))
"""


@pytest.mark.slow
def test_expert_rejected_images_in_a_real_browser(reviewed, tmp_path):
    chromium = ensure_chromium()
    if chromium is None:
        pytest.skip("no /usr/bin/chromium and no root apt-get to install Debian's chromium package")
    out, _, rejected = reviewed
    items = collect_items(out, include_rejected=True)
    page = tmp_path / "gallery.html"
    write_gallery(page, items)
    res = run_browser_script(BROWSER_SCRIPT, {"chromium": str(chromium), "url": page.as_uri()})
    ids = [i.item_id for i in items]
    others = [i for i in ids if i not in rejected]
    assert res["errors"] == []
    assert res["default"] == others and res["count"] == f"{len(others)} of {len(ids)} shown"
    assert sorted(res["decision"]) == sorted(rejected)
    assert len(res["texts"]) == 2 and all(t.startswith(f"rejected by {REVIEWER}: not a fractograph") for t in res["texts"])
    assert res["ticked"] == ids and res["unticked"] == others
