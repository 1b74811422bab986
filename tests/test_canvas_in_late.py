"""Canvas's "Download Submissions" archive as a batch, and the late policy applied from
submission times, extensions and a term's free late days (grader.canvas_archive,
grader.late), end to end through `llmsys grade` on the mini course."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from grader import canvas_archive, late
from grader.cli import main
from grader.errors import LlmsysError
from grader.manifest import Course, LatePolicy
from grader.results import Late, SubmissionResult, from_dict
from tests.conftest import GOOD_OPS, REPO, write
from tests.test_grade import BUGGY_MUL

UTC = dt.timezone.utc
DUE = dt.datetime(2027, 1, 1, 23, 59, tzinfo=UTC)  # the mini course's due date
POLICY = LatePolicy(grace_minutes=15, penalty_per_day=0.1, max_days=3)

ROSTER = """\
Student,ID,SIS User ID,SIS Login ID,Section
    Points Possible,,,,
"Ann, Lee",101,S001,ann@uni.edu,A
"Bo, Park",102,S002,bo,A
"Cy, Ng",103,S003,,A
"Dee, Ray",104,S004,dee,A
"""

TIMES = """\
login,submitted_at
ann@uni.edu,2027-01-01T23:00:00Z
bo,2027-01-03T10:00:00+00:00
S003,2027-01-03T12:00:00Z
"""

EXTENSIONS = "login,days,due\n103,2,\n"

LEDGER = "login,free_days,hw2\nann@uni.edu,2,\nbo,3,2\ndee,0,\n"

LEDGER_AFTER = "login,free_days,left,hw1,hw2\nann@uni.edu,2,2,0,\nbo,3,0,1,2\ndee,0,0,0,\n"


def zipped(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def canvas_zip(path: Path) -> Path:
    """An archive as Canvas writes it: ann on time; bo LATE; cy LATE (with an
    extension) who re-uploaded ops.py (a buggy one first) and a stray file; dee LATE
    without a time, handing in a .zip; zed not in the roster; one junk entry."""
    path.write_bytes(
        zipped(
            {
                "leeann_101_9001_ops.py": GOOD_OPS,
                "parkbo_LATE_102_9002_ops.py": BUGGY_MUL,
                "ngcy_LATE_103_9003_ops.py": BUGGY_MUL,
                "ngcy_LATE_103_9010_ops-1.py": GOOD_OPS,
                "ngcy_LATE_103_9004_notes.txt": "my notes",
                "raydee_LATE_104_9005_hw1.zip": zipped({"hw1/mini/ops.py": GOOD_OPS}),
                "zed_999_9006_ops.py": GOOD_OPS,
                "readme.txt": "not a submission",
            }
        )
    )
    return path


def with_late_policy(course: Path) -> None:
    manifest = course / "assignments/hw1/assignment.toml"
    manifest.write_text(
        manifest.read_text() + "\n[late]\ngrace_minutes = 15\npenalty_per_day = 0.1\nmax_days = 3\n"
    )


def result(out: Path, name: str) -> SubmissionResult:
    return from_dict(json.loads((out / "hw1" / name / "result.json").read_text()))


def test_canvas_archive_graded_with_late_days_end_to_end(
    graded_course: Path, tmp_path: Path, capsys, monkeypatch
):
    with_late_policy(graded_course)
    monkeypatch.setenv("COLUMNS", "400")
    archive = canvas_zip(tmp_path / "submissions.zip")
    roster = write(tmp_path / "roster.csv", ROSTER)
    times = write(tmp_path / "times.csv", TIMES)
    extensions = write(tmp_path / "extensions.csv", EXTENSIONS)
    ledger = write(tmp_path / "ledger.csv", LEDGER)
    out = tmp_path / "out"
    argv = [
        "--root", str(graded_course), "grade", "hw1", str(archive), "--out", str(out),
        "--jobs", "2", "--roster", str(roster), "--times", str(times),
        "--extensions", str(extensions), "--ledger", str(ledger),
    ]  # fmt: skip
    assert main(argv) == 0
    shown = capsys.readouterr().out

    # Students are named as the gradebook matches them: SIS Login ID, else Canvas id.
    assert sorted(p.name for p in (out / "hw1").iterdir() if p.is_dir()) == [
        "103",
        "ann@uni.edu",
        "bo",
        "dee",
    ]
    ann, bo, cy, dee = (result(out, n) for n in ("ann@uni.edu", "bo", "103", "dee"))

    # ann: on time, full marks; nothing charged.
    assert (ann.score, ann.late.raw_score, ann.late.days_late) == (10.0, 10.0, 0)
    assert (ann.late.hours_late, ann.late.penalty, ann.late.free_days_used) == (0.0, 0.0, 0)
    assert ann.late.free_days_left == 2

    # bo: 34 h 1 min late = 2 started days; 1 free day left (3, 2 used on hw2) pays one,
    # the other costs 10% of the raw 7 (the buggy mul loses the hidden test's 3).
    assert (bo.late.raw_score, bo.late.days_late, bo.late.hours_late) == (7.0, 2, 34.02)
    assert (bo.late.free_days_used, bo.late.paid_days, bo.late.free_days_left) == (1, 1, 0)
    assert (bo.late.penalty, bo.score) == (0.7, 6.3)

    # cy: Canvas marked it LATE, but the extension (2 days) covers its time; the
    # re-upload ops-1.py (GOOD) is graded, not the first ops.py (buggy); notes.txt ignored.
    assert (cy.score, cy.late.raw_score, cy.late.days_late, cy.late.penalty) == (10, 10, 0, 0)
    assert cy.late.due == "2027-01-03T23:59:00+00:00"
    assert cy.late.submitted_at == "2027-01-03T12:00:00+00:00"
    assert (
        "Canvas upload: ops-1.py graded as mini/ops.py (your newest upload of it; not ops.py)"
        in cy.notices
    )
    assert "Canvas upload: notes.txt is not a file this assignment takes; ignored" in cy.notices
    assert cy.late.notices == ()  # late only past the due date: the ledger does not matter

    # dee: a .zip upload, graded as today's zips are; LATE without a time: one day,
    # no free days (0 in the ledger), so 10% of 10.
    assert (dee.late.raw_score, dee.late.days_late, dee.late.hours_late) == (10.0, 1, 0.0)
    assert (dee.late.free_days_used, dee.late.penalty, dee.score) == (0, 1.0, 9.0)
    assert dee.late.submitted_at == ""
    assert dee.late.notices == (
        "Canvas marked this submission late but no submission time was given: "
        "one late day is charged",
    )

    # Every report uses the final score.
    gradebook = list(csv.reader((out / "hw1/gradebook.csv").read_text().splitlines()))
    assert [(row[0], row[3], row[-1]) for row in gradebook[2:]] == [
        ("Ann, Lee", "ann@uni.edu", "10"),
        ("Bo, Park", "bo", "6.3"),
        ("Cy, Ng", "", "10"),
        ("Dee, Ray", "dee", "9"),
    ]
    assert json.loads((out / "hw1/bo/results.json").read_text())["score"] == 6.3
    feedback = (out / "hw1/bo/feedback.md").read_text()
    assert feedback.startswith("# hw1: 6.3/10 points")
    assert "## Late policy" in feedback
    assert (
        "- Due 2027-01-01T23:59:00+00:00; submitted 2027-01-03T10:00:00+00:00: "
        "2 day(s) late, 34.02 hour(s) after the due date"
    ) in feedback
    assert "- Free late days used: 1 (0 left)" in feedback
    assert "- Penalty: 0.7 point(s) for 1 day(s)" in feedback
    assert "- Score: 7/10 before the late policy, 6.3/10 after" in feedback
    suites = ElementTree.parse(out / "hw1/junit.xml").getroot()
    scores = {
        suite.get("name"): suite.find("properties/property[@name='score']").get("value")
        for suite in suites.iter("testsuite")
    }
    assert scores == {"103": "10.0", "ann@uni.edu": "10.0", "bo": "6.3", "dee": "9.0"}

    # The terminal: late notes, the student not in the roster and the junk entry.
    assert "bo: late 2 d, 34.02 h, 1 free day(s), penalty 0.7: raw 7 -> 6.3" in shown
    assert "dee: late 1 d, 0 free day(s), penalty 1: raw 10 -> 9 (Canvas marked this" in shown
    assert "ann@uni.edu: late" not in shown
    assert (
        "103: Canvas upload: notes.txt is not a file this assignment takes; ignored; "
        "Canvas upload: ops-1.py graded as mini/ops.py" in shown
    )
    dee_feedback = (out / "hw1/dee/feedback.md").read_text()
    assert "- Due 2027-01-01T23:59:00+00:00; no submission time: 1 day(s) late\n" in dee_feedback
    assert "warning: Canvas user 999 (zed) is not in the roster: not graded" in shown
    assert "warning: readme.txt: not named as Canvas names an uploaded file; ignored" in shown

    # The ledger: hw1's free days charged (bo 1), the other assignments' kept.
    assert ledger.read_text() == LEDGER_AFTER

    # The same batch again: nothing graded anew, nothing charged twice.
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "0 graded, 4 reused" in again
    assert ledger.read_text() == LEDGER_AFTER
    assert result(out, "bo") == bo and result(out, "103") == cy

    # A malformed archive is one line, and every result stays.
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    argv[4] = str(broken)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: {broken} is not a readable zip archive" in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert result(out, "bo") == bo


def test_bad_inputs_are_one_line_naming_the_line(graded_course: Path, tmp_path: Path, capsys):
    archive = canvas_zip(tmp_path / "submissions.zip")
    roster = write(tmp_path / "roster.csv", ROSTER)
    base = ["--root", str(graded_course), "grade", "hw1", str(archive), "--out", str(tmp_path)]

    def error(*extra: str) -> str:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        return err.splitlines()[0]

    assert "is Canvas's submissions archive: it needs --roster" in error()
    times = write(
        tmp_path / "times.csv", "login,submitted_at\nbo,2027-01-02T10:00Z\ncy,yesterday\n"
    )
    assert error("--roster", str(roster), "--times", str(times)) == (
        f"error: {times}:3: submitted_at 'yesterday' is not a time "
        "(Invalid isoformat string: 'yesterday')"
    )
    naive = write(tmp_path / "naive.csv", "name,submitted_at\nbo,2027-01-02T10:00\n")
    assert error("--roster", str(roster), "--times", str(naive)).endswith("(it has no UTC offset)")
    both = write(tmp_path / "ext.csv", "login,days,due\nbo,1,\ncy,2,2027-01-05T00:00Z\n")
    assert error("--roster", str(roster), "--extensions", str(both)) == (
        f"error: {both}:3: cy: give days or due, one of them"
    )
    ledger = write(tmp_path / "ledger.csv", "login,free_days,hw2\nbo,3,two\n")
    assert error("--roster", str(roster), "--ledger", str(ledger)) == (
        f"error: {ledger}:2: bo: hw2 'two' is not a whole number of days"
    )
    nologin = write(tmp_path / "nologin.csv", "student,submitted_at\n")
    assert error("--roster", str(roster), "--times", str(nologin)) == (
        f"error: {nologin}:1: no column 'login' (or 'name') in the header"
    )
    missing = error("--roster", str(roster), "--ledger", "nope.csv")
    assert missing == "error: --ledger nope.csv does not exist"
    not_zip = write(tmp_path / "subs.zip", "just text")
    base[4] = str(not_zip)
    assert error("--roster", str(roster)).startswith(f"error: {not_zip} is not a readable zip")
    assert not (tmp_path / "hw1").exists()  # nothing graded, nothing written


def test_entry_names_as_canvas_writes_them():
    upload = canvas_archive.parse_entry("parkbo_LATE_102_9002_ops-2.py")
    assert upload is not None
    assert (upload.sortable, upload.late, upload.user_id, upload.attachment_id) == (
        "parkbo",
        True,
        "102",
        9002,
    )
    assert (upload.filename, upload.original, upload.reupload) == ("ops-2.py", "ops.py", 2)
    # The file's own name may hold _digits_; the first match is the student's part.
    upload = canvas_archive.parse_entry("obrien_7_8_my_1_2_file.tar-1.gz")
    assert upload is not None and (upload.user_id, upload.attachment_id) == ("7", 8)
    assert (upload.filename, upload.original) == ("my_1_2_file.tar-1.gz", "my_1_2_file.tar.gz")
    for junk in ("readme.txt", "doejane_123_text.html", "__MACOSX/x_1_2_y.py", "x_1_y.py"):
        assert canvas_archive.parse_entry(junk) is None, junk


def test_every_assignment_submits_distinct_base_names():
    """A Canvas upload is laid out by its base name: hw1..hw6 must allow it."""
    for a in Course.load(REPO).assignments:
        canvas_archive.check_submit(a.submit)
    with pytest.raises(LlmsysError, match=r"share the name ops\.py"):
        canvas_archive.check_submit(["a/ops.py", "b/ops.py"])


# ---------------------------------------------------------------------------
# grader.late, pure
# ---------------------------------------------------------------------------


def at(**delta: float) -> dt.datetime:
    return DUE + dt.timedelta(**delta)


def assess(when: dt.datetime | None, **kwargs) -> Late:
    return late.assess(POLICY, DUE, 10.0, late.Submitted(at=when, **kwargs))


def test_grace_period_and_started_days():
    on_time = assess(at(minutes=-5))
    assert (on_time.days_late, on_time.hours_late, on_time.penalty) == (0, 0.0, 0.0)
    grace = assess(at(minutes=15))
    assert (grace.days_late, grace.hours_late, grace.penalty) == (0, 0.25, 0.0)
    past = assess(at(minutes=16))
    assert (past.days_late, past.penalty) == (1, 1.0)
    assert (assess(at(hours=24)).days_late, assess(at(hours=24, minutes=1)).days_late) == (1, 2)
    assert assess(at(days=3)).penalty == 3.0


def test_more_than_max_days_scores_zero_and_uses_no_free_days():
    too_late = assess(at(days=3, minutes=1), free_days=5)
    assert (too_late.days_late, too_late.penalty, too_late.free_days_used) == (4, 10.0, 0)
    assert too_late.free_days_left == 5
    assert too_late.notices == ("more than 3 day(s) late: the late policy gives 0",)
    no_cap = late.assess(LatePolicy(penalty_per_day=0.5), DUE, 10.0, late.Submitted(at(days=9)))
    assert (no_cap.days_late, no_cap.penalty) == (9, 10.0)  # max_days = 0: no cap; at most all


def test_extensions_move_the_due_date():
    assert assess(at(days=2), extension=late.Extension(days=2)).days_late == 0
    assert assess(at(days=2, hours=1), extension=late.Extension(days=2)).days_late == 1
    new_due = late.Extension(due=at(hours=5))
    moved = assess(at(hours=6), extension=new_due)
    assert (moved.days_late, moved.hours_late, moved.due) == (1, 1.0, at(hours=5).isoformat())


def test_free_days_pay_first_then_the_penalty():
    partly = assess(at(days=2, hours=12), free_days=1)
    assert (partly.days_late, partly.free_days_used, partly.paid_days) == (3, 1, 2)
    assert (partly.penalty, partly.free_days_left) == (2.0, 0)
    covered = assess(at(days=1), free_days=4)
    assert (covered.free_days_used, covered.penalty, covered.free_days_left) == (1, 0.0, 3)
    marked = assess(None, marked_late=True, free_days=0)
    assert (marked.days_late, marked.penalty, marked.submitted_at) == (1, 1.0, "")
    assert assess(None).days_late == 0  # no time, no LATE mark: on time


def test_plan_applies_from_the_raw_score_and_charges_once():
    ledger = late.Ledger((late.LedgerRow("bo", 3, (("hw2", 1),)),))
    plan = late.Plan(POLICY, DUE, "hw1", {"bo": at(days=1, hours=1)}, {}, frozenset(), {}, ledger)
    graded = SubmissionResult("hw1", "bo", "k", "v", "graded", 8.0, 10.0)
    once = plan.adjust(graded)
    assert (once.score, once.late.free_days_used, once.late.free_days_left) == (8.0, 2, 0)
    assert plan.adjust(once) == once  # a kept result is adjusted from its raw score
    after = plan.ledger_after([once])
    assert after.rows == (late.LedgerRow("bo", 3, (("hw2", 1), ("hw1", 2))),)
    # Charged again with the ledger written after: hw1's own days are not counted twice.
    again = late.Plan(POLICY, DUE, "hw1", plan.times, {}, frozenset(), {}, after)
    assert again.adjust(graded) == once
    rejected = SubmissionResult("hw1", "bo", "", "v", "rejected", 0.0, 10.0)
    assert plan.adjust(rejected) is rejected


def test_ledger_and_canvas_times_files(tmp_path: Path):
    path = write(tmp_path / "ledger.csv", "login,free_days,left,hw2\nbo,3,1,2\n")
    ledger = late.read_ledger(path)
    assert ledger.rows == (late.LedgerRow("bo", 3, (("hw2", 2),)),)
    late.write_ledger(path, ledger.charged("hw1", {"bo": 1}))
    assert path.read_text() == "login,free_days,left,hw1,hw2\nbo,3,0,1,2\n"
    api = write(
        tmp_path / "subs.json",
        json.dumps(
            [
                {"user_id": 102, "submitted_at": "2027-01-02T10:00:00Z", "late": True},
                {"user_id": 103, "submitted_at": None},
            ]
        ),
    )
    assert late.read_times(api) == {"102": dt.datetime(2027, 1, 2, 10, tzinfo=UTC)}
