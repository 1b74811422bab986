"""`llmsys gradescope package`: the autograder zip's layout, that nothing of the
reference or the hidden tests lies where student code or the starter could see it,
and `run_autograder` grading the miniature course as `llmsys grade` does: on this
host, and in a container laid out as Gradescope's."""

from __future__ import annotations

import io
import json
import shutil
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from grader import gradescope_package as gs
from grader.backends.local import LocalBackend
from grader.cli import main
from grader.context import Context, render_context
from grader.grade import grade_submission
from grader.manifest import Course
from grader.reports.gradescope import to_gradescope
from tests.conftest import GOOD_OPS, hidden_snippets, submission
from tests.test_grade import BUGGY_MUL

#: The solution of the mini course's hw1.2, which only the reference holds.
SOLUTION_LINE = "result = x * y"


def context(course: Path) -> Context:
    loaded = Course.load(course)
    return render_context(loaded, loaded.get("hw1"))


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack as Gradescope does, modes included (zipfile alone drops them)."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            path = Path(z.extract(info, dest))
            path.chmod(info.external_attr >> 16 & 0o777)
    return dest


def prying_ops(paths: list[str]) -> str:
    """A correct submission, except that mul returns 0 if it can open any of `paths`."""
    return GOOD_OPS.replace(
        "    return x * y\n",
        f"    for path in {paths!r}:\n"
        "        try:\n"
        "            with open(path, 'rb') as f:\n"
        "                f.read(1)\n"
        "            return 0\n"
        "        except OSError:\n"
        "            pass\n"
        "    return x * y\n",
    )


def secrets(source: str) -> list[str]:
    """Files of the unpacked package that student code must not read."""
    folder = f"{source}/{gs.CONTEXT}"
    return [
        f"{folder}/hidden/test_hidden.py",
        f"{folder}/reference/mini/ops.py",
        f"{folder}/manifest.toml",
        f"{source}/setup.sh",
    ]


def zipped_in_folder(folder: Path, name: str, ops: str) -> Path:
    """Gradescope's submission folder holding one zip (with a name intake would refuse)."""
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / name, "w") as z:
        z.writestr("hw1/mini/ops.py", ops)
    return folder


@pytest.fixture
def package(graded_course: Path, tmp_path: Path) -> Path:
    return gs.package(graded_course, "hw1", tmp_path / "hw1-autograder.zip")


# ---------------------------------------------------------------------------
# The zip
# ---------------------------------------------------------------------------


def test_the_zip_is_laid_out_as_gradescope_asks(graded_course: Path, package: Path):
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        read = {name: z.read(name) for name in names}
    for script in gs.EXECUTABLE:
        assert stat.S_ISREG(modes[script]) and modes[script] & 0o777 == 0o755, script
        assert read[script].startswith(b"#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n"], input=read[script], check=True)  # valid bash
    setup = read["setup.sh"].decode()
    assert "apt-get install -y --no-install-recommends python3 python3-venv" in setup
    # The grader itself (`.`: pyproject.toml, with the entry point of its pytest plugin)
    # and the manifest's dependencies, into the virtual environment run_autograder uses.
    assert f"python3 -m venv {gs.VENV}" in setup
    assert "-c constraints.txt -r requirements.txt ." in setup
    assert read["requirements.txt"] == b"pytest>=8\n"  # the mini course's dependencies
    run = read["run_autograder"].decode()
    assert (
        f"{gs.VENV}/bin/python -m grader.gradescope_package" in run
        and "/autograder/results/results.json" in run
    )
    assert {"pyproject.toml", "README.md", "constraints.txt", "grader/gradescope_package.py",
            "grader/harness.py", "grader/reports/gradescope_schema.json"} <= names  # fmt: skip
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    ctx = context(graded_course)
    for label, tree in (("starter", ctx.starter), ("reference", ctx.reference),
                        ("hidden", ctx.hidden_tests)):  # fmt: skip
        prefix = f"{gs.CONTEXT}/{label}/"
        assert {n[len(prefix) :]: read[n] for n in names if n.startswith(prefix)} == tree
    # The same sources make the same zip, byte for byte.
    again = gs.package(graded_course, "hw1", package.with_name("again.zip"))
    assert again.read_bytes() == package.read_bytes()


