"""Augment stage: train only, exact lossless rotations, clean inscribed crops, rare-feature oversampling, resume."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builders import augment
from dataset_builders.config import BuildConfig
from dataset_builders.perceptual_hash import image_phash
from dataset_builders.records import AugmentedImage, Item, SplitAssignment
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import read_jsonl, write_jsonl_atomic


def textured(seed: int, w: int = 96, h: int = 64) -> np.ndarray:
    """A smooth, asymmetric RGB image (JPEG-friendly, so pixel comparisons are meaningful)."""
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.05, 0.2, 2)
    r = 128 + 100 * np.sin(a * xx + b * yy)
    g = 255 * xx / w
    bl = 255 * yy / h
    return np.stack([r, g, bl], axis=-1).clip(0, 255).astype(np.uint8)


def setup_build(tmp_path: Path, specs: list[tuple[str, str, list[str]]]) -> StagePaths:
    """items.jsonl + splits.jsonl for (item_id, split, features) with PNG images."""
    paths = StagePaths(tmp_path)
    items, assignments = [], []
    for n, (item_id, split, feats) in enumerate(specs):
        rel = f"stages/panels/{item_id}.png"
        paths.abs(rel).parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(textured(n))
        img.save(paths.abs(rel))
        items.append(Item(item_id=item_id, image=rel, width=img.width, height=img.height, phash=image_phash(img),
                          paper_ids=[f"paper-{item_id}"], features=feats, label_origin="caption_rules"))
        assignments.append(SplitAssignment(item_id=item_id, split=split, group=f"paper-{item_id}"))
    write_jsonl_atomic(paths.items, items)
    write_jsonl_atomic(paths.splits, sorted(assignments, key=lambda a: a.item_id))
    return paths


SPECS = [("a-train", "train", ["equiaxed dimples"]), ("b-train-rare", "train", ["fish-eye", "fatigue striations"]),
         ("c-val", "val", ["fish-eye"]), ("d-test", "test", ["cleavage facets"])]


def test_only_train_items_are_augmented(tmp_path: Path) -> None:
    paths = setup_build(tmp_path, SPECS)
    result = augment.run(paths, BuildConfig(out=tmp_path, workers=1, oversample_rare=2), progress=False)
    records = read_jsonl(augment.manifest_path(paths), AugmentedImage)
    assert {r.original_id for r in records} == {"a-train", "b-train-rare"}
    by_item = {r.item_id: r for r in records}
    assert {f"a-train-rot{a}" for a in (90, 180, 270)} <= set(by_item)
    assert all(paths.abs(r.image).is_file() for r in records)
    assert result.counts["rotation"] == 6 and result.counts["oversample"] == 2


def test_lossless_rotation_matches_numpy(tmp_path: Path) -> None:
    paths = setup_build(tmp_path, SPECS[:1])
    augment.run(paths, BuildConfig(out=tmp_path, workers=1), progress=False)
    original = np.asarray(Image.open(paths.abs("stages/panels/a-train.png")), dtype=np.int16)
    for angle, k in ((90, 1), (180, 2), (270, 3)):
        rec = next(r for r in read_jsonl(augment.manifest_path(paths), AugmentedImage) if r.angle == angle)
        assert rec.kind == "rotation" and rec.original_id == "a-train"
        with Image.open(paths.abs(rec.image)) as img:
            assert img.format == "JPEG"
            rotated = np.asarray(img, dtype=np.int16)
        expected = np.rot90(original, k)
        assert rotated.shape == expected.shape
        assert np.abs(rotated - expected).mean() < 3  # JPEG q95 tolerance
        if k != 2:  # the other direction is clearly different: the test can tell 90 from 270
            assert np.abs(rotated - np.rot90(original, 4 - k)).mean() > 20


@pytest.mark.parametrize("size", [(200, 120), (120, 200), (150, 150), (400, 40), (40, 400)])
@pytest.mark.parametrize("angle", [3.0, 17.5, 33.0, 45.0, 61.2, 100.0, 135.0, 212.7, 300.0])
def test_inscribed_crop_has_no_fill_corners(size: tuple[int, int], angle: float) -> None:
    white = Image.new("L", size, 255)
    crop = augment.rotate_and_crop(white, angle, fill=0)
    px = np.asarray(crop)
    assert px.min() == 255, f"fill colour inside the crop at {angle} deg, size {size}"
    # and it is the *largest* such rectangle: a few pixels more on each side already shows the fill
    rotated = np.asarray(white.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0))
    h, w = px.shape
    grow = augment.CROP_MARGIN_PX + 3
    top, left = (rotated.shape[0] - h) // 2 - grow, (rotated.shape[1] - w) // 2 - grow
    bigger = rotated[max(0, top):top + h + 2 * grow, max(0, left):left + w + 2 * grow]
    assert bigger.min() < 128


def test_inscribed_rect_formula_known_values() -> None:
    w, h = augment.largest_inscribed_rect(100, 100, 45)
    assert w == pytest.approx(100 / math.sqrt(2)) and h == pytest.approx(100 / math.sqrt(2))
    assert augment.largest_inscribed_rect(300, 200, 90) == (200, 300)
    assert augment.largest_inscribed_rect(300, 200, 0) == (300, 200)
    # thin image: limited by the short side, w = (h/2)/sin, h' = (h/2)/cos
    w, h = augment.largest_inscribed_rect(1000, 10, 30)
    assert (w, h) == (pytest.approx(5 / 0.5), pytest.approx(5 / math.cos(math.radians(30))))


def test_arbitrary_rotations_seeded_and_clean(tmp_path: Path) -> None:
    paths = setup_build(tmp_path, SPECS[:1])
    config = BuildConfig(out=tmp_path, workers=1, rotations=[], arbitrary_rotations=3, seed=5)
    augment.run(paths, config, progress=False)
    records = read_jsonl(augment.manifest_path(paths), AugmentedImage)
    assert len(records) == 3 and all(r.kind == "rotation" for r in records)
    angles = sorted(r.angle for r in records)
    assert all(min(abs(a - k) for k in (0, 90, 180, 270, 360)) >= 1 for a in angles)
    for rec in records:
        assert rec.item_id == f"a-train-rot{rec.angle:.1f}"
        with Image.open(paths.abs(rec.image)) as img:
            px = np.asarray(img.convert("L"), dtype=np.int16)
        assert min(px[0, 0], px[0, -1], px[-1, 0], px[-1, -1]) > 15  # no black fill in the corners
    # same seed: same angles in another folder; another seed: other angles
    other = setup_build(tmp_path / "again", SPECS[:1])
    augment.run(other, config.model_copy(update={"out": tmp_path / "again"}), progress=False)
    assert sorted(r.angle for r in read_jsonl(augment.manifest_path(other), AugmentedImage)) == angles
    third = setup_build(tmp_path / "seed6", SPECS[:1])
    augment.run(third, config.model_copy(update={"out": tmp_path / "seed6", "seed": 6}), progress=False)
    assert sorted(r.angle for r in read_jsonl(augment.manifest_path(third), AugmentedImage)) != angles


def test_oversampling_only_for_rare_features(tmp_path: Path) -> None:
    paths = setup_build(tmp_path, SPECS)
    augment.run(paths, BuildConfig(out=tmp_path, workers=1, rotations=[], oversample_rare=3), progress=False)
    records = read_jsonl(augment.manifest_path(paths), AugmentedImage)
    assert {r.original_id for r in records} == {"b-train-rare"}  # fish-eye is rare; dimples are not
    assert len(records) == 3 and all(r.kind == "oversample" for r in records)
    assert len({r.angle for r in records}) == 3 and len({r.image for r in records}) == 3


def test_resume_keeps_existing_images_and_parallel_matches(tmp_path: Path) -> None:
    paths = setup_build(tmp_path, SPECS)
    config = BuildConfig(out=tmp_path, workers=1, arbitrary_rotations=1)
    first = augment.run(paths, config, progress=False)
    manifest = augment.manifest_path(paths).read_bytes()
    records = read_jsonl(augment.manifest_path(paths), AugmentedImage)
    kept, removed = paths.abs(records[0].image), paths.abs(records[1].image)
    before = kept.stat()
    removed.unlink()
    second = augment.run(paths, config.model_copy(update={"workers": 2}), progress=False)
    assert kept.stat().st_mtime_ns == before.st_mtime_ns and kept.stat().st_ino == before.st_ino
    assert removed.is_file()
    assert second.counts["made"] == 1 and second.counts["reused"] == first.counts["made"] - 1
    assert augment.manifest_path(paths).read_bytes() == manifest
    assert not list(paths.augment.glob(".*.tmp"))


def test_unreadable_original_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    paths = setup_build(tmp_path, SPECS[:2])
    paths.abs("stages/panels/a-train.png").write_bytes(b"not an image")
    result = augment.run(paths, BuildConfig(out=tmp_path, workers=1), progress=False)
    assert [(p.item_id, p.reason) for p in result.problems] == [("a-train", "unreadable_image")]
    records = read_jsonl(augment.manifest_path(paths), AugmentedImage)
    assert {r.original_id for r in records} == {"b-train-rare"}


def test_a_rerun_prunes_what_it_no_longer_plans(tmp_path: Path) -> None:
    """Fewer rotations, a flat file of an older layout and a killed run's temporary file: all removed,
    the planned copies kept as they are (not rewritten)."""
    paths = setup_build(tmp_path, SPECS[:2])
    augment.run(paths, BuildConfig(out=tmp_path, workers=1), progress=False)
    kept = paths.augment / "paper-a-train" / "a-train-rot90.jpg"
    before = kept.stat().st_mtime_ns
    stale = [paths.augment / "a-train-rot90.jpg", paths.augment / "paper-a-train" / ".a-train-rot90.jpg.x1.tmp",
             paths.augment / "paper-gone" / "gone-rot90.jpg"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"old")
    result = augment.run(paths, BuildConfig(out=tmp_path, workers=1, rotations=[90]), progress=False)
    images = sorted(p.relative_to(paths.augment).as_posix() for p in paths.augment.rglob("*") if p.is_file())
    manifest = read_jsonl(augment.manifest_path(paths), AugmentedImage)
    planned = [r.image.removeprefix("stages/augment/") for r in manifest]
    assert images == sorted(["augmented.jsonl", *planned])
    assert {"paper-a-train/a-train-rot90.jpg", "paper-b-train-rare/b-train-rare-rot90.jpg"} <= set(planned)
    assert not any("rot180" in p or "rot270" in p for p in images)
    assert result.counts["pruned"] == 4 + len(stale)  # the 180 and 270 copies of both items
    assert (result.counts["made"], result.counts["reused"]) == (0, len(planned)) and kept.stat().st_mtime_ns == before
    assert not (paths.augment / "paper-gone").exists()


def test_a_bad_items_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    """A train item's items.jsonl line that is no valid Item (its id readable) raises naming items.jsonl:line."""
    paths = setup_build(tmp_path, SPECS)
    lines = paths.items.read_text().splitlines(keepends=True)
    lines.insert(0, "\n")  # a blank line counts (iter_jsonl's numbering)
    lines[2] = lines[2].replace('"width":', '"width":"wide","_":')  # b-train-rare, line 3
    paths.items.write_text("".join(lines))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(paths.items))}:3: not a valid Item record: "):
        augment.run(paths, BuildConfig(out=tmp_path, workers=1), progress=False)


def test_a_stage_that_fails_before_its_work_leaves_no_kept_file_open(tmp_path: Path) -> None:
    """The kept plans' files (the last build's, read; this build's temporary one) are opened inside the stage's
    with: a failure before any work (here the images' folder cannot be made: its path is a file) closes both and
    removes the temporary file."""
    paths = setup_build(tmp_path, SPECS)
    config = BuildConfig(out=tmp_path, workers=1)
    augment.run(paths, config, progress=False)
    assert augment.kept_path(paths).is_file()  # read by the next run
    shutil.rmtree(paths.augment)
    paths.augment.write_text("not a folder\n")  # the manifest's and images' parent is a file: mkdir raises
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileExistsError) as failure:
        augment.run(paths, config, progress=False)
    # checked while the traceback (and the stage's frame) lives: what its with did not close stays open till then
    assert len(os.listdir("/proc/self/fd")) == fds
    assert sorted(p.name for p in paths.stages.iterdir()) == ["augment", "augment_kept.tsv", "items.jsonl",
                                                              "panels", "splits.jsonl"]
    assert failure.value.filename == str(paths.augment)
