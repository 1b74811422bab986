"""The harness side of worker processes: start, call with a deadline, kill, restart.

A `Worker` owns one `python -I -m grader.worker` process over one tree. Calls
block until the response frame arrives or the deadline passes; a worker that
dies, hangs, floods or answers garbage is killed (its whole process group, and
with a sandbox every process of its uid) and started afresh on the next call.
Each failure is raised as a `WorkerError` subclass whose message is fit for the
student: it says what happened, never anything about the tests.

Why above 300 lines: one object's life (start, call, pause, kill) and the decoding
of what its process answers belong together; split, each half would need the
other's invariants (a half-read frame means a killed worker).
"""

from __future__ import annotations

import builtins
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader import cgroups, wire
from grader.sandbox import SandboxConfig
from grader.uids import continue_uid, kill_uid, stop_uid

START_TIMEOUT_S = 60.0
#: How often a call with a time budget asks how much of it is left, in seconds.
POLL_S = 0.1
#: -I: no user site, no PYTHON* variables; -u: what student code prints reaches its
#: test's feedback even when the worker is killed before it would have flushed.
WORKER = (sys.executable, "-I", "-u", "-m", "grader.worker")


class WorkerError(Exception):
    """Student code did not produce an answer (crash, time limit, bad data)."""


class WorkerTimeout(WorkerError):
    pass


class WorkerDied(WorkerError):
    pass


class StudentException(Exception):
    """An exception raised by student code that is not a built-in type.

    Its message is the student's message only: the class name the worker reports
    is never shown (a worker has seen the hidden tests, and a hidden test shows the
    exception's type). The student's traceback, for staff, still names it.
    """


