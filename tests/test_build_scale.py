"""The builder at scale: what the main process holds stays bounded, and the streamed outputs keep their bytes.

Counts, not times: records alive while a stage works (gc), jobs handed out ahead of their results, and the
exact layout of the files that are now written piece by piece (issue 24).
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_builders import augment, dataset_card, export
from dataset_builders import dedup as dedup_stage
from dataset_builders import label as label_stage
from dataset_builders import split as split_stage
from dataset_builders.config import BuildConfig
from dataset_builders.dedup import iter_groups, pairs_within
from dataset_builders.items import ItemTexts, load_panels
from dataset_builders.labelling.base import LabelTask
from dataset_builders.labelling.caption_rules import CaptionRulesLabeler
from dataset_builders.records import DuplicateGroup, Item
from dataset_builders.stage_cache import Entry
from dataset_builders.stage_paths import StagePaths
from dataset_builders.validate import NotALineList, check_dataset, iter_line_list
from dataset_builders.workers import IN_FLIGHT_PER_WORKER, run_jobs
from fracto_core.answer_format import format_answer, instruction_prompt
from fracto_core.files import (
    PathSet,
    open_text_atomic,
    read_jsonl,
    remove_unlisted,
    write_json_atomic,
    write_json_list_atomic,
)


def _alive(cls: type) -> int:
    return sum(isinstance(o, cls) for o in gc.get_objects())


# --- streamed files keep the layout of the joined ones ------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 3])
def test_json_list_writer_writes_what_the_joined_text_was(tmp_path: Path, n: int) -> None:
    encoded = [json.dumps({"k": i, "s": "é\n"}, ensure_ascii=False) for i in range(n)]
    with open_text_atomic(tmp_path / "x.json") as fh:
        writer = export.JsonListWriter(fh)
        for e in encoded:
            writer.add(e)
        writer.close()
    text = (tmp_path / "x.json").read_text(encoding="utf-8")
    # the layout export wrote before it streamed: "[\n" + ",\n".join(samples) + "\n]\n", "[]\n" when empty
    assert text == ("[\n" + ",\n".join(encoded) + "\n]\n" if encoded else "[]\n")
    assert json.loads(text) == [{"k": i, "s": "é\n"} for i in range(n)]
    assert list(iter_line_list(tmp_path / "x.json")) == json.loads(text)


@pytest.mark.parametrize("values", [[], [{"a": 1}], [{"g": "x", "m": ["a", "b"], "p": ["é\n"]}, {"g": "y", "m": []}],
                                    [1, [2, [3, {}]], "s"]])
def test_json_list_streamed_has_the_text_of_the_whole_list(tmp_path: Path, values: list) -> None:
    """dedup.json is written a group at a time, with the bytes json.dumps(indent=1) gave for the whole list."""
    assert write_json_list_atomic(tmp_path / "s.json", iter(values)) == len(values)
    write_json_atomic(tmp_path / "w.json", values)
    assert (tmp_path / "s.json").read_bytes() == (tmp_path / "w.json").read_bytes()


def test_open_text_atomic_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("old\n")
    with pytest.raises(RuntimeError):
        with open_text_atomic(tmp_path / "x.json") as fh:
            fh.write("half")
            raise RuntimeError("killed")
    assert (tmp_path / "x.json").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_a_jsonl_file_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    """It was a bare UnicodeDecodeError ("'utf-8' codec can't decode byte 0xff"): no file, no line."""
    bad = tmp_path / "splits.jsonl"
    bad.write_bytes(b'{"item_id": "a"}\n\xff\xfe\n' + b'{"item_id": "b"}\n' * 5000)  # past one read-ahead
    with pytest.raises(ValueError, match=r"splits\.jsonl:2: not UTF-8 text"):
        read_jsonl(bad, Item)


@pytest.mark.parametrize("text", ['[\n {\n  "a": 1\n },\n {\n  "a": 2\n }\n]\n',  # indented
                                  '[{"a": 1}, {"a": 2}]',  # one line
                                  '[\n{"a": 1},\n{"a": 2},\n]\n',  # trailing comma: not JSON
                                  '[\n{"a": 1}\n{"a": 2}\n]\n',  # comma missing: not JSON
                                  '[\n{"a": 1},\n{"a": 2}\n',  # not closed
                                  '{"a": 1}'])
def test_iter_line_list_refuses_any_other_layout(tmp_path: Path, text: str) -> None:
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(NotALineList):
        list(iter_line_list(tmp_path / "x.json"))


def _tiny_dataset(folder: Path, indent: int | None) -> None:
    (folder / "images").mkdir(parents=True)
    samples = []
    for i in range(3):
        Image.new("L", (64 + i, 48), 128).save(folder / "images" / f"{i}.jpg")
        answer = format_answer(["equiaxed dimples"]) if i != 1 else "no features here"  # one bad answer
        samples.append({"messages": [{"role": "user", "content": "<image>" + instruction_prompt()},
                                     {"role": "assistant", "content": answer}], "images": [f"images/{i}.jpg"]})
    samples.append({"messages": [{"role": "user", "content": "no tag"}], "images": ["images/9.jpg"]})
    if indent is None:
        text = "[\n" + ",\n".join(json.dumps(s) for s in samples) + "\n]\n"
    else:
        text = json.dumps(samples, indent=indent)
    (folder / "d.json").write_text(text)
    (folder / "dataset_info.json").write_text(json.dumps({"d": export.dataset_info_entry("d.json")}))


def test_validation_streams_export_files_and_reads_other_layouts_whole_with_the_same_result(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path / "lines", indent=None)
    _tiny_dataset(tmp_path / "indented", indent=2)
    by_line = check_dataset(tmp_path / "lines", BuildConfig())
    whole = check_dataset(tmp_path / "indented", BuildConfig())
    assert by_line.samples == whole.samples == 4
    assert [(p.file, p.reason) for p in by_line.problems] == [(p.file, p.reason) for p in whole.problems]
    assert {p.reason for p in by_line.problems} == {"bad_answer", "role_order", "image_tag_mismatch", "bad_image"}
    assert by_line.max_image_tokens == whole.max_image_tokens > 0


def test_sample_encoder_writes_what_encoding_each_record_writes() -> None:
    items = [export.SampleItem(f"p{i}-f1-a", "stages/panels/x.png", feats, "caption_rules", ["p"], "{}")
             for i, feats in enumerate([["equiaxed dimples"], [], ["fatigue striations", "beach marks"],
                                        ["equiaxed dimples"]])]
    samples = [export.new_sample(it.item_id + suffix, split, it, src)
               for it in items for suffix, split, src in [("", "test", "stages/panels/x.PNG"),
                                                           ("-rot90", "train", "stages/augment/p/x.jpg"),
                                                           ("-é ü", "val", "stages/panels/no_suffix")]]
    encode = export.SampleEncoder()
    for sample in samples:
        assert encode(sample) == json.dumps(export.sharegpt_record(sample), ensure_ascii=False)
    assert len(encode.parts) == 3  # one encoding of the messages per label set


def test_validation_checks_a_repeated_clean_sample_once_and_reports_every_bad_one(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """The ablation variants repeat train's lines: a text already found clean is not checked again, a bad
    one is reported in every file that holds it, and the result equals checking each file alone."""
    import dataset_builders.validate as validate

    _tiny_dataset(tmp_path, indent=None)
    shutil.copy(tmp_path / "d.json", tmp_path / "e.json")  # a variant holding the same samples
    info = {"d": export.dataset_info_entry("d.json"), "e": export.dataset_info_entry("e.json")}
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    checked: list[str] = []
    real = validate.check_sample

    def counting(sample, where, *args, **kw):
        checked.append(where)
        return real(sample, where, *args, **kw)

    monkeypatch.setattr(validate, "check_sample", counting)
    both = check_dataset(tmp_path, BuildConfig())
    # samples 0 and 2 are clean (checked in d.json only); 1 (bad answer) and 3 (no tag, no image) in both files
    assert checked == ["d.json#0", "d.json#1", "d.json#2", "d.json#3", "e.json#1", "e.json#3"]
    assert both.samples == 8
    monkeypatch.undo()
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": info["d"]}))
    alone = check_dataset(tmp_path, BuildConfig())
    assert [(p.file, p.reason) for p in both.problems] == \
        [(p.file, p.reason) for p in alone.problems] + [(p.file.replace("d.json", "e.json"), p.reason)
                                                        for p in alone.problems]
    assert (both.max_image_tokens, both.max_sample_tokens) == (alone.max_image_tokens, alone.max_sample_tokens)


# --- bounded work in flight -----------------------------------------------------------------------

def _square(x: int) -> int:
    return x * x


def test_validation_reopens_only_images_whose_file_changed(built, tmp_path: Path, monkeypatch) -> None:
    """A second check with the first one's sizes opens no image; a replaced image (new inode) is opened."""
    import dataset_builders.validate as validate

    ds = tmp_path / "dataset"
    shutil.copytree(built[0] / "dataset", ds, copy_function=os.link)
    known = tmp_path / "sizes.tsv"
    first = check_dataset(ds, BuildConfig(), known_sizes=known)
    n_images = len(known.read_text().splitlines())
    assert n_images == len({p for p in (ds / "images").rglob("*") if p.is_file()}) > 10
    opened: list[str] = []
    real_open, real_header = validate.Image.open, validate.jpeg_header_size

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    def counting_header(path):  # a plain JPEG's size is read from its header, without Pillow
        size = real_header(path)
        if size is not None:
            opened.append(str(path))
        return size

    monkeypatch.setattr(validate.Image, "open", counting)
    monkeypatch.setattr(validate, "jpeg_header_size", counting_header)
    again = check_dataset(ds, BuildConfig(), known_sizes=known)
    assert opened == []
    assert (again.problems, again.samples, again.max_image_tokens) == (first.problems, first.samples,
                                                                      first.max_image_tokens)
    victim = sorted((ds / "images" / "train").iterdir())[0]
    tmp = victim.with_name("new.jpg")
    Image.new("RGB", (2000, 2000), "white").save(tmp)
    tmp.replace(victim)  # a new file under the same name
    third = check_dataset(ds, BuildConfig(), known_sizes=known)
    assert opened == [str(victim)]
    assert third.max_image_tokens > first.max_image_tokens  # its new size was read, not the stored one
    assert check_dataset(ds, BuildConfig()).max_image_tokens == third.max_image_tokens


