"""End to end on the miniature course: grading submissions through the real harness,
workers and (as root) the sandbox, with points landing on the right tasks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from grader import grade, results, sandbox
from grader.backends.local import LocalBackend
from grader.context import Context, render_context
from grader.manifest import Course
from tests.conftest import GOOD_OPS, slow_mul_submission, submission, write

BUGGY_MUL = GOOD_OPS.replace("return x * y", "return x * y + (1 if x < 0 else 0)")


def context(course: Path) -> Context:
    loaded = Course.load(course)
    return render_context(loaded, loaded.get("hw1"))


def grade_one(course: Path, path: Path, tmp_path: Path) -> results.SubmissionResult:
    return grade.grade_submission(
        context(course), path, tmp_path / "work" / path.name, LocalBackend()
    )


def scores(result: results.SubmissionResult) -> dict[str, float]:
    return {t.id: t.points for t in result.tasks}


def test_correct_submission_scores_full(graded_course: Path, tmp_path: Path):
    result = grade_one(graded_course, submission(tmp_path / "subs", "ann", GOOD_OPS), tmp_path)
    assert result.status == "graded", result.reason
    assert result.score == 10.0 and scores(result) == {"hw1.1": 4.0, "hw1.2": 6.0}
    assert {t.id for t in result.tests} == {
        "tests/test_mini.py::test_add",
        "tests/test_mini.py::test_add_zero",
        "tests/test_mini.py::test_mul",
        "hidden/test_hidden.py::test_mul_matches_reference",
    }
    hidden = next(t for t in result.tests if t.id.startswith("hidden/"))
    assert hidden.visibility == "after_due_date" and hidden.max_points == 3.0
    if sandbox.available():
        assert "no network, private mounts" in result.sandbox


def test_a_cpu_assignment_does_not_grade_its_gpu_self_checks(graded_course: Path, tmp_path: Path):
    """hw3's public tests also run its layers on hw2's CUDA backend (marked gpu) for
    students with a GPU; a CPU assignment's grading leaves them out, on any host."""
    gpu_check = (
        "import pytest\n\n\n@pytest.mark.task('hw1.1')\n@pytest.mark.gpu\n"
        "def test_on_the_gpu(student):\n    assert False, 'graded'\n"
    )
    write(graded_course / "assignments/hw1/tests/test_on_gpu.py", gpu_check)
    result = grade_one(graded_course, submission(tmp_path / "subs", "gus", GOOD_OPS), tmp_path)
    assert result.status == "graded", result.reason
    assert result.score == 10.0, [(t.id, t.status) for t in result.tests]
    assert not [t.id for t in result.tests if "test_on_gpu" in t.id]


def test_hidden_test_catches_what_public_tests_miss(graded_course: Path, tmp_path: Path):
    result = grade_one(graded_course, submission(tmp_path / "subs", "bo", BUGGY_MUL), tmp_path)
    assert scores(result) == {"hw1.1": 4.0, "hw1.2": 3.0}
    failed = [t for t in result.tests if t.status != "passed"]
    assert [t.id for t in failed] == ["hidden/test_hidden.py::test_mul_matches_reference"]
    assert failed[0].output == "wrong result (details of hidden tests are not shown)"
    assert "reference.call" in failed[0].staff_output


def test_starter_scores_zero_with_clean_failures(graded_course: Path, tmp_path: Path):
    loaded = Course.load(graded_course)
    from grader import starter

    ops = starter.starter_tree(loaded, loaded.get("hw1"))["mini/ops.py"].decode()
    result = grade_one(graded_course, submission(tmp_path / "subs", "cy", ops), tmp_path)
    assert result.status == "graded" and result.score == 0.0
    public = [t for t in result.tests if t.visibility == "visible"]
    assert all(t.output.startswith("NotImplementedError: hw1.") for t in public), public
    hidden = [t for t in result.tests if t.visibility != "visible"]
    assert [t.output for t in hidden] == ["your code raised NotImplementedError"]


