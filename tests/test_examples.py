"""The bundled example submissions, graded for real as one batch (in Docker where the
engine runs, as in CI) on a host whose cores are kept busy by other work: each gets
the score that examples/expected.toml gives it, and nothing of the hidden tests or
the reference reaches a student's output. CI grades a representative sample of each
assignment's examples (`SAMPLE`); ./ci/main grades them all. Hostile submissions are
tests/test_security.py's."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from junitparser.xunit2 import JUnitXml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from grader import examples, gpus
from grader.backend import Backend
from grader.backends.local import LocalBackend
from grader.batch import BatchResult, discover, grade_batch
from grader.context import Context, render_context
from grader.errors import CheckFailed
from grader.manifest import Course
from tests.conftest import HOG, REPO, hidden_snippets, student_visible_text, tree_digest

EXAMPLES = REPO / "examples" / "expected.toml"
EXPECTED = tomllib.loads(EXAMPLES.read_text())
#: The examples graded here: the reference, the starter, a missing file, a bug whose
#: failure compares long lists, bugs rescued by the composed rerun. (A test's time
#: limit is graded by tests/test_time_limits.py and the security suite's attacks; the
#: `slow` example, with the rest, by ./ci/main.) An assignment not listed is graded whole.
SAMPLE = {
    "hw1": (
        "reference",
        "starter",
        "buggy",
        "missing-file",
        "buggy-relu-clipped",
    ),
    # A bug of one task (hw3.3) whose other tasks' tests pass on the composed rerun.
    "hw3": ("reference", "starter", "attention-no-causal-mask"),
    # Ranks talking over the submission's own loopback; a bug of one task (hw5.2).
    "hw5": ("reference", "starter", "ddp-sum-not-average"),
    # A bug of hw6.3 whose hw6.4 tests (which use the block manager) pass on the
    # composed rerun.
    "hw6": ("reference", "starter", "block-free-keeps-shared-counts"),
}
#: Assignments whose sample is graded by `test_sampled_examples_get_their_expected_scores`
#: (hw1's has tests of its own, below).
OTHERS = [name for name in SAMPLE if name != "hw1"]
SAMPLED = {name: EXPECTED["hw1"][name] for name in SAMPLE["hw1"]}
#: Files a student sees: their feedback and their Gradescope results.
STUDENT_FILES = ("feedback.md", "results.json")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hw1_context() -> Context:
    course = Course.load(REPO)
    return render_context(course, course.get("hw1"))


@pytest.fixture(scope="module")
def hw1_examples(hw1_context: Context, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples of hw1, written whole."""
    folder = tmp_path_factory.mktemp("examples")
    examples.materialize(hw1_context, REPO, folder)
    return folder


@pytest.fixture(scope="module")
def hw1_sample(hw1_examples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sampled examples of hw1 (`SAMPLE`), in a folder of their own."""
    folder = tmp_path_factory.mktemp("sample")
    for name in SAMPLE["hw1"]:
        shutil.copytree(hw1_examples / name, folder / name)
    return folder


@contextmanager
def busy_host() -> Iterator[None]:
    """A CPU hog beside the batch while the block runs (another job's load): a process
    spinning on all cores but one, each in a session of its own, so the scheduler
    counts them one by one."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", HOG], start_new_session=True)
        for _ in range(max(1, (os.cpu_count() or 1) - 1))
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> Backend:
    """Docker where it works (as TAs grade; always in CI), else the local backend,
    whose own end-to-end runs are in tests/test_security.py and tests/test_grade.py."""
    try:
        return request.getfixturevalue("docker_backend")
    except pytest.skip.Exception:
        return LocalBackend()


@pytest.fixture(scope="module")
def hw1_batch(
    hw1_context: Context,
    hw1_sample: Path,
    tmp_path_factory: pytest.TempPathFactory,
    backend: Backend,
):
    before = tree_digest(hw1_sample)
    out = tmp_path_factory.mktemp("out")
    with busy_host():
        batch = grade_batch(hw1_context, discover(hw1_sample), out, backend, jobs=2)
    return batch, out / "hw1", before


