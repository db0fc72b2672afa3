"""Stage 9: export the LlamaFactory dataset (ShareGPT format) with dataset_info.json and a dataset card.

dataset/ (= paths.dataset) is a LlamaFactory `dataset_dir`:
    <name>_train.json, <name>_val.json, <name>_test.json     JSON lists of samples
    <name>_train_no_manual.json, <name>_train_no_rotation.json  ablation variants (config.variants)
    <name>_<split>_meta.jsonl                                 item id, provenance, features per sample; the
                                                              caption, citing excerpts, and the technique and
                                                              material the caption names (eval's benchmark
                                                              columns; null where it names none or several)
    dataset_info.json                                         one entry per JSON file
Each <name>_*.json is a JSON list written one sample per line ("[", then "<sample>," lines, then "]"): any
JSON reader takes it, and LlamaFactory (datasets' json builder) parses it as it did the indented list.
    images/<split>/<sample id>.<ext>                          hard links to the stage images
    dataset_card.md, dataset_card.json
A sample is {"messages": [{"role": "user", "content": "<image>" + prompt}, {"role": "assistant",
"content": answer}], "images": ["images/train/x.jpg"]}; prompt and answer come from answer_format, the
one source shared with evaluation. Train = original train items + their augmentations; val/test hold
originals only, so the test split doubles as a benchmark (with its meta file).

The export validates itself (dataset_builders.validate) and raises DatasetValidationError listing every
problem rather than leave a dataset LlamaFactory would silently mangle.

Usage:
    from dataset_builders import export
    export.run(StagePaths(out), BuildConfig())
    # then: llamafactory-cli train ... dataset_dir: <out>/dataset, dataset: fracto_train
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TextIO

from tqdm import tqdm

from dataset_builders import dataset_card
from fracto_core.answer_format import format_answer, instruction_prompt
from dataset_builders.augment import manifest_path
from dataset_builders.config import BuildConfig
from dataset_builders.items import ItemTexts
from dataset_builders.labelling.classes import caption_classes
from dataset_builders.records import (
    AugmentedImage,
    Item,
    Problem,
    SplitAssignment,
    StageResult,
)
from dataset_builders.stage_paths import StagePaths
from dataset_builders.stages import collect_report
from fracto_core.files import iter_jsonl, open_text_atomic, read_jsonl, remove_unlisted, write_json_atomic
from dataset_builders.validate import DatasetValidationError, check_dataset

SPLITS = ("train", "val", "test")
IMAGE_TAG = "<image>"


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


def is_manual(item: Item | SampleItem) -> bool:
    """Manual rare-feature items (left out of the no_manual ablation)."""
    return item.label_origin == "manual" or any(p.startswith("manual:") for p in item.paper_ids)


def sharegpt_record(sample: Sample) -> dict:
    """The ShareGPT sample LlamaFactory reads (tags as declared in dataset_info.json)."""
    return {
        "messages": [
            {"role": "user", "content": IMAGE_TAG + instruction_prompt()},
            {"role": "assistant", "content": format_answer(sample.item.features)},
        ],
        "images": [sample.image],
    }


def meta_record(sample: Sample, texts: tuple[list[str], list[str]] = ([], [])) -> dict:
    """What eval needs to use a split as a benchmark: ids, labels, provenance, augmentation, and the item's
    (captions, excerpts) from items.item_texts -- the first caption, the excerpts, and the technique and
    material the captions name (labelling.classes). No mechanism: the only builder source would be the
    vocabulary's mechanism hints, i.e. the rules reasoner's own answer, which would score itself perfect."""
    aug = sample.augmentation
    captions, excerpts = texts
    technique, material = caption_classes(" ".join(captions))
    return {
        "caption": captions[0] if captions else "",
        "excerpts": list(excerpts),
        "technique": technique,
        "material": material,
        "sample_id": sample.sample_id,
        "item_id": sample.item.item_id,
        "image": sample.image,
        "features": sample.item.features,
        "label_origin": sample.item.label_origin,
        "paper_ids": sample.item.paper_ids,
        "provenance": sample.item.provenance,
        "augmentation": None if aug is None else {"kind": aug[0], "angle": aug[1]},
    }


_SAMPLE_ENCODER = json.JSONEncoder(ensure_ascii=False)  # no indent: the C encoder (indent=1 ran the Python one)


class SampleEncoder:
    """_SAMPLE_ENCODER.encode(sharegpt_record(sample)), the same text, with the messages encoded once per label
    set: a sample's line is the encoded record of its features with its image path put in (47,600 samples
    share a few hundred label sets)."""

    _HOLE = "\x00"  # a string no image path holds; JSON writes it as \u0000 (control characters are escaped)

    def __init__(self) -> None:
        self.parts: dict[tuple[str, ...], tuple[str, str]] = {}

    def __call__(self, sample: Sample) -> str:
        features = tuple(sample.item.features)
        parts = self.parts.get(features)
        if parts is None:
            record = sharegpt_record(sample)
            record["images"] = [self._HOLE]
            before, hole, after = _SAMPLE_ENCODER.encode(record).partition(_SAMPLE_ENCODER.encode(self._HOLE))
            if not hole or self._HOLE in before + after:
                raise AssertionError("the sample's messages hold the placeholder")  # cannot: the texts are ours
            parts = self.parts[features] = (before, after)
        return parts[0] + _SAMPLE_ENCODER.encode(sample.image) + parts[1]


class JsonListWriter:
    """A JSON list of already encoded values written one per line as they come ("[", then "<value>,"
    lines, then "]"; "[]" when empty): a line per sample keeps diffs and greps readable, and no file is
    ever joined in memory."""

    def __init__(self, fh: TextIO):
        self.fh, self.n = fh, 0

    def add(self, encoded: str) -> None:
        self.fh.write(("[\n" if self.n == 0 else ",\n") + encoded)
        self.n += 1

    def close(self) -> None:
        self.fh.write("\n]\n" if self.n else "[]\n")


def dataset_info_entry(file_name: str) -> dict:
    """dataset_info.json entry; keys as llamafactory.data.parser.DatasetAttr.join reads them."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }


