"""Worker processes for the per-paper and per-item stages (mine, panels, augment): one code path for one
worker (in this process) and for a pool, results in job order, and workers that die with the main process.

Why the parent-death signal: a pool worker waits for its next job by reading a pipe. When the main process
is killed (SIGKILL, the OOM killer) the kernel closes the main process' pipe ends, but every worker
forked after another one inherited copies of the earlier pipes' write ends (fork copies all descriptors),
so the read never sees end-of-file and the worker waits forever. Each worker therefore asks the kernel
(Linux prctl PR_SET_PDEATHSIG, see prctl(2)) for SIGKILL when the thread that forked it exits, which the
ProcessPoolExecutor of Python 3.11 does from the calling thread (``_launch_processes`` in ``submit`` for
the fork start method); it also checks that its parent is still the process that started the pool (the
parent may die before prctl runs), and a watchdog thread re-checks every second where prctl is missing.

A pool is forked from a process with no other Python thread (no_thread_at_fork: tqdm's monitor thread, which
its first bar starts, is stopped and no other started), as fork wants: Python 3.12 warns on a fork beside
threads, and a lock another thread holds at the fork stays locked in the child.

Usage:
    from dataset_builders.workers import run_jobs
    for result in run_jobs(fn, jobs, workers=2, desc="panels", unit="paper", progress=True): ...
    with Aside(fn, arg, workers=2) as aside:   # fn(arg) in a second process (export: the card's data) ...
        ...                                    # ... while this one goes on
        result = aside.result()                # workers=1: fn(arg) runs here, now
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Generic, TypeVar

from tqdm import tqdm

J = TypeVar("J")
R = TypeVar("R")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_SECONDS = 1.0
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h> (glibc)
MMAP_THRESHOLD_BYTES = 64 << 20  # allocations below this come from the heap ...
TRIM_THRESHOLD_BYTES = 256 << 20  # ... and up to this much freed heap is kept for reuse
IN_FLIGHT_PER_WORKER = 4  # chunks submitted ahead per worker: enough to keep it busy, few held


def keep_freed_memory() -> bool:
    """Let glibc malloc reuse freed memory instead of handing it back to the kernel (and its workers too:
    fork copies the setting). Returns whether the setting took (False off glibc).

    By default a block over ~128 kB (adaptively up to 32 MB) is mmap'd and given back on free, and the heap
    is trimmed: every numpy temporary of a figure (a few MB) then lands on fresh pages, and a first touch
    of a page is costly on virtual machines like ours (a 1250 x 1000 band comparison: 11.2 ms with the
    default, 2.0 ms with this; measured in one session, same data). The price is resident memory kept for
    reuse, at most TRIM_THRESHOLD_BYTES per process (benchmarks/bench_build.py reports the peak).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1


def _exit_if_orphaned(parent_pid: int) -> None:
    if os.getppid() != parent_pid:  # re-parented: the main process is gone
        os._exit(1)


def _watchdog(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        _exit_if_orphaned(parent_pid)


def init_worker(parent_pid: int) -> None:
    """Pool initializer: die with the main process (parent-death signal + parent check + watchdog)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    _exit_if_orphaned(parent_pid)  # the parent may have died before prctl ran
    if not armed:
        threading.Thread(target=_watchdog, args=(parent_pid,), daemon=True, name="parent-watchdog").start()


def no_thread_at_fork() -> None:
    """Stop tqdm's monitor thread and start no other: tqdm starts one with its first bar (even a disabled one,
    ``tqdm.__new__``) and keeps it, so every pool was forked from a process with two threads (a lock the other
    thread holds stays locked in the child; Python 3.12 warns "This process is multi-threaded, use of fork() may
    lead to deadlocks"). The monitor only re-prints bars stuck between updates; ours move with every result."""
    tqdm.monitor_interval = 0  # tqdm's documented switch: no monitor thread for any later bar
    if tqdm.monitor is not None:
        tqdm.monitor.exit()  # joins it
        tqdm.monitor = None


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers exit when this process dies, however it dies; forked from this one thread."""
    no_thread_at_fork()
    return ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(os.getpid(),))


def _run_chunk(fn: Callable[[J], R], chunk: list[J]) -> list[R]:
    return [fn(job) for job in chunk]


def run_jobs(fn: Callable[[J], R], jobs: Iterable[J], workers: int, desc: str, unit: str = "it",
             progress: bool = True, chunks_per_worker: int | None = None, total: int | None = None) -> Iterator[R]:
    """fn(job) for every job, in job order: in this process when workers == 1 (or one job), else in a pool.

    jobs: a list, or any iterable with its length as total (e.g. a generator reading records one at a time:
    only the jobs in flight, a few chunks per worker, are then ever held; Executor.map would take them all).
    chunks_per_worker: hand the jobs out in about that many chunks per worker (fewer round trips for many
    small jobs; more chunks balance the tail when jobs differ in size); None: one job at a time.
    """
    n = len(jobs) if total is None else total  # type: ignore[arg-type]
    chunksize = max(1, n // (workers * chunks_per_worker)) if chunks_per_worker else 1
    bar = tqdm(total=n, desc=desc, unit=unit, disable=not progress)
    pool = worker_pool(min(workers, n)) if workers > 1 and n > 1 else None
    try:
        if pool is None:
            for result in map(fn, jobs):
                bar.update(1)
                yield result
            return
        pending: deque[Future[list[R]]] = deque()
        chunks = iter(lambda it=iter(jobs): list(islice(it, chunksize)), [])
        for chunk in islice(chunks, IN_FLIGHT_PER_WORKER * workers):
            pending.append(pool.submit(_run_chunk, fn, chunk))
        while pending:
            done = pending.popleft().result()
            for chunk in islice(chunks, 1):  # keep the window full
                pending.append(pool.submit(_run_chunk, fn, chunk))
            for result in done:
                bar.update(1)
                yield result
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)


class Aside(Generic[R]):
    """fn(*args) in a second process while this one goes on (workers > 1); with one worker in this process,
    when result() asks for it (the order and cost of a plain call). A failure there is raised by result():
    fn's exception, or BrokenProcessPool when the process died. Leaving the with block ends the process
    (after the job under way: a pool cannot cut it short)."""

    def __init__(self, fn: Callable[..., R], *args, workers: int):
        self.fn, self.args = fn, args
        self.pool = worker_pool(1) if workers > 1 else None
        self.future: Future[R] | None = None if self.pool is None else self.pool.submit(fn, *args)

    def result(self) -> R:
        if self.future is None:
            return self.fn(*self.args)
        try:
            return self.future.result()
        finally:
            self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def __enter__(self) -> Aside[R]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
