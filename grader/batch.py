"""Grading a folder of submissions: resumable, parallel, never aborted by one.

Layout of the output folder:

    OUT/hwN/<submission>/result.json     the SubmissionResult (grader.results)
    OUT/hwN/<submission>/feedback.md     for the student
    OUT/hwN/<submission>/results.json    Gradescope's format
    OUT/hwN/gradebook.csv                Canvas gradebook import
    OUT/hwN/junit.xml                    one suite per submission

An entry refused by its name (not usable, a report's, or shared by two entries:
`intake.screen`) is rejected without being read; its files go to
OUT/hwN/_<name>-<hash>/ when the name itself cannot be a folder there.

Each result.json is written atomically, and only once its submission is fully
graded, keyed by a hash of the submission, the assignment and the grader
version: a rerun skips every submission whose key matches (after a crash or
SIGKILL half-way, exactly the unfinished ones are graded again), `regrade`
grades everything again.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from grader import intake, results
from grader.backend import Backend
from grader.context import Context, result_key
from grader.files import write_json_atomic, write_text_atomic
from grader.gpus import GpuPool
from grader.grade import grade_submission, rejected, take_in
from grader.interrupts import BatchInterrupted, shielded, signal_of
from grader.reports import canvas, gradescope, junit, markdown


@dataclass(frozen=True)
class BatchResult:
    results: tuple[results.SubmissionResult, ...]
    graded: int  #: graded in this run
    reused: int  #: taken from an earlier run
    out: Path
    warnings: tuple[str, ...] = ()


def discover(folder: Path) -> list[Path]:
    """The submissions in a folder: each visible sub-folder or file, sorted."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def hidden(folder: Path) -> list[str]:
    """The hidden entries of a folder (.git, .DS_Store), which `discover` skips, as
    `intake.shown`."""
    return sorted(intake.shown(p) for p in folder.iterdir() if p.name.startswith("."))