def test_missing_file_fails_its_tasks(graded_course: Path, tmp_path: Path):
    result = grade_one(graded_course, submission(tmp_path / "subs", "dee", None), tmp_path)
    assert result.status == "graded" and result.score == 0.0
    assert "file mini/ops.py missing from submission" in result.notices
    assert {t.output for t in result.tests if t.task == "hw1.1"} == {
        "file mini/ops.py missing from submission"
    }


def test_crash_and_hang_fail_only_their_tests(graded_course: Path, tmp_path: Path):
    ops = GOOD_OPS.replace(
        "    return x * y\n",
        "    if x == 0:\n        while True:\n            pass\n"
        "    if x < 0:\n        import os\n        os._exit(3)\n"
        "    return x * y\n",
    )
    start = time.monotonic()
    result = grade_one(graded_course, submission(tmp_path / "subs", "eve", ops), tmp_path)
    assert time.monotonic() - start < 30
    assert scores(result) == {"hw1.1": 4.0, "hw1.2": 3.0}
    (hidden,) = [t for t in result.tests if t.id.startswith("hidden/")]
    # (2, 3) passes, then (-4, 5) ends the process: the first failure is the reason.
    assert hidden.output == (
        "WorkerDied: your code ended the process (exit code 3) before the call returned"
    )


#: add() meets a fault that leaves its process unusable, as a faulting CUDA kernel
#: leaves its CUDA context: every later call of the process fails, mul's too.
POISONING_ADD = GOOD_OPS.replace(
    "def add(x, y):\n    return x + y\n",
    "class DeviceFault(RuntimeError):\n    pass\n\n\n_lost = []\n\n\n"
    "def add(x, y):\n    _lost.append(True)\n    raise DeviceFault('illegal memory access')\n",
).replace(
    "def mul(x, y):\n",
    "def mul(x, y):\n    if _lost:\n        raise DeviceFault('the context was lost earlier')\n",
)


@pytest.mark.parametrize(("fresh", "expected"), [(False, 0.0), (True, 6.0)])
def test_an_error_that_poisons_the_worker_costs_only_its_own_task(
    graded_course: Path, tmp_path: Path, fresh: bool, expected: float
):
    """With the manifest's fresh_worker_after naming the error, the student's worker is
    replaced after each test that raised it, and mul's tests pass; without, they fail."""
    if fresh:
        path = graded_course / "assignments/hw1/assignment.toml"
        text = path.read_text().replace(
            "\n[limits]\n", '\nfresh_worker_after = ["DeviceFault"]\n[limits]\n', 1
        )
        assert "fresh_worker_after" in text
        path.write_text(text)
    result = grade_one(graded_course, submission(tmp_path / "subs", "hal", POISONING_ADD), tmp_path)
    assert scores(result) == {"hw1.1": 0.0, "hw1.2": expected}
    mul_tests = [t for t in result.tests if "mul" in t.id]
    assert len(mul_tests) == 2
    if not fresh:
        public = [t for t in mul_tests if t.visibility == "visible"]
        assert public and all("the context was lost earlier" in t.output for t in public)


def test_import_that_hangs_costs_one_time_limit(graded_course: Path, tmp_path: Path):
    start = time.monotonic()
    ops = "while True:\n    pass\n" + GOOD_OPS
    result = grade_one(graded_course, submission(tmp_path / "subs", "fay", ops), tmp_path)
    assert time.monotonic() - start < 20  # one 3 s limit, not one per test
    assert result.score == 0.0
    assert all(
        t.output.startswith("WorkerTimeout: importing mini failed: time limit")
        for t in result.tests
    ), [t.output for t in result.tests]


