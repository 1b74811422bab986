"""Gradescope out: an autograder zip that grades with this project's own harness.

`llmsys gradescope package hwN` writes a zip laid out as Gradescope's "Autograder
Specifications" ask (https://gradescope-autograders.readthedocs.io/en/latest/specs/):

    setup.sh          run once, as root, when Gradescope builds its (Ubuntu) image:
                      python3, and a virtual environment at /opt/llmsys with the grader
                      and the assignment's dependencies, at the course's pinned versions
    run_autograder    run for each submission: `python -m grader.gradescope_package`
    README.md, pyproject.toml, grader/, requirements.txt, constraints.txt
                      what setup.sh installs
    assignment/       the assignment as grading needs it (`grader.context`): manifest.toml,
                      context.json, starter/, reference/, hidden/

Gradescope unpacks the zip into /autograder/source and puts the student's files in
/autograder/submission. `autograde` grades them as `llmsys grade --backend local`
does (`grader.grade.grade_submission`: the submitted files over the starter, public
and hidden tests, the sandbox) and writes /autograder/results/results.json with
`grader.reports.gradescope`.

The sandbox. run_autograder runs as root, so the local backend confines student
code (`grader.sandbox`). A container may refuse part of it: Docker's defaults, for
one, allow no new namespaces. Before grading, a child process tries the whole
confinement, then the one without private mounts and network (a uid of its own,
rlimits, the system-call filter, as in the docker backend's containers); the
result's notices say when less than the whole held. Either way /autograder/source,
with the reference and the hidden tests, is made readable by root only.

Why above 300 lines: the two scripts of the zip are here, beside the code that
writes the rest of the zip and the code that reads it back in Gradescope.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
import zipfile
from pathlib import Path

import grader
from grader import intake, schema
from grader.backend import Placement
from grader.backends.local import LocalBackend, default_sandbox
from grader.context import Context, public_tests, read_files, render_context
from grader.errors import LlmsysError
from grader.grade import grade_submission, take_in
from grader.manifest import Assignment, Course, tomllib
from grader.reports.gradescope import write_gradescope
from grader.results import SubmissionResult
from grader.sandbox import SandboxConfig

#: Where Gradescope puts things (its specification's "File hierarchy").
SOURCE = Path("/autograder/source")
SUBMISSION = Path("/autograder/submission")
RESULTS = Path("/autograder/results/results.json")
#: The virtual environment setup.sh makes: the same place as the grading image's
#: (`grader.backends.image.PYTHON`), so that image can stand in for Gradescope's.
VENV = "/opt/llmsys"
#: The zip's folder with the rendered assignment, and the version of its layout.
CONTEXT = "assignment"
FORMAT = 1
EXECUTABLE = ("setup.sh", "run_autograder")
#: The checkout this grader runs from: its grader/, pyproject.toml, ci/constraints.txt.
TOOLKIT = Path(grader.__file__).resolve().parent.parent
#: A fixed time stamp for every entry: the same sources make the same zip.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)

SETUP_SH = f"""\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
# It installs Python and, in a virtual environment at {VENV}, the grader
# (grader/, pyproject.toml) and what the assignment's code needs (requirements.txt,
# from its manifest), at the versions the course tested (constraints.txt).
set -euo pipefail
cd /autograder/source

apt-get update
apt-get install -y --no-install-recommends python3 python3-venv

# The pinned versions need Python 3.11 or newer: Ubuntu 24.04 has 3.12.
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup.sh: $(python3 --version) is too old (3.11 or newer is needed):" \\
         "choose the Ubuntu 24.04 base image in the autograder's settings" >&2
    exit 1
fi

python3 -m venv {VENV}
# pip takes its package index from its own configuration (PIP_INDEX_URL,
# PIP_EXTRA_INDEX_URL, pip.conf). An assignment that needs PyTorch wants its CPU
# build (Gradescope has no GPU, and the default build brings some 3 GB of CUDA
# libraries): export PIP_EXTRA_INDEX_URL as PyTorch's CPU wheel index on the
# line before the install below.
{VENV}/bin/pip install --no-cache-dir --disable-pip-version-check \\
    -c constraints.txt -r requirements.txt .
