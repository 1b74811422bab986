"""`llmsys grade`: the grading command as a TA runs it.

Chooses the backend (Docker, Slurm, or the local one with a notice when student code
cannot be sandboxed), shows progress per submission, prints the results table
and warnings, and with `--expect` compares the scores with the examples' file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from grader import commands, gpus, results
from grader.backend import Backend
from grader.errors import ExitCode, LlmsysError
from grader.gpus import GpuPool
from grader.manifest import Course


def run(args: argparse.Namespace, root: Path, out: Console) -> int:
    """`llmsys grade`: grade a folder of submissions with progress, table and checks."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from grader.backends.local import LocalBackend
    from grader.intake import one_line, visible
    from grader.reports import table

    if args.jobs < 1:
        raise LlmsysError(f"--jobs must be at least 1, got {args.jobs}")
    submissions = Path(args.submissions)
    roster = Path(args.roster) if args.roster else None
    if roster is not None and not roster.is_file():
        raise LlmsysError(
            f"roster {roster} " + ("is not a file" if roster.exists() else "does not exist"),
            "export it from Canvas: Grades > Export, and pass the CSV file",
        )
    times = _file(args.times, "--times")
    extensions = _file(args.extensions, "--extensions")
    ledger = _file(args.ledger, "--ledger")
    expected = commands.expected_scores(Path(args.expect), args.assignment) if args.expect else None
    course = Course.load(root)
    output = Path(args.out).resolve()
    pool = _gpu_pool(args)
    backend: Backend
    if args.backend == "docker":
        backend = _docker_backend(args, root, out)
    elif args.backend == "slurm":
        backend = _slurm_backend(args, output, out)
    else:
        local = LocalBackend(hide=[str(output)])
        if not local.confined():
            out.print(
                "[yellow]notice:[/] not running as root: student code will run without a "
                "sandbox (no separate uid, network or mount isolation)",
                markup=True,
            )
        backend = local
    progress = Progress(
        TextColumn("grading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    )
    bar = {}

    def on_start(total: int, todo: int) -> None:
        out.print(
            f"{args.assignment}: {total} submission(s), {total - todo} already graded, "
            f"{todo} to grade, {args.jobs} at a time"
        )
        bar["id"] = progress.add_task(args.assignment, total=total)

    def on_done(result: results.SubmissionResult, reused: bool) -> None:
        note = " (earlier result)" if reused else f" in {result.duration_s:.1f} s"
        reason = f": {one_line(result.reason)}" if result.reason else ""
        # Text: names and reasons come from submissions, and are never markup.
        progress.console.print(
            Text(
                f"  {visible(result.submission)}: {result.status} "
                f"{result.score:g}/{result.max_score:g}{note}{reason}"
            )
        )
        progress.advance(bar["id"])

    try:
        with progress:
            batch = commands.grade(
                course,
                args.assignment,
                submissions,
                output,
                backend,
                jobs=args.jobs,
                regrade=args.regrade,
                roster=roster,
                gpus=pool,
                only=args.only,
                times=times,
                extensions=extensions,
                ledger=ledger,
                on_start=on_start,
                on_done=on_done,
            )
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    tasks = [(t.id, t.title, float(t.points)) for t in course.get(args.assignment).tasks]
    out.print(table.render(batch.results, tasks))
    for warning in batch.warnings:
        out.print(Text.assemble(("warning:", "yellow"), " ", one_line(warning)))
    out.print(f"{batch.graded} graded, {batch.reused} reused; reports in {batch.out}", markup=False)
    errors = [r.submission for r in batch.results if r.status == "error"]
    if errors:
        shown = ", ".join(visible(e) for e in errors[:5]) + (", ..." if len(errors) > 5 else "")
        out.print(
            Text(
                f"{len(errors)} submission(s) ended with an error ({shown}): run the "
                "same command again to grade them; finished results are kept",
                style="yellow",
            )
        )
    if expected is not None:
        checked = batch.results
        if args.only is not None:  # the others were not graded: their entries wait
            checked = [r for r in batch.results if r.submission in args.only]
            expected = {name: want for name, want in expected.items() if name in args.only}
        problems = commands.compare_expected(checked, expected)
        for problem in problems:
            out.print(f"  [red]✗[/] {escape(one_line(problem))}", markup=True, emoji=False)
        if problems:
            out.print(f"[bold red]FAILED[/]: scores differ from {escape(args.expect)}", markup=True)
            return int(ExitCode.CHECK_FAILED)
        out.print(
            f"[bold green]ok[/]: all {len(checked)} scores as {escape(args.expect)} expects",
            markup=True,
        )
    return int(ExitCode.CHECK_FAILED) if errors else 0


def _file(name: str | None, flag: str) -> Path | None:
    """The file a flag names; an LlmsysError when there is none."""
    if name is None:
        return None
    path = Path(name)
    if not path.is_file():
        raise LlmsysError(
            f"{flag} {name} " + ("is not a file" if path.exists() else "does not exist"),
            "pass a CSV file (README: Canvas submissions and late days)",
        )
    return path


def _gpu_pool(args: argparse.Namespace) -> GpuPool:
    try:
        devices = gpus.parse_devices(args.gpus) if args.gpus is not None else gpus.detect()
        return GpuPool(devices, share=args.gpu_share)
    except gpus.GpuRequestError as exc:
        raise LlmsysError(str(exc), "e.g. --gpus 0,1 --gpu-share 1") from None


def _docker_backend(args: argparse.Namespace, root: Path, out: Console) -> Backend:
    from grader.backend import BackendFailure
    from grader.backends import image
    from grader.backends.docker import DockerBackend

    name = args.image or image.tag(root)
    try:
        backend = DockerBackend(name)
    except (BackendFailure, image.ImageError) as exc:
        message, _, tip = str(exc).partition("; tip: ")
        raise LlmsysError(message, tip) from None
    if backend.reaped:
        out.print(f"removed {backend.reaped} container(s) left by an interrupted batch")
    out.print(f"grading in containers of {name}")
    return backend


def _slurm_backend(args: argparse.Namespace, output: Path, out: Console) -> Backend:
    from grader.backend import BackendFailure
    from grader.backends.slurm import SlurmBackend, workdir_for

    workdir = workdir_for(output, getattr(args, "slurm_workdir", None))
    try:
        backend = SlurmBackend(workdir, hide=[str(output)])
    except BackendFailure as exc:
        message, _, tip = str(exc).partition("; tip: ")
        raise LlmsysError(message, tip) from None
    if backend.reaped:
        out.print(f"cancelled {backend.reaped} Slurm job(s) left by an interrupted batch")
    out.print(f"grading in Slurm jobs; their files are in {workdir}", markup=False)
    return backend
