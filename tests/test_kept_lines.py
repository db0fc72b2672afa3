"""Lines kept between builds (dataset_builders.kept_lines, issue 24): the items stage's items.jsonl lines and
augment's manifest lines are copied when their inputs are the same, and whatever changed or broke is made
again, so the stage files keep the bytes a build without the cache writes."""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest

from dataset_builders import augment, items
from dataset_builders.config import BuildConfig
from dataset_builders.kept_lines import KeptLines
from dataset_builders.stage_paths import StagePaths


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
    made.clear()  # the copied lines are kept again with the made ones: the next build copies every line
    items.run(paths, config, progress=False)
    assert paths.items.read_bytes() == made_first and not made


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