def test_submission_time_limit_keeps_finished_tests(graded_course: Path, tmp_path: Path):
    path = slow_mul_submission(graded_course, tmp_path / "subs")
    result = grade_one(graded_course, path, tmp_path)
    assert result.status == "graded"
    assert any("of the submission's time limit (12 s)" in n for n in result.notices)
    assert result.duration_s < 12 + 5  # one bound for the whole submission
    by_status = {t.id: t.status for t in result.tests}
    assert by_status["tests/test_mini.py::test_add"] == "passed"
    assert "did_not_run" in by_status.values()
    assert scores(result)["hw1.1"] == 4.0


def test_rejected_zip_is_a_result_not_an_abort(graded_course: Path, tmp_path: Path):
    from grader.batch import grade_batch

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    with zipfile.ZipFile(subs / "mallory.zip", "w") as archive:
        archive.writestr("../../evil/mini/ops.py", GOOD_OPS)
    with zipfile.ZipFile(subs / "nia.zip", "w") as archive:
        archive.writestr("nia/mini/ops.py", GOOD_OPS)
    batch = grade_batch(
        context(graded_course), sorted(subs.iterdir()), tmp_path / "out", LocalBackend(), jobs=2
    )
    by_name = {r.submission: r for r in batch.results}
    assert by_name["ann"].score == 10.0 and by_name["nia"].score == 10.0
    assert by_name["mallory"].status == "rejected"
    assert "points outside the archive" in by_name["mallory"].reason
    out = tmp_path / "out" / "hw1"
    for name in ("ann", "mallory", "nia"):
        saved = results.from_dict(json.loads((out / name / "result.json").read_text()))
        assert saved == by_name[name]
        assert (out / name / "feedback.md").exists() and (out / name / "results.json").exists()
    assert (out / "gradebook.csv").exists() and (out / "junit.xml").exists()


def test_rerun_reuses_finished_results_and_regrade_forces(graded_course: Path, tmp_path: Path):
    from grader.batch import grade_batch

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    submission(subs, "bo", BUGGY_MUL)
    ctx = context(graded_course)
    first = grade_batch(ctx, sorted(subs.iterdir()), tmp_path / "out", LocalBackend())
    assert (first.graded, first.reused) == (2, 0)
    again = grade_batch(ctx, sorted(subs.iterdir()), tmp_path / "out", LocalBackend())
    assert (again.graded, again.reused) == (0, 2)
    assert again.results == first.results
    (subs / "bo" / "mini/ops.py").write_text(GOOD_OPS)  # a changed submission is graded again
    changed = grade_batch(ctx, sorted(subs.iterdir()), tmp_path / "out", LocalBackend())
    assert (changed.graded, changed.reused) == (1, 1)
    forced = grade_batch(
        ctx, sorted(subs.iterdir()), tmp_path / "out", LocalBackend(), regrade=True
    )
    assert (forced.graded, forced.reused) == (2, 0)


def test_sigkill_halfway_then_rerun_loses_nothing(graded_course: Path, tmp_path: Path):
    subs = tmp_path / "subs"
    names = [f"s{i}" for i in range(5)]
    for name in names:
        submission(subs, name, GOOD_OPS.replace("x + y", f"x + y + 0 * {len(name)}"))
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "grader.cli",
        "--root",
        str(graded_course),
        "grade",
        "hw1",
        str(subs),
        "--out",
        str(out),
        "--jobs",
        "1",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("hw1/*/result.json"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {p.parent.name: p.read_bytes() for p in out.glob("hw1/*/result.json")}
    assert 2 <= len(done_before) < len(names)
    for data in done_before.values():
        results.from_dict(json.loads(data))  # complete, parseable: written atomically
    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(names) - len(done_before)} graded, {len(done_before)} reused" in rerun.stdout
    for name in names:
        data = (out / "hw1" / name / "result.json").read_bytes()
        result = results.from_dict(json.loads(data))
        assert result.score == 10.0, [
            (t.id, t.status, t.output, t.staff_output) for t in result.tests if t.status != "passed"
        ]
        if name in done_before:
            assert data == done_before[name]  # not graded twice


