"""The starter's submit.py: the zip a student builds is the one the grader takes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import intake
from grader.context import Context, render_context
from grader.manifest import Course
from tests.conftest import REPO


@pytest.fixture
def hw1(tmp_path: Path) -> tuple[Context, Path]:
    course = Course.load(REPO)
    ctx = render_context(course, course.get("hw1"))
    copy = tmp_path / "hw1"
    shutil.copytree(REPO / "starter/hw1", copy)
    return ctx, copy


def submit(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "submit.py", *args], cwd=folder, capture_output=True, text=True
    )


def test_starter_zip_lists_the_stubbed_tasks(hw1):
    ctx, folder = hw1
    done = submit(folder)
    assert done.returncode == 0, done.stderr
    assert "still stubbed (NotImplementedError): hw1.1" in done.stdout
    with zipfile.ZipFile(folder / "hw1-submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted(ctx.assignment.submit)


def test_finished_work_zips_into_what_the_grader_takes(hw1, tmp_path: Path):
    ctx, folder = hw1
    for rel in ctx.assignment.submit:
        (folder / rel).write_bytes(ctx.reference[rel])
    done = submit(folder, "--out", str(tmp_path / "ann.zip"))
    assert done.returncode == 0 and "still stubbed" not in done.stdout
    # The grader takes from the zip exactly the reference's files: the submission that
    # tests/test_examples.py grades to 100 (so it is not graded a second time here).
    taken = intake.take(tmp_path / "ann.zip", ctx.assignment.submit)
    assert taken.name == "ann" and taken.missing == ()
    assert taken.files == {rel: ctx.reference[rel] for rel in ctx.assignment.submit}


@pytest.mark.parametrize(
    ("damage", "message"),
    [("syntax", "minitorch/operators.py:1: syntax error"), ("missing", "operators.py: missing")],
)
def test_broken_files_write_no_zip(hw1, damage, message):
    _, folder = hw1
    target = folder / "minitorch/operators.py"
    if damage == "syntax":
        target.write_text("def broken(:\n")
    else:
        target.unlink()
    done = submit(folder)
    assert done.returncode == 1
    assert message in done.stderr and "no zip written" in done.stderr
    assert not (folder / "hw1-submission.zip").exists()