@pytest.mark.parametrize("assignment_id", examples.assignments(REPO))
def test_every_assignments_examples_are_checked_here(assignment_id: str):
    """CPU assignments' examples are graded by the tests below (hw1's) or need a sample
    here; a GPU assignment's are graded on a GPU machine (./ci/main there), and their
    kernels compile in tests/test_cuda.py."""
    a = Course.load(REPO).get(assignment_id)
    why = gpus.shortfall(a.limits.gpus)
    if why is not None:
        pytest.skip(f"{assignment_id} {why}: its examples are graded on a GPU machine")
    assert assignment_id in SAMPLE, f"add a sample of {assignment_id}'s examples to SAMPLE"
    assert set(SAMPLE[assignment_id]) <= set(EXPECTED[assignment_id])


def test_examples_are_their_base_with_their_edits(hw1_context: Context, hw1_examples):
    assert sorted(p.name for p in discover(hw1_examples)) == sorted(EXPECTED["hw1"])
    for rel in hw1_context.assignment.submit:
        assert (hw1_examples / "reference" / rel).read_bytes() == hw1_context.reference[rel]
        assert (hw1_examples / "starter" / rel).read_bytes() == hw1_context.starter[rel]
    assert not (hw1_examples / "missing-file/minitorch/operators.py").exists()
    buggy = (hw1_examples / "buggy/minitorch/operators.py").read_text()
    assert "return d if x >= 0.0 else 0.0" in buggy
    assert (hw1_examples / "buggy/minitorch/scalar.py").read_bytes() == hw1_context.reference[
        "minitorch/scalar.py"
    ]


def test_an_edit_the_base_no_longer_fits_names_the_example(hw1_context: Context):
    spec = dict(EXPECTED["hw1"]["buggy"])
    spec["edit"] = [{"file": "minitorch/operators.py", "old": "not in the reference", "new": ""}]
    with pytest.raises(CheckFailed, match=r"\[hw1.buggy\]: minitorch/operators.py of the"):
        examples.example_files(hw1_context, "buggy", spec)


def test_each_example_gets_its_expected_score(hw1_batch: tuple[BatchResult, Path, str]):
    batch, _, _ = hw1_batch
    got = {r.submission: r for r in batch.results}
    for name, want in SAMPLED.items():
        result = got[name]
        failing = [t.id for t in result.tests if t.status != "passed"]
        assert result.status == "graded", (name, result.reason)
        assert result.score == pytest.approx(want["score"], abs=1e-3), (name, failing)
        assert len(failing) == want["failing"], (name, failing)
    assert batch.graded == len(SAMPLED) and batch.reused == 0


def test_clear_reasons(hw1_batch: tuple[BatchResult, Path, str]):
    batch, _, _ = hw1_batch
    missing = next(r for r in batch.results if r.submission == "missing-file")
    assert missing.notices[0] == "file minitorch/operators.py missing from submission"
    # hw1.2's tests fail with the starter's operators, and pass on the rerun.
    assert any(
        "of hw1.2 failed, or did not run, only through your files" in n for n in missing.notices
    )
    buggy = next(r for r in batch.results if r.submission == "buggy")
    # Its relu_back bug (hw1.1) also fails a test of hw1.2 and one of hw1.4; both pass
    # on the rerun with working operators, and keep their points.
    rescued = {t.task for t in buggy.tests if "passed with working files" in t.output}
    assert rescued == {"hw1.2", "hw1.4"}
    assert all(t.status == "passed" for t in buggy.tests if t.task != "hw1.1")


def test_a_failed_comparison_of_long_lists_is_explained_within_the_time_limit(
    hw1_batch: tuple[BatchResult, Path, str],
):
    """ReLU6 for relu fails the hidden test that compares 10,004 floats as a wrong
    result, in much less than its 10 s (pytest's explanation of it is bounded; a full
    diff took minutes), and costs hw1.1 points only."""
    batch, _, _ = hw1_batch
    clipped = next(r for r in batch.results if r.submission == "buggy-relu-clipped")
    (long_map,) = [t for t in clipped.tests if "test_map_on_a_long_list" in t.id]
    assert long_map.status == "failed"
    assert long_map.output == "wrong result (details of hidden tests are not shown)"
    assert long_map.duration_s < 5
    assert all(t.status == "passed" for t in clipped.tests if t.task != "hw1.1")
    assert not any("time limit" in notice for notice in clipped.notices)


