"""The command line: exit codes and one-line errors with a tip, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.backend import BackendFailure
from grader.cli import main
from grader.manifest import tomllib
from tests.conftest import REPO


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_ok(course: Path, capsys):
    code, out, _ = run(capsys, "--root", str(course), "validate")
    assert code == 0
    assert "ok: 2 assignment(s), 3 task(s), 4 solution region(s) in 2 file(s)" in out


def test_validate_schema_lists_keys(course: Path, capsys):
    code, out, _ = run(capsys, "--root", str(course), "validate", "--schema")
    assert code == 0 and "full_credit_ratio" in out and "submit" in out


def test_broken_marker_exits_2_with_file_line(course: Path, capsys):
    ops = course / "solutions/mini/ops.py"
    ops.write_text(ops.read_text().replace("# END SOLUTION\n", "", 1))
    code, _, err = run(capsys, "--root", str(course), "build-starter")
    assert code == 2
    assert err.startswith(
        "error: solutions/mini/ops.py:12: nested BEGIN SOLUTION (region hw1.1 "
        "opened at line 6 is not closed)"
    )
    assert "Traceback" not in err
    assert "tip: close the open region" in err


def test_stale_starter_exits_1_naming_the_file(course: Path, capsys):
    assert run(capsys, "--root", str(course), "build-starter")[0] == 0
    (course / "starter/hw1/mini/ops.py").write_text("# edited by hand\n")
    code, _, err = run(capsys, "--root", str(course), "build-starter", "--check")
    assert code == 1
    assert "starter/hw1/mini/ops.py: differs" in err
    assert "tip: run `llmsys build-starter`" in err


def test_unknown_assignment_exits_2(course: Path, capsys):
    code, _, err = run(capsys, "--root", str(course), "build-starter", "hw9")
    assert code == 2 and "unknown assignment 'hw9' (known: hw1, hw2)" in err


def test_bad_manifest_exits_2(course: Path, capsys):
    path = course / "assignments/hw1/assignment.toml"
    path.write_text("colour = 1\n" + path.read_text())
    code, _, err = run(capsys, "--root", str(course), "validate")
    assert code == 2
    assert "assignments/hw1/assignment.toml: colour: unknown key" in err


def test_outside_a_course_exits_2(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("grader.manifest.__file__", str(tmp_path / "x" / "manifest.py"))
    code, _, err = run(capsys, "validate")
    assert code == 2 and "is not inside the course repository" in err


def test_console_script_is_installed():
    done = subprocess.run(
        [sys.executable, "-m", "grader.cli", "--root", str(REPO), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: ")


@pytest.mark.parametrize(
    ("argv", "message", "tip"),
    [
        (["hw9", "{subs}"], "hw9", "tip:"),
        (["hw1", "{tmp}/nowhere"], "is not a folder", "one folder or .zip per student"),
        (["hw1", "{tmp}/empty"], "holds no submission", "a folder or a .zip"),
        (["hw1", "{subs}", "--out", "{subs}/out"], "must not be inside", "--out out"),
        (["hw1", "{subs}", "--jobs", "0"], "--jobs must be at least 1", None),
        (["hw1", "{subs}", "--gpus", "cuda:0"], "--gpus takes GPU indices", "--gpus 0,1"),
        (["hw1", "{subs}", "--gpu-share", "0"], "--gpu-share must be at least 1", "--gpus 0,1"),
        (["hw1", "{subs}", "--roster", "{tmp}/no.csv"], "does not exist", "Grades > Export"),
        (["hw1", "{subs}", "--roster", "{tmp}/binary.csv"], "not UTF-8 text", "Grades > Export"),
        (["hw1", "{subs}", "--roster", "{tmp}/empty.csv"], "the file is empty", "Grades > Export"),
        (["hw1", "{subs}", "--roster", "{tmp}/names.csv"], "no column 'Student'", "Grades > Exp"),
        (["hw1", "{subs}", "--out", "{tmp}/bad.toml"], "is a file, not a folder", "--out out"),
        (["hw1", "{subs}", "--out", "/proc/llmsys-out"], "cannot write to", "--out out"),
        (["hw1", "{subs}", "--out", "{tmp}/taken"], "junit.xml is a folder", "move"),
        (["hw1", "{subs}", "--expect", "{tmp}/no.toml"], "cannot read", "existing TOML"),
        (["hw1", "{subs}", "--expect", "{tmp}/bad.toml"], "needs a number `score`", "score ="),
    ],
)
def test_grade_bad_inputs_exit_2_with_a_tip(
    graded_course: Path, tmp_path: Path, capsys, argv, message, tip
):
    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.toml").write_text('[hw1.ann]\nscore = "ten"\n')
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "names.csv").write_text("Name,Score\r\nAlice,5\r\n")
    (tmp_path / "taken/hw1/junit.xml").mkdir(parents=True)
    argv = [a.format(subs=subs, tmp=tmp_path) for a in argv]
    code, _, err = run(capsys, "--root", str(graded_course), "grade", *argv)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == (2 if tip else 1), err  # one line and a tip
    if tip:
        assert "tip:" in err and tip in err


def test_gpu_assignment_without_gpus_exits_2(graded_course: Path, tmp_path: Path, capsys):
    from tests.conftest import GOOD_OPS, submission

    manifest = graded_course / "assignments/hw1/assignment.toml"
    manifest.write_text(manifest.read_text().replace("[limits]\n", "[limits]\ngpus = 1\n"))
    submission(tmp_path / "subs", "ann", GOOD_OPS)
    code, _, err = run(
        capsys, "--root", str(graded_course), "grade", "hw1", str(tmp_path / "subs"),
        "--out", str(tmp_path / "out"), "--gpus", "",
    )  # fmt: skip
    assert code == 2, err
    assert "hw1: each submission needs 1 GPU(s), but the GPUs to use are: none" in err
    assert "tip: grade it on a GPU server" in err


def test_docker_backend_without_its_image_exits_2(graded_course: Path, tmp_path: Path, capsys):
    from tests.conftest import GOOD_OPS, submission

    submission(tmp_path / "subs", "ann", GOOD_OPS)
    code, _, err = run(
        capsys, "--root", str(graded_course), "grade", "hw1", str(tmp_path / "subs"),
        "--out", str(tmp_path / "out"), "--backend", "docker", "--image", "llmsys-grader:none",
    )  # fmt: skip
    assert code == 2, err
    # Where an engine runs, the image is missing; elsewhere the engine is.
    assert (
        "the grading image llmsys-grader:none is not built on this host" in err
        or "cannot reach the Docker engine" in err
    ), err
    assert "tip:" in err and "Traceback" not in err


def test_grading_errors_exit_1_and_say_to_rerun(
    graded_course: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    from grader import grade
    from tests.conftest import GOOD_OPS, submission

    def engine_gone(*args: object) -> None:
        raise BackendFailure("the engine went away")

    monkeypatch.setattr(grade, "_grade", engine_gone)
    submission(tmp_path / "subs", "ann", GOOD_OPS)
    code, out, _ = run(
        capsys, "--root", str(graded_course), "grade", "hw1", str(tmp_path / "subs"),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1
    assert "ann: error" in out and "the engine went away" in out
    assert "1 submission(s) ended with an error (ann): run the same command again" in out
    saved = json.loads((tmp_path / "out/hw1/ann/result.json").read_text())
    assert saved["status"] == "error"  # and so graded again by the next run


def test_grade_checks_expected_scores(graded_course: Path, tmp_path: Path, capsys):
    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    expect = tmp_path / "expected.toml"
    expect.write_text("[hw1.ann]\nscore = 10\n")
    base = ["--root", str(graded_course), "grade", "hw1", str(subs), "--out", str(tmp_path / "o")]
    code, out, err = run(capsys, *base, "--expect", str(expect))
    assert code == 0, out + err
    assert "ok: all 1 scores as" in out and "ann" in out
    expect.write_text("[hw1.ann]\nscore = 9\n[hw1.bob]\nscore = 0\n")
    code, out, _ = run(capsys, *base, "--expect", str(expect))
    assert code == 1
    assert "ann: scored 10, expected 9" in out and "bob: expected but not graded" in out
    assert "0 graded, 1 reused" in out
    # With --only, the entries of submissions it leaves out are not checked.
    code, out, err = run(capsys, *base, "--only", "ann", "--expect", str(expect))
    assert code == 1 and "ann: scored 10, expected 9" in out and "bob" not in out, out + err
    expect.write_text("[hw1.ann]\nscore = 10\n[hw1.bob]\nscore = 0\n")
    code, out, err = run(capsys, *base, "--only", "ann", "--expect", str(expect))
    assert code == 0 and "ok: all 1 scores as" in out, out + err
    # A range, for examples whose failures depend on a race.
    expect.write_text("[hw1.ann]\nscore_range = [9.5, 10]\n")
    code, out, err = run(capsys, *base, "--expect", str(expect))
    assert code == 0, out + err
    expect.write_text("[hw1.ann]\nscore_range = [4, 6]\n")
    code, out, _ = run(capsys, *base, "--expect", str(expect))
    assert code == 1 and "ann: scored 10, expected 4 to 6" in out
    expect.write_text("[hw1.ann]\nscore_range = [6, 4]\n")
    code, _, err = run(capsys, *base, "--expect", str(expect))
    assert code == 2 and "needs a number `score` or a `score_range` [lowest, highest]" in err


def test_examples_written_whole_and_bad_outputs_refused(tmp_path: Path, capsys):
    out = tmp_path / "ex"
    code, stdout, err = run(capsys, "--root", str(REPO), "examples", "hw1", "--out", str(out))
    assert code == 0, err
    count = len(tomllib.loads((REPO / "examples/expected.toml").read_text())["hw1"])
    assert f"wrote {count} example submission(s) of hw1" in stdout
    assert (out / "reference/minitorch/scalar.py").is_file()
    code, _, _ = run(capsys, "--root", str(REPO), "examples", "hw1", "--out", str(out))
    assert code == 0  # a rerun rewrites them in place
    (out / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "--root", str(REPO), "examples", "hw1", "--out", str(out))
    assert code == 2 and "holds other things than hw1's examples: notes.txt" in err
    assert (out / "notes.txt").read_text() == "mine"


def test_verify_says_why_a_gpu_assignment_was_not_verified(capsys, monkeypatch):
    from grader import gpus

    monkeypatch.setattr(gpus, "detect", lambda: [])
    code, out, err = run(capsys, "--root", str(REPO), "verify", "hw2")
    assert code == 0, out + err
    assert "notice: hw2 not verified: needs 1 CUDA GPU(s) and this host has none" in out
    assert "ok:" not in out  # nothing was verified, so nothing is claimed


# --- `llmsys grade` on hostile batches: every entry gets a result, every report is written


@pytest.fixture
def fast_grading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grading without running tests: full points for whatever is taken in (these tests
    are about intake, names, printing and reports)."""
    from grader import grade
    from grader.results import SubmissionResult, TaskScore

    def full_marks(ctx, taken, key, work, backend, slot, base, clock, *args):
        tasks = tuple(
            TaskScore(t.id, t.title, float(t.points), float(t.points)) for t in ctx.assignment.tasks
        )
        return SubmissionResult(
            submission=taken.name,
            key=key,
            status="graded",
            score=sum(t.points for t in tasks),
            tasks=tasks,
            **base,
        )

    monkeypatch.setattr(grade, "_grade", full_marks)


