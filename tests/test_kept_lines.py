"""Lines kept between builds (dataset_builders.kept_lines, issue 24): the items stage's items.jsonl lines and
augment's manifest lines are copied when their inputs are the same, and whatever changed or broke is made
again, so the stage files keep the bytes a build without the cache writes."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest

from dataset_builders import augment, export, items
from dataset_builders.build import build
from dataset_builders.config import BuildConfig
from dataset_builders.kept_lines import KeptLines
from dataset_builders.manual import EXPERT_LABELS_NAME
from dataset_builders.paper_splits import PINS_NAME
from dataset_builders.stage_paths import StagePaths
from support.build_outputs import all_outputs


def _write(path: Path, entries: list[tuple[str, str, list[str]]], file_key: str = "K") -> None:
    with ExitStack() as stack:
        kept = KeptLines.open(path, file_key, stack, reuse=False)
        for entry_id, key, lines in entries:
            kept.record(entry_id, key, lines)


def _take(path: Path, asked: list[tuple[str, str]], file_key: str = "K") -> list[list[str] | None]:
    with ExitStack() as stack:
        kept = KeptLines.open(path, file_key, stack, keep=False)
        return [kept.take(entry_id, key) for entry_id, key in asked]


ENTRIES = [("a", "k1", ['{"x":1}']), ("b", "k2", ['{"y":2}', '{"z":3}']), ("c", "k3", ['{"w":4}'])]


def test_lines_come_back_under_their_key_only(tmp_path: Path) -> None:
    f = tmp_path / "kept.tsv"
    _write(f, ENTRIES)
    assert _take(f, [("a", "k1"), ("b", "k2"), ("c", "k3")]) == [e[2] for e in ENTRIES]
    assert _take(f, [("a", "other"), ("c", "k3")]) == [None, ['{"w":4}']]  # b skipped: gone since
    assert _take(f, [("a0", "k1"), ("b", "k2")]) == [None, ['{"y":2}', '{"z":3}']]  # a new entry between
    assert _take(f, [("b", "k2"), ("a", "k1")]) == [['{"y":2}', '{"z":3}'], None]  # out of order: stop
    assert _take(f, [("a", "k1")], file_key="other code") == [None]


def test_entries_that_do_not_fit_the_layout_are_not_kept(tmp_path: Path) -> None:
    f = tmp_path / "kept.tsv"
    _write(f, [("a", "k", ["x\ty"]), ("b", "k", []), ("c\t", "k", ["z"]), ("d", "k", ["ok"]), ("c", "k", ["late"])])
    assert _take(f, [("a", "k"), ("b", "k"), ("d", "k")]) == [None, None, ["ok"]]


@pytest.mark.parametrize("breakage", ["cut", "garbled", "digest", "unsorted", "header", "missing", "binary"])
def test_a_broken_file_is_not_trusted(tmp_path: Path, breakage: str) -> None:
    f = tmp_path / "kept.tsv"
    _write(f, ENTRIES)
    lines = f.read_bytes().splitlines(keepends=True)
    if breakage == "cut":  # a half-written last line
        f.write_bytes(b"".join(lines[:-1]) + lines[-1][:-5])
    elif breakage == "garbled":
        f.write_bytes(b"".join(lines[:2]) + lines[2].replace(b'"y"', b'"Y"') + lines[3])
    elif breakage == "digest":
        f.write_bytes(b"".join(lines[:2]) + lines[2].replace(b"\tk2\t", b"\tk9\t") + lines[3])
    elif breakage == "unsorted":
        f.write_bytes(lines[0] + lines[2] + lines[1] + lines[3])
    elif breakage == "header":
        f.write_bytes(b"#K2\n" + b"".join(lines[1:]))
    elif breakage == "missing":
        f.unlink()
    else:
        f.write_bytes(lines[0] + b"\xff\xfe\n" + b"".join(lines[1:]))
    got = _take(f, [("a", "k1"), ("b", "k2"), ("c", "k3")])
    expected = {"cut": [ENTRIES[0][2], ENTRIES[1][2], None], "garbled": [ENTRIES[0][2], None, None],
                "digest": [ENTRIES[0][2], None, None], "unsorted": [None, ENTRIES[1][2], None],
                "header": [None] * 3, "missing": [None] * 3, "binary": [None] * 3}[breakage]
    assert got == expected


def _copy(built, dest: Path) -> tuple[StagePaths, BuildConfig]:
    """A hard-linked copy of the built output without its manual collection (lines are kept only then)."""
    shutil.copytree(built[0], dest, copy_function=os.link)
    config = BuildConfig.model_validate_json((dest / "build_config.json").read_text()).model_copy(update={"out": dest})
    paths = StagePaths(dest)
    (paths.manual / "items.json").unlink(missing_ok=True)
    return paths, config


def _counting(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _break(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.unlink()  # a hard link: write a new file
    lines = data.splitlines(keepends=True)
    if how == "cut":
        path.write_bytes(data[:len(data) // 2])
    elif how == "garbled":
        path.write_bytes(b"".join(lines[:2]) + lines[2].replace(b'"', b"'", 1) + b"".join(lines[3:]))
    elif how == "other_key":
        path.write_bytes(b"#0\n" + b"".join(lines[1:]))


@pytest.mark.parametrize("breakage", ["none", "cut", "garbled", "other_key", "missing"])
def test_items_copies_kept_lines_and_makes_the_rest(built, tmp_path: Path, monkeypatch, breakage: str) -> None:
    paths, config = _copy(built, tmp_path / "out")
    items.run(paths, config, progress=False)  # no kept lines yet: every line made
    made_first, kept_file = paths.items.read_bytes(), items.kept_path(paths)
    n = len(made_first.splitlines())
    assert n > 3 and len(kept_file.read_text().splitlines()) == n + 1
    if breakage == "missing":
        kept_file.unlink()
    elif breakage != "none":
        _break(kept_file, breakage)
    made = _counting(monkeypatch, items, "_mined_item")
    result = items.run(paths, config, progress=False)
    assert paths.items.read_bytes() == made_first and result.counts["items"] == n
    expected = {"none": 0, "cut": None, "garbled": None, "other_key": n, "missing": n}[breakage]
    assert len(made) == expected if expected is not None else 0 < len(made) < n
    # every line is kept again, copied or made: a third build makes none (it made all of them, every other build)
    assert len(kept_file.read_text().splitlines()) == n + 1
    made.clear()
    items.run(paths, config, progress=False)
    assert paths.items.read_bytes() == made_first and made == []


@pytest.mark.parametrize("breakage", ["none", "cut", "garbled", "other_key", "item_changed"])
def test_augment_copies_kept_plans_and_makes_the_rest(built, tmp_path: Path, monkeypatch, breakage: str) -> None:
    paths, config = _copy(built, tmp_path / "out")
    items.run(paths, config, progress=False)
    augment.run(paths, config, progress=False)
    manifest = augment.manifest_path(paths).read_bytes()
    kept_file = augment.kept_path(paths)
    n = len(kept_file.read_text().splitlines()) - 1
    assert n > 2
    if breakage == "item_changed":  # the items' lines changed (not what they say): planned again from them
        text = paths.items.read_text()
        paths.items.unlink()
        paths.items.write_text(text.replace('"features":[', '"features":[ '))
    elif breakage != "none":
        _break(kept_file, breakage)
    planned = _counting(monkeypatch, augment, "plan_item")
    result = augment.run(paths, config, progress=False)
    assert augment.manifest_path(paths).read_bytes() == manifest and result.counts["made"] == 0
    expected = {"none": 0, "other_key": n, "item_changed": n}.get(breakage)
    assert len(planned) == expected if expected is not None else 0 < len(planned) < n


def _relabel(paths: StagePaths) -> None:
    """One labelled record loses its last feature (the label stage's output, edited as a relabelling would)."""
    records = [json.loads(line) for line in paths.labels.read_text().splitlines()]
    record = next(r for r in records if r.get("status") == "labelled" and len(r.get("features") or []) >= 2)
    record["features"] = record["features"][:-1]
    paths.labels.unlink()
    paths.labels.write_text("".join(json.dumps(r) + "\n" for r in records))


def _relicense(paths: StagePaths) -> None:
    """A paper's panels file now states another licence (its bytes change, not its panels)."""
    first = sorted(paths.panels.glob("*.json"))[0]
    data = json.loads(first.read_text())
    data["licence"] = "cc-by" if data.get("licence") != "cc-by" else "cc0"
    first.unlink()
    first.write_text(json.dumps(data))


@pytest.mark.parametrize("change", ["seed", "rotations", "arbitrary_rotations", "label", "panels_file"])
def test_kept_lines_follow_every_input_that_makes_them(built, tmp_path: Path, change: str) -> None:
    """One input changes between two builds; items and augment with their kept files make the same bytes as
    without them (a key missing this input would copy a stale line: each case failed with that input taken
    out of its key, a review's mutants)."""
    outs = {}
    for variant in ("kept", "none"):
        dest = tmp_path / variant
        shutil.copytree(built[0], dest)  # a real copy: augment rewrites files that hard links would share
        config = BuildConfig.model_validate_json((dest / "build_config.json").read_text()).model_copy(
            update={"out": dest})
        paths = StagePaths(dest)
        (paths.manual / "items.json").unlink(missing_ok=True)
        items.run(paths, config, progress=False)
        augment.run(paths, config, progress=False)
        if change == "label":
            _relabel(paths)
        elif change == "panels_file":
            _relicense(paths)
        else:
            changed = {"seed": config.seed + 1, "rotations": config.rotations[:1],
                       "arbitrary_rotations": config.arbitrary_rotations + 1}[change]
            config = config.model_copy(update={change: changed})
        if variant == "none":
            items.kept_path(paths).unlink()
            augment.kept_path(paths).unlink()
        items.run(paths, config, progress=False)
        augment.run(paths, config, progress=False)
        outs[variant] = (paths.items.read_bytes(), augment.manifest_path(paths).read_bytes())
    assert outs["kept"] == outs["none"]


def test_updates_write_every_file_a_fresh_build_writes(corpus_dir, tmp_path: Path, monkeypatch) -> None:
    """A build of 5 papers, then an update with 3 papers added and one with nothing changed: after each, every
    output file (items.jsonl, augmented.jsonl, the ShareGPT and meta files, dataset_info.json, the card, the
    report, the stage files and caches) has the bytes of a --fresh build of the same papers and split pins in
    another folder, although the update copied most items.jsonl lines, plans and meta lines. The fresh build
    makes every line on the path without kept lines: an empty expert-labels file (no label changed) makes
    items write each Item as a build with manual items does, so a kept line that differs from it in any field
    fails here (a mutant dropping one provenance field from the kept path's lines passed every other test)."""
    pdfs = sorted((corpus_dir / "papers").glob("*.pdf"))
    papers = tmp_path / "papers"
    papers.mkdir()
    for pdf in pdfs[:5]:
        shutil.copy(pdf, papers / pdf.name)

    def config(out: Path) -> BuildConfig:  # no manual collection: items and augment keep their lines
        return BuildConfig(papers=papers, out=out, workers=1, seed=3, min_split_papers=1)

    out = tmp_path / "out"
    build(config(out), progress=False)
    made = {"items": _counting(monkeypatch, items, "_mined_item"),
            "augment": _counting(monkeypatch, augment, "plan_item"),
            "export": _counting(monkeypatch, export, "meta_record")}
    for step in ("added", "unchanged"):
        if step == "added":
            for pdf in pdfs[5:]:
                shutil.copy(pdf, papers / pdf.name)
        for calls in made.values():
            calls.clear()
        counts = {name: result.counts for name, result in build(config(out), progress=False).items()}
        made_now = {name: len(calls) for name, calls in made.items()}
        made_all = {"items": counts["items"]["mined"], "augment": counts["augment"]["train_items"],
                    "export": sum(counts["export"][f"{split}_samples"] for split in ("train", "val", "test"))}
        for name in made:  # the copies were taken: some lines made for the new papers, none when nothing changed
            assert (0 < made_now[name] < made_all[name]) if step == "added" else made_now[name] == 0, (step, name)
        assert (out / "stages" / "items_kept.tsv").is_file()
        fresh = tmp_path / f"fresh_{step}"
        (fresh / "review").mkdir(parents=True)
        (fresh / "review" / EXPERT_LABELS_NAME).write_bytes(b"")
        shutil.copy(out / PINS_NAME, fresh / PINS_NAME)  # the update's split decisions (old papers stay put)
        build(config(fresh), progress=False, fresh=True)
        expected, got = all_outputs(fresh), all_outputs(out)
        assert {"stages/items.jsonl", "stages/augment/augmented.jsonl", "dataset/dataset_info.json",
                "dataset/fracto_train.json", "dataset/dataset_card.md", "dataset/dataset_card.json"} <= set(expected)
        # the only files not in both: the kept lines' cache (the fresh build's items kept none) and the input
        assert (set(got) - set(expected), set(expected) - set(got)) == (
            {"stages/items_kept.tsv"}, {f"review/{EXPERT_LABELS_NAME}"}), step
        assert [name for name in expected if name in got and got[name] != expected[name]] == [], step


def test_lines_kept_under_another_pydantic_are_made_again(built, tmp_path: Path, monkeypatch) -> None:
    """A kept items line or plan is a pydantic serialisation: lines kept by a build under another pydantic
    version are not copied (its version is part of the files' keys, as PyMuPDF's is of mine's)."""
    import pydantic

    paths, config = _copy(built, tmp_path / "out")
    items.run(paths, config, progress=False)
    augment.run(paths, config, progress=False)
    made_items, planned = _counting(monkeypatch, items, "_mined_item"), _counting(monkeypatch, augment, "plan_item")
    monkeypatch.setattr(pydantic, "__version__", "0.0.other")
    counts = items.run(paths, config, progress=False).counts
    n_train = augment.run(paths, config, progress=False).counts["train_items"]
    assert (len(made_items), len(planned)) == (counts["mined"], n_train) and n_train > 0
