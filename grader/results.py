"""The results of grading: plain frozen dataclasses and their versioned JSON form.

One `SubmissionResult` per graded submission, holding one `TestResult` per test.
Every report (Gradescope, JUnit, Markdown feedback, Canvas CSV, terminal table)
is a separate writer of this data (`grader.reports`); nothing here formats.

What a student may see and what only staff may see are kept apart: `output` is
safe to show the student (subject to `visibility`), `staff_output` holds
tracebacks and assertion details of hidden tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

RESULTS_VERSION = 1

Status = Literal["passed", "failed", "error", "skipped", "did_not_run"]
#: Gradescope's visibility values: when a student sees the test.
Visibility = Literal["visible", "after_due_date", "after_published", "hidden"]
SubmissionStatus = Literal["graded", "rejected", "error"]


@dataclass(frozen=True)
class TestResult:
    """One test of one submission."""

    id: str  #: pytest node id, e.g. "hidden/test_ops.py::test_sigmoid"
    name: str  #: readable name shown to students
    task: str  #: task id, e.g. "hw1.1"
    points: float  #: points earned
    max_points: float  #: points this test is worth
    status: Status
    duration_s: float
    output: str = ""  #: what the student may see (truncated)
    visibility: Visibility = "visible"
    staff_output: str = ""  #: tracebacks, hidden assertion details (staff only)
    timing_ratio: float | None = None  #: student/reference time for timing checks


@dataclass(frozen=True)
class TaskScore:
    id: str
    title: str
    points: float
    max_points: float


@dataclass(frozen=True)
class Late:
    """What the late policy did to a submission's score (`grader.late`): the result's
    `score` is the final score, `raw_score` the tests' points before it."""

    raw_score: float  #: the tests' points
    due: str  #: the due date that applied (an extension's, if any), ISO 8601
    submitted_at: str  #: ISO 8601; "" when no time was known
    hours_late: float  #: after `due`, to the hundredth; 0.0 when not after it
    days_late: int  #: started days late (0 on time or within the grace period)
    free_days_used: int  #: days paid from the term's free late days
    penalty: float  #: points taken off the raw score
    free_days_left: int | None = None  #: after this assignment; None without a ledger
    notices: tuple[str, ...] = ()  #: e.g. a LATE mark without a time

    @property
    def paid_days(self) -> int:
        """The late days that cost points."""
        return self.days_late - self.free_days_used


@dataclass(frozen=True)
class SubmissionResult:
    """Everything known about grading one submission."""

    assignment: str
    submission: str  #: the submission's name: its folder or zip name without .zip
    key: str  #: hash of submission, manifest and grader version (the resume key)
    grader_version: str
    status: SubmissionStatus
    score: float
    max_score: float
    tasks: tuple[TaskScore, ...] = ()
    tests: tuple[TestResult, ...] = ()
    reason: str = ""  #: why it was rejected or could not be graded
    notices: tuple[str, ...] = ()  #: e.g. missing files, sandbox unavailable
    sandbox: str = ""  #: how student code was isolated
    started_at: str = ""  #: ISO 8601, UTC
    duration_s: float = 0.0
    version: int = RESULTS_VERSION
    #: The late policy's effect (None when it was not applied); `score` is final.
    late: Late | None = None


def to_dict(result: SubmissionResult) -> dict[str, Any]:
    """The JSON-ready form (tuples become lists)."""
    return dataclasses.asdict(result)


def from_dict(data: dict[str, Any]) -> SubmissionResult:
    """Read back what `to_dict` wrote; a newer or older version is an error."""
    if data.get("version") != RESULTS_VERSION:
        raise ValueError(f"results version {data.get('version')!r}, expected {RESULTS_VERSION}")
    fields = dict(data)
    fields["tasks"] = tuple(TaskScore(**t) for t in data.get("tasks", ()))
    fields["tests"] = tuple(TestResult(**t) for t in data.get("tests", ()))
    fields["notices"] = tuple(data.get("notices", ()))
    late = data.get("late")
    fields["late"] = Late(**{**late, "notices": tuple(late.get("notices", ()))}) if late else None
    return SubmissionResult(**fields)
