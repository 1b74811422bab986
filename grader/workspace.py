"""A submission's workspace on the grading host, and what the harness is told of it.

WORK/student/   the clean starter with the submitted files laid over it
                (readable by the sandboxed worker, bound read-only)
WORK/harness/   mode 0700: tests/, hidden/, reference/, logs/, home/, the
                harness's config.json and its journals; never visible to
                student code
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from grader import intake, starter
from grader.backend import Placement
from grader.context import HIDDEN_TESTS, PUBLIC_TESTS, Context
from grader.records import HARNESS_CONFIG_FORMAT, HarnessConfig

CONFIG = "config.json"


def lay_out(ctx: Context, taken: intake.Intake, work: Path) -> dict[str, bytes]:
    """Make the (empty or absent) folder `work` the submission's workspace; returns
    the student's tree (starter with the submitted files over it)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    os.chmod(work, 0o711)
    own_tree = {**ctx.starter, **taken.files}
    write_student(own_tree, work)
    harness = work / "harness"
    harness.mkdir(mode=0o700)
    files = dict(ctx.public_tests)
    files.update({f"{HIDDEN_TESTS}/{rel}": data for rel, data in ctx.hidden_tests.items()})
    files.update({f"reference/{rel}": data for rel, data in ctx.reference.items()})
    files["pytest.ini"] = b"[pytest]\naddopts = --strict-markers\n"
    starter.write_tree(files, harness)
    (harness / "logs").mkdir()
    (harness / "home").mkdir()
    return own_tree


def write_student(tree: dict[str, bytes], work: Path) -> None:
    """Write `tree` as the workspace's student folder, readable by the sandboxed uid."""
    folder = work / "student"
    starter.write_tree(tree, folder)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def write_config(placement: Placement, threads: int) -> Path:
    """The harness's configuration, as the harness sees its paths; returns that path."""
    ctx, seen = placement.context, placement.seen
    config = HarnessConfig(
        format=HARNESS_CONFIG_FORMAT,
        student_tree=str(seen / "student"),
        reference_tree=str(seen / "harness" / "reference"),
        reference_home=str(seen / "harness" / "home"),
        student_packages=tuple(ctx.student_packages),
        logs=str(seen / "harness" / "logs"),
        test_timeout_s=ctx.assignment.limits.test_timeout_s,
        sandbox=placement.sandbox,
        import_paths=(str(seen / "harness" / PUBLIC_TESTS),),
        timing=ctx.assignment.timing,
        fresh_worker_after=ctx.assignment.fresh_worker_after,
        env={"OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)},
        reference_cgroups=placement.reference_cgroups,
    )
    config.write(placement.work / "harness" / CONFIG)
    return seen / "harness" / CONFIG


def harness_env(placement: Placement) -> dict[str, str]:
    """The harness process's environment (nothing of the grader's own but PATH)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Not CI=1: pytest would then explain a failed comparison by a full, unbounded diff.
        "LLMSYS_GRADING": "1",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(placement.seen / "harness" / "home"),
    }
