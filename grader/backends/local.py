"""The local backend: the harness runs on this host, in a subprocess per submission.

With root, each submission's workers run confined (`grader.sandbox`, with the
policy of `default_sandbox` below) as the uid of their slot (`grader.uids`), so
parallel submissions cannot signal or read each other, and two batches on one
host never share a uid. Without root, student code runs with the grader's own
rights, and every result says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import grader
from grader import cgroups
from grader import sandbox as sandboxing
from grader.backend import BackendFailure, HarnessRun, Placement
from grader.context import Context
from grader.sandbox import SandboxConfig
from grader.uids import SlotUids, kill_uid

LOG_LIMIT = 20000


class LocalBackend:
    name = "local"
    python = sys.executable

    def __init__(self, hide: list[str] | None = None) -> None:
        #: Extra folders hidden from student code (e.g. the batch's output folder).
        self.hide = hide or []
        self.uid = SlotUids()
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen[bytes]] = {}  # pid -> harness process
        self._stopped = False
        self._groups: set[Path] = set()

    @staticmethod
    def confined() -> bool:
        return sandboxing.available()

    def prepare(self, ctx: Context, work: Path, slot: int, gpus: tuple[str, ...] = ()) -> Placement:
        sandbox = self._sandbox(ctx, work, slot)
        reference: tuple[str, ...] = ()
        if sandbox is not None and cgroups.has_cpu_group(sandbox.cgroups):
            # The reference's worker gets a CPU group as the student's: on a busy host
            # a group is one scheduling entity, and a reference outside one would get
            # a share per thread (a false timing penalty for the student).
            cpus = ctx.assignment.limits.cpus
            made = cgroups.create(f"llmsys-{sandbox.uid}-reference", 0, cpus)
            with self._lock:
                self._groups.update(made)
            reference = tuple(str(g) for g in made)
        return Placement(work, work, sandbox, ctx, gpus, _describe(sandbox), reference)

    def _sandbox(self, ctx: Context, work: Path, slot: int) -> SandboxConfig | None:
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

    def run_harness(
        self, placement: Placement, command: list[str], env: dict[str, str], timeout_s: float
    ) -> HarnessRun:
        start = time.monotonic()
        cwd = placement.work / "harness"
        sandbox = placement.sandbox
        if placement.gpus:
            env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(placement.gpus)}
        env = {**env, sandboxing.PARENT_ENV: str(os.getpid())}
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


def _describe(sandbox: SandboxConfig | None) -> str:
    """How student code was confined, for the result."""
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
        + (
            ", CPU as one group (the reference's likewise)"
            if cgroups.has_cpu_group(sandbox.cgroups)
            else ""
        )
    )


def default_sandbox(
    ctx: Context, work: Path, uid: int, hide: list[str], groups: tuple[str, ...] = ()
) -> SandboxConfig:
    """The worker confinement for a submission graded on this host; `groups`: the
    control groups its processes share (`grader.cgroups`), where there are any."""
    limits = ctx.assignment.limits
    keep = {
        sys.prefix,
        sys.base_prefix,
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        str(Path(grader.__file__).resolve().parent),
        str(work / "student"),
    }
    return SandboxConfig(
        uid=uid,
        gid=uid,
        hide=tuple(sorted({*_host_folders(), str(ctx.course.root), "/dev/shm", *hide})),
        keep=tuple(sorted(keep)),
        # CUDA reserves far more address space than it uses: on a GPU assignment an
        # address-space limit would stop every kernel launch (the memory cgroup,
        # or Docker's, bounds those workers instead).
        memory_mb=0 if limits.gpus else limits.memory_mb,
        processes=limits.processes,
        file_size_mb=limits.file_size_mb,
        cpu_s=int(limits.submission_timeout_s) + 5,
        cgroups=groups,
    )


#: Top-level folders a worker sees: the system's programs, libraries and settings.
#: Everything else at the top of the file system (/home, /root, /srv, /opt, /var,
#: /run with its sockets, /work, /mnt, ...) is hidden; the sandbox binds back only
#: Python, the grader and the student's own folder.
SYSTEM_FOLDERS = frozenset(
    {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "sys", "dev", "tmp"}
)


def _host_folders() -> list[str]:
    """Top-level folders to hide (real folders only: a symlink such as /bin -> usr/bin
    must not be mounted over, that would hide its target)."""
    return sorted(
        str(path)
        for path in Path("/").iterdir()
        if path.name not in SYSTEM_FOLDERS and path.is_dir() and not path.is_symlink()
    )
