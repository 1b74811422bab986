"""Grading one submission: workspace, harness runs, scores.

    take in (grader.intake) -> lay out the workspace (grader.workspace)
    -> backend.prepare -> first run of every test (grader.testrun, on the backend)
    -> composed reruns of what failed or did not run (grader.rerun)
    -> scores (grader.scoring) -> a SubmissionResult

Whatever goes wrong becomes a `SubmissionResult` with a reason; nothing raises.
"""

from __future__ import annotations

import datetime as dt
import time
import traceback
from pathlib import Path
from typing import Any

import grader
from grader import intake, scoring, workspace
from grader.backend import Backend, BackendFailure
from grader.context import HIDDEN_TESTS, PUBLIC_TESTS, Context, result_key
from grader.records import TestRecord, read_results
from grader.rerun import composed_pass
from grader.results import SubmissionResult
from grader.testrun import pytest_command, selection

#: The first run's share of `limits.submission_timeout_s` when reruns may follow:
#: the rest is kept for them, so a slow task cannot take its reruns' time too.
FIRST_RUN_SHARE = 0.75
FIRST_JOURNAL = "results.json"


def grade_submission(
    ctx: Context,
    submission: Path | intake.Intake,
    work: Path,
    backend: Backend,
    slot: int = 0,
    threads: int | None = None,
    gpus: tuple[str, ...] = (),
    markers: str = "",
    repeat: int = 1,
) -> SubmissionResult:
    """Grade one submission (a folder or zip, or one already taken in) in the (empty
    or absent) folder `work`. Never raises.

    `gpus`: the devices this submission's harness may use (chosen by the batch).

    `markers`: a pytest marker expression that selects the tests to run (e.g.
    "timing" for the timing checks alone, as `benchmarks/timing_stability.py`
    runs them); by default every test runs. `repeat`: run the selected tests this
    many times in the one session (each run is in the journal, `records.read_runs`;
    the result scores the last), as the timing benchmark does.

    `threads`: the thread pools of the student's and the reference's code
    (numba, OpenMP); by default `limits.cpus`. A batch grading several
    submissions at once passes its share of the machine's cores, so that
    parallel kernels do not fight over cores (a spinning thread pool on an
    oversubscribed machine runs small kernels many times slower).
    """
    clock = time.monotonic()
    base = _base(ctx)
    taken = submission if isinstance(submission, intake.Intake) else take_in(ctx, submission)
    if isinstance(taken, SubmissionResult):
        return taken  # rejected
    key = result_key(ctx, taken)
    try:
        return _grade(
            ctx, taken, key, work, backend, slot, base, clock, threads, gpus, markers, repeat
        )
    except Exception as exc:
        # Status "error": a rerun of the batch grades the submission again.
        failed_backend = isinstance(exc, BackendFailure)
        return SubmissionResult(
            submission=taken.name,
            key=key,
            status="error",
            score=0.0,
            reason=f"the {backend.name} backend failed: {exc} (grading it again will retry)"
            if failed_backend
            else f"grading failed: {type(exc).__name__}: {exc}",
            notices=() if failed_backend else (traceback.format_exc()[-2000:],),
            **base,
        )


def take_in(ctx: Context, path: Path) -> intake.Intake | SubmissionResult:
    """Read a submission's files once; a submission that cannot be graded is its
    rejected result."""
    try:
        name = intake.submission_name(path)
    except intake.Rejected as exc:
        return rejected(ctx, path.name, str(exc))
    try:
        return intake.take(path, ctx.assignment.submit)
    except intake.Rejected as exc:
        return rejected(ctx, name, str(exc))


def rejected(ctx: Context, label: str, reason: str) -> SubmissionResult:
    return SubmissionResult(
        submission=label, key="", status="rejected", score=0.0, reason=reason, **_base(ctx)
    )


