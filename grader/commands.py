"""The `llmsys` commands as typed functions; `grader.cli` only parses and prints.

Why above 300 lines: `grade` checks every argument (folders, Canvas's archive, the
roster and the late policy's files) before anything is graded, in one place beside
the other commands; the archive's and the policy's logic live in their own modules.
"""

from __future__ import annotations

import datetime as dt
import difflib
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader import results, starter
from grader.errors import CheckFailed, LlmsysError
from grader.gpus import GpuPool, GpuRequestError
from grader.manifest import Assignment, Course, tomllib
from grader.verify import Verification, verify

if TYPE_CHECKING:
    from grader.backend import Backend
    from grader.batch import BatchResult


@dataclass(frozen=True)
class Summary:
    assignments: int
    tasks: int
    regions: int
    files: int


def validate(root: Path) -> Summary:
    """Load every manifest, parse every marker and render every starter in memory."""
    course = Course.load(root)
    regions = starter.scan(course)
    for a in course.assignments:
        starter.starter_tree(course, a, regions)
    return Summary(
        assignments=len(course.assignments),
        tasks=sum(len(a.tasks) for a in course.assignments),
        regions=sum(len(r) for r in regions.values()),
        files=sum(1 for r in regions.values() if r),
    )


def build_starters(
    root: Path,
    ids: list[str] | None = None,
    check: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Write `starter/hwN/` for the chosen assignments (all by default).

    With `check`, write nothing and raise CheckFailed naming every stale file.
    Returns the starter folders written or checked.
    """
    course = Course.load(root)
    regions = starter.scan(course)
    stale: list[str] = []
    done = []
    for a in course.select(ids):
        tree = starter.starter_tree(course, a, regions)
        dest = root / "starter" / a.id
        rel = dest.relative_to(root).as_posix()
        if check:
            stale.extend(f"{rel}/{problem}" for problem in starter.stale_files(tree, dest))
        else:
            starter.write_tree(tree, dest)
            progress(f"wrote {rel}/ ({len(tree)} files)")
        done.append(rel)
    if stale:
        raise CheckFailed(
            "stale starter files:\n  " + "\n  ".join(stale),
            "run `llmsys build-starter` and commit starter/",
        )
    return done


def verify_assignments(
    root: Path,
    ids: list[str] | None = None,
    jobs: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Verification]:
    """Run each assignment's public tests on its reference, starter and one-task stubs."""
    course = Course.load(root)
    results = []
    for a in course.select(ids):
        progress(
            f"{a.id}: running public tests on reference, starter and {len(a.tasks)} one-task stubs"
        )
        results.append(verify(course, a, jobs))
    return results


def listed(
    root: Path, with_examples: bool = False, gradable: bool = False
) -> tuple[list[str], list[str]]:
    """The course's assignment ids, in order, and notices about those left out:
    with `with_examples`, only those with entries in examples/expected.toml; with
    `gradable`, only those this host can grade (a GPU assignment needs its GPUs)."""
    from grader import examples, gpus

    course = Course.load(root)
    having = set(examples.assignments(root)) if with_examples else None
    ids, notices = [], []
    for a in course.assignments:
        if having is not None and a.id not in having:
            continue
        why = gpus.shortfall(a.limits.gpus) if gradable else None
        if why is not None:
            notices.append(f"{a.id} {why}: it is graded on a GPU machine, not here")
            continue
        ids.append(a.id)
    return ids, notices


def grade(
    course: Course,
    assignment_id: str,
    submissions: Path,
    out: Path,
    backend: Backend,
    jobs: int = 1,
    regrade: bool = False,
    roster: Path | None = None,
    gpus: GpuPool | None = None,
    only: Sequence[str] | None = None,
    times: Path | None = None,
    extensions: Path | None = None,
    ledger: Path | None = None,
    **callbacks: Any,
) -> BatchResult:
    """Grade every submission in the folder `submissions`, or in Canvas's "Download
    Submissions" archive (`grader.canvas_archive`, with a `roster`), into `out`
    (`only`: just these, by name; the others keep their finished results).

    The late policy (`grader.late`) is applied when the submissions are Canvas's
    archive (its LATE marks) or any of `times`, `extensions`, `ledger` is given; the
    ledger's free late days are charged once the batch is done.

    Bad arguments (the folders, the roster, the CSV files, a name `only` lists that is
    not there) are LlmsysErrors before anything is graded; hidden entries of
    `submissions` are skipped, and listed in the batch's warnings."""
    from grader import canvas_archive, git_intake, late
    from grader.reports import canvas

    a = course.get(assignment_id)
    repos = git_intake.read_repo_list(submissions) if git_intake.is_repo_list(submissions) else None
    archive = canvas_archive.read(submissions) if submissions.is_file() and not repos else None
    if archive is not None:
        canvas_archive.check_submit(a.submit)
        if roster is None:
            raise LlmsysError(
                f"{submissions} is Canvas's submissions archive: it needs --roster",
                "the archive names students by Canvas user id; pass the gradebook export "
                "(Grades > Export) as --roster export.csv",
            )
    elif repos is None and not submissions.is_dir():
        raise LlmsysError(
            f"{submissions} is not a folder",
            "pass the folder that holds one folder or .zip per student, or the .zip of "
            "Canvas's Download Submissions",
        )
    rows = canvas.read_roster(roster) if roster is not None else None  # RosterError now
    # Every file is read now: a bad row is an error before anything is graded.
    when = late.read_times(times) if times is not None else {}
    extended = late.read_extensions(extensions) if extensions is not None else {}
    free_days = late.read_ledger(ledger) if ledger is not None else None
    with tempfile.TemporaryDirectory(prefix=f"llmsys-canvas-{a.id}-") as staging:
        staged: list[canvas_archive.Staged] = []
        notes: list[str] = []
        if archive is not None:
            staged, notes = canvas_archive.stage(archive, rows or [], a.submit, Path(staging))
            if not staged:
                raise LlmsysError(
                    f"{submissions}: no student of the archive is in the roster "
                    f"({'; '.join(notes[:3])})",
                    "pass the gradebook export of the archive's course as --roster",
                )
        found = [s.path for s in staged] if archive is not None else None
        # Each student's ids by each of them (the late policy's files name students so).
        keys = {s.name: s.keys for s in staged} if archive is not None else _keys(rows)
        checkouts: list[git_intake.Checkout] = []
        if repos is not None:

            def cutoff(name: str) -> dt.datetime:
                return _cutoff(a, extended, (name, *keys.get(name.casefold(), ())))

            checkouts, notes = git_intake.stage(repos, cutoff, Path(staging))
            if not checkouts:
                raise LlmsysError(f"{submissions}: no repository could be graded ({notes[0]})")
            found = [c.path for c in checkouts]
            for c in checkouts:  # the commit's date, unless the TA's times file says otherwise
                when.setdefault(c.name.casefold(), c.committed_at)
        plan = None
        if archive is not None or repos is not None or times or extensions or ledger:
            plan = late.Plan(
                policy=a.late,
                due=a.due,
                assignment_id=a.id,
                times=when,
                extensions=extended,
                marked_late=frozenset(s.name for s in staged if s.marked_late),
                keys=keys,
                ledger=free_days,
            )
        extra = {s.name: s.notices for s in staged} | {c.name: (c.notice,) for c in checkouts}

        def adjust(result: results.SubmissionResult) -> results.SubmissionResult:
            ours = (canvas_archive.NOTICE_PREFIX, git_intake.NOTICE_PREFIX)
            kept = tuple(n for n in result.notices if not n.startswith(ours))
            notices = kept + extra.get(result.submission, ())
            if notices != result.notices:
                result = replace(result, notices=notices)
            return plan.adjust(result) if plan is not None else result

        done = _grade_found(
            a,
            course,
            submissions,
            found,
            out,
            backend,
            jobs=jobs,
            regrade=regrade,
            roster=roster,
            gpus=gpus,
            only=only,
            adjust=adjust if plan is not None or staged or checkouts else None,
            **callbacks,
        )
    if plan is not None and ledger is not None:
        after = plan.ledger_after(done.results)
        if after is not None:
            late.write_ledger(ledger, after)
    return replace(done, warnings=(*notes, *done.warnings)) if notes else done


def _cutoff(a: Assignment, extended: dict[str, Any], ids: tuple[str, ...]) -> dt.datetime:
    """The newest commit date a git submission may have: the student's due date (with
    an extension) and grace period, plus `max_days` when the late policy takes late
    work (no bound when it takes any: its penalty applies)."""
    from grader import late

    extension = next((extended[k.casefold()] for k in ids if k.casefold() in extended), None)
    cutoff = late.due_for(a.due, extension) + dt.timedelta(minutes=a.late.grace_minutes)
    if a.late.max_days:
        return cutoff + dt.timedelta(days=a.late.max_days)
    if a.late.penalty_per_day:
        return dt.datetime.now(dt.timezone.utc)
    return cutoff


def _keys(rows: list[dict[str, str]] | None) -> dict[str, tuple[str, ...]]:
    """Each roster student's ids by each of them: a submission named by any of its
    student's ids is found in the CSV files by any other."""
    from grader import canvas_archive

    keys: dict[str, tuple[str, ...]] = {}
    for row in rows or []:
        ids = canvas_archive.row_ids(row)
        for key in ids:
            if key:
                keys[key.casefold()] = ids
    return keys


def _grade_found(
    a: Assignment,
    course: Course,
    submissions: Path,
    found: list[Path] | None,
    out: Path,
    backend: Backend,
    jobs: int,
    regrade: bool,
    roster: Path | None,
    gpus: GpuPool | None,
    only: Sequence[str] | None,
    **callbacks: Any,
) -> BatchResult:
    """Grade the entries of the folder `submissions` (or those `found` for it)."""
    from grader import batch, intake
    from grader.context import render_context

    hidden: list[str] = []
    if found is None:
        try:
            found, hidden = batch.discover(submissions), batch.hidden(submissions)
        except OSError as exc:
            raise LlmsysError(
                f"cannot read {submissions}: {exc.strerror or exc}",
                "pass a folder you may read, which holds one folder or .zip per student",
            ) from None
    listed = ", ".join(hidden[:10]) + (f" and {len(hidden) - 10} more" if len(hidden) > 10 else "")
    skipped = f"skipped {listed}: hidden entries are not submissions" if hidden else ""
    if not found:
        raise LlmsysError(
            f"{submissions} holds no submission" + (f" ({skipped})" if hidden else ""),
            "each student's submission is a folder or a .zip in it",
        )
    if out.resolve() == submissions.resolve() or submissions.resolve() in out.resolve().parents:
        raise LlmsysError(
            "--out must not be inside the submissions folder",
            "choose another output folder, e.g. --out out",
        )
    if only is not None:
        to_grade, refused = intake.screen(found)
        names = {intake.submission_name(p) for p in to_grade} | {r.label for r in refused}
        unknown = sorted(set(only) - names)
        if unknown or not only:
            near = difflib.get_close_matches(unknown[0], names, n=3) if unknown else []
            raise LlmsysError(
                f"--only names no submission of {submissions}: {', '.join(unknown)}"
                if unknown
                else "--only names no submission",
                f"did you mean {', '.join(near)}?"
                if near
                else "name them as `llmsys grade` shows them, comma-separated: --only alice,bob",
            )
    tip = "pass a folder you may write to (it is made if missing), e.g. --out out"
    if out.exists() and not out.is_dir():
        raise LlmsysError(f"--out {out} is a file, not a folder", tip)
    try:
        (out / a.id).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out / a.id):
            pass
    except OSError as exc:
        raise LlmsysError(f"cannot write to {out / a.id}: {exc.strerror or exc}", tip) from None
    for report in (out / a.id / name for name in intake.RESERVED_NAMES):
        if report.is_dir() and not report.is_symlink():
            raise LlmsysError(
                f"{report} is a folder: the batch's report cannot be written there",
                f"move {report} away (the batch writes it anew)",
            )
    try:
        done = batch.grade_batch(
            render_context(course, a),
            found,
            out,
            backend,
            jobs=jobs,
            regrade=regrade,
            roster=roster,
            gpus=gpus,
            only=frozenset(only) if only is not None else None,
            **callbacks,
        )
    except GpuRequestError as exc:
        raise LlmsysError(
            f"{a.id}: {exc}", "grade it on a GPU server, choosing the GPUs with --gpus 0,1,..."
        ) from None
    return replace(done, warnings=(skipped, *done.warnings)) if skipped else done


