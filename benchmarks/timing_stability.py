"""How often a timing check penalises code that is exactly as fast as the reference.

Grades the reference (or an example submission, `--variant`) against the reference
`--runs` times, running only the assignment's timing checks (`-m timing`), through
the local backend as a batch would (sandboxed workers when run as root, one GPU
per run on GPU assignments), and prints per check: the time ratios (median, lowest,
highest), how many runs got full credit, and the false-penalty rate (runs of the
reference that lost any timing credit: it should be 0). A naive variant should
instead lose its timing points every time (`--variant naive-matmul`).

`--one-session` runs the checks `--runs` times in one grading session (one harness,
one build of each side's code, workers kept warm) instead of grading afresh each
run; the runs share their workers, so it measures the checks' own noise, not the
start-up's. Each check prints its line, with the tally so far, as the session's
journal records it, so a session cut short still leaves its figures (hw1 on 2 CPU
cores: 7.7 s a run; hw2 on an H200: about 20-25 s a run alone, 45 s with a second
session on the host's other GPU).

`--busy cpu` keeps every core busy with spinning processes while it grades (a
loaded grading host); `--busy gpu` keeps another GPU of the host busy with
matrix products (a neighbour submission), where there is one.

    .venv/bin/python benchmarks/timing_stability.py hw1 --runs 20 [--busy cpu]
    python3 benchmarks/timing_stability.py hw2 --runs 10 --variant naive-matmul
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import examples, gpus, grade, records, sandbox  # noqa: E402
from grader.backends.local import LocalBackend  # noqa: E402
from grader.context import render_context  # noqa: E402
from grader.manifest import Course  # noqa: E402
from grader.starter import write_tree  # noqa: E402

#: Neighbours, each running until its parent (this script) is gone: one core's spin,
#: and matrix products on a GPU.
SPIN = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""
GPU_HOG = """
import os
import torch
parent = os.getppid()
x = torch.randn(8192, 8192, device="cuda")
while os.getppid() == parent:
    x = (x @ x).clamp_(-1, 1)
