"""The `llmsys` commands as typed functions; `grader.cli` only parses and prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader import starter
from grader.errors import CheckFailed
from grader.manifest import Course
from grader.verify import Verification, verify


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
