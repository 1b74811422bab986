"""The pytest plugin of the grader: markers and per-test outcomes.

Registered through the `pytest11` entry point, so it loads wherever the
toolkit is installed; it is inert unless `--llmsys-results PATH` is given.
Then it writes, at the end of the session, one JSON record per test (and per
collection error) with the test's task, outcome and the exception that
failed it. Nothing here runs student code; it only observes pytest.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

RESULTS_FORMAT = 1
MESSAGE_LIMIT = 2000

MARKERS = (
    "task(id, points=None): the task (hwN.K) whose points this test gives",
    "gpu: needs a CUDA GPU; skipped with a reason where there is none",
    "timing(check_id): a timing check of the manifest, comparing speed with the reference",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmsys")
    group.addoption(
        "--llmsys-results",
        metavar="PATH",
        default=None,
        help="write every test's task and outcome to PATH as JSON",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    path = config.getoption("llmsys_results")
    if path:
        config.pluginmanager.register(ResultsRecorder(Path(path)), "llmsys-results")


def task_of(item: pytest.Item) -> tuple[str | None, float | None]:
    """The (task id, points) a test's `task` marker gives, or (None, None)."""
    marker = item.get_closest_marker("task")
    if marker is None or len(marker.args) != 1 or not isinstance(marker.args[0], str):
        return None, None
    points = marker.kwargs.get("points")
    return marker.args[0], float(points) if points is not None else None


class ResultsRecorder:
    """One record per test, written after every test (atomically) and at the end.

    Every collected test starts as "did_not_run", so if the session is killed
    half-way the file still lists what never ran.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.items: dict[str, pytest.Item] = {}
        self.collection_errors: list[dict[str, Any]] = []
        self.finished = False

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            task, points = task_of(item)
            self.items[item.nodeid] = item
            self.records[item.nodeid] = _record(item.nodeid, task, points)
            timing = item.get_closest_marker("timing")
            if timing is not None and timing.args:
                self.records[item.nodeid]["timing"] = str(timing.args[0])
        self._write()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        task, points = task_of(item)
        record = self.records.setdefault(item.nodeid, _record(item.nodeid, task, points))
        if call.when == "setup":
            record["outcome"] = "passed"
        record["duration"] += report.duration
        if report.failed and record["outcome"] not in ("failed", "error"):
            record["outcome"] = "failed" if call.when == "call" else "error"
            record["phase"] = call.when
            if call.excinfo is not None:
                record["error_type"] = call.excinfo.typename
                record["message"] = _truncate(_safe_str(call.excinfo.value))
            record["longrepr"] = _truncate(str(report.longrepr), 8000)
        elif report.skipped and record["outcome"] == "passed":
            record["outcome"] = "skipped"
            record["phase"] = call.when
            if isinstance(report.longrepr, tuple):  # (file, line, "Skipped: reason")
                record["message"] = _truncate(str(report.longrepr[2]))
        return report

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        item = self.items.get(nodeid)
        if item is not None and nodeid in self.records:
            self.records[nodeid]["properties"] = {
                str(k): v if isinstance(v, (str, int, float)) else str(v)
                for k, v in item.user_properties
            }
        self._write()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            record = _record(report.nodeid or "<collection>", None, None)
            record.update(outcome="error", phase="collect", message=_truncate(str(report.longrepr)))
            self.collection_errors.append(record)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.finished = True
        self._write()

    def _write(self) -> None:
        write_json_atomic(
            self.path,
            {
                "format": RESULTS_FORMAT,
                "finished": self.finished,
                "tests": [*self.collection_errors, *self.records.values()],
            },
        )


def _record(nodeid: str, task: str | None, points: float | None) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "task": task,
        "points": points,
        "outcome": "did_not_run",
        "phase": None,
        "error_type": None,
        "message": "",
        "longrepr": "",
        "duration": 0.0,
        "properties": {},
    }


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Head and tail of a long text, saying how much was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"