def _base(ctx: Context) -> dict[str, Any]:
    return {
        "assignment": ctx.assignment.id,
        "grader_version": grader.__version__,
        "max_score": float(ctx.assignment.points),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _grade(
    ctx: Context,
    taken: intake.Intake,
    key: str,
    work: Path,
    backend: Backend,
    slot: int,
    base: dict[str, Any],
    clock: float,
    threads: int | None,
    gpus: tuple[str, ...],
    markers: str,
    repeat: int = 1,
) -> SubmissionResult:
    a = ctx.assignment
    own_tree = workspace.lay_out(ctx, taken, work)
    placement = backend.prepare(ctx, work, slot, gpus)
    config = workspace.write_config(placement, threads or max(1, int(a.limits.cpus)))
    env = workspace.harness_env(placement)
    targets = ([PUBLIC_TESTS] + ([HIDDEN_TESTS] if ctx.hidden_tests else [])) * max(1, repeat)
    targets += ["--keep-duplicates"] if repeat > 1 else []
    targets += ["-m", selection(markers, a.limits.gpus)] if markers or not a.limits.gpus else []
    command = pytest_command(backend.python, config.parent / FIRST_JOURNAL, targets, config)
    # One wall-clock bound for the whole submission, reruns included: the first run
    # gets its share, the composed reruns what is left of it.
    deadline = clock + a.limits.submission_timeout_s
    share = a.limits.submission_timeout_s * (FIRST_RUN_SHARE if len(a.tasks) > 1 else 1.0)
    first_limit = max(1.0, min(share, deadline - time.monotonic()))
    run = backend.run_harness(placement, command, env, first_limit)
    notices = [f"file {path} missing from submission" for path in taken.missing]
    if placement.sandbox is None:
        notices.append("student code ran without a sandbox (the grader was not run as root)")

    def ended(reason: str, detail: str) -> SubmissionResult:
        return SubmissionResult(
            submission=taken.name,
            key=key,
            status="error",
            score=0.0,
            reason=reason,
            notices=(*notices, detail[-3000:]),
            duration_s=round(time.monotonic() - clock, 3),
            **base,
        )

    records = _first_records(work)
    if not records:
        return ended(
            "the submission's time limit was reached before any test ran"
            if run.timed_out
            else "the grading harness failed before running any test",
            run.log,
        )
    collection = [r for r in records if r.phase == "collect"]
    if collection:
        return ended(
            f"a test file of the grader could not be loaded: {collection[0].nodeid} "
            "(a problem of the assignment, not of the submission)",
            collection[0].message,
        )
    if run.timed_out:
        notices.append(
            f"the first run of the tests reached its share ({first_limit:.0f} s) of the "
            f"submission's time limit ({a.limits.submission_timeout_s:g} s); tests that had "
            "not run then ran again in what was left, and those that never ran score 0"
        )
    records, rescued = composed_pass(taken, own_tree, records, placement, env, backend, deadline)
    for task_id, count in rescued.items():
        notices.append(
            f"{count} test(s) of {task_id} failed, or did not run, only through your files "
            "of other tasks: with working ones in their place they pass, and get their points"
        )
    not_run = (
        "did not run: the submission's time limit was reached"
        if run.timed_out
        else "did not run: the grading session ended early"
    )
    tests = scoring.score_tests(a, records, taken.missing, not_run)
    tasks = scoring.score_tasks(a, tests)
    return SubmissionResult(
        submission=taken.name,
        key=key,
        status="graded",
        score=round(sum(t.points for t in tasks), 4),
        tasks=tasks,
        tests=tests,
        notices=tuple(notices),
        sandbox=placement.description,
        duration_s=round(time.monotonic() - clock, 3),
        **base,
    )


def _first_records(work: Path) -> tuple[TestRecord, ...]:
    """The first run's records; none if the harness wrote no usable journal."""
    try:
        return read_results(work / "harness" / FIRST_JOURNAL).tests
    except (OSError, ValueError):
        return ()
