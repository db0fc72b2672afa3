"""The export's meta lines kept between builds (dataset_builders.export_meta_reuse, issue 24): an export onto
its own output copies them instead of making them, and whatever changed or broke is made again, so the
dataset keeps the bytes an export without the cache writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dataset_builders import export
from dataset_builders.config import BuildConfig
from dataset_builders.export_meta_reuse import keys_path
from dataset_builders.stage_paths import StagePaths


def _copy(built, dest: Path) -> tuple[StagePaths, BuildConfig]:
    """A hard-linked copy of the built output (every writer replaces files, none writes into one)."""
    shutil.copytree(built[0], dest, copy_function=os.link)
    config = BuildConfig.model_validate_json((dest / "build_config.json").read_text()).model_copy(update={"out": dest})
    return StagePaths(dest), config


def _rewrite(path: Path, text: str) -> None:
    """Write a new file (the copy's files are hard links to the built output's: writing into one edits both)."""
    path.unlink()
    path.write_text(text, encoding="utf-8")


def _files(folder: Path) -> dict[str, bytes]:
    return {f.relative_to(folder).as_posix(): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.fixture
def made(monkeypatch) -> list[str]:
    """The sample ids whose meta line export made (not copied)."""
    calls: list[str] = []
    real = export.meta_record

    def counting(sample, texts=([], [])):
        calls.append(sample.sample_id)
        return real(sample, texts)

    monkeypatch.setattr(export, "meta_record", counting)
    return calls


def test_export_onto_its_own_output_copies_every_meta_line(built, tmp_path: Path, made: list[str]) -> None:
    paths, config = _copy(built, tmp_path / "out")
    before, keys = _files(paths.dataset), keys_path(paths).read_bytes()
    export.run(paths, config, progress=False)
    assert made == [] and _files(paths.dataset) == before and keys_path(paths).read_bytes() == keys


@pytest.mark.parametrize("breakage", ["cut", "garbled", "no_newline", "other_key", "missing", "meta_edited",
                                      "meta_cut"])
def test_a_broken_cache_is_made_again_not_trusted(built, tmp_path: Path, made: list[str], breakage: str) -> None:
    paths, config = _copy(built, tmp_path / "out")
    before = _files(paths.dataset)
    keys = keys_path(paths)
    text = keys.read_text()
    n_lines = len(text.splitlines()) - 1
    meta = paths.dataset / f"{config.dataset_name}_train_meta.jsonl"
    if breakage == "cut":
        _rewrite(keys, text[:len(text) // 2])
    elif breakage == "garbled":
        lines = text.splitlines(keepends=True)
        lines[2] = lines[2].replace("\t", "\tx", 1)
        _rewrite(keys, "".join(lines))
    elif breakage == "no_newline":
        _rewrite(keys, text[:-1])
    elif breakage == "other_key":
        _rewrite(keys, "#" + ("1" if text[1] == "0" else "0") + text[2:])  # another key (was "#0": no change
        # when the key began with 0, as 1 in 16 code versions' keys do)
    elif breakage == "missing":
        keys.unlink()
    else:
        lines = meta.read_text(encoding="utf-8").splitlines(keepends=True)
        if breakage == "meta_edited":  # a plausible edit: another caption, the same layout
            record = json.loads(lines[0])
            record["caption"] = "edited by hand"
            lines[0] = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        else:
            lines = lines[:len(lines) // 2]
        _rewrite(meta, "".join(lines))
    export.run(paths, config, progress=False)
    assert _files(paths.dataset) == before  # every line as the build made it
    assert made, "nothing was made again"
    if breakage in ("other_key", "missing"):
        assert len(made) == n_lines
    assert keys.read_text() == text  # rewritten whole


def test_a_changed_caption_remakes_the_meta_lines_of_that_paper(built, tmp_path: Path, made: list[str]) -> None:
    """The texts are part of a line's key (the panels file's bytes): a caption edited in stages/panels gives the
    meta lines an export without the cache gives."""
    paths, config = _copy(built, tmp_path / "reuse")
    fresh_paths, fresh_config = _copy(built, tmp_path / "fresh")
    for p in (paths, fresh_paths):
        panels_file = min(p.panels.glob("*.json"))
        record = json.loads(panels_file.read_text(encoding="utf-8"))
        for panel in record["panels"]:
            panel["caption"] = (panel.get("caption") or "") + " Edited."
        _rewrite(panels_file, json.dumps(record, indent=1, ensure_ascii=False))
    keys_path(fresh_paths).unlink()
    export.run(paths, config, progress=False)
    n_made = len(made)
    assert 0 < n_made
    made.clear()
    export.run(fresh_paths, fresh_config, progress=False)
    assert n_made < len(made)  # only that paper's samples were made again
    assert _files(paths.dataset) == _files(fresh_paths.dataset)
    assert any("Edited." in line for line in (paths.dataset / f"{config.dataset_name}_train_meta.jsonl")
               .read_text(encoding="utf-8").splitlines()
               + (paths.dataset / f"{config.dataset_name}_test_meta.jsonl").read_text(encoding="utf-8").splitlines()
               + (paths.dataset / f"{config.dataset_name}_val_meta.jsonl").read_text(encoding="utf-8").splitlines())


def _reuse(entries: list[tuple[str, str, bytes]], meta: dict[str, list[bytes]]):
    """A MetaReuse over an old keys file listing entries (sample id, split, line whose digest it recorded) and old
    meta files holding the lines given per split (what is really on disk)."""
    import io

    from dataset_builders.export_meta_reuse import SPLITS, MetaReuse, line_digest

    keys = io.BytesIO(b"".join(f"{sid}\t{split}\t{'k' * 32}\t{line_digest(line)}\n".encode()
                               for sid, split, line in entries))
    old_meta = {s: io.BytesIO(b"".join(meta.get(s, []))) for s in SPLITS}
    return MetaReuse("file-key", keys, old_meta, io.StringIO())


def test_samples_out_of_order_stop_the_reuse() -> None:
    lines = [b'{"id": "s1"}\n', b'{"id": "s2"}\n', b'{"id": "s3"}\n']
    reuse = _reuse([(f"s{i + 1}", "train", line) for i, line in enumerate(lines)], {"train": lines})
    assert reuse.take("s1", "train", "k" * 32) == lines[0].decode()
    assert reuse.take("s3", "train", "k" * 32) == lines[2].decode()  # s2 gone since: its line skipped
    reuse = _reuse([(f"s{i + 1}", "train", line) for i, line in enumerate(lines)], {"train": lines})
    assert reuse.take("s2", "train", "k" * 32) == lines[1].decode()
    assert reuse.take("s1", "train", "k" * 32) is None  # out of order: nothing more is trusted
    assert reuse.take("s3", "train", "k" * 32) is None


def test_an_old_keys_file_beside_newer_meta_files_copies_no_line_it_did_not_record() -> None:
    """A run killed between renaming its meta files and its keys file leaves the older export's keys beside the
    newer export's meta lines: only lines with the recorded bytes may be copied."""
    old = [b'{"id": "s1", "caption": "old"}\n', b'{"id": "s2", "caption": "same"}\n']
    new = [b'{"id": "s1", "caption": "new"}\n', b'{"id": "s2", "caption": "same"}\n']
    reuse = _reuse([("s1", "train", old[0]), ("s2", "train", old[1])], {"train": new})
    assert reuse.take("s1", "train", "k" * 32) is None
    assert reuse.take("s2", "train", "k" * 32) == new[1].decode()  # the very bytes it recorded
    shifted = _reuse([("s1", "train", old[0]), ("s2", "train", old[1])], {"train": new[1:]})  # a line fewer
    assert shifted.take("s1", "train", "k" * 32) is None
    assert shifted.take("s2", "train", "k" * 32) is None


def test_meta_lines_kept_under_another_pydantic_are_made_again(built, tmp_path: Path, made: list[str],
                                                                monkeypatch) -> None:
    """The records a meta line is made from are read by pydantic: lines kept by an export under another pydantic
    version are not copied (its version is part of the keys file's key)."""
    import pydantic

    paths, config = _copy(built, tmp_path / "out")
    before = _files(paths.dataset)
    monkeypatch.setattr(pydantic, "__version__", "0.0.other")
    export.run(paths, config, progress=False)
    n_lines = len(keys_path(paths).read_text().splitlines()) - 1  # one per meta line written
    assert 0 < len(made) == n_lines and _files(paths.dataset) == before