@pytest.mark.parametrize("workers,chunks_per_worker", [(1, None), (2, None), (2, 24)])
def test_run_jobs_pulls_only_a_window_of_jobs_ahead(workers: int, chunks_per_worker: int | None) -> None:
    n = 240
    pulled = 0

    def jobs():
        nonlocal pulled
        for j in range(n):
            pulled += 1
            yield j

    chunksize = max(1, n // (workers * chunks_per_worker)) if chunks_per_worker else 1
    # the chunks in flight plus the one whose results are being handed back
    bound = 1 if workers == 1 else (IN_FLIGHT_PER_WORKER * workers + 1) * chunksize
    ahead, results = [], []
    for result in run_jobs(_square, jobs(), workers, "test", progress=False, chunks_per_worker=chunks_per_worker,
                           total=n):
        results.append(result)
        ahead.append(pulled - len(results))
    assert results == [j * j for j in range(n)]  # every job, in job order
    assert max(ahead) <= bound < n  # Executor.map took all n up front


def test_augment_holds_a_bounded_number_of_items(built, tmp_path: Path, monkeypatch) -> None:
    """Items alive while augment works: the ones in flight, not every train item (the stage held them all)."""
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    shutil.rmtree(out / "stages" / "augment")
    paths = StagePaths(out)
    n_train = sum(json.loads(line)["split"] == "train" for line in paths.splits.read_text().splitlines())
    assert n_train >= 10
    seen: list[int] = []
    make = augment.make_item_images

    def counting(*args):
        seen.append(_alive(Item))
        return make(*args)

    monkeypatch.setattr(augment, "make_item_images", counting)
    result = augment.run(paths, BuildConfig(workers=1, seed=3), progress=False)
    assert len(seen) == result.counts["train_items"] == n_train
    assert max(seen) <= 3  # the item being augmented (+ one being read); was n_train
    assert augment.manifest_path(paths).read_bytes() == augment.manifest_path(StagePaths(built[0])).read_bytes()


def _label_counting_alive(monkeypatch, cls: type, paths: StagePaths) -> tuple[list[int], object]:
    """Run the label stage (caption rules, 1 worker), counting the objects of ``cls`` alive at each task."""
    seen: list[int] = []
    label_task = CaptionRulesLabeler.label_task

    def counting(self, task):
        seen.append(_alive(cls))
        return label_task(self, task)

    monkeypatch.setattr(CaptionRulesLabeler, "label_task", counting)
    return seen, label_stage.run(paths, BuildConfig(out=paths.out, workers=1, seed=3), progress=False)


def test_label_stage_streams_its_tasks_and_writes_the_same_bytes(built, tmp_path: Path, monkeypatch) -> None:
    """Tasks alive while the caption rules label: the one being labelled, not every dedup group's (the
    stage built them all, with their panels, before labelling); labels.jsonl keeps its bytes, and equals
    what the whole-list path (Labeler.label, as a model labeller gets it) gives."""
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    paths = StagePaths(out)
    (out / "stages" / "labels.jsonl").unlink()
    label_stage.cache_path(paths).unlink()  # every group labelled again (the cache is tested below)
    seen, result = _label_counting_alive(monkeypatch, LabelTask, paths)
    n_tasks = sum(v for k, v in result.counts.items() if k != "reused")
    assert result.counts["reused"] == 0
    assert len(seen) == n_tasks >= 10
    assert max(seen) <= 2  # the task being labelled (+ the next being made); was n_tasks
    assert paths.labels.read_bytes() == (built[0] / "stages" / "labels.jsonl").read_bytes()
    monkeypatch.undo()  # the pool's workers look label_task up by name
    problems: list = []
    tasks = list(label_stage.iter_tasks(paths, label_stage.load_kept(paths), label_stage.load_groups(paths), problems))
    whole = sorted(CaptionRulesLabeler(workers=2).label(tasks, progress=False).records, key=lambda r: r.item_id)
    assert "".join(r.model_dump_json() + "\n" for r in whole).encode() == paths.labels.read_bytes()
    assert problems == result.problems


def test_dedup_stage_writes_each_group_as_it_is_made(built, tmp_path: Path, monkeypatch) -> None:
    """Group models alive while dedup.json is written: the one being written, not every group (the stage made
    them all before writing: ~9 MiB at 2,000 papers); the file and the counts keep their values."""
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    paths = StagePaths(out)
    before = json.loads((built[0] / "stages" / "results" / "dedup.json").read_text())["counts"]
    seen: list[int] = []
    write = dedup_stage.write_json_list_atomic

    def counting(path, values):
        def watched():
            for value in values:
                seen.append(_alive(DuplicateGroup))
                yield value
        return write(path, watched())

    monkeypatch.setattr(dedup_stage, "write_json_list_atomic", counting)
    result = dedup_stage.run(paths, BuildConfig(out=out, workers=1, seed=3), progress=False)
    assert len(seen) == result.counts["groups"] >= 10
    assert max(seen) <= 1  # was every group
    assert result.counts == before
    assert paths.dedup.read_bytes() == (built[0] / "stages" / "dedup.json").read_bytes()


def test_label_stage_holds_no_list_of_the_dedup_groups(built, tmp_path: Path, monkeypatch) -> None:
    """Group models alive while the caption rules label: the few being read, not every dedup group (the stage
    held them all, sorted, for its whole run: ~12 MiB at 2,000 papers); labels.jsonl keeps its bytes."""
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    paths = StagePaths(out)
    label_stage.cache_path(paths).unlink()
    n_groups = sum(1 for _ in iter_groups(paths))
    assert n_groups >= 10
    seen, _ = _label_counting_alive(monkeypatch, DuplicateGroup, paths)
    assert seen and max(seen) <= 2  # was n_groups
    assert paths.labels.read_bytes() == (built[0] / "stages" / "labels.jsonl").read_bytes()


def test_label_stage_sorts_dedup_groups_that_are_not_in_dedups_order(built, tmp_path: Path) -> None:
    """A dedup.json whose groups are not in increasing representative order (by hand, older code) is sorted in
    memory as before: the same labels and cache, not an error; the stream itself says why it stopped."""
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    paths = StagePaths(out)
    groups = [g.model_dump() for g in iter_groups(paths)]
    write_json_atomic(paths.dedup, groups[::-1])
    with pytest.raises(label_stage.GroupsOutOfOrder, match=str(paths.dedup)):
        list(label_stage.StreamedGroups(paths))
    for cached in (False, True):  # every group labelled again, then every label reused from the cache
        if not cached:
            label_stage.cache_path(paths).unlink()
        result = label_stage.run(paths, BuildConfig(out=out, workers=1, seed=3), progress=False)
        assert (result.counts["reused"] > 0) == cached
        assert paths.labels.read_bytes() == (built[0] / "stages" / "labels.jsonl").read_bytes()


@pytest.mark.parametrize("where", ["adjacent", "apart"])
def test_a_representative_heading_two_groups_is_named_with_the_file(built, tmp_path: Path, where: str) -> None:
    """Both of label's paths (streamed in dedup's order, sorted in memory otherwise) say which file and which
    representative, instead of a labeller-stream or cache error about an item."""
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    paths = StagePaths(out)
    groups = [g.model_dump() for g in iter_groups(paths)]
    write_json_atomic(paths.dedup, groups + groups[-1:] if where == "adjacent" else groups[-1:] + groups)
    with pytest.raises(ValueError, match=f"{paths.dedup}: representative .* heads two groups"):
        label_stage.run(paths, BuildConfig(out=out, workers=1, seed=3), progress=False)
    assert paths.labels.read_bytes() == (built[0] / "stages" / "labels.jsonl").read_bytes()  # left as it was


def test_a_dedup_file_replaced_between_labels_two_passes_is_refused(built, tmp_path: Path, monkeypatch) -> None:
    """The streamed path reads dedup.json twice: a file another writer replaced in between is not mixed (a
    changed group's stale label was copied from the cache)."""
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    paths = StagePaths(out)
    text = paths.dedup.read_text()
    group_keys = label_stage._group_keys

    def then_replaced(*args):
        found = group_keys(*args)
        paths.dedup.unlink()
        paths.dedup.write_text(text)  # the same text in a new file
        return found

    monkeypatch.setattr(label_stage, "_group_keys", then_replaced)
    with pytest.raises(ValueError, match=f"{paths.dedup}: changed while the label stage read it"):
        label_stage.run(paths, BuildConfig(out=out, workers=1, seed=3), progress=False)
    assert paths.labels.read_bytes() == (built[0] / "stages" / "labels.jsonl").read_bytes()


def test_filter_and_label_caches_kept_under_another_pydantic_are_not_reused(built, tmp_path: Path, monkeypatch) -> None:
    """Their cached lines are pydantic serialisations, as the kept items lines are: another pydantic makes them
    again (the same bytes here)."""
    import pydantic

    from dataset_builders import filter as filter_stage

    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    paths = StagePaths(out)
    config = BuildConfig(out=out, workers=1, seed=3)
    assert filter_stage.run(paths, config, progress=False).counts["papers_resumed"] > 0
    assert label_stage.run(paths, config, progress=False).counts["reused"] > 0
    monkeypatch.setattr(pydantic, "__version__", "0.0.other")
    assert filter_stage.run(paths, config, progress=False).counts["papers_resumed"] == 0
    assert label_stage.run(paths, config, progress=False).counts["reused"] == 0
    assert paths.filter.read_bytes() == (built[0] / "stages" / "filter.jsonl").read_bytes()
    assert paths.labels.read_bytes() == (built[0] / "stages" / "labels.jsonl").read_bytes()


def test_label_stream_out_of_order_is_refused() -> None:
    entries = [Entry(i, "key", "no_features", ["{}\n"]) for i in "bab"]
    with pytest.raises(ValueError, match="out of order: a after b"):
        list(label_stage.in_id_order(entries, Counter()))


def _copy_stages(built, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    shutil.copy(built[0] / "paper_splits.jsonl", out)  # the card's "updates" section reads the split pins
    return out


def _same_dataset(before: Path, after: Path) -> None:
    names = sorted(p.relative_to(before).as_posix() for p in before.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(after).as_posix() for p in after.rglob("*") if p.is_file())
    for name in names:  # the whole dataset, byte for byte (the card included: same stage files, same report)
        assert (after / name).read_bytes() == (before / name).read_bytes(), name


def test_export_streams_its_samples_and_rewrites_the_same_bytes(built, tmp_path: Path, monkeypatch) -> None:
    out = _copy_stages(built, tmp_path)
    alive_at_card: list[int] = []
    write_card = dataset_card.write_card

    def counting(*args, **kwargs):
        alive_at_card.append(_alive(export.Sample))
        return write_card(*args, **kwargs)

    monkeypatch.setattr(dataset_card, "write_card", counting)
    alive: list[tuple[int, int]] = []  # (Samples, Items) alive at each sample written
    meta_record = export.meta_record

    def counting_meta(*args, **kwargs):
        alive.append((_alive(export.Sample), _alive(Item)))
        return meta_record(*args, **kwargs)

    monkeypatch.setattr(export, "meta_record", counting_meta)
    export.run(StagePaths(out), BuildConfig(seed=3), progress=False)
    assert alive_at_card == [0]
    assert len(alive) == sum(json.loads((built[0] / "stages" / "results" / "export.json").read_text())["counts"][
        f"{s}_samples"] for s in ("train", "val", "test"))
    assert max(n for n, _ in alive) <= 2 and max(n for _, n in alive) <= 2  # one sample, one item (+ the iterator's)
    _same_dataset(built[0] / "dataset", out / "dataset")
    for name in (n for n in os.listdir(out / "dataset") if n.startswith("fracto_") and n.endswith(".json")):
        text = (out / "dataset" / name).read_text(encoding="utf-8")  # the joined layout
        values = json.loads(text)
        assert text == ("[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in values) + "\n]\n"
                        if values else "[]\n"), name


def _fields(sample: export.Sample) -> tuple:
    return (sample.sample_id, sample.split, sample.source, sample.augmentation, sample.image, sample.item)


def test_streamed_samples_are_the_collected_ones_in_order(built) -> None:
    paths = StagePaths(built[0])
    collected, problems = export.collect_samples(paths)
    streamed_problems: list = []
    streamed = list(export.stream_samples(paths, export.split_assignments(paths), streamed_problems))
    for split in ("train", "val", "test"):
        assert [_fields(s) for s in streamed if s.split == split] == [_fields(s) for s in collected[split]]
    assert streamed_problems == problems == []


def test_streamed_samples_report_what_collecting_reports(built, tmp_path: Path) -> None:
    out = _copy_stages(built, tmp_path)
    paths = StagePaths(out)
    manifest = augment.manifest_path(paths)
    lines = manifest.read_text().splitlines()
    test_id = next(json.loads(x)["item_id"] for x in paths.splits.read_text().splitlines()
                   if json.loads(x)["split"] == "test")
    stray = {"item_id": test_id + "-rot90", "original_id": test_id, "image": "stages/augment/x.jpg", "angle": 90.0,
             "kind": "rotation"}
    manifest.write_text("\n".join(sorted(lines + [json.dumps(stray)], key=lambda x: json.loads(x)["item_id"])) + "\n")
    with paths.splits.open("a") as fh:
        fh.write(json.dumps({"item_id": "zz-unknown", "split": "val", "group": "zz"}) + "\n")
    collected, problems = export.collect_samples(paths)
    streamed_problems: list = []
    streamed = list(export.stream_samples(paths, export.split_assignments(paths), streamed_problems))
    assert [p.reason for p in problems] == ["unknown_item", "augmented_not_train"]
    assert streamed_problems == problems
    for split in ("train", "val", "test"):
        assert [_fields(s) for s in streamed if s.split == split] == [_fields(s) for s in collected[split]]


@pytest.mark.parametrize("disorder", ["items", "manifest", "assigned_twice"])
def test_export_falls_back_to_collecting_when_the_stage_files_are_out_of_order(built, tmp_path: Path,
                                                                               disorder: str) -> None:
    out = _copy_stages(built, tmp_path)
    paths = StagePaths(out)
    if disorder == "assigned_twice":  # collect_samples keeps both samples (the validation then finds no problem)
        path = paths.splits
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines + lines[:1]) + "\n")
    else:
        path = paths.items if disorder == "items" else augment.manifest_path(paths)
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[1:] + lines[:1]) + "\n")
    with pytest.raises(export.NotStreamable):
        list(export.stream_samples(paths, export.split_assignments(paths), []))
    if disorder != "assigned_twice":
        export.run(paths, BuildConfig(seed=3), progress=False)
        _same_dataset(built[0] / "dataset", out / "dataset")


