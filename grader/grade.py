"""Grading one submission: intake, workspace, harness run, scores.

The course-level inputs of an assignment (starter, reference, public and
hidden tests) are rendered once per batch into a `Context`, whose digest,
with the submission's own digest and the grader version, keys the result for
resuming. A submission's workspace:

    WORK/student/   the clean starter with the submitted files laid over it
                    (readable by the sandboxed worker, bound read-only)
    WORK/harness/   mode 0700: tests/, hidden/, reference/, logs/, config and
                    results of the harness; never visible to student code

Whatever goes wrong becomes a `SubmissionResult` with a reason; nothing raises.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grader
from grader import intake, scoring, starter
from grader.manifest import Assignment, Course
from grader.plugin import read_results
from grader.results import SubmissionResult
from grader.sandbox import SandboxConfig

#: The first run's share of `limits.submission_timeout_s` when reruns may follow:
#: the rest is kept for them, so a slow task cannot take its reruns' time too.
FIRST_RUN_SHARE = 0.75
PUBLIC_TESTS = "tests"
HIDDEN_TESTS = "hidden"
LOCAL_CONFTEST = "conftest.py"


@dataclass(frozen=True)
class Context:
    """Everything about an assignment that grading needs, rendered once."""

    course: Course
    assignment: Assignment
    starter: dict[str, bytes]
    reference: dict[str, bytes]
    public_tests: dict[str, bytes]
    hidden_tests: dict[str, bytes]
    digest: str

    @property
    def student_packages(self) -> list[str]:
        return sorted(
            {
                rel.split("/")[0]
                for rel in self.starter
                if rel.count("/") == 1 and rel.endswith("/__init__.py")
            }
        )


def context(course: Course, a: Assignment) -> Context:
    regions = starter.scan(course)
    start = starter.starter_tree(course, a, regions)
    reference = starter.render_tree(course, a, (), regions)
    folder = course.root / "assignments" / a.id
    public = {
        rel: data
        for rel, data in start.items()
        if rel.startswith(f"{PUBLIC_TESTS}/") and rel != f"{PUBLIC_TESTS}/{LOCAL_CONFTEST}"
    }
    hidden = _files(folder / HIDDEN_TESTS)
    h = hashlib.sha256(f"grader {grader.__version__}\n".encode())
    h.update((folder / "assignment.toml").read_bytes())
    for label, tree in (("starter", start), ("reference", reference), ("hidden", hidden)):
        for rel in sorted(tree):
            h.update(f"{label}/{rel}\0".encode() + hashlib.sha256(tree[rel]).digest())
    return Context(course, a, start, reference, public, hidden, h.hexdigest())


def result_key(ctx: Context, taken: intake.Intake) -> str:
    return hashlib.sha256(f"{ctx.digest}:{taken.digest}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class HarnessRun:
    returncode: int | None
    timed_out: bool
    log: str
    duration_s: float


class BackendFailure(RuntimeError):
    """The backend itself failed (e.g. the Docker engine went away): the submission
    gets status "error", which a rerun grades again, rather than a score."""


class Backend(Protocol):
    """Where a submission's harness runs. `work` is the submission's workspace on this
    host; `place(work)` is where the harness sees it (the same folder locally, a
    mount point in a container), and `python` is the harness's interpreter there."""

    name: str
    python: str

    def place(self, work: Path) -> Path: ...

    def sandbox(self, ctx: Context, work: Path, slot: int) -> SandboxConfig | None: ...

    def describe(self, work: Path, sandbox: SandboxConfig | None) -> str:
        """How the student's code was confined, for the result."""
        ...

    def run_harness(
        self,
        command: list[str],
        work: Path,
        env: dict[str, str],
        timeout_s: float,
        sandbox: SandboxConfig | None,
        gpus: tuple[str, ...] = (),
    ) -> HarnessRun: ...

    def stop(self) -> None:
        """End every harness run in progress at once (their processes, containers and
        sandboxed uids), and refuse new ones with BackendFailure: the batch is stopping."""
        ...


