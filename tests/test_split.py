"""Split stage: grouped by paper, duplicates kept together, features covered in train, benchmark excluded."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builders import split as splits
from dataset_builders.config import BuildConfig
from dataset_builders.perceptual_hash import hamming, image_phash
from dataset_builders.records import Item, Problem, SplitAssignment
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_jsonl_atomic


def make_item(paths: StagePaths, item_id: str, papers: list[str], features: list[str], seed: int,
              origin: str = "caption_rules", pixels: np.ndarray | None = None) -> Item:
    """A labelled item backed by a real noise image (distinct images have distant perceptual hashes)."""
    if pixels is None:
        pixels = np.random.default_rng(seed).integers(0, 256, (48, 64), dtype=np.uint8)
    rel = f"stages/panels/{item_id}.png"
    paths.abs(rel).parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels)
    img.save(paths.abs(rel))
    return Item(item_id=item_id, image=rel, width=img.width, height=img.height, phash=image_phash(img),
                paper_ids=papers, features=features, label_origin=origin)


FEATURE_CYCLE = [["equiaxed dimples"], ["cleavage facets", "river patterns"], ["fatigue striations"],
                 ["intergranular facets"], ["equiaxed dimples", "shear lip"]]


def corpus(paths: StagePaths, n_papers: int = 30) -> list[Item]:
    """n_papers papers with 1-3 items each, one image reprinted in two papers, two rare features in 2 papers."""
    items: list[Item] = []
    seed = 0
    for p in range(n_papers):
        for k in range(1 + p % 3):
            feats = list(FEATURE_CYCLE[(p + k) % len(FEATURE_CYCLE)])
            if p in (3, 17):
                feats.append("fish-eye")
            if p in (8, 22) and k == 0:
                feats.append("ratchet marks")
            seed += 1
            items.append(make_item(paths, f"paper{p:02d}-f{k}", [f"paper{p:02d}"], feats, seed))
    # the same image reprinted in paper05 and paper20: dedup made one item with both paper ids
    items.append(make_item(paths, "paper05-reprint", ["paper05", "paper20"], ["beach marks"], 999))
    for k in range(3):  # one manual source
        items.append(make_item(paths, f"manual-a{k}", ["manual:atlas"], ["crazing"], 500 + k, origin="manual"))
    return items


def write_items(paths: StagePaths, items: list[Item]) -> None:
    write_jsonl_atomic(paths.items, sorted(items, key=lambda it: it.item_id))


def split_by_item(paths: StagePaths) -> dict[str, str]:
    return {a.item_id: a.split for a in read_jsonl(paths.splits, SplitAssignment)}


def test_groups_never_cross_splits(tmp_path: Path) -> None:
    paths = StagePaths(tmp_path)
    items = corpus(paths)
    write_items(paths, items)
    result = splits.run(paths, BuildConfig(out=tmp_path, seed=3, val_ratio=0.2, test_ratio=0.2), progress=False)
    split_of = split_by_item(paths)
    assert set(split_of) == {it.item_id for it in items}
    splits_of_paper: dict[str, set[str]] = defaultdict(set)
    for it in items:
        for p in it.paper_ids:
            splits_of_paper[p].add(split_of[it.item_id])
    assert all(len(s) == 1 for s in splits_of_paper.values()), splits_of_paper
    # the reprint links paper05 and paper20
    assert splits_of_paper["paper05"] == splits_of_paper["paper20"]
    assert {a.group for a in read_jsonl(paths.splits, SplitAssignment) if a.item_id == "paper20-f0"} == {"paper05"}
    # manual items of one source stay together
    assert len({split_of[f"manual-a{k}"] for k in range(3)}) == 1
    assert result.counts["val"] > 0 and result.counts["test"] > 0
    assert result.counts["train"] + result.counts["val"] + result.counts["test"] == len(items)


def test_near_duplicate_images_stay_together(tmp_path: Path) -> None:
    """A manual image that is also in a paper (same pixels, different source) lands in the paper's split."""
    paths = StagePaths(tmp_path)
    items = [make_item(paths, f"p{p:02d}-f0", [f"p{p:02d}"], ["equiaxed dimples"], p) for p in range(20)]
    shared = np.random.default_rng(7).integers(0, 256, (48, 64), dtype=np.uint8)
    items.append(make_item(paths, "p99-f0", ["p99"], ["cleavage facets"], 0, pixels=shared))
    items.append(make_item(paths, "manual-x", ["manual:lab"], ["cleavage facets"], 0, origin="manual",
                           pixels=shared))
    write_items(paths, items)
    for seed in range(5):
        splits.run(paths, BuildConfig(out=tmp_path, seed=seed, val_ratio=0.3, test_ratio=0.3), progress=False)
        split_of = split_by_item(paths)
        assert split_of["p99-f0"] == split_of["manual-x"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_feature_present_in_train(tmp_path: Path, seed: int) -> None:
    paths = StagePaths(tmp_path)
    items = corpus(paths)
    write_items(paths, items)
    splits.run(paths, BuildConfig(out=tmp_path, seed=seed, val_ratio=0.3, test_ratio=0.3), progress=False)
    split_of = split_by_item(paths)
    in_train = {f for it in items if split_of[it.item_id] == "train" for f in it.features}
    assert in_train == {f for it in items for f in it.features}
    # the rare features live in two papers each, and val+test still got their share of items
    counts = {s: sum(v == s for v in split_of.values()) for s in ("train", "val", "test")}
    assert counts["val"] >= 0.2 * len(items) and counts["test"] >= 0.2 * len(items)


def test_ratios_over_items(tmp_path: Path) -> None:
    paths = StagePaths(tmp_path)
    items = [make_item(paths, f"q{p:03d}", [f"q{p:03d}"], ["equiaxed dimples"], p) for p in range(100)]
    write_items(paths, items)
    result = splits.run(paths, BuildConfig(out=tmp_path, val_ratio=0.1, test_ratio=0.15), progress=False)
    assert (result.counts["val"], result.counts["test"], result.counts["train"]) == (10, 15, 75)


def test_deterministic_by_seed(tmp_path: Path) -> None:
    paths = StagePaths(tmp_path)
    write_items(paths, corpus(paths))
    config = BuildConfig(out=tmp_path, seed=11)
    splits.run(paths, config, progress=False)
    first = paths.splits.read_bytes()
    splits.run(paths, config, progress=False)
    assert paths.splits.read_bytes() == first
    others = set()
    for seed in range(12, 16):
        splits.run(paths, BuildConfig(out=tmp_path, seed=seed), progress=False)
        others.add(paths.splits.read_bytes())
    assert any(o != first for o in others)  # the seed matters


def test_benchmark_images_are_excluded(tmp_path: Path) -> None:
    paths = StagePaths(tmp_path)
    items = corpus(paths)
    write_items(paths, items)
    target = next(it for it in items if it.item_id == "paper04-f1")
    bench = tmp_path / "bench" / "nested"
    bench.mkdir(parents=True)
    # the benchmark holds the image rescaled and JPEG-recompressed: still a near-identical phash
    with Image.open(paths.abs(target.image)) as img:
        copy = img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC)
    copy.save(bench / "b1.jpg", quality=80)
    assert hamming(image_phash(copy), target.phash) <= 6
    Image.fromarray(np.random.default_rng(12345).integers(0, 256, (40, 40), dtype=np.uint8)).save(
        tmp_path / "bench" / "unrelated.png")
    (tmp_path / "bench" / "notes.txt").write_text("not an image")

    config = BuildConfig(out=tmp_path, exclude_benchmark=tmp_path / "bench")
    result = splits.run(paths, config, progress=False)
    split_of = split_by_item(paths)
    assert "paper04-f1" not in split_of
    assert len(split_of) == len(items) - 1
    bench_problems = [p for p in result.problems if p.reason == "in_benchmark"]
    assert [p.item_id for p in bench_problems] == ["paper04-f1"]
    assert "nested/b1.jpg" in bench_problems[0].detail and bench_problems[0].stage == "split"
    assert result.counts["in_benchmark"] == 1
    assert "paper04-f1" not in paths.splits.read_text()
    assert [p.item_id for p in read_jsonl(splits.dropped_path(paths), Problem)] == ["paper04-f1"]


def test_empty_items_file_gives_empty_splits(tmp_path: Path) -> None:
    paths = StagePaths(tmp_path)
    paths.stages.mkdir(parents=True)
    paths.items.write_text("")  # an empty file, as the items stage writes for no items (a missing one is an error)
    result = splits.run(paths, BuildConfig(out=tmp_path), progress=False)
    assert paths.splits.read_text() == "" and result.counts["items"] == 0
    assert json.loads(json.dumps(result.counts))["train"] == 0
