"""From the harness's per-test records to points, per test and per task.

Pure functions over typed records: no files, no processes. Rules:
- a task's points are shared by its tests: a test's `points=` marker argument
  fixes its share, the rest is split evenly among the others;
- a test earns its points only when it passed (timing checks earn a fraction,
  from the curve over the student/reference time ratio);
- skipped, failed, errored and never-run tests earn nothing, each with its reason;
- a task whose submitted file is missing fails all its tests with that reason;
- a task whose `rule` test (e.g. "no finished library implementation") did not
  pass earns nothing: each of its tests says which rule;
- a test that failed only through the student's files of other tasks (it passes
  when those are replaced by working ones: `composed_pass`, see grader.rerun) passes,
  and its output says so.
What a student may read (`output`) is kept apart from what staff may read
(`staff_output`): for hidden tests, the student sees only the name, the status and
the type of the student's own exception, never assertion details or the student's printed
output (which could echo hidden inputs).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from grader.manifest import Assignment
from grader.records import TestRecord
from grader.results import Status, TaskScore, TestResult

HIDDEN_PREFIX = "hidden/"
OUTPUT_LIMIT = 4000


def timing_credit(ratio: float, full: float, zero: float) -> float:
    """Fraction of credit for a student/reference time ratio: 1 at or below `full`,
    0 at or above `zero`, linear in between."""
    if ratio <= full:
        return 1.0
    if ratio >= zero:
        return 0.0
    return (zero - ratio) / (zero - full)


def allocate(a: Assignment, records: Sequence[TestRecord]) -> dict[str, float]:
    """nodeid -> the points that test is worth."""
    worth: dict[str, float] = {}
    checks = {check.id: check for check in a.timing}
    for task in a.tasks:
        mine = [r for r in records if r.task == task.id]
        timed = {
            r.nodeid: float(checks[r.timing].points)
            for r in mine
            if r.timing in checks and r.points is None
        }
        worth.update(timed)
        mine = [r for r in mine if r.nodeid not in timed]
        fixed = [r for r in mine if r.points is not None]
        free = [r for r in mine if r.points is None]
        rest = task.points - sum(timed.values()) - sum(r.points or 0.0 for r in fixed)
        for r in fixed:
            worth[r.nodeid] = float(r.points or 0.0)
        for r in free:
            worth[r.nodeid] = max(rest, 0.0) / len(free)
    return worth


def score_tests(
    a: Assignment,
    records: Sequence[TestRecord],
    missing: Sequence[str] = (),
    not_run_reason: str = "did not run",
) -> tuple[TestResult, ...]:
    """One TestResult per recorded test of a known task."""
    worth = allocate(a, records)
    missing_by_task = {t.id: [f for f in t.files if f in missing] for t in a.tasks}
    results = []
    for r in records:
        if r.task not in missing_by_task:
            continue
        nodeid = r.nodeid
        hidden = nodeid.startswith(HIDDEN_PREFIX)
        status, output, staff = _status_and_output(r, hidden, not_run_reason)
        if r.composed_pass and status == "did_not_run":
            status = "passed"
            output = (
                "passed in a second run, with working files for the other tasks (the first "
                "run reached its share of the time limit before this test)"
            )
        elif r.composed_pass and status != "passed":
            status = "passed"
            output = _clip(
                "passed with working files for the other tasks (with your own files it "
                f"fails like this):\n{output}"
            )
        lost = missing_by_task[r.task]
        if lost:
            status = "failed"
            output = f"file {lost[0]} missing from submission"
        max_points = worth.get(nodeid, 0.0)
        ratio = r.properties.get("timing_ratio")
        credit = r.properties.get("timing_credit")
        if status == "passed" and isinstance(credit, (int, float)):
            earned = max_points * min(max(float(credit), 0.0), 1.0)
        else:
            earned = max_points if status == "passed" else 0.0
        results.append(
            TestResult(
                id=nodeid,
                name=nodeid.split("/", 1)[-1],
                task=r.task,
                points=round(earned, 6),
                max_points=round(max_points, 6),
                status=status,
                duration_s=round(r.duration, 4),
                output=_clip(output),
                visibility="after_due_date" if hidden else "visible",
                staff_output=_clip(staff, 16000),
                timing_ratio=float(ratio) if isinstance(ratio, (int, float)) else None,
            )
        )
    return _apply_rules(records, results)


def _apply_rules(
    records: Sequence[TestRecord], results: list[TestResult]
) -> tuple[TestResult, ...]:
    """Zero every test of a task one of whose `rule` tests did not pass."""
    rules = {r.nodeid for r in records if r.properties.get("rule")}
    broken: dict[str, str] = {}
    for t in results:
        if t.id in rules and t.status != "passed" and t.task not in broken:
            broken[t.task] = t.name
    out = []
    for t in results:
        rule = broken.get(t.task)
        if rule is not None and t.id not in rules and t.points:
            note = f"0 points: task {t.task} breaks the rule that {rule} checks"
            t = replace(t, points=0.0, output=_clip(f"{note}\n{t.output}".rstrip()))
        out.append(t)
    return tuple(out)


def score_tasks(a: Assignment, tests: Sequence[TestResult]) -> tuple[TaskScore, ...]:
    return tuple(
        TaskScore(
            task.id,
            task.title,
            round(sum(t.points for t in tests if t.task == task.id), 4),
            float(task.points),
        )
        for task in a.tasks
    )


def _status_and_output(r: TestRecord, hidden: bool, not_run_reason: str) -> tuple[Status, str, str]:
    outcome = r.outcome
    props = r.properties
    origin = props.get("origin", "test")
    student_output = str(props.get("student_output", ""))
    own_error = f"{r.error_type}: {r.message}".strip()
    staff = "\n\n".join(
        part
        for part in (
            r.longrepr,
            str(props.get("student_traceback", "")),
            f"--- student output ---\n{student_output}" if student_output else "",
        )
        if part
    )
    if outcome == "passed":
        return "passed", "", staff
    if outcome == "did_not_run":
        return "did_not_run", not_run_reason, staff
    if outcome == "skipped":
        return "skipped", f"skipped: {r.message}", staff
    status: Status = "failed" if outcome == "failed" else "error"
    if origin == "worker":
        visible = own_error
    elif origin == "student":
        # A hidden test shows only the type: an exception message could echo hidden inputs.
        visible = f"your code raised {_builtin_type(r.error_type)}" if hidden else own_error
    elif hidden:
        visible = "wrong result (details of hidden tests are not shown)"
    else:
        visible = r.longrepr or own_error
    if not hidden and student_output:
        visible += f"\n\n--- your code printed ---\n{student_output}"
    return status, visible, staff


def _builtin_type(name: Any) -> str:
    """`name` when it names a built-in exception class, else words of our own.

    Student code chooses its exception classes' names, and it has seen the hidden
    tests' inputs: only a built-in name may be shown for a hidden test.
    """
    builtin = getattr(builtins, name, None) if isinstance(name, str) else None
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return str(name)
    return "an exception of a class of its own"


def _clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"