def grade_submission(
    ctx: Context,
    submission: Path,
    work: Path,
    backend: Backend,
    slot: int = 0,
    threads: int | None = None,
    gpus: tuple[str, ...] = (),
    markers: str = "",
) -> SubmissionResult:
    """Grade one submission in the (empty or absent) folder `work`. Never raises.

    `gpus`: the devices this submission's harness may use (chosen by the batch).

    `markers`: a pytest marker expression that selects the tests to run (e.g.
    "timing" for the timing checks alone, as `benchmarks/timing_stability.py`
    runs them); by default every test runs.

    `threads`: the thread pools of the student's and the reference's code
    (numba, OpenMP); by default `limits.cpus`. A batch grading several
    submissions at once passes its share of the machine's cores, so that
    parallel kernels do not fight over cores (a spinning thread pool on an
    oversubscribed machine runs small kernels many times slower).
    """
    a = ctx.assignment
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    clock = time.monotonic()
    base = {
        "assignment": a.id,
        "grader_version": grader.__version__,
        "max_score": float(a.points),
        "started_at": started,
    }
    try:
        name = intake.submission_name(submission)
    except intake.Rejected as exc:
        return SubmissionResult(
            submission=submission.name,
            key="",
            status="rejected",
            score=0.0,
            reason=str(exc),
            **base,
        )
    try:
        taken = intake.take(submission, a.submit)
    except intake.Rejected as exc:
        return SubmissionResult(
            submission=name, key="", status="rejected", score=0.0, reason=str(exc), **base
        )
    key = result_key(ctx, taken)
    try:
        return _grade(ctx, taken, key, work, backend, slot, base, clock, threads, gpus, markers)
    except Exception as exc:
        # Status "error": a rerun of the batch grades the submission again.
        failed_backend = isinstance(exc, BackendFailure)
        return SubmissionResult(
            submission=name,
            key=key,
            status="error",
            score=0.0,
            reason=f"the {backend.name} backend failed: {exc} (grading it again will retry)"
            if failed_backend
            else f"grading failed: {type(exc).__name__}: {exc}",
            notices=() if failed_backend else (traceback.format_exc()[-2000:],),
            **base,
        )


def _grade(
    ctx: Context,
    taken: intake.Intake,
    key: str,
    work: Path,
    backend: Backend,
    slot: int,
    base: dict[str, Any],
    clock: float,
    threads: int | None = None,
    gpus: tuple[str, ...] = (),
    markers: str = "",
) -> SubmissionResult:
    a = ctx.assignment
    threads = threads or max(1, int(a.limits.cpus))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    os.chmod(work, 0o711)
    student_dir = work / "student"
    own_tree = {**ctx.starter, **taken.files}
    starter.write_tree(own_tree, student_dir)
    _make_readable(student_dir)
    harness = work / "harness"
    harness.mkdir(mode=0o700)
    files = dict(ctx.public_tests)
    files.update({f"{HIDDEN_TESTS}/{rel}": data for rel, data in ctx.hidden_tests.items()})
    files.update({f"reference/{rel}": data for rel, data in ctx.reference.items()})
    files["pytest.ini"] = b"[pytest]\naddopts = --strict-markers\n"
    starter.write_tree(files, harness)
    (harness / "logs").mkdir()
    (harness / "home").mkdir()
    sandbox = backend.sandbox(ctx, work, slot)
    # Paths as the harness sees them (inside a container they differ from ours).
    seen = backend.place(work)
    config = {
        "student_tree": str(seen / "student"),
        "reference_tree": str(seen / "harness" / "reference"),
        "reference_home": str(seen / "harness" / "home"),
        "student_packages": ctx.student_packages,
        "logs": str(seen / "harness" / "logs"),
        "test_timeout_s": a.limits.test_timeout_s,
        "sandbox": _asdict(sandbox) if sandbox else None,
        "import_paths": [str(seen / "harness" / PUBLIC_TESTS)],
        "timing": [_asdict(check) for check in a.timing],
        "env": {
            "OMP_NUM_THREADS": str(threads),
            "NUMBA_NUM_THREADS": str(threads),
        },
    }
    (harness / "config.json").write_text(json.dumps(config, indent=1))
    results_path = harness / "results.json"
    folders = [PUBLIC_TESTS] + ([HIDDEN_TESTS] if ctx.hidden_tests else [])
    folders += ["-m", markers] if markers else []
    command = _harness_command(backend.python, seen / "harness", "results.json", folders)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Not CI=1: pytest would then explain a failed comparison by a full, unbounded diff.
        "LLMSYS_GRADING": "1",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(seen / "harness" / "home"),
    }
    # One wall-clock bound for the whole submission, reruns included: the first run
    # gets its share, the composed reruns what is left of it.
    deadline = clock + a.limits.submission_timeout_s
    share = a.limits.submission_timeout_s * (FIRST_RUN_SHARE if len(a.tasks) > 1 else 1.0)
    first_limit = max(1.0, min(share, deadline - time.monotonic()))
    run = backend.run_harness(command, work, env, first_limit, sandbox, gpus)
    notices = [f"file {path} missing from submission" for path in taken.missing]
    if sandbox is None:
        notices.append("student code ran without a sandbox (the grader was not run as root)")
    try:
        records = read_results(results_path)["tests"]
        if not records:
            raise ValueError("no test was collected")
    except (OSError, ValueError, KeyError):
        reason = (
            "the submission's time limit was reached before any test ran"
            if run.timed_out
            else "the grading harness failed before running any test"
        )
        return SubmissionResult(
            submission=taken.name,
            key=key,
            status="error",
            score=0.0,
            reason=reason,
            notices=(*notices, run.log[-3000:]),
            duration_s=round(time.monotonic() - clock, 3),
            **base,
        )
    if run.timed_out:
        notices.append(
            f"the first run of the tests reached its share ({first_limit:.0f} s) of the "
            f"submission's time limit ({a.limits.submission_timeout_s:g} s); tests that had "
            "not run then ran again in what was left, and those that never ran score 0"
        )
    not_run = (
        "did not run: the submission's time limit was reached"
        if run.timed_out
        else "did not run: the grading session ended early"
    )
    collection = [r for r in records if r.get("phase") == "collect"]
    if collection:
        first = collection[0]
        return SubmissionResult(
            submission=taken.name,
            key=key,
            status="error",
            score=0.0,
            reason=f"a test file of the grader could not be loaded: {first.get('nodeid')} "
            "(a problem of the assignment, not of the submission)",
            notices=(*notices, str(first.get("message", ""))[-3000:]),
            duration_s=round(time.monotonic() - clock, 3),
            **base,
        )
    rescued = _composed_pass(
        ctx, taken, own_tree, records, work, env, backend, sandbox, deadline, gpus
    )
    for task_id, count in rescued.items():
        notices.append(
            f"{count} test(s) of {task_id} failed, or did not run, only through your files "
            "of other tasks: with working ones in their place they pass, and get their points"
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
        sandbox=backend.describe(work, sandbox),
        duration_s=round(time.monotonic() - clock, 3),
        **base,
    )