COMPOSED_OPS = '''\
def add(x, y):
    """x + y"""
    # BEGIN SOLUTION hw1.1
    return x + y  # the reference's own line
    # END SOLUTION


def neg(x):
    """-x"""
    # BEGIN SOLUTION hw2.1
    return -x
    # END SOLUTION
'''

COMPOSED_MUL = '''\
from mini.ops import add


def mul(x, y):
    """x * y for y >= 0, by repeated addition"""
    # BEGIN SOLUTION hw1.2
    result = 0
    for _ in range(y):
        result = add(result, x)
    return result
    # END SOLUTION
'''


@pytest.fixture
def composed_course(graded_course: Path) -> Path:
    """hw1.2's mul (in mini/mul.py) is built on hw1.1's add (in mini/ops.py)."""
    root = graded_course
    (root / "solutions/mini/ops.py").write_text(COMPOSED_OPS)
    (root / "solutions/mini/mul.py").write_text(COMPOSED_MUL)
    (root / "solutions/mini/__init__.py").write_text(
        "from .ops import add, neg  # noqa: F401\nfrom .mul import mul  # noqa: F401\n"
    )
    path = root / "assignments/hw1/assignment.toml"
    text = path.read_text().replace(
        'submit = ["mini/ops.py"]', 'submit = ["mini/ops.py", "mini/mul.py"]'
    )
    text = text.replace("points = 6", 'points = 6\nfiles = ["mini/mul.py"]')
    path.write_text(text)
    return root


def test_broken_task_costs_only_its_own_points(composed_course: Path, tmp_path: Path):
    own_mul = COMPOSED_MUL.replace("    # BEGIN SOLUTION hw1.2\n", "").replace(
        "    # END SOLUTION\n", ""
    )
    # Hostile too: at import, print whatever ops.py is next to it.
    own_mul += (
        "\nimport os\nprint(open(os.path.join(os.path.dirname(__file__), 'ops.py')).read())\n"
    )
    subs = tmp_path / "subs"
    folder = submission(subs, "ida", GOOD_OPS.replace("return x + y", "return x - y"))
    (folder / "mini/mul.py").write_text(own_mul)
    result = grade_one(composed_course, folder, tmp_path)
    assert result.status == "graded", result.reason
    assert scores(result) == {"hw1.1": 0.0, "hw1.2": 6.0}
    mul_tests = [t for t in result.tests if t.task == "hw1.2"]
    assert mul_tests and all(t.status == "passed" for t in mul_tests)
    assert all("passed with working files for the other tasks" in t.output for t in mul_tests)
    assert any("only through your files of other tasks" in n for n in result.notices)
    # The rerun next to the reference showed the student nothing of it.
    assert "the reference's own line" not in json.dumps(results.to_dict(result))


def test_task_wrong_on_its_own_is_not_rescued(composed_course: Path, tmp_path: Path):
    folder = submission(tmp_path / "subs", "jon", GOOD_OPS)
    (folder / "mini/mul.py").write_text("def mul(x, y):\n    return x * y + 1\n")
    result = grade_one(composed_course, folder, tmp_path)
    assert scores(result) == {"hw1.1": 4.0, "hw1.2": 0.0}
    assert not any("failed only through" in n for n in result.notices)


def test_two_backends_on_one_host_never_share_a_uid(tmp_path: Path):
    from grader.uids import claim_uid

    first, fd1 = claim_uid(set(), tmp_path)
    again, fd2 = claim_uid({first}, tmp_path)
    # Another process (here: another open file description) cannot take either.
    other, fd3 = claim_uid(set(), tmp_path)
    assert len({first, again, other}) == 3
    for fd in (fd1, fd2, fd3):
        os.close(fd)
    reused, fd4 = claim_uid(set(), tmp_path)
    assert reused == first  # freed when its holder closes the lock
    os.close(fd4)


SLOW_TESTS = """\
import pytest


@pytest.mark.task("hw1.2")
@pytest.mark.time_limit(9)
def test_slow_allowed(student):
    assert student.call("mini.mul", 7, 1) == 7


@pytest.mark.task("hw1.2")
def test_slow_default(student):
    assert student.call("mini.mul", 7, 1) == 7
"""


