"""The slurm backend: each submission is graded by a Slurm job of its own.

A job's folder (`grader.backends.slurm_job`) goes to a work folder the nodes can
read (`--slurm-workdir`, LLMSYS_SLURM_WORKDIR, else OUT/.slurm); the job asks for
the manifest's limits (`--time`: the submission's limit plus start-up; `--mem`:
both workers' memory plus the harness's, as a container gets; `--cpus-per-task`;
`--gres=gpu:N` for GPU assignments) and grades on the node as `--backend local`
would there. The grader polls it (`scontrol`) and reads its result back (checked
against this host's resume key); the batch saves it in OUT.

A job that fails, reaches its time limit or is cancelled gives an "error" result
naming its Slurm state and exit code; a rerun grades it again. Each job's comment
is `llmsys:<host>:<pid>`: a stop signal cancels this batch's jobs (`stop`); the
next batch on this host cancels those of a grader that is gone (`reap_stale`)
and reuses the results of any that finished after their grader died.

The nodes need this project installed at the grader's interpreter's path (or
LLMSYS_SLURM_PYTHON) and the course checkout at the same path. sbatch's own
variables (SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_QOS) choose where jobs go.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grader
from grader import results
from grader.backend import BackendFailure, HarnessRun, Placement
from grader.backends import process_alive, slurm_job
from grader.context import Context, result_key
from grader.intake import Intake

WORKDIR_ENV = "LLMSYS_SLURM_WORKDIR"
PYTHON_ENV = "LLMSYS_SLURM_PYTHON"
DEFAULT_WORKDIR = ".slurm"  #: under the output folder
#: A job's time beyond the submission's limit: start-up, rendering the assignment.
SETUP_S = 120
#: Memory of a job beyond its two workers' (the harness: pytest, tests, numpy).
HARNESS_MB = 1024
POLL_S = 1.0
#: Consecutive failed `scontrol` calls (one per poll) before a job is given up.
UNREACHABLE_POLLS = 120
LOG_CHARS = 3000
#: Job states in which a job may still run; any other state is final.
ACTIVE = frozenset(
    "PENDING CONFIGURING RUNNING COMPLETING SUSPENDED REQUEUED REQUEUE_HOLD REQUEUE_FED "
    "RESIZING SIGNALING STAGE_OUT STOPPED RESV_DEL_HOLD".split()
)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command; a hung or missing one is a failed run, never an exception."""
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 1, "", f"{command[0]}: {exc}")


def workdir_for(out: Path, given: str | None = None) -> Path:
    """The shared work folder: `given` (--slurm-workdir), else LLMSYS_SLURM_WORKDIR,
    else OUT/.slurm."""
    chosen = given or os.environ.get(WORKDIR_ENV)
    return Path(chosen).resolve() if chosen else out.resolve() / DEFAULT_WORKDIR


