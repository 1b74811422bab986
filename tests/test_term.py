"""A TA's assignment the whole way on a CPU: Canvas's Download Submissions archive
(on-time, late, extended and re-uploaded submissions) -> `llmsys grade` with the late
policy -> `llmsys canvas upload --post` to a local Canvas stand-in, checked field by
field; and the same archive graded through the Slurm backend gives the same results.
(Each step's own cases are in tests/test_canvas_in_late.py, test_canvas_upload.py
and test_slurm.py; this is their chain.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from grader.cli import main
from grader.results import SubmissionResult, from_dict
from tests.conftest import write
from tests.test_canvas_in_late import (
    EXTENSIONS,
    LEDGER,
    ROSTER,
    TIMES,
    canvas_zip,
    with_late_policy,
)
from tests.test_canvas_upload import ASSIGNMENT, FakeCanvas, fake
from tests.test_slurm import slurm

__all__ = ["fake", "slurm"]  # the fixtures, for the tests below

#: The Canvas course's students, as the roster (tests/test_canvas_in_late.py) lists them.
USERS = [
    {"id": 101, "name": "Ann Lee", "login_id": "ann@uni.edu", "sis_user_id": "S001"},
    {"id": 102, "name": "Bo Park", "login_id": "bo", "sis_user_id": "S002"},
    {"id": 103, "name": "Cy Ng", "sis_user_id": "S003"},
    {"id": 104, "name": "Dee Ray", "login_id": "dee", "sis_user_id": "S004"},
]
#: Submission name -> (Canvas user id, final score): ann on time 10; bo 2 days late,
#: one paid by a free day, 10% of the buggy 7 off; cy's extension covers its lateness
#: and its re-upload (correct) is graded; dee LATE without a time, no free days: 10% off.
EXPECTED = {"ann@uni.edu": (101, 10.0), "bo": (102, 6.3), "103": (103, 10.0), "dee": (104, 9.0)}


def inputs(folder: Path) -> list[str]:
    """The archive and the TA's files, as `llmsys grade` arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        str(canvas_zip(folder / "submissions.zip")),
        "--roster", str(write(folder / "roster.csv", ROSTER)),
        "--times", str(write(folder / "times.csv", TIMES)),
        "--extensions", str(write(folder / "extensions.csv", EXTENSIONS)),
        "--ledger", str(write(folder / "ledger.csv", LEDGER)),
    ]  # fmt: skip


def grade(course: Path, folder: Path, out: Path, *extra: str) -> dict[str, SubmissionResult]:
    argv = ["--root", str(course), "grade", "hw1", *inputs(folder), "--out", str(out)]
    assert main([*argv, "--jobs", "2", *extra]) == 0
    return {
        path.parent.name: from_dict(json.loads(path.read_text()))
        for path in sorted((out / "hw1").glob("*/result.json"))
    }


def test_archive_to_grades_with_late_days_to_canvas(
    graded_course: Path, tmp_path: Path, fake: FakeCanvas, capsys
):
    with_late_policy(graded_course)
    graded = grade(graded_course, tmp_path / "ta", tmp_path / "out")
    assert {name: r.score for name, r in graded.items()} == {
        name: score for name, (_, score) in EXPECTED.items()
    }
    assert graded["bo"].late is not None and graded["bo"].late.penalty == 0.7
    capsys.readouterr()

    fake.users = [dict(user) for user in USERS]
    upload = [
        "canvas", "upload", str(tmp_path / "out" / "hw1"), "--assignment-id", str(ASSIGNMENT),
        "--roster", str(tmp_path / "ta" / "roster.csv"),
    ]  # fmt: skip
    assert main(upload) == 0
    assert fake.puts == [], "a dry run posts nothing"
    assert main([*upload, "--post"]) == 0
    posted = {int(r.path.rsplit("/", 1)[1]): r.form for r in fake.puts}
    assert set(posted) == {user for user, _ in EXPECTED.values()}
    for name, (user, score) in EXPECTED.items():
        form = posted[user]
        assert float(form["submission[posted_grade]"][0]) == score, name
        comment = form["comment[text_comment]"][0]
        feedback = (tmp_path / "out" / "hw1" / name / "feedback.md").read_text()
        assert comment.startswith(feedback.strip().splitlines()[0]), name
        assert comment.rstrip().splitlines()[-1].startswith("[llmsys "), name
        assert fake.scores[user] == score and fake.comments[user] == [comment]
    # The late lines reach the student: bo's comment says what the late days cost.
    assert "Late" in posted[102]["comment[text_comment]"][0]
    assert "0.7" in posted[102]["comment[text_comment]"][0]
    # Posting again sends nothing.
    before = len(fake.puts)
    capsys.readouterr()
    assert main([*upload, "--post"]) == 0
    assert len(fake.puts) == before
    assert "nothing new to post" in capsys.readouterr().out


@pytest.mark.usefixtures("slurm")
def test_the_same_archive_through_slurm_gives_the_same_results(graded_course: Path, tmp_path):
    with_late_policy(graded_course)
    manifest = graded_course / "assignments/hw1/assignment.toml"
    manifest.write_text(  # two jobs on a 2-core node
        manifest.read_text().replace(
            "submission_timeout_s = 60\n", "submission_timeout_s = 60\ncpus = 1\nmemory_mb = 1024\n"
        )
    )
    local = grade(graded_course, tmp_path / "local", tmp_path / "out-local")
    cluster = grade(graded_course, tmp_path / "slurm", tmp_path / "out-slurm", "--backend", "slurm")
    assert set(cluster) == set(EXPECTED)

    def summary(result: SubmissionResult) -> tuple[object, ...]:
        tests = tuple((t.id, t.status, t.points) for t in result.tests)
        return (result.status, result.score, result.key, result.late, tests)

    assert {n: summary(r) for n, r in cluster.items()} == {n: summary(r) for n, r in local.items()}
    # Both batches charged the same late days in their (separate) ledgers.
    assert (tmp_path / "slurm" / "ledger.csv").read_text() == (
        tmp_path / "local" / "ledger.csv"
    ).read_text()
    shutil.rmtree(tmp_path / "out-slurm" / ".slurm", ignore_errors=True)
