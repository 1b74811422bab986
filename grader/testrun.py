"""The one pytest command line of the grader (grading runs, `verify`, tests).

Every run writes the grader's journal (`--llmsys-results`, `grader.plugin`);
a grading run adds the harness (`-p grader.harness --llmsys-harness CONFIG`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def selection(markers: str, gpus: int) -> str:
    """The marker expression of the tests to grade (`markers`, e.g. "timing", narrows
    it). An assignment graded without GPUs does not grade `gpu` tests: they are its
    public self-checks for students who have a GPU (hw3's layers on hw2's CUDA
    backend), never points that a CPU host withholds."""
    if gpus:
        return markers
    return f"({markers}) and not gpu" if markers else "not gpu"


def pytest_command(
    python: str, results: Path, targets: Sequence[str] = (), harness: Path | None = None
) -> list[str]:
    """pytest over `targets` (test folders, files or node ids; none: its own search),
    journal at `results`; with `harness`, graded by the harness configured there."""
    command = [
        python,
        "-m",
        "pytest",
        "-q",
        # Failures are reported by the journal (grader.plugin.format_failure): pytest's
        # own report of each would cost ~60 ms a test.
        "--tb=no",
        # An assertion's explanation is cut at these sizes, and so is the work of
        # building it (pytest diffs only what it will show).
        "-o",
        "truncation_limit_lines=40",
        "-o",
        "truncation_limit_chars=4000",
        "-p",
        "no:cacheprovider",
        "--llmsys-results",
        str(results),
    ]
    if harness is not None:
        command += ["-p", "grader.harness", "--llmsys-harness", str(harness)]
    return [*command, *targets]
