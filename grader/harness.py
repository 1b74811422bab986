"""The grading harness: a pytest plugin loaded with `-p grader.harness` in grading runs.

It runs in the trusted harness process, which never imports student code:
- importing a student package here (e.g. `minitorch`) raises ImportError, so a
  test that forgot to go through a probe fails loudly instead of testing the
  wrong code;
- the `student` fixture runs probes in a sandboxed worker over the student's
  tree; `reference` runs them in a worker over the reference tree;
- every test has a wall-clock budget; a test that exceeds it, or whose worker
  crashes, fails with the reason, and later calls in that test fail at once (so
  Hypothesis does not shrink through a hundred timeouts);
- the budget also holds in the harness itself: a timer (SIGALRM) fails a test
  that outlives it, whatever it is doing, e.g. explaining a failed comparison of
  long lists (`HarnessTimeLimit`);
- what the student's code printed during a test is attached to its record.

Configuration: the `HarnessConfig` (grader.records) given by `--llmsys-harness`.
"""

from __future__ import annotations

import importlib.abc
import os
import signal
import sys
import threading
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.hypothesis_inputs import same_inputs_on_every_grader
from grader.records import HarnessConfig
from grader.runner import LOAD_ALLOWANCE, HarnessTimeLimit, Runner, share_clock, test_budget
from grader.sandbox import PARENT_ENV, die_with_parent
from grader.timing import TimingFixture
from grader.workers import Worker, WorkerError

#: The harness's timer fires this long after a test's wall-clock bound (plus a tenth of the budget):
#: a call past the budget is stopped by its own deadline, whose clean-up takes up to about 2 s.
TIMER_MARGIN_S = 2.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("llmsys").addoption(
        "--llmsys-harness",
        metavar="CONFIG",
        default=None,
        help="grade: JSON configuration of the harness (trees, sandbox, limits)",
    )


class StudentImportGuard(importlib.abc.MetaPathFinder):
    """Refuses imports of the student's packages in the harness process."""

    def __init__(self, packages: Iterable[str]) -> None:
        self.packages = set(packages)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.split(".")[0] in self.packages:
            raise ImportError(
                f"the grading harness does not import {fullname!r}: tests reach student code "
                "only through the `student` fixture (student.run(probe, ...))"
            )


