"""Which GPUs each running submission gets: a pool that hands out devices.

A batch grading N submissions at once on a GPU server must never put two of them
on one GPU (their timings would measure each other) unless the TA asks for it
(`--gpu-share K`: up to K submissions per GPU, for correctness-only grading).
`GpuPool.take(count)` blocks until `count` devices are free, prefers the least
used ones, and gives them back when the submission is done, whatever happens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class GpuRequestError(ValueError):
    """A request the pool can never satisfy (more GPUs than it has)."""


class GpuPool:
    def __init__(self, devices: Sequence[str], share: int = 1) -> None:
        if share < 1:
            raise GpuRequestError(f"--gpu-share must be at least 1, not {share}")
        if len(set(devices)) != len(devices):
            raise GpuRequestError(f"a GPU is listed twice in {','.join(devices)}")
        self.devices = tuple(devices)
        self.share = share
        self._users = dict.fromkeys(self.devices, 0)
        self._changed = threading.Condition()

    def check(self, count: int) -> None:
        """Raise GpuRequestError if `count` GPUs per submission can never be given."""
        if count > len(self.devices):
            have = ",".join(self.devices) or "none"
            raise GpuRequestError(
                f"each submission needs {count} GPU(s), but the GPUs to use are: {have}"
            )

    @contextmanager
    def take(self, count: int) -> Iterator[tuple[str, ...]]:
        """`count` devices, each used by fewer than `share` submissions; () for 0."""
        if count == 0:
            yield ()
            return
        self.check(count)
        with self._changed:
            while True:
                free = [d for d in self.devices if self._users[d] < self.share]
                if len(free) >= count:
                    break
                self._changed.wait()
            # Least used first, then in the given order: spreads the load.
            chosen = tuple(sorted(free, key=lambda d: self._users[d])[:count])
            for device in chosen:
                self._users[device] += 1
        try:
            yield chosen
        finally:
            with self._changed:
                for device in chosen:
                    self._users[device] -= 1
                self._changed.notify_all()

    def in_use(self) -> dict[str, int]:
        with self._changed:
            return dict(self._users)


def parse_devices(text: str) -> list[str]:
    """ "0,1,3" -> ["0", "1", "3"]: GPU indices (or UUIDs) separated by commas."""
    devices = [part.strip() for part in text.split(",") if part.strip()]
    for device in devices:
        if not (device.isdigit() or device.startswith(("GPU-", "MIG-"))):
            raise GpuRequestError(
                f"--gpus takes GPU indices or UUIDs separated by commas (e.g. 0,1), not {device!r}"
            )
    return devices


def detect() -> list[str]:
    """The indices of this host's GPUs (nvidia-smi), honouring CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return parse_devices(visible)
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().isdigit()]


def shortfall(count: int) -> str | None:
    """Why `count` GPUs per submission cannot be had on this host, or None when they
    can (always None for 0): the one place that asks whether a GPU assignment can be
    graded or verified here."""
    found = len(detect()) if count else 0
    if count and found < count:
        have = f"only {found}" if found else "none"
        return f"needs {count} CUDA GPU(s) and this host has {have} (nvidia-smi)"
    return None
