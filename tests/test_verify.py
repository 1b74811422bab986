"""`verify` runs real pytest processes on generated trees; these tests show that each
invariant holds on a good course and that each one fails when it is broken."""

from __future__ import annotations

from pathlib import Path

from grader.manifest import Course
from grader.verify import verify
from tests.conftest import write


def verify_hw1(course: Path):
    loaded = Course.load(course)
    return verify(loaded, loaded.get("hw1"), jobs=2)


def test_good_course_verifies_per_task(course: Path):
    result = verify_hw1(course)
    assert result.problems == []
    rows = {row.task_id: row for row in result.rows}
    assert (
        rows["hw1.1"].tests,
        rows["hw1.1"].reference_passed,
        rows["hw1.1"].starter_clean,
        rows["hw1.1"].isolated,
    ) == (2, 2, 2, True)
    assert (
        rows["hw1.2"].tests,
        rows["hw1.2"].reference_passed,
        rows["hw1.2"].starter_clean,
        rows["hw1.2"].isolated,
    ) == (1, 1, 1, True)


def test_buggy_reference_is_reported(course: Path):
    ops = course / "solutions/mini/ops.py"
    ops.write_text(ops.read_text().replace("return x + y", "return x - y"))
    problems = verify_hw1(course).problems
    assert any(p.startswith("reference: tests/test_mini.py::test_add failed") for p in problems)


def test_test_without_task_marker_is_reported(course: Path):
    write(course / "assignments/hw1/tests/test_extra.py", "def test_orphan():\n    assert True\n")
    problems = verify_hw1(course).problems
    assert any("test_extra.py::test_orphan: has no task marker of hw1" in p for p in problems)


def test_task_without_tests_is_reported(course: Path):
    path = course / "assignments/hw1/assignment.toml"
    path.write_text(path.read_text() + '[[tasks]]\nid = "hw1.3"\ntitle = "Sub"\npoints = 1\n')
    assert "hw1.3: no public test carries this task" in verify_hw1(course).problems


def test_cross_task_dependency_breaks_isolation(course: Path):
    # mul now calls add: stubbing hw1.1 alone also fails hw1.2's test.
    ops = course / "solutions/mini/ops.py"
    ops.write_text(ops.read_text().replace("result = x * y", "result = add(x * y, 0)"))
    result = verify_hw1(course)
    rows = {row.task_id: row for row in result.rows}
    assert rows["hw1.1"].isolated is False and rows["hw1.2"].isolated is True
    assert (
        "only hw1.1 stubbed: tests/test_mini.py::test_mul should pass, got failed"
        in result.problems
    )


def test_starter_that_crashes_instead_of_stub_failure_is_reported(course: Path):
    # A test that swallows the stub's error and fails differently is not a clean failure.
    write(
        course / "assignments/hw1/tests/test_mini.py",
        (course / "assignments/hw1/tests/test_mini.py").read_text()
        + '\n\n@pytest.mark.task("hw1.2")\ndef test_mul_guarded():\n'
        "    try:\n        value = mini.mul(3, 3)\n    except Exception:\n"
        "        value = None\n    assert value == 9\n",
    )
    problems = verify_hw1(course).problems
    assert any(
        p.startswith(
            "starter: tests/test_mini.py::test_mul_guarded should fail with a NotImplementedError"
        )
        for p in problems
    )


def test_collection_error_in_starter_is_reported(course: Path):
    # Module-level use of a stubbed function breaks collection of the starter only.
    write(
        course / "assignments/hw1/tests/test_mini.py",
        "import mini\nimport pytest\n\nTWO = mini.add(1, 1)\n\n\n"
        '@pytest.mark.task("hw1.1")\ndef test_two():\n    assert TWO == 2\n\n\n'
        '@pytest.mark.task("hw1.2")\ndef test_mul():\n    assert mini.mul(2, 3) == 6\n',
    )
    problems = verify_hw1(course).problems
    assert any(p.startswith("starter: collection error in tests/test_mini.py") for p in problems)


def split_into_task_files(course: Path) -> None:
    """mul moves to mini/mul.py and is built on add; each task names its files."""
    from tests.test_grade import COMPOSED_MUL, COMPOSED_OPS

    write(course / "solutions/mini/ops.py", COMPOSED_OPS)
    write(course / "solutions/mini/mul.py", COMPOSED_MUL)
    write(
        course / "solutions/mini/__init__.py",
        "from .ops import add, neg  # noqa: F401\nfrom .mul import mul  # noqa: F401\n",
    )
    path = course / "assignments/hw1/assignment.toml"
    text = path.read_text().replace(
        'submit = ["mini/ops.py"]', 'submit = ["mini/ops.py", "mini/mul.py"]'
    )
    text = text.replace("points = 4", 'points = 4\nfiles = ["mini/ops.py"]')
    text = text.replace("points = 6", 'points = 6\nfiles = ["mini/mul.py"]')
    path.write_text(text)


def test_dependency_across_task_files_keeps_isolation(course: Path):
    # Grading reruns hw1.2's failed tests with the reference's ops.py: stubbing hw1.1
    # then costs hw1.1 only, though plain pytest sees test_mul fail too.
    split_into_task_files(course)
    result = verify_hw1(course)
    assert result.problems == []
    assert all(row.isolated for row in result.rows)


def test_region_outside_its_tasks_files_is_reported(course: Path):
    split_into_task_files(course)
    mul = course / "solutions/mini/mul.py"
    mul.write_text(
        mul.read_text()
        + '\n\ndef twice(x):\n    """2x"""\n    # BEGIN SOLUTION hw1.1\n    return 2 * x\n'
        "    # END SOLUTION\n"
    )
    result = verify_hw1(course)
    rows = {row.task_id: row for row in result.rows}
    assert rows["hw1.1"].isolated is False
    assert (
        "hw1.1: its solution regions change mini/mul.py, which is not in its files "
        "['mini/ops.py']" in result.problems
    )
