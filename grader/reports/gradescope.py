"""Gradescope's autograder results: the `results.json` that `run_autograder` leaves behind.

Format (Gradescope's "Autograder Specifications",
https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level `score`
(it overrides the sum of the tests' scores), optional `execution_time` (seconds),
`output`, `output_format`, `visibility`, `stdout_visibility`, `extra_data` and a
`tests` list whose entries have `score`, `max_score`, `status` ("passed"/"failed"),
`name`, `number`, `output`, `tags`, `visibility` and `extra_data`. Visibility is one
of "hidden", "after_due_date", "after_published", "visible". `gradescope_schema.json`
beside this file states that format as a JSON Schema.

What goes to Gradescope is what a student may see: each test's `output`, never its
`staff_output`; Gradescope itself applies each test's `visibility`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from grader.files import write_text_atomic
from grader.reports import format_points
from grader.results import SubmissionResult, TestResult

#: Shown to the student in place of an empty output.
_EMPTY_OUTPUT = {
    "did_not_run": "did not run",
    "error": "error while running the test",
    "skipped": "skipped",
}


def _test_status(test: TestResult) -> str:
    """Gradescope's status: passed only with full points and a passing test."""
    return "passed" if test.status == "passed" and test.points >= test.max_points else "failed"


def _test_entry(number: int, test: TestResult) -> dict[str, Any]:
    output = test.output or _EMPTY_OUTPUT.get(test.status, "")
    return {
        "number": str(number),
        "name": f"[{test.task}] {test.name}",
        "score": test.points,
        "max_score": test.max_points,
        "status": _test_status(test),
        # `output` only: staff_output never leaves the grader for Gradescope.
        "output": output,
        # pytest's colours, where there are any, rendered as colours instead of junk.
        "output_format": "ansi" if "\x1b[" in output else "text",
        "tags": [test.task],
        "visibility": test.visibility,
        "extra_data": {"id": test.id, "status": test.status},
    }


def _summary(result: SubmissionResult) -> str:
    """The text shown above the tests: per-task scores, then notices; or why it was not graded."""
    lines: list[str] = []
    if result.status == "rejected":
        lines.append(f"Your submission was rejected: {result.reason or 'no reason given'}")
    elif result.status == "error":
        lines.append(
            "Your submission could not be graded (this is not your fault; the course staff "
            f"will look into it): {result.reason or 'no reason given'}"
        )
    else:
        lines.append(f"Score: {format_points(result.score)} / {format_points(result.max_score)}")
        for task in result.tasks:
            lines.append(
                f"{task.id} {task.title}: "
                f"{format_points(task.points)} / {format_points(task.max_points)}"
            )
        if result.reason:
            lines.append(result.reason)
    if result.notices:
        lines.append("")
        lines.append("Notices:")
        lines.extend(f"- {notice}" for notice in result.notices)
    return "\n".join(lines)


def to_gradescope(result: SubmissionResult) -> dict[str, Any]:
    """The results.json content for one submission.

    A rejected submission, or one that could not be graded, scores 0 with its reason
    as the output; tests it has are kept.
    """
    graded = result.status == "graded"
    # The top-level output is rendered as "simple_format" (HTML with newlines kept):
    # escape it, since it quotes file names and messages that came from the student.
    data: dict[str, Any] = {
        "score": result.score if graded else 0.0,
        "execution_time": max(0, round(result.duration_s)),
        "output": html.escape(_summary(result), quote=False),
        "output_format": "simple_format",
        # run_autograder's stdout is for the course staff only.
        "stdout_visibility": "hidden",
        "extra_data": {
            "assignment": result.assignment,
            "submission": result.submission,
            "status": result.status,
            "key": result.key,
            "grader_version": result.grader_version,
            "max_score": result.max_score,
        },
        "tests": [_test_entry(i, test) for i, test in enumerate(result.tests, start=1)],
    }
    return data


def write_gradescope(result: SubmissionResult, path: Path) -> None:
    """Write `to_gradescope(result)` as JSON to `path` (normally /autograder/results/results.json).

    The file is replaced atomically, so Gradescope never reads half of it.
    """
    text = json.dumps(to_gradescope(result), indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(Path(path), text)
