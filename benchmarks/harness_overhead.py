"""How much the grader's harness costs over plain pytest, on hw1's reference.

Prints three figures (median of --repeat runs each):

  plain     `pytest` of hw1's public and hidden tests, probes called in-process
            (how a student runs the public tests in a starter), without the
            timing checks (they need the grader's two sides);
  graded    `grade_submission` of the reference example through the local backend:
            intake, workspace, harness pytest, sandboxed worker processes
            (when run as root), probes sent over pipes, results and scoring;
  ratio     graded / plain.

And the round trip of one probe call to a worker (median over 2000 calls).

    .venv/bin/python benchmarks/harness_overhead.py [--repeat 3] [--tests operators,autodiff]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import grade, sandbox  # noqa: E402
from grader.backends.local import LocalBackend  # noqa: E402
from grader.context import Context, render_context  # noqa: E402
from grader.manifest import Course  # noqa: E402
from grader.starter import write_tree  # noqa: E402
from grader.workers import Worker  # noqa: E402

#: Gives the hidden tests a `reference` fixture in a plain run: the same in-process
#: caller as `student`, since the code under test is the reference itself.
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]

REFERENCE_FIXTURE = """

@pytest.fixture(scope="session")
def reference():
    return InProcess()
"""


def plain_run(ctx: Context, folder: Path) -> float:
    write_tree(ctx.reference, folder)
    for path in (folder / "tests").glob("test_*.py"):  # the ones --tests left out
        if f"tests/{path.name}" not in ctx.public_tests:
            path.unlink()
    # The local conftest moves up a level, so that hidden/ gets its fixtures too.
    local = folder / "tests" / "conftest.py"
    (folder / "conftest.py").write_text(local.read_text() + REFERENCE_FIXTURE)
    local.unlink()
    hidden = folder / "hidden"
    for rel, data in ctx.hidden_tests.items():
        (hidden / rel).parent.mkdir(parents=True, exist_ok=True)
        (hidden / rel).write_bytes(data)
    env = {**os.environ, "CI": "1", "LLMSYS_GRADING": "1", "PYTHONPATH": str(folder / "tests")}
    start = time.perf_counter()
    proc = subprocess.run(
        # Timing checks need the grader's `timing` fixture (two sides to compare).
        [*PYTEST, "-m", "not timing", "tests", "hidden"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"plain pytest of the reference failed:\n{proc.stdout[-3000:]}")
    return elapsed


def graded_run(ctx: Context, work: Path) -> float:
    submission = work.parent / f"{work.name}-submission"
    write_tree({rel: ctx.reference[rel] for rel in ctx.assignment.submit}, submission)
    start = time.perf_counter()
    result = grade.grade_submission(ctx, submission, work, LocalBackend())
    elapsed = time.perf_counter() - start
    failed = [t.id for t in result.tests if t.status != "passed"]
    if result.status != "graded" or failed:
        sys.exit(f"the reference failed {failed[:5]} ({result.status}: {result.reason})")
    return elapsed


def probe_round_trip(ctx: Context, folder: Path, calls: int = 2000) -> float:
    write_tree(ctx.reference, folder)
    worker = Worker(folder, folder / "worker.log", name="reference")
    worker.start()
    try:
        probe = {"path": "minitorch.operators.mul"}
        worker.call(probe, (2.0, 3.0), timeout=30)  # the import
        times = []
        for i in range(calls):
            start = time.perf_counter()
            worker.call(probe, (float(i), 3.0), timeout=30)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--tests",
        default="",
        help="only the test files whose names hold one of these words, e.g. "
        "operators,autodiff (default: every test file of hw1)",
    )
    args = parser.parse_args()
    course = Course.load(REPO)
    ctx = render_context(course, course.get("hw1"))
    if args.tests:
        words = args.tests.split(",")

        def chosen(files: dict[str, bytes]) -> dict[str, bytes]:
            return {
                rel: data
                for rel, data in files.items()
                if not rel.endswith(".py") or "test_" not in rel or any(w in rel for w in words)
            }

        ctx = dataclasses.replace(
            ctx, public_tests=chosen(ctx.public_tests), hidden_tests=chosen(ctx.hidden_tests)
        )
    tests = sum(1 for rel in [*ctx.public_tests, *ctx.hidden_tests] if "test_" in rel)
    print(f"hw1 reference, {tests} test files; sandbox: {'yes' if sandbox.available() else 'no'}")
    plain, graded = [], []
    with tempfile.TemporaryDirectory(prefix="llmsys-bench-") as tmp:
        for i in range(args.repeat):
            plain.append(plain_run(ctx, Path(tmp) / f"plain{i}"))
            graded.append(graded_run(ctx, Path(tmp) / f"graded{i}"))
            print(f"  run {i + 1}: plain {plain[-1]:.2f} s, graded {graded[-1]:.2f} s")
        trip = probe_round_trip(ctx, Path(tmp) / "worker")
        shutil.rmtree(tmp, ignore_errors=True)
    p, g = statistics.median(plain), statistics.median(graded)
    print(f"plain pytest (in-process probes): {p:.2f} s")
    print(f"graded (harness + workers):       {g:.2f} s")
    print(f"harness overhead ratio:           {g / p:.2f}x")
    print(f"probe round trip to a worker:     {trip * 1e6:.0f} us (median of 2000)")


if __name__ == "__main__":
    main()