def test_time_limit_marker_gives_one_test_its_own_limit(graded_course: Path, tmp_path: Path):
    write(graded_course / "assignments/hw1/hidden/test_slow.py", SLOW_TESTS)
    ops = GOOD_OPS.replace(
        "    return x * y\n",
        "    if x == 7:\n        import time\n        time.sleep(4)\n    return x * y\n",
    )
    result = grade_one(graded_course, submission(tmp_path / "subs", "hal", ops), tmp_path)
    by_id = {t.id: t for t in result.tests}
    assert by_id["hidden/test_slow.py::test_slow_allowed"].status == "passed"
    default = by_id["hidden/test_slow.py::test_slow_default"]
    assert default.status == "failed"
    assert "time limit (3 s) exceeded" in default.output


def probe_nothing():
    return None


def test_a_failed_import_is_checked_once_per_session():
    """The student fixture and every timing test ask for the import check; an import
    that hangs must cost one time limit, not one per asking test."""
    from grader.harness import Runner
    from grader.workers import WorkerTimeout

    calls = []

    class HangingImport:
        output = Path("/nonexistent")

        def call(self, probe, args, timeout, left=None):
            calls.append(args)
            raise WorkerTimeout("time limit exceeded")

    runner = Runner(HangingImport(), budget_s=1.0)  # type: ignore[arg-type]
    runner.check_import(["minitorch"])
    runner.check_import(["minitorch"])
    assert calls == [("minitorch",)]
    with pytest.raises(WorkerTimeout, match="importing minitorch failed"):
        runner.run(probe_nothing)


SLOW_TO_EXPLAIN = """\
import time

import pytest


@pytest.mark.task("hw1.2")
def test_long_lists_slow_to_explain(student, monkeypatch):
    # CI makes pytest explain a failed comparison by a full diff: of 3000 floats
    # that all differ, a minute or more of work in the harness.
    monkeypatch.setenv("CI", "1")
    six = student.call("mini.mul", 2, 3)
    assert [six * i + 0.5 for i in range(3000)] == [6.0 * i for i in range(3000)]


@pytest.mark.task("hw1.2")
def test_stops_its_worker(student):
    assert student.call("mini.mul", 5, 1) == 5


@pytest.mark.task("hw1.2")
def test_big_request_to_a_stopped_worker(student):
    time.sleep(1.0)  # the worker has stopped by now (0.1 s after it answered)
    assert student.call("mini.add", [0] * 1_000_000, []) == [0] * 1_000_000


@pytest.mark.task("hw1.2")
def test_after(student):
    assert student.call("mini.mul", 2, 3) == 6
"""


def test_a_test_past_its_limit_in_the_harness_fails_and_the_next_one_runs(
    graded_course: Path, tmp_path: Path
):
    """The time limit holds on the harness's side too: pytest's explanation of two long
    lists that differ (minutes of diffing) and a request that a stopped worker never
    reads each fail their test soon after its 3 s, with the harness's reason; the
    stopped worker is killed, and the next test gets a fresh one and passes."""
    write(graded_course / "assignments/hw1/hidden/test_slow_explain.py", SLOW_TO_EXPLAIN)
    ops = GOOD_OPS.replace(
        "    return x * y\n",
        "    if x == 5:\n"
        "        import os, signal, threading, time\n"
        "        def stop():\n"
        "            time.sleep(0.1)\n"
        "            os.kill(os.getpid(), signal.SIGSTOP)\n"
        "        threading.Thread(target=stop).start()\n"
        "    return x * y\n",
    )
    start = time.monotonic()
    result = grade_one(graded_course, submission(tmp_path / "subs", "kit", ops), tmp_path)
    elapsed = time.monotonic() - start
    by_id = {t.id.split("::")[-1]: t for t in result.tests}
    slow = by_id["test_long_lists_slow_to_explain"]
    assert slow.status == "failed"
    assert slow.output == (
        "HarnessTimeLimit: the test's time limit (3 s) was exceeded while checking the result"
    )
    assert by_id["test_stops_its_worker"].status == "passed"
    stopped = by_id["test_big_request_to_a_stopped_worker"]
    assert stopped.status == "failed"
    assert stopped.output == (
        "HarnessTimeLimit: the test's time limit (3 s) was exceeded "
        "(the call did not return in time)"
    )
    assert by_id["test_after"].status == "passed"
    assert by_id["test_mul_matches_reference"].status == "passed"
    # Two limits of 3 s (each with the timer's margin of 2.3 s), not minutes.
    assert elapsed < 30, elapsed