class Harness:
    """The plugin object: owns the workers of one grading session."""

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        logs = Path(config.logs)
        budget = config.test_timeout_s
        env = dict(config.env)
        # The GPUs the batch gave this submission (the local backend sets this for the
        # harness): workers start with an environment of their own, and without it
        # they would all use the host's first GPU, whatever submission they belong to.
        if "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        self.student_runner = Runner(
            Worker(
                Path(config.student_tree),
                logs / "student.log",
                config.sandbox,
                env,
                name="student",
            ),
            budget,
        )
        # The reference's worker keeps its files in a folder of the harness, out of
        # reach of student code (which shares /tmp with it inside a container).
        home = config.reference_home
        reference_env = {
            **env,
            "HOME": home,
            "TMPDIR": home,
            "NUMBA_CACHE_DIR": f"{home}/numba-cache",
        }
        self.reference_runner = Runner(
            Worker(
                Path(config.reference_tree),
                logs / "reference.log",
                None,
                reference_env,
                name="reference",
                groups=config.reference_cgroups,
            ),
            budget,
        )
        if config.sandbox is not None and not config.sandbox.namespaces:
            # In a container the student's processes share the network (its loopback)
            # with the reference's worker: one left running could talk to the
            # reference's ranks in a distributed test. They are held stopped while
            # the reference runs (the local sandbox gives them a network of their own).
            self.reference_runner.hold = self.student_runner.worker.paused
        self.student_runner.fresh_after = frozenset(config.fresh_worker_after)
        share_clock(self.student_runner, self.reference_runner)  # they take turns
        self.guard = StudentImportGuard(config.student_packages)
        # The harness's own clock of the current test (see `_on_alarm`).
        self._limit_s = 0.0
        self._expired: HarnessTimeLimit | None = None
        self._reported = False
        self._phase: str | None = None
        self._timer = False
        self._previous_alarm: Any = None

    @property
    def runners(self) -> tuple[Runner, Runner]:
        return (self.student_runner, self.reference_runner)

    def pytest_configure(self, config: pytest.Config) -> None:
        sys.meta_path.insert(0, self.guard)
        for folder in self.config.import_paths:
            sys.path.insert(0, folder)
        # Signals reach the main thread only; elsewhere worker calls' deadlines bound.
        self._timer = threading.current_thread() is threading.main_thread()
        if self._timer:
            self._previous_alarm = signal.signal(signal.SIGALRM, self._on_alarm)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_alarm)
            self._timer = False
        for runner in self.runners:
            runner.worker.kill()

    # -- the harness's own clock -----------------------------------------------------
    # A worker call cannot outlast the test's budget, but the harness's side of a
    # test can: its own code, or pytest explaining a failed assertion (a full diff
    # of two long lists took minutes). The timer fails the test past its budget
    # whatever the harness is doing then.

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self._expired is not None or not self._limit_s:
            return  # once per test, and never between tests
        while_calling = any(runner.in_call for runner in self.runners)
        self._expired = HarnessTimeLimit(
            f"the test's time limit ({self._limit_s:g} s) was exceeded "
            + (
                "(the call did not return in time)"
                if while_calling
                else "while checking the result"
            )
        )
        for runner in self.runners:
            runner.expire(self._expired)
        if self._phase is not None:
            raise self._time_limit()
        # Between the phases of a test (pytest reporting): the next one fails at once.

    def _time_limit(self) -> HarnessTimeLimit:
        assert self._expired is not None
        return HarnessTimeLimit(str(self._expired))

    def _guard(self, phase: str) -> Generator[None, Any, Any]:
        """Run one phase of a test (setup, call, teardown) where the timer may raise.

        Once the time is up the phase fails with `HarnessTimeLimit`, whatever it
        raised instead: pytest turns an exception inside an assertion's explanation
        into text, and Hypothesis reports what its replay raised.
        """
        if self._expired is not None and not self._reported and phase != "teardown":
            self._reported = True
            raise self._time_limit()
        self._phase = phase
        try:
            result = yield
        except (KeyboardInterrupt, SystemExit, pytest.exit.Exception):
            self._phase = None
            raise
        except BaseException as exc:
            self._phase = None
            if self._expired is None or self._reported:
                raise
            self._reported = True
            if isinstance(exc, HarnessTimeLimit):
                raise
            raise self._time_limit() from None
        self._phase = None
        if self._expired is not None and not self._reported:
            self._reported = True
            raise self._time_limit()
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._guard("setup"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._guard("call"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: Any
    ) -> Generator[None, Any, Any]:
        return (yield from self._guard("teardown"))

    @pytest.fixture(scope="session")
    def student(self) -> Runner:
        self.student_runner.check_import(self.config.student_packages)
        return self.student_runner

    @pytest.fixture(scope="session")
    def reference(self) -> Runner:
        return self.reference_runner

    @pytest.fixture
    def timing(self, request: pytest.FixtureRequest) -> TimingFixture:
        marker = request.node.get_closest_marker("timing")
        checks = {c.id: c for c in self.config.timing}
        if marker is None or not marker.args or marker.args[0] not in checks:
            raise pytest.UsageError(
                f"{request.node.nodeid}: a timing test needs @pytest.mark.timing('<check id>') "
                f"naming a timing check of the manifest (known: {', '.join(checks) or 'none'})"
            )
        student = self.student_runner
        student.check_import(self.config.student_packages)
        return TimingFixture(student, self.reference_runner, request.node, checks[marker.args[0]])

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Any) -> Iterator[None]:
        budget = test_budget(item)
        self.student_runner.begin_test(budget)
        self.reference_runner.begin_test(budget)
        self._limit_s = self.student_runner.budget_s
        self._expired, self._reported = None, False
        if self._timer:
            margin = TIMER_MARGIN_S + self._limit_s / 10
            signal.setitimer(signal.ITIMER_REAL, self._limit_s * LOAD_ALLOWANCE + margin)
        try:
            return (yield)
        finally:
            if self._timer:
                signal.setitimer(signal.ITIMER_REAL, 0)
            self._limit_s = 0.0
            for runner in self.runners:
                if runner.interrupted:
                    # Killed when its call was cut short; again here, with the timer
                    # off, in case that clean-up was itself cut short.
                    runner.worker.kill()
                    runner.interrupted = False
            self.reference_runner.end_test()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.when == "teardown":
            output = self.student_runner.end_test()
            if output:
                item.user_properties.append(("student_output", output))
        if call.excinfo is not None:
            exc = call.excinfo.value
            origin = (
                "worker"
                if isinstance(exc, WorkerError)
                else "student"
                if hasattr(exc, "student_traceback")
                else "test"
            )
            item.user_properties.append(("origin", origin))
            if origin == "student":
                item.user_properties.append(("student_traceback", exc.student_traceback))
        return report


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("llmsys_harness")
    if path:
        # A grader killed outright (SIGKILL) must not leave its harness grading on:
        # not even one killed while this process was starting (the local backend
        # names itself as the parent; in a container the harness is alone).
        parent = os.environ.get(PARENT_ENV)
        die_with_parent(int(parent) if parent else None)
        same_inputs_on_every_grader()
        harness = Harness(HarnessConfig.read(Path(path)))
        # pytest_configure is historic: the harness's own one runs on registration.
        config.pluginmanager.register(harness, "llmsys-harness")
