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
import shutil
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TextIO

from tqdm import tqdm

from dataset_builders import dataset_card
from fracto_core.answer_format import format_answer, instruction_prompt
from dataset_builders.config import BuildConfig
from dataset_builders.export_meta_reuse import ItemKeys, MetaReuse, sample_key
from dataset_builders.items import ItemTexts
from dataset_builders.labelling.classes import caption_classes
from dataset_builders.export_samples import (  # noqa: F401 (Sample, SampleItem, new_sample: export's API)
    SPLITS,
    NotStreamable,
    Sample,
    SampleItem,
    collect_samples,
    new_sample,
    split_assignments,
    stream_samples,
)
from dataset_builders.records import Item, Problem, StageResult
from dataset_builders.stage_paths import StagePaths
from dataset_builders.stages import collect_report
from fracto_core.files import PathSet, open_text_atomic, remove_unlisted, write_json_atomic
from dataset_builders.validate import DatasetValidationError, check_dataset
from dataset_builders.workers import Aside
from dataset_builders.sharegpt import IMAGE_TAG, dataset_info_entry


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

    def __call__(self, sample: Sample, image: str | None = None) -> str:
        """image: sample.image when the caller made it already."""
        features = tuple(sample.item.features)
        parts = self.parts.get(features)
        if parts is None:
            record = sharegpt_record(sample)
            record["images"] = [self._HOLE]
            before, hole, after = _SAMPLE_ENCODER.encode(record).partition(_SAMPLE_ENCODER.encode(self._HOLE))
            if not hole or self._HOLE in before + after:
                raise AssertionError("the sample's messages hold the placeholder")  # cannot: the texts are ours
            parts = self.parts[features] = (before, after)
        return parts[0] + _SAMPLE_ENCODER.encode(sample.image if image is None else image) + parts[1]


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


def dataset_files(name: str, variants: bool) -> dict[str, tuple[str, Callable[[Sample], bool]]]:
    """{dataset name: (split, which of its samples)} for every JSON file to write."""
    files: dict[str, tuple[str, Callable[[Sample], bool]]] = {f"{name}_{split}": (split, _every) for split in SPLITS}
    if variants:
        files[f"{name}_train_no_manual"] = ("train", lambda s: not is_manual(s.item))
        files[f"{name}_train_no_rotation"] = ("train", lambda s: s.augmentation is None)
    return files


def _every(sample: Sample) -> bool:
    return True


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


def link_sample(sample: Sample, out: str, dataset: str, made_dirs: set[Path], image: str | None = None) -> str | None:
    """Link the sample's image into the dataset folder; returns its path there (None: no stage image).
    image: sample.image when the caller made it already."""
    # path strings and one stat of each file: an update finds ~95 % of the images already linked, and
    # the Paths, is_file(), exists() and samefile() (4 stats) per sample cost it ~1 s at 50,000 samples;
    # os.path.join's text joined by hand (what it gives for a folder without a trailing slash; 0.3 s)
    source = sample.source
    src = source if source.startswith("/") else f"{out}/{source}"
    dst = f"{dataset}/{sample.image if image is None else image}"  # Sample.image is relative
    try:
        st = os.stat(src)
    except OSError:
        st = None
    if st is None or not S_ISREG(st.st_mode):
        return None
    try:
        linked_already = os.path.samestat(st, os.stat(dst))  # what samefile() compares
    except FileNotFoundError:  # a new name (every sample of a fresh export): linked in place, as link_image would,
        try:                   # without its Paths and second stat (0.12 s of CPU for 4,760 samples, half the linking)
            os.link(src, dst)
            return dst
        except OSError:  # its folder is not made yet, or it appeared meanwhile, another file system ...
            linked_already = False  # ... link_image does what it did before
    except OSError:
        linked_already = False
    if not linked_already:
        link_image(Path(src), Path(dst), made_dirs)
    return dst


def _item_fields(item: Item | SampleItem) -> tuple:
    """What a meta line takes of its item (export_meta_reuse.sample_key)."""
    provenance = item.provenance_json if isinstance(item, SampleItem) else json.dumps(item.provenance, ensure_ascii=False)
    return item.item_id, item.image, item.features, item.label_origin, item.paper_ids, provenance


@dataclass
class Written:
    """What write_samples did: samples per split, the images linked, the samples without a stage image."""

    counts: dict[str, int]
    linked: PathSet
    missing: list[Problem]


