"""`llmsys`: the command line. It parses arguments, calls `grader.commands`, and
turns every `LlmsysError` into one line plus a tip and an exit code:

    0  success
    1  a check ran and found problems (stale starter, failed invariant)
    2  bad input (manifest, marker, path, argument)
    3  a bug in the toolkit (the traceback is printed)

The grading command lives in `grader.grade_command`. Why above 300 lines all the
same: the parser of every command is one function (`_parser`), the CLI's reference
read in one place, and each other command is a few lines beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from grader import __version__, commands, grade_command, schema
from grader.errors import ExitCode, LlmsysError
from grader.interrupts import BatchInterrupted, signal_of, signals_as_interrupts
from grader.manifest import Assignment, Course, find_root
from grader.verify import Verification

if TYPE_CHECKING:
    pass


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with signals_as_interrupts():
            if getattr(args, "needs_root", True):
                root = Path(args.root).resolve() if args.root else find_root()
            else:
                root = Path.cwd()
            return args.run(args, root, out)
    except LlmsysError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True)
        if exc.hint:
            err.print(f"[yellow]tip:[/] {escape(exc.hint)}", markup=True)
        return int(exc.exit_code)
    except BatchInterrupted as exc:
        err.print(
            f"stopped by {exc.name}: nothing is left running; {exc.saved} of {exc.total} "
            f"submission(s) have a result in {exc.out}; run the same command again to grade "
            "the rest (finished results are kept)",
            markup=False,
        )
        return 128 + exc.signum
    except KeyboardInterrupt as exc:
        err.print(f"interrupted ({signal.Signals(signal_of(exc)).name})", markup=False)
        return 128 + signal_of(exc)
    except Exception:
        traceback.print_exc()
        err.print(
            "[bold red]internal error[/]: this is a bug in llmsys; please report it "
            "with the traceback above"
        )
        return int(ExitCode.INTERNAL)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmsys", description="LLM Systems course toolkit.")
    parser.add_argument("--version", action="version", version=f"llmsys {__version__}")
    parser.add_argument(
        "--root", help="the course repository (default: found from the working directory)"
    )
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check every manifest and solution marker")
    p.add_argument("--schema", action="store_true", help="print the manifest's keys and exit")
    p.set_defaults(run=_validate)

    p = sub.add_parser("build-starter", help="generate starter/hwN/ from solutions/")
    p.add_argument("assignments", nargs="*", metavar="hwN", help="default: all")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming each stale file"
    )
    p.set_defaults(run=_build_starter)

    p = sub.add_parser(
        "verify",
        help="run the public tests on reference, starter and "
        "one-task stubs; print a per-task table",
    )
    p.add_argument("assignments", nargs="*", metavar="hwN", help="default: all")
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="pytest runs at once (default: CPU count)",
    )
    p.set_defaults(run=_verify)

    p = sub.add_parser("assignments", help="list the course's assignment ids, one per line")
    p.add_argument(
        "--with-examples", action="store_true", help="only those with example submissions"
    )
    p.add_argument(
        "--gradable",
        action="store_true",
        help="only those this host can grade (notices on stderr name the others)",
    )
    p.set_defaults(run=_assignments)

    p = sub.add_parser("new", help="write a new assignment's working skeleton")
    p.add_argument("assignment", metavar="hwN")
    p.add_argument("--title", required=True, help="its title (one line)")
    p.add_argument(
        "--module",
        default="",
        help="the module of its first task under solutions/ (default: minitorch/hwN.py)",
    )
    p.set_defaults(run=_new)

    p = sub.add_parser(
        "examples", help="write an assignment's example submissions whole (examples/expected.toml)"
    )
    p.add_argument("assignment", metavar="hwN")
    p.add_argument(
        "--out", required=True, help="folder to write them to (new, or holding only these examples)"
    )
    p.set_defaults(run=_examples)

    p = sub.add_parser(
        "grade",
        help="grade a folder of submissions (folders or .zip files), or Canvas's archive",
    )
    p.add_argument("assignment", metavar="hwN")
    p.add_argument(
        "submissions",
        metavar="SUBMISSIONS",
        help="folder with one entry per student, the .zip of Canvas's Download Submissions "
        "(with --roster), or a CSV of repositories (name,repository) graded at their last "
        "commit before the deadline",
    )
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default: 1)")
    p.add_argument(
        "--backend",
        choices=["local", "docker", "slurm"],
        default="local",
        help="where the harness runs: on this host, in a container per submission, or in a "
        "Slurm job per submission (default: local)",
    )
    p.add_argument(
        "--slurm-workdir",
        help="slurm: a folder the nodes can read, for the jobs' files and results "
        "(default: $LLMSYS_SLURM_WORKDIR, else OUT/.slurm)",
    )
    p.add_argument(
        "--image", help="docker: the grading image (default: the one `llmsys image` builds)"
    )
    p.add_argument(
        "--gpus",
        help="GPUs to hand out, e.g. 0,1,3 (default: every GPU of this host); each "
        "submission gets the manifest's count, and no GPU serves two at once",
    )
    p.add_argument(
        "--gpu-share",
        type=int,
        default=1,
        metavar="K",
        help="let up to K submissions share one GPU (timings then mean little; default 1)",
    )
    p.add_argument(
        "--regrade", action="store_true", help="grade again even submissions with a finished result"
    )
    p.add_argument(
        "--only",
        metavar="NAMES",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="grade only these submissions, comma-separated (with --regrade: a regrade "
        "request); the others keep their results, and the reports list every result",
    )
    p.add_argument("--roster", help="Canvas gradebook export (CSV) to match students")
    p.add_argument(
        "--times",
        metavar="FILE",
        help="submission times for the late policy: CSV with login, submitted_at (ISO 8601 "
        "with an offset), or the JSON of Canvas's Submissions API",
    )
    p.add_argument(
        "--extensions",
        metavar="CSV",
        help="per-student extensions: CSV with login and days (added to the due date) or due",
    )
    p.add_argument(
        "--ledger",
        metavar="CSV",
        help="the term's free late days (login, free_days, hw1, ...): late days are paid "
        "from it first, and it is updated after the batch (a rerun charges nothing twice)",
    )
    p.add_argument(
        "--expect",
        metavar="TOML",
        help="expected scores ([hwN.<submission>] score = ...); exit 1 on any difference "
        "(with --only, just the named submissions are checked)",
    )
    p.set_defaults(run=grade_command.run)

    p = sub.add_parser(
        "diff",
        help="what changed per student and per test between two gradings of one assignment",
    )
    p.add_argument("before", metavar="OUT_A", help="a grading's folder, e.g. out/hw1")
    p.add_argument("after", metavar="OUT_B", help="the other grading's folder")
    p.set_defaults(run=_diff, needs_root=False)

    p = sub.add_parser("canvas", help="Canvas: post a grading's scores and feedback")
    canvas_sub = p.add_subparsers(title="actions", required=True, metavar="ACTION")
    p = canvas_sub.add_parser(
        "upload",
        help="post each graded student's score and feedback comment (dry run unless --post)",
        description="Canvas's address and token come from CANVAS_URL and CANVAS_API_TOKEN.",
    )
    p.add_argument("folder", metavar="OUT/hwN", help="a grading's folder, e.g. out/hw1")
    p.add_argument("--course", metavar="ID", help="Canvas course id (default: $CANVAS_COURSE_ID)")
    p.add_argument(
        "--assignment-id",
        metavar="ID",
        help="Canvas assignment id (default: the manifest's canvas_assignment_id)",
    )
    p.add_argument("--roster", help="Canvas gradebook export (CSV) to match students")
    p.add_argument("--post", action="store_true", help="post; without it nothing is changed")
    p.set_defaults(run=_canvas_upload, needs_root=False)

    p = sub.add_parser(
        "image", help="build the Docker grading image offline (reused while the grader is the same)"
    )
    p.add_argument(
        "--base",
        default=None,
        help="base image: a CUDA + PyTorch one on GPU servers, any Debian/Ubuntu with "
        "python3-venv for CPU grading (default: llmsys-base:bookworm, made by ci/docker.sh)",
    )
    p.add_argument("--rebuild", action="store_true", help="build even if an up-to-date one exists")
    p.set_defaults(run=_image)

    p = sub.add_parser("gradescope", help="Gradescope: an autograder zip that runs this grader")
    gradescope_sub = p.add_subparsers(title="actions", required=True, metavar="ACTION")
    p = gradescope_sub.add_parser(
        "package",
        help="write hwN's Gradescope autograder zip (setup.sh, run_autograder, the grader, "
        "the starter, reference and hidden tests)",
    )
    p.add_argument("assignment", metavar="hwN")
    p.add_argument("--out", metavar="FILE.zip", help="where (default: hwN-autograder.zip)")
    p.set_defaults(run=_gradescope_package)
    return parser


def _validate(args: argparse.Namespace, root: Path, out: Console) -> int:
    if args.schema:
        print(schema_markdown(), end="")
        return 0
    s = commands.validate(root)
    out.print(
        f"ok: {s.assignments} assignment(s), {s.tasks} task(s), "
        f"{s.regions} solution region(s) in {s.files} file(s)"
    )
    return 0


def schema_markdown() -> str:
    """The manifest's reference page; docs/manifest.md is exactly this output."""
    lines = [
        "# The assignment manifest",
        "",
        "`assignments/hwN/assignment.toml`, one per assignment. Unknown keys, missing",
        "required keys and values of the wrong type are errors that name the file and the key.",
        "This page is the output of `llmsys validate --schema > docs/manifest.md`.",
        "",
        "| key | type | meaning |",
        "|---|---|---|",
    ]
    for key, kind, text in schema.describe(Assignment):
        lines.append(f"| `{key}` | {kind.replace('|', 'or')} | {text} |")
    return "\n".join(lines) + "\n"