class SlurmBackend:
    """Grades whole submissions as Slurm jobs (`grade_submission`, which the batch
    calls instead of grading here); the per-run protocol methods are not used."""

    name = "slurm"

    def __init__(
        self,
        workdir: Path,
        hide: list[str] | None = None,
        python: str | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.workdir = workdir
        #: Folders hidden from student code on the node, besides the work folder.
        self.hide = hide or []
        self.python = python or os.environ.get(PYTHON_ENV) or sys.executable
        self.poll_s = poll_s
        self.host = socket.gethostname()
        #: The comment of this batch's jobs.
        self.mark = f"llmsys:{self.host}:{os.getpid()}"
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._jobs: dict[str, str] = {}  # job id -> submission
        missing = [c for c in ("sbatch", "squeue", "scontrol", "scancel") if not shutil.which(c)]
        if missing:
            raise BackendFailure(
                f"Slurm's commands are not installed here ({', '.join(missing)} not found); "
                "tip: grade on a host of the cluster (ci/slurm.sh sets up a single-node one "
                "as root), or use --backend local"
            )
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendFailure(
                f"cannot make the Slurm work folder {workdir}: {exc.strerror}; "
                "tip: pass a folder the nodes can read with --slurm-workdir"
            ) from None
        self.reaped = self.reap_stale()

    # -- the batch's entry point ------------------------------------------------------------
    def grade_submission(self, ctx: Context, taken: Intake) -> results.SubmissionResult:
        """Grade one submission in a Slurm job and return its result. Never raises:
        whatever goes wrong (sbatch refusing, the job failing, timing out or being
        cancelled) is an "error" result, which a rerun grades again."""
        clock, started = time.monotonic(), dt.datetime.now(dt.timezone.utc)
        key = result_key(ctx, taken)
        folder = self.workdir / ctx.assignment.id / taken.name

        def failed(reason: str, log: str = "") -> results.SubmissionResult:
            return results.SubmissionResult(
                assignment=ctx.assignment.id,
                submission=taken.name,
                key=key,
                grader_version=grader.__version__,
                status="error",
                score=0.0,
                max_score=float(ctx.assignment.points),
                reason=reason + " (grading it again will retry)",
                notices=(log,) if log else (),
                started_at=started.isoformat(timespec="seconds"),
                duration_s=round(time.monotonic() - clock, 3),
            )

        earlier = slurm_job.read_result(folder)
        if earlier is not None and earlier.key == key and earlier.status != "error":
            shutil.rmtree(folder, ignore_errors=True)
            return earlier  # a job that finished after its grader had stopped
        try:
            slurm_job.write(folder, ctx, taken, self.python, [str(self.workdir), *self.hide])
            job = self._submit(ctx, taken.name, folder)
        except (OSError, BackendFailure) as exc:
            return failed(f"the slurm backend failed: {exc}")
        try:
            state, code = self._wait(job)
        finally:
            with self._lock:
                self._jobs.pop(job, None)
        if self._stopping.is_set() and state in ACTIVE | {"CANCELLED"}:
            return failed(f"Slurm job {job} was cancelled: the batch stopped")
        log = _tail(folder / "job.log")
        result = slurm_job.read_result(folder)
        # The job's folder goes once its outcome is read: a result left in the work
        # folder means a job that finished after its grader had stopped.
        shutil.rmtree(folder, ignore_errors=True)
        if state in ("COMPLETED", "GONE") and result is not None:
            if result.key == key:
                return result
            return failed(
                f"Slurm job {job} graded other files than this host has (its result's key "
                "differs): the nodes need this grader version and course checkout",
                log,
            )
        return failed(f"Slurm job {job} {_ended(state, code)}", log)

    def _submit(self, ctx: Context, name: str, folder: Path) -> str:
        limits = ctx.assignment.limits
        command = [
            "sbatch",
            "--parsable",
            f"--job-name=llmsys-{ctx.assignment.id}-{name}",
            f"--comment={self.mark}",
            f"--time={math.ceil((limits.submission_timeout_s + SETUP_S) / 60)}",
            f"--mem={2 * limits.memory_mb + HARNESS_MB}",
            f"--cpus-per-task={max(1, math.ceil(limits.cpus))}",
            "--nodes=1",
            "--ntasks=1",
            f"--chdir={folder}",
            f"--output={folder / 'job.log'}",
        ]
        if limits.gpus:
            command.append(f"--gres=gpu:{limits.gpus}")
        command.append(str(folder / slurm_job.SCRIPT))
        # Under the lock: `stop` either sees the job and cancels it, or came first and
        # no job is submitted.
        with self._lock:
            if self._stopping.is_set():
                raise BackendFailure("the batch is stopping")
            done = _run(command)
            if done.returncode != 0:
                raise BackendFailure(f"sbatch refused the job: {_first_line(done.stderr)}")
            job = done.stdout.strip().split(";")[0]
            self._jobs[job] = name
        return job

    def _wait(self, job: str) -> tuple[str, str]:
        """Poll the job until it ends (or the batch stops); its final state and exit
        code ("GONE" when its record has already left the controller)."""
        failures = 0
        while True:
            done = _run(["scontrol", "-o", "show", "job", job])
            if done.returncode == 0:
                failures = 0
                # Key=Value pairs; the two read here hold no spaces.
                fields = dict(f.split("=", 1) for f in done.stdout.split() if "=" in f)
                state = fields.get("JobState", "UNKNOWN")
                if state not in ACTIVE:
                    return state, fields.get("ExitCode", "")
            elif "invalid job id" in done.stderr.lower():
                return "GONE", ""
            else:
                failures += 1
                if failures >= UNREACHABLE_POLLS:
                    return "UNREACHABLE", _first_line(done.stderr)
            if self._stopping.wait(self.poll_s):
                return "CANCELLED", ""

    # -- jobs of this batch and of batches that are gone -------------------------------------
    def stop(self) -> None:
        """Cancel every job of this batch at once and submit no more."""
        with self._lock:
            self._stopping.set()
            jobs = list(self._jobs)
        self._cancel(jobs)

    def close(self) -> None:
        """Cancel what this backend still has queued or running (none, normally)."""
        self.stop()

    def reap_stale(self) -> int:
        """Cancel this host's grading jobs whose grader process is gone."""
        done = _run(["squeue", "-h", "-u", str(os.getuid()), "-o", "%i|%k"])
        if done.returncode != 0:
            raise BackendFailure(
                f"cannot reach the Slurm controller: {_first_line(done.stderr)}; "
                "tip: check `sinfo` (ci/slurm.sh starts a single-node cluster as root)"
            )
        stale = []
        for line in done.stdout.splitlines():
            job, _, comment = line.partition("|")
            owner, _, pid = comment.rpartition(":")
            if owner == f"llmsys:{self.host}" and pid.isdigit() and not process_alive(int(pid)):
                stale.append(job.strip())
        self._cancel(stale)
        return len(stale)

    def _cancel(self, jobs: list[str]) -> None:
        if jobs:
            _run(["scancel", *jobs])

    # -- the Backend protocol: the harness runs on the node (grader.backends.slurm_job) --------
    def prepare(self, ctx: Context, work: Path, slot: int, gpus: tuple[str, ...] = ()) -> Placement:
        raise BackendFailure("the slurm backend grades whole submissions (grade_submission)")

    def run_harness(
        self, placement: Placement, command: list[str], env: dict[str, str], timeout_s: float
    ) -> HarnessRun:
        raise BackendFailure("the slurm backend grades whole submissions (grade_submission)")


def _ended(state: str, code: str) -> str:
    """One line on how a job ended, from its state and `ExitCode` (exit:signal)."""
    if state == "GONE":
        return "ended without a result, and its record has left the controller"
    if state == "UNREACHABLE":
        return f"could not be followed: the Slurm controller did not answer ({code})"
    status, _, sig = code.partition(":")
    detail = f"exit code {status or '?'}" + (f", signal {sig}" if sig not in ("", "0") else "")
    if state == "TIMEOUT":
        return f"ended TIMEOUT ({detail}): it reached its time limit"
    if state == "COMPLETED":
        return f"ended COMPLETED ({detail}) but wrote no result"
    return f"ended {state} ({detail})"


def _tail(path: Path) -> str:
    try:
        return path.read_bytes()[-LOG_CHARS:].decode("utf-8", "replace")
    except OSError:
        return ""


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")