def grade_batch_cli(
    capsys: pytest.CaptureFixture[str], course: Path, subs: Path, out: Path, *extra: str
) -> tuple[int, str, str]:
    return run(capsys, "--root", str(course), "grade", "hw1", str(subs), "--out", str(out), *extra)


def saved(out: Path, label: str) -> dict:
    from grader.batch import report_folder

    return json.loads((out / "hw1" / report_folder(label) / "result.json").read_text())


def gradebook_names(out: Path) -> list[str]:
    import csv

    with open(out / "hw1/gradebook.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return [row[3] or row[0] for row in rows if row[0] != "Points Possible"]


def junit_names(out: Path) -> list[str]:
    from junitparser.xunit2 import JUnitXml

    return [suite.name for suite in JUnitXml.fromfile(str(out / "hw1/junit.xml"))]


def test_grade_shows_brackets_and_escapes_as_text(
    graded_course: Path, tmp_path: Path, capsys, fast_grading
):
    import zipfile

    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    with zipfile.ZipFile(subs / "bob.zip", "w") as archive:
        archive.writestr("../[/b]", "x")  # rich would read [/b] as a closing tag
    with zipfile.ZipFile(subs / "cid.zip", "w") as archive:
        archive.writestr("x\x1b[2J/mini/ops.py", GOOD_OPS)  # ESC [2J clears the screen
        archive.writestr("y/mini/ops.py", GOOD_OPS)
    submission(subs, "dee\x1b]0;owned\x07", GOOD_OPS)  # sets the terminal's title
    code, out, err = grade_batch_cli(capsys, graded_course, subs, tmp_path / "out")
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert "\x1b" not in out and "\x07" not in out
    assert "bob: rejected 0/10" in out
    assert "the zip entry '../[/b]' points outside the archive" in out
    assert r"mini/ops.py appears more than once: x\x1b[2J/mini/ops.py, y/mini/ops.py" in out
    assert r"dee\x1b]0;owned\x07/: rejected 0/10" in out
    assert r"the name 'dee\x1b]0;owned\x07' is not usable" in out
    assert saved(tmp_path / "out", "ann")["score"] == 10
    assert junit_names(tmp_path / "out") == ["ann", "bob", "cid", r"dee\x1b]0;owned\x07/"]


def test_grade_rejects_a_name_that_is_not_utf8_and_grades_the_rest(
    graded_course: Path, tmp_path: Path, capsys, fast_grading
):
    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    os.mkdir(bytes(subs) + b"/caf\xe9")
    (subs / "caf\udce9" / "mini").mkdir()  # the same folder: Python's name for byte 0xe9
    (subs / "caf\udce9" / "mini/ops.py").write_text(GOOD_OPS)
    code, out, err = grade_batch_cli(capsys, graded_course, subs, tmp_path / "out")
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert r"caf\udce9/: rejected 0/10" in out
    assert r"the name 'caf\udce9' is not usable" in out
    result = saved(tmp_path / "out", r"caf\udce9/")
    assert result["status"] == "rejected" and result["submission"] == r"caf\udce9/"
    assert saved(tmp_path / "out", "ann")["score"] == 10
    assert gradebook_names(tmp_path / "out") == ["ann", r"caf\udce9/"]
    assert junit_names(tmp_path / "out") == ["ann", r"caf\udce9/"]
    # Nothing named with the raw bytes was made in the output folder.
    assert all(b"\xe9" not in os.fsencode(p) for p in (tmp_path / "out").rglob("*"))


def test_grade_rejects_the_names_of_the_batch_reports(
    graded_course: Path, tmp_path: Path, capsys, fast_grading
):
    import zipfile

    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    submission(subs, "junit.xml", GOOD_OPS)
    (subs / "gradebook.csv").write_text("Student,ID\n")
    with zipfile.ZipFile(subs / "JUNIT.XML.zip", "w") as archive:
        archive.writestr("mini/ops.py", GOOD_OPS)
    out_dir = tmp_path / "out"
    code, out, err = grade_batch_cli(capsys, graded_course, subs, out_dir)
    assert code == 0, out + err
    assert "Traceback" not in out + err
    for label, name in [
        ("junit.xml/", "junit.xml"),
        ("gradebook.csv", "gradebook.csv"),
        ("JUNIT.XML.zip", "JUNIT.XML"),
    ]:
        result = saved(out_dir, label)
        assert result["status"] == "rejected"
        assert result["reason"].startswith(f"the name {name} is reserved for a report")
    assert (out_dir / "hw1/junit.xml").is_file() and (out_dir / "hw1/gradebook.csv").is_file()
    assert junit_names(out_dir) == ["JUNIT.XML.zip", "ann", "gradebook.csv", "junit.xml/"]
    # A rerun reuses ann and finds its reports where they were.
    code, out, err = grade_batch_cli(capsys, graded_course, subs, out_dir)
    assert code == 0, out + err
    assert "1 submission(s) ended" not in out and "ann: graded 10/10 (earlier result)" in out


def test_grade_keeps_both_of_two_submissions_of_one_name(
    graded_course: Path, tmp_path: Path, capsys, fast_grading
):
    import zipfile

    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "alice", GOOD_OPS)
    with zipfile.ZipFile(subs / "alice.zip", "w") as archive:
        archive.writestr("mini/ops.py", GOOD_OPS)
    submission(subs, "bob", GOOD_OPS)
    out_dir = tmp_path / "out"
    code, out, err = grade_batch_cli(capsys, graded_course, subs, out_dir)
    assert code == 0, out + err
    reason = "two submissions are named alice (alice.zip and alice/): keep one"
    for label in ("alice/", "alice.zip"):
        assert f"{label}: rejected 0/10 in 0.0 s: {reason}" in out
        assert saved(out_dir, label)["reason"] == reason
    assert saved(out_dir, "bob")["score"] == 10
    assert gradebook_names(out_dir) == ["alice.zip", "alice/", "bob"]


