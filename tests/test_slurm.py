"""The slurm backend on a real cluster (ci/slurm.sh makes this host one): the mini
course graded in Slurm jobs scores as on the local backend; a cancelled job is an
error result that names its state, and a rerun grades it; a stopped batch, or a
killed one on the next run, leaves no job in the queue."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from grader import results
from grader.backend import BackendFailure
from grader.backends.local import LocalBackend
from grader.backends.slurm import SlurmBackend, _ended
from grader.batch import grade_batch
from grader.context import Context, render_context
from grader.manifest import Course
from tests.conftest import GOOD_OPS, submission
from tests.test_grade import BUGGY_MUL
from tests.test_interrupts import _processes_with, _scratch_folders, _slow_ops

#: Set by .ci/run: the Slurm tests fail instead of skipping when no cluster answers.
REQUIRE_SLURM = os.environ.get("LLMSYS_REQUIRE_SLURM") == "1"


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A Slurm cluster that runs jobs from this host (ci/slurm.sh sets one up as root)."""
    try:
        SlurmBackend(tmp_path_factory.mktemp("slurm-probe"))
    except BackendFailure as exc:
        reason = str(exc).partition("; tip: ")[0]
        if REQUIRE_SLURM:
            pytest.fail(f"LLMSYS_REQUIRE_SLURM=1 but Slurm grading is not possible: {reason}")
        pytest.skip(f"no Slurm grading here ({reason}); ci/slurm.sh sets it up as root")


@pytest.fixture
def slurm_course(graded_course: Path) -> Path:
    """The graded mini course with limits that let two jobs share a 2-core node."""
    path = graded_course / "assignments/hw1/assignment.toml"
    text = path.read_text().replace(
        "submission_timeout_s = 60\n", "submission_timeout_s = 60\ncpus = 1\nmemory_mb = 1024\n"
    )
    path.write_text(text)
    return graded_course


def context(course: Path) -> Context:
    loaded = Course.load(course)
    return render_context(loaded, loaded.get("hw1"))


def summary(batch_results: tuple[results.SubmissionResult, ...]) -> dict[str, object]:
    return {
        r.submission: (r.status, r.score, [(t.id, t.points) for t in r.tasks])
        for r in batch_results
    }


