"""Points from per-test records: shares, statuses, visibility, timing curve."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader import scoring
from grader.manifest import Course
from grader.records import TestRecord, new_record
from grader.schema import load


def record(nodeid, task, outcome="passed", points=None, **extra) -> TestRecord:
    """A journal record, loaded as the grader loads the journal's."""
    return load(TestRecord, {**new_record(nodeid, task, points), "outcome": outcome, **extra})


@pytest.fixture
def hw1(course: Path):
    a = Course.load(course).get("hw1")  # hw1.1 "Add" 4 points, hw1.2 "Mul" 6 points
    return a


def test_points_are_shared_and_fixed_shares_respected(hw1):
    records = [
        record("tests/t.py::a", "hw1.1"),
        record("tests/t.py::b", "hw1.1"),
        record("tests/t.py::c", "hw1.2", points=4),
        record("tests/t.py::d", "hw1.2"),
        record("tests/t.py::e", "hw1.2"),
    ]
    worth = scoring.allocate(hw1, records)
    assert worth == {
        "tests/t.py::a": 2.0,
        "tests/t.py::b": 2.0,
        "tests/t.py::c": 4.0,
        "tests/t.py::d": 1.0,
        "tests/t.py::e": 1.0,
    }


def test_only_passed_tests_earn(hw1):
    records = [
        record("tests/t.py::a", "hw1.1"),
        record(
            "tests/t.py::b",
            "hw1.1",
            "failed",
            error_type="AssertionError",
            longrepr="assert 1 == 2",
        ),
        record("tests/t.py::c", "hw1.2", "did_not_run"),
        record("tests/t.py::d", "hw1.2", "skipped", message="no GPU"),
        record("tests/t.py::e", "hw1.2", "error", error_type="RuntimeError"),
    ]
    tests = scoring.score_tests(hw1, records, not_run_reason="did not run: time limit")
    by_id = {t.id: t for t in tests}
    assert [by_id[k].points for k in sorted(by_id)] == [2.0, 0.0, 0.0, 0.0, 0.0]
    assert by_id["tests/t.py::b"].output == "assert 1 == 2"
    assert by_id["tests/t.py::c"].status == "did_not_run"
    assert by_id["tests/t.py::c"].output == "did not run: time limit"
    assert by_id["tests/t.py::d"].output == "skipped: no GPU"
    tasks = scoring.score_tasks(hw1, tests)
    assert [(t.id, t.points, t.max_points) for t in tasks] == [
        ("hw1.1", 2.0, 4.0),
        ("hw1.2", 0.0, 6.0),
    ]


@pytest.mark.parametrize("outcome", ["failed", "did_not_run"])
def test_a_task_that_breaks_its_rule_earns_nothing(hw1, outcome):
    """A `rule` test (e.g. no finished library wrapper) that does not pass zeroes its
    task, whatever its other tests earned; the other task keeps its points."""
    rule = {"properties": {"rule": True}}
    records = [
        record("tests/t.py::rule", "hw1.1", outcome, points=0, **rule),
        record("tests/t.py::a", "hw1.1"),
        record("tests/t.py::b", "hw1.1"),
        record("tests/t.py::c", "hw1.2"),
    ]
    tests = {t.id: t for t in scoring.score_tests(hw1, records)}
    assert [tests[k].points for k in sorted(tests)] == [0.0, 0.0, 6.0, 0.0]
    assert "breaks the rule that t.py::rule checks" in tests["tests/t.py::a"].output
    records[0] = record("tests/t.py::rule", "hw1.1", "passed", points=0, **rule)
    tests = {t.id: t for t in scoring.score_tests(hw1, records)}
    assert [tests[k].points for k in sorted(tests)] == [2.0, 2.0, 6.0, 0.0]