def collect_samples(paths: StagePaths) -> tuple[dict[str, list[Sample]], list[Problem]]:
    """Samples per split, sorted by sample id (train includes the augmented images)."""
    items = {it.item_id: SampleItem.of(it) for it in (iter_jsonl(paths.items, Item) if paths.items.exists() else ())}
    assignments = read_jsonl(paths.splits, SplitAssignment) if paths.splits.exists() else []
    augmented = iter_jsonl(manifest_path(paths), AugmentedImage) if manifest_path(paths).exists() else iter(())
    problems: list[Problem] = []
    samples: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    split_of: dict[str, str] = {}
    for a in assignments:
        if a.item_id not in items:
            problems.append(Problem(file=paths.splits.name, stage="export", reason="unknown_item", item_id=a.item_id,
                                    detail="split assignment names an item not in items.jsonl"))
            continue
        split_of[a.item_id] = a.split
        samples[a.split].append(new_sample(a.item_id, a.split, items[a.item_id], items[a.item_id].image))
    for aug in augmented:
        if split_of.get(aug.original_id) != "train":
            problems.append(Problem(file=aug.image, stage="export", reason="augmented_not_train",
                                    item_id=aug.item_id, detail=f"original {aug.original_id} is not a train item"))
            continue
        samples["train"].append(new_sample(aug.item_id, "train", items[aug.original_id], aug.image, aug))
    for split in SPLITS:
        samples[split].sort(key=lambda s: s.sample_id)
    return samples, problems


def dataset_files(name: str, variants: bool) -> dict[str, tuple[str, Callable[[Sample], bool]]]:
    """{dataset name: (split, which of its samples)} for every JSON file to write."""
    files: dict[str, tuple[str, Callable[[Sample], bool]]] = {f"{name}_{split}": (split, _every) for split in SPLITS}
    if variants:
        files[f"{name}_train_no_manual"] = ("train", lambda s: not is_manual(s.item))
        files[f"{name}_train_no_rotation"] = ("train", lambda s: s.augmentation is None)
    return files


def _every(sample: Sample) -> bool:
    return True


def write_split_files(out: Path, split: str, samples: list[Sample], files: dict[str, Callable[[Sample], bool]]) -> None:
    """The JSON files of one split (the split and its variants) in one pass: each sample encoded once and
    streamed to the files that take it."""
    with ExitStack() as stack:
        writers = {name: (JsonListWriter(stack.enter_context(open_text_atomic(out / f"{name}.json"))), keep)
                   for name, keep in files.items()}
        encode = SampleEncoder()
        for s in samples:
            encoded = encode(s)
            for writer, keep in writers.values():
                if keep(s):
                    writer.add(encoded)
        for writer, _ in writers.values():
            writer.close()