def grade_batch(
    ctx: Context,
    submissions: list[Path],
    out: Path,
    backend: Backend,
    jobs: int = 1,
    regrade: bool = False,
    roster: Path | None = None,
    on_start: Callable[[int, int], None] = lambda total, todo: None,
    on_done: Callable[[results.SubmissionResult, bool], None] = lambda r, reused: None,
    gpus: GpuPool | None = None,
    only: frozenset[str] | None = None,
    adjust: Callable[[results.SubmissionResult], results.SubmissionResult] | None = None,
) -> BatchResult:
    """Grade `submissions` into `out`, reusing finished results unless `regrade`.

    `gpus`: the devices to hand out, `limits.gpus` to each submission while it is
    graded (GpuRequestError at once if that many can never be given). `only`: the
    names of the submissions to grade (a regrade request); every other one keeps
    its finished result, which the batch's reports still list, and is not graded.
    `adjust`: applied to every result, new or kept, before it is saved or reported (the
    late policy, the notices of a Canvas archive's intake: `grader.late`); a kept
    result that it changes is saved again."""
    a = ctx.assignment
    gpu_pool = gpus if gpus is not None else GpuPool([])
    # A backend that grades whole submissions on other machines, which give out their
    # own GPUs (a cluster's nodes: grader.backends.slurm), is handed each one as is.
    elsewhere = getattr(backend, "grade_submission", None)
    if elsewhere is None:
        gpu_pool.check(a.limits.gpus)
    folder = out / a.id
    folder.mkdir(parents=True, exist_ok=True)
    done: dict[str, results.SubmissionResult] = {}
    todo: list[intake.Intake] = []
    unsaved: list[str] = []
    to_grade, refused = intake.screen(submissions)
    # Each submission is read once, here (what is graded is what was keyed); one
    # refused by its name, or that cannot be read, is a rejected result at once.
    turned_away = [
        rejected(ctx, entry.label, entry.reason)
        for entry in refused
        if only is None or entry.label in only
    ]
    left_out: list[str] = []
    for path in to_grade:
        if only is not None:
            name = intake.submission_name(path)
            if name not in only:
                previous = _saved(folder, name)
                if previous is not None:
                    done[previous.submission] = previous
                else:
                    left_out.append(name)
                continue
        taken = take_in(ctx, path)
        if isinstance(taken, results.SubmissionResult):
            turned_away.append(taken)
            continue
        previous = None if regrade else _previous(ctx, taken, folder)
        if previous is not None:
            done[previous.submission] = previous
        else:
            todo.append(taken)
    if adjust is not None:
        for name, kept in list(done.items()):
            done[name] = adjust(kept)
            if done[name] != kept:
                _save(done[name], folder, unsaved)
        turned_away = [adjust(result) for result in turned_away]
    # Those left out get no result: they are neither graded nor "already graded".
    on_start(len(submissions) - len(left_out), len(todo) + len(turned_away))
    for result in done.values():
        on_done(result, True)
    for result in turned_away:
        _save(result, folder, unsaved)
        done[result.submission] = result
        on_done(result, False)
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(max(1, jobs)):
        slots.put(slot)
    # Each submission's thread pools get its share of the cores, at most its limit.
    threads = max(1, min(int(a.limits.cpus), (os.cpu_count() or 1) // max(1, jobs)))
    scratch = Path(tempfile.mkdtemp(prefix=f"llmsys-grade-{a.id}-"))
    try:

        def work(taken: intake.Intake) -> results.SubmissionResult:
            if elsewhere is not None:
                return elsewhere(ctx, taken)
            slot = slots.get()
            try:
                with gpu_pool.take(a.limits.gpus) as devices:
                    return grade_submission(
                        ctx, taken, scratch / f"{slot}", backend, slot, threads, devices
                    )
            finally:
                slots.put(slot)

        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        futures: list[Future[results.SubmissionResult]] = []
        try:
            futures = [pool.submit(work, taken) for taken in todo]
            for future in as_completed(futures):
                result = future.result() if adjust is None else adjust(future.result())
                _save(result, folder, unsaved)
                done[result.submission] = result
                on_done(result, False)
        except KeyboardInterrupt as exc:
            # A stop signal (grader.interrupts): end what runs, keep what is saved.
            with shielded():
                for future in futures:
                    future.cancel()
                backend.stop()
                pool.shutdown(wait=True, cancel_futures=True)
            raise BatchInterrupted(
                signal_of(exc), saved=len(done), total=len(submissions) - len(left_out), out=folder
            ) from None
        finally:
            pool.shutdown(wait=True)
    finally:
        with shielded():
            shutil.rmtree(scratch, ignore_errors=True)
    ordered = tuple(done[name] for name in sorted(done))
    warnings = unsaved + write_batch_reports(ctx, ordered, folder, roster)
    if left_out:
        more = f" and {len(left_out) - 10} more" if len(left_out) > 10 else ""
        shown = ", ".join(left_out[:10]) + more
        warnings.append(
            f"{len(left_out)} submission(s) have no result and were not graded (not named by "
            f"--only): {shown}; the reports leave them out"
        )
    return BatchResult(
        ordered,
        graded=len(todo) + len(turned_away),
        reused=len(ordered) - len(todo) - len(turned_away),
        out=folder,
        warnings=tuple(warnings),
    )


def write_batch_reports(
    ctx: Context, ordered: tuple[results.SubmissionResult, ...], folder: Path, roster: Path | None
) -> list[str]:
    a = ctx.assignment
    junit.write_junit(ordered, folder / "junit.xml")
    return canvas.write_gradebook(
        ordered, folder / "gradebook.csv", a.title, a.canvas_assignment_id, roster
    )


def _previous(ctx: Context, taken: intake.Intake, folder: Path) -> results.SubmissionResult | None:
    """The earlier result of this exact submission, if one was completed."""
    previous = _saved(folder, taken.name)
    if previous is None or previous.key != result_key(ctx, taken) or previous.status == "error":
        return None
    return previous


def _saved(folder: Path, name: str) -> results.SubmissionResult | None:
    """The result saved for submission `name`, if any."""
    saved = folder / report_folder(name) / "result.json"
    try:
        return results.from_dict(json.loads(saved.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def report_folder(submission: str) -> str:
    """The folder of a result's files in OUT/hwN/: the submission's name when it is a
    usable one (`intake.NAME`) and not a report's, else `_<name with _ for odd
    characters>-<hash>`, which no usable name can be (none starts with _)."""
    if intake.NAME.fullmatch(submission) and submission.casefold() not in intake.RESERVED_NAMES:
        return submission
    slug = re.sub(r"[^A-Za-z0-9._@+-]", "_", submission)[:64]
    digest = hashlib.sha256(submission.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"_{slug}-{digest}"


def _save(result: results.SubmissionResult, folder: Path, unsaved: list[str]) -> None:
    """Reports first, result.json last: its presence means the submission is done.
    A result that cannot be written is told in `unsaved` (the batch goes on; a rerun
    grades it again)."""
    target = folder / report_folder(result.submission)
    try:
        target.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target / "feedback.md", markdown.feedback(result))
        gradescope.write_gradescope(result, target / "results.json")
        write_json_atomic(target / "result.json", results.to_dict(result))
    except (OSError, UnicodeError) as exc:
        unsaved.append(f"{result.submission}: its reports could not be written in {target}: {exc}")
