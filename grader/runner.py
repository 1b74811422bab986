"""Running probes in a worker within a test's time budget (the harness's side of a call).

A `Runner` owns one worker (`grader.workers`): the student's or the reference's.
Each test starts its clock (`begin_test`); a call gets what is left of the test's
budget, counted as the worker's own time (the wall clock less what it waited for
a CPU); a test that ran out, or whose worker crashed, fails every later call at
once, so Hypothesis does not shrink through a hundred time-outs.
"""

from __future__ import annotations

import inspect
import os
import textwrap
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from grader.workers import Worker, WorkerError, WorkerTimeout

OUTPUT_LIMIT = 64 * 1024
#: A test's budget counts its worker's own time (the wall clock less what the worker
#: waited for a CPU, `Runner.left`), so a busy host does not fail correct code; this
#: many budgets of wall clock is the hard bound all the same (code that sleeps or
#: waits on something else is stopped there).
LOAD_ALLOWANCE = 3.0
_IMPORT_PROBE = """
def probe_import(name):
    import importlib
    importlib.import_module(name)
"""


class HarnessTimeLimit(WorkerTimeout):
    """A test outlived its budget in the harness (not in a worker call): its own
    code, or pytest explaining a failed assertion, ran past the time limit."""


class Runner:
    """Runs probes in one worker, within the current test's time budget."""

    def __init__(self, worker: Worker, budget_s: float) -> None:
        self.worker = worker
        self.default_budget_s = budget_s
        self.budget_s = budget_s
        self._deadline = float("inf")
        self._started = float("inf")
        self._waited: tuple[int | None, float] = (None, 0.0)
        self._poison: WorkerError | None = None
        self._sources: dict[Callable[..., Any], dict[str, str]] = {}
        self._output_mark = 0
        self._fatal: WorkerError | None = None
        self._import_checked = False
        #: Held around each of this runner's calls, when set (see `Harness`).
        self.hold: Callable[[], AbstractContextManager[None]] | None = None
        #: A worker call is in progress; the call was interrupted (see `_worker_call`).
        self.in_call = False
        self.interrupted = False
        #: Runners whose workers share this test's clock (the student's and the
        #: reference's take turns): the time each waited for a CPU is the test's too.
        self.peers: tuple[Runner, ...] = ()
        #: Exception types of the worker's code after which the worker is replaced
        #: before the next test (the manifest's fresh_worker_after); `stale` is set
        #: when one was raised during this test.
        self.fresh_after: frozenset[str] = frozenset()
        self.stale = False

    def check_import(self, packages: Iterable[str]) -> None:
        """Import the student's packages once; if that fails, every later call fails
        at once with the reason (an import that hangs would otherwise cost every test
        its whole time limit). Later calls do nothing: the outcome is the session's."""
        if self._import_checked:
            return
        self._import_checked = True
        for package in packages:
            try:
                self._worker_call(
                    {"source": _IMPORT_PROBE, "name": "probe_import"},
                    (package,),
                    self.budget_s * LOAD_ALLOWANCE,
                    self.left,
                )
            except WorkerError as exc:
                self._fatal = type(exc)(f"importing {package} failed: {exc}")
                return
            except Exception as exc:
                self._fatal = WorkerError(
                    f"importing {package} failed: {type(exc).__name__}: {exc}"
                )
                return

    def run(self, probe: Callable[..., Any], *args: Any) -> Any:
        """Call `probe(*args)` in the worker and return its (plain data) value."""
        if probe not in self._sources:
            source = textwrap.dedent(inspect.getsource(probe))
            self._sources[probe] = {"source": source, "name": probe.__name__}
        return self._call(self._sources[probe], args)

    def source(self, path: str) -> str:
        """The text of file `path` of the worker's tree, read here, in the harness: a
        rule check (e.g. no finished library implementation) must not ask student
        code about itself. A path out of the tree or through a link is refused."""
        root = Path(self.worker.tree).resolve()
        target = root / path
        if target.resolve() != target or not target.is_relative_to(root):
            raise ValueError(f"{path}: not a file of the submission's tree")
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, encoding="utf-8", errors="replace") as handle:
            return handle.read(4 * 1024 * 1024)

    def call(self, path: str, *args: Any) -> Any:
        """Call the function at dotted `path` (e.g. "minitorch.operators.mul")."""
        return self._call({"path": path}, args)

    def _call(self, probe: dict[str, str], args: tuple[Any, ...]) -> Any:
        if self._fatal is not None:
            raise type(self._fatal)(str(self._fatal))
        if self._poison is not None:
            raise type(self._poison)(str(self._poison))
        wall_left = self._deadline - time.monotonic()
        if wall_left <= 0 or self.left() <= 0:
            self._poison = WorkerTimeout(f"test time limit ({self.budget_s:g} s) exceeded")
            raise self._poison
        try:
            return self._worker_call(probe, args, wall_left, self.left)
        except HarnessTimeLimit:
            raise
        except WorkerTimeout:
            self._poison = WorkerTimeout(f"test time limit ({self.budget_s:g} s) exceeded")
            raise self._poison from None
        except WorkerError as exc:
            self._poison = exc
            raise

    def _worker_call(
        self,
        probe: dict[str, str],
        args: tuple[Any, ...],
        timeout: float,
        left: Callable[[], float] | None = None,
    ) -> Any:
        """`worker.call`, killing the worker if something interrupts the call (the
        harness's timer, Ctrl-C): a request or a response may be half-sent, and the
        next call must not read the rest of an old frame as its answer."""
        self.in_call = True
        try:
            with self.hold() if self.hold is not None else nullcontext():
                return self.worker.call(probe, args, timeout=timeout, left=left)
        except BaseException as exc:
            # A student's exception came in a whole frame; the worker's own errors
            # (time limit, crash, bad data) have killed it already.
            answered = hasattr(exc, "student_traceback") or (
                isinstance(exc, WorkerError) and not isinstance(exc, HarnessTimeLimit)
            )
            if getattr(exc, "student_type", None) in self.fresh_after:
                self.stale = True
            if not answered:
                self.interrupted = True
                self.worker.kill()
            raise
        finally:
            self.in_call = False

    def expire(self, error: HarnessTimeLimit) -> None:
        """The test's time is up: every later call of this test fails with `error`."""
        self._poison = error

    def begin_test(self, budget_s: float | None = None) -> None:
        """Start a test's clock: `budget_s` seconds (default: the manifest's limit) of
        the test's own time (see `left`), and LOAD_ALLOWANCE times that of wall clock
        at the most."""
        self.budget_s = self.default_budget_s if budget_s is None else budget_s
        self._started = time.monotonic()
        self._deadline = self._started + self.budget_s * LOAD_ALLOWANCE
        self._waited = (self._worker_pid(), self.worker.waited_seconds())
        self._poison = None
        self._output_mark = _size(self.worker.output)

    def left(self) -> float:
        """Seconds of the test's budget left: the wall clock since the test began, less
        the time this worker's code and its peers' was ready to run but waited for a
        CPU that other work held (`Worker.waited_seconds`). On an idle host that is the
        wall clock; on a busy one, the test is not charged for the host's load."""
        delay = self.delay() + sum(peer.delay() for peer in self.peers)
        return self.budget_s - (time.monotonic() - self._started - delay)

    def delay(self) -> float:
        """Seconds this worker waited for a CPU since the test began."""
        if self._started == float("inf"):
            return 0.0
        pid, waited = self._waited
        now_waited = self.worker.waited_seconds()
        # A worker started during the test has waited only since it started.
        return max(now_waited - waited if self._worker_pid() == pid else now_waited, 0.0)

    def _worker_pid(self) -> int | None:
        process = self.worker.process
        return process.pid if process is not None else None

    def end_test(self) -> str:
        """What the worker printed during the test (head and tail if long). A stale
        worker (see `fresh_after`) is stopped here: the next call starts a new one."""
        self._deadline = float("inf")
        self._started = float("inf")
        self._poison = None
        output = read_output(self.worker.output, self._output_mark)
        if self.stale:
            self.worker.kill()
            self.stale = False
        return output


