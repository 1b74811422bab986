"""The security suite: hostile submissions of hw1 (tests/security/hostile.toml, plus
archive tricks made here) graded for real, in Docker containers as TAs grade, and a
part of them on the local backend's sandbox too. Each must get exactly its expected
outcome: the attacks gain no point, reach nothing, and leave nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from grader import examples, sandbox
from grader.backends.local import LocalBackend
from grader.batch import BatchResult, discover, grade_batch
from grader.context import Context, render_context
from grader.manifest import Course, tomllib
from grader.results import SubmissionResult
from grader.uids import FIRST_UID, UID_RANGE
from tests.conftest import REPO, hidden_snippets, student_visible_text, tree_digest

SUITE = REPO / "tests" / "security" / "hostile.toml"
SPECS: dict[str, dict[str, Any]] = tomllib.loads(SUITE.read_text())["hw1"]
#: What a hostile submission prints only when its attack worked.
SUCCESS_MARKS = ("STOLEN", "FORGED", "TOUCHED", "NETWORK REACHED", "pwned")

#: Archive tricks: submissions the intake must refuse, with the reason's words.
ARCHIVES = {
    "hostile-zip-slip.zip": "points outside the archive",
    "hostile-zip-link.zip": "is a symbolic link",
    "hostile-folder-link": "symbolic link",
    "hostile-zip-bomb.zip": "unpacks to more than",
}
#: Attacks also graded on the local backend (as root: its sandbox).
LOCAL = (
    "hostile-steal-everywhere",
    "hostile-forge-results",
    "hostile-fork-bomb",
    "hostile-network",
    "hostile-touch-others",
    "hostile-slow-the-reference",
    "hostile-plant-reference",
    "hostile-read-plants",
    "hostile-user-namespace",
    "hostile-frame-leak",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hw1_context() -> Context:
    course = Course.load(REPO)
    return render_context(course, course.get("hw1"))


def make_archives(ctx: Context, folder: Path) -> None:
    """The archive tricks, each around an otherwise ordinary starter submission."""
    files = {rel: ctx.starter[rel] for rel in ctx.assignment.submit}

    def zip_with(name: str, extra: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
        with zipfile.ZipFile(folder / name, "w", zipfile.ZIP_DEFLATED) as z:
            for rel, data in files.items():
                z.writestr(rel, data)
            for info, data in extra:
                z.writestr(info, data)

    zip_with("hostile-zip-slip.zip", [("../../../tmp/llmsys-pwned-slip.py", b"pwned = 1\n")])
    link = zipfile.ZipInfo("minitorch/reference_ops.py")
    link.external_attr = (0o120777 << 16) | 0x10  # S_IFLNK: a symbolic link entry
    zip_with("hostile-zip-link.zip", [(link, b"/proc/1/cwd/reference/minitorch/operators.py")])
    # 256 MiB of zeros (more than the intake unpacks) compress to 256 KiB.
    bomb = zipfile.ZipInfo("minitorch/padding.bin")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(folder / "hostile-zip-bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for rel, data in files.items():
            z.writestr(rel, data)
        with z.open(bomb, "w", force_zip64=True) as handle:
            zeros = bytes(1 << 24)
            for _ in range(16):
                handle.write(zeros)
    linked = folder / "hostile-folder-link"
    for rel, data in files.items():
        (linked / rel).parent.mkdir(parents=True, exist_ok=True)
        (linked / rel).write_bytes(data)
    (linked / "minitorch" / "operators.py").unlink()
    (linked / "minitorch" / "operators.py").symlink_to("/etc/shadow")


@pytest.fixture(scope="module")
def hostile(hw1_context: Context, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    for name, spec in SPECS.items():
        files = examples.example_files(hw1_context, name, spec)
        for rel, data in files.items():
            (folder / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / name / rel).write_bytes(data)
    make_archives(hw1_context, folder)
    return folder


def grade_all(ctx: Context, folder: Path, out: Path, backend: Any) -> BatchResult:
    return grade_batch(ctx, discover(folder), out, backend, jobs=2)


@pytest.fixture(scope="module")
def docker_batch(hw1_context, hostile, tmp_path_factory, docker_backend):
    before = tree_digest(hostile)
    out = tmp_path_factory.mktemp("out-docker")
    batch = grade_all(hw1_context, hostile, out, docker_backend)
    return batch, out / "hw1", before


def by_name(batch: BatchResult) -> dict[str, SubmissionResult]:
    return {r.submission: r for r in batch.results}


def check_outcomes(batch: BatchResult, names: list[str]) -> None:
    got = by_name(batch)
    for name in names:
        want, result = SPECS[name], got[name]
        failing = [t.id for t in result.tests if t.status != "passed"]
        assert result.status == want.get("status", "graded"), (name, result.reason)
        assert result.score == pytest.approx(want["score"], abs=1e-3), (name, failing[:5])
        assert len(failing) == want["failing"], (name, failing[:5])


def check_nothing_reached(batch: BatchResult, out: Path, ctx: Context) -> None:
    """No attack printed its success mark; no hidden test line reached a student."""
    for result in batch.results:
        for test in result.tests:
            for mark in SUCCESS_MARKS:
                assert mark not in test.output, (result.submission, test.id, test.output[:2000])
    snippets = hidden_snippets(ctx, SUITE.read_text())
    assert len(snippets) > 50
    for path, text in student_visible_text(out).items():
        assert "BEGIN SOLUTION" not in text, path
        leaked = [s for s in snippets if s in text]
        assert not leaked, f"{path} shows hidden test code: {leaked[:3]}"


def test_every_attack_gets_its_expected_outcome_in_docker(docker_batch):
    batch, _, _ = docker_batch
    check_outcomes(batch, list(SPECS))
    got = by_name(batch)
    for name, words in ARCHIVES.items():
        submission = name.removesuffix(".zip")
        assert got[submission].status == "rejected", (name, got[submission].reason)
        assert words in got[submission].reason, (name, got[submission].reason)
    assert len(SPECS) + len(ARCHIVES) >= 15
    assert batch.graded == len(SPECS) + len(ARCHIVES)


def test_attacks_reach_nothing_in_docker(docker_batch, hw1_context):
    batch, out, _ = docker_batch
    check_nothing_reached(batch, out, hw1_context)


def test_attacks_leave_nothing_behind_in_docker(docker_batch, hostile, docker_backend):
    batch, out, before = docker_batch
    assert tree_digest(hostile) == before, "grading changed the submissions folder"
    assert not list(Path("/tmp").glob("llmsys-pwned*"))
    assert {p.name for p in out.iterdir()} == {"gradebook.csv", "junit.xml"} | {
        r.submission for r in batch.results
    }
    for folder in (p for p in out.iterdir() if p.is_dir()):
        assert {p.name for p in folder.iterdir()} == {"result.json", "feedback.md", "results.json"}
    # No container of this batch is left, and no process of a student's uid.
    leftover = docker_backend.client.containers.list(
        all=True, filters={"label": f"org.llmsys.pid={os.getpid()}"}
    )
    assert leftover == []
    assert student_processes() == []


def test_each_attack_fails_for_the_stated_reason_in_docker(docker_batch):
    batch, _, _ = docker_batch
    check_reasons(by_name(batch))
    check_contained(by_name(batch))
    got = by_name(batch)
    for name in ("hostile-fake-timer", "hostile-cache-outputs"):
        timed = next(t for t in got[name].tests if t.id.endswith("::test_matmul_speed"))
        assert timed.points == 0.0 and timed.max_points == 2.0, (name, timed)
        lost = [t.id for t in got[name].tests if t.points < t.max_points and t is not timed]
        assert lost == [], (name, lost)
    # The patched clocks changed nothing: the harness measured the real slowdown.
    slowed = next(t for t in got["hostile-fake-timer"].tests if "matmul_speed" in t.id)
    assert slowed.status == "passed" and slowed.timing_ratio is not None
    assert slowed.timing_ratio >= 20, slowed
    cached = next(t for t in got["hostile-cache-outputs"].tests if "matmul_speed" in t.id)
    assert cached.status == "failed" and "cannot be cached" in cached.staff_output, cached


def check_contained(got: dict[str, SubmissionResult]) -> None:
    """The attacks on timing, IPC, namespaces and the wire protocol fail as they must."""
    slowed = got["hostile-slow-the-reference"]
    timed = {t.id.rsplit("::", 1)[-1]: t for t in slowed.tests if t.timing_ratio is not None}
    # Its spinners were stopped while the reference was timed: the real slowdown.
    assert timed["test_matmul_speed"].points == 0.0, timed["test_matmul_speed"]
    assert timed["test_matmul_speed"].timing_ratio >= 20, timed["test_matmul_speed"]
    assert timed["test_reduce_speed"].points == timed["test_reduce_speed"].max_points
    leaks = [t.output for t in got["hostile-frame-leak"].tests if "malformed" in t.output]
    assert leaks and all(
        out == "WorkerDied: the worker sent malformed data (malformed float)" for out in leaks
    ), leaks[:3]


def check_reasons(got: dict[str, SubmissionResult]) -> None:
    """The first test's feedback says what stopped each attack."""
    first = {name: r.tests[0].output for name, r in got.items() if r.tests}
    assert "ended the process (exit code 0)" in first["hostile-exit-at-import"]
    assert "time limit exceeded" in first["hostile-infinite-loop"]
    assert "MemoryError" in first["hostile-memory-bomb"]
    huge = first["hostile-huge-output"]
    assert "File too large" in huge and len(huge) < 10_000
    assert "time limit exceeded" in first["hostile-fork-bomb"], first["hostile-fork-bomb"][:500]
    # The disk filler ran to its end (its writes failed quietly) and then failed
    # the tests as the starter does.
    outputs = "\n".join(t.output for t in got["hostile-disk-fill"].tests)
    assert "disk fill done" in outputs