def _build_starter(args: argparse.Namespace, root: Path, out: Console) -> int:
    done = commands.build_starters(root, args.assignments, check=args.check, progress=out.print)
    if args.check:
        out.print(f"ok: {', '.join(done)} in sync with solutions/")
    return 0


def _verify(args: argparse.Namespace, root: Path, out: Console) -> int:
    if args.jobs < 1:
        raise LlmsysError(f"--jobs must be at least 1, got {args.jobs}")
    results = commands.verify_assignments(root, args.assignments, args.jobs, progress=out.print)
    for result in results:
        if result.skipped:
            out.print(f"[yellow]notice[/]: {result.assignment.id} not verified: {result.skipped}; "
                      "run `llmsys verify` on a GPU machine", markup=True)  # fmt: skip
            continue
        out.print(_table(result))
        for problem in result.problems:
            out.print(f"  [red]✗[/] {escape(problem)}", markup=True)
    failed = [r.assignment.id for r in results if not r.ok]
    if failed:
        out.print(f"[bold red]FAILED[/]: {', '.join(failed)}", markup=True)
        return int(ExitCode.CHECK_FAILED)
    verified = [r.assignment.id for r in results if not r.skipped]
    if verified:
        out.print(
            f"[bold green]ok[/]: {', '.join(verified)}: reference "
            "passes, starter fails cleanly, each task isolated",
            markup=True,
        )
    return 0