def new(root: Path, assignment_id: str, title: str, module: str = "") -> list[str]:
    """Write a new assignment's working skeleton (`grader.scaffold`); the paths written."""
    from grader import scaffold

    return list(scaffold.new_assignment(root, assignment_id, title, module).written)


def write_examples(root: Path, assignment_id: str, out: Path) -> list[Path]:
    """Write the example submissions of an assignment whole into `out`, which holds
    nothing else (a rerun rewrites them in place)."""
    from grader import examples
    from grader.context import render_context

    course = Course.load(root)
    ctx = render_context(course, course.get(assignment_id))
    names = set(examples.specs(root, assignment_id))
    others = sorted(p.name for p in out.iterdir() if p.name not in names) if out.is_dir() else []
    if others:
        raise LlmsysError(
            f"{out} holds other things than {assignment_id}'s examples: {', '.join(others[:3])}",
            "pass an empty or new folder, e.g. --out out/examples/" + assignment_id,
        )
    return examples.materialize(ctx, root, out)


def expected_scores(path: Path, assignment_id: str) -> dict[str, tuple[float, float]]:
    """The expected score of each submission of an expectations file, for one assignment,
    as (lowest, highest): `score = S` gives (S, S); `score_range = [LO, HI]` gives a
    range, for an example whose failures depend on a race (e.g. a missing barrier)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LlmsysError(
            f"cannot read {path}: {exc.strerror}", "pass an existing TOML file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise LlmsysError(f"{path}: invalid TOML: {exc}") from None
    table = data.get(assignment_id)
    if not isinstance(table, dict) or not table:
        raise LlmsysError(
            f"{path} has no expected scores for {assignment_id}",
            f"add tables like [{assignment_id}.<submission>] with score = <points>",
        )
    scores = {}
    for name, entry in table.items():
        score = entry.get("score") if isinstance(entry, dict) else None
        span = entry.get("score_range") if isinstance(entry, dict) else None
        if isinstance(score, (int, float)) and span is None:
            scores[name] = (float(score), float(score))
        elif (
            score is None
            and isinstance(span, list)
            and len(span) == 2
            and all(isinstance(v, (int, float)) for v in span)
            and span[0] <= span[1]
        ):
            scores[name] = (float(span[0]), float(span[1]))
        else:
            raise LlmsysError(
                f"{path}: [{assignment_id}.{name}] needs a number `score` "
                "or a `score_range` [lowest, highest]",
                "e.g. score = 7.5",
            )
    return scores


def compare_expected(
    graded: Iterable[results.SubmissionResult],
    expected: dict[str, tuple[float, float]],
    tolerance: float = 1e-3,
) -> list[str]:
    """One line per submission whose score is not the expected one (or has none)."""
    problems = []
    seen = set()
    for result in graded:
        seen.add(result.submission)
        want = expected.get(result.submission)
        if want is None:
            problems.append(f"{result.submission}: no expected score")
        elif not want[0] - tolerance <= result.score <= want[1] + tolerance:
            wanted = f"{want[0]:g}" if want[0] == want[1] else f"{want[0]:g} to {want[1]:g}"
            problems.append(f"{result.submission}: scored {result.score:g}, expected {wanted}")
    problems += [f"{name}: expected but not graded" for name in sorted(set(expected) - seen)]
    return problems
