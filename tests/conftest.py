"""Fixtures for the toolkit's own tests: a miniature course built in tmp_path, and
the helpers of the tests that grade hw1 for real."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: A process that spins on one core until its parent is gone (a killed test run
#: leaves no hog behind to slow whatever runs next): `[sys.executable, "-c", HOG]`.
HOG = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(1_000_000):\n"
    "        pass\n"
)

OPS = '''\
"""A tiny module with three graded functions."""


def add(x: int, y: int) -> int:
    """x + y"""
    # BEGIN SOLUTION hw1.1
    return x + y
    # END SOLUTION


def mul(x: int, y: int) -> int:
    """x * y"""
    # BEGIN SOLUTION hw1.2
    result = x * y
    return result
    # END SOLUTION


def neg(x: int) -> int:
    """-x"""
    # BEGIN SOLUTION hw2.1
    return -x
    # END SOLUTION
'''

KERNEL = """\
__global__ void negKernel(float* out, const float* in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    // BEGIN SOLUTION hw2.1
    if (i < n) out[i] = -in[i];
    // END SOLUTION
}
"""

TESTS_HW1 = """\
import mini
import pytest


@pytest.mark.task("hw1.1")
def test_add():
    assert mini.add(2, 3) == 5


@pytest.mark.task("hw1.1")
def test_add_zero():
    assert mini.add(0, 7) == 7


@pytest.mark.task("hw1.2")
def test_mul():
    assert mini.mul(2, 3) == 6
"""

TESTS_HW2 = """\
import mini
import pytest

pytestmark = pytest.mark.task("hw2.1")


def test_neg():
    assert mini.neg(4) == -4
"""


def manifest(
    aid: str, tasks: list[tuple[str, str, int]], ship: list[str], submit: list[str], extra: str = ""
) -> str:
    body = [
        f'id = "{aid}"',
        f'title = "Mini {aid}"',
        "due = 2027-01-01T23:59:00Z",
        f"ship = {ship!r}".replace("'", '"'),
        f"submit = {submit!r}".replace("'", '"'),
        'dependencies = ["pytest>=8"]',
        extra,
    ]
    for tid, title, points in tasks:
        body.append(f'[[tasks]]\nid = "{tid}"\ntitle = "{title}"\npoints = {points}')
    return "\n".join(body) + "\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) if text.startswith("\n") else text)
    return path


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A two-assignment course: hw1 (add 4 pts, mul 6 pts) and hw2 (neg, with a kernel)."""
    root = tmp_path / "course"
    write(root / "solutions/mini/__init__.py", "from .ops import add, mul, neg  # noqa: F401\n")
    write(root / "solutions/mini/ops.py", OPS)
    write(root / "kernels/neg.cu", KERNEL)
    write(
        root / "assignments/hw1/assignment.toml",
        manifest(
            "hw1", [("hw1.1", "Add", 4), ("hw1.2", "Mul", 6)], ["solutions/mini"], ["mini/ops.py"]
        ),
    )
    write(root / "assignments/hw1/README.md", "# hw1\n")
    write(root / "assignments/hw1/tests/test_mini.py", TESTS_HW1)
    write(
        root / "assignments/hw2/assignment.toml",
        manifest(
            "hw2",
            [("hw2.1", "Neg", 10)],
            ["solutions/mini", "kernels/neg.cu"],
            ["mini/ops.py", "kernels/neg.cu"],
        ),
    )
    write(root / "assignments/hw2/README.md", "# hw2\n")
    write(root / "assignments/hw2/tests/test_neg.py", TESTS_HW2)
    return root


PROBE_TESTS_HW1 = """\
import pytest


def probe_add(x, y):
    import mini

    return mini.add(x, y)


@pytest.mark.task("hw1.1")
def test_add(student):
    assert student.run(probe_add, 2, 3) == 5


@pytest.mark.task("hw1.1")
def test_add_zero(student):
    assert student.call("mini.add", 0, 7) == 7


@pytest.mark.task("hw1.2")
def test_mul(student):
    assert student.call("mini.mul", 2, 3) == 6
"""

HIDDEN_HW1 = """\
import pytest


@pytest.mark.task("hw1.2")
def test_mul_matches_reference(student, reference):
    for x, y in [(2, 3), (-4, 5), (0, 9)]:
        assert student.call("mini.mul", x, y) == reference.call("mini.mul", x, y)
"""

