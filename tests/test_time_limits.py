"""Time limits that bound the submission and cost only the slow task's points:
the submission's limit holds for the first run and every rerun together, and a
task whose code hangs does not take the points of tests that never got to run."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import GOOD_OPS, HOG, submission
from tests.test_grade import COMPOSED_MUL, composed_course, grade_one, scores

__all__ = ["composed_course"]  # the fixture, for the tests below


def _limits(course: Path, test_s: int, submission_s: int) -> None:
    path = course / "assignments/hw1/assignment.toml"
    path.write_text(
        path.read_text()
        .replace("test_timeout_s = 3", f"test_timeout_s = {test_s}")
        .replace("submission_timeout_s = 60", f"submission_timeout_s = {submission_s}")
    )


def test_a_hanging_task_costs_only_its_own_points_within_one_limit(
    composed_course: Path, tmp_path: Path
):
    """hw1.1's add sleeps past the first run's share of the limit (30 of 40 s), so hw1.2's tests
    never run there; the rerun (hw1.2's own files, working ones for the rest) runs
    them in what is left, and the whole submission ends within its one limit."""
    _limits(composed_course, test_s=60, submission_s=40)
    slow_add = GOOD_OPS.replace(
        "    return x + y\n", "    import time\n    time.sleep(120)\n    return x + y\n"
    )
    folder = submission(tmp_path / "subs", "kim", slow_add)
    own_mul = COMPOSED_MUL.replace("    # BEGIN SOLUTION hw1.2\n", "")
    (folder / "mini/mul.py").write_text(own_mul.replace("    # END SOLUTION\n", ""))
    result = grade_one(composed_course, folder, tmp_path)
    assert result.status == "graded", result.reason
    assert result.duration_s < 40 + 5, result.duration_s
    assert any("reached its share (30 s)" in notice for notice in result.notices)
    assert scores(result) == {"hw1.1": 0.0, "hw1.2": 6.0}, [(t.id, t.output) for t in result.tests]
    mul_tests = [t for t in result.tests if t.task == "hw1.2"]
    assert mul_tests and all(t.status == "passed" for t in mul_tests)
    assert all("passed in a second run" in t.output for t in mul_tests)


def _busy_add(cpu_s: float) -> str:
    """ops whose add keeps a core busy for `cpu_s` seconds of its own CPU time."""
    return GOOD_OPS.replace(
        "    return x + y\n",
        "    import time\n"
        f"    end = time.process_time() + {cpu_s}\n"
        "    while time.process_time() < end:\n"
        "        pass\n"
        "    return x + y\n",
    )


def test_a_busy_host_does_not_make_correct_code_run_out_of_time(
    graded_course: Path, tmp_path: Path
):
    """add needs 2 s of CPU against a 3 s limit; six processes spinning beside the
    grader stretch its wall time past 3 s, yet it passes: the limit counts the time
    the worker ran, not the time it waited for a CPU. 7 s of CPU still fails."""
    import subprocess
    import sys

    _limits(graded_course, test_s=3, submission_s=120)
    subs = tmp_path / "subs"
    fits = submission(subs, "fits", _busy_add(2.0))
    too_slow = submission(subs, "slow", _busy_add(7.0))
    # Each in a session of its own: the scheduler's autogroups would otherwise count
    # the six as one, and the worker's group would hardly notice them.
    hogs = [subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True) for _ in range(6)]
    try:
        passed = grade_one(graded_course, fits, tmp_path)
        failed = grade_one(graded_course, too_slow, tmp_path)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    add = next(t for t in passed.tests if t.id == "tests/test_mini.py::test_add")
    assert add.status == "passed", add.output
    assert add.duration_s > 3.0, "the host was not busy enough to show anything"
    slow = next(t for t in failed.tests if t.id == "tests/test_mini.py::test_add")
    assert slow.status == "failed" and "time limit (3 s) exceeded" in slow.output
