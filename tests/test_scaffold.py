"""A new assignment is data: `llmsys new` writes a skeleton that the toolkit's
commands accept at once, and growing it by a marked function touches no other file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SHOUT = '''

def shout(name: str) -> str:
    """The greeting of `name` in capitals: "HELLO, " and the name upper-cased."""
    # BEGIN SOLUTION hw9.1
    return greet(name).upper()
    # END SOLUTION
'''

SHOUT_TEST = '''

def probe_shout(name):
    from minitorch import hw9

    return hw9.shout(name)


def test_shout(student):
    """shout("ada") is "HELLO, ADA"."""
    assert student.run(probe_shout, "ada") == "HELLO, ADA"
'''


def copy_of_repo(dest: Path) -> Path:
    """This checkout's files (tracked and untracked, not ignored) in `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (name.decode() for name in listed)):
        source = REPO / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    return dest


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def llmsys(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


def test_a_new_assignment_works_with_every_command(tmp_path: Path, capsys):
    root = copy_of_repo(tmp_path / "course")
    before = snapshot(root)
    assert llmsys(root, "new", "hw9", "--title", "Transformer layers") == 0
    assert llmsys(root, "new", "hw9", "--title", "Again") == 2  # exists already: one line
    assert "assignments/hw9 exists already" in capsys.readouterr().err
    # The staff member's first step: one more marked function and its test.
    with open(root / "solutions/minitorch/hw9.py", "a", encoding="utf-8") as handle:
        handle.write(SHOUT)
    with open(root / "assignments/hw9/tests/test_hw9.py", "a", encoding="utf-8") as handle:
        handle.write(SHOUT_TEST)
    assert llmsys(root, "validate") == 0
    assert llmsys(root, "build-starter", "hw9") == 0
    assert llmsys(root, "build-starter", "--check") == 0
    assert llmsys(root, "verify", "hw9", "--jobs", "2") == 0
    out = capsys.readouterr().out
    assert "ok: hw9: reference passes, starter fails cleanly, each task isolated" in out
    assert "2/2 pass" in out and "2/2 stub-fail" in out
    examples = root / "out/examples/hw9"
    assert llmsys(root, "examples", "hw9", "--out", str(examples)) == 0
    expect = ["--expect", str(root / "examples/expected.toml")]
    assert llmsys(root, "grade", "hw9", str(examples), "--out", str(root / "out"), *expect) == 0
    assert "ok: all 2 scores as" in capsys.readouterr().out
    # No file was touched beyond the skeleton, the function, its test and the starter.
    after = snapshot(root)
    changed = {rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel)}
    grown = {rel for rel in changed if not rel.startswith(("starter/hw9/", "out/"))}
    assert grown == {
        "assignments/hw9/README.md",
        "assignments/hw9/assignment.toml",
        "assignments/hw9/hidden/test_hw9_hidden.py",
        "assignments/hw9/tests/test_hw9.py",
        "examples/expected.toml",
        "solutions/minitorch/hw9.py",
    }
    # The starter is a repo of its own: its public tests run there with plain pytest.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:llmsys"],
        cwd=root / "starter/hw9",
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1 and "2 failed" in run.stdout, run.stdout[-2000:]
    assert "NotImplementedError: hw9.1: First task" in run.stdout