def link_image(src: Path, dst: Path, made_dirs: set[Path] | None = None) -> None:
    """Put src at dst as a hard link (a copy across file systems); keeps dst when it is already that file.

    made_dirs: folders already created by earlier calls (saves a mkdir per image).
    A new dst is linked in place (link() is atomic: the name appears with the whole file or not at
    all); replacing an existing file goes through a temporary name. An existing dst that is another file
    (a stage re-run rewrote its images) is re-linked without reading either file: comparing contents
    kept an identical copy unlinked, so every later export read both files again (48 s for the heavy
    corpus's 4,760 images, 2.8 GB, once the page cache had dropped them). Only where linking fails (another
    file system) is an identical copy kept.
    """
    exists = dst.exists()
    if exists and os.path.samefile(src, dst):
        return
    if made_dirs is None or dst.parent not in made_dirs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if made_dirs is not None:
            made_dirs.add(dst.parent)
    if not exists:
        try:
            os.link(src, dst)
            return
        except FileExistsError:
            pass  # appeared meanwhile: replace it below
        except OSError:
            pass  # e.g. another file system: copy below
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        if exists and filecmp.cmp(src, dst, shallow=False):
            return
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, dst)


def link_images(paths: StagePaths, samples: dict[str, list[Sample]], problems: list[Problem],
                progress: bool = False) -> set[str]:
    """Link every sample's image into the dataset folder; returns the linked paths (str: half a Path's memory)."""
    linked: set[str] = set()
    made_dirs: set[Path] = set()
    all_samples = (s for split in SPLITS for s in samples[split])
    n_samples = sum(len(v) for v in samples.values())
    out, dataset = str(paths.out), str(paths.dataset)
    for s in tqdm(all_samples, total=n_samples, desc="export images", disable=not progress):
        # path strings and one stat of each file: an update finds ~95 % of the images already linked, and
        # the Paths, is_file(), exists() and samefile() (4 stats) per sample cost it ~1 s at 50,000 samples
        src, dst = os.path.join(out, s.source), os.path.join(dataset, s.image)
        try:
            st = os.stat(src)
        except OSError:
            st = None
        if st is None or not S_ISREG(st.st_mode):
            problems.append(Problem(file=s.source, stage="export", reason="missing_image", item_id=s.sample_id,
                                    detail="stage image not found", severity="failed"))
            continue
        try:
            linked_already = os.path.samestat(st, os.stat(dst))  # what samefile() compares
        except OSError:
            linked_already = False
        if not linked_already:
            link_image(Path(src), Path(dst), made_dirs)
        linked.add(dst)
    return linked


def write_meta(path: Path, samples: list[Sample], texts: ItemTexts) -> None:
    """<name>_<split>_meta.jsonl, a line per sample as it is made."""
    item_id, item_texts = None, ([], [])
    with open_text_atomic(path) as fh:
        for s in samples:
            if s.item.item_id != item_id:  # an item's rotated copies follow it (sample ids sort so)
                item_id, item_texts = s.item.item_id, texts(s.item)
            fh.write(json.dumps(meta_record(s, item_texts), ensure_ascii=False, sort_keys=True) + "\n")


def image_sizes_path(paths: StagePaths) -> Path:
    """The sizes the last validation found (validate.ImageCache): unchanged images are not opened again."""
    return paths.stages / "export_image_sizes.tsv"


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Write dataset/ and validate it; raises DatasetValidationError when the output is not trainable."""
    samples, problems = collect_samples(paths)
    out = paths.dataset
    out.mkdir(parents=True, exist_ok=True)

    linked = link_images(paths, samples, problems, progress)
    for split in SPLITS:
        remove_unlisted(out / "images" / split, linked)  # images of an earlier export no longer used

    files = dataset_files(config.dataset_name, config.variants)
    for split in SPLITS:
        write_split_files(out, split, samples[split], {n: keep for n, (sp, keep) in files.items() if sp == split})
    write_json_atomic(out / "dataset_info.json", {n: dataset_info_entry(f"{n}.json") for n in files})
    texts = ItemTexts(paths)  # paper by paper: meta lines are written in sample id order
    for split in SPLITS:
        write_meta(out / f"{config.dataset_name}_{split}_meta.jsonl", samples[split], texts)

    counts = {f"{split}_samples": len(samples[split]) for split in SPLITS}
    counts.update({"images": len(linked), "files": len(files)})
    del samples, linked, texts  # the card reads the stage files itself: hold neither while it runs
    check = check_dataset(out, config, known_sizes=image_sizes_path(paths))
    if check.problems:
        raise DatasetValidationError(check.problems)
    # the card lists this run's report: the earlier stages' results (written by this run) + ours
    dataset_card.write_card(paths, config, check, collect_report(paths, before="export") + problems)
    counts["max_image_tokens"] = check.max_image_tokens
    return StageResult(stage="export", counts=counts, problems=problems)
