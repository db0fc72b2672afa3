"""Stage 8: rotation augmentation of the train split (val and test stay untouched).

A fracture surface has no "up": a micrograph rotated by any angle shows the same features, so rotations
multiply the train set without changing its labels. Per train item:
- every angle in config.rotations (90/180/270): a lossless transpose of the pixels;
- config.arbitrary_rotations random angles, rotated and cropped to the largest axis-aligned rectangle
  that holds no empty (fill) corners;
- config.oversample_rare extra random-angle copies (kind "oversample") when the item shows a rare feature.
Random angles come from random.Random(f"{seed}:{item_id}"), so they do not depend on the worker or order.
Each original is decoded once and reused for all its rotations; outputs are JPEGs encoded as
dataset_builders/jpeg.py says (the source's own tables), written atomically; an output file that exists is
kept (resume after a kill), and files the run no longer plans are removed.

Usage:
    from dataset_builders import augment
    augment.run(StagePaths(out), BuildConfig())   # -> stages/augment/augmented.jsonl + <paper_id>/ images
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ConfigDict

from dataset_builders import jpeg
from dataset_builders.config import BuildConfig
from dataset_builders.kept_lines import KeptLines, key_of
from dataset_builders.records import (
    AugmentedImage,
    Item,
    Problem,
    SplitAssignment,
    StageResult,
)
from dataset_builders.stage_cache import StageKeys, library_versions
from dataset_builders.stage_paths import StagePaths
from dataset_builders.workers import run_jobs
from fracto_core.files import PathSet, iter_jsonl, jsonl_record, open_text_atomic, remove_unlisted, write_bytes_atomic
from fracto_core.vocabulary import rare_names

CROP_MARGIN_PX = 2  # stay clear of the border pixels that bicubic resampling blends with the fill
_TRANSPOSE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def manifest_path(paths: StagePaths) -> Path:
    return paths.augment / "augmented.jsonl"


# --- geometry ----------------------------------------------------------------------------------------

def largest_inscribed_rect(width: float, height: float, angle_deg: float) -> tuple[float, float]:
    """(w, h) of the largest axis-aligned rectangle inside a width x height rectangle rotated by angle.

    The rectangle is centred. Two regimes: when the short side is small against the rotated long side
    ("thin" case, or exactly 45 degrees) two corners of the inner rectangle touch the same long edge and
    its half-short-side x gives w = x/sin, h = x/cos (swapped when height is the long side); otherwise all
    four corners touch the rotated edges and solving the two edge equations gives
    w = (W cos - H sin) / cos 2a, h = (H cos - W sin) / cos 2a.
    """
    if width <= 0 or height <= 0:
        return 0.0, 0.0
    a = math.radians(angle_deg)
    sin_a, cos_a = abs(math.sin(a)), abs(math.cos(a))
    if sin_a < 1e-12 or cos_a < 1e-12:  # multiples of 90 degrees: the whole (possibly swapped) image
        return (width, height) if cos_a >= sin_a else (height, width)
    long_side, short_side = max(width, height), min(width, height)
    if short_side <= 2 * sin_a * cos_a * long_side or abs(sin_a - cos_a) < 1e-10:
        half = short_side / 2
        if width >= height:
            return half / sin_a, half / cos_a
        return half / cos_a, half / sin_a
    cos_2a = cos_a * cos_a - sin_a * sin_a
    return (width * cos_a - height * sin_a) / cos_2a, (height * cos_a - width * sin_a) / cos_2a


def _expanded_rotation(width: int, height: int, angle_deg: float) -> tuple[list[float], int, int]:
    """The inverse affine map (output pixel -> source pixel) of a counter-clockwise rotation about the
    image centre onto a canvas expanded to hold the whole rotated image, and that canvas' size.

    These are the numbers Image.rotate(expand=True) computes (same formulas, same rounding), so
    transform() with them gives the pixels rotate() gives (tests/test_build_speed.py checks it).
    """
    a = -math.radians(angle_deg % 360.0)
    m = [round(math.cos(a), 15), round(math.sin(a), 15), 0.0, round(-math.sin(a), 15), round(math.cos(a), 15), 0.0]

    def apply(x: float, y: float) -> tuple[float, float]:
        return m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]

    cx, cy = width / 2, height / 2
    m[2], m[5] = apply(-cx, -cy)
    m[2] += cx
    m[5] += cy
    corners = [apply(x, y) for x, y in ((0, 0), (width, 0), (width, height), (0, height))]
    canvas_w = math.ceil(max(x for x, _ in corners)) - math.floor(min(x for x, _ in corners))
    canvas_h = math.ceil(max(y for _, y in corners)) - math.floor(min(y for _, y in corners))
    m[2], m[5] = apply(-(canvas_w - width) / 2.0, -(canvas_h - height) / 2.0)
    return m, canvas_w, canvas_h


def rotate_and_crop(image: Image.Image, angle_deg: float, fill: int | tuple[int, ...] = 0) -> Image.Image:
    """Rotate counter-clockwise by angle (bicubic, canvas expanded) and crop the largest clean rectangle.

    Only the crop window is resampled (the affine map's origin moved to the window's corner), for about
    half the cost of rotate(expand=True) followed by crop(). The pixels are the same except where moving
    the origin changes the last bit of a source coordinate that falls exactly on a pixel centre (the
    rotation centre of some odd-sized images): that pixel may differ by one grey level.
    """
    w, h = largest_inscribed_rect(image.width, image.height, angle_deg)
    w = max(1, math.floor(w) - 2 * CROP_MARGIN_PX)
    h = max(1, math.floor(h) - 2 * CROP_MARGIN_PX)
    if angle_deg % 90.0 == 0:  # Image.rotate transposes these (no resampling)
        rotated = image.rotate(angle_deg, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
        left, top = (rotated.width - w) // 2, (rotated.height - h) // 2
        return rotated.crop((left, top, left + w, top + h))
    m, canvas_w, canvas_h = _expanded_rotation(image.width, image.height, angle_deg)
    left, top = (canvas_w - w) // 2, (canvas_h - h) // 2
    m[2], m[5] = m[0] * left + m[1] * top + m[2], m[3] * left + m[4] * top + m[5]
    return image.transform((w, h), Image.Transform.AFFINE, m, Image.Resampling.BICUBIC, fillcolor=fill)


def rotate_lossless(image: Image.Image, angle: int, done: dict[int, Image.Image] | None = None) -> Image.Image:
    """Counter-clockwise rotation by 90/180/270 degrees (pixel transpose, like np.rot90).

    done: rotations of the same image already made, by angle. 270 is then made as 90 turned by 180, which
    is the same permutation of the pixels at a third of the cost: Pillow's ROTATE_270 took 0.64-0.76 ms on
    a 589 x 464 grey panel, ROTATE_90 0.38-0.47 ms and ROTATE_180 0.17-0.27 ms (measured on the heavy corpus).
    """
    half_turn = (angle + 180) % 360
    if done and half_turn in done:
        return done[half_turn].transpose(Image.Transpose.ROTATE_180)
    return image.transpose(_TRANSPOSE[angle])


# --- planning ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedImage:
    record: AugmentedImage
    arbitrary: bool  # needs rotate_and_crop rather than a transpose


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _random_angle(rng: random.Random) -> float:
    """A random angle in [1, 359) degrees away from the lossless ones, rounded to 0.1 degree."""
    while True:
        angle = round(rng.uniform(1.0, 359.0), 1)
        if min(abs(angle - k) for k in (0, 90, 180, 270, 360)) >= 1.0:
            return angle


def plan_item(item: Item, config: BuildConfig, rare: set[str]) -> list[PlannedImage]:
    """The augmented images one train item gets (deterministic from seed and item id)."""
    planned: list[PlannedImage] = []

    def add(angle: float, kind: str, suffix: str, arbitrary: bool) -> None:
        item_id = f"{item.item_id}-rot{suffix}"
        # one folder per source paper: workers creating files in one folder queue on its lock
        image = f"stages/augment/{_safe(item.paper_ids[0] if item.paper_ids else 'unknown')}/{_safe(item_id)}.jpg"
        planned.append(PlannedImage(AugmentedImage(item_id=item_id, original_id=item.item_id, image=image,
                                                   angle=angle, kind=kind), arbitrary))

    for angle in sorted(set(config.rotations)):
        add(float(angle), "rotation", str(angle), False)
    rng = random.Random(f"{config.seed}:{item.item_id}")
    for _ in range(config.arbitrary_rotations):
        angle = _random_angle(rng)
        add(angle, "rotation", f"{angle:.1f}", True)
    if rare & set(item.features):
        for k in range(1, config.oversample_rare + 1):
            angle = _random_angle(rng)
            add(angle, "oversample", f"{angle:.1f}-os{k}", True)
    return planned


# --- work --------------------------------------------------------------------------------------------

def make_item_images(out: Path, item: Item, planned: list[PlannedImage]) -> tuple[int, list[Problem]]:
    """Write the missing images of one item; returns (images made, problems). Decodes the original once."""
    missing = [p for p in planned if not (out / p.record.image).exists()]
    if not missing:
        return 0, []
    try:
        original, tables = jpeg.decode(out / item.image, grey=True)
        turned: dict[int, Image.Image] = {}
        for p in missing:
            angle = p.record.angle
            if p.arbitrary:
                result, result_tables = rotate_and_crop(original, angle), tables
            else:
                result = turned[int(angle)] = rotate_lossless(original, int(angle), turned)
                result_tables = tables.transposed() if tables and int(angle) in (90, 270) else tables
            write_bytes_atomic(out / p.record.image, jpeg.encode(result, result_tables), durable=False)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return 0, [Problem(file=item.image, stage="augment", reason="unreadable_image", item_id=item.item_id,
                           detail=f"{type(exc).__name__}: {exc}", severity="failed")]
    return len(missing), []


def _work(args: tuple[str, Item, list[PlannedImage]]) -> tuple[int, list[Problem]]:
    out, item, planned = args
    return make_item_images(Path(out), item, planned)


class ItemId(BaseModel):
    """An items.jsonl line read for its id only (the item's other fields, its provenance most, not validated:
    the second pass reads the train items as Items)."""

    model_config = ConfigDict(extra="ignore")
    item_id: str


def train_items(paths: StagePaths, problems: list[Problem]) -> tuple[int, Iterator[tuple[str, int, str, Item | None]]]:
    """(how many, the train items in id order as (id, line number, items.jsonl line, Item or None when not
    parsed), read one at a time from items.jsonl); an assignment naming an item that is not in items.jsonl
    becomes a problem. Only ids are held, not the corpus' records. In id order, lines come unparsed (with their
    number, for jsonl_record's error); otherwise parsed, with line number 0 and no line."""
    assigned = [a.item_id for a in iter_jsonl(paths.splits, SplitAssignment) if a.split == "train"] \
        if paths.splits.exists() else []
    ids = [it.item_id for it in iter_jsonl(paths.items, ItemId)] if paths.items.exists() else []
    known = set(ids)
    for item_id in assigned:
        if item_id not in known:
            problems.append(Problem(file=str(paths.splits.name), stage="augment", reason="unknown_item",
                                    item_id=item_id, detail="split assignment names an item not in items.jsonl"))
    train = set(assigned) & known
    in_order = all(a < b for a, b in zip(ids, ids[1:]))  # items.run writes it sorted
    del ids, known

    def read() -> Iterator[tuple[str, int, str, Item | None]]:
        if not in_order:
            chosen = (it for it in iter_jsonl(paths.items, Item) if it.item_id in train)
            yield from ((it.item_id, 0, "", it) for it in sorted(chosen, key=lambda it: it.item_id))
            return
        with open(paths.items, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip() and (item_id := ItemId.model_validate_json(line).item_id) in train:
                    yield item_id, n, line, None

    return len(train), read()


def kept_path(paths: StagePaths) -> Path:
    """Each train item's manifest lines, kept by the items.jsonl line they were planned from (kept_lines)."""
    return paths.stages / "augment_kept.tsv"


def kept_file_key(config: BuildConfig, rare: set[str]) -> str:
    settings = {"rotations": sorted(set(config.rotations)), "arbitrary_rotations": config.arbitrary_rotations,
                "oversample_rare": config.oversample_rare, "seed": config.seed, "rare": sorted(rare),
                "format": "augment-kept-1"}
    # a kept plan holds pydantic's serialisation of each AugmentedImage: its version is part of the key
    return StageKeys(["dataset_builders.augment"], settings | library_versions("pydantic")).base


def _plain_id(item_id: str) -> bool:
    """An id JSON writes as it is, every character after the quote that ends it: the manifest lines
    ('{"item_id":"<id>",...') of such ids sort as (id, line) do, so no (id, line) pair need be held."""
    return not item_id or (min(item_id) > '"' and "\\" not in item_id)


def _line_key(line: str) -> tuple[str, str]:
    return json.loads(line)["item_id"], line


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Augment the train items; write stages/augment/augmented.jsonl (sorted by augmented item id).

    Memory: one item per worker plus the few chunks in flight (workers.run_jobs); the main process keeps
    only each planned image's manifest line and path. An item whose items.jsonl line is the one an earlier
    build planned from (stages/augment_kept.tsv) takes the manifest lines planned then (no Item parsed).
    """
    problems: list[Problem] = []
    n_train, train = train_items(paths, problems)
    rare = set(rare_names())
    in_flight: deque[tuple[str, str, list[PlannedImage]]] = deque()  # (item id, key, plans) of the jobs out
    out = str(paths.out)
    kept: KeptLines  # opened in the with below, so that nothing failing before it leaves its files open
    # an item's plans are kept (KeptLines.record) as it finishes, if in id order: an item found done finishes
    # before the jobs in flight, so in an update the new items' plans are kept by the next build (planned
    # once more then, from their line: their images exist), and nothing waits here

    def jobs() -> Iterator[tuple[str, Item, list[PlannedImage]]]:
        for item_id, line_no, line, it in train:
            key = key_of(line) if line else ""  # "": not in order, nothing kept
            old = kept.take(item_id, key) if key else None
            if old is not None:
                records = list(zip(old[::4], old[1::4], old[2::4], old[3::4]))  # as _records gives them
                if all(os.path.exists(f"{out}/{r[2]}") for r in records):  # = os.path.join's text
                    finished(item_id, key, records, [])
                    continue
            it = it or jsonl_record(paths.items, line_no, line, Item)  # a bad one raises naming items.jsonl:line_no
            planned = plan_item(it, config, rare)
            # make_item_images' own test, made here: an update finds ~95 % of the items done, and sending each
            # to a worker (the item pickled with its provenance, a result back) cost more than the stats
            if all(os.path.exists(f"{out}/{p.record.image}") for p in planned):
                finished(item_id, key, _records(planned), [])  # now: held until the next job's result
                continue  # held every train item's plans (+60 MiB at 14,000 items)
            in_flight.append((item_id, key, planned))
            yield out, it, planned

    paths.augment.mkdir(parents=True, exist_ok=True)
    made = n_failed = 0
    lines: list[str] = []  # the manifest lines of the items that did not fail
    plain = True  # every line sorts where its id sorts (_plain_id)
    kinds: Counter[str] = Counter()
    planned_files = PathSet()  # 8 bytes a path (a str in a set: ~200)
    planned_files.add(str(manifest_path(paths)))
    # small chunks: items differ in size, so balance the tail; results come in job order

    def finished(item_id: str, key: str, records: list[tuple[str, str, str, str]], probs: list[Problem]) -> None:
        """records: (manifest line, augmented id, image, kind) of each planned image."""
        nonlocal plain
        for _, _, image, _ in records:
            planned_files.add(f"{out}/{image}")  # = str(paths.abs(...)): out has no trailing slash
        if key and not probs:  # a failed item is not kept
            kept.record(item_id, key, [field for record in records for field in record])
        if not probs:
            lines.extend(r[0] for r in records)
            plain = plain and all(_plain_id(r[1]) for r in records)
            kinds.update(r[3] for r in records)

    with ExitStack() as stack:
        kept = KeptLines.open(kept_path(paths), kept_file_key(config, rare), stack)
        for n, probs in run_jobs(_work, jobs(), config.workers, "augment", "item", progress,
                                 chunks_per_worker=24, total=n_train):
            made += n
            problems += probs
            n_failed += bool(probs)
            item_id, key, planned = in_flight.popleft()
            finished(item_id, key, _records(planned), probs)
    lines.sort(key=None if plain else _line_key)
    with open_text_atomic(manifest_path(paths)) as fh:
        fh.writelines(line + "\n" for line in lines)
    # what this run no longer plans: fewer rotations, an older layout, a killed run's temporary files
    pruned = remove_unlisted(paths.augment, planned_files)
    return StageResult(stage="augment", problems=problems, counts={
        "train_items": n_train, "rotation": kinds["rotation"], "oversample": kinds["oversample"],
        "made": made, "reused": len(lines) - made, "failed": n_failed, "pruned": pruned})


def _records(planned: list[PlannedImage]) -> list[tuple[str, str, str, str]]:
    """(manifest line, augmented id, image, kind) of each plan."""
    return [(p.record.model_dump_json(), p.record.item_id, p.record.image, p.record.kind) for p in planned]
