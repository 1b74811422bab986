"""Control groups per sandbox slot: a submission's memory and CPU limits hold for all
its processes together, and one submission's processes cannot starve another's.

An address-space rlimit counts one process at a time: eight processes of 1 GiB
each passed a 2 GiB limit. A memory group counts every process in it, and the
kernel's OOM killer ends one of them when the sum would pass the limit (swap
included, where the kernel accounts it: no swapping past the limit either).

A CPU group is scheduled as one entity beside the others: a submission that
starts eight processes spinning on the cores gets the CPU time of one group (and
at most `limits.cpus` cores), not eight processes' worth, so the submission graded
next to it, and the harness timing the reference, keep their share.

The local backend makes the groups of a slot (`llmsys-<uid>`, under the grader's
own groups) and names them in the worker's SandboxConfig; the worker joins them as
root, before it drops to the slot's uid, so everything it starts is in them. Only
the cgroup v1 hierarchies are used here: on a host with the unified v2 hierarchy
alone, a new group under the grader's own would need the grader moved out of it
first (v2 has no processes in inner groups), which a library must not do to its
caller; there `create` returns no group and the sandbox says the limits are per
process. Docker's containers have groups of their own already.

This module imports nothing of the grader.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

V1 = Path("/sys/fs/cgroup")
#: The CFS period of a CPU group's quota, in microseconds (the kernel's default).
CPU_PERIOD_US = 100_000
#: The file that proves a folder is a group of each controller.
_MARK = {"memory": "memory.limit_in_bytes", "cpu": "cpu.cfs_quota_us"}


def own_group(controller: str, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Path | None:
    """The folder of this process's cgroup v1 group of `controller` ("memory" or
    "cpu"), or None without one."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            folder = V1 / controller / path.lstrip("/")
            return folder if (folder / _MARK[controller]).is_file() else None
    return None


def create(name: str, memory_mb: int, cpus: float) -> tuple[Path, ...]:
    """The groups `name` under this process's own: memory limited to `memory_mb` MiB
    (and memory + swap too), CPU to `cpus` cores. Each controller that is not
    available (no v1 hierarchy, not root) is left out; existing groups are reused."""
    made = []
    memory = own_group("memory")
    if memory is not None and memory_mb > 0:
        try:
            path = memory / name
            path.mkdir(exist_ok=True)
            _write_memory_limit(path, str(memory_mb * 1024 * 1024))
            made.append(path)
        except OSError:
            pass
    cpu = own_group("cpu")
    if cpu is not None and cpus > 0:
        try:
            path = cpu / name
            path.mkdir(exist_ok=True)
            (path / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(int(cpus * CPU_PERIOD_US)))
            made.append(path)
        except OSError:
            pass
    return tuple(made)


def _write_memory_limit(path: Path, limit: str) -> None:
    memory, both = path / "memory.limit_in_bytes", path / "memory.memsw.limit_in_bytes"
    if not both.exists():  # swap is not accounted on this kernel
        memory.write_text(limit)
        return
    # memory + swap may never be below memory alone: the order depends on the change.
    try:
        memory.write_text(limit)
        both.write_text(limit)
    except OSError:
        both.write_text(limit)
        memory.write_text(limit)


def join(paths: tuple[str, ...] | list[str], pid: int | None = None) -> None:
    """Move process `pid` (default: the calling one), all its threads, into each group
    (its children follow)."""
    for path in paths:
        Path(path, "cgroup.procs").write_text(str(os.getpid() if pid is None else pid))


def has_cpu_group(paths: tuple[str, ...] | list[str]) -> bool:
    """Whether `paths` (as `create` made them) hold a CPU group."""
    return any("/cpu" in str(path) for path in paths)


def memory_limit_mb(paths: tuple[str, ...] | list[str]) -> int | None:
    """The memory limit of the memory group among `paths`, in MiB, or None."""
    for path in paths:
        try:
            return int(Path(path, "memory.limit_in_bytes").read_text()) // 2**20
        except (OSError, ValueError):
            continue
    return None


def oom_kills(path: str | Path) -> int:
    """How many processes the kernel killed in this memory group for want of memory."""
    try:
        text = Path(path, "memory.oom_control").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def remove(path: str | Path, wait_s: float = 2.0) -> bool:
    """Remove an (emptied) group; True when it is gone. Its processes must already be
    ended (the sandbox's clean-up kills every process of the slot's uid)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
