"""Git submissions: `llmsys grade hwN repos.csv` grades each listed repository at its
newest commit dated before the student's cutoff (due date, extension, and the late
policy's last day), with that commit's date as its submission time."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from grader import git_intake
from grader.cli import main
from grader.errors import LlmsysError
from grader.results import SubmissionResult, from_dict
from tests.conftest import GOOD_OPS, write
from tests.test_canvas_in_late import with_late_policy
from tests.test_grade import BUGGY_MUL

IDENTITY = {"GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@x"}
IDENTITY |= {"GIT_COMMITTER_NAME": "s", "GIT_COMMITTER_EMAIL": "s@x"}
#: The mini course is due 2027-01-01 23:59 UTC.
BEFORE, LATE_1_5, LATE_5 = "2027-01-01T12:00:00Z", "2027-01-03T11:00:00Z", "2027-01-07T00:00:00Z"


def repo(folder: Path, commits: list[tuple[str, str]]) -> Path:
    """A repository whose commits put `ops` in mini/ops.py, each dated `when`."""
    folder.mkdir(parents=True)
    env = {**os.environ, **IDENTITY}
    subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True, env=env)
    for when, ops in commits:
        write(folder / "mini/ops.py", ops)
        subprocess.run(["git", "-C", str(folder), "add", "-A"], check=True, env=env)
        dated = {**env, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        subprocess.run(["git", "-C", str(folder), "commit", "-qm", when], check=True, env=dated)
    return folder


def repos(tmp_path: Path) -> Path:
    """ann: on time; bo: buggy on time, fixed 1.5 days late; cy: buggy on time, fixed
    5 days late (past max_days); dee: a repository that does not exist."""
    listed = {
        "ann": repo(tmp_path / "r/ann", [(BEFORE, GOOD_OPS)]),
        "bo": repo(tmp_path / "r/bo", [(BEFORE, BUGGY_MUL), (LATE_1_5, GOOD_OPS)]),
        "cy": repo(tmp_path / "r/cy", [(BEFORE, BUGGY_MUL), (LATE_5, GOOD_OPS)]),
        "dee": tmp_path / "r/missing",
    }
    rows = "".join(f"{name},{path}\n" for name, path in listed.items())
    return write(tmp_path / "repos.csv", "name,repository\n" + rows)


def grade(course: Path, listed: Path, out: Path) -> dict[str, SubmissionResult]:
    assert main(["--root", str(course), "grade", "hw1", str(listed), "--out", str(out)]) == 0
    return {
        p.parent.name: from_dict(json.loads(p.read_text())) for p in out.glob("hw1/*/result.json")
    }


def test_repositories_graded_at_their_last_commit_within_the_late_policy(
    graded_course: Path, tmp_path: Path, capsys
):
    with_late_policy(graded_course)  # 15 min grace, 10% a day, at most 3 days
    got = grade(graded_course, repos(tmp_path), tmp_path / "out")
    printed = capsys.readouterr().out
    assert set(got) == {"ann", "bo", "cy"}
    assert "dee: cannot clone" in printed and "missing" in printed
    assert got["ann"].score == 10.0 and got["ann"].late.days_late == 0
    # bo: the fix of 2027-01-03 11:00 counts, 35 h late = 2 started days, 20% off.
    assert (got["bo"].late.raw_score, got["bo"].late.days_late, got["bo"].score) == (10.0, 2, 8.0)
    # cy: the fix came after the last day the policy takes: the on-time commit counts.
    assert (got["cy"].late.raw_score, got["cy"].late.days_late, got["cy"].score) == (7.0, 0, 7.0)
    for name, when in (("ann", "2027-01-01 12:00"), ("bo", "2027-01-03 11:00")):
        (notice,) = [n for n in got[name].notices if n.startswith("Git: ")]
        assert notice.startswith("Git: graded at commit ") and notice.endswith(f"{when} UTC")


def test_without_a_late_policy_the_due_date_is_the_cutoff(graded_course: Path, tmp_path: Path):
    got = grade(graded_course, repos(tmp_path), tmp_path / "out")
    assert {name: r.score for name, r in got.items()} == {"ann": 10.0, "bo": 7.0, "cy": 7.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,repository\nbo,/a\nBo,/b\n", "repos.csv:3: Bo is listed twice"),
        ("name,repository\nbo\n", "repos.csv:2: expected a name and a repository"),
        ("name,repository\nbo,--upload-pack=evil\n", "is not a repository path or URL"),
        ("name,repository\nb/o,/a\n", "repos.csv:2: 'b/o' is not a usable name"),
    ],
)
def test_a_bad_row_is_one_line_naming_it(tmp_path: Path, text: str, message: str):
    path = write(tmp_path / "repos.csv", text)
    assert git_intake.is_repo_list(path)
    with pytest.raises(LlmsysError, match=message.replace("(", r"\(")):
        git_intake.read_repo_list(path)


def test_links_in_a_commit_are_not_written_out(tmp_path: Path):
    import datetime as dt

    source = repo(tmp_path / "r", [(BEFORE, GOOD_OPS)])
    (source / "mini/secret").symlink_to("/etc/shadow")
    subprocess.run(["git", "-C", str(source), "add", "-A"], check=True)
    env = {**os.environ, **IDENTITY}
    subprocess.run(["git", "-C", str(source), "commit", "-qm", "link"], check=True, env=env)
    out = git_intake.check_out("ann", str(source), dt.datetime.now(dt.timezone.utc), tmp_path / "o")
    assert (out.path / "mini/ops.py").read_text() == GOOD_OPS
    assert not (out.path / "mini/secret").exists() and not (out.path / "mini/secret").is_symlink()
