"""A Slurm job of the slurm backend (`grader.backends.slurm`): its files, and grading on the node.

The grading host writes a job's folder in the shared work folder (`write`):

    submission/   the submitted files, as taken in (only the manifest's `submit`)
    spec.json     the course checkout, the assignment, the submission's name and
                  missing files, and the folders to hide from student code
    job.sh        what sbatch runs: `python -m grader.backends.slurm_job spec.json`

On the node, `run_job` grades it with the local backend (the same harness and,
as root, the same sandbox as `--backend local`) in a temporary folder of the
node's own, and writes result.json (`grader.results`' JSON, never a pickle)
next to the spec; the host reads it back (`read_result`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from grader import results
from grader.context import Context
from grader.files import write_json_atomic, write_text_atomic
from grader.intake import Intake

SPEC = "spec.json"
SCRIPT = "job.sh"
RESULT = "result.json"


def write(folder: Path, ctx: Context, taken: Intake, python: str, hide: list[str]) -> None:
    """A job's folder, made afresh: the submitted files, its spec and its script."""
    shutil.rmtree(folder, ignore_errors=True)
    files = folder / "submission"
    files.mkdir(parents=True)
    for rel, data in taken.files.items():
        path = files / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    spec = {
        "root": str(ctx.course.root.resolve()),
        "assignment": ctx.assignment.id,
        "name": taken.name,
        "missing": list(taken.missing),
        "hide": hide,
    }
    write_json_atomic(folder / SPEC, spec)
    command = [python, "-m", "grader.backends.slurm_job", str(folder / SPEC)]
    write_text_atomic(folder / SCRIPT, "#!/bin/sh\nexec " + shlex.join(command) + "\n")


def read_result(folder: Path) -> results.SubmissionResult | None:
    """The result a job wrote in `folder`; None when there is none (or it is unreadable)."""
    try:
        return results.from_dict(json.loads((folder / RESULT).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def run_job(spec_path: Path) -> int:
    """Grade the submission a spec names with the local backend, on this node, and
    write its result next to the spec. Slurm's SIGTERM (scancel, the time limit)
    stops the harness and its sandboxed processes; nothing is written then."""
    from grader.backends.local import LocalBackend
    from grader.context import render_context
    from grader.grade import grade_submission
    from grader.manifest import Course

    spec: dict[str, Any] = json.loads(spec_path.read_text(encoding="utf-8"))
    course = Course.load(Path(spec["root"]))
    ctx = render_context(course, course.get(spec["assignment"]))
    folder = spec_path.parent / "submission"
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    taken = Intake(spec["name"], files, tuple(spec["missing"]))
    # With --gres=gpu:N, Slurm lists the job's GPUs in CUDA_VISIBLE_DEVICES.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    gpus = tuple(d for d in visible.split(",") if d) if ctx.assignment.limits.gpus else ()
    backend = LocalBackend(hide=list(spec["hide"]))
    stopped = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopped.set()
        backend.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    work = Path(tempfile.mkdtemp(prefix=f"llmsys-slurm-{ctx.assignment.id}-"))
    try:
        result = grade_submission(ctx, taken, work / "0", backend, gpus=gpus)
    finally:
        backend.close()
        shutil.rmtree(work, ignore_errors=True)
    if stopped.is_set():
        print("stopped by a signal: no result written", file=sys.stderr)
        return 1
    write_json_atomic(spec_path.parent / RESULT, results.to_dict(result))
    print(f"{taken.name}: {result.status} {result.score:g}/{result.max_score:g}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m grader.backends.slurm_job SPEC.json")
    sys.exit(run_job(Path(sys.argv[1])))