def write_samples(paths: StagePaths, config: BuildConfig, samples: Iterable[Sample], progress: bool = False,
                  reuse: bool = True) -> Written:
    """Every dataset file of every split (the split, its variants, its meta lines) in one pass over the
    samples, each linked, encoded once and streamed to the files that take it; each split's samples must
    come in its sample id order (the files' order). Nothing is held per sample but its image's hash.
    reuse: copy the meta lines the last export made from the same inputs (export_meta_reuse; samples in
    sample id order over all splits, as stream_samples gives them)."""
    out, dataset = str(paths.out), str(paths.dataset)  # a Path's text: no trailing slash
    texts = ItemTexts(paths)  # paper by paper: the samples come in id order
    item_keys = ItemKeys(paths, texts.groups)
    files = dataset_files(config.dataset_name, config.variants)
    written = Written({split: 0 for split in SPLITS}, PathSet(), [])
    missing: dict[str, list[Problem]] = {split: [] for split in SPLITS}
    made_dirs: set[Path] = set()
    encode = SampleEncoder()
    item_id, item_texts, item_key = None, None, ""
    with ExitStack() as stack:
        old_meta = MetaReuse.open(paths, config, stack, enabled=reuse)  # before the new meta files replace them
        writers = {split: [(JsonListWriter(stack.enter_context(open_text_atomic(paths.dataset / f"{name}.json"))), keep)
                           for name, (of, keep) in files.items() if of == split] for split in SPLITS}
        metas = {split: stack.enter_context(open_text_atomic(
                     paths.dataset / f"{config.dataset_name}_{split}_meta.jsonl")) for split in SPLITS}
        for s in tqdm(samples, desc="export samples", disable=not progress):
            written.counts[s.split] += 1
            image = s.image  # made from the sample's id and source when asked: once here
            dst = link_sample(s, out, dataset, made_dirs, image)
            if dst is None:
                missing[s.split].append(Problem(file=s.source, stage="export", reason="missing_image",
                                                item_id=s.sample_id, detail="stage image not found", severity="failed"))
            else:
                written.linked.add(dst)
            encoded = encode(s, image)
            for writer, keep in writers[s.split]:
                if keep(s):
                    writer.add(encoded)
            if s.item.item_id != item_id:  # an item's rotated copies follow it (sample ids sort so)
                item_id, item_texts = s.item.item_id, None
                item_key = item_keys(_item_fields(s.item), s.item.item_id, s.item.paper_ids)
            key = sample_key(item_key, s.sample_id, s.split, s.source, s.augmentation)
            line = old_meta.take(s.sample_id, s.split, key)
            if line is None:
                if item_texts is None:
                    item_texts = texts(s.item)
                line = json.dumps(meta_record(s, item_texts), ensure_ascii=False, sort_keys=True) + "\n"
            metas[s.split].write(line)
            old_meta.record(s.sample_id, s.split, key, line)
        for split_writers in writers.values():
            for writer, _ in split_writers:
                writer.close()
    written.missing = [p for split in SPLITS for p in missing[split]]  # the order the former link pass had
    return written


def image_sizes_path(paths: StagePaths) -> Path:
    """The sizes the last validation found (validate.ImageCache): unchanged images are not opened again."""
    return paths.stages / "export_image_sizes.tsv"


def run(paths: StagePaths, config: BuildConfig, progress: bool = True) -> StageResult:
    """Write dataset/ and validate it; raises DatasetValidationError when the output is not trainable."""
    paths.dataset.mkdir(parents=True, exist_ok=True)
    # the card's data read from the stage files (~1 s at 2,000 papers) in a second process while this one writes
    # and checks the samples; only the check's maxima and this run's report are added to it here
    with Aside(dataset_card.card_base, paths, config, workers=config.workers) as card:
        return _run(paths, config, progress, card)


def _run(paths: StagePaths, config: BuildConfig, progress: bool, card: Aside[dataset_card.CardBase]) -> StageResult:
    problems: list[Problem] = []
    try:  # one item at a time (export_samples.stream_samples)
        written = write_samples(paths, config, stream_samples(paths, split_assignments(paths), problems), progress)
    except NotStreamable:  # stage files out of the order streaming relies on: every sample held, as before
        collected, problems = collect_samples(paths)
        written = write_samples(paths, config, (s for split in SPLITS for s in collected[split]), progress,
                                reuse=False)
        del collected
    problems += written.missing
    for split in SPLITS:
        remove_unlisted(paths.dataset / "images" / split, written.linked)  # images an earlier export used
    files = dataset_files(config.dataset_name, config.variants)
    write_json_atomic(paths.dataset / "dataset_info.json", {n: dataset_info_entry(f"{n}.json") for n in files})

    counts = {f"{split}_samples": n for split, n in written.counts.items()}
    counts.update({"images": len(written.linked), "files": len(files)})
    del written  # the card reads the stage files itself
    check = check_dataset(paths.dataset, config, known_sizes=image_sizes_path(paths),
                          known_verdicts=paths.stages / "export_verdicts.tsv")
    if check.problems:
        raise DatasetValidationError(check.problems)
    # the card lists this run's report: the earlier stages' results (written by this run) + ours
    dataset_card.write_card(paths, config, check, collect_report(paths, before="export") + problems, card.result())
    counts["max_image_tokens"] = check.max_image_tokens
    return StageResult(stage="export", counts=counts, problems=problems)