def _assignments(args: argparse.Namespace, root: Path, out: Console) -> int:
    ids, notices = commands.listed(root, args.with_examples, args.gradable)
    for notice in notices:
        print(f"notice: {notice}", file=sys.stderr)
    for aid in ids:
        print(aid)
    return 0


def _new(args: argparse.Namespace, root: Path, out: Console) -> int:
    written = commands.new(root, args.assignment, args.title, args.module)
    for path in written:
        out.print(f"wrote {path}", markup=False)
    out.print(
        f"next: llmsys build-starter {args.assignment} && llmsys verify {args.assignment} "
        "(docs/adding-an-assignment.md goes on from there)",
        markup=False,
    )
    return 0


def _examples(args: argparse.Namespace, root: Path, out: Console) -> int:
    folders = commands.write_examples(root, args.assignment, Path(args.out))
    out.print(f"wrote {len(folders)} example submission(s) of {args.assignment} to {args.out}")
    return 0


def _diff(args: argparse.Namespace, root: Path, out: Console) -> int:
    """Exit 0 when the gradings agree, 1 when something changed (as diff(1))."""
    from grader import audit

    a, b = Path(args.before), Path(args.after)
    diff = audit.compare(audit.load(a), audit.load(b))
    out.print(audit.render(diff, str(a), str(b)), markup=False)
    return int(ExitCode.CHECK_FAILED) if not diff.empty else 0


