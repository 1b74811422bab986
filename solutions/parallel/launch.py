"""Run a function on several ranks joined in one `torch.distributed` process group.

    from parallel.launch import run_ranks

    def show(rank: int, world_size: int, scale: float) -> float:
        t = torch.tensor([float(rank)])
        dist.all_reduce(t)                     # the group is set up already
        return scale * float(t)

    run_ranks(show, 3, 2.0)                    # [6.0, 6.0, 6.0]

Each rank is a process forked from the caller, so `fn` may be any function,
even one defined inside another. The ranks meet through a file store in a
fresh temporary folder (no port to choose, so runs side by side never collide)
and talk over the loopback interface with the gloo backend (CPU tensors).
Each rank runs one intra-op thread: the ranks share the machine's cores.

What a rank returns comes back in rank order (it must be picklable: numbers,
lists, tensors, NumPy arrays). If a rank raises, the others are stopped and
the same exception is raised here, with the rank's traceback in its notes
(an exception that cannot be sent between processes becomes a `RankError`
with that traceback); a run that outlives `timeout_s` (a rank waiting for a
collective that never comes) raises `TimeoutError`.

This file is given.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = ["RankError", "loopback_interface", "run_ranks"]

#: Seconds the other ranks get to report their failures after a rank's first one.
FAILURE_GRACE_S = 2.0


class RankError(RuntimeError):
    """A rank raised an exception that could not be sent back; the message holds
    its traceback."""

    def __init__(self, rank: int, text: str) -> None:
        super().__init__(f"rank {rank} raised:\n{text}")
        self.rank = rank


def loopback_interface() -> str:
    """The name of this machine's loopback interface (`lo` on Linux, `lo0` on macOS)."""
    names = [name for _, name in socket.if_nameindex()]
    for name in ("lo", "lo0"):
        if name in names:
            return name
    raise RuntimeError(f"no loopback interface among {names}")


def run_ranks(
    fn: Callable[..., Any], world_size: int, *args: Any, timeout_s: float = 60.0
) -> list[Any]:
    """`[fn(0, world_size, *args), ..., fn(world_size - 1, world_size, *args)]`, each
    call on its own rank of a gloo process group of `world_size` processes."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, not {world_size}")
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="ranks-") as folder:
        store = str(Path(folder) / "store")
        results = context.SimpleQueue()
        processes = [
            context.Process(
                target=_rank_main,
                args=(fn, rank, world_size, args, store, timeout_s, results),
                daemon=True,
            )
            for rank in range(world_size)
        ]
        for process in processes:
            process.start()
        try:
            return _collect(processes, results, world_size, timeout_s)
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                process.join()


def _collect(processes: list[Any], results: Any, world_size: int, timeout_s: float) -> list[Any]:
    """Every rank's value, or the exception of the rank that failed first.

    When one rank raises and stops, the others fail in their next collective
    ("connection reset by peer"), a moment later: after the first failure the
    others get `FAILURE_GRACE_S` to report theirs, and the earliest is raised.
    """
    deadline = time.monotonic() + timeout_s
    values: dict[int, Any] = {}
    failures: list[tuple[float, int, str, bytes | None]] = []
    while len(values) + len(failures) < world_size:
        while not results.empty():
            rank, ok, value = results.get()
            if ok:
                values[rank] = value
            else:
                text, data, when = value
                failures.append((when, rank, text, data))
                deadline = min(deadline, time.monotonic() + FAILURE_GRACE_S)
        if len(values) + len(failures) == world_size:
            break
        reported = set(values) | {rank for _, rank, _, _ in failures}
        for rank, process in enumerate(processes):
            if rank not in reported and not process.is_alive() and results.empty():
                text = f"the process exited with code {process.exitcode}"
                failures.append((time.monotonic(), rank, text, None))
                deadline = min(deadline, time.monotonic() + FAILURE_GRACE_S)
                reported.add(rank)
        if time.monotonic() > deadline:
            if failures:
                break
            missing = sorted(set(range(world_size)) - set(values))
            raise TimeoutError(f"ranks {missing} did not finish within {timeout_s:g} s")
        time.sleep(0.005)
    if failures:
        _, rank, text, data = min(failures)
        raise _rank_exception(rank, text, data)
    return [values[rank] for rank in range(world_size)]


def _rank_exception(rank: int, text: str, data: bytes | None) -> BaseException:
    """The exception a rank raised, rebuilt here, its traceback in a note."""
    try:
        error = pickle.loads(data) if data is not None else None
    except Exception:
        error = None
    if not isinstance(error, BaseException):
        return RankError(rank, text)
    note = f"raised on rank {rank}:\n{text}"
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note(note)
    return error


def _rank_main(
    fn: Callable[..., Any],
    rank: int,
    world_size: int,
    args: tuple[Any, ...],
    store: str,
    timeout_s: float,
    results: Any,
) -> None:
    import torch
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback_interface())
    torch.set_num_threads(1)
    failed_at = None  # when fn raised: before the group is taken down, which the others see
    try:
        dist.init_process_group(
            "gloo",
            store=dist.FileStore(store, world_size),
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        try:
            value = fn(rank, world_size, *args)
        except BaseException:
            failed_at = time.monotonic()
            raise
        finally:
            dist.destroy_process_group()
    except BaseException as error:
        try:
            data: bytes | None = pickle.dumps(error)
        except Exception:
            data = None
        when = failed_at if failed_at is not None else time.monotonic()
        results.put((rank, False, (traceback.format_exc(), data, when)))
        return
    results.put((rank, True, value))
