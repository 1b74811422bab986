"""Worker threads for the pipeline, one per stage, fed through queues.

    with spawn_workers(2) as (in_queues, out_queues):
        in_queues[1].put(Task(lambda: stage(x)))
        ok, payload = out_queues[1].get()

A worker takes the `Task`s of its in-queue one at a time, in the order they came,
runs each and puts what came of it on its out-queue:

- `(True, (task, value))` when `task.compute()` returned `value`;
- `(False, exc_info)` when it raised: `exc_info` is the `sys.exc_info()` triple
  `(type, exception, traceback)`; the worker goes on with its next task.

So a worker answers every task it is given, in order, and never dies of one.

Grad mode is per thread in PyTorch, and a new thread starts with it on: a
`Task` remembers the grad mode of the thread that made it and runs its function
in that mode, so a pipeline run under `torch.no_grad()` builds no graph.

Leaving the `with` block of `spawn_workers` (normally or by an exception) asks
every worker to stop and waits for it: each finishes the task it is running
and drops the outcome of what nobody collected, so no thread outlives the block.

This file is given.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeAlias

import torch

__all__ = ["ExcInfo", "Task", "spawn_workers"]

#: `sys.exc_info()` of an exception a task raised.
ExcInfo: TypeAlias = "tuple[type[BaseException], BaseException, TracebackType]"


class Task:
    """A function to run on a worker, in the grad mode of the thread that made the task."""

    def __init__(self, compute: Callable[[], Any]) -> None:
        self._compute = compute
        self._grad_enabled = torch.is_grad_enabled()

    def compute(self) -> Any:
        """The function's value, computed in the remembered grad mode."""
        with torch.set_grad_enabled(self._grad_enabled):
            return self._compute()


def _work(in_queue: queue.Queue[Task | None], out_queue: queue.Queue[Any]) -> None:
    while True:
        task = in_queue.get()
        if task is None:  # the signal to stop
            return
        try:
            value = task.compute()
        except BaseException:  # every failure goes back to the caller
            out_queue.put((False, sys.exc_info()))
        else:
            out_queue.put((True, (task, value)))
        # Drop the references now: an idle worker must not keep a micro-batch alive.
        del task
        value = None


@contextmanager
def spawn_workers(
    n: int,
) -> Iterator[tuple[list[queue.Queue[Task | None]], list[queue.Queue[Any]]]]:
    """Start `n` worker threads; yield their in-queues and out-queues (lists of `n`)."""
    in_queues: list[queue.Queue[Task | None]] = [queue.Queue() for _ in range(n)]
    out_queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(n)]
    threads = [
        threading.Thread(
            target=_work, args=(in_queues[k], out_queues[k]), name=f"pipe-stage-{k}", daemon=True
        )
        for k in range(n)
    ]
    for thread in threads:
        thread.start()
    try:
        yield in_queues, out_queues
    finally:
        for in_queue in in_queues:
            in_queue.put(None)
        for thread in threads:
            thread.join()