"""

RUN_AUTOGRADER = f"""\
#!/usr/bin/env bash
# Gradescope runs this for each submission, as root, in a new container of the
# image that setup.sh made. The grader lays the student's files over the starter,
# runs the public and hidden tests as `llmsys grade` does and writes
# /autograder/results/results.json. What it prints goes to
# /autograder/results/stdout, which only the course staff see.
cd /
exec {VENV}/bin/python -m grader.gradescope_package \\
    {SOURCE} {SUBMISSION} {RESULTS}
"""


# ---------------------------------------------------------------------------
# Writing the zip (on the staff's machine)
# ---------------------------------------------------------------------------


def package(root: Path, assignment_id: str, out: Path | None = None) -> Path:
    """Write the Gradescope autograder zip of one assignment; returns its path
    (default: `hwN-autograder.zip` in the working directory)."""
    course = Course.load(root)
    a = course.get(assignment_id)
    if a.limits.gpus:
        raise LlmsysError(
            f"{a.id} is graded on GPUs (limits.gpus = {a.limits.gpus}), and Gradescope's "
            "autograders have none",
            f"grade it on a GPU server: llmsys grade {a.id} SUBMISSIONS --backend docker "
            "(docs/docker.md)",
        )
    out = out or Path(f"{a.id}-autograder.zip")
    if out.suffix.lower() != ".zip" or out.is_dir():
        raise LlmsysError(f"--out {out}: not a .zip file name", f"e.g. --out {a.id}-autograder.zip")
    if not out.parent.is_dir():
        raise LlmsysError(f"--out {out}: no folder {out.parent}", "create it, or give another path")
    write_zip(package_files(render_context(course, a)), out)
    return out


def package_files(ctx: Context, toolkit: Path = TOOLKIT) -> dict[str, bytes]:
    """Every file of the zip: path in the zip -> content. The grader, its packaging
    and its pinned versions come from `toolkit`, the checkout this grader runs from."""
    a = ctx.assignment
    if not (toolkit / "pyproject.toml").is_file():
        raise LlmsysError(
            f"the grader's sources are not in {toolkit} (an installed copy has no "
            "pyproject.toml to package)",
            "run llmsys from the course repository's checkout (pip install -e .)",
        )
    files = {
        "setup.sh": SETUP_SH.encode(),
        "run_autograder": RUN_AUTOGRADER.encode(),
        "README.md": _readme(a).encode(),
        "pyproject.toml": (toolkit / "pyproject.toml").read_bytes(),
        "constraints.txt": (toolkit / "ci" / "constraints.txt").read_bytes(),
        "requirements.txt": "".join(f"{d}\n" for d in a.dependencies).encode(),
    }
    for path in sorted((toolkit / "grader").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json"):
            files[path.relative_to(toolkit).as_posix()] = path.read_bytes()
    folder = ctx.course.root / "assignments" / a.id
    files[f"{CONTEXT}/manifest.toml"] = (folder / "assignment.toml").read_bytes()
    meta = {"format": FORMAT, "assignment": a.id, "digest": ctx.digest, "ship": list(a.ship)}
    files[f"{CONTEXT}/context.json"] = (json.dumps(meta, indent=2) + "\n").encode()
    for label, tree in (("starter", ctx.starter), ("reference", ctx.reference),
                        ("hidden", ctx.hidden_tests)):  # fmt: skip
        files.update({f"{CONTEXT}/{label}/{rel}": data for rel, data in tree.items()})
    return files


def write_zip(files: dict[str, bytes], out: Path) -> None:
    """Write `files` as a zip at `out` (through a temporary file: never half a zip);
    the scripts executable, as Gradescope runs them."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                mode = 0o755 if name in EXECUTABLE else 0o644
                info.external_attr = (stat.S_IFREG | mode) << 16
                archive.writestr(info, files[name])
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _readme(a: Assignment) -> str:
    return (
        f"# Gradescope autograder of {a.id}: {a.title}\n\n"
        f"Made by `llmsys gradescope package {a.id}` (llmsys {grader.__version__}).\n"
        "Upload it as the autograder of a Gradescope programming assignment whose base\n"
        "image is Ubuntu 24.04 (setup.sh needs Python 3.11 or newer).\n\n"
        f"`{CONTEXT}/` holds the reference solution and the hidden tests: keep this zip\n"
        "among the course staff.\n"
    )