def _harness_command(python: str, harness: Path, results: str, targets: list[str]) -> list[str]:
    """pytest with the grader's plugin, run in the folder `harness` (as the harness sees
    it); relative `targets` are its test folders or node ids."""
    config, results_path = harness / "config.json", harness / results
    return [
        python,
        "-m",
        "pytest",
        "-q",
        "--tb=no",
        # An assertion's explanation is cut at these sizes, and so is the work of
        # building it (pytest diffs only what it will show).
        "-o",
        "truncation_limit_lines=40",
        "-o",
        "truncation_limit_chars=4000",
        "-p",
        "no:cacheprovider",
        "-p",
        "grader.harness",
        "--llmsys-harness",
        str(config),
        "--llmsys-results",
        str(results_path),
        *targets,
    ]


def _composed_pass(
    ctx: Context,
    taken: intake.Intake,
    own_tree: dict[str, bytes],
    records: list[dict[str, Any]],
    work: Path,
    env: dict[str, str],
    backend: Backend,
    sandbox: SandboxConfig | None,
    deadline: float,
    gpus: tuple[str, ...] = (),
) -> dict[str, int]:
    """Rerun each task's failed tests on the reference with only that task's files
    taken from the submission, so that one broken task costs only its own points;
    and its tests that did not run (the first run reached its share of the time
    limit), so that one slow task does not take the others' points with it.

    The student's code shares the sandbox with reference code here, so nothing of
    this run reaches the student but pass/fail: a test that passes is marked
    `composed_pass` in its first-run record (whose output stays the feedback).
    `own_tree` is the first pass's student tree; it is put back at the end. All
    reruns end by `deadline` (time.monotonic()), the submission's own.
    Returns task id -> how many tests passed this way.
    """
    a = ctx.assignment
    if len(a.tasks) < 2:
        return {}
    failed: dict[str, list[str]] = {}
    not_run: set[str] = set()
    for r in records:
        if r.get("phase") == "collect":
            continue
        if r.get("outcome") in ("failed", "error", "did_not_run"):
            failed.setdefault(str(r.get("task")), []).append(str(r["nodeid"]))
        if r.get("outcome") == "did_not_run":
            not_run.add(str(r["nodeid"]))
    # Tasks whose composed trees are equal (typically: every file of theirs is the
    # reference's) share one rerun.
    groups: dict[tuple[tuple[str, bytes], ...], list[str]] = {}
    for task in a.tasks:
        mine = set(task.files)
        if not failed.get(task.id) or not mine or mine & set(taken.missing):
            continue
        if all(taken.files.get(rel) == ctx.starter.get(rel) for rel in mine):
            continue  # the task's files are the starter's: its stubs fail anyway
        tree = dict(ctx.reference)
        tree.update({rel: data for rel, data in taken.files.items() if rel in mine})
        if all(tree.get(rel) == own_tree.get(rel) for rel in set(tree) | set(own_tree)):
            # The same tree as the first run: only what did not run is worth a run.
            failed[task.id] = [nodeid for nodeid in failed[task.id] if nodeid in not_run]
            if not failed[task.id]:
                continue
        groups.setdefault(tuple(sorted(tree.items())), []).append(task.id)
    rescued: dict[str, int] = {}
    student_dir, harness = work / "student", work / "harness"
    for n, (tree_items, task_ids) in enumerate(groups.items()):
        starter.write_tree(dict(tree_items), student_dir)
        _make_readable(student_dir)
        results_path = harness / f"results-composed-{n}.json"
        targets = [nodeid for task_id in task_ids for nodeid in failed[task_id]]
        command = _harness_command(
            backend.python, backend.place(work) / "harness", results_path.name, targets
        )
        # An equal share of what is left for each rerun still to come: one task whose
        # code hangs cannot take the others' reruns' time.
        left = (deadline - time.monotonic()) / (len(groups) - n)
        if left <= 1:
            continue
        backend.run_harness(command, work, env, left, sandbox, gpus)
        try:
            rerun = read_results(results_path)["tests"]
        except (OSError, ValueError, KeyError):
            continue
        passed = {r["nodeid"] for r in rerun if r.get("outcome") == "passed"}
        for r in records:
            if r["nodeid"] in passed and r.get("task") in task_ids:
                r["composed_pass"] = True
                rescued[r["task"]] = rescued.get(r["task"], 0) + 1
    starter.write_tree(own_tree, student_dir)
    return rescued


