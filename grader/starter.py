"""Generate student starters from the single-source reference.

`render_tree` builds the file set of one assignment's repo in memory with a
chosen set of marker tags stubbed: the starter (the assignment's own tasks,
every later assignment, and earlier ones if the manifest says so), the
reference (nothing stubbed), or anything in between for the invariant checks.
`write_starter` and `stale_files` compare that set with `starter/hwN/` on disk.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from grader import markers
from grader.errors import MarkerError
from grader.manifest import Assignment, Course, shipped_files, starter_path

#: Roots of this repo whose files may hold solution markers.
MARKED_ROOTS = ("solutions", "kernels")
#: What tests and tools leave in a starter; never generated, never stale.
SCRATCH = {"__pycache__", ".hypothesis", ".pytest_cache", ".venv", "build", ".ruff_cache"}
SCRATCH_SUFFIXES = (".pyc", ".so", ".egg-info")

Tree = dict[str, bytes]


def starter_stub_tags(course: Course, a: Assignment) -> set[str]:
    """Tags stubbed in `a`'s starter: its own, all later ones, earlier ones by policy."""
    tags = set()
    for tag, (owner, _task) in course.tag_owners.items():
        if owner.number >= a.number or a.earlier == "stub":
            tags.add(tag)
    return tags


def scan(course: Course) -> dict[str, list[markers.Region]]:
    """Parse the markers of every file under solutions/ and kernels/.

    Fails on the first malformed marker or on a tag no manifest owns, so a
    mistake anywhere in the reference fails every build, shipped or not.
    """
    found: dict[str, list[markers.Region]] = {}
    for root_name in MARKED_ROOTS:
        root = course.root / root_name
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or _is_scratch(path.relative_to(course.root).as_posix()):
                continue
            rel = path.relative_to(course.root).as_posix()
            text = _read_text(path)
            if text is None:
                continue
            regions = markers.parse(text, rel)
            for region in regions:
                if region.tag not in course.tag_owners:
                    raise MarkerError(
                        rel,
                        region.begin,
                        f"unknown tag {region.tag!r}: no manifest has a task with it",
                        "add it to a task's id or tags in assignments/hwN/assignment.toml",
                    )
            found[rel] = regions
    return found


def render_tree(
    course: Course,
    a: Assignment,
    stub_tags: Iterable[str],
    regions: dict[str, list[markers.Region]] | None = None,
) -> Tree:
    """Every file of `a`'s starter repo, with the regions of `stub_tags` stubbed."""
    stub_tags = set(stub_tags)
    regions = scan(course) if regions is None else regions
    owners = course.tag_owners

    def stub_message(tag: str) -> str | None:
        return f"{tag}: {owners[tag][1].title}" if tag in stub_tags else None

    tree: Tree = {}
    for rel in shipped_files(a, course.root):
        source = course.root / rel
        if regions.get(rel):
            text = _read_text(source)
            assert text is not None
            tree[starter_path(rel)] = markers.render(text, rel, regions[rel], stub_message).encode()
        else:
            tree[starter_path(rel)] = source.read_bytes()
    folder = course.root / "assignments" / a.id
    tree["README.md"] = (folder / "README.md").read_bytes()
    tests = folder / "tests"
    for path in sorted(tests.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not _is_scratch(rel):
            tree[rel] = path.read_bytes()
    tree["pyproject.toml"] = _pyproject(a, tree).encode()
    tree[".gitignore"] = (
        "".join(f"{name}/\n" for name in sorted(SCRATCH)).encode() + b"*.pyc\n*.so\n*.egg-info/\n"
    )
    return tree


def starter_tree(
    course: Course, a: Assignment, regions: dict[str, list[markers.Region]] | None = None
) -> Tree:
    return render_tree(course, a, starter_stub_tags(course, a), regions)


def write_tree(tree: Tree, dest: Path) -> None:
    """Make `dest` hold exactly `tree` (scratch files of tools excepted)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in _files_on_disk(dest):
        if rel not in tree:
            (dest / rel).unlink()
    for rel, content in tree.items():
        path = dest / rel
        if path.is_file() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()) and not _is_scratch(folder.relative_to(dest).as_posix()):
            folder.rmdir()


def stale_files(tree: Tree, dest: Path) -> list[str]:
    """Files of `dest` that differ from `tree`, each with the reason."""
    problems = []
    on_disk = set(_files_on_disk(dest)) if dest.is_dir() else set()
    for rel in sorted(set(tree) | on_disk):
        if rel not in on_disk:
            problems.append(f"{rel}: missing")
        elif rel not in tree:
            problems.append(f"{rel}: not generated by any source (delete it)")
        elif (dest / rel).read_bytes() != tree[rel]:
            problems.append(f"{rel}: differs from what its source generates")
    return problems


def copy_tree(tree: Tree, dest: Path) -> Path:
    """Write `tree` into a new folder `dest` (for test runs)."""
    if dest.exists():
        shutil.rmtree(dest)
    write_tree(tree, dest)
    return dest


def _pyproject(a: Assignment, tree: Tree) -> str:
    packages = sorted(
        {rel.split("/")[0] for rel in tree if rel.count("/") == 1 and rel.endswith("/__init__.py")}
    )
    deps = "".join(f"    {json.dumps(d)},\n" for d in a.dependencies)
    return (
        f"# Generated by `llmsys build-starter` from assignments/{a.id}/assignment.toml.\n"
        "[build-system]\n"
        'requires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f'name = "llmsys-{a.id}"\n'
        'version = "0.1.0"\n'
        f"description = {json.dumps(a.title)}\n"
        'requires-python = ">=3.10"\n'
        f"dependencies = [\n{deps}]\n\n"
        "[tool.setuptools.packages.find]\n"
        f"include = {json.dumps([p + '*' for p in packages])}\n\n"
        "[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        'addopts = "--strict-markers"\n'
        "markers = [\n"
        '    "task(id, points=None): the task (hwN.K) whose points this test gives",\n'
        '    "gpu: needs a CUDA GPU; skipped with a reason where there is none",\n'
        '    "timing(check_id): compares the speed of your code with the reference",\n'
        '    "time_limit(seconds): the grader\'s time limit of this test",\n'
        '    "rule: a rule of the task; unless it passes, the task scores 0",\n'
        "]\n\n"
        "# What you hand in (submit.py zips exactly these files).\n"
        "[tool.llmsys]\n"
        f'assignment = "{a.id}"\n'
        f"submit = {json.dumps(list(a.submit))}\n"
    )


def _files_on_disk(dest: Path) -> list[str]:
    return [
        p.relative_to(dest).as_posix()
        for p in sorted(dest.rglob("*"))
        if p.is_file() and not _is_scratch(p.relative_to(dest).as_posix())
    ]


def _is_scratch(rel: str) -> bool:
    parts = rel.split("/")
    return any(part in SCRATCH or part.endswith(SCRATCH_SUFFIXES) for part in parts)


def _read_text(path: Path) -> str | None:
    """The file as text, or None for a binary file (never stubbed)."""
    try:
        return path.read_bytes().decode("utf-8")  # bytes exactly: no newline translation
    except UnicodeDecodeError:
        return None
