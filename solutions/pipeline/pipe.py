"""GPipe pipeline parallelism (task hw5.5): `_clock_cycles`, `_split_module`, `Pipe`.

    pipe = Pipe(nn.Sequential(a, b, c, d), split_size=4, n_stages=2)   # stages [a, b], [c, d]
    y = pipe(x)               # == nn.Sequential(a, b, c, d)(x), computed micro-batch by micro-batch
    y.sum().backward()        # gradients land in a, b, c, d's own parameters

The model is cut into `n` stages (contiguous runs of its layers) and the batch
into `m` micro-batches. Task `(i, j)` applies stage `j` to micro-batch `i`; it
needs `(i, j - 1)` (its input) and, since a stage works on one micro-batch at a
time, `(i - 1, j)`. GPipe runs the tasks in `m + n - 1` clock ticks: tick `k`
runs every `(i, j)` with `i + j == k`, all at once (they use different stages),
and every task of tick `k` is finished before any task of tick `k + 1` starts.
For m = 3, n = 3:

    k  tasks (i, j)
    0  (0,0)
    1  (1,0) (0,1)
    2  (2,0) (1,1) (0,2)
    3        (2,1) (1,2)
    4              (2,2)

Here every stage runs on its own worker thread (`worker.spawn_workers`), on the
CPU. The forward pass is pipelined; the backward pass is PyTorch's autograd,
run by the caller over the graph the stages built.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .worker import Task, spawn_workers

__all__ = ["Pipe", "_clock_cycles", "_split_module"]


def _clock_cycles(num_batches: int, num_partitions: int) -> Iterable[list[tuple[int, int]]]:
    """The GPipe schedule of `num_batches` micro-batches through `num_partitions`
    stages: one list of tasks `(microbatch, partition)` per clock tick.

    Tick `k` (for k = 0 .. num_batches + num_partitions - 2) holds every
    `(i, j)` with `i + j == k`, `0 <= i < num_batches`, `0 <= j < num_partitions`
    (the table in the module's docstring); the order inside a tick does not
    matter. So every task appears exactly once, and `(i, j)` comes after both
    `(i, j - 1)` and `(i - 1, j)`.

    Plan: for each tick, walk over the stages and keep the micro-batch index
    that lands in range.
    """
    # BEGIN SOLUTION hw5.5
    for k in range(num_batches + num_partitions - 1):
        yield [(k - j, j) for j in range(num_partitions) if 0 <= k - j < num_batches]
    # END SOLUTION


def _split_module(module: nn.Sequential, n: int) -> list[nn.Sequential]:
    """`module` cut into `n` stages: `n` `nn.Sequential`s of consecutive layers.

    The stages, in order, hold the module's own layers (the same objects, not
    copies, so their parameters are the module's), each layer exactly once, in
    the module's order; their sizes differ by at most one (for instance, with
    L layers, the first `L % n` stages hold one layer more than the others).
    ValueError unless `1 <= n <= len(module)`.

    Plan: compute each stage's size, then cut the list of layers at the running sums.
    """
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"expected an nn.Sequential, not {type(module).__name__}")
    layers = list(module)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(layers):
        raise ValueError(f"cannot cut {len(layers)} layers into {n!r} stages")
    # BEGIN SOLUTION hw5.5
    size, extra = divmod(len(layers), n)
    stages = []
    start = 0
    for j in range(n):
        stop = start + size + (1 if j < extra else 0)
        stages.append(nn.Sequential(*layers[start:stop]))
        start = stop
    return stages
    # END SOLUTION


class Pipe(nn.Module):
    """`module` run as a GPipe pipeline of `n_stages` stages over micro-batches
    of `split_size` rows.

    `Pipe(module, split_size, n_stages)(x)` equals `module(x)` (for a module
    that treats the rows of its input independently), and its backward gives
    the same gradients to `x` and to `module`'s own parameters (`Pipe` holds
    them, not copies: `pipe.parameters()` are `module`'s).

    Attributes:
        split_size: rows per micro-batch.
        partitions: the stages (`_split_module(module, n_stages)`), an `nn.ModuleList`.
    """

    def __init__(self, module: nn.Sequential, split_size: int = 1, n_stages: int = 2) -> None:
        super().__init__()
        if isinstance(split_size, bool) or not isinstance(split_size, int) or split_size < 1:
            raise ValueError(f"split_size must be a positive int, not {split_size!r}")
        self.split_size = split_size
        self.partitions = nn.ModuleList(_split_module(module, n_stages))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`module(x)` for a batch `x` (rows on dimension 0), computed by the pipeline.

        The micro-batches are `x`'s rows `0 .. split_size - 1`, then the next
        `split_size`, and so on (the last may be shorter). They go through the
        stages following `_clock_cycles`, tick by tick, each stage on its own
        worker; the output is the micro-batches' outputs joined along dimension 0
        in micro-batch order. An exception a stage raises is raised here (the
        same exception), once the tick it happened in is over.

        Plan: split, start one worker per stage, `compute` each tick in turn
        (a tick's outputs replace its micro-batches), join.
        """
        # BEGIN SOLUTION hw5.5
        batches: list[Any] = list(torch.split(x, self.split_size, dim=0))
        with spawn_workers(len(self.partitions)) as (in_queues, out_queues):
            for schedule in _clock_cycles(len(batches), len(self.partitions)):
                self.compute(batches, schedule, in_queues, out_queues)
        return torch.cat(batches, dim=0)
        # END SOLUTION

    def compute(
        self,
        batches: list[Any],
        schedule: list[tuple[int, int]],
        in_queues: list[queue.Queue[Task | None]],
        out_queues: list[queue.Queue[Any]],
    ) -> None:
        """Run one tick: for each `(i, j)` of `schedule`, stage `j` applied to
        `batches[i]` replaces `batches[i]`.

        Stage `j`'s worker reads `in_queues[j]` and answers on `out_queues[j]`
        (see `worker`). The tick's tasks run at the same time (a tick uses each
        stage at most once); the tick is over when every one of them is.

        Plan: hand every task (a `Task` applying the stage to its micro-batch)
        to its stage's worker, then collect each stage's answer and store the
        output; after collecting them all, raise the first failure with its
        own traceback.
        """
        # BEGIN SOLUTION hw5.5
        for i, j in schedule:
            stage, batch = self.partitions[j], batches[i]
            in_queues[j].put(Task(lambda stage=stage, batch=batch: stage(batch)))
        failure = None
        for i, j in schedule:
            ok, payload = out_queues[j].get()
            if ok:
                batches[i] = payload[1]
            elif failure is None:
                failure = payload
        if failure is not None:
            _, exc, traceback = failure
            raise exc.with_traceback(traceback)
        # END SOLUTION