def default_sandbox(
    ctx: Context, work: Path, uid: int, hide: list[str], groups: tuple[str, ...] = ()
) -> SandboxConfig:
    """The worker confinement for a submission graded on this host; `groups`: the
    control groups its processes share (`grader.cgroups`), where there are any."""
    limits = ctx.assignment.limits
    keep = {
        sys.prefix,
        sys.base_prefix,
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        str(Path(grader.__file__).resolve().parent),
        str(work / "student"),
    }
    return SandboxConfig(
        uid=uid,
        gid=uid,
        hide=tuple(sorted({*_host_folders(), str(ctx.course.root), "/dev/shm", *hide})),
        keep=tuple(sorted(keep)),
        # CUDA reserves far more address space than it uses: on a GPU assignment an
        # address-space limit would stop every kernel launch (Docker's memory
        # cgroup bounds those workers instead).
        memory_mb=0 if limits.gpus else limits.memory_mb,
        processes=limits.processes,
        file_size_mb=limits.file_size_mb,
        cpu_s=int(limits.submission_timeout_s) + 5,
        cgroups=groups,
    )


#: Top-level folders a worker sees: the system's programs, libraries and settings.
#: Everything else at the top of the file system (/home, /root, /srv, /opt, /var,
#: /run with its sockets, /work, /mnt, ...) is hidden; the sandbox binds back only
#: Python, the grader and the student's own folder.
SYSTEM_FOLDERS = frozenset(
    {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "sys", "dev", "tmp"}
)


def _host_folders() -> list[str]:
    """Top-level folders to hide (real folders only: a symlink such as /bin -> usr/bin
    must not be mounted over, that would hide its target)."""
    return sorted(
        str(path)
        for path in Path("/").iterdir()
        if path.name not in SYSTEM_FOLDERS and path.is_dir() and not path.is_symlink()
    )


def _asdict(sandbox: SandboxConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(sandbox)


def _make_readable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