def test_a_call_cut_short_kills_its_worker():
    """An exception that interrupts a worker call (the harness's timer) leaves no
    half-read frame behind: the worker is killed, so the next call starts a fresh
    one. A student's exception arrives in a whole frame and keeps the worker."""
    from grader.harness import HarnessTimeLimit, Runner

    class FakeWorker:
        output = Path("/nonexistent")

        process = None

        def __init__(self) -> None:
            self.kills = 0
            self.error: BaseException = HarnessTimeLimit("cut short")

        def call(self, probe, args, timeout, left=None):
            raise self.error

        def waited_seconds(self) -> float:
            return 0.0

        def kill(self) -> None:
            self.kills += 1

    worker = FakeWorker()
    runner = Runner(worker, budget_s=1.0)  # type: ignore[arg-type]
    runner.begin_test()
    with pytest.raises(HarnessTimeLimit):
        runner.call("mini.add", 1, 2)
    assert worker.kills == 1 and runner.interrupted and not runner.in_call
    runner.begin_test()
    runner.interrupted = False
    student_error = ValueError("bad input")
    student_error.student_traceback = "Traceback ..."  # type: ignore[attr-defined]
    worker.error = student_error
    with pytest.raises(ValueError):
        runner.call("mini.add", 1, 2)
    assert worker.kills == 1 and not runner.interrupted


def test_a_harness_whose_grader_died_while_it_started_stops_at_once(tmp_path: Path):
    """The kernel's parent-death signal counts only from when it is asked for: a grader
    killed while its harness was still starting would leave that harness grading on
    (and writing into a folder a rerun is using). The harness is told its parent's pid
    and, finding another parent, exits before running a test."""
    from grader.sandbox import PARENT_ENV

    write(tmp_path / "test_x.py", "def test_x():\n    open('ran', 'w').close()\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "grader.harness"]
    command += ["--llmsys-harness", str(tmp_path / "absent.json"), "test_x.py"]
    env = {**os.environ, PARENT_ENV: "1"}  # not this process's parent
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, check=False)
    assert done.returncode == 70 and not (tmp_path / "ran").exists(), done.stdout
    env[PARENT_ENV] = str(os.getpid())  # the real parent: it goes on (and fails on the config)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, check=False)
    assert done.returncode not in (0, 70) and b"absent.json" in done.stdout + done.stderr


def test_a_rule_check_reads_the_submissions_files_in_the_harness(tmp_path: Path):
    """`student.source(path)` reads in the harness, not through student code, and
    only the submission's own files: no way out of its tree, no link."""
    from grader.runner import Runner
    from grader.workers import Worker

    tree = tmp_path / "tree"
    write(tree / "pkg/mod.py", "import torch\n")
    (tmp_path / "secret.py").write_text("SECRET = 1\n")
    (tree / "pkg/link.py").symlink_to(tmp_path / "secret.py")
    runner = Runner(Worker(tree, tmp_path / "log", None, {}), 3.0)
    assert runner.source("pkg/mod.py") == "import torch\n"
    assert runner.worker.process is None  # no worker was started for it
    for path in ("../secret.py", "pkg/link.py", str(tmp_path / "secret.py")):
        with pytest.raises((ValueError, OSError)):
            runner.source(path)
