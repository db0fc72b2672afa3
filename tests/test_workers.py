"""Worker pools are forked from a process with no other thread (dataset_builders.workers)."""

from __future__ import annotations

import os
import threading

from tqdm import tqdm

from dataset_builders.workers import run_jobs

_at_fork: list[list[str]] | None = None  # the threads alive at each fork, while a test records them


def _record_threads() -> None:
    if _at_fork is not None:
        _at_fork.append([t.name for t in threading.enumerate()])


os.register_at_fork(before=_record_threads)


def test_no_thread_is_alive_when_a_pool_forks():
    """tqdm starts a monitor thread with its first bar, even a disabled one, and keeps it: every pool was forked
    beside it (Python 3.12: "DeprecationWarning: This process is multi-threaded, use of fork() may lead to
    deadlocks in the child", tests/test_augment.py, test_panels.py, test_build_inputs.py ...). Failed before:
    [['MainThread', 'tqdm_monitor'], ['MainThread', 'tqdm_monitor']]."""
    global _at_fork
    tqdm(total=1, disable=True).close()  # as any stage's bar does before the pool starts
    _at_fork = []
    try:
        assert list(run_jobs(abs, [-1, -2, -3], workers=2, desc="jobs", progress=False)) == [1, 2, 3]
        forks = _at_fork
    finally:
        _at_fork = None
    assert forks == [["MainThread"], ["MainThread"]]
