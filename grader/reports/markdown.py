"""Markdown feedback: `feedback` for the student, `staff_feedback` for the course staff.

The student's version shows a test's `output` only when its visibility is "visible"
(and only when it did not pass); for other visibilities it shows the test's name
and status and says "details are hidden". It never shows `staff_output`.
The staff version shows everything, `staff_output` included.
"""

from __future__ import annotations

import re

from grader.reports import format_points
from grader.results import Late, SubmissionResult, TestResult

HIDDEN_DETAILS = "details are hidden"

_STATUS_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "error": "error",
    "skipped": "skipped",
    "did_not_run": "did not run",
}


def _passed(test: TestResult) -> bool:
    return test.status == "passed" and test.points >= test.max_points


def _cell(text: str) -> str:
    """Text that keeps a Markdown table intact: no pipes or line breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def _inline(text: str) -> str:
    """Text shown inline, with the characters Markdown would act on escaped."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", " ".join(text.split()))


def _code(text: str) -> str:
    """Text as an inline code span (backticks inside it would end the span early)."""
    return "`" + " ".join(text.replace("`", "'").split()) + "`"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _fenced(text: str, info: str = "text") -> list[str]:
    """`text` in a fenced code block whose fence is longer than any backtick run inside
    (terminal colour codes removed: Markdown shows them as junk)."""
    text = _ANSI.sub("", text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text.rstrip("\n"), fence]


def _points(points: float, max_points: float) -> str:
    return f"{format_points(points)}/{format_points(max_points)}"


def _header(result: SubmissionResult) -> list[str]:
    lines = [
        f"# {_inline(result.assignment)}: {_points(result.score, result.max_score)} points",
        "",
        f"Submission: {_code(result.submission)}",
        "",
    ]
    if result.status == "rejected":
        reason = _inline(result.reason or "no reason given")
        lines += [f"**Your submission was rejected:** {reason}", ""]
    elif result.status == "error":
        lines += [
            "**Your submission could not be graded.** This is not your fault; the course "
            f"staff will look into it. ({_inline(result.reason or 'no reason given')})",
            "",
        ]
    elif result.reason:
        lines += [_inline(result.reason), ""]
    if result.notices:
        lines += ["## Notices", ""]
        lines += [f"- {_inline(notice)}" for notice in result.notices]
        lines += [""]
    if result.late is not None:
        lines += ["## Late policy", ""]
        lines += [f"- {_inline(line)}" for line in late_lines(result.late, result.max_score)]
        lines += [""]
    if result.tasks:
        lines += ["## Tasks", "", "| Task | Title | Points |", "|---|---|---:|"]
        lines += [
            f"| {_cell(t.id)} | {_cell(t.title)} | {_points(t.points, t.max_points)} |"
            for t in result.tasks
        ]
        lines += [""]
    return lines


def late_lines(late: Late, max_score: float) -> list[str]:
    """The late policy's lines of a result (`grader.late`), as plain text."""
    submitted = f"submitted {late.submitted_at}" if late.submitted_at else "no submission time"
    if late.days_late == 0:
        lateness = "on time" if late.hours_late == 0 else "on time (within the grace period)"
    else:
        lateness = f"{late.days_late} day(s) late"
    if late.hours_late:
        lateness += f", {late.hours_late:g} hour(s) after the due date"
    free = f"Free late days used: {late.free_days_used}"
    if late.free_days_left is not None:
        free += f" ({late.free_days_left} left)"
    final = late.raw_score - late.penalty
    return [
        f"Due {late.due}; {submitted}: {lateness}",
        free,
        f"Penalty: {format_points(late.penalty)} point(s) for {late.paid_days} day(s)",
        f"Score: {_points(late.raw_score, max_score)} before the late policy, "
        f"{_points(final, max_score)} after",
        *late.notices,
    ]


def _test_lines(test: TestResult, *, staff: bool) -> list[str]:
    icon = "✅" if _passed(test) else "❌"
    status = _STATUS_WORDS.get(test.status, test.status)
    if not staff and test.visibility != "visible":
        return [f"- {icon} {_inline(test.name)} ({status}): {HIDDEN_DETAILS}"]
    line = f"- {icon} {_inline(test.name)} ({status}): {_points(test.points, test.max_points)}"
    if staff:
        line += f" {_code(test.id)} ({test.visibility})"
    lines = [line]
    if test.output and (staff or not _passed(test)):
        lines += ["", *_indent(_fenced(test.output)), ""]
    if staff and test.staff_output:
        if lines[-1]:
            lines += [""]
        lines += ["  Staff only:", "", *_indent(_fenced(test.staff_output)), ""]
    return lines


def _indent(lines: list[str]) -> list[str]:
    """Lines indented to belong to the list item above them."""
    return ["  " + line if line else line for line in "\n".join(lines).split("\n")]


def _render(result: SubmissionResult, *, staff: bool) -> str:
    lines = _header(result)
    titles = {t.id: t.title for t in result.tasks}
    # Tests in the order of the task table; tests of a task not in it come last.
    task_ids = dict.fromkeys([*titles, *(t.task for t in result.tests)])
    for task_id in task_ids:
        tests = [t for t in result.tests if t.task == task_id]
        if not tests:
            continue
        heading = f"## {_inline(task_id)}"
        if titles.get(task_id):
            heading += f" {_inline(titles[task_id])}"
        lines += [heading, ""]
        for test in tests:
            lines += _test_lines(test, staff=staff)
        lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def feedback(result: SubmissionResult) -> str:
    """Markdown feedback for the student: scores, notices, per-task tests.

    Hidden tests (visibility other than "visible") show only their name, status and
    "details are hidden"; `staff_output` is never included.
    """
    return _render(result, staff=False)


def staff_feedback(result: SubmissionResult) -> str:
    """Markdown feedback for the course staff: as `feedback`, plus every test's output,
    id, visibility and `staff_output`."""
    return _render(result, staff=True)