@pytest.fixture(scope="module")
def local_batch(hw1_context, hostile, tmp_path_factory):
    if not sandbox.available():
        pytest.skip("the local backend's sandbox needs root")
    folder = tmp_path_factory.mktemp("hostile-local")
    for name in LOCAL:
        shutil.copytree(hostile / name, folder / name)
    out = tmp_path_factory.mktemp("out-local")
    batch = grade_all(hw1_context, folder, out, LocalBackend(hide=[str(out)]))
    return batch, out / "hw1"


def test_local_sandbox_stops_the_same_attacks(local_batch, hw1_context):
    batch, out = local_batch
    check_outcomes(batch, list(LOCAL))
    check_nothing_reached(batch, out, hw1_context)
    check_contained(by_name(batch))
    assert "time limit exceeded" in by_name(batch)["hostile-fork-bomb"].tests[0].output
    assert not list(Path("/tmp").glob("llmsys-pwned*"))
    assert student_processes() == []


def student_processes() -> list[str]:
    """Processes of this host still running as a sandbox uid (escaped student code)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
            if entry.isdigit() and FIRST_UID <= uid < FIRST_UID + UID_RANGE:
                found.append(f"{entry} (uid {uid})")
        except OSError:
            continue
    return found


def test_a_killed_batch_resumes_and_its_containers_are_removed(
    hw1_context, hostile, tmp_path, docker_backend
):
    """SIGKILL `llmsys grade --backend docker` while it grades; the rerun removes the
    containers it left and grades exactly what was not finished."""
    folder = tmp_path / "subs"
    names = ("hostile-exit-at-import", "hostile-network", "hostile-forge-results")
    for name in names:
        shutil.copytree(hostile / name, folder / name)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "grader", "--root", str(REPO), "grade", "hw1", str(folder),
        "--out", str(out), "--backend", "docker", "--jobs", "1",
    ]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not list(out.glob("hw1/*/result.json")) and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()[0].decode()[-3000:]
        time.sleep(0.5)
    finished = {p.parent.name for p in out.glob("hw1/*/result.json")}
    assert finished, "no submission finished within 240 s"
    time.sleep(1.0)  # the next submission's container is running now
    first.send_signal(signal.SIGKILL)
    first.wait()
    left = docker_backend.client.containers.list(
        all=True, filters={"label": f"org.llmsys.pid={first.pid}"}
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if left:
        assert f"removed {len(left)} container(s) left by an interrupted batch" in done.stdout
    assert f"{len(finished)} already graded" in done.stdout
    assert {p.parent.name for p in out.glob("hw1/*/result.json")} == set(names)
    assert (
        docker_backend.client.containers.list(
            all=True, filters={"label": f"org.llmsys.pid={first.pid}"}
        )
        == []
    )
