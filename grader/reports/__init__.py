"""The report writers.

Every output format is its own small writer of grader.results data; writers never
compute scores.

One module per format: `gradescope` (results.json for Gradescope's autograder),
`junit` (JUnit XML for CI), `markdown` (feedback for the student and for staff),
`canvas` (a Canvas gradebook import CSV) and `table` (a terminal table).
They only read `SubmissionResult`s; scores come from the grader as they are.

This module holds the helper the writers share; files are written by `grader.files`.
"""

from __future__ import annotations


def format_points(value: float) -> str:
    """Points as people write them: at most 2 decimals, no trailing zeros (7.5, 10, 3.33)."""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
