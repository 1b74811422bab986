"""Example submissions, stored as what they change.

`examples/expected.toml` names every example of an assignment:

    [hw1.buggy]
    base = "reference"          # or "starter" (default: reference)
    omit = []                   # submitted files the example leaves out
    score = 29.2631             # what grading must give it
    failing = 7
    why = "..."

and `examples/submissions/hwN/<name>/` holds only the submitted files in which
the example differs from its base. `materialize` writes each example whole (its
base's submitted files, its own on top, `omit` left out), ready to grade; so an
edit of the reference reaches every example built on it, and no example carries
a stale copy of a file it does not change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grader.errors import LlmsysError
from grader.grade import Context
from grader.manifest import tomllib
from grader.starter import write_tree

EXPECTED = Path("examples/expected.toml")
FOLDER = Path("examples/submissions")


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


def example_files(ctx: Context, name: str, spec: dict[str, Any], root: Path) -> dict[str, bytes]:
    """The submitted files of example `name`, whole."""
    base = spec.get("base", "reference")
    if base not in ("reference", "starter"):
        raise LlmsysError(
            f"{EXPECTED}: [{ctx.assignment.id}.{name}] base must be "
            f"'reference' or 'starter', got {base!r}"
        )
    tree = ctx.reference if base == "reference" else ctx.starter
    files = {rel: tree[rel] for rel in ctx.assignment.submit}
    own = root / FOLDER / ctx.assignment.id / name
    for rel in ctx.assignment.submit:
        if (own / rel).is_file():
            files[rel] = (own / rel).read_bytes()
    for rel in spec.get("omit", ()):
        files.pop(rel, None)
    return files


def materialize(ctx: Context, root: Path, dest: Path) -> list[Path]:
    """Write every example of `ctx`'s assignment whole under `dest`; their folders."""
    folders = []
    for name, spec in specs(root, ctx.assignment.id).items():
        folder = dest / name
        write_tree(example_files(ctx, name, spec, root), folder)
        folders.append(folder)
    return folders


def stale(ctx: Context, root: Path) -> list[str]:
    """Problems of the stored examples: a folder without an entry, a file that is
    not submitted, or a file identical to its base (it should not be stored)."""
    table = specs(root, ctx.assignment.id)
    problems = []
    stored = root / FOLDER / ctx.assignment.id
    for folder in sorted(p for p in stored.iterdir() if p.is_dir()) if stored.is_dir() else []:
        spec = table.get(folder.name)
        if spec is None:
            problems.append(f"{folder.relative_to(root)}: no entry in {EXPECTED}")
            continue
        base = ctx.reference if spec.get("base", "reference") == "reference" else ctx.starter
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            if rel not in ctx.assignment.submit:
                problems.append(f"{path.relative_to(root)}: not a submitted file")
            elif path.read_bytes() == base[rel]:
                problems.append(
                    f"{path.relative_to(root)}: the same as the {spec.get('base', 'reference')}"
                )
    return problems
