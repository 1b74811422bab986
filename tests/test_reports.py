"""The report writers (grader.reports), on hand-built results."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest
from junitparser.xunit2 import JUnitXml
from rich.console import Console

import grader.reports
from grader import results as model  # TestResult by its module: pytest would collect it
from grader.files import write_text_atomic
from grader.reports import format_points
from grader.reports.canvas import write_gradebook
from grader.reports.gradescope import to_gradescope, write_gradescope
from grader.reports.junit import write_junit
from grader.reports.markdown import feedback, staff_feedback
from grader.reports.table import render
from grader.results import SubmissionResult, TaskScore

SECRET = "SECRET-EXPECTED-VALUE"
SCHEMA = Path(grader.reports.__file__).parent / "gradescope_schema.json"
TASKS = [("hw1.1", "Scalar operators", 4.0), ("hw1.2", "Autodiff", 6.0)]


def _test(name, task, points, max_points, status, **kw):
    return model.TestResult(
        id=f"tests/test_{task}.py::{name}",
        name=name,
        task=task,
        points=points,
        max_points=max_points,
        status=status,
        duration_s=0.25,
        **kw,
    )


def _result(submission, status, score, tasks=(), tests=(), **kw):
    return SubmissionResult(
        assignment="hw1",
        submission=submission,
        key=f"key-{submission}",
        grader_version="0.1.0",
        status=status,
        score=score,
        max_score=10.0,
        tasks=tasks,
        tests=tests,
        started_at="2026-01-15T10:00:00Z",
        duration_s=12.4,
        **kw,
    )


def full_score():
    return _result(
        "alice",
        "graded",
        10.0,
        tasks=(
            TaskScore("hw1.1", "Scalar operators", 4.0, 4.0),
            TaskScore("hw1.2", "Autodiff", 6.0, 6.0),
        ),
        tests=(
            _test("test_add", "hw1.1", 2.0, 2.0, "passed"),
            _test("test_mul", "hw1.1", 2.0, 2.0, "passed"),
            _test("test_backward", "hw1.2", 6.0, 6.0, "passed", visibility="hidden"),
        ),
    )


def partial():
    return _result(
        "Bob",
        "graded",
        5.5,
        tasks=(
            TaskScore("hw1.1", "Scalar operators", 2.0, 4.0),
            TaskScore("hw1.2", "Autodiff", 3.5, 6.0),
        ),
        tests=(
            _test("test_add", "hw1.1", 2.0, 2.0, "passed"),
            _test(
                "test_mul",
                "hw1.1",
                0.0,
                2.0,
                "failed",
                output="assert mul(2, 3) == 6\nE  got 5 \x1b[31m(red)\x1b[0m",
                staff_output="traceback of test_mul",
            ),
            _test(
                "test_backward_hidden",
                "hw1.2",
                0.0,
                2.5,
                "failed",
                output="wrong gradient",
                visibility="hidden",
                staff_output=f"expected {SECRET}, got 0.5",
            ),
            _test("test_chain", "hw1.2", 3.5, 3.5, "passed", visibility="after_due_date"),
            _test("test_timing", "hw1.2", 0.0, 0.0, "did_not_run", output=""),
        ),
        notices=("missing file minitorch/extra.py",),
    )


def rejected():
    return _result(
        "carol",
        "rejected",
        0.0,
        reason="the submission has no minitorch/operators.py",
    )


ALL = (full_score, partial, rejected)


# --- shared helpers -----------------------------------------------------------------


def test_format_points():
    assert [format_points(x) for x in (10.0, 7.5, 1 / 3, 2 / 3, 0.0, -0.001)] == [
        "10",
        "7.5",
        "0.33",
        "0.67",
        "0",
        "0",
    ]


def test_write_text_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "out" / "results.json"
    write_text_atomic(path, "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


# --- Gradescope ---------------------------------------------------------------------


@pytest.mark.parametrize("make", ALL)
def test_gradescope_validates_against_schema(make, tmp_path):
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    path = tmp_path / "results.json"
    write_gradescope(make(), path)
    jsonschema.Draft202012Validator(schema).validate(json.loads(path.read_text()))


def test_gradescope_schema_refuses_bad_values():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    good = to_gradescope(partial())
    assert validator.is_valid(good)
    for bad in (
        {**good, "tests": [{**good["tests"][0], "status": "error"}]},
        {**good, "tests": [{**good["tests"][0], "visibility": "staff"}]},
        {**good, "score": "5"},
        {**good, "scroe": 5},
        {"tests": [{"name": "no score anywhere"}]},
    ):
        assert not validator.is_valid(bad)


def test_gradescope_scores_and_tests():
    data = to_gradescope(partial())
    assert data["score"] == 5.5
    assert data["stdout_visibility"] == "hidden"
    tests = data["tests"]
    assert [t["number"] for t in tests] == ["1", "2", "3", "4", "5"]
    assert [t["name"] for t in tests] == [
        "[hw1.1] test_add",
        "[hw1.1] test_mul",
        "[hw1.2] test_backward_hidden",
        "[hw1.2] test_chain",
        "[hw1.2] test_timing",
    ]
    assert [t["status"] for t in tests] == ["passed", "failed", "failed", "passed", "failed"]
    assert [t["score"] for t in tests] == [2.0, 0.0, 0.0, 3.5, 0.0]
    assert [t["max_score"] for t in tests] == [2.0, 2.0, 2.5, 3.5, 0.0]
    assert [t["visibility"] for t in tests] == [
        "visible",
        "visible",
        "hidden",
        "after_due_date",
        "visible",
    ]
    assert tests[1]["output"].startswith("assert mul(2, 3) == 6")
    assert [t["output_format"] for t in tests] == ["text", "ansi", "text", "text", "text"]
    assert tests[2]["output"] == "wrong gradient"
    assert tests[4]["output"] == "did not run"
    summary = data["output"]
    assert "Score: 5.5 / 10" in summary
    assert "hw1.1 Scalar operators: 2 / 4" in summary
    assert "hw1.2 Autodiff: 3.5 / 6" in summary
    assert "missing file minitorch/extra.py" in summary


def test_gradescope_full_score():
    data = to_gradescope(full_score())
    assert data["score"] == 10.0
    assert {t["status"] for t in data["tests"]} == {"passed"}


def test_gradescope_passed_test_without_full_points_is_failed():
    result = _result(
        "dan", "graded", 1.0, tests=(_test("test_timing", "hw1.1", 1.0, 2.0, "passed"),)
    )
    assert to_gradescope(result)["tests"][0]["status"] == "failed"


def test_gradescope_rejected_scores_zero_with_reason():
    data = to_gradescope(rejected())
    assert data["score"] == 0
    assert data["tests"] == []
    assert "rejected" in data["output"]
    assert "the submission has no minitorch/operators.py" in data["output"]


def test_gradescope_error_keeps_tests_but_scores_zero():
    result = _result(
        "erin",
        "error",
        3.0,
        tests=(_test("test_add", "hw1.1", 2.0, 2.0, "passed"),),
        reason="sandbox crashed",
    )
    data = to_gradescope(result)
    assert data["score"] == 0
    assert len(data["tests"]) == 1
    assert "sandbox crashed" in data["output"]


def test_gradescope_escapes_html_in_summary():
    result = _result("eve", "rejected", 0.0, reason="bad file <script>alert(1)</script>.py")
    output = to_gradescope(result)["output"]
    assert "<script>" not in output
    assert "&lt;script&gt;" in output


# --- staff_output never leaks -------------------------------------------------------


@pytest.mark.parametrize("make", ALL)
def test_staff_output_never_in_student_reports(make, tmp_path):
    result = make()
    write_gradescope(result, tmp_path / "results.json")
    write_junit([result], tmp_path / "junit.xml")
    for text in (
        (tmp_path / "results.json").read_text(),
        json.dumps(to_gradescope(result)),
        (tmp_path / "junit.xml").read_text(),
        feedback(result),
    ):
        assert SECRET not in text
        assert "traceback of test_mul" not in text


def test_staff_feedback_has_staff_output():
    text = staff_feedback(partial())
    assert SECRET in text
    assert "traceback of test_mul" in text
    assert "wrong gradient" in text


# --- JUnit --------------------------------------------------------------------------


def _props(element):
    return {p.name: p.value for p in element.properties()}


def test_junit_parses_back(tmp_path):
    path = tmp_path / "junit.xml"
    write_junit([full_score(), partial(), rejected()], path)
    xml = JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert list(suites) == ["alice", "Bob", "carol"]

    alice = suites["alice"]
    assert (alice.tests, alice.failures, alice.errors, alice.skipped) == (3, 0, 0, 0)
    assert _props(alice) == {
        "assignment": "hw1",
        "score": "10.0",
        "max_score": "10.0",
        "status": "graded",
        "reason": "",
    }

    bob = suites["Bob"]
    assert (bob.tests, bob.failures, bob.errors, bob.skipped) == (5, 2, 1, 0)
    cases = {case.name: case for case in bob}
    assert list(cases) == [t.name for t in partial().tests]
    for test in partial().tests:
        case = cases[test.name]
        assert case.classname == test.task
        assert case.time == pytest.approx(test.duration_s)
        props = _props(case)
        assert float(props["points"]) == test.points
        assert float(props["max_points"]) == test.max_points
        assert props["task"] == test.task
    assert cases["test_add"].is_passed
    mul = cases["test_mul"]
    assert mul.is_failure
    # The output, with the ANSI escape (not allowed in XML) written out.
    assert mul.result[0].text == "assert mul(2, 3) == 6\nE  got 5 \\x1b[31m(red)\\x1b[0m"
    hidden = cases["test_backward_hidden"]
    assert hidden.is_failure
    assert hidden.result[0].text == "details are hidden"
    timing = cases["test_timing"]
    assert timing.is_error
    assert "did not run" in timing.result[0].message

    carol = suites["carol"]
    assert (carol.tests, carol.errors) == (1, 1)
    (case,) = list(carol)
    assert (case.classname, case.name) == ("grader", "submission")
    assert case.result[0].text == "the submission has no minitorch/operators.py"
    assert _props(carol)["status"] == "rejected"
    assert _props(carol)["reason"] == "the submission has no minitorch/operators.py"

    assert (xml.tests, xml.failures, xml.errors) == (9, 2, 2)


def test_junit_skipped(tmp_path):
    result = _result("sam", "graded", 0.0, tests=(_test("test_gpu", "hw1.1", 0, 1, "skipped"),))
    write_junit([result], tmp_path / "junit.xml")
    (suite,) = list(JUnitXml.fromfile(str(tmp_path / "junit.xml")))
    assert suite.skipped == 1
    (case,) = list(suite)
    assert case.is_skipped


# --- Markdown -----------------------------------------------------------------------


def test_feedback_partial():
    text = feedback(partial())
    assert text.startswith("# hw1: 5.5/10 points\n")
    assert "missing file minitorch/extra.py" in text
    assert "| hw1.1 | Scalar operators | 2/4 |" in text
    assert "| hw1.2 | Autodiff | 3.5/6 |" in text
    # A visible failed test shows its output in a fenced block.
    assert "- ❌ test\\_mul (failed): 0/2" in text
    assert "  ```text\n  assert mul(2, 3) == 6\n  E  got 5 (red)\n  ```\n" in text
    assert "- ✅ test\\_add (passed): 2/2" in text
    # Hidden ones show name and status only.
    assert "- ❌ test\\_backward\\_hidden (failed): details are hidden" in text
    assert "wrong gradient" not in text
    assert "- ✅ test\\_chain (passed): details are hidden" in text
    assert "- ❌ test\\_timing (did not run): 0/0" in text
    assert "tests/test_hw1.1.py" not in text  # no test ids for students
    assert text.index("## hw1.1") < text.index("## hw1.2")


def test_feedback_full_score_shows_no_output():
    text = feedback(full_score())
    assert text.startswith("# hw1: 10/10 points\n")
    assert "```" not in text
    assert "❌" not in text


def test_feedback_rejected():
    text = feedback(rejected())
    assert "**Your submission was rejected:** the submission has no minitorch/operators.py" in text
    assert "## hw1.1" not in text


def test_feedback_fence_outlasts_backticks_in_output():
    result = _result(
        "dan",
        "graded",
        0.0,
        tests=(_test("test_x", "hw1.1", 0, 1, "failed", output="```\nnot the end\n```"),),
    )
    text = feedback(result)
    assert "  ````text\n  ```\n  not the end\n  ```\n  ````" in text


# --- Canvas -------------------------------------------------------------------------


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_without_roster(tmp_path):
    path = tmp_path / "grades.csv"
    error = _result("zed", "error", 0.0, reason="sandbox crashed")
    warnings = write_gradebook(
        [partial(), full_score(), rejected(), error], path, "HW1: miniTorch", "12345"
    )
    assert _read_csv(path) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1: miniTorch (12345)"],
        ["Bob", "", "", "Bob", "", "5.5"],
        ["alice", "", "", "alice", "", "10"],
        ["carol", "", "", "carol", "", "0"],
    ]
    assert sum("no roster" in w for w in warnings) == 1
    assert any("zed" in w and "sandbox crashed" in w for w in warnings)
    assert path.read_bytes().endswith(b"\r\n")


def test_canvas_without_id_adds_points_possible(tmp_path):
    path = tmp_path / "grades.csv"
    write_gradebook([full_score()], path, "HW1", "")
    assert _read_csv(path) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1"],
        ["Points Possible", "", "", "", "", "10"],
        ["alice", "", "", "alice", "", "10"],
    ]


def test_canvas_rounds_to_two_decimals(tmp_path):
    path = tmp_path / "grades.csv"
    write_gradebook([_result("ann", "graded", 20 / 3)], path, "HW1", "7")
    assert _read_csv(path)[1][-1] == "6.67"


ROSTER = (
    "Student,ID,SIS User ID,SIS Login ID,Section,Homework 0 (111),Current Score\r\n"
    "    Points Possible,,,,,5.00,(read only)\r\n"
    '"Smith, Alice",1001,A-01,ALICE,Section 1,5.00,100.00\r\n'
    '"Jones, Bob",1002,bob-sis,bjones,Section 2,4.00,80.00\r\n'
    '"Lee, Carol",carol,C-03,clee,Section 1,,\r\n'
    '"Kim, Dana",1004,D-04,dkim,Section 2,3.00,60.00\r\n'
)


def test_canvas_with_roster(tmp_path):
    roster = tmp_path / "export.csv"
    # Excel adds a byte-order mark when it saves an export.
    roster.write_text("\ufeff" + ROSTER, encoding="utf-8")
    path = tmp_path / "grades.csv"
    stranger = _result("mallory", "graded", 7.25)
    bob = _result("BOB-SIS", "graded", 5.5)  # matches the SIS User ID, any case
    warnings = write_gradebook(
        [full_score(), bob, rejected(), stranger], path, "HW1: miniTorch", "12345", roster
    )
    assert _read_csv(path) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1: miniTorch (12345)"],
        ["Smith, Alice", "1001", "A-01", "ALICE", "Section 1", "10"],  # SIS Login ID
        ["Jones, Bob", "1002", "bob-sis", "bjones", "Section 2", "5.5"],  # SIS User ID
        ["Lee, Carol", "carol", "C-03", "clee", "Section 1", "0"],  # ID
        ["mallory", "", "", "", "", "7.25"],
    ]
    assert any("mallory" in w and "roster" in w for w in warnings)
    assert any("Kim, Dana" in w and "no submission" in w for w in warnings)
    assert not any("no roster" in w for w in warnings)


def test_canvas_roster_needs_student_columns(tmp_path):
    roster = tmp_path / "export.csv"
    roster.write_text("Name,Score\r\nAlice,5\r\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a Canvas gradebook export"):
        write_gradebook([full_score()], tmp_path / "grades.csv", "HW1", "1", roster)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "the file is empty"),
        (b"\r\n", "the file is empty"),
        (bytes(range(256)) * 8, "not UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not UTF-8 text"),
        (b"Student,ID,SIS User ID\r\nAnn,1,a\r\n", "no column 'SIS Login ID'"),
        (b'"unterminated\r\n' + b"x" * 200_000, "not CSV"),
    ],
)
def test_canvas_bad_roster_is_a_usage_error(tmp_path, data, problem):
    from grader.errors import LlmsysError
    from grader.reports.canvas import read_roster

    roster = tmp_path / "export.csv"
    roster.write_bytes(data)
    with pytest.raises(LlmsysError, match="not a Canvas gradebook export") as info:
        read_roster(roster)
    assert problem in info.value.message and "Grades > Export" in info.value.hint


# --- terminal table -----------------------------------------------------------------


def _table_text(results, tasks, width=200, **kw) -> str:
    console = Console(record=True, width=width, **kw)
    console.print(render(results, tasks))
    return console.export_text()


def test_table_renders():
    weird = _result("[bold]zoe", "error", 0.0, reason="x" * 600)
    text = _table_text([partial(), rejected(), full_score(), weird], TASKS)
    table, _, notes = text.partition("notes:")
    header = [line for line in table.splitlines() if "hw1.1" in line or "submission" in line]
    assert header[0].split() == ["hw1.1", "hw1.2", "total"]
    assert header[1].split() == ["submission", "status", "/4", "/6", "/10"]
    rows = [line.split() for line in table.splitlines() if line.split()[:1] != ["submission"]]
    rows = [r for r in rows if r and r[0] in ("Bob", "[bold]zoe", "alice", "carol")]
    # Sorted by name (Python's order: upper case first, "[" between); plain numbers.
    assert rows == [
        ["Bob", "graded", "2", "3.5", "5.5"],
        ["[bold]zoe", "error", "-", "-", "0"],
        ["alice", "graded", "4", "6", "10"],
        ["carol", "rejected", "-", "-", "0"],
    ]
    # The notes, one line each, below the table.
    lines = notes.strip("\n").splitlines()
    assert lines[0] == "  Bob: missing file minitorch/extra.py"
    assert lines[1].startswith("  [bold]zoe: xxx") and lines[1].endswith("x…")
    assert len(lines[1]) == 200
    assert lines[2] == "  carol: the submission has no minitorch/operators.py"
    assert len(lines) == 3


def test_table_without_notes_has_no_notes_lines():
    assert "notes:" not in _table_text([full_score()], TASKS)


def test_table_reads_at_80_columns():
    """A six-task assignment (hw1's) with long names and notes, in an 80-column terminal
    or a CI log: names whole, numbers whole, notes one line each."""
    tasks = [(f"hw1.{i}", f"Task {i}", p) for i, p in enumerate((10, 20, 15, 25, 15, 15), 1)]
    names = [
        "alexandra.konstantinopoulou",
        "bartholomew-featherstonehaugh",
        "christopher.vanderschoot@jhu",
        "dan",
    ]

    def graded(name, points, notices=()):
        return SubmissionResult(
            assignment="hw1",
            submission=name,
            key="k",
            grader_version="0.1.0",
            status="graded",
            score=sum(points),
            max_score=100.0,
            tasks=tuple(
                TaskScore(t, title, s, m) for (t, title, m), s in zip(tasks, points, strict=True)
            ),
            notices=notices,
        )

    sandbox = "student code ran without a sandbox (the grader was not run as root)"
    results = [
        graded(names[0], (10, 19.5, 15, 12.25, 0, 15), (sandbox, "file a.py missing " * 20)),
        graded(names[1], (10, 20, 15, 25, 15, 15), (sandbox,)),
        graded(names[2], (1, 2, 3, 4, 5, 6.75), (sandbox, "timing\n" * 40)),
        _result(names[3], "rejected", 0.0, reason="the zip entry '../[/b]' points outside"),
    ]
    for soft_wrap in (False, True):  # the CLI's console soft-wraps
        text = _table_text(results, tasks, width=80, soft_wrap=soft_wrap)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= 80, text
        table, _, notes = text.partition("notes:")
        for name in names:
            assert any(line.split()[:1] == [name] for line in table.splitlines()), name
        header = next(line.split() for line in table.splitlines() if "hw1.1" in line)
        assert header == [t[0] for t in tasks] + ["total"]
        row = next(line.split() for line in table.splitlines() if line.startswith(names[0]))
        assert row == [names[0], "graded", "10", "19.5", "15", "12.25", "0", "15", "71.75"]
        assert "…" not in table
        # The sandbox notice once, not on every line; each note on one line.
        note_lines = notes.strip("\n").splitlines()
        assert note_lines[0].startswith("  every graded submission: student code ran without")
        assert [line.split(":")[0].strip() for line in note_lines[1:]] == [
            names[0],
            names[2],
            names[3],
        ]
        assert note_lines[1].endswith("…") and note_lines[2].endswith("…")
        assert note_lines[3] == "  dan: the zip entry '../[/b]' points outside"


def test_table_shows_control_characters_written_out():
    evil = _result("eve\x1b]0;owned\x07", "rejected", 0.0, reason="bad \x1b[2J entry\nname")
    text = _table_text([evil], TASKS)
    assert "\x1b" not in text and "\x07" not in text
    assert r"eve\x1b]0;owned\x07" in text
    assert r"bad \x1b[2J entry name" in text
