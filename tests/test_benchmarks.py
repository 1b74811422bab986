"""The benchmark scripts keep running (their figures are read by people, not asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_harness_overhead_benchmark_prints_its_figures():
    proc = subprocess.run(
        # The figures of the README come from a full run; this checks that it runs.
        [
            sys.executable,
            "benchmarks/harness_overhead.py",
            "--repeat",
            "1",
            "--tests",
            "operators,autodiff",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in ("plain pytest", "graded (harness + workers)", "overhead ratio", "round trip"):
        assert figure in proc.stdout


def test_docker_overhead_benchmark_prints_its_figures(docker_backend):
    proc = subprocess.run(
        [sys.executable, "benchmarks/docker_overhead.py", "--copies", "1", "--repeat", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in ("container start", "per submission", "throughput jobs 1", "throughput jobs 2"):
        assert figure in proc.stdout


def test_cuda_benchmark_runs_on_a_gpu_and_says_why_not_elsewhere():
    from grader import gpus

    command = [sys.executable, "benchmarks/cuda_kernels.py", "--sizes", "256", "--repeat", "1"]
    proc = subprocess.run(
        [*command, "--shape", "512x512"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    if gpus.detect():
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for figure in ("ref / torch", "GB/s", "reduce sum, last dim", "map neg"):
            assert figure in proc.stdout
        assert "WRONG" not in proc.stdout
    else:
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip().startswith("error: no CUDA GPU: "), proc.stderr


@pytest.mark.parametrize("mode", [("--runs", "1"), ("--runs", "2", "--one-session")])
def test_timing_stability_benchmark_prints_its_figures(mode: tuple[str, ...]):
    """hw1's timing checks on the reference, graded afresh or twice in one session
    (the README's figures come from many runs, with and without a busy host)."""
    proc = subprocess.run(
        [sys.executable, "benchmarks/timing_stability.py", "hw1", *mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in ("test_matmul_speed", "test_reduce_speed", "false-penalty rate", "median"):
        assert figure in proc.stdout
    runs = mode[1]
    assert f"test_matmul_speed {runs:>11}" in proc.stdout, proc.stdout  # every run counted
