"""The course's invariants, for every real assignment.

- starters are in sync with solutions/;
- the reference passes every public test, the starter fails every one cleanly
  with a NotImplementedError of a stub, and stubbing one task fails only its tests;
- a copy of the starter, outside this repo, installs with pip and runs pytest.

An assignment that needs a GPU is verified only where there is one; elsewhere
its starter copy must still install, and its tests skip, each with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from grader import starter
from grader.gpus import shortfall
from grader.manifest import Course
from grader.verify import verify
from tests.conftest import REPO

COURSE = Course.load(REPO)
ASSIGNMENTS = [pytest.param(a, id=a.id) for a in COURSE.assignments]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_starter_is_in_sync(assignment):
    tree = starter.starter_tree(COURSE, assignment)
    assert starter.stale_files(tree, REPO / "starter" / assignment.id) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_passes_starter_fails_tasks_isolated(assignment):
    result = verify(COURSE, assignment, jobs=2)
    if result.skipped:
        pytest.skip(f"{assignment.id} {result.skipped}")
    assert result.problems == []
    for row in result.rows:
        assert row.tests > 0
        assert row.reference_passed == row.tests
        assert row.starter_clean == row.tests
        assert row.isolated


def junit_outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """test name -> (outcome, message) from a JUnit XML file."""
    outcomes = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            kinds = {type(r): r for r in case.result}
            outcome, message = "passed", ""
            for kind, name in ((Failure, "failed"), (Error, "error"), (Skipped, "skipped")):
                if kind in kinds:
                    outcome, message = name, kinds[kind].message or ""
            outcomes[f"{case.classname}.{case.name}"] = (outcome, message)
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_starter_copy_installs_and_runs_standalone(assignment, tmp_path: Path):
    """A student's view: copy starter/hwN anywhere, `pip install -e .`, `pytest`."""
    work = tmp_path / "student"
    shutil.copytree(REPO / "starter" / assignment.id, work)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(REPO / "ci" / "constraints.txt"),
            "-e",
            ".",
        ],
        cwd=work,
        check=True,
    )

    def pytest_in_copy() -> dict[str, tuple[str, str]]:
        report = tmp_path / "junit.xml"
        subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
            cwd=work,
            check=False,
            # Outcomes are checked, not Hypothesis's smallest failing examples.
            env={
                "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
                "CI": "1",
                "HOME": str(tmp_path),
                "LLMSYS_NO_SHRINK": "1",
            },
        )
        return junit_outcomes(report)

    outcomes = pytest_in_copy()
    assert outcomes, "pytest ran no test in the starter copy"
    if shortfall(assignment.limits.gpus):
        # Without a GPU a student's run skips every test, each saying why.
        for name, (outcome, message) in outcomes.items():
            assert outcome == "skipped", (name, outcome, message)
            assert message.startswith("needs a CUDA GPU: "), (name, message)
        return
    task_ids = tuple(f"{t.id}:" for t in assignment.tasks)
    # A student without PyTorch: the tests that compare with it skip, saying so; and so
    # do a CPU assignment's GPU self-checks (hw3's layers on hw2's CUDA backend).
    skipping = {
        n
        for n, (o, m) in outcomes.items()
        if o == "skipped" and ("'torch'" in m or m.startswith("needs a CUDA GPU: "))
    }
    # A task's rule tests (no finished library implementation) pass: a stub breaks no rule.
    listed = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-m",
            "rule",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rules = {
        line.replace(".py::", ".").replace("/", ".") for line in listed.splitlines() if "::" in line
    }
    for name, (outcome, message) in outcomes.items():
        if name in skipping:
            continue
        if name in rules:
            assert outcome == "passed", (name, outcome, message)
            continue
        assert outcome == "failed", (name, outcome, message)
        assert message.startswith("NotImplementedError: "), (name, message)
        assert message.removeprefix("NotImplementedError: ").startswith(task_ids), (name, message)

    # Dropping the reference's versions of the submitted files in makes every test pass.
    reference = starter.render_tree(COURSE, assignment, stub_tags=())
    for rel in assignment.submit:
        (work / rel).write_bytes(reference[rel])
    outcomes = pytest_in_copy()
    assert {o for n, (o, _) in outcomes.items() if n not in skipping} == {"passed"}, outcomes