def test_grade_lists_the_hidden_entries_it_skips(
    graded_course: Path, tmp_path: Path, capsys, fast_grading
):
    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    (subs / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    submission(subs, ".git", None)
    code, out, err = grade_batch_cli(capsys, graded_course, subs, tmp_path / "out")
    assert code == 0, out + err
    warning = "warning: skipped .DS_Store, .git/: hidden entries are not submissions"
    assert warning in out
    assert out.index("Grading results") < out.index(warning)  # after the table
    assert "1 graded, 0 reused" in out
    # A folder of hidden entries alone holds no submission, and says what it skipped.
    (subs / "ann").rename(tmp_path / "ann")
    code, _, err = grade_batch_cli(capsys, graded_course, subs, tmp_path / "out")
    assert code == 2
    assert "holds no submission (skipped .DS_Store, .git/: hidden entries" in err


def test_grade_reads_the_course_and_each_submission_once(
    graded_course: Path, tmp_path: Path, capsys, fast_grading, monkeypatch: pytest.MonkeyPatch
):
    from grader import intake
    from grader.manifest import Course
    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    submission(subs, "bo", GOOD_OPS)
    calls: dict[str, int] = {"load": 0, "take": 0}
    load, take = Course.load.__func__, intake.take  # type: ignore[attr-defined]

    def counted_load(cls: type[Course], root: Path) -> Course:
        calls["load"] += 1
        return load(cls, root)

    def counted_take(path: Path, submit: tuple[str, ...]) -> intake.Intake:
        calls["take"] += 1
        return take(path, submit)

    monkeypatch.setattr(Course, "load", classmethod(counted_load))
    monkeypatch.setattr(intake, "take", counted_take)
    for graded, reused in ((2, 0), (0, 2)):  # a first run, then one that resumes
        calls.update(load=0, take=0)
        code, out, err = grade_batch_cli(capsys, graded_course, subs, tmp_path / "out")
        assert code == 0, out + err
        assert f"{graded} graded, {reused} reused" in out
        assert calls == {"load": 1, "take": 2}


def test_grade_goes_on_when_a_submission_cannot_be_saved(
    graded_course: Path, tmp_path: Path, capsys, fast_grading
):
    from tests.conftest import GOOD_OPS, submission

    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    submission(subs, "bob", GOOD_OPS)
    (tmp_path / "out/hw1").mkdir(parents=True)
    (tmp_path / "out/hw1/ann").write_text("in the way")
    code, out, err = grade_batch_cli(capsys, graded_course, subs, tmp_path / "out")
    assert code == 0, out + err
    assert "warning: ann: its reports could not be written in" in out
    assert saved(tmp_path / "out", "bob")["score"] == 10
    assert gradebook_names(tmp_path / "out") == ["ann", "bob"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_grade_out_in_a_read_only_folder_exits_2(graded_course: Path, tmp_path: Path, capsys):
    from tests.conftest import GOOD_OPS, submission

    submission(tmp_path / "subs", "ann", GOOD_OPS)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    code, _, err = grade_batch_cli(capsys, graded_course, tmp_path / "subs", locked / "out")
    assert code == 2, err
    assert "cannot write to" in err and "Permission denied" in err and "tip:" in err


def test_assignments_lists_ids_and_says_which_this_host_cannot_grade(
    course: Path, capsys, monkeypatch
):
    """ci/main's loop: every assignment with examples that this host can grade."""
    from grader import gpus

    path = course / "assignments/hw2/assignment.toml"
    path.write_text(path.read_text() + "\n[limits]\ngpus = 1\n")
    (course / "examples").mkdir()
    (course / "examples/expected.toml").write_text(
        '[hw2.reference]\nbase = "reference"\nscore = 10.0\n'
    )
    assert main(["--root", str(course), "assignments"]) == 0
    assert capsys.readouterr().out.split() == ["hw1", "hw2"]
    monkeypatch.setattr(gpus, "detect", lambda: [])
    assert main(["--root", str(course), "assignments", "--with-examples", "--gradable"]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == []
    assert "notice: hw2 needs 1 CUDA GPU(s) and this host has none" in captured.err
    monkeypatch.setattr(gpus, "detect", lambda: ["0"])
    assert main(["--root", str(course), "assignments", "--with-examples", "--gradable"]) == 0
    assert capsys.readouterr().out.split() == ["hw2"]