def test_the_reference_and_hidden_tests_are_only_in_their_folders(
    graded_course: Path, package: Path
):
    ctx = context(graded_course)
    private = (f"{gs.CONTEXT}/reference/", f"{gs.CONTEXT}/hidden/", f"{gs.CONTEXT}/manifest.toml")
    hidden = hidden_snippets(ctx, "")
    assert hidden and SOLUTION_LINE in ctx.reference["mini/ops.py"].decode()
    with zipfile.ZipFile(package) as z:
        names = z.namelist()
        elsewhere = {n: z.read(n).decode() for n in names if not n.startswith(private)}
    assert not any(n.startswith(("solutions/", "kernels/", "assignments/")) for n in names)
    for name, text in elsewhere.items():
        assert SOLUTION_LINE not in text, name
        assert not [line for line in hidden if line in text], name
    # What the student's code is laid over: the starter, stubbed.
    starter_ops = elsewhere[f"{gs.CONTEXT}/starter/mini/ops.py"]
    assert 'raise NotImplementedError("hw1.2: Mul")' in starter_ops
    assert not any(n.startswith(f"{gs.CONTEXT}/starter/hidden") for n in names)


def test_the_package_reads_back_as_the_context_it_was_made_from(
    graded_course: Path, package: Path, tmp_path: Path
):
    ctx = context(graded_course)
    loaded = gs.load_context(unpack(package, tmp_path / "source"))
    assert loaded.assignment == ctx.assignment
    assert loaded.course.root == tmp_path / "source"  # hidden from student code
    for field in ("starter", "reference", "public_tests", "hidden_tests", "digest"):
        assert getattr(loaded, field) == getattr(ctx, field), field
    assert loaded.student_packages == ctx.student_packages == ["mini"]


