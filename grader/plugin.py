"""The pytest plugin of the grader: markers and per-test outcomes.

Registered through the `pytest11` entry point, so it loads wherever the
toolkit is installed; it is inert unless `--llmsys-results PATH` is given.
Then it keeps a journal of JSON lines at PATH: one record per collected test
(outcome "did_not_run") as soon as collection ends, the test's record again
each time it finishes (task, outcome, the exception that failed it), one per
collection error, and a last line `{"finished": true}`. `grader.records.read_results`
turns the journal into the tests' latest records. Appending a line per test keeps
the cost linear in the number of tests, and a session killed half-way leaves
every finished test's verdict (a torn last line is ignored). A test collected
several times (`--keep-duplicates`) is recorded afresh for each run, one line
each (`grader.records.read_runs`). Nothing here
runs student code; it only observes pytest.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Any

import pytest

from grader.records import RESULTS_FORMAT, new_record

MESSAGE_LIMIT = 2000

MARKERS = (
    "task(id, points=None): the task (hwN.K) whose points this test gives",
    "gpu: needs a CUDA GPU; skipped with a reason where there is none",
    "timing(check_id): a timing check of the manifest, comparing speed with the reference",
    "time_limit(seconds): this test's wall-clock limit when graded, instead of the "
    "manifest's limits.test_timeout_s (for tests that compile code first)",
    "rule: checks a rule of its task (e.g. that a library's finished implementation is "
    "not used); unless it passes, every test of the task earns 0 (give it points=0)",
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
    """The journal of one session (see the module docstring).

    Every collected test starts as "did_not_run", so if the session is killed
    half-way the journal still lists what never ran.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.items: dict[str, pytest.Item] = {}
        #: The test running now (a test collected twice, `--keep-duplicates`, has two
        #: items of one node id, each run recorded on its own).
        self.current: pytest.Item | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self.journal = open(path, "w", encoding="utf-8")
        self._append({"format": RESULTS_FORMAT})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.items[item.nodeid] = item
            self.records[item.nodeid] = _first_record(item)
        for record in self.records.values():
            self._append(record)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.when == "setup":  # a run starts from a clean record
            self.current = item
            record = self.records[item.nodeid] = {**_first_record(item), "outcome": "passed"}
        else:
            record = self.records.setdefault(item.nodeid, _first_record(item))
        record["duration"] += report.duration
        if report.failed and record["outcome"] not in ("failed", "error"):
            record["outcome"] = "failed" if call.when == "call" else "error"
            record["phase"] = call.when
            if call.excinfo is not None:
                record["error_type"] = call.excinfo.typename
                record["message"] = _truncate(_safe_str(call.excinfo.value))
                record["longrepr"] = _truncate(
                    format_failure(call.excinfo.value, item.config.rootpath), 8000
                )
            else:
                record["longrepr"] = _truncate(str(report.longrepr), 8000)
        elif report.skipped and record["outcome"] == "passed":
            record["outcome"] = "skipped"
            record["phase"] = call.when
            if isinstance(report.longrepr, tuple):  # (file, line, "Skipped: reason")
                record["message"] = _truncate(str(report.longrepr[2]))
        return report

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        current = self.current
        item = (
            current if current is not None and current.nodeid == nodeid else self.items.get(nodeid)
        )
        record = self.records.get(nodeid)
        if item is not None and record is not None:
            record["properties"] = {
                **record.get("properties", {}),
                **{
                    str(k): v if isinstance(v, (str, int, float)) else str(v)
                    for k, v in item.user_properties
                },
            }
            self._append(record)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            record = new_record(report.nodeid or "<collection>", None, None)
            record.update(outcome="error", phase="collect", message=_truncate(str(report.longrepr)))
            record["collection_error"] = True
            self._append(record)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._append({"finished": True})
        self.journal.close()

    def _append(self, entry: dict[str, Any]) -> None:
        # One write per line, flushed: a killed process leaves whole lines behind
        # (at worst one torn last line, which read_results skips).
        self.journal.write(json.dumps(entry) + "\n")
        self.journal.flush()


#: Frames of these files are pytest's, Hypothesis's or the grader's, not the test's.
_INTERNAL = ("/site-packages/", "/dist-packages/", "/_pytest/", "/pluggy/", "<frozen ")


def format_failure(exc: BaseException, root: Path | None = None) -> str:
    """The exception as a traceback of the test's own frames (test files and their
    helpers) and its message, with notes such as Hypothesis's falsifying example.

    Pytest's own failure report costs about 60 ms per failing test; a starter with
    hundreds of failing tests spent half a minute on it. Run pytest with --tb=no
    and this gives the same facts: where the test failed and the assertion's
    explanation (which pytest's assertion rewriting puts into the message).
    """
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not any(part in frame.filename for part in _INTERNAL)
        and not frame.filename.startswith(_GRADER_DIR)
    ]
    try:
        tail = "".join(traceback.format_exception_only(type(exc), exc))
    except Exception:
        tail = f"{type(exc).__name__}: <unprintable>\n"
    text = "".join(traceback.format_list(frames))
    if root is not None:
        # Paths of the test files as in the student's repo (tests/test_x.py), not
        # as in the grader's workspace.
        text = text.replace(str(root).rstrip("/") + "/", "")
    return text + tail


_GRADER_DIR = str(Path(__file__).resolve().parent) + os.sep


def _first_record(item: pytest.Item) -> dict[str, Any]:
    """A test's record before it runs: task, points, timing check; did not run."""
    task, points = task_of(item)
    record = new_record(item.nodeid, task, points)
    timing = item.get_closest_marker("timing")
    if timing is not None and timing.args:
        record["timing"] = str(timing.args[0])
    if item.get_closest_marker("rule") is not None:
        record["properties"] = {"rule": True}
    return record


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Head and tail of a long text, saying how much was cut."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"
