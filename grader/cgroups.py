"""A memory cgroup per sandbox slot: the submission's memory limit holds for all
its processes together, not for each one.

An address-space rlimit counts one process at a time: eight processes of 1 GiB
each passed a 2 GiB limit. A memory cgroup counts every process in it, and the
kernel's OOM killer ends one of them when the sum would pass the limit (swap
included, where the kernel accounts it: no swapping past the limit either).

The local backend makes one group per slot (`llmsys-<uid>`, under the grader's
own memory cgroup) and names it in the worker's SandboxConfig; the worker joins
it as root, before it drops to the slot's uid, so everything it starts is in it.
Only the cgroup v1 memory hierarchy is used here: on a host with the unified v2
hierarchy alone, a new group under the grader's own would need the grader moved
out of it first (v2 has no processes in inner groups), which a library must not
do to its caller; there `create` returns None and the sandbox says the limit is
per process. Docker's containers have a cgroup of their own already.

This module imports nothing of the grader.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

V1_MEMORY = Path("/sys/fs/cgroup/memory")


def own_memory_group(proc_cgroup: Path = Path("/proc/self/cgroup")) -> Path | None:
    """The folder of this process's cgroup v1 memory group, or None without one."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = V1_MEMORY / path.lstrip("/")
            return folder if (folder / "memory.limit_in_bytes").is_file() else None
    return None


def create(name: str, limit_mb: int) -> Path | None:
    """A memory group `name` under this process's own, limited to `limit_mb` MiB of
    memory (and of memory + swap), or None where that is not possible (no v1
    memory hierarchy, not root). An existing group of that name is reused."""
    parent = own_memory_group()
    if parent is None or limit_mb <= 0:
        return None
    path = parent / name
    limit = str(limit_mb * 1024 * 1024)
    try:
        path.mkdir(exist_ok=True)
        _write_limits(path, limit)
    except OSError:
        return None
    return path


def _write_limits(path: Path, limit: str) -> None:
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


def join(path: str | Path) -> None:
    """Move the calling process into the group at `path` (its children follow)."""
    Path(path, "cgroup.procs").write_text(str(os.getpid()))


def oom_kills(path: str | Path) -> int:
    """How many processes the kernel killed in this group for want of memory."""
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
