"""The results journal of the pytest plugin: what finished, killed and broken sessions leave."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader.records import RESULTS_FORMAT, read_results

TESTS = """\
import os
import signal

import pytest


@pytest.mark.task("hw1.1")
def test_passes():
    assert True


@pytest.mark.task("hw1.1", points=2)
def test_fails():
    assert 1 == 2, "one is not two"


@pytest.mark.task("hw1.2")
def test_kills_the_session():
    if os.environ.get("KILL"):
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.task("hw1.2", points=0)
@pytest.mark.rule
def test_after_the_kill():
    assert True
"""


def run_session(
    tmp_path: Path, kill: bool = False, targets: tuple[str, ...] = ("test_some.py",)
) -> Path:
    (tmp_path / "test_some.py").write_text(TESTS)
    journal = tmp_path / "out" / "results.jsonl"
    env = {"PATH": "/usr/bin:/bin", **({"KILL": "1"} if kill else {})}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--tb=no",
            "-p",
            "no:cacheprovider",
            "--llmsys-results",
            str(journal),
            *targets,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=False,
    )
    return journal


def test_a_finished_session_lists_every_test_with_its_outcome(tmp_path: Path):
    data = read_results(run_session(tmp_path))
    assert data.finished is True
    by_name = {r.nodeid.split("::")[1]: r for r in data.tests}
    assert list(by_name) == [
        "test_passes",
        "test_fails",
        "test_kills_the_session",
        "test_after_the_kill",
    ]
    assert by_name["test_passes"].outcome == "passed"
    failed = by_name["test_fails"]
    assert (failed.outcome, failed.task, failed.points) == ("failed", "hw1.1", 2.0)
    assert failed.error_type == "AssertionError" and "one is not two" in failed.message
    # The failure report: the test's own frame and the assertion, no pytest internals.
    assert 'test_some.py", line 14, in test_fails' in failed.longrepr
    assert "AssertionError: one is not two" in failed.longrepr
    assert "_pytest" not in failed.longrepr and "pluggy" not in failed.longrepr
    assert by_name["test_after_the_kill"].properties == {"rule": True}
    assert by_name["test_passes"].properties == {}


def test_a_killed_session_keeps_finished_verdicts_and_lists_the_rest(tmp_path: Path):
    data = read_results(run_session(tmp_path, kill=True))
    assert data.finished is False
    outcomes = {r.nodeid.split("::")[1]: r.outcome for r in data.tests}
    assert outcomes == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_kills_the_session": "did_not_run",
        "test_after_the_kill": "did_not_run",
    }
    # A rule that never ran is still known as one (it zeroes its task).
    assert [r.properties for r in data.tests][-1] == {"rule": True}


def test_a_torn_last_line_is_ignored(tmp_path: Path):
    journal = run_session(tmp_path, kill=True)
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write('{"nodeid": "test_some.py::test_after_the_kill", "outc')
    outcomes = {r.nodeid: r.outcome for r in read_results(journal).tests}
    assert outcomes["test_some.py::test_after_the_kill"] == "did_not_run"


def test_a_collection_error_is_a_record(tmp_path: Path):
    (tmp_path / "test_broken.py").write_text("import not_a_module_anywhere\n")
    journal = run_session(tmp_path, targets=("test_some.py", "test_broken.py"))
    errors = [r for r in read_results(journal).tests if r.outcome == "error"]
    assert len(errors) == 1 and "not_a_module_anywhere" in errors[0].message


def test_a_file_of_another_format_is_refused(tmp_path: Path):
    old = tmp_path / "results.json"
    old.write_text(json.dumps({"format": RESULTS_FORMAT - 1, "tests": []}) + "\n")
    with pytest.raises(ValueError, match="not a results journal"):
        read_results(old)


def test_a_record_that_does_not_fit_its_schema_is_refused(tmp_path: Path):
    journal = run_session(tmp_path)
    lines = journal.read_text(encoding="utf-8").splitlines()
    record = next(json.loads(line) for line in lines if '"nodeid"' in line)
    for change, error in (
        ({"outcome": "won"}, "outcome: must be one of"),
        ({"points": "all of them"}, "points: expected a number"),
        ({"verdict": "passed"}, "verdict: unknown key"),
    ):
        bad = json.dumps({**record, **change})
        journal.write_text("\n".join([*lines, bad]) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=error):
            read_results(journal)


def test_a_test_collected_twice_has_two_runs_each_recorded_on_its_own(tmp_path: Path):
    """`--keep-duplicates` (the timing benchmark's one session): each run of a test is
    a record of its own, from a clean start, with its own properties."""
    from grader.records import read_runs

    (tmp_path / "test_twice.py").write_text(
        "import pytest\n"
        "RUNS = []\n\n"
        "@pytest.mark.task('hw1.1')\n"
        "def test_counts(record_property):\n"
        "    RUNS.append(1)\n"
        "    record_property('run', len(RUNS))\n"
        "    assert len(RUNS) != 1, 'the first run fails'\n"
    )
    journal = tmp_path / "results.jsonl"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--keep-duplicates",
         "--llmsys-results", str(journal), "test_twice.py", "test_twice.py", "test_twice.py"],
        cwd=tmp_path, capture_output=True, check=False,
    )  # fmt: skip
    runs = read_runs(journal)
    assert [(r.outcome, r.properties["run"]) for r in runs] == [
        ("failed", 1),
        ("passed", 2),
        ("passed", 3),
    ]
    assert runs[1].message == "" and runs[1].error_type is None  # a clean start
    (latest,) = read_results(journal).tests
    assert latest.outcome == "passed" and latest.properties["run"] == 3
