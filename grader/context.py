"""An assignment as grading needs it, rendered once per batch.

The course-level inputs of an assignment (starter, reference, public and hidden
tests) are rendered from the repo into a `Context`, whose digest, with the
submission's own digest and the grader version, keys a result for resuming.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import grader
from grader import intake, starter
from grader.manifest import Assignment, Course

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


def render_context(course: Course, a: Assignment) -> Context:
    regions = starter.scan(course)
    start = starter.starter_tree(course, a, regions)
    reference = starter.render_tree(course, a, (), regions)
    folder = course.root / "assignments" / a.id
    public = public_tests(start)
    hidden = read_files(folder / HIDDEN_TESTS)
    h = hashlib.sha256(f"grader {grader.__version__}\n".encode())
    h.update((folder / "assignment.toml").read_bytes())
    for label, tree in (("starter", start), ("reference", reference), ("hidden", hidden)):
        for rel in sorted(tree):
            h.update(f"{label}/{rel}\0".encode() + hashlib.sha256(tree[rel]).digest())
    return Context(course, a, start, reference, public, hidden, h.hexdigest())


def result_key(ctx: Context, taken: intake.Intake) -> str:
    """What a result was graded from: this assignment's inputs and this submission."""
    return hashlib.sha256(f"{ctx.digest}:{taken.digest}".encode()).hexdigest()[:32]


def public_tests(start: dict[str, bytes]) -> dict[str, bytes]:
    """The public tests of a starter tree: its `tests/` files but the local conftest.

    The starter's `tests/conftest.py` is for students running the tests at home;
    grading supplies those fixtures itself (`grader.harness`, which runs each probe
    sandboxed), so that file is left out of what grading runs.
    """
    return {
        rel: data
        for rel, data in start.items()
        if rel.startswith(f"{PUBLIC_TESTS}/") and rel != f"{PUBLIC_TESTS}/{LOCAL_CONFTEST}"
    }


def read_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by POSIX path relative to it, in sorted order.

    A missing folder reads as empty (an assignment may have no hidden tests);
    `__pycache__` is left out, since bytecode left by an earlier run is not an input.
    """
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
