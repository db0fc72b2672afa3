"""The export's samples: an original item or an augmented copy of one, in sample id order, streamed.

`stream_samples` merges items.jsonl (written in item id order) with the augment manifest (written sorted by
augmented id) into every split's samples in sample id order, holding one item at a time: an augmented
copy's id starts with its original's ("<item id>-rot90"), and strings sharing a prefix sort next to each
other, so an original is needed only until the merge passes the last id it prefixes. At 2,000 papers
(47,600 samples of 14,000 items) the list of every sample with its item held ~30 MiB (issue 24).
Inputs that do not follow that order (a hand-edited stage file, duplicate ids, a copy whose id does not
start with its original's) raise NotStreamable: export then falls back to `collect_samples`, which holds
every sample and sorts, as before -- the same samples in the same order, so the same dataset files.

Usage:
    split_of = split_assignments(paths)
    for sample in stream_samples(paths, split_of, problems): ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from dataset_builders.augment import manifest_path
from dataset_builders.records import AugmentedImage, Item, Problem, SplitAssignment
from dataset_builders.stage_paths import StagePaths
from fracto_core.files import iter_jsonl, read_jsonl

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class SampleItem:
    """What a sample needs of its item, with the provenance kept as its JSON text: an Item's provenance dict
    is most of its ~2.2 KB as Python objects (31 MiB for 14,000 items), the text a fifth of that. The meta
    line parses it back (the same values: JSON numbers, strings, lists and null survive the round trip)."""

    item_id: str
    image: str  # the item's stage image (relative to the output folder)
    features: list[str]
    label_origin: str
    paper_ids: list[str]
    provenance_json: str

    @classmethod
    def of(cls, item: Item) -> SampleItem:
        return cls(item.item_id, item.image, item.features, item.label_origin, item.paper_ids,
                   json.dumps(item.provenance, ensure_ascii=False))

    @property
    def provenance(self) -> dict:
        return json.loads(self.provenance_json)


@dataclass(frozen=True, slots=True)
class Sample:
    """One training/eval example: an original item or an augmented copy of one."""

    sample_id: str
    split: str
    item: Item | SampleItem  # the original item (labels and provenance)
    source: str  # image path relative to the output folder
    augmentation: tuple[str, float] | None = None  # (kind, angle) of an augmented copy

    @property
    def image(self) -> str:
        """The image path inside the dataset folder (made when asked: a string per sample less to hold)."""
        suffix = _suffix(self.source)
        return f"images/{self.split}/{_UNSAFE.sub('_', self.sample_id)}{suffix}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _suffix(source: str) -> str:
    """PurePosixPath(source).suffix.lower() or ".jpg", without making a path (asked 3 times per sample)."""
    name = source.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ".jpg"


_AUGMENTATIONS: dict[tuple[str, float], tuple[str, float]] = {}  # one tuple per (kind, angle), shared


def new_sample(sample_id: str, split: str, item: Item | SampleItem, source: str,
               aug: AugmentedImage | None = None) -> Sample:
    if aug is None:
        return Sample(sample_id, split, item, source)
    key = (aug.kind, aug.angle)
    return Sample(sample_id, split, item, source, _AUGMENTATIONS.setdefault(key, key))


def collect_samples(paths: StagePaths) -> tuple[dict[str, list[Sample]], list[Problem]]:
    """Samples per split, sorted by sample id (train includes the augmented images), all held at once."""
    items = {it.item_id: SampleItem.of(it) for it in (iter_jsonl(paths.items, Item) if paths.items.exists() else ())}
    assignments = read_jsonl(paths.splits, SplitAssignment) if paths.splits.exists() else []
    augmented = iter_jsonl(manifest_path(paths), AugmentedImage) if manifest_path(paths).exists() else iter(())
    problems: list[Problem] = []
    samples: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    split_of: dict[str, str] = {}
    for a in assignments:
        if a.item_id not in items:
            problems.append(_unknown_item(paths, a.item_id))
            continue
        split_of[a.item_id] = a.split
        samples[a.split].append(new_sample(a.item_id, a.split, items[a.item_id], items[a.item_id].image))
    for aug in augmented:
        if split_of.get(aug.original_id) != "train":
            problems.append(_not_train(aug))
            continue
        samples["train"].append(new_sample(aug.item_id, "train", items[aug.original_id], aug.image, aug))
    for split in SPLITS:
        samples[split].sort(key=lambda s: s.sample_id)
    return samples, problems


def _unknown_item(paths: StagePaths, item_id: str) -> Problem:
    return Problem(file=paths.splits.name, stage="export", reason="unknown_item", item_id=item_id,
                   detail="split assignment names an item not in items.jsonl")


def _not_train(aug: AugmentedImage) -> Problem:
    return Problem(file=aug.image, stage="export", reason="augmented_not_train",
                   item_id=aug.item_id, detail=f"original {aug.original_id} is not a train item")


class NotStreamable(ValueError):
    """The stage files are not in the order stream_samples relies on (the caller collects them instead)."""


def split_assignments(paths: StagePaths) -> dict[str, str]:
    """{item id: split} in the file's order (~14,000 short entries, not the samples); NotStreamable when an
    item is assigned twice (collect_samples then keeps both assignments' samples, as before)."""
    split_of: dict[str, str] = {}
    names = {s: s for s in SPLITS}  # one string per split, not one per line
    for a in (iter_jsonl(paths.splits, SplitAssignment) if paths.splits.exists() else ()):
        if a.item_id in split_of:
            raise NotStreamable(f"{a.item_id} is assigned twice")
        split_of[a.item_id] = names[a.split]
    return split_of


def stream_samples(paths: StagePaths, split_of: dict[str, str], problems: list[Problem]) -> Iterator[Sample]:
    """Every split's samples, merged in sample id order (each split's are then in its own order, as
    collect_samples sorts them), holding one item (and the few whose ids prefix it). Appends to problems
    what collect_samples reports, in its order: unknown items (after the last sample), then augmented
    copies of no train item (as met, in manifest order). Raises NotStreamable (see the module's doc)."""
    items = _sorted(iter_jsonl(paths.items, Item) if paths.items.exists() else iter(()))
    copies = _sorted(iter_jsonl(manifest_path(paths), AugmentedImage) if manifest_path(paths).exists() else iter(()))
    n_seen = 0  # assigned items met in items.jsonl (an assignment without one is reported)
    pending: list[SampleItem] = []  # the originals whose ids prefix the merge's position, shortest first
    not_train: list[Problem] = []
    item, copy = next(items, None), next(copies, None)
    while item is not None or copy is not None:
        if copy is None or (item is not None and item.item_id < copy.item_id):
            split = split_of.get(item.item_id)
            if split is not None:
                n_seen += 1
                light = SampleItem.of(item)
                _advance(pending, item.item_id)
                pending.append(light)
                yield new_sample(item.item_id, split, light, light.image)
            item = next(items, None)
            continue
        if item is not None and item.item_id == copy.item_id:
            raise NotStreamable(f"{copy.item_id} is an item and an augmented copy")
        _advance(pending, copy.item_id)
        train = split_of.get(copy.original_id) == "train"
        if train and not copy.item_id.startswith(copy.original_id):  # its original may come later
            raise NotStreamable(f"{copy.item_id}: original {copy.original_id} is not a prefix")
        # a prefix sorts first: an original met is pending still, one not met is not in items.jsonl
        original = next((p for p in pending if p.item_id == copy.original_id), None) if train else None
        if original is None:
            not_train.append(_not_train(copy))  # as collect_samples: its original is no train item
        else:
            yield new_sample(copy.item_id, "train", original, copy.image, copy)
        copy = next(copies, None)
    if n_seen < len(split_of):  # assignments of items not in items.jsonl (a second read: only then)
        known = {json.loads(line)["item_id"] for line in paths.items.open(encoding="utf-8") if line.strip()} \
            if paths.items.exists() else set()
        problems += [_unknown_item(paths, i) for i in split_of if i not in known]
    problems += not_train


def _advance(pending: list[SampleItem], sample_id: str) -> None:
    """Drop the originals whose ids do not prefix sample_id: no later id (they come sorted) starts with them."""
    while pending and not sample_id.startswith(pending[-1].item_id):
        pending.pop()


def _sorted(records: Iterator) -> Iterator:
    """The records, checked to come in strictly increasing item id order (NotStreamable otherwise)."""
    last = None
    for r in records:
        if last is not None and r.item_id <= last:
            raise NotStreamable(f"{r.item_id} after {last}")
        last = r.item_id
        yield r