# ---------------------------------------------------------------------------
# Grading (inside Gradescope's container)
# ---------------------------------------------------------------------------


def load_context(source: Path) -> Context:
    """The `Context` that `package_files` wrote under `source` (the unpacked zip)."""
    folder = source / CONTEXT
    meta = json.loads((folder / "context.json").read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{CONTEXT}/context.json has format {meta.get('format')!r}, not {FORMAT}")
    manifest = tomllib.loads((folder / "manifest.toml").read_text(encoding="utf-8"))
    a = dataclasses.replace(schema.load(Assignment, manifest), ship=tuple(meta["ship"]))
    start = read_files(folder / "starter")
    reference, hidden = read_files(folder / "reference"), read_files(folder / "hidden")
    return Context(
        Course(source, (a,)), a, start, reference, public_tests(start), hidden, meta["digest"]
    )


class GradescopeBackend(LocalBackend):
    """The local backend, with the confinement that this container allows (`probe`)."""

    def __init__(self, hide: list[str]) -> None:
        super().__init__(hide)
        self.allowed = LocalBackend.confined()  # root
        self.namespaces = True
        #: For the result's notices: what of the sandbox did not hold, and why.
        self.limitation = ""

    def confined(self) -> bool:  # type: ignore[override]
        return self.allowed

    def probe(self, ctx: Context, work: Path) -> None:
        """Try the sandbox in a child process; keep what of it works here."""
        if not self.allowed:
            return
        config = default_sandbox(ctx, work, self.uid(0), self.hide)
        why = _try_confine(config)
        if not why:
            return
        self.namespaces = False
        lesser = _try_confine(dataclasses.replace(config, namespaces=False))
        if lesser:
            self.allowed = False
            self.limitation = (
                f"this grading container allows no sandbox ({why}; {lesser}): student "
                "code ran unconfined, with the grader's rights"
            )
        else:
            self.limitation = (
                f"this grading container allows no private mounts or network ({why}): "
                "student code ran as a user of its own, with resource limits and a "
                "system-call filter; the course's files are readable by root only"
            )

    def _sandbox(self, ctx: Context, work: Path, slot: int) -> SandboxConfig | None:
        config = super()._sandbox(ctx, work, slot)
        if config is None or self.namespaces:
            return config
        return dataclasses.replace(config, namespaces=False)

    def prepare(self, ctx: Context, work: Path, slot: int, gpus: tuple[str, ...] = ()) -> Placement:
        placement = super().prepare(ctx, work, slot, gpus)
        if placement.sandbox is not None and not self.namespaces:
            described = (
                f"local: uid {placement.sandbox.uid}, rlimits and a system-call filter; "
                "the container's network and file system"
            )
            placement = dataclasses.replace(placement, description=described)
        return placement


#: The child of `_try_confine`: it confines itself as a worker does, then exits.
_PROBE = (
    "import json, sys\n"
    "from grader.sandbox import SandboxConfig, confine\n"
    "data = json.loads(sys.argv[1])\n"
    "confine(SandboxConfig(**{k: tuple(v) if isinstance(v, list) else v "
    "for k, v in data.items()}))\n"
)


def _try_confine(config: SandboxConfig) -> str:
    """'' when a process can confine itself with `config` here, else why not (one line)."""
    command = [sys.executable, "-c", _PROBE, json.dumps(dataclasses.asdict(config))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")
    except subprocess.TimeoutExpired:
        return "the sandbox's check did not end in 60 s"
    if done.returncode == 0:
        return ""
    lines = done.stderr.strip().splitlines()
    if not lines:
        return f"its check exited with status {done.returncode}"
    # "grader.sandbox.SandboxError: [Errno 1] unshare: ..." -> "[Errno 1] unshare: ..."
    name, _, message = lines[-1].partition(": ")
    return message if message and name.replace(".", "").isidentifier() else lines[-1]


def take_submission(ctx: Context, folder: Path, scratch: Path) -> intake.Intake | SubmissionResult:
    """The student's files from Gradescope's submission folder: the folder itself or,
    when it holds none of the files to submit, the one zip in it."""
    taken = take_in(ctx, folder)
    if isinstance(taken, intake.Intake) and not taken.files and folder.is_dir():
        zips = [p for p in folder.iterdir() if p.suffix.lower() == ".zip" and p.is_file()]
        if len(zips) == 1 and not zips[0].is_symlink():
            # Under a name that intake accepts, whatever the student called the zip.
            copy = scratch / f"{taken.name}.zip"
            shutil.copyfile(zips[0], copy)
            return take_in(ctx, copy)
    return taken


def autograde(source: Path, submission: Path, results: Path) -> SubmissionResult:
    """Grade the submission in `submission` with the package unpacked in `source`, as
    `llmsys grade` does on the local backend, and write Gradescope's `results`."""
    ctx = load_context(source)
    # The reference and the hidden tests: root's alone, whatever the sandbox allows.
    os.chmod(source, 0o700)
    scratch = Path(tempfile.mkdtemp(prefix="llmsys-gradescope-"))
    # Traversable: where the sandbox has no private mounts, the student's uid reaches
    # its own tree (WORK/student) through this folder (WORK/harness stays 0700).
    os.chmod(scratch, 0o711)
    backend = GradescopeBackend(hide=[str(source), str(submission), str(results.parent)])
    try:
        backend.probe(ctx, scratch / "work")
        taken = take_submission(ctx, submission, scratch)
        result = grade_submission(ctx, taken, scratch / "work", backend)
    finally:
        backend.close()
        shutil.rmtree(scratch, ignore_errors=True)
    if backend.limitation:
        kept = [n for n in result.notices if not n.startswith("student code ran without a sandbox")]
        result = dataclasses.replace(result, notices=(*kept, backend.limitation))
    write_gradescope(result, results)
    return result


def _broken_package(source: Path, results: Path) -> None:
    """A results.json for a package that cannot grade: a score of 0 that says so."""
    traceback.print_exc()
    result = SubmissionResult(
        assignment="", submission=SUBMISSION.name, key="", grader_version=grader.__version__,
        status="error", score=0.0, max_score=0.0,
        reason=f"the autograder in {source} is broken (its log is in Gradescope's stdout)",
    )  # fmt: skip
    write_gradescope(result, results)


def main(argv: list[str] | None = None) -> int:
    """run_autograder's entry point: SOURCE SUBMISSION RESULTS. What it prints is
    for the course staff (Gradescope's stdout)."""
    args = sys.argv[1:] if argv is None else argv
    source, submission, results = (Path(p) for p in args)
    try:
        result = autograde(source, submission, results)
    except Exception:
        _broken_package(source, results)
        return 1
    score = f"{result.score:g} / {result.max_score:g}"
    print(f"{result.assignment} {result.submission}: {result.status}, {score}; "
          f"sandbox: {result.sandbox or 'none'}")  # fmt: skip
    for line in (result.reason, *result.notices):
        if line:
            print(f"  {line}")
    for test in result.tests:
        if test.status != "passed":
            print(f"  {test.status}: {test.id}\n{test.staff_output[-2000:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