def test_hidden_tests_show_no_details(hw1):
    records = [
        record(
            "hidden/h.py::wrong",
            "hw1.1",
            "failed",
            error_type="AssertionError",
            longrepr="assert student == 42  # SECRET EXPECTED VALUE",
            properties={"origin": "test", "student_output": "x=SECRET INPUT"},
        ),
        record(
            "hidden/h.py::raised",
            "hw1.1",
            "failed",
            error_type="ValueError",
            message="bad input 31337",
            properties={"origin": "student", "student_traceback": "Traceback..."},
        ),
        record(
            "hidden/h.py::crashed",
            "hw1.2",
            "failed",
            error_type="WorkerDied",
            message="the process was killed: out of memory",
            properties={"origin": "worker"},
        ),
    ]
    tests = {t.id: t for t in scoring.score_tests(hw1, records)}
    wrong = tests["hidden/h.py::wrong"]
    assert wrong.visibility == "after_due_date"
    assert "SECRET" not in wrong.output and "SECRET EXPECTED VALUE" in wrong.staff_output
    assert "SECRET INPUT" in wrong.staff_output
    assert tests["hidden/h.py::raised"].output == "your code raised ValueError"
    assert "31337" not in tests["hidden/h.py::raised"].output
    assert (
        tests["hidden/h.py::crashed"].output == "WorkerDied: the process was killed: out of memory"
    )


def test_hidden_tests_name_only_builtin_exception_types(hw1):
    # Student code names its own exception classes, and it has seen the hidden inputs.
    records = [
        record(
            f"hidden/h.py::{name}",
            "hw1.1",
            "failed",
            error_type=error_type,
            message="SECRET 31337",
            properties={"origin": "student"},
        )
        for name, error_type in [
            ("own", "StudentException"),
            ("forged", "SECRET_31337_Error"),
            ("weird", None),
            ("builtin", "ZeroDivisionError"),
        ]
    ]
    tests = {t.name: t for t in scoring.score_tests(hw1, records)}
    for name in ("h.py::own", "h.py::forged", "h.py::weird"):
        assert tests[name].output == "your code raised an exception of a class of its own"
    assert tests["h.py::builtin"].output == "your code raised ZeroDivisionError"
    assert all("SECRET" not in t.output and "31337" not in t.output for t in tests.values())


def test_public_failures_show_the_assertion_and_printed_output(hw1):
    records = [
        record(
            "tests/t.py::a",
            "hw1.1",
            "failed",
            error_type="AssertionError",
            longrepr="assert 5 == 4",
            properties={"student_output": "debug 1"},
        )
    ]
    (test,) = scoring.score_tests(hw1, records)
    assert test.visibility == "visible"
    assert "assert 5 == 4" in test.output and "debug 1" in test.output


def test_missing_file_fails_its_task_only(hw1, course: Path):
    path = course / "assignments/hw1/assignment.toml"
    path.write_text(path.read_text().replace("points = 4", 'points = 4\nfiles = ["mini/ops.py"]'))
    a = Course.load(course).get("hw1")
    records = [record("tests/t.py::a", "hw1.1"), record("tests/t.py::c", "hw1.2")]
    tests = {t.id: t for t in scoring.score_tests(a, records, missing=["mini/ops.py"])}
    assert tests["tests/t.py::a"].status == "failed"
    assert tests["tests/t.py::a"].output == "file mini/ops.py missing from submission"
    assert tests["tests/t.py::c"].points == 6.0


@pytest.mark.parametrize(
    ("ratio", "credit"), [(0.5, 1.0), (1.5, 1.0), (3.0, 0.5), (4.5, 0.0), (100.0, 0.0)]
)
def test_timing_curve(ratio, credit):
    assert scoring.timing_credit(ratio, full=1.5, zero=4.5) == pytest.approx(credit)


def test_timing_credit_scales_a_passed_test(hw1):
    records = [
        record(
            "hidden/t.py::speed", "hw1.1", properties={"timing_ratio": 3.0, "timing_credit": 0.5}
        )
    ]
    (test,) = scoring.score_tests(hw1, records)
    assert test.points == 2.0 and test.max_points == 4.0 and test.timing_ratio == 3.0