def test_the_command_writes_the_zip_and_refuses_bad_input(
    graded_course: Path, tmp_path: Path, capsys
):
    out = tmp_path / "gs.zip"
    assert (
        main(["--root", str(graded_course), "gradescope", "package", "hw1", "--out", str(out)]) == 0
    )
    assert zipfile.is_zipfile(out) and "wrote" in capsys.readouterr().out
    manifest = graded_course / "assignments/hw2/assignment.toml"
    manifest.write_text(manifest.read_text() + "[limits]\ngpus = 1\n")
    for argv, message in (
        (["hw1", "--out", str(tmp_path / "gs.tar")], "not a .zip file name"),
        (["hw1", "--out", str(tmp_path / "none/gs.zip")], "no folder"),
        (["hw2", "--out", str(out)], "graded on GPUs"),
        (["hw9"], "unknown assignment"),
    ):
        code = main(["--root", str(graded_course), "gradescope", "package", *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
        assert err.count("error:") == 1


# ---------------------------------------------------------------------------
# Grading inside the package
# ---------------------------------------------------------------------------


def test_autograde_grades_as_llmsys_grade_and_hides_the_package(
    graded_course: Path, package: Path, tmp_path: Path
):
    source = unpack(package, tmp_path / "autograder/source")
    ops = prying_ops(secrets(str(source)))
    folder = zipped_in_folder(tmp_path / "autograder/submission", "my hw1 (final).zip", ops)
    results = tmp_path / "autograder/results/results.json"
    assert gs.main([str(source), str(folder), str(results)]) == 0
    written = json.loads(results.read_text())
    local = grade_submission(
        context(graded_course), submission(tmp_path / "subs", "submission", ops),
        tmp_path / "work", LocalBackend(),
    )  # fmt: skip
    assert local.score == 10.0  # no file of the package was readable
    assert written["score"] == local.score
    assert written["tests"] == to_gradescope(local)["tests"]
    assert written["extra_data"]["key"] == local.key  # the same files, the same grading
    assert stat.S_IMODE(source.stat().st_mode) == 0o700
    assert "ran without a sandbox" not in written["output"]  # root here: the full sandbox


def test_a_container_without_namespaces_gets_the_lesser_sandbox_and_a_notice(
    graded_course: Path, monkeypatch, tmp_path: Path
):
    tried = []

    def refuse_namespaces(config):
        tried.append(config.namespaces)
        return "unshare: Operation not permitted" if config.namespaces else ""

    monkeypatch.setattr(gs, "_try_confine", refuse_namespaces)
    monkeypatch.setattr(gs.LocalBackend, "confined", staticmethod(lambda: True))
    ctx = context(graded_course)
    backend = gs.GradescopeBackend(hide=[])
    backend.probe(ctx, tmp_path / "work")
    assert tried == [True, False]
    assert "no private mounts or network (unshare: Operation not permitted)" in backend.limitation
    (tmp_path / "work/harness").mkdir(parents=True)
    placement = backend.prepare(ctx, tmp_path / "work", 0)
    assert placement.sandbox is not None and placement.sandbox.namespaces is False
    assert "system-call filter" in placement.description
    backend.close()


def test_a_broken_package_still_writes_a_result(tmp_path: Path, capsys):
    results = tmp_path / "results/results.json"
    assert gs.main([str(tmp_path / "nothing"), str(tmp_path), str(results)]) == 1
    written = json.loads(results.read_text())
    assert written["score"] == 0 and "could not be graded" in written["output"]
    assert "Traceback" in capsys.readouterr().err  # for the staff, in Gradescope's stdout


# ---------------------------------------------------------------------------
# run_autograder in a container laid out as Gradescope's
# ---------------------------------------------------------------------------

#: Gradescope's steps: the zip unpacked into /autograder/source (modes kept) and, as
#: setup.sh does, the grader of the zip installed into the virtual environment at
#: /opt/llmsys; the grading image stands in for the image setup.sh makes (its
#: environment is at the same place, with the grader's dependencies and pytest, the
#: mini course's only one), so only that install runs here, offline. Then, for each
#: submission: its files in /autograder/submission, run_autograder copied to
#: /autograder and run there as root; its results kept in /graded/NAME/.
GRADESCOPE = r"""
set -e
python3 -c '
import os, zipfile
with zipfile.ZipFile("/io/autograder.zip") as z:
    for info in z.infolist():
        os.chmod(z.extract(info, "/autograder/source"), info.external_attr >> 16 & 0o777)
'
cd /autograder/source
/opt/llmsys/bin/python -m pip install --quiet --disable-pip-version-check --no-index \
    --no-deps --no-build-isolation .
cp /autograder/source/run_autograder /autograder/run_autograder
for each in /io/submissions/*; do
    rm -rf /autograder/submission /autograder/results
    mkdir -p /autograder/submission /autograder/results /graded
    cp -r "$each/." /autograder/submission/
    cd /autograder
    ./run_autograder > /autograder/results/stdout 2>&1
    cp -r /autograder/results "/graded/$(basename "$each")"
done
"""


def run_in_container(docker_backend, package: Path, folders: dict[str, Path]) -> dict:
    """{name: (results.json, stdout)} of each submission folder, graded as Gradescope does."""
    io_folder = package.parent / "io"
    (io_folder / "submissions").mkdir(parents=True)
    (io_folder / "autograder.zip").write_bytes(package.read_bytes())
    for name, folder in folders.items():
        shutil.copytree(folder, io_folder / "submissions" / name)
    container = docker_backend.client.containers.create(
        docker_backend.image,
        ["bash", "-c", GRADESCOPE],
        network_mode="none",
        volumes={str(io_folder): {"bind": "/io", "mode": "ro"}},
        user="root",
    )
    try:
        container.start()
        status = container.wait(timeout=120)["StatusCode"]
        assert status == 0, container.logs().decode()
        graded = {}
        for name in folders:
            stdout = _read(container, f"/graded/{name}/stdout")
            graded[name] = (json.loads(_read(container, f"/graded/{name}/results.json")), stdout)
        return graded
    finally:
        container.remove(force=True)


def _read(container, path: str) -> str:
    chunks, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        return tar.extractfile(tar.next()).read().decode()


def test_run_autograder_in_a_container_laid_out_as_gradescopes(
    graded_course: Path, package: Path, tmp_path: Path, docker_backend
):
    buggy = submission(tmp_path / "buggy", "submission", BUGGY_MUL)
    # A zip in the submission folder; its code tries to read the package's files.
    prying = zipped_in_folder(
        tmp_path / "prying" / "submission",
        "hw1 final.zip",
        prying_ops(secrets("/autograder/source")),
    )
    graded = run_in_container(docker_backend, package, {"buggy": buggy, "prying": prying})
    local = grade_submission(context(graded_course), buggy, tmp_path / "work", LocalBackend())
    assert local.score == 7.0
    written, stdout = graded["buggy"]
    assert written["score"] == local.score, stdout
    assert written["tests"] == to_gradescope(local)["tests"]
    assert written["extra_data"]["key"] == local.key
    # Docker, like Gradescope, allows no new namespaces: the lesser sandbox, said so.
    assert "no private mounts or network" in written["output"], stdout
    assert "sandbox: local: uid" in stdout and "system-call filter" in stdout

    written, stdout = graded["prying"]
    assert written["score"] == 10.0, stdout  # it read none of the package's files
    assert all(t["status"] == "passed" for t in written["tests"]), stdout
