"""`llmsys new hwN`: the skeleton of a new assignment, working from the start.

It writes, and touches nothing else:

    assignments/hwN/assignment.toml     the manifest: extends the latest assignment's
                                        ship list, one task hwN.1, its file submitted
    assignments/hwN/README.md           the handout, a heading per task
    assignments/hwN/tests/test_hwN.py   one public test of hwN.1, through a probe
    assignments/hwN/hidden/test_hwN_hidden.py   one hidden test against the reference
    solutions/<module>                  the module of hwN.1, one marked function
    examples/expected.toml              [hwN.reference] (10 points) and [hwN.starter] (0)

`llmsys validate`, `build-starter`, `verify` and `grade` accept the result at
once; docs/adding-an-assignment.md goes on from there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from grader.errors import LlmsysError
from grader.examples import EXPECTED
from grader.manifest import ASSIGNMENT_ID, Course

MODULE = '''"""{title} ({aid}).

Student-facing: every function keeps its signature, a docstring with the math
and the plan; the marked region is what the student writes.
"""

from __future__ import annotations


def greet(name: str) -> str:
    """The greeting of `name`: "hello, " followed by the name.

    >>> greet("ada")
    'hello, ada'
    """
    # BEGIN SOLUTION {aid}.1
    return f"hello, {{name}}"
    # END SOLUTION
'''

MANIFEST = """# {aid}: {title}. `llmsys validate --schema` documents every key.
id = "{aid}"
title = "{title}"
due = {due}
earlier = "solution"
{extends}
# Files this assignment adds to the starter (after those of `extends`).
ship = [{ship}]

# What a student hands in; everything else comes from the clean starter.
submit = ["{submitted}"]

dependencies = [{dependencies}]

[limits]
test_timeout_s = 30
submission_timeout_s = 600

[[tasks]]
id = "{aid}.1"
title = "First task"
points = 10
files = ["{submitted}"]
"""

HANDOUT = """# {aid}: {title}

Due {due_text}. What you hand in: `{submitted}` (`python submit.py` makes the zip).

| task | what | points |
|---|---|---|
| {aid}.1 | First task | 10 |

## Setting up

```sh
pip install -e .
pytest            # the public tests; each names its task
```

## {aid}.1: First task

`{module}` holds `greet`: fill in its body where it raises
`NotImplementedError("{aid}.1: First task")`.
"""

PUBLIC_TEST = '''"""Public tests of {aid}: each calls your code through a probe (conftest.py)."""

import pytest

pytestmark = pytest.mark.task("{aid}.1")


def probe_greet(name):
    from {package} import {stem}

    return {stem}.greet(name)


def test_greet(student):
    """greet("ada") is "hello, ada"."""
    assert student.run(probe_greet, "ada") == "hello, ada"
'''

HIDDEN_TEST = '''"""Hidden tests of {aid}: the student's answers against the reference's."""

import pytest

pytestmark = pytest.mark.task("{aid}.1")


def probe_greet(name):
    from {package} import {stem}

    return {stem}.greet(name)


@pytest.mark.parametrize("name", ["", "Grace Hopper", "名前"])
def test_greet_matches_reference(student, reference, name):
    assert student.run(probe_greet, name) == reference.run(probe_greet, name)
'''

EXAMPLES = """
[{aid}.reference]
base = "reference"
score = 10.0
failing = 0
why = "the reference solution, as the grader renders it"

[{aid}.starter]
base = "starter"
score = 0.0
failing = 4
why = "the untouched starter: every test fails with NotImplementedError"
"""


@dataclass(frozen=True)
class Skeleton:
    written: tuple[str, ...]  #: repo-relative paths written or extended


def new_assignment(root: Path, aid: str, title: str, module: str = "") -> Skeleton:
    """Write the skeleton of assignment `aid` (see the module docstring)."""
    match = ASSIGNMENT_ID.match(aid)
    if match is None:
        raise LlmsysError(f"{aid!r} is not an assignment id", "ids are hwN, e.g. hw3")
    if not title.strip() or '"' in title or "\n" in title:
        raise LlmsysError("the title must be one line without double quotes", 'e.g. --title "A"')
    course = Course.load(root)
    folder = root / "assignments" / aid
    if folder.exists():
        raise LlmsysError(f"assignments/{aid} exists already", "choose another id")
    earlier = [a for a in course.assignments if a.number < int(match.group(1))]
    base = earlier[-1] if earlier else None
    module = module or f"minitorch/{aid}.py"
    if not module.endswith(".py") or "/" not in module or module.startswith("/"):
        raise LlmsysError(f"--module {module!r} is not PACKAGE/NAME.py", "e.g. minitorch/attn.py")
    package, stem = module.rsplit("/", 1)[0].replace("/", "."), Path(module).stem
    source = root / "solutions" / module
    if source.exists():
        raise LlmsysError(f"solutions/{module} exists already", "name a new module with --module")
    due = (dt.date.today() + dt.timedelta(days=28)).isoformat() + "T23:59:00-05:00"
    ship = [f"solutions/{module}"]
    if base is None:
        ship = ["assignments/common/submit.py", "assignments/common/tests/conftest.py", *ship]
    fields = {
        "aid": aid,
        "title": title.strip(),
        "due": due,
        "due_text": due.replace("T", " at ")[:-6],
        "extends": f'extends = "{base.id}"\n' if base else "",
        "ship": ", ".join(f'"{entry}"' for entry in ship),
        "submitted": module,
        "module": module,
        "package": package,
        "stem": stem,
        "dependencies": ", ".join(f'"{d}"' for d in (base.dependencies if base else ("pytest",))),
    }
    files = {
        source: MODULE.format(**fields),
        folder / "assignment.toml": MANIFEST.format(**fields),
        folder / "README.md": HANDOUT.format(**fields),
        folder / "tests" / f"test_{aid}.py": PUBLIC_TEST.format(**fields),
        folder / "hidden" / f"test_{aid}_hidden.py": HIDDEN_TEST.format(**fields),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    expected = root / EXPECTED
    with open(expected, "a", encoding="utf-8") as handle:
        handle.write(EXAMPLES.format(**fields))
    written = sorted(p.relative_to(root).as_posix() for p in files)
    return Skeleton((*written, EXPECTED.as_posix()))
