"""Example submissions, written as edits of the reference or the starter.

`examples/expected.toml` describes every example of an assignment:

    [hw1.buggy]
    base = "reference"          # or "starter"
    omit = []                   # submitted files the example leaves out
    score = 29.2631             # what grading must give it
    failing = 7                 # tests (public and hidden) that must not pass
    # score_range = [70, 76]    # instead of score and failing, for an example whose
                                # failures depend on a race (a missing barrier)
    why = "..."

    [[hw1.buggy.edit]]          # each: `old` occurs once in the base's file
    file = "minitorch/operators.py"
    old = "    return d if x > 0.0 else 0.0\\n"
    new = "    return d if x >= 0.0 else 0.0\\n"

`materialize` writes each example whole (its base's submitted files, edited, with
`omit` left out), ready to grade. An edit of the reference reaches every example
built on it; an edit whose `old` text the reference no longer holds is an error
that names the example, so an example never goes stale silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grader.context import Context
from grader.errors import CheckFailed, LlmsysError
from grader.manifest import tomllib
from grader.starter import write_tree

EXPECTED = Path("examples/expected.toml")


def assignments(root: Path = Path()) -> list[str]:
    """The assignments that have examples."""
    return list(tomllib.loads((root / EXPECTED).read_text(encoding="utf-8")))


def specs(root: Path, assignment_id: str) -> dict[str, dict[str, Any]]:
    """The `[hwN.<name>]` tables of examples/expected.toml."""
    data = tomllib.loads((root / EXPECTED).read_text(encoding="utf-8"))
    table = data.get(assignment_id)
    if not isinstance(table, dict) or not table:
        raise LlmsysError(
            f"{EXPECTED} has no examples for {assignment_id}",
            f"add tables like [{assignment_id}.<name>] with base, score, failing and why",
        )
    return table


def example_files(ctx: Context, name: str, spec: dict[str, Any]) -> dict[str, bytes]:
    """The submitted files of example `name`, whole; CheckFailed if an edit misses."""
    where = f"{EXPECTED}: [{ctx.assignment.id}.{name}]"
    base = spec.get("base")
    if base not in ("reference", "starter"):
        raise LlmsysError(f"{where}: base must be 'reference' or 'starter', got {base!r}")
    tree = ctx.reference if base == "reference" else ctx.starter
    files = {rel: tree[rel].decode() for rel in ctx.assignment.submit}
    for edit in spec.get("edit", ()):
        rel, old, new = edit.get("file"), edit.get("old", ""), edit.get("new", "")
        if rel not in files:
            raise CheckFailed(f"{where}: edits {rel!r}, which is not a submitted file")
        if not old or files[rel].count(old) != 1:
            raise CheckFailed(
                f"{where}: {rel} of the {base} no longer holds the edit's `old` text once",
                "update the example's edit to the current " + base,
            )
        files[rel] = files[rel].replace(old, new)
    for rel in spec.get("omit", ()):
        files.pop(rel, None)
    return {rel: text.encode() for rel, text in files.items()}


def materialize(
    ctx: Context, root: Path, dest: Path, only: Iterable[str] | None = None
) -> list[Path]:
    """Write every example of `ctx`'s assignment (or those named in `only`) whole
    under `dest`; their folders."""
    folders = []
    wanted = None if only is None else set(only)
    for name, spec in specs(root, ctx.assignment.id).items():
        if wanted is not None and name not in wanted:
            continue
        folder = dest / name
        write_tree(example_files(ctx, name, spec), folder)
        folders.append(folder)
    return folders