class Worker:
    """One worker process over `tree`, optionally confined by `sandbox`."""

    def __init__(
        self,
        tree: Path,
        output: Path,
        sandbox: SandboxConfig | None = None,
        env: dict[str, str] | None = None,
        name: str = "student",
        groups: tuple[str, ...] = (),
    ) -> None:
        """`groups`: control groups an unconfined worker is put in when it starts (a
        confined one joins its sandbox's own)."""
        self.tree = tree
        self.output = output
        self.sandbox = sandbox
        self.env = env or {}
        self.name = name
        self.groups = groups
        self.process: subprocess.Popen[bytes] | None = None
        self._requests = -1
        self._responses = -1
        self._next_id = 0
        self.starts = 0
        self._pause_depth = 0

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        threads = self.env.get("OMP_NUM_THREADS", "1")
        request_r, request_w = os.pipe()
        response_r, response_w = os.pipe()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
            "NUMBA_CACHE_DIR": "/tmp/numba-cache",
            # NumPy's BLAS starts a thread (and reserves its buffers) per core unless
            # told otherwise: on a many-core host that alone fills a worker's
            # address-space limit. It gets the worker's thread count (default 1).
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            **self.env,
        }
        with open(self.output, "ab") as output:
            self.process = subprocess.Popen(
                [*WORKER, str(request_r), str(response_w)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                pass_fds=(request_r, response_w),
                env=env,
                cwd="/",
                start_new_session=True,
            )
        os.close(request_r)
        os.close(response_w)
        self._requests, self._responses = request_w, response_r
        if self.groups and self.sandbox is None:
            try:
                cgroups.join(self.groups, self.process.pid)
            except OSError:
                pass  # the group is gone: the batch is ending
        self.starts += 1
        config = {
            "tree": str(self.tree),
            "sandbox": asdict(self.sandbox) if self.sandbox else None,
            "parent": os.getpid(),
        }
        try:
            wire.write_frame(self._requests, config)
            self._receive(time.monotonic() + START_TIMEOUT_S)
        except WorkerError as exc:
            self.kill()
            raise WorkerDied(f"the {self.name} worker failed to start: {exc}") from None

    def kill(self) -> None:
        """Kill the worker, everything it started, and close its pipes."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()  # reaped first: kill_uid waits for zombies of the uid
            if self.sandbox is not None:
                kill_uid(self.sandbox.uid)
        for fd in (self._requests, self._responses):
            if fd >= 0:
                os.close(fd)
        self._requests = self._responses = -1
        self.process = None

    close = kill

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every process of this worker's code stopped (SIGSTOP) for the block.

        The harness times the reference inside such a block: student code that starts
        helpers to slow the reference's timed runs down (spinning on the cores while
        its own code is not being timed) has nothing running then. With a sandbox,
        that is every process of its uid; without one, the worker's process group.
        Blocks nest: only the outermost one stops and continues.
        """
        if self._pause_depth or self.process is None or not self.alive:
            self._pause_depth += 1
            try:
                yield
            finally:
                self._pause_depth -= 1
            return
        self._pause_depth += 1
        try:
            if self.sandbox is not None:
                if not stop_uid(self.sandbox.uid):
                    # It forks faster than it can be stopped: it does not get to run on.
                    self.kill()
            else:
                _signal_group(self.process.pid, signal.SIGSTOP)
            yield
        finally:
            self._pause_depth -= 1
            if self.sandbox is not None:
                continue_uid(self.sandbox.uid)
            elif self.process is not None:
                _signal_group(self.process.pid, signal.SIGCONT)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def waited_seconds(self) -> float:
        """How long the worker's main thread has been ready to run but waiting for a
        CPU (the kernel's run-queue delay, /proc/PID/schedstat): the part of the wall
        clock that a busy host adds. 0.0 when no worker runs or the kernel keeps no
        such figure."""
        if self.process is None:
            return 0.0
        try:
            with open(f"/proc/{self.process.pid}/schedstat", "rb") as handle:
                return int(handle.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    # -- calls -------------------------------------------------------------------------
    def call(
        self,
        probe: dict[str, str],
        args: tuple[Any, ...],
        timeout: float,
        left: Callable[[], float] | None = None,
    ) -> Any:
        """Run a probe in the worker; its value, or the student's exception re-raised.

        `timeout`: wall-clock seconds at the most. `left()`, when given, says how
        much of the call's own time budget is left (asked about every POLL_S while
        the call runs): the call times out when that reaches 0, so a budget can
        count the worker's running time rather than the wall clock (see
        `waited_seconds`)."""
        if not self.alive:
            self.kill()
            self.start()
        self._next_id += 1
        request_id = self._next_id
        deadline = time.monotonic() + timeout
        try:
            wire.write_frame(
                self._requests, {"op": "run", "id": request_id, "probe": probe, "args": list(args)}
            )
        except wire.WireError:
            raise
        except OSError:
            raise self._died() from None
        response = self._receive(deadline, left)
        if response.get("id") != request_id:
            self.kill()
            raise WorkerDied("the worker answered out of turn (its protocol was tampered with)")
        if response.get("ok") is True:
            return response.get("value")
        raise student_exception(response.get("error"))

    def _receive(
        self, deadline: float, budget_left: Callable[[], float] | None = None
    ) -> dict[str, Any]:
        """The next frame from the worker, before `deadline` (and while `budget_left()`
        stays above 0).

        Every message raised here is the harness's own words: a worker has seen the
        hidden tests' probes and inputs, so nothing it sent may be quoted back
        (`wire.WireError` messages quote nothing from the frame).
        """

        def wait() -> None:
            while True:
                left = deadline - time.monotonic()
                if budget_left is not None:
                    if budget_left() <= 0:
                        left = 0
                    else:
                        left = min(left, POLL_S)
                if left > 0 and select.select([self._responses], [], [], left)[0]:
                    return
                if deadline - time.monotonic() <= 0 or budget_left is None or left <= 0:
                    self.kill()
                    raise WorkerTimeout("time limit exceeded (the call did not return in time)")

        try:
            return wire.unpack(lambda n: wire.read_into(self._responses, n, wait))
        except EOFError:
            raise self._died() from None
        except wire.WireError as exc:
            self.kill()
            raise WorkerDied(f"the worker sent malformed data ({exc})") from None

    def _died(self) -> WorkerDied:
        process = self.process
        try:
            code = process.wait(timeout=10) if process is not None else None
        except subprocess.TimeoutExpired:
            # It closed its end of the pipe but lives on: not an exit code to report.
            code = None
        self.kill()
        if code is None and process is not None:
            return WorkerDied("the worker closed its connection to the grader")
        return WorkerDied(describe_exit(code))


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def describe_exit(code: int | None) -> str:
    """Why a worker ended, in words for a student."""
    if code is None:
        return "the worker process ended"
    if code >= 0:
        return f"your code ended the process (exit code {code}) before the call returned"
    reasons = {
        signal.SIGKILL: "killed: out of memory or another resource limit",
        signal.SIGXCPU: "killed: CPU time limit exceeded",
        signal.SIGXFSZ: "killed: file size limit exceeded (too much output?)",
        signal.SIGSEGV: "crashed: segmentation fault",
        signal.SIGABRT: "crashed: aborted",
    }
    number = -code
    name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else number
    return f"the process was {reasons.get(number, f'killed by signal {name}')}"


def student_exception(error: Any) -> BaseException:
    """The harness-side exception for an error the student's code raised.

    A built-in exception type named by the worker is re-created (its name is the
    harness's own text); any other name becomes a `StudentException` that does not
    carry it. The message is the student's: shown for public tests only.
    """
    if not isinstance(error, dict):
        return WorkerDied("the worker sent a malformed error")
    name = error.get("type")
    message = str(error.get("message", ""))
    builtin = getattr(builtins, name, None) if isinstance(name, str) else None
    exc: BaseException = StudentException(message)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        try:
            exc = builtin(message)
        except Exception:
            pass  # needs other arguments (UnicodeDecodeError, ExceptionGroup)
    exc.student_traceback = str(error.get("traceback", ""))  # type: ignore[attr-defined]
    # The type's name as the student's code gave it, compared with the manifest's
    # fresh_worker_after only (a forged name can only get its own worker replaced).
    exc.student_type = name if isinstance(name, str) else ""  # type: ignore[attr-defined]
    return exc
