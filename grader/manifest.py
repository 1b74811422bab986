"""The assignment manifest, `assignments/hwN/assignment.toml`, and the course.

The dataclasses below are the manifest's schema and its documentation: every
field says what it is for (`llmsys validate --schema` prints them). Loading is
strict: unknown keys, missing keys and wrong types are errors naming the file
and the key.

Why above 300 lines: the schema is the manifest's reference documentation, one
field after another with its text; it reads best as one page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Literal

from grader import schema
from grader.errors import ManifestError
from grader.schema import doc

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MANIFEST_NAME = "assignment.toml"
ASSIGNMENT_ID = re.compile(r"^hw(\d+)$")
#: Roots a starter file may come from, and the prefix each loses in the starter.
#: Anything under kernels/ keeps its path (kernels/combine.cu -> kernels/combine.cu).
SHIP_ROOTS = {"solutions/": "", "assignments/common/": "", "kernels/": "kernels/"}


@dataclass(frozen=True)
class LatePolicy:
    grace_minutes: int = doc("Minutes after the due date that still count as on time.", default=0)
    penalty_per_day: float = doc(
        "Fraction of the score lost per started day late (0.1 = 10%).", default=0.0
    )
    max_days: int = doc("Days late after which a submission scores 0 (0: no limit).", default=0)


@dataclass(frozen=True)
class Task:
    id: str = doc(
        "Task id `hwN.K`: also the marker tag, the pytest marker argument and the handout heading."
    )
    title: str = doc("Short title; the starter's stubs raise NotImplementedError('<id>: <title>').")
    points: int = doc("Points of the task; its tests share them.")
    tags: tuple[str, ...] = doc(
        "Solution-marker tags stubbed for this task (default: the task id alone).", default=()
    )
    gpu: bool = doc(
        "True when the task's tests need a GPU (skipped with a reason without one).", default=False
    )
    files: tuple[str, ...] = doc(
        "Submitted files this task grades; when one is missing from a submission, the task's "
        "tests fail with 'file X missing from submission'.",
        default=(),
    )

    @property
    def marker_tags(self) -> tuple[str, ...]:
        return self.tags or (self.id,)


@dataclass(frozen=True)
class Limits:
    test_timeout_s: float = doc("Wall-clock limit of one test, in seconds.", default=60.0)
    submission_timeout_s: float = doc(
        "Wall-clock limit of a whole submission, in seconds.", default=1200.0
    )
    memory_mb: int = doc(
        "Memory of the student's worker processes (no swap), in MiB.", default=4096
    )
    processes: int = doc("Processes and threads the student's code may run at once.", default=64)
    file_size_mb: int = doc("Largest file the student's code may write, in MiB.", default=64)
    cpus: float = doc("CPU cores given to one submission.", default=2.0)
    gpus: int = doc("GPUs given to one submission (0 for CPU assignments).", default=0)


@dataclass(frozen=True)
class TimingCheck:
    id: str = doc("Name of the check, used by its test: @pytest.mark.timing('<id>').")
    task: str = doc("Task whose points this check gives.")
    sizes: tuple[int, ...] = doc("Problem sizes passed to the timed probe, each timed.")
    points: float = doc("Points of the task given by this check (the test's share).")
    full_credit_ratio: float = doc("Student/reference time at or below which credit is full.")
    zero_credit_ratio: float = doc("Student/reference time at or above which credit is zero.")
    samples: int = doc("Timed samples per side and size; the median is used.", default=5)
    min_sample_s: float = doc(
        "Repetitions per sample are doubled until the reference's sample lasts this long.",
        default=0.05,
    )


@dataclass(frozen=True)
class Assignment:
    id: str = doc("Assignment id, `hwN`, the same as its folder name.")
    title: str = doc("Title shown in the handout, reports and gradebook.")
    due: dt.datetime = doc("Due date and time, with a UTC offset.")
    tasks: tuple[Task, ...] = doc("The graded tasks, in handout order.")
    ship: tuple[str, ...] = doc(
        "Files or folders of this repo that the starter contains (under solutions/, kernels/ "
        "or assignments/common/). solutions/X and assignments/common/X become X in the "
        "starter; kernels/X keeps its path. The handout README.md and tests/ of the "
        "assignment are always shipped; hidden/ never is."
    )
    submit: tuple[str, ...] = doc(
        "Starter paths a student hands in. Only these are taken from a submission; "
        "everything else comes from the clean starter."
    )
    extends: str = doc(
        "An earlier assignment (`hwN`) whose `ship` list this one ships too, before its own "
        "entries: a course that grows one package lists each assignment's new files only.",
        default="",
    )
    dependencies: tuple[str, ...] = doc(
        "pip requirements of the starter (its pyproject.toml).", default=()
    )
    earlier: Literal["solution", "stub"] = doc(
        "Regions of earlier assignments in shipped files: 'solution' gives students the "
        "reference, 'stub' keeps them as stubs. Later assignments are always stubbed.",
        default="solution",
    )
    late: LatePolicy = doc("Late policy.", default=LatePolicy())
    limits: Limits = doc("Resource limits of grading one submission.", default=Limits())
    timing: tuple[TimingCheck, ...] = doc("Timing checks against the reference.", default=())
    fresh_worker_after: tuple[str, ...] = doc(
        "Names of exception types (as the student's code raises them, e.g. CudaError) after "
        "which the student's worker is replaced before the next test: an error that leaves "
        "the process unusable (a CUDA context after a kernel's fault) then costs only the "
        "test that met it, not every later test of the other tasks.",
        default=(),
    )
    canvas_assignment_id: str = doc(
        "Canvas assignment id: the gradebook column '<title> (<id>)', and where "
        "`llmsys canvas upload` posts.",
        default="",
    )

    @property
    def number(self) -> int:
        return int(ASSIGNMENT_ID.match(self.id).group(1))  # type: ignore[union-attr]

    @property
    def points(self) -> int:
        return sum(task.points for task in self.tasks)

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)


def starter_path(ship_path: str) -> str:
    """Where a shipped repo path lands in the starter."""
    for root, replacement in SHIP_ROOTS.items():
        if ship_path.startswith(root):
            return replacement + ship_path[len(root) :]
    raise ValueError(ship_path)


def load_assignment(path: Path, root: Path) -> Assignment:
    """Load and check one manifest; errors name the file (relative to `root`)."""
    where = _rel(path, root)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"{where}: no such manifest", "create it; `llmsys validate --schema` lists the keys"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: invalid TOML: {exc}") from None
    try:
        assignment = schema.load(Assignment, data)
    except schema.SchemaError as exc:
        raise ManifestError(
            f"{where}: {exc}", "`llmsys validate --schema` lists every key and its type"
        ) from None
    if assignment.extends:
        assignment = _extend(assignment, path, root, where)
    _check(assignment, path.parent, root, where)
    return assignment


def _extend(a: Assignment, path: Path, root: Path, where: str) -> Assignment:
    """`a` with the `ship` list of the assignment it extends in front of its own."""
    match = ASSIGNMENT_ID.match(a.extends)
    number = ASSIGNMENT_ID.match(path.parent.name)
    if match is None or number is None or int(match.group(1)) >= int(number.group(1)):
        raise ManifestError(
            f"{where}: extends: {a.extends!r} is not an earlier assignment (hwN, N below "
            f"{path.parent.name}'s)",
            'e.g. extends = "hw1"',
        )
    base = load_assignment(path.parent.parent / a.extends / MANIFEST_NAME, root)
    ship = base.ship + tuple(entry for entry in a.ship if entry not in base.ship)
    return dataclasses.replace(a, ship=ship)


def _check(a: Assignment, folder: Path, root: Path, where: str) -> None:
    def fail(key: str, message: str, hint: str = "") -> None:
        raise ManifestError(f"{where}: {key}: {message}", hint)

    if not ASSIGNMENT_ID.match(a.id):
        fail("id", f"{a.id!r} is not of the form hwN")
    if a.id != folder.name:
        fail("id", f"{a.id!r} differs from the folder name {folder.name!r}")
    if not a.tasks:
        fail("tasks", "an assignment needs at least one task")
    seen: set[str] = set()
    for i, task in enumerate(a.tasks):
        if not task.id.startswith(f"{a.id}."):
            fail(f"tasks[{i}].id", f"{task.id!r} must start with '{a.id}.'")
        if task.id in seen:
            fail(f"tasks[{i}].id", f"duplicate task id {task.id!r}")
        seen.add(task.id)
        if task.points <= 0:
            fail(f"tasks[{i}].points", "must be positive")
        for j, path in enumerate(task.files):
            if path not in a.submit:
                fail(f"tasks[{i}].files[{j}]", f"{path!r} is not in submit")
    for i, entry in enumerate(a.ship):
        if not any(entry.startswith(r) for r in SHIP_ROOTS) or ".." in PurePosixPath(entry).parts:
            fail(f"ship[{i}]", f"{entry!r} must lie under {', '.join(SHIP_ROOTS)}")
        if not (root / entry).exists():
            fail(f"ship[{i}]", f"{entry!r} does not exist")
    shipped = {starter_path(p) for p in shipped_files(a, root)}
    for i, entry in enumerate(a.submit):
        if entry not in shipped:
            fail(
                f"submit[{i}]",
                f"{entry!r} is not a file of the starter",
                "submit lists starter paths, e.g. 'minitorch/operators.py'",
            )
    names = set()
    for i, check in enumerate(a.timing):
        if check.task not in seen:
            fail(f"timing[{i}].task", f"unknown task {check.task!r}")
        if check.id in names:
            fail(f"timing[{i}].id", f"duplicate timing check {check.id!r}")
        names.add(check.id)
        if not 0 < check.full_credit_ratio < check.zero_credit_ratio:
            fail(f"timing[{i}]", "needs 0 < full_credit_ratio < zero_credit_ratio")
    for required in ("README.md", "tests"):
        if not (folder / required).exists():
            fail(
                "folder",
                f"{_rel(folder / required, root)} is missing",
                "every assignment has a handout README.md and public tests/",
            )


def shipped_files(a: Assignment, root: Path) -> list[str]:
    """Repo-relative paths of every file the manifest's `ship` entries cover."""
    files: list[str] = []
    for entry in a.ship:
        path = root / entry
        if path.is_dir():
            files.extend(_rel(p, root) for p in sorted(path.rglob("*")) if _is_source(p))
        elif path.exists():
            files.append(entry)
    return files