def test_path_set_answers_in_as_a_set_of_path_strings(tmp_path: Path) -> None:
    kept = PathSet()
    for i in range(0, 100, 2):
        kept.add(str(tmp_path / f"{i}.jpg"))
    kept.add(str(tmp_path / "0.jpg"))
    assert len(kept) == 50
    assert all((str(tmp_path / f"{i}.jpg") in kept) == (i % 2 == 0) for i in range(100))
    assert tmp_path / "2.jpg" in kept and tmp_path / "3.jpg" not in kept  # a Path asks as its str
    for i in range(4):
        (tmp_path / f"{i}.jpg").write_bytes(b"x")
    assert remove_unlisted(tmp_path, kept) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.jpg", "2.jpg"]


def test_split_without_a_held_out_pool_drops_provenance_and_writes_the_same_bytes(built, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(built[0] / "stages", out / "stages")
    shutil.copy(built[0] / "paper_splits.jsonl", out)
    paths = StagePaths(out)
    items = split_stage.load_items(paths, keep_provenance=False)
    assert items and all(it.provenance == {} for it in items)
    assert all(it.provenance for it in split_stage.load_items(paths, keep_provenance=True))
    split_stage.run(paths, BuildConfig(seed=3, min_split_papers=1), progress=False)
    for name in ("stages/splits.jsonl", "stages/splits_dropped.jsonl", "paper_splits.jsonl"):
        assert (out / name).read_bytes() == (built[0] / name).read_bytes(), name


def test_sample_item_gives_back_the_item_provenance(built) -> None:
    for line in StagePaths(built[0]).items.read_text().splitlines():
        item = Item.model_validate_json(line)
        light = export.SampleItem.of(item)
        assert light.provenance == item.provenance
        assert json.dumps(light.provenance, sort_keys=True) == json.dumps(item.provenance, sort_keys=True)


def test_item_texts_paper_by_paper_equal_those_of_all_panels_at_once(built) -> None:
    paths = StagePaths(built[0])
    items = [Item.model_validate_json(line) for line in paths.items.read_text().splitlines()]
    panels = load_panels(paths)
    members = {g.representative: g.members for g in iter_groups(paths)}
    texts = ItemTexts(paths, cached_papers=2)
    for item in items:  # the former item_texts: every panel of the corpus in one dict
        captions: list[str] = []
        excerpts: list[str] = []
        for pid in members.get(item.item_id, [item.item_id]):
            if pid in panels:
                captions += [panels[pid].caption] if panels[pid].caption not in captions else []
                excerpts += [e for e in panels[pid].excerpts if e not in excerpts]
        assert texts(item) == (captions, excerpts)
    assert any(texts(item)[1] for item in items)


# --- near-duplicate pairs -------------------------------------------------------------------------

def test_pairs_within_finds_every_close_pair_and_only_those() -> None:
    rng = random.Random(5)
    hashes = [rng.getrandbits(64) for _ in range(5000)]
    for _ in range(300):  # planted near-duplicates, 0-8 bits away
        h = rng.choice(hashes)
        for bit in rng.sample(range(64), rng.randint(0, 8)):
            h ^= 1 << bit
        hashes.insert(rng.randrange(len(hashes)), h)
    arr = np.array(hashes, dtype=np.uint64)
    expected = []
    for i in range(len(hashes)):  # brute force, one row at a time
        dist = np.bitwise_count(arr[i + 1:] ^ arr[i])
        expected += [(i, i + 1 + int(k)) for k in np.flatnonzero(dist <= 6)]
    found = pairs_within(arr, 6)
    assert found == expected
    assert len(found) >= 200


def test_remove_unlisted_takes_path_strings(tmp_path: Path) -> None:
    for name in ("a/x.jpg", "a/y.jpg", "b/z.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"1")
    assert remove_unlisted(tmp_path, {str(tmp_path / "a" / "x.jpg")}) == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "a/x.jpg"]


def test_validation_verdicts_skip_clean_lines_and_ignore_a_broken_cache(built, tmp_path: Path, monkeypatch) -> None:
    """A second check with the first one's verdicts parses no sample line and finds the same; a line whose
    image changed size, other settings, and a truncated or garbled verdicts file are checked in full."""
    import dataset_builders.validate as validate

    ds = tmp_path / "dataset"
    shutil.copytree(built[0] / "dataset", ds, copy_function=os.link)
    sizes, verdicts = tmp_path / "sizes.tsv", tmp_path / "verdicts.tsv"
    plain = check_dataset(ds, BuildConfig())
    first = check_dataset(ds, BuildConfig(), known_sizes=sizes, known_verdicts=verdicts)
    summary = (first.problems, first.samples, first.max_image_tokens, first.max_sample_tokens)
    assert summary == (plain.problems, plain.samples, plain.max_image_tokens, plain.max_sample_tokens)
    saved = verdicts.read_text()
    parsed: list[str] = []
    real_parse = validate.parse_line

    def counting(text, path):
        parsed.append(text)
        return real_parse(text, path)

    monkeypatch.setattr(validate, "parse_line", counting)
    again = check_dataset(ds, BuildConfig(), known_sizes=sizes, known_verdicts=verdicts)
    assert parsed == [] and (again.problems, again.samples, again.max_image_tokens, again.max_sample_tokens) == summary
    assert verdicts.read_text() == saved  # the same lines, the same file
    n_lines = len(saved.splitlines()) - 1
    for broken in (saved[:len(saved) // 2], saved.replace("\t", "\tx", 1), saved[:-1], "garbage\n" + saved):
        verdicts.write_text(broken)
        parsed.clear()
        check = check_dataset(ds, BuildConfig(), known_sizes=sizes, known_verdicts=verdicts)
        assert len(parsed) == n_lines and check.max_sample_tokens == first.max_sample_tokens
        assert verdicts.read_text() == saved  # rewritten whole
    parsed.clear()
    check_dataset(ds, BuildConfig(cutoff_len=BuildConfig().cutoff_len + 1), known_sizes=sizes, known_verdicts=verdicts)
    assert len(parsed) == n_lines  # other settings: another key
    check_dataset(ds, BuildConfig(), known_sizes=sizes, known_verdicts=verdicts)  # back to the default's verdicts
    victim = sorted((ds / "images" / "train").iterdir())[0]
    tmp = victim.with_name("new.jpg")
    Image.new("RGB", (2000, 2000), "white").save(tmp)
    tmp.replace(victim)  # a new file of another size under the same name
    parsed.clear()
    third = check_dataset(ds, BuildConfig(), known_sizes=sizes, known_verdicts=verdicts)
    assert parsed and all(victim.name in text for text in parsed)  # only the lines showing that image
    assert third.max_image_tokens > first.max_image_tokens
    assert check_dataset(ds, BuildConfig()).max_image_tokens == third.max_image_tokens


def test_a_verdict_whose_image_path_holds_a_unicode_line_break_is_read_not_a_crash(tmp_path: Path) -> None:
    """str.splitlines breaks at \\x85 and \\u2028 too: the file is split at its newlines only."""
    from dataset_builders.validate_verdicts import read_verdicts

    path = tmp_path / "export_verdicts.tsv"
    path.write_text("#k\n" + "ab" * 16 + "\t3\t9\timages/a\u2028b.jpg\t4\t5\n", encoding="utf-8")
    assert read_verdicts(path, "k") == {bytes.fromhex("ab" * 16): "3\t9\timages/a\u2028b.jpg\t4\t5"}


def test_an_image_size_line_with_a_non_ascii_digit_is_skipped_not_a_crash(tmp_path: Path) -> None:
    from dataset_builders.validate import read_checked

    path = tmp_path / "export_image_sizes.tsv"
    path.write_text("images/a.jpg\t4\t5\t6\t7\t8\nimages/b.jpg\t\u00b2\t5\t6\t7\t8\n", encoding="utf-8")
    assert list(read_checked(path)) == ["images/a.jpg"]
