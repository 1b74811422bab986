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
    "timing: compares the speed of the student's code with the reference",
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
    """Collects one record per test and writes them all at the end of the session."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        task, points = task_of(item)
        record = self.records.setdefault(item.nodeid, _record(item.nodeid, task, points))
        record["duration"] += report.duration
        if report.failed and record["outcome"] not in ("failed", "error"):
            record["outcome"] = "failed" if call.when == "call" else "error"
            record["phase"] = call.when
            if call.excinfo is not None:
                record["error_type"] = call.excinfo.typename
                record["message"] = _truncate(str(call.excinfo.value))
        elif report.skipped and record["outcome"] == "passed":
            record["outcome"] = "skipped"
            record["phase"] = call.when
            if isinstance(report.longrepr, tuple):  # (file, line, "Skipped: reason")
                record["message"] = _truncate(str(report.longrepr[2]))
        return report

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            record = _record(report.nodeid or "<collection>", None, None)
            record.update(outcome="error", phase="collect", message=_truncate(str(report.longrepr)))
            self.records[record["nodeid"]] = record

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        write_json_atomic(
            self.path, {"format": RESULTS_FORMAT, "tests": list(self.records.values())}
        )


def _record(nodeid: str, task: str | None, points: float | None) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "task": task,
        "points": points,
        "outcome": "passed",
        "phase": None,
        "error_type": None,
        "message": "",
        "duration": 0.0,
    }


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


def _truncate(text: str) -> str:
    if len(text) <= MESSAGE_LIMIT:
        return text
    half = MESSAGE_LIMIT // 2
    return f"{text[:half]}\n... [{len(text) - MESSAGE_LIMIT} characters cut] ...\n{text[-half:]}"
