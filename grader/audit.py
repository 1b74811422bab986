"""`llmsys diff`: what changed between two gradings of one assignment.

After a hidden test is fixed, a timing threshold moved or a regrade request was
handled, a TA grades again into another folder and must be able to say, per
student and per test, which points moved and why. This module reads two output
folders (`OUT/hwN`, each holding `<submission>/result.json`) and lists:

- submissions only in one of them;
- per submission present in both: a change of status or score, then every test
  whose status or points changed, and tests that exist in only one grading.

Nothing here grades or writes; `render` gives the text the command prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from grader import results
from grader.errors import LlmsysError
from grader.results import SubmissionResult, TestResult

#: Points closer than this are the same (scores are stored with 4 decimals).
EPS = 5e-5


@dataclass(frozen=True)
class TestChange:
    id: str
    before: TestResult | None  #: None: the test is new in B
    after: TestResult | None  #: None: the test is gone in B


@dataclass(frozen=True)
class SubmissionChange:
    submission: str
    before: SubmissionResult
    after: SubmissionResult
    tests: tuple[TestChange, ...]

    @property
    def delta(self) -> float:
        return self.after.score - self.before.score


@dataclass
class Diff:
    assignment: str
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    changed: list[SubmissionChange] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.only_a or self.only_b or self.changed)


def load(folder: Path) -> dict[str, SubmissionResult]:
    """The results of one grading: `folder` is `OUT/hwN`, or `OUT` holding one `hwN`."""
    if not folder.is_dir():
        raise LlmsysError(
            f"{folder} " + ("is not a folder" if folder.exists() else "does not exist"),
            "pass the output folder of a grading, e.g. out/hw1",
        )
    files = sorted(folder.glob("*/result.json"))
    if not files:
        inner = [p for p in sorted(folder.iterdir()) if list(p.glob("*/result.json"))]
        if len(inner) == 1:
            return load(inner[0])
        hint = (
            f"it holds several gradings ({', '.join(p.name for p in inner)}): name one, "
            f"e.g. {inner[0]}"
            if inner
            else "pass the folder `llmsys grade --out OUT` wrote for one assignment, e.g. out/hw1"
        )
        raise LlmsysError(f"{folder} holds no graded submission (no */result.json)", hint)
    found: dict[str, SubmissionResult] = {}
    for path in files:
        try:
            result = results.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise LlmsysError(
                f"{path}: not a result this grader can read ({exc})",
                "grade again with this version of the grader (llmsys grade --regrade)",
            ) from None
        found[result.submission] = result
    return found


def compare(a: dict[str, SubmissionResult], b: dict[str, SubmissionResult]) -> Diff:
    """What changed from grading `a` to grading `b`."""
    assignments = {r.assignment for r in (*a.values(), *b.values())}
    if len(assignments) > 1:
        raise LlmsysError(
            f"the two gradings are of different assignments ({', '.join(sorted(assignments))})",
            "compare two gradings of the same assignment, e.g. out/hw1 and out-fixed/hw1",
        )
    diff = Diff(assignment=assignments.pop() if assignments else "")
    diff.only_a = sorted(set(a) - set(b))
    diff.only_b = sorted(set(b) - set(a))
    for name in sorted(set(a) & set(b)):
        before, after = a[name], b[name]
        tests = _test_changes(before, after)
        if tests or before.status != after.status or abs(before.score - after.score) > EPS:
            diff.changed.append(SubmissionChange(name, before, after, tests))
        else:
            diff.unchanged += 1
    return diff


def _test_changes(before: SubmissionResult, after: SubmissionResult) -> tuple[TestChange, ...]:
    old = {t.id: t for t in before.tests}
    new = {t.id: t for t in after.tests}
    changes = []
    for test_id in [*old, *(i for i in new if i not in old)]:
        x, y = old.get(test_id), new.get(test_id)
        if x is None or y is None:
            changes.append(TestChange(test_id, x, y))
        elif (
            x.status != y.status
            or abs(x.points - y.points) > EPS
            or abs(x.max_points - y.max_points) > EPS
        ):
            changes.append(TestChange(test_id, x, y))
    return tuple(changes)


def _points(test: TestResult) -> str:
    return f"{test.status} {test.points:g}/{test.max_points:g}"


def render(diff: Diff, label_a: str, label_b: str) -> str:
    """The report: a summary line, then each change (staff only: it names hidden tests)."""
    lines = [
        f"{diff.assignment or 'diff'}: {len(diff.changed)} changed, {diff.unchanged} unchanged, "
        f"{len(diff.only_a)} only in {label_a}, {len(diff.only_b)} only in {label_b}"
    ]
    for name in diff.only_a:
        lines.append(f"  {name}: only in {label_a}")
    for name in diff.only_b:
        lines.append(f"  {name}: only in {label_b}")
    for change in sorted(diff.changed, key=lambda c: (c.delta, c.submission)):
        x, y = change.before, change.after
        status = f" ({x.status} -> {y.status})" if x.status != y.status else ""
        lines.append(
            f"  {change.submission}: {x.score:g} -> {y.score:g} ({change.delta:+g}){status}"
        )
        for test in change.tests:
            if test.before is None:
                assert test.after is not None
                lines.append(f"    + {test.id}: {_points(test.after)} (new)")
            elif test.after is None:
                lines.append(f"    - {test.id}: {_points(test.before)} (gone)")
            else:
                lines.append(f"    ~ {test.id}: {_points(test.before)} -> {_points(test.after)}")
    return "\n".join(lines)