"""


@contextlib.contextmanager
def busy(kind: str, grading_gpus: tuple[str, ...]) -> Iterator[str]:
    """Neighbours that keep the host busy while the block runs; says what they are."""
    processes: list[subprocess.Popen[bytes]] = []
    what = "none"
    if kind in ("cpu", "both"):
        count = os.cpu_count() or 1
        processes += [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
        what = f"{count} spinning processes (one per core)"
    if kind in ("gpu", "both"):
        others = [d for d in gpus.detect() if d not in grading_gpus]
        if others:
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": others[0]}
            processes.append(subprocess.Popen([sys.executable, "-c", GPU_HOG], env=env))
            what = f"{what}; " if what != "none" else ""
            what += f"matrix products on GPU {others[0]}"
        else:
            print("notice: no other GPU to keep busy; --busy gpu does nothing here")
    try:
        yield what
    finally:
        for process in processes:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", metavar="hwN")
    parser.add_argument("--runs", type=int, default=20, help="gradings of the timing checks")
    parser.add_argument("--variant", help="an example of examples/expected.toml, not the reference")
    parser.add_argument("--busy", choices=["none", "cpu", "gpu", "both"], default="none")
    parser.add_argument(
        "--one-session", action="store_true", help="all runs in one grading session"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="start no run after this long (the summary counts the runs done)",
    )
    args = parser.parse_args(argv)
    course = Course.load(REPO)
    a = course.get(args.assignment)
    ctx = render_context(course, a)
    if not a.timing:
        print(f"error: {a.id} has no timing checks", file=sys.stderr)
        return 2
    devices = tuple(gpus.detect()[: a.limits.gpus])
    if len(devices) < a.limits.gpus:
        print(
            f"error: {a.id} needs {a.limits.gpus} CUDA GPU(s); this host has none", file=sys.stderr
        )
        return 2
    name = args.variant or "reference"
    if args.variant:
        files = examples.example_files(ctx, name, examples.specs(REPO, a.id)[name])
    else:
        files = {rel: ctx.reference[rel] for rel in a.submit}
    backend = LocalBackend()
    ratios: dict[str, list[float]] = {}
    credits: dict[str, list[float]] = {}
    failed: dict[str, int] = {}
    seconds = []
    with (
        tempfile.TemporaryDirectory(prefix="llmsys-timing-") as tmp,
        busy(args.busy, devices) as what,
    ):
        submission = Path(tmp) / name
        write_tree(files, submission)
        print(f"{a.id}: {name} against the reference, {args.runs} run(s) of the timing checks")
        print(f"  sandbox: {'yes' if sandbox.available() else 'no (not root)'}; GPUs: "
              f"{','.join(devices) or 'none'}; neighbours: {what}")  # fmt: skip
        began = time.monotonic()
        if args.one_session:
            journal = Path(tmp) / "work" / "harness" / grade.FIRST_JOURNAL
            seen: list[int] = [0, 0]  # records tallied, of which measured again
            done = threading.Event()

            def tally() -> None:
                """Print and count the journal's records not yet seen."""
                try:
                    runs = records.read_runs(journal)
                except (OSError, ValueError):
                    return  # not written yet
                for record in runs[seen[0] :]:
                    seen[0] += 1
                    check = record.nodeid.rsplit("::", 1)[-1]
                    ratio = record.properties.get("timing_ratio")
                    credit = float(record.properties.get("timing_credit") or 0.0)
                    if record.outcome != "passed" or not isinstance(ratio, (int, float)):
                        failed[check] = failed.get(check, 0) + 1
                        line = f"{check} {record.outcome}"
                    else:
                        ratios.setdefault(check, []).append(float(ratio))
                        credits.setdefault(check, []).append(credit)
                        line = f"{check} {ratio:.3f} ({credit:.2f})"
                    seen[1] += int(record.properties.get("timing_rounds", 1)) > 1
                    lost = sum(c < 1.0 for g in credits.values() for c in g) + sum(failed.values())
                    print(f"  {time.monotonic() - began:6.0f} s: {line}; so far {lost} of "
                          f"{seen[0]} timed checks lost credit", flush=True)  # fmt: skip

            def follow() -> None:
                while not done.wait(2.0):
                    tally()

            follower = threading.Thread(target=follow, daemon=True)
            follower.start()
            try:
                result = grade.grade_submission(
                    ctx, submission, journal.parent.parent, backend, gpus=devices,
                    markers="timing", repeat=args.runs,
                )  # fmt: skip
            finally:
                done.set()
                follower.join()
            if result.status != "graded":
                print(f"  {result.status}: {result.reason}")
                return 1
            tally()
            seconds.append((time.monotonic() - began) / args.runs)
            print(f"  {args.runs} runs in one session; {seen[1]} check(s) measured again")
        for run in range(0 if args.one_session else args.runs):
            if args.seconds is not None and time.monotonic() - began > args.seconds:
                print(f"  stopped after {run} run(s): --seconds {args.seconds:g} reached")
                break
            start = time.monotonic()
            result = grade.grade_submission(
                ctx, submission, Path(tmp) / "work", backend, gpus=devices, markers="timing"
            )
            seconds.append(time.monotonic() - start)
            if result.status != "graded":
                print(f"  run {run + 1}: {result.status}: {result.reason}")
                return 1
            line = []
            for test in result.tests:
                check = test.id.rsplit("::", 1)[-1]
                if test.timing_ratio is None:
                    failed[check] = failed.get(check, 0) + 1
                    line.append(f"{check} {test.status}")
                    continue
                ratios.setdefault(check, []).append(test.timing_ratio)
                credit = test.points / test.max_points if test.max_points else 0.0
                credits.setdefault(check, []).append(credit)
                line.append(f"{check} {test.timing_ratio:.3f} ({credit:.2f})")
            print(f"  run {run + 1:3d} ({seconds[-1]:.0f} s): " + ", ".join(line), flush=True)
    backend.close()
    print()
    print(f"{'check':<24} {'runs':>4} {'median':>7} {'lowest':>7} {'highest':>7} "
          f"{'full':>5} {'penalised':>9} {'failed':>6}")  # fmt: skip
    for check in sorted(set(ratios) | set(failed)):
        got, given = ratios.get(check, []), credits.get(check, [])
        full = sum(c >= 1.0 for c in given)
        print(
            f"{check:<24} {len(got) + failed.get(check, 0):>4} "
            f"{statistics.median(got) if got else float('nan'):>7.3f} "
            f"{min(got, default=float('nan')):>7.3f} {max(got, default=float('nan')):>7.3f} "
            f"{full:>5} {len(given) - full:>9} {failed.get(check, 0):>6}"
        )
    penalised = sum(sum(c < 1.0 for c in given) for given in credits.values())
    total = sum(len(given) for given in credits.values()) + sum(failed.values())
    label = "false-penalty rate" if not args.variant else "penalty rate"
    print(f"{label}: {penalised + sum(failed.values())} of {total} timed checks lost credit")
    print(f"seconds per run: median {statistics.median(seconds):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