GOOD_OPS = """\
def add(x, y):
    return x + y


def mul(x, y):
    return x * y


def neg(x):
    return -x
"""


@pytest.fixture
def graded_course(course: Path) -> Path:
    """The mini course with probe-style public tests, a hidden test and the local conftest."""
    write(
        course / "assignments/common/tests/conftest.py",
        (REPO / "assignments/common/tests/conftest.py").read_text(),
    )
    write(course / "assignments/hw1/tests/test_mini.py", PROBE_TESTS_HW1)
    write(course / "assignments/hw1/hidden/test_hidden.py", HIDDEN_HW1)
    path = course / "assignments/hw1/assignment.toml"
    text = path.read_text().replace(
        'ship = ["solutions/mini"]',
        'ship = ["solutions/mini", "assignments/common/tests/conftest.py"]',
    )
    text = text.replace("points = 4", 'points = 4\nfiles = ["mini/ops.py"]')
    text = text.replace(
        'dependencies = ["pytest>=8"]',
        'dependencies = ["pytest>=8"]\n[limits]\ntest_timeout_s = 3\nsubmission_timeout_s = 60\n',
    )
    path.write_text(text)
    return course


def submission(folder: Path, name: str, ops: str | None) -> Path:
    """A submission folder `name` holding mini/ops.py (or nothing when ops is None)."""
    path = folder / name
    path.mkdir(parents=True)
    if ops is not None:
        write(path / "mini/ops.py", ops)
    return path


def slow_mul_submission(course: Path, folder: Path) -> Path:
    """A submission whose mul outlasts the whole submission's limit (12 s, set in the
    course's manifest here) but not its test's own (30 s)."""
    path = course / "assignments/hw1/assignment.toml"
    path.write_text(
        path.read_text()
        .replace("submission_timeout_s = 60", "submission_timeout_s = 12")
        .replace("test_timeout_s = 3", "test_timeout_s = 30")
    )
    ops = GOOD_OPS.replace(
        "    return x * y\n", "    import time\n    time.sleep(60)\n    return x * y\n"
    )
    return submission(folder, "gus", ops)


# ---------------------------------------------------------------------------
# Grading hw1 for real: the backend, and what must never reach a student
# ---------------------------------------------------------------------------

#: Set by .ci/run: Docker tests fail instead of skipping when the engine or the
#: image is missing, so that CI cannot pass them by skipping.
REQUIRE_DOCKER = os.environ.get("LLMSYS_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="session")
def docker_backend():
    """The docker backend over this checkout's image (`llmsys image` / ci/docker.sh)."""
    from grader.backend import BackendFailure
    from grader.backends import image
    from grader.backends.docker import DockerBackend

    try:
        return DockerBackend(image.tag(REPO))
    except (BackendFailure, image.ImageError, ImportError) as exc:
        if REQUIRE_DOCKER:
            pytest.fail(f"LLMSYS_REQUIRE_DOCKER=1 but Docker grading is not possible: {exc}")
        pytest.skip(f"no Docker grading here ({exc}); ci/docker.sh sets it up as root")


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def hidden_snippets(ctx, shared: str) -> list[str]:
    """Lines of hidden-test code that no public test, reference file or `shared`
    text (the examples' own code) also holds."""
    public = "\n".join(data.decode() for data in ctx.public_tests.values())
    mine = shared + "\n".join(data.decode() for data in ctx.reference.values())
    snippets = []
    for data in ctx.hidden_tests.values():
        for line in data.decode().splitlines():
            line = line.strip()
            if len(line) >= 25 and not line.startswith(("def ", "@", "#", '"""')):
                if line not in public and line not in mine:
                    snippets.append(line)
    return snippets


def strings(value: object) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def student_visible_text(out: Path) -> dict[Path, str]:
    """The text of every file a student is shown (feedback, Gradescope results),
    JSON strings as shown rather than escaped."""
    texts = {}
    for path in out.rglob("*"):
        if path.name in ("feedback.md", "results.json") and path.is_file():
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                text = "\n".join(strings(json.loads(text)))
            texts[path] = text
    return texts
