"""The CI templates of ci/templates/ (a student repository's public tests, the staff
checks, a grading run): valid GitHub Actions workflows (the workflow schema, and
zizmor's security audits, offline), and every `llmsys` command, file and option
they use exists in this project."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.cli import _parser
from tests.conftest import REPO

TEMPLATES = sorted((REPO / "ci" / "templates").glob("*.yml"))
BIN = Path(sys.executable).parent


def check_schema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
    )


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("zizmor", path=str(BIN)) or shutil.which("zizmor")
    assert found, "zizmor is a dev dependency: pip install -e '.[dev]'"
    return subprocess.run([found, "--offline", *map(str, paths)], capture_output=True, text=True)


def test_the_three_templates_are_there():
    assert [p.name for p in TEMPLATES] == ["grading.yml", "staff.yml", "student.yml"]


def test_templates_are_valid_workflows():
    done = check_schema(*TEMPLATES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_workflow_is_caught(tmp_path: Path):
    """The schema check fails on a job without `runs-on`, and zizmor on an action
    pinned to a tag and on an input expanded into a shell script."""
    text = TEMPLATES[0].read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(re.sub(r"\n    runs-on: .*", "", text))
    assert check_schema(broken).returncode != 0
    unsafe = tmp_path / "unsafe.yml"
    pinned = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"
    expanded = "${{ inputs.assignment }} ${{ inputs.submissions }}"
    unsafe.write_text(
        text.replace(pinned, "actions/checkout@v4").replace(
            '"$ASSIGNMENT" "$SUBMISSIONS"', expanded
        )
    )
    found = zizmor(unsafe)
    assert found.returncode != 0
    assert "unpinned-uses" in found.stdout and "template-injection" in found.stdout


def test_templates_pass_zizmors_audits():
    done = zizmor(*TEMPLATES)
    assert done.returncode == 0, done.stdout + done.stderr


def run_scripts(path: Path) -> list[str]:
    """The `run:` scripts of a workflow's steps, each on one line."""
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load(path.read_text())
    return [
        " ".join(step["run"].split())
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "run" in step
    ]


def test_every_llmsys_command_they_run_exists():
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    used = [
        (path.name, command)
        for path in TEMPLATES
        for script in run_scripts(path)
        for command in re.split(r"\s*(?:\||&&|;)\s*", script)
        if re.search(r"(^|/)llmsys ", command)
    ]
    assert len(used) >= 5, used
    for name, command in used:
        words = command.split("llmsys ", 1)[1].split()
        assert words[0] in commands, (name, command)
        parser = commands[words[0]]
        nested = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if nested:
            assert words[1] in nested[0].choices, (name, command)
            parser = nested[0].choices[words[1]]
        known = {option for action in parser._actions for option in action.option_strings}
        for option in (w for w in words if w.startswith("--")):
            assert option in known, (name, command, option)


@pytest.mark.parametrize("path", ["ci/setup.sh", "ci/docker.sh", "ci/constraints.txt"])
def test_the_files_they_use_exist(path: str):
    assert any(path in t.read_text() for t in TEMPLATES)
    assert (REPO / path).is_file()


def test_the_student_template_fits_every_starter():
    """It installs the starter, runs pytest and `python submit.py`: each starter has
    a pyproject.toml and a submit.py (tests/test_invariants.py installs and runs them)."""
    text = (REPO / "ci" / "templates" / "student.yml").read_text()
    assert "pip install -e ." in text and "pytest" in text and "python submit.py" in text
    starters = [p for p in (REPO / "starter").iterdir() if p.is_dir()]
    assert starters
    for starter in starters:
        assert (starter / "pyproject.toml").is_file() and (starter / "submit.py").is_file()