def test_grading_leaves_the_submissions_and_writes_only_reports(
    hw1_batch: tuple[BatchResult, Path, str], hw1_sample: Path
):
    _, out, before = hw1_batch
    assert tree_digest(hw1_sample) == before, "grading changed the submissions folder"
    assert {p.name for p in out.iterdir()} == {"gradebook.csv", "junit.xml"} | set(SAMPLED)
    for folder in (p for p in out.iterdir() if p.is_dir()):
        assert {p.name for p in folder.iterdir()} == {"result.json", "feedback.md", "results.json"}


def test_no_hidden_test_or_reference_text_reaches_students(
    hw1_batch: tuple[BatchResult, Path, str], hw1_context: Context
):
    _, out, _ = hw1_batch
    snippets = hidden_snippets(hw1_context, EXAMPLES.read_text())
    assert len(snippets) > 50, "too few distinctive hidden-test lines to make this check mean much"
    for path, text in student_visible_text(out).items():
        assert "BEGIN SOLUTION" not in text, path
        leaked = [s for s in snippets if s in text]
        assert not leaked, f"{path} shows hidden test code: {leaked[:3]}"


def test_batch_reports_agree_with_results(hw1_batch: tuple[BatchResult, Path, str]):
    batch, out, _ = hw1_batch
    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(out / "junit.xml"))}
    assert set(suites) == {r.submission for r in batch.results}
    for result in batch.results:
        suite = suites[result.submission]
        assert suite.tests == len(result.tests)
        failed = sum(t.status != "passed" for t in result.tests)
        assert suite.failures + suite.errors == failed, result.submission
        gradescope = json.loads((out / result.submission / "results.json").read_text())
        assert gradescope["score"] == pytest.approx(result.score)
    rows = list(csv.reader((out / "gradebook.csv").open(newline="")))
    assert rows[1][0] == "Points Possible" and len(rows) == 2 + len(batch.results)
    by_login = {row[3]: float(row[5]) for row in rows[2:]}
    # Canvas shows two decimals; the gradebook is rounded to them.
    assert by_login == {r.submission: pytest.approx(r.score, abs=0.005) for r in batch.results}


def test_rerun_reuses_every_result(hw1_batch, hw1_context: Context, hw1_sample: Path):
    batch, out, _ = hw1_batch
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/result.json")}
    # Any backend: nothing is graded again.
    again = grade_batch(hw1_context, discover(hw1_sample), out.parent, LocalBackend())
    assert again.graded == 0 and again.reused == len(batch.results)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/result.json")} == stamps
    assert [r.score for r in again.results] == [r.score for r in batch.results]


@pytest.mark.parametrize("assignment_id", OTHERS)
def test_sampled_examples_get_their_expected_scores(
    assignment_id: str, tmp_path: Path, backend: Backend
):
    """The sample of each other assignment, graded as one batch (no CPU hog: hw1's
    batch has one)."""
    course = Course.load(REPO)
    context = render_context(course, course.get(assignment_id))
    folder = tmp_path / "examples"
    examples.materialize(context, REPO, folder, only=SAMPLE[assignment_id])
    batch = grade_batch(context, discover(folder), tmp_path / "out", backend, jobs=2)
    out = tmp_path / "out" / assignment_id
    got = {r.submission: r for r in batch.results}
    assert set(got) == set(SAMPLE[assignment_id])
    for name in SAMPLE[assignment_id]:
        want, result = EXPECTED[assignment_id][name], got[name]
        failing = [t.id for t in result.tests if t.status != "passed"]
        assert result.status == "graded", (name, result.reason)
        assert result.score == pytest.approx(want["score"], abs=1e-3), (name, failing)
        assert len(failing) == want["failing"], (name, failing)
    snippets = hidden_snippets(context, EXAMPLES.read_text())
    for path, text in student_visible_text(out).items():
        assert not [s for s in snippets if s in text], f"{path} shows hidden test code"
