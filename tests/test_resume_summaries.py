"""Resumed records' summaries kept between builds (dataset_builders.resume_summaries, issue 24): mine and panels
take a resumed paper's counts and problems from stages/<stage>_resumed.tsv instead of parsing its record, only
after its key file matched and only while the record is the same file; a broken, cut, other-key or missing
summaries file, or a rewritten record, means the records are parsed, and the stage result is the same."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest
from test_kept_lines import _counting

from dataset_builders import mine, mine_records, panel_records, panels
from dataset_builders.config import BuildConfig
from dataset_builders.resume_summaries import ResumeSummaries
from dataset_builders.stage_cache import key_file
from dataset_builders.stage_paths import StagePaths


def _copy(built, dest: Path) -> tuple[StagePaths, BuildConfig]:
    shutil.copytree(built[0], dest, copy_function=os.link)
    config = BuildConfig.model_validate_json((dest / "build_config.json").read_text()).model_copy(update={"out": dest})
    return StagePaths(dest), config


def _rewrite(path: Path, data: bytes) -> None:
    path.unlink()  # a hard link: write a new file
    path.write_bytes(data)


def _break(path: Path, how: str) -> None:
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if how == "missing":
        path.unlink()
    elif how == "cut":
        _rewrite(path, data[:len(data) // 2])
    elif how == "garbled":
        _rewrite(path, b"".join(lines[:2]) + lines[2].replace(b"\t", b" ", 1) + b"".join(lines[3:]))
    elif how == "other_key":
        _rewrite(path, b"#0\n" + b"".join(lines[1:]))


STAGES = {"mine": (mine, mine_records, "resumable", "mine_resumed.tsv"),
          "panels": (panels, panel_records, "resumed_outcome", "panels_resumed.tsv")}


@pytest.mark.parametrize("stage", ["mine", "panels"])
@pytest.mark.parametrize("breakage", ["none", "cut", "garbled", "other_key", "missing", "record_rewritten"])
def test_resume_reads_kept_summaries_and_parses_the_rest(built, tmp_path: Path, monkeypatch, stage: str,
                                                          breakage: str) -> None:
    module, parser_module, parser, name = STAGES[stage]
    paths, config = _copy(built, tmp_path / "out")
    first = module.run(paths, config, progress=False)  # every paper resumed, its record parsed
    kept = paths.stages / name
    n = len(kept.read_text().splitlines()) - 1
    assert n > 3 and first.counts.get("resumed", first.counts.get("papers_resumed")) == n
    ids = [line.split("\t")[0] for line in kept.read_text().splitlines()[1:]]
    record = paths.mine / ids[1] / "paper.json" if stage == "mine" else paths.panels / f"{ids[1]}.json"
    if breakage == "record_rewritten":  # the same bytes in a new file: parsed again
        _rewrite(record, record.read_bytes())
    elif breakage != "none":
        _break(kept, breakage)
    parsed = _counting(monkeypatch, parser_module if stage == "mine" else panel_records, parser)
    if stage == "mine":
        monkeypatch.setattr(mine, "resumable", getattr(mine_records, parser))
    again = module.run(paths, config, progress=False)
    assert again.model_dump_json() == first.model_dump_json()
    expected = {"none": 0, "other_key": n, "missing": n, "record_rewritten": 1}.get(breakage)
    assert len(parsed) == expected if expected is not None else 0 < len(parsed) < n
    assert len(kept.read_text().splitlines()) == n + 1  # every summary kept again


def test_a_summary_never_resumes_a_record_whose_key_file_differs(built, tmp_path: Path) -> None:
    paths, config = _copy(built, tmp_path / "out")
    ids = [p.stem for p in sorted(paths.panels.glob("*.json"))]
    assert len(ids) > 2 and len((paths.stages / "panels_resumed.tsv").read_text().splitlines()) == len(ids) + 1
    _rewrite(key_file(paths.panels / f"{ids[0]}.json"), b"another code's key\n")
    with ExitStack() as stack:
        key = panel_records.record_key()
        outcomes = panel_records.resumed_outcomes(paths, ids, key, panel_records.summaries(paths, key, stack))
    assert outcomes[0] is None and all(o is not None for o in outcomes[1:])
    _rewrite(key_file(paths.mine / ids[1] / "paper.json"), b"another code's key\n")
    with ExitStack() as stack:
        kept = ResumeSummaries(paths.stages / "mine_resumed.tsv", mine.record_key(config), stack)
        firsts = {pid: json.loads((paths.mine / pid / "paper.json").read_text())["source_pdf"] for pid in ids}
        resumed = mine._resume(paths, config, firsts, None, kept)  # each under its own path (not renamed)
    assert resumed[ids[1]] == (None, "code_remined", False, "", "") and not (paths.mine / ids[1]).exists()
    assert all(resumed[pid][0] is not None for pid in ids if pid != ids[1])
