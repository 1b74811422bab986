"""Regrades and audits: `llmsys grade --only` grades just the named submissions and
keeps every other result in the reports; `llmsys diff` says per student and per
test what changed between two gradings (e.g. after a hidden test was fixed)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from grader import audit, results
from grader.cli import main
from tests.conftest import GOOD_OPS, submission
from tests.test_grade import BUGGY_MUL


def grade(course: Path, subs: Path, out: Path, *extra: str) -> int:
    return main(["--root", str(course), "grade", "hw1", str(subs), "--out", str(out), *extra])


def saved(out: Path, name: str) -> results.SubmissionResult:
    return results.from_dict(json.loads((out / "hw1" / name / "result.json").read_text()))


@pytest.fixture
def graded(graded_course: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    submission(subs, "bo", BUGGY_MUL)
    out = tmp_path / "out"
    assert grade(graded_course, subs, out) == 0
    return graded_course, subs, out


def test_only_regrades_the_named_submission_and_keeps_the_others(graded, capsys):
    course, subs, out = graded
    ann_before = (out / "hw1/ann/result.json").stat().st_mtime_ns
    bo_before = saved(out, "bo")
    (subs / "bo/mini/ops.py").write_text(GOOD_OPS)  # bo's regrade request, fixed
    capsys.readouterr()
    assert grade(course, subs, out, "--only", "bo", "--regrade") == 0
    printed = capsys.readouterr().out
    assert "1 graded, 1 reused" in printed
    assert (out / "hw1/ann/result.json").stat().st_mtime_ns == ann_before
    bo_after = saved(out, "bo")
    assert bo_after.score == bo_after.max_score > bo_before.score
    # The gradebook lists both students, bo with the new score.
    rows = list(csv.reader((out / "hw1/gradebook.csv").open(newline="")))
    by_login = {row[3]: float(row[5]) for row in rows[2:]}
    assert by_login == {
        "ann": pytest.approx(bo_after.max_score),
        "bo": pytest.approx(bo_after.score),
    }


def test_only_with_an_unknown_name_grades_nothing_and_says_so(graded, capsys):
    course, subs, out = graded
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("hw1/*/result.json")}
    capsys.readouterr()
    assert grade(course, subs, out, "--only", "boo", "--regrade") == 2
    err = capsys.readouterr().err
    assert "--only names no submission of" in err and "boo" in err
    assert "did you mean bo?" in err
    assert {p: p.stat().st_mtime_ns for p in out.glob("hw1/*/result.json")} == stamps


def test_only_leaves_out_submissions_never_graded_and_warns(graded_course, tmp_path, capsys):
    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    submission(subs, "bo", BUGGY_MUL)
    out = tmp_path / "out"
    assert grade(graded_course, subs, out, "--only", "ann") == 0
    printed = capsys.readouterr().out
    assert "hw1: 1 submission(s), 0 already graded, 1 to grade" in printed
    assert "1 submission(s) have no result and were not graded (not named by --only): bo" in printed
    assert not (out / "hw1/bo").exists()


def test_diff_shows_each_changed_test_and_score(graded, tmp_path, capsys):
    course, subs, out = graded
    fixed = tmp_path / "out-fixed"
    shutil.copytree(out, fixed)
    (subs / "bo/mini/ops.py").write_text(GOOD_OPS)
    assert grade(course, subs, fixed, "--only", "bo") == 0
    capsys.readouterr()
    assert main(["diff", str(out / "hw1"), str(fixed / "hw1")]) == 1
    printed = capsys.readouterr().out.splitlines()
    before, after = saved(out, "bo"), saved(fixed, "bo")
    assert (
        printed[0]
        == f"hw1: 1 changed, 1 unchanged, 0 only in {out / 'hw1'}, 0 only in {fixed / 'hw1'}"
    )
    assert printed[1] == (
        f"  bo: {before.score:g} -> {after.score:g} ({after.score - before.score:+g})"
    )
    changed = [t for t in before.tests if t.status != "passed"]
    assert changed and printed[2:] == [
        f"    ~ {t.id}: {t.status} {t.points:g}/{t.max_points:g} -> passed "
        f"{t.max_points:g}/{t.max_points:g}"
        for t in changed
    ]
    # The same grading twice: nothing to say, exit 0; an OUT root with one hwN works too.
    assert main(["diff", str(out), str(out / "hw1")]) == 0
    assert capsys.readouterr().out.startswith("hw1: 0 changed, 2 unchanged")


def test_diff_lists_submissions_and_tests_in_one_grading_only(graded, tmp_path):
    _, _, out = graded
    other = tmp_path / "other"
    shutil.copytree(out, other)
    shutil.rmtree(other / "hw1/ann")
    bo = saved(other, "bo")
    extra = results.TestResult("hidden/test_new.py::test_x", "x", "hw1.2", 0.0, 1.0, "failed", 0.1)
    doctored = results.SubmissionResult(
        **{**results.to_dict(bo), "tasks": bo.tasks, "tests": (*bo.tests[1:], extra)}
    )
    (other / "hw1/bo/result.json").write_text(json.dumps(results.to_dict(doctored)))
    diff = audit.compare(audit.load(out / "hw1"), audit.load(other / "hw1"))
    assert diff.only_a == ["ann"] and diff.only_b == []
    (change,) = diff.changed
    assert [(t.id, t.before is None, t.after is None) for t in change.tests] == [
        (bo.tests[0].id, False, True),
        (extra.id, True, False),
    ]
    text = audit.render(diff, "A", "B")
    assert "  ann: only in A" in text
    assert f"    - {bo.tests[0].id}:" in text and f"    + {extra.id}: failed 0/1 (new)" in text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], "holds no graded submission"),
        (lambda p: (p.write_text("x"), p)[1], "is not a folder"),
    ],
)
def test_diff_of_something_not_a_grading_is_one_clear_line(tmp_path, capsys, make, message):
    target = make(tmp_path / "nothing")
    assert main(["diff", str(target), str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and "tip:" in err and "Traceback" not in err


def test_diff_of_an_unreadable_result_names_the_file(graded, capsys):
    _, _, out = graded
    (out / "hw1/bo/result.json").write_text("{not json")
    assert main(["diff", str(out / "hw1"), str(out / "hw1")]) == 2
    assert "bo/result.json: not a result this grader can read" in capsys.readouterr().err