def share_clock(*runners: Runner) -> None:
    """One clock per test for runners whose workers take turns (the student's and the
    reference's): the time any of them waited for a CPU is not charged to the test."""
    for runner in runners:
        runner.peers = tuple(other for other in runners if other is not runner)


def read_output(path: Path, start: int, limit: int = OUTPUT_LIMIT) -> str:
    """Bytes `start`.. of `path`, keeping head and tail of long output."""
    size = _size(path)
    if size <= start:
        return ""
    with open(path, "rb") as handle:
        handle.seek(start)
        if size - start <= limit:
            data = handle.read(limit)
            return data.decode("utf-8", "replace")
        head = handle.read(limit // 2)
        handle.seek(size - limit // 2)
        tail = handle.read(limit // 2)
    cut = size - start - limit
    return (
        f"{head.decode('utf-8', 'replace')}\n... [{cut} bytes of output cut] ...\n"
        f"{tail.decode('utf-8', 'replace')}"
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_budget(item: pytest.Item) -> float | None:
    """The seconds of a test's `time_limit` marker, or None (the manifest's limit)."""
    marker = item.get_closest_marker("time_limit")
    if marker is None:
        return None
    if len(marker.args) != 1 or not isinstance(marker.args[0], (int, float)) or marker.args[0] <= 0:
        raise pytest.UsageError(
            f"{item.nodeid}: time_limit takes one positive number of seconds, "
            f"e.g. @pytest.mark.time_limit(60)"
        )
    return float(marker.args[0])