def _canvas_upload(args: argparse.Namespace, root: Path, out: Console) -> int:
    """Exit 1 when a student could not be posted (not found, or a Canvas error)."""
    from grader import audit, canvas_api, canvas_upload

    folder = Path(args.folder)
    manifest_id = ""
    if not args.assignment_id:
        found = audit.load(folder)
        assignment = next(iter(found.values())).assignment
        course_root = Path(args.root).resolve() if args.root else find_root()
        manifest_id = Course.load(course_root).get(assignment).canvas_assignment_id
    where = canvas_api.settings(os.environ, args.course, args.assignment_id, manifest_id)
    roster = Path(args.roster) if args.roster else None
    summary = canvas_upload.upload(folder, where, post=args.post, roster=roster, say=_plain(out))
    return 0 if summary.ok else int(ExitCode.CHECK_FAILED)


def _image(args: argparse.Namespace, root: Path, out: Console) -> int:
    import docker

    from grader.backends import image

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:
        raise LlmsysError(
            f"cannot reach the Docker engine ({type(exc).__name__})",
            "start dockerd (ci/docker.sh installs and starts it, as root)",
        ) from None
    try:
        image.build(client, root, args.base or image.DEFAULT_BASE, _plain(out), args.rebuild)
    except image.ImageError as exc:
        raise LlmsysError(str(exc)) from None
    return 0


def _gradescope_package(args: argparse.Namespace, root: Path, out: Console) -> int:
    from grader import gradescope_package

    path = gradescope_package.package(root, args.assignment, Path(args.out) if args.out else None)
    out.print(
        f"wrote {path}: upload it as the autograder of a Gradescope programming assignment "
        "(base image Ubuntu 24.04); it holds the reference and the hidden tests, keep it "
        "among the course staff",
        markup=False,
    )
    return 0


def _plain(out: Console) -> Callable[[str], None]:
    """Print text as it is (no markup, no :emoji: codes)."""
    return lambda text: out.print(text, markup=False, emoji=False, highlight=False)


def _table(result: Verification) -> Table:
    a = result.assignment
    table = Table(title=f"{a.id}: {a.title}", title_justify="left")
    for name in ("task", "title", "points", "tests", "reference", "starter", "isolated"):
        table.add_column(name, justify="right" if name in ("points", "tests") else "left")
    for row in result.rows:
        ref_ok = row.tests > 0 and row.reference_passed == row.tests
        stub_ok = row.tests > 0 and row.starter_clean == row.tests
        table.add_row(
            row.task_id,
            row.title,
            str(row.points),
            str(row.tests),
            _mark(ref_ok, f"{row.reference_passed}/{row.tests} pass"),
            _mark(stub_ok, f"{row.starter_clean}/{row.tests} stub-fail"),
            _mark(row.isolated, "yes" if row.isolated else "no"),
        )
    return table


def _mark(ok: bool, text: str) -> str:
    return f"[green]{text}[/]" if ok else f"[red]{text}[/]"


if __name__ == "__main__":
    sys.exit(main())
