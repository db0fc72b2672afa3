"""Export stage: ShareGPT JSON structure, linked images, variants, meta files, card, and self-validation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builders import augment
from dataset_builders import export as sharegpt
from dataset_builders import split as splits
from fracto_core.answer_format import (
    PROMPT_VERSION,
    format_answer,
    instruction_prompt,
)
from dataset_builders.config import BuildConfig
from fracto_core.image_budget import image_tokens
from dataset_builders.perceptual_hash import image_phash
from dataset_builders.records import FilterDecision, Item, Problem, SplitAssignment, StageResult
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_json_atomic, write_jsonl_atomic, write_model_atomic
from dataset_builders.validate import DatasetValidationError, validate_dataset

FEATURES = [["equiaxed dimples"], ["cleavage facets", "river patterns"], ["fatigue striations", "beach marks"],
            ["intergranular facets"], []]


def build_inputs(tmp_path: Path, n_papers: int = 12) -> StagePaths:
    """items.jsonl for n_papers mined papers (2 panels each) + 2 manual rare-feature images, plus filter/dedup."""
    paths = StagePaths(tmp_path)
    items = []
    for n in range(n_papers * 2 + 2):
        manual = n >= n_papers * 2
        item_id = f"manual-{n:02d}" if manual else f"paper{n // 2:02d}-p1-f0-{'ab'[n % 2]}"
        rel = f"stages/{'manual' if manual else 'panels/paper' + format(n // 2, '02d')}/{item_id}.jpg"
        paths.abs(rel).parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(np.random.default_rng(n).integers(0, 256, (60 + n, 80), dtype=np.uint8))
        img.save(paths.abs(rel), quality=90)
        items.append(Item(item_id=item_id, image=rel, width=img.width, height=img.height, phash=image_phash(img),
                          paper_ids=["manual:atlas"] if manual else [f"paper{n // 2:02d}"],
                          features=["crazing"] if manual else FEATURES[n % len(FEATURES)],
                          label_origin="manual" if manual else "caption_rules",
                          provenance={"source_pdf": None if manual else f"paper{n // 2:02d}.pdf", "page": 1}))
    write_jsonl_atomic(paths.items, items)
    write_json_atomic(paths.panels / "paper00.json", {"paper_id": "paper00", "source_pdf": "paper00.pdf",
                                                      "title": "Fatigue of welded joints", "doi": "10.1/xyz",
                                                      "panels": []})
    write_jsonl_atomic(paths.filter, [FilterDecision(panel_id="x", keep=False, score=-2, reasons=["cues:-plot"]),
                                      FilterDecision(panel_id="y", keep=True, score=2, reasons=["caption:+SEM"])])
    write_json_atomic(paths.dedup, [{"group_id": "paper00-p1-f0-a", "representative": "paper00-p1-f0-a",
                                     "members": ["paper00-p1-f0-a", "paper09-p2-f0-a"],
                                     "paper_ids": ["paper00", "paper09"]}])
    write_model_atomic(paths.stages / "results" / "mine.json",  # what the mine stage of this run reported
                       StageResult(stage="mine", problems=[Problem(file="broken.pdf", stage="mine", reason="encrypted")]))
    return paths


def run_pipeline(paths: StagePaths, **overrides) -> BuildConfig:
    config = BuildConfig(out=paths.out, workers=1, val_ratio=0.2, test_ratio=0.2, **overrides)
    splits.run(paths, config, progress=False)
    augment.run(paths, config, progress=False)
    sharegpt.run(paths, config, progress=False)
    return config


@pytest.fixture
def exported(tmp_path: Path) -> tuple[StagePaths, BuildConfig]:
    paths = build_inputs(tmp_path)
    return paths, run_pipeline(paths)


def load(paths: StagePaths, name: str) -> list[dict]:
    return json.loads((paths.dataset / f"{name}.json").read_text())


def test_sharegpt_structure_and_images(exported) -> None:
    paths, _config = exported
    split_of = {a.item_id: a.split for a in read_jsonl(paths.splits, SplitAssignment)}
    items = {it.item_id: it for it in read_jsonl(paths.items, Item)}
    for split in ("train", "val", "test"):
        samples = load(paths, f"fracto_{split}")
        meta = [json.loads(line) for line in (paths.dataset / f"fracto_{split}_meta.jsonl").read_text().splitlines()]
        assert len(samples) == len(meta) > 0
        for sample, m in zip(samples, meta):
            assert set(sample) == {"messages", "images"}
            user, assistant = sample["messages"]
            assert user == {"role": "user", "content": "<image>" + instruction_prompt()}
            item = items[m["item_id"]]
            assert assistant == {"role": "assistant", "content": format_answer(item.features)}
            assert m["features"] == item.features and m["provenance"] == item.provenance
            assert split_of[m["item_id"]] == split
            (rel,) = sample["images"]
            assert rel == m["image"] and rel.startswith(f"images/{split}/") and not os.path.isabs(rel)
            target = paths.dataset / rel
            assert target.is_file()
            source = paths.abs(item.image) if m["augmentation"] is None else None
            if source is not None:  # hard link to the stage image, not a re-encode
                assert os.path.samefile(source, target)
        if split != "train":
            assert all(m["augmentation"] is None for m in meta)
    train_meta = [json.loads(x) for x in (paths.dataset / "fracto_train_meta.jsonl").read_text().splitlines()]
    n_train_items = sum(v == "train" for v in split_of.values())
    rotations = [m for m in train_meta if m["augmentation"] and m["augmentation"]["kind"] == "rotation"]
    oversampled = [m for m in train_meta if m["augmentation"] and m["augmentation"]["kind"] == "oversample"]
    assert len(rotations) == 3 * n_train_items
    assert {m["item_id"] for m in oversampled} == {i for i, s in split_of.items() if s == "train"
                                                    and "crazing" in items[i].features}


def test_dataset_info_and_variants(exported) -> None:
    paths, _config = exported
    info = json.loads((paths.dataset / "dataset_info.json").read_text())
    names = ["fracto_train", "fracto_val", "fracto_test", "fracto_train_no_manual", "fracto_train_no_rotation"]
    assert sorted(info) == sorted(names)
    for name in names:
        assert info[name] == {"file_name": f"{name}.json", "formatting": "sharegpt",
                              "columns": {"messages": "messages", "images": "images"},
                              "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                       "assistant_tag": "assistant"}}
    meta = [json.loads(x) for x in (paths.dataset / "fracto_train_meta.jsonl").read_text().splitlines()]
    by_image = {m["image"]: m for m in meta}
    train = load(paths, "fracto_train")
    no_manual = load(paths, "fracto_train_no_manual")
    no_rotation = load(paths, "fracto_train_no_rotation")
    manual_imgs = {m["image"] for m in meta if m["label_origin"] == "manual"}
    assert manual_imgs, "the fixture should put manual items in train"
    assert {s["images"][0] for s in no_manual} == {m["image"] for m in meta if m["label_origin"] != "manual"}
    assert not any('"crazing"' in s["messages"][1]["content"] for s in no_manual)
    assert {s["images"][0] for s in no_rotation} == {m["image"] for m in meta if m["augmentation"] is None}
    assert any(by_image[s["images"][0]]["label_origin"] == "manual" for s in no_rotation)
    assert len(no_rotation) < len(train) and len(no_manual) < len(train)


def test_export_is_deterministic_and_card_counts(exported) -> None:
    paths, config = exported
    files = sorted(p for p in paths.dataset.iterdir() if p.is_file())
    before = {p.name: p.read_bytes() for p in files}
    sharegpt.run(paths, config, progress=False)
    assert {p.name: p.read_bytes() for p in sorted(paths.dataset.iterdir()) if p.is_file()} == before

    card = json.loads((paths.dataset / "dataset_card.json").read_text())
    split_of = {a.item_id: a.split for a in read_jsonl(paths.splits, SplitAssignment)}
    for split in ("train", "val", "test"):
        assert card["splits"][split]["items"] == sum(v == split for v in split_of.values())
        assert card["splits"][split]["samples"] == len(load(paths, f"fracto_{split}"))
    assert card["prompt_version"] == PROMPT_VERSION
    assert card["cutoff_len"] == config.cutoff_len and card["image_max_pixels"] == config.image_max_pixels
    biggest = max(image_tokens(*Image.open(paths.dataset / s["images"][0]).size, config.image_max_pixels,
                               config.image_min_pixels) for s in load(paths, "fracto_train"))
    assert card["max_image_tokens"] == biggest
    crazing = card["features"]["crazing"]
    assert crazing["rare"] and crazing["train"]["originals"] == 2
    assert crazing["train"]["with_augmentation"] == 2 * (1 + 3 + 1)  # 3 rotations + 1 oversample each
    assert card["label_origins"]["manual"]["items"] == 2
    assert card["augmentation"]["oversample"] == 2
    assert card["dropped"]["filter"]["rejected"] == 1
    assert card["dropped"]["duplicates"]["panels"] == [{"panel_id": "paper09-p2-f0-a",
                                                        "duplicate_of": "paper00-p1-f0-a"}]
    assert card["dropped"]["build_report"] == {"mine:encrypted": 1}
    paper00 = next(s for s in card["sources"] if s["source"] == "paper00")
    assert paper00["title"] == "Fatigue of welded joints" and paper00["doi"] == "10.1/xyz"
    md = (paths.dataset / "dataset_card.md").read_text()
    assert PROMPT_VERSION in md and "Fatigue of welded joints" in md and "crazing *" in md


def test_benchmark_exclusions_reach_the_card(tmp_path: Path) -> None:
    paths = build_inputs(tmp_path)
    bench = tmp_path / "bench"
    bench.mkdir()
    Image.open(paths.abs("stages/panels/paper03/paper03-p1-f0-a.jpg")).save(bench / "x.png")
    run_pipeline(paths, exclude_benchmark=bench, variants=False)
    card = json.loads((paths.dataset / "dataset_card.json").read_text())
    assert [b["item_id"] for b in card["dropped"]["benchmark"]] == ["paper03-p1-f0-a"]
    assert sorted(json.loads((paths.dataset / "dataset_info.json").read_text())) == [
        "fracto_test", "fracto_train", "fracto_val"]
    assert not any("paper03-p1-f0-a" in s["images"][0] for name in ("fracto_train", "fracto_val", "fracto_test")
                   for s in load(paths, name))


# --- validation catches each broken case -----------------------------------------------------------

def _rewrite(paths: StagePaths, name: str, edit) -> None:
    samples = load(paths, name)
    edit(samples)
    (paths.dataset / f"{name}.json").write_text(json.dumps(samples))


def test_valid_export_has_no_problems(exported) -> None:
    paths, config = exported
    assert validate_dataset(paths.dataset, config) == []


def test_validation_missing_image(exported) -> None:
    paths, config = exported
    rel = load(paths, "fracto_val")[0]["images"][0]
    (paths.dataset / rel).unlink()
    problems = validate_dataset(paths.dataset, config)
    assert [(p.file, p.reason) for p in problems] == [("fracto_val.json#0", "bad_image")]
    assert rel in problems[0].detail and "does not exist" in problems[0].detail


def test_validation_corrupt_image(exported) -> None:
    paths, config = exported
    rel = load(paths, "fracto_test")[0]["images"][0]
    (paths.dataset / rel).unlink()  # break the hard link, do not damage the stage image
    (paths.dataset / rel).write_bytes(b"\xff\xd8garbage")
    problems = validate_dataset(paths.dataset, config)
    assert [(p.file, p.reason) for p in problems] == [("fracto_test.json#0", "bad_image")]


def test_validation_two_images_one_tag(exported) -> None:
    paths, config = exported
    _rewrite(paths, "fracto_val", lambda s: s[1]["images"].append(s[0]["images"][0]))
    problems = validate_dataset(paths.dataset, config)
    assert [(p.file, p.reason) for p in problems] == [("fracto_val.json#1", "image_tag_mismatch")]
    assert "1 <image> tag(s) for 2 image(s)" in problems[0].detail


def test_validation_wrong_role_order(exported) -> None:
    paths, config = exported
    _rewrite(paths, "fracto_test", lambda s: s[0]["messages"].reverse())
    problems = validate_dataset(paths.dataset, config)
    assert [(p.file, p.reason) for p in problems] == [("fracto_test.json#0", "role_order")]


def test_validation_bad_answer(exported) -> None:
    paths, config = exported

    def edit(samples):
        samples[0]["messages"][1]["content"] = '{"features": ["dimples"]}'  # a synonym, not canonical
    _rewrite(paths, "fracto_val", edit)
    problems = validate_dataset(paths.dataset, config)
    assert [(p.file, p.reason) for p in problems] == [("fracto_val.json#0", "bad_answer")]


def test_validation_cutoff_len_too_small(exported) -> None:
    paths, config = exported
    small = config.model_copy(update={"cutoff_len": 700})  # prompt alone is ~720 bytes
    problems = validate_dataset(paths.dataset, small)
    assert problems and all(p.reason == "exceeds_cutoff_len" for p in problems)
    first = problems[0]
    assert first.file.endswith("#0") and "cutoff_len 700" in first.detail and "image tokens" in first.detail
    rel = load(paths, first.file.split("#")[0].removesuffix(".json"))[0]["images"][0]
    assert rel in first.detail
    with pytest.raises(DatasetValidationError, match="exceeds_cutoff_len"):
        sharegpt.run(paths, small, progress=False)


def test_export_fails_loudly_on_big_images(tmp_path: Path) -> None:
    paths = build_inputs(tmp_path, n_papers=3)
    items = read_jsonl(paths.items, Item)
    big = Image.fromarray(np.random.default_rng(1).integers(0, 256, (1600, 1600), dtype=np.uint8))
    big.save(paths.abs(items[0].image), quality=50)
    items[0] = items[0].model_copy(update={"width": 1600, "height": 1600})
    write_jsonl_atomic(paths.items, items)
    config = BuildConfig(out=tmp_path, workers=1, image_max_pixels=4_000_000, cutoff_len=2048, rotations=[])
    splits.run(paths, config, progress=False)
    augment.run(paths, config, progress=False)
    with pytest.raises(DatasetValidationError) as err:
        sharegpt.run(paths, config, progress=False)
    assert items[0].item_id in str(err.value) and "2500 image tokens" in str(err.value)


def test_card_reports_leakage_and_summarised_filter_evidence(tmp_path: Path) -> None:
    from dataset_builders.dataset_card import leakage, reason_kind
    from dataset_builders.records import Item

    assert reason_kind("cue:-white_fraction=0.82") == "cue:-white_fraction"
    assert reason_kind("cue:+grey_texture(std=40,levels=90)") == "cue:+grey_texture"
    items = {i: Item(item_id=i, image=f"{i}.jpg", width=1, height=1, phash=h, paper_ids=[p], features=[],
                     label_origin="caption_rules")
             for i, h, p in [("a", "ffff000000000000", "P1"), ("b", "ffff000000000001", "P2"),
                             ("c", "0000ffff00000000", "P1")]}
    report = leakage(items, {"a": "train", "b": "test", "c": "val"}, max_distance=6)
    assert report["papers_across_splits"] == 1 and report["papers"] == ["P1"]
    assert report["near_duplicates_across_splits"] == 1 and report["pairs"] == [["a", "b"]]
    clean = leakage(items, {"a": "train", "b": "train", "c": "train"}, max_distance=6)
    assert clean["papers_across_splits"] == 0 and clean["near_duplicates_across_splits"] == 0
