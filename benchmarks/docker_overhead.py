"""What a container per submission costs, on hw1 submissions.

Prints:

  container start   create + start + wait + remove of a container of the grading
                    image that runs `true` (median of --repeat), with every option
                    a grading container gets;
  per submission    the same submissions graded with the local backend and with the
                    docker backend, one at a time: seconds per submission on each,
                    the difference, and docker / local;
  throughput        submissions per minute with the docker backend at --jobs 1
                    and 2.

The submissions are --copies copies of one hw1 example (default: the starter,
which runs every test of hw1 in about 10 s; `--example reference` for a full one).
Needs the Docker engine and the image (ci/docker.sh).

    .venv/bin/python benchmarks/docker_overhead.py [--copies 4] [--example starter]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import examples  # noqa: E402
from grader.backends import image  # noqa: E402
from grader.backends.docker import DockerBackend  # noqa: E402
from grader.backends.local import LocalBackend  # noqa: E402
from grader.batch import grade_batch  # noqa: E402
from grader.context import Context, render_context  # noqa: E402
from grader.manifest import Course  # noqa: E402
from grader.starter import write_tree  # noqa: E402


def container_start(backend: DockerBackend, ctx: Context, repeat: int) -> float:
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "student").mkdir()
        (work / "harness").mkdir()
        placement = backend.prepare(ctx, work, 0)
        for _ in range(repeat):
            run = backend.run_harness(placement, ["true"], {}, 60)
            assert run.returncode == 0, run.log
            times.append(run.duration_s)
    return statistics.median(times)


def batch_time(ctx: Context, folder: Path, backend: object, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        batch = grade_batch(ctx, sorted(folder.iterdir()), Path(out), backend, jobs=jobs)
        elapsed = time.perf_counter() - start
    bad = [r.submission for r in batch.results if r.status != "graded"]
    assert not bad, f"not graded: {bad}"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--example", default="starter", help="an example of hw1 (default starter)")
    parser.add_argument("--repeat", type=int, default=5, help="container starts to time")
    args = parser.parse_args()
    course = Course.load(REPO)
    ctx = render_context(course, course.get("hw1"))
    spec = examples.specs(REPO, "hw1")[args.example]
    files = examples.example_files(ctx, args.example, spec)
    docker = DockerBackend(image.tag(REPO))
    scratch = Path(tempfile.mkdtemp(prefix="llmsys-bench-"))
    try:
        for n in range(args.copies):
            write_tree(files, scratch / f"{args.example}-{n}")
        start = container_start(docker, ctx, args.repeat)
        print(f"container start      {start:.2f} s (median of {args.repeat})")
        local = batch_time(ctx, scratch, LocalBackend(), 1) / args.copies
        elapsed = {1: batch_time(ctx, scratch, docker, 1)}
        in_docker = elapsed[1] / args.copies
        print(
            f"per submission       local {local:.1f} s, docker {in_docker:.1f} s: "
            f"{in_docker - local:+.1f} s, ratio {in_docker / local:.2f} "
            f"({args.copies} x {args.example}, jobs 1)"
        )
        elapsed[2] = batch_time(ctx, scratch, docker, 2)
        for jobs in (1, 2):
            print(
                f"throughput jobs {jobs}     {60 * args.copies / elapsed[jobs]:.1f} "
                f"submissions/min ({args.copies} in {elapsed[jobs]:.1f} s)"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
