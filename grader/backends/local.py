"""The local backend: the harness runs on this host, in a subprocess per submission.

With root, each submission's workers run confined (`grader.sandbox`) as a uid of
their own slot, so parallel submissions cannot signal or read each other. A uid
is claimed with a lock file for as long as this process lives, so two batches
graded at once on one host (two TAs, or CI next to a TA) never share a uid: the
clean-up that kills every process of a slot's uid cannot hit the other batch.
Without root, student code runs with the grader's own rights, and every result
says so.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from grader import cgroups
from grader import sandbox as sandboxing
from grader.grade import BackendFailure, Context, HarnessRun, default_sandbox
from grader.sandbox import SandboxConfig
from grader.workers import kill_uid

FIRST_UID = 61000
UID_RANGE = 4096
LOCKS = Path("/run/llmsys-uids")
LOG_LIMIT = 20000


class NoFreeUid(RuntimeError):
    pass


class LocalBackend:
    name = "local"
    python = sys.executable

    def __init__(self, hide: list[str] | None = None) -> None:
        #: Extra folders hidden from student code (e.g. the batch's output folder).
        self.hide = hide or []
        self._uids: dict[int, tuple[int, int]] = {}  # slot -> (uid, locked fd)
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen[bytes]] = {}  # pid -> harness process
        self._stopped = False
        self._groups: set[Path] = set()

    @staticmethod
    def place(work: Path) -> Path:
        return work

    @staticmethod
    def confined() -> bool:
        return sandboxing.available()

    def sandbox(self, ctx: Context, work: Path, slot: int) -> SandboxConfig | None:
        if not self.confined():
            return None
        uid = self.uid(slot)
        # Memory and CPU groups per slot: the limits hold for all the submission's
        # processes together (memory on GPU assignments too, where no address-space
        # limit can be set), and its processes share the CPU as one group. Without
        # them, the rlimits of each process are all there is.
        limits = ctx.assignment.limits
        groups = cgroups.create(f"llmsys-{uid}", limits.memory_mb, limits.cpus)
        with self._lock:
            self._groups.update(groups)
        return default_sandbox(ctx, work, uid, self.hide, tuple(str(g) for g in groups))

    def uid(self, slot: int) -> int:
        """The uid of `slot`, claimed by this process (first free one of the range)."""
        if slot not in self._uids:
            self._uids[slot] = claim_uid({uid for uid, _ in self._uids.values()})
        return self._uids[slot][0]

    def describe(self, work: Path, sandbox: SandboxConfig | None) -> str:
        if sandbox is None:
            return "local: none"
        grouped = cgroups.memory_limit_mb(sandbox.cgroups)
        if grouped is not None:
            memory = f"{grouped} MiB for all processes"
        elif sandbox.memory_mb:
            memory = f"{sandbox.memory_mb} MiB per process"
        else:
            memory = "no memory limit (GPU)"
        return (
            f"local: uid {sandbox.uid}, no network, private mounts and IPC, "
            f"{memory}, {sandbox.processes} processes"
            + (", CPU as one group" if any("/cpu" in g for g in sandbox.cgroups) else "")
        )

    def run_harness(
        self,
        command: list[str],
        work: Path,
        env: dict[str, str],
        timeout_s: float,
        sandbox: SandboxConfig | None,
        gpus: tuple[str, ...] = (),
    ) -> HarnessRun:
        start = time.monotonic()
        cwd = work / "harness"
        if gpus:
            env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(gpus)}
        log = cwd / "logs" / "harness.log"
        with open(log, "wb") as output, self._lock:
            if self._stopped:
                raise BackendFailure("the batch is stopping")
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._running[process.pid] = process
        timed_out = False
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(process.pid)
            process.wait()
            with self._lock:
                self._running.pop(process.pid, None)
            if sandbox is not None:
                kill_uid(sandbox.uid)
        text = log.read_bytes()[-LOG_LIMIT:].decode("utf-8", "replace")
        return HarnessRun(process.returncode, timed_out, text, time.monotonic() - start)

    def stop(self) -> None:
        """Kill every running harness's process group; each run's own thread then
        kills what its sandbox uid left and returns. New runs are refused."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for pid in running:
            _kill_group(pid)

    def close(self) -> None:
        """Remove this backend's control groups (their processes are gone by now)."""
        with self._lock:
            groups, self._groups = self._groups, set()
        for group in groups:
            cgroups.remove(group)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def claim_uid(taken: set[int], locks: Path = LOCKS) -> tuple[int, int]:
    """Lock the first free uid of the range; the lock lasts while the fd is open."""
    locks.mkdir(mode=0o700, parents=True, exist_ok=True)
    for uid in range(FIRST_UID, FIRST_UID + UID_RANGE):
        if uid in taken:
            continue
        fd = os.open(locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise NoFreeUid(f"all {UID_RANGE} sandbox uids from {FIRST_UID} are in use on this host")
