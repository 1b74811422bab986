"""Every probe of every assignment is self-contained, as the grader runs it.

The grader sends a probe's source alone to the student's worker and runs it
in a fresh namespace (grader/worker.py), so a probe that uses a name of its
test module (`np` imported at the top, a helper function, a constant) passes
on a student's laptop, where `student.run` calls it in place, and fails with
NameError in grading. Checked here without running anything: each `probe_*`
function of the assignments' public and hidden tests, compiled on its own,
reads no global name but Python's builtins.
"""

from __future__ import annotations

import ast
import builtins
import dis
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import CodeType

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_FILES = sorted(
    path
    for folder in ("tests", "hidden")
    for path in (REPO / "assignments").glob(f"*/{folder}/*.py")
)
BUILTINS = set(dir(builtins))


def probes(path: Path) -> Iterator[tuple[str, str]]:
    """(name, source) of each top-level `probe_*` function of a test file."""
    text = path.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("probe_"):
            yield node.name, textwrap.dedent(ast.get_source_segment(text, node) or "")


def global_reads(code: CodeType) -> set[str]:
    """Names a code object and the code nested in it read as globals."""
    names = {
        i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= global_reads(const)
    return names


def test_the_assignments_have_probes():
    assert sum(1 for path in TEST_FILES for _ in probes(path)) > 100


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_probes_read_no_global_of_their_module(path: Path):
    outside = {}
    for name, source in probes(path):
        module = compile(source, f"<probe {name}>", "exec")
        function = next(c for c in module.co_consts if isinstance(c, CodeType))
        missing = global_reads(function) - BUILTINS - {name}
        if missing:
            outside[name] = sorted(missing)
    assert not outside, (
        f"{path.relative_to(REPO)}: probes use names of their module, which the grader's "
        f"worker does not have (import them inside the probe): {outside}"
    )