def our_jobs(prefix: str = "llmsys-hw1-") -> list[str]:
    """`id name state` of the queue's jobs of the mini course."""
    done = subprocess.run(
        ["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if line.split()[1].startswith(prefix)]


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what} (queue: {our_jobs()})")
        time.sleep(0.05)


def test_a_batch_graded_in_slurm_jobs_scores_as_the_local_backend(
    slurm, slurm_course: Path, tmp_path: Path
):
    subs = tmp_path / "subs"
    submission(subs, "good", GOOD_OPS)
    submission(subs, "buggy", BUGGY_MUL)
    submission(subs, "empty", None)
    ctx = context(slurm_course)
    entries = sorted(subs.iterdir())
    local = grade_batch(ctx, entries, tmp_path / "local", LocalBackend(), jobs=2)
    workdir = tmp_path / "shared"
    backend = SlurmBackend(workdir, poll_s=0.2)
    batch = grade_batch(ctx, entries, tmp_path / "out", backend, jobs=3)
    assert summary(batch.results) == summary(local.results)
    assert summary(batch.results)["good"][:2] == ("graded", 10.0)
    assert summary(batch.results)["buggy"][:2] == ("graded", 7.0)
    for result in batch.results:
        # Graded on the node by the local backend's harness (sandboxed there as root).
        assert result.sandbox.startswith("local:") or "without a sandbox" in str(result.notices)
        assert (tmp_path / "out/hw1" / result.submission / "result.json").is_file()
    assert list((workdir / "hw1").iterdir()) == [], "the jobs' folders were left behind"
    # Resumable as any batch: nothing is graded again.
    again = grade_batch(ctx, entries, tmp_path / "out", SlurmBackend(workdir), jobs=3)
    assert (again.graded, again.reused) == (0, 3)
    # A job that finished after its grader died left its result in the work folder:
    # the next batch takes it (a job now would fail: its interpreter does not exist).
    saved = tmp_path / "out/hw1/good/result.json"
    (workdir / "hw1/good").mkdir()
    saved.rename(workdir / "hw1/good/result.json")
    late = grade_batch(ctx, entries, tmp_path / "out", SlurmBackend(workdir, python="/none"))
    assert (late.graded, late.reused) == (1, 2)
    assert summary(late.results) == summary(local.results)
    assert saved.is_file() and not (workdir / "hw1/good").exists()


def test_a_cancelled_job_is_an_error_with_its_state_and_a_rerun_grades_it(
    slurm, slurm_course: Path, tmp_path: Path
):
    subs = tmp_path / "subs"
    submission(subs, "carol", GOOD_OPS)
    ctx = context(slurm_course)
    out = tmp_path / "out"
    backend = SlurmBackend(tmp_path / "shared", poll_s=0.2)
    found: list[results.SubmissionResult] = []
    thread = threading.Thread(
        target=lambda: found.extend(grade_batch(ctx, [subs / "carol"], out, backend).results)
    )
    thread.start()
    wait_for(lambda: our_jobs("llmsys-hw1-carol"), 30, "the job to be queued")
    job = our_jobs("llmsys-hw1-carol")[0].split()[0]
    shown = subprocess.run(
        ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, check=True
    ).stdout
    subprocess.run(["scancel", job], check=True)
    # The manifest's limits: 60 s + start-up, 2 x 1024 MiB + the harness's, 1 CPU.
    fields = dict(item.split("=", 1) for item in shown.split() if "=" in item)
    assert (fields["TimeLimit"], fields["MinMemoryNode"]) == ("00:03:00", "3G")
    assert (fields["NumCPUs"], fields["Comment"]) == ("1", f"llmsys:{backend.host}:{os.getpid()}")
    thread.join(60)
    (result,) = found
    assert result.status == "error"
    assert result.reason.startswith(f"Slurm job {job} ended CANCELLED (exit code ")
    assert "grading it again will retry" in result.reason
    rerun = grade_batch(ctx, [subs / "carol"], out, SlurmBackend(tmp_path / "shared", poll_s=0.2))
    assert (rerun.graded, rerun.reused) == (1, 0)
    assert rerun.results[0].status == "graded" and rerun.results[0].score == 10.0


def test_how_a_job_ended_is_one_line():
    assert _ended("TIMEOUT", "0:15") == (
        "ended TIMEOUT (exit code 0, signal 15): it reached its time limit"
    )
    assert _ended("FAILED", "1:0") == "ended FAILED (exit code 1)"
    assert _ended("OUT_OF_MEMORY", "0:125") == "ended OUT_OF_MEMORY (exit code 0, signal 125)"


def test_a_stopped_batch_cancels_its_jobs_and_a_killed_ones_are_cancelled_next_time(
    slurm, slurm_course: Path, tmp_path: Path
):
    marker = 800000 + os.getpid() % 90000
    subs = tmp_path / "subs"
    for name in ("slow0", "slow1"):
        submission(subs, name, _slow_ops(marker))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "grader.cli", "--root", str(slurm_course), "grade", "hw1"]
    command += [str(subs), "--out", str(out), "--jobs", "2", "--backend", "slurm"]

    def start_and_wait_running() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: len(_processes_with(f"sleep {marker}")) >= 2, 60, "two running slow jobs")
        return process

    # A stop signal: the grader cancels its jobs, and student code stops with them.
    process = start_and_wait_running()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    wait_for(lambda: our_jobs() == [], 20, "the queue to lose the batch's jobs")
    wait_for(lambda: not _processes_with(f"sleep {marker}"), 20, "student processes to end")
    # A grader killed outright leaves its jobs; the next batch on this host cancels them.
    scratch = _scratch_folders()
    process = start_and_wait_running()
    process.kill()
    process.communicate(timeout=30)
    for name in _scratch_folders() - scratch:  # the killed grader's scratch folder (empty)
        with contextlib.suppress(OSError):
            (Path(tempfile.gettempdir()) / name).rmdir()
    assert len(our_jobs()) == 2
    backend = SlurmBackend(out / ".slurm")
    assert backend.reaped == 2
    wait_for(lambda: our_jobs() == [], 20, "the queue to lose the killed batch's jobs")
    shutil.rmtree(out / ".slurm", ignore_errors=True)
    assert not list(out.glob("hw1/*/result.json")), "a cancelled job's result was saved"