def _is_source(path: Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".so"}


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Course:
    """Every assignment of the course, in order, and where its files live."""

    root: Path
    assignments: tuple[Assignment, ...]

    @classmethod
    def load(cls, root: Path) -> Course:
        folders = sorted((root / "assignments").glob(f"hw*/{MANIFEST_NAME}"))
        loaded = [load_assignment(p, root) for p in folders]
        loaded.sort(key=lambda a: a.number)
        course = cls(root, tuple(loaded))
        course.tag_owners  # noqa: B018 - checks that tags are unique across the course
        return course

    def get(self, assignment_id: str) -> Assignment:
        for a in self.assignments:
            if a.id == assignment_id:
                return a
        known = ", ".join(a.id for a in self.assignments) or "none"
        raise ManifestError(
            f"unknown assignment {assignment_id!r} (known: {known})",
            "assignments are the folders assignments/hwN with an assignment.toml",
        )

    def select(self, ids: list[str] | None) -> list[Assignment]:
        return [self.get(i) for i in ids] if ids else list(self.assignments)

    @cached_property
    def tag_owners(self) -> dict[str, tuple[Assignment, Task]]:
        """Marker tag -> the assignment and task that own it."""
        owners: dict[str, tuple[Assignment, Task]] = {}
        for a in self.assignments:
            for task in a.tasks:
                for tag in task.marker_tags:
                    if tag in owners:
                        other = owners[tag][1].id
                        raise ManifestError(
                            f"assignments/{a.id}/{MANIFEST_NAME}: tag {tag!r} of {task.id} "
                            f"is already used by {other}"
                        )
                    owners[tag] = (a, task)
        return owners


def find_root(start: Path | None = None) -> Path:
    """The course repo containing `start` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "assignments").is_dir() and (candidate / "solutions").is_dir():
            return candidate
    package_root = Path(__file__).resolve().parent.parent
    if (package_root / "assignments").is_dir():
        return package_root
    raise ManifestError(
        f"{here} is not inside the course repository",
        "run llmsys from the repo, or pass --root PATH",
    )
