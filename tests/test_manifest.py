"""The manifest schema: strict loading, errors that name the file and the key."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from grader import schema
from grader.errors import ManifestError
from grader.manifest import Assignment, Course, load_assignment, starter_path
from tests.conftest import REPO


def edit(course: Path, old: str, new: str, aid: str = "hw1") -> None:
    path = course / f"assignments/{aid}/assignment.toml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def error_of(course: Path) -> str:
    with pytest.raises(ManifestError) as info:
        Course.load(course)
    return info.value.message


def test_course_loads_in_order(course: Path):
    loaded = Course.load(course)
    assert [a.id for a in loaded.assignments] == ["hw1", "hw2"]
    hw1 = loaded.get("hw1")
    assert hw1.points == 10
    assert hw1.due == dt.datetime(2027, 1, 1, 23, 59, tzinfo=dt.timezone.utc)
    assert hw1.limits.memory_mb == 4096  # default
    assert set(loaded.tag_owners) == {"hw1.1", "hw1.2", "hw2.1"}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "points = 4",
            "pionts = 4",
            "assignments/hw1/assignment.toml: tasks[0].pionts: "
            "unknown key (known: id, title, points, tags, gpu, files)",
        ),
        (
            'title = "Add"\n',
            "",
            "assignments/hw1/assignment.toml: tasks[0].title: required key is missing",
        ),
        ("points = 6", 'points = "six"', "tasks[1].points: expected integer, got str 'six'"),
        ("points = 6", "points = true", "tasks[1].points: expected an integer, got a boolean"),
        (
            "due = 2027-01-01T23:59:00Z",
            "due = 2027-01-01T23:59:00",
            "due: a date-time needs a UTC offset",
        ),
        ('id = "hw1.2"', 'id = "hw2.2"', "tasks[1].id: 'hw2.2' must start with 'hw1.'"),
        ('id = "hw1.2"', 'id = "hw1.1"', "tasks[1].id: duplicate task id 'hw1.1'"),
        ("points = 6", "points = 0", "tasks[1].points: must be positive"),
        (
            'submit = ["mini/ops.py"]',
            'submit = ["mini/nope.py"]',
            "submit[0]: 'mini/nope.py' is not a file of the starter",
        ),
        (
            'ship = ["solutions/mini"]',
            'ship = ["solutions/missing"]',
            "ship[0]: 'solutions/missing' does not exist",
        ),
        (
            'ship = ["solutions/mini"]',
            'ship = ["solutions/../secret"]',
            "ship[0]: 'solutions/../secret' must lie under",
        ),
        ('id = "hw1"', 'id = "hw7"', "id: 'hw7' differs from the folder name 'hw1'"),
        ("due =", 'earlier = "maybe"\ndue =', "earlier: must be one of 'solution', 'stub'"),
        ("due =", "late = 3\ndue =", "late: expected a table, got int 3"),
        ("due =", "[oops\ndue =", "invalid TOML"),
    ],
)
def test_bad_manifests_name_the_file_and_key(course: Path, old: str, new: str, expected: str):
    edit(course, old, new)
    assert expected in error_of(course)


def test_tags_must_be_unique_across_the_course(course: Path):
    edit(course, 'id = "hw2.1"', 'id = "hw2.1"\ntags = ["hw1.1"]', aid="hw2")
    assert "tag 'hw1.1' of hw2.1 is already used by hw1.1" in error_of(course)


def test_missing_handout_is_reported(course: Path):
    (course / "assignments/hw2/README.md").unlink()
    assert "assignments/hw2/README.md is missing" in error_of(course)


def test_every_field_is_documented():
    rows = schema.describe(Assignment)
    keys = {key for key, _, _ in rows}
    assert {"id", "tasks[].points", "limits.memory_mb", "timing[].full_credit_ratio"} <= keys
    undocumented = [key for key, _, text in rows if not text.strip()]
    assert undocumented == []


def test_schema_rejects_unknown_nested_types():
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: float = schema.doc("x")

    assert schema.load(Point, {"x": 1}) == Point(1.0)
    with pytest.raises(schema.SchemaError, match=r"^x: expected a number"):
        schema.load(Point, {"x": "1"})


def test_starter_paths():
    assert starter_path("solutions/minitorch/operators.py") == "minitorch/operators.py"
    assert starter_path("assignments/common/tests/conftest.py") == "tests/conftest.py"
    assert starter_path("kernels/combine.cu") == "kernels/combine.cu"


def test_the_real_course_loads():
    loaded = Course.load(REPO)
    assert loaded.assignments, "no assignment found under assignments/"
    for a in loaded.assignments:
        assert load_assignment(REPO / f"assignments/{a.id}/assignment.toml", REPO) == a


def test_manifest_reference_page_is_in_sync():
    from grader.cli import schema_markdown

    page = (REPO / "docs" / "manifest.md").read_text()
    assert page == schema_markdown(), "run: llmsys validate --schema > docs/manifest.md"


def test_extends_ships_the_earlier_assignments_files_first(course: Path):
    path = course / "assignments/hw2/assignment.toml"
    path.write_text(
        path.read_text().replace(
            'ship = ["solutions/mini", "kernels/neg.cu"]',
            'extends = "hw1"\nship = ["kernels/neg.cu"]',
        )
    )
    hw2 = Course.load(course).get("hw2")
    assert hw2.ship == ("solutions/mini", "kernels/neg.cu")
    path.write_text(path.read_text().replace('extends = "hw1"', 'extends = "hw2"'))
    with pytest.raises(ManifestError, match="extends: 'hw2' is not an earlier assignment"):
        Course.load(course)
