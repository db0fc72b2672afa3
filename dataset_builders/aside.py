"""One call run in a second process while this one goes on: a worker_pool of one (dataset_builders.workers),
so the process dies with this one however it dies, and is forked from this one thread.

The export reads the dataset card's data from the stage files there (~1 s of CPU at 2,000 papers) while it
writes and checks the samples. Kept out of workers.py: the code keys of the stages that import that module
(mine, panels, augment; stage_cache) would change with it and make every cached paper be mined again.

Usage:
    from dataset_builders.aside import Aside
    with Aside(fn, arg, workers=config.workers) as aside:   # fn(arg) in a second process when workers > 1
        ...                                                  # this process goes on meanwhile
        result = aside.result()                              # workers == 1: fn(arg) runs here, now
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from dataset_builders.workers import worker_pool

R = TypeVar("R")


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
