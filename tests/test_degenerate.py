"""No test of hw1.1 gives points to a constant or degenerate answer.

Each variant of minitorch/operators.py below is the reference with every function's
body replaced by one `return`: of 0.0, of 1.0, or of its first argument (the
identity for a function of one argument). The public and hidden hw1.1 tests run
against each, in a pytest process of their own with the Hypothesis profile of
grading, and none may pass; the reference itself, run the same way, passes them all.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.context import render_context
from grader.manifest import Course
from grader.records import read_results
from grader.testrun import pytest_command
from tests.conftest import REPO

HW1 = REPO / "assignments" / "hw1"
TEST_FILES = (
    HW1 / "tests" / "strategies.py",
    HW1 / "tests" / "test_operators.py",
    HW1 / "hidden" / "test_operators_hidden.py",
)

#: `student` and `reference` call probes in this process, each with its own
#: operators module in place as `minitorch.operators` during the call.
CONFTEST = """
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest

from common_conftest import plain

HERE = Path(__file__).parent


class Side:
    def __init__(self, name):
        spec = importlib.util.spec_from_file_location(f"{name}_operators", HERE / f"{name}.py")
        self.operators = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.operators)
        self.package = types.ModuleType("minitorch")
        self.package.operators = self.operators

    def _enter(self):
        sys.modules["minitorch"] = self.package
        sys.modules["minitorch.operators"] = self.operators

    def run(self, probe, *args):
        self._enter()
        return plain(probe(*args))

    def call(self, path, *args):
        self._enter()
        module, _, name = path.rpartition(".")
        return plain(getattr(importlib.import_module(module), name)(*args))


@pytest.fixture(scope="session")
def student():
    return Side("student")


@pytest.fixture(scope="session")
def reference():
    return Side("reference")
"""


def degenerate(source: str, answer: str) -> str:
    """`source` with every function's body replaced by `return <answer>`; answer
    "first" returns the function's first argument."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            value = (
                ast.Name(node.args.args[0].arg, ast.Load())
                if answer == "first"
                else ast.Constant(float(answer))
            )
            node.body = [ast.Return(value)]
    return ast.unparse(ast.fix_missing_locations(tree))


@pytest.fixture(scope="module")
def reference_operators() -> str:
    course = Course.load(REPO)
    return render_context(course, course.get("hw1")).reference["minitorch/operators.py"].decode()


def run_hw1_1(folder: Path, reference: str, student: str) -> dict[str, str]:
    """The outcome of every hw1.1 test with `student` as minitorch/operators.py."""
    folder.mkdir()
    for path in TEST_FILES:
        shutil.copy(path, folder / path.name)
    shutil.copy(REPO / "assignments/common/tests/conftest.py", folder / "common_conftest.py")
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "reference.py").write_text(reference)
    (folder / "student.py").write_text(student)
    journal = folder / "results.jsonl"
    subprocess.run(
        pytest_command(sys.executable, journal, ["test_operators.py", "test_operators_hidden.py"]),
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "LLMSYS_GRADING": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        check=False,
        timeout=300,
    )
    records = read_results(journal).tests
    assert all(r.task == "hw1.1" for r in records)
    return {r.nodeid: r.outcome for r in records}


@pytest.fixture(scope="module")
def control(reference_operators: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The outcomes with the reference as the student's code."""
    folder = tmp_path_factory.mktemp("control") / "reference"
    return run_hw1_1(folder, reference_operators, reference_operators)


def test_the_reference_passes_every_hw1_1_test_run_this_way(control: dict[str, str]):
    """The control: the reference as the student passes all of them, so a failure
    below is the variant's, not this way of running the tests."""
    assert len(control) > 50
    assert {nodeid for nodeid, outcome in control.items() if outcome != "passed"} == set()


def test_degenerate_rewrites_every_function():
    """The variants are what they claim: every function body is one `return`."""
    source = "def f(x, y):\n    return x + y\n\n\ndef g(ls):\n    return ls[0]\n"
    assert degenerate(source, "first") == "def f(x, y):\n    return x\n\ndef g(ls):\n    return ls"
    assert "return 0.0" in degenerate(source, "0.0") and "x + y" not in degenerate(source, "0.0")


@pytest.mark.parametrize("answer", ["0.0", "1.0", "first"])
def test_no_hw1_1_test_passes_a_degenerate_operators_module(
    reference_operators: str, control: dict[str, str], tmp_path: Path, answer: str
):
    """Every function returning 0.0, 1.0, or its first argument (the identity for
    one argument, the left operand for two) passes no hw1.1 test, public or hidden."""
    student = degenerate(reference_operators, answer)
    outcomes = run_hw1_1(tmp_path / "variant", reference_operators, student)
    assert set(outcomes) == set(control)  # the same tests ran: none was lost to an error
    passed = sorted(nodeid for nodeid, outcome in outcomes.items() if outcome == "passed")
    assert passed == []
    assert set(outcomes.values()) <= {"failed", "error"}
