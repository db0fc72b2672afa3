"""The export reads the dataset card's data in a second process with --workers >= 2 (dataset_card.card_base
through workers.Aside) while it writes and checks the samples: the same bytes as with one worker, a failure
there raised by the export (not a hang), and no process left behind."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from dataset_builders import dataset_card
from dataset_builders import export as sharegpt
from dataset_builders.stage_paths import StagePaths
from dataset_builders.workers import Aside
from test_export import build_inputs, run_pipeline

_forks: list[int] | None = None  # pids that forked while a test records them


def _record_fork() -> None:
    if _forks is not None:
        _forks.append(os.getpid())


os.register_at_fork(before=_record_fork)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


def _killed(paths: StagePaths, config) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # the second process dies without a word


def test_aside_runs_in_a_second_process_or_lazily_in_this_one() -> None:
    with Aside(_pid_and, 7, workers=2) as aside:
        pid, value = aside.result()
    assert value == 7 and pid != os.getpid()
    assert multiprocessing.active_children() == []
    calls: list[int] = []
    aside = Aside(calls.append, 1, workers=1)
    assert calls == []  # one worker: nothing runs until asked, in this process
    aside.result()
    assert calls == [1] and multiprocessing.active_children() == []


def test_card_and_dataset_are_the_same_with_one_and_two_workers(tmp_path: Path) -> None:
    """Includes the parts the export's own run decides (the check's maxima, the build report of the stages
    before it: mine:encrypted, which the second process does not read)."""
    global _forks
    one = build_inputs(tmp_path / "one")
    config = run_pipeline(one)
    shutil.copytree(one.out, tmp_path / "two", symlinks=True)
    two = StagePaths(tmp_path / "two")
    shutil.rmtree(two.dataset)
    for name in ("export_image_sizes.tsv", "export_verdicts.tsv", "export_meta_keys.tsv"):
        (two.stages / name).unlink(missing_ok=True)  # a first export in both folders
    shutil.rmtree(one.dataset)
    for name in ("export_image_sizes.tsv", "export_verdicts.tsv", "export_meta_keys.tsv"):
        (one.stages / name).unlink(missing_ok=True)
    sharegpt.run(one, config, progress=False)
    _forks = []
    try:
        result = sharegpt.run(two, config.model_copy(update={"out": two.out, "workers": 2}), progress=False)
        forks = _forks
    finally:
        _forks = None
    assert forks == [os.getpid()]  # the card's process
    assert multiprocessing.active_children() == []
    card = (two.dataset / "dataset_card.json").read_text()
    assert '"mine:encrypted": 1' in card and '"max_image_tokens": null' not in card
    assert _files(two.dataset) == _files(one.dataset)
    assert result.counts["max_image_tokens"] > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failure_reading_the_card_is_raised(tmp_path: Path, workers: int) -> None:
    """A stage file only the card reads (filter.jsonl) is broken: the export raises its error, as with one
    worker, and leaves no process."""
    paths = build_inputs(tmp_path)
    config = run_pipeline(paths)
    with paths.filter.open("a", encoding="utf-8") as fh:
        fh.write('{"panel_id": "z", "keep": "perhaps"}\n')
    with pytest.raises(ValueError, match="filter.jsonl:3: not a valid FilterDecision record"):
        sharegpt.run(paths, config.model_copy(update={"workers": workers}), progress=False)
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(60)
def test_a_dead_card_process_is_raised_not_waited_for(tmp_path: Path, monkeypatch) -> None:
    paths = build_inputs(tmp_path)
    config = run_pipeline(paths)
    monkeypatch.setattr(dataset_card, "card_base", _killed)
    with pytest.raises(BrokenProcessPool):
        sharegpt.run(paths, config.model_copy(update={"workers": 2}), progress=False)
    assert multiprocessing.active_children() == []


@pytest.mark.timeout(60)
def test_the_second_process_dies_with_the_build(tmp_path: Path) -> None:
    """The build is killed (SIGKILL: no cleanup runs) while the card's process works: that process goes too."""
    script = ("import os, sys, time\n"
              "from dataset_builders.workers import Aside\n"
              "aside = Aside(time.sleep, 120, workers=2)\n"
              "print(*aside.pool._processes, flush=True)\n"
              "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
