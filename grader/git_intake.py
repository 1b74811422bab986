"""Git submissions: a list of student repositories, each graded at the last commit
before its deadline.

The list is a CSV file with the header `name,repository`: the submission's name (as
the gradebook matches it, e.g. the SIS Login ID) and a path or clone URL that the
grading host can reach. Each repository is cloned (no checkout, no hooks, no
submodules, no credential prompt), the newest commit of its default branch whose
committer date is at or before the cutoff is chosen, and that commit's files are
written out (`git archive`, unpacked with the tar "data" filter: no links out, no
devices) into a folder per student, which the batch then takes in as any folder.

The cutoff is the student's due date (with an extension), plus `max_days` when the
late policy accepts late work; the chosen commit's date is its submission time for
the late policy. A commit date is what the student's git wrote: it can be set by
hand. For dates a student cannot set, clone at the deadline (a rerun of the batch
keeps the clones' results) or use the hosting service's record of pushes as
`--times`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader import intake
from grader.errors import LlmsysError

HEADER = ["name", "repository"]
NOTICE_PREFIX = "Git: "
#: A clone, or a checkout of its commit, takes at most this long.
GIT_TIMEOUT_S = 300
#: A commit's files, unpacked, at most (a submission, not a data set).
MAX_BYTES = 256 * 1024**2
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",  # never ask for a password: fail instead
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ASKPASS": "/bin/false",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
}


@dataclass(frozen=True)
class Checkout:
    """One student's repository, written out at its chosen commit."""

    name: str
    path: Path
    commit: str
    committed_at: dt.datetime

    @property
    def notice(self) -> str:
        when = self.committed_at.strftime("%Y-%m-%d %H:%M UTC")
        return f"{NOTICE_PREFIX}graded at commit {self.commit[:12]} of {when}"


def is_repo_list(path: Path) -> bool:
    """Whether `path` is a repository list (a .csv file whose header is name,repository)."""
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            first = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return [cell.strip().lower() for cell in first] == HEADER


def read_repo_list(path: Path) -> list[tuple[str, str]]:
    """(name, repository) per row; LlmsysError naming the line of a bad row."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    text = path.read_text(encoding="utf-8")
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if line == 1 or not any(cell.strip() for cell in row):
            continue
        hint = "each row is: name,repository (a path or a clone URL), e.g. bo,/srv/repos/bo.git"
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise LlmsysError(f"{path}:{line}: expected a name and a repository", hint)
        name, source = row[0].strip(), row[1].strip()
        if not intake.NAME.fullmatch(name):
            raise LlmsysError(
                f"{path}:{line}: {name!r} is not a usable name",
                "use letters, digits and . _ @ + - (the student's SIS Login ID)",
            )
        if name.casefold() in seen:
            raise LlmsysError(f"{path}:{line}: {name} is listed twice", "keep one row per student")
        if source.startswith("-") or re.match(r"^[a-z]+::", source):
            raise LlmsysError(f"{path}:{line}: {source!r} is not a repository path or URL", hint)
        seen.add(name.casefold())
        rows.append((name, source))
    if not rows:
        raise LlmsysError(f"{path} lists no repository", "add one row per student: name,repository")
    return rows


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        timeout=GIT_TIMEOUT_S,
        env={**os.environ, **_ENV},
        check=False,
    )


def _why(done: subprocess.CompletedProcess[bytes]) -> str:
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"git exited with {done.returncode}"


def check_out(name: str, source: str, cutoff: dt.datetime, folder: Path) -> Checkout:
    """Clone `source` and write its newest commit at or before `cutoff` to
    `folder/name`; LlmsysError (one line) when that cannot be done."""
    with tempfile.TemporaryDirectory(prefix="llmsys-git-") as scratch:
        clone = Path(scratch) / "repo"
        try:
            done = _git(
                "-c", "core.hooksPath=/dev/null", "clone", "--quiet", "--no-checkout",
                "--no-hardlinks", "--", source, str(clone),
            )  # fmt: skip
            if done.returncode != 0:
                raise LlmsysError(f"{name}: cannot clone {source}: {_why(done)}")
            stamp = str(int(cutoff.timestamp()))
            done = _git("rev-list", "-1", "--first-parent", f"--before={stamp}", "HEAD", cwd=clone)
            commit = done.stdout.decode().strip()
            if done.returncode != 0 or not commit:
                raise LlmsysError(
                    f"{name}: no commit of {source} is dated before "
                    f"{cutoff.strftime('%Y-%m-%d %H:%M UTC')}"
                )
            when = _git("show", "-s", "--format=%ct", commit, cwd=clone).stdout.decode().strip()
            archive = _git("archive", "--format=tar", commit, cwd=clone)
            if archive.returncode != 0:
                raise LlmsysError(f"{name}: cannot read commit {commit[:12]}: {_why(archive)}")
        except subprocess.TimeoutExpired:
            raise LlmsysError(f"{name}: git took more than {GIT_TIMEOUT_S} s on {source}") from None
    target = folder / name
    target.mkdir(parents=True)
    _unpack(archive.stdout, target, name)
    committed = dt.datetime.fromtimestamp(int(when), tz=dt.timezone.utc)
    return Checkout(name, target, commit, committed)


def _unpack(data: bytes, target: Path, name: str) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        if sum(m.size for m in members) > MAX_BYTES:
            raise LlmsysError(f"{name}: the commit holds more than {MAX_BYTES // 1024**2} MiB")
        # Links are left out: intake refuses them anyway, and none may point out.
        files = [m for m in members if m.isfile() or m.isdir()]
        tar.extractall(target, members=files, filter="data")


def stage(
    repos: list[tuple[str, str]],
    cutoff: Callable[[str], dt.datetime],
    folder: Path,
) -> tuple[list[Checkout], list[str]]:
    """Each repository written out under `folder`; a repository that cannot be is one
    line of the returned notes (the batch goes on without it)."""
    checkouts, notes = [], []
    for name, source in repos:
        try:
            checkouts.append(check_out(name, source, cutoff(name), folder))
        except LlmsysError as exc:
            notes.append(exc.message)
    return checkouts, notes
