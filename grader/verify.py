"""Check an assignment's invariants by running its public tests on generated trees.

For each assignment this builds, in a temporary folder:
- the reference tree (nothing stubbed): every test must pass;
- the starter tree: every test must fail cleanly, with a NotImplementedError
  raised by a stub of this assignment (no collection error, no crash);
- one tree per task with only that task stubbed: exactly that task's tests fail.
It also checks that every test names a task of the assignment and every task
has tests. The results feed the per-task table of `llmsys verify`.

An assignment whose tests need a GPU (`limits.gpus`) is not run where there is
none: its tests would all be skipped, which proves nothing. Its verification
says so (`skipped`) instead of passing or failing. An assignment graded without
GPUs leaves its `gpu` tests out, as grading does (they are self-checks for
students who have one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from grader import gpus, starter
from grader.manifest import Assignment, Course
from grader.records import TestRecord, read_results
from grader.testrun import pytest_command, selection

#: Wall-clock limit of one pytest run of an assignment's public tests.
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Run:
    """One pytest run over one tree."""

    label: str
    records: tuple[TestRecord, ...]
    returncode: int
    output: str

    def of_task(self, task_id: str) -> list[TestRecord]:
        return [r for r in self.records if r.task == task_id]


@dataclass
class TaskRow:
    task_id: str
    title: str
    points: int
    tests: int = 0
    reference_passed: int = 0
    starter_clean: int = 0
    isolated: bool = False


@dataclass
class Verification:
    assignment: Assignment
    rows: list[TaskRow]
    problems: list[str] = field(default_factory=list)
    #: Why the tests were not run (a GPU assignment on a host without GPUs), or None.
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def run_tests(
    tree: Path,
    label: str,
    timeout: float = RUN_TIMEOUT_S,
    threads: int | None = None,
    markers: str = "",
) -> Run:
    """Run pytest over the public tests of a generated tree, in a subprocess.

    `threads`: the size of its numba/OpenMP thread pools (default: theirs). Runs
    side by side must share the cores: oversubscribed pools slow small parallel
    kernels down many times."""
    results = tree / ".llmsys-results.json"
    env = {**os.environ, "CI": os.environ.get("CI", "1"), "PYTHONDONTWRITEBYTECODE": "1"}
    # Only outcomes count here: no search for a smallest failing example (the
    # shipped conftest reads this).
    env["LLMSYS_NO_SHRINK"] = "1"
    if threads is not None:
        env.update(NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    env.pop("PYTHONPATH", None)
    command = pytest_command(sys.executable, results, ["-m", markers] if markers else [])
    try:
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        return Run(label, (), -1, f"pytest did not finish within {timeout:.0f} s")
    if not results.exists():
        return Run(label, (), returncode, output)
    return Run(label, read_results(results).tests, returncode, output)


def task_rows(a: Assignment) -> list[TaskRow]:
    """One empty row per task of `a`, in handout order."""
    return [TaskRow(t.id, t.title, t.points) for t in a.tasks]


def verify(course: Course, a: Assignment, jobs: int = 2) -> Verification:
    """Run every invariant of `a` and tally them per task."""
    reason = gpus.shortfall(a.limits.gpus)
    if reason is not None:
        return Verification(a, task_rows(a), skipped=reason)
    regions = starter.scan(course)
    own_tags = {t.id: set(t.marker_tags) for t in a.tasks}
    trees = {"reference": set(), "starter": starter.starter_stub_tags(course, a)}
    trees.update({f"only {task_id}": tags for task_id, tags in own_tags.items()})
    rendered = {
        label: starter.render_tree(course, a, tags, regions) for label, tags in trees.items()
    }
    touched = {
        label: {rel for rel, data in tree.items() if rendered["reference"].get(rel) != data}
        for label, tree in rendered.items()
    }
    with tempfile.TemporaryDirectory(prefix=f"llmsys-verify-{a.id}-") as tmp:
        threads = max(1, (os.cpu_count() or 1) // max(1, jobs))

        def build_and_run(label: str) -> Run:
            folder = starter.copy_tree(rendered[label], Path(tmp) / label.replace(" ", "-"))
            return run_tests(folder, label, threads=threads, markers=selection("", a.limits.gpus))

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            runs = dict(zip(trees, pool.map(build_and_run, trees), strict=True))
    return tally(a, runs, touched)


def tally(
    a: Assignment, runs: dict[str, Run], touched: dict[str, set[str]] | None = None
) -> Verification:
    """Turn the runs of `verify` into a per-task table and a list of problems.

    `touched[label]`: the files that differ from the reference in that run's tree.
    When task Y names its `files`, grading reruns Y's failed tests with only those
    files from the submission (grader.rerun); so with only X stubbed,
    a failing test of Y is fine when the stub touched none of Y's files.
    """
    touched = touched or {}
    files = {t.id: set(t.files) for t in a.tasks}
    rows = task_rows(a)
    result = Verification(a, rows)
    problems = result.problems
    reference, stub = runs["reference"], runs["starter"]
    for run in runs.values():
        if not run.records:
            problems.append(
                f"{run.label}: pytest recorded no test (exit {run.returncode}): "
                f"{_last_line(run.output)}"
            )
    task_ids = {t.id for t in a.tasks}
    for record in reference.records:
        if record.outcome == "error" and record.task is None:
            problems.append(
                f"reference: collection error in {record.nodeid or 'tests'}: "
                f"{_last_line(record.message)}"
            )
        elif record.task not in task_ids:
            problems.append(
                f"{record.nodeid}: has no task marker of {a.id} "
                f"(got {record.task!r}); add pytestmark = pytest.mark.task(...)"
            )
    for row in rows:
        ref = reference.of_task(row.task_id)
        row.tests = len(ref)
        row.reference_passed = sum(r.outcome == "passed" for r in ref)
        if not ref:
            problems.append(f"{row.task_id}: no public test carries this task")
        for r in ref:
            if r.outcome != "passed":
                problems.append(f"reference: {r.nodeid} {r.outcome}: {_last_line(r.message)}")
        # A rule test (e.g. no finished library implementation) passes on every tree:
        # a stub breaks no rule. Every other test fails cleanly on the starter.
        starter_records: list[TestRecord] = []
        rules: list[TestRecord] = []
        for r in stub.of_task(row.task_id):
            (rules if _rule(r) else starter_records).append(r)
        for r in rules:
            if r.outcome != "passed":
                problems.append(f"starter: rule {r.nodeid} should pass, got {r.outcome}")
        row.starter_clean = sum(_clean_stub_failure(r, a.id) for r in starter_records) + sum(
            r.outcome == "passed" for r in rules
        )
        for r in starter_records:
            if not _clean_stub_failure(r, a.id):
                problems.append(
                    f"starter: {r.nodeid} should fail with a NotImplementedError "
                    f"of a {a.id} stub, got {r.outcome} "
                    f"{r.error_type or ''}: {_last_line(r.message)}"
                )
        label = f"only {row.task_id}"
        only = runs[label]
        changed = touched.get(label, set())

        def composed_pass(r: TestRecord, changed: set[str] = changed) -> bool:
            mine = files.get(r.task or "", set())
            return bool(mine) and not (mine & changed)

        wrong = [
            r
            for r in only.records
            if (r.task == row.task_id and not _rule(r)) != (r.outcome != "passed")
            and not (r.task != row.task_id and composed_pass(r))
        ]
        outside = sorted(changed - files[row.task_id]) if files[row.task_id] else []
        for rel in outside:
            problems.append(
                f"{row.task_id}: its solution regions change {rel}, "
                f"which is not in its files {sorted(files[row.task_id])}"
            )
        row.isolated = bool(only.records) and not wrong and not outside
        for r in wrong:
            expected = "fail" if r.task == row.task_id and not _rule(r) else "pass"
            problems.append(
                f"only {row.task_id} stubbed: {r.nodeid} should {expected}, got {r.outcome}"
            )
    collection = [r for r in stub.records if r.task is None and r.outcome == "error"]
    for r in collection:
        problems.append(
            f"starter: collection error in {r.nodeid or 'tests'}: {_last_line(r.message)}"
        )
    return result


def _rule(record: TestRecord) -> bool:
    """A test of a task's rule (the `rule` marker), not of its implementation."""
    return bool(record.properties.get("rule"))


def _clean_stub_failure(r: TestRecord, assignment_id: str) -> bool:
    """Failed with the NotImplementedError of one of the assignment's stubs."""
    return (
        r.outcome == "failed"
        and r.error_type == "NotImplementedError"
        and r.message.startswith(f"{assignment_id}.")
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"
