"""The benchmark scripts keep running (their figures are read by people, not asserted)."""

from __future__ import annotations

import json
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


def run_gpu_benchmark(command: list[str], figures: tuple[str, ...]) -> None:
    """On a GPU: exit 0, every figure printed, no kernel WRONG; elsewhere: exit 2
    with the one-line reason on stderr."""
    from grader import gpus

    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if gpus.detect():
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for figure in figures:
            assert figure in proc.stdout
        assert "WRONG" not in proc.stdout
    else:
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip().startswith("error: no CUDA GPU: "), proc.stderr


def test_cuda_benchmark_runs_on_a_gpu_and_says_why_not_elsewhere():
    command = [sys.executable, "benchmarks/cuda_kernels.py", "--sizes", "256", "--repeat", "1"]
    figures = ("ref / torch", "GB/s", "reduce sum, last dim", "map neg")
    run_gpu_benchmark([*command, "--shape", "512x512"], figures)


def test_fused_benchmark_runs_on_a_gpu_and_says_why_not_elsewhere():
    command = [sys.executable, "benchmarks/fused_kernels.py", "--repeat", "1"]
    small = ["--softmax", "2x2x64x64", "--layernorm", "64x100", "--min-time", "0.001"]
    figures = ("softmax forward", "layernorm backward", "% of copy", "GB/s")
    run_gpu_benchmark([*command, *small], figures)
    bad = subprocess.run(
        [*command, "--layernorm", "64"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert (
        bad.stderr.strip()
        == "error: bad layernorm shape '64': expected 2 positive sizes joined by x"
    )


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


def test_parallel_training_benchmark_prints_its_figures(tmp_path):
    """hw5's reference on 2 gloo ranks, tiny sizes: every section's figures, and the
    runs train the same model on the same data (equal losses across the wrappers)."""
    out = tmp_path / "parallel.json"
    sizes = ["--n-embd", "16", "--n-head", "2", "--n-layer", "2", "--seq-len", "8"]
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/parallel_training.py",
            "--backend",
            "gloo",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--batch",
            "4",
            "--vocab",
            "32",
            *sizes,
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in ("speed-up", "BucketedDataParallel", "ratio naive / Pipe", "tok/s"):
        assert figure in proc.stdout
    figures = json.loads(out.read_text())
    runs = figures["runs"]
    assert all(len(runs[name]["times"]) == 3 for name in runs)
    # Rank 0 alone sees half of the global batch; the others see all of it, averaged.
    assert runs["dp"]["loss"] == pytest.approx(runs["bucketed"]["loss"], rel=1e-5)
    assert runs["dp"]["loss"] == pytest.approx(runs["pipeline_pipe"]["loss"], rel=1e-5)
    assert runs["pipeline_naive"]["loss"] == pytest.approx(runs["pipeline_pipe"]["loss"], rel=1e-5)
    dp = figures["data_parallel"]
    assert dp["speedup"] == pytest.approx(dp["parallel_tokens_per_s"] / dp["single_tokens_per_s"])
    assert figures["pipeline"]["micro_batches"] == 4 and figures["pipeline"]["stages"] == [3, 2]


def test_parallel_training_benchmark_refuses_nccl_without_a_gpu_per_rank():
    import torch

    if torch.cuda.device_count() >= 2:
        pytest.skip("this host has the GPUs nccl needs")
    proc = subprocess.run(
        [sys.executable, "benchmarks/parallel_training.py", "--backend", "nccl"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and "--backend gloo" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_transformer_step_benchmark_compares_with_pytorch_on_the_same_model():
    """hw3's reference DecoderLM on the fast backend, tiny: its row and PyTorch's, and
    both start from the same loss (the same parameters, the same batch); without a
    GPU the cuda row says why."""
    tiny = ["--n-embd", "8", "--n-head", "2", "--n-layer", "1", "--batch", "2", "--seq-len", "4"]
    one_step, backends = ["--steps", "1", "--warmup", "1"], ["--backends", "fast,cuda,fused"]
    proc = subprocess.run(
        [sys.executable, "benchmarks/transformer_step.py", *tiny, *one_step, *backends],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fast = next(line for line in proc.stdout.splitlines() if line.startswith("fast "))
    assert "PyTorch eager (cpu)" in fast and "ratio" in fast
    mine, theirs = fast.split("first losses")[1].split("/")
    assert float(mine) == pytest.approx(float(theirs), rel=1e-9)
    cuda = next(line for line in proc.stdout.splitlines() if line.startswith("cuda "))
    import torch

    fused = next(line for line in proc.stdout.splitlines() if line.startswith("fused "))
    if not torch.cuda.is_available():
        assert "not run: needs 1 CUDA GPU" in cuda
        assert "not run: needs 1 CUDA GPU" in fused
    else:
        # The fused kernels start from the same loss as the unfused model.
        assert "first losses" in fused and "launches" in proc.stdout


def test_inference_benchmark_prints_its_figures_and_its_checks_hold(tmp_path):
    """hw6's reference on the CPU, tiny float64 models: every section's figures, and
    the faster ways decode the same tokens as the slow ones (cached == recomputed,
    continuous == static batching per request, speculative at temperature 0 ==
    greedy); without a GPU, --device cuda is refused in one line."""
    out = tmp_path / "inference.json"
    sizes = ["--vocab", "16", "--n-embd", "16", "--n-head", "2", "--n-layer", "2"]
    workload = ["--lengths", "4,12", "--new-tokens", "4", "--requests", "6"]
    workload += ["--max-num-seqs", "2", "--max-prompt", "8", "--max-output", "6"]
    workload += ["--block-size", "4", "--spec-prompts", "2", "--spec-prompt", "4"]
    workload += ["--spec-tokens", "8", "--dtype", "float64"]
    proc = subprocess.run(
        [sys.executable, "benchmarks/inference.py", *sizes, *workload, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in ("cached tok/s", "recompute tok/s", "continuous / static", "tokens/target call"):
        assert figure in proc.stdout
    assert " NO" not in proc.stdout, proc.stdout  # every check printed held
    figures = json.loads(out.read_text())
    rows = figures["kv_cache"]["rows"]
    assert [row["context"] for row in rows] == [4, 12]
    assert all(row["same_tokens"] for row in rows)
    batching = figures["batching"]
    assert batching["same_tokens"]
    continuous, static = batching["continuous"], batching["static"]
    assert continuous["generated_tokens"] == static["generated_tokens"]
    assert continuous["model_steps"] <= static["model_steps"]
    spec = figures["speculative"]
    assert spec["greedy_match"] is True
    assert set(spec["runs"]) == {"0.0", "1.0"}
    total = 2 * 8
    for run in spec["runs"].values():
        # Every step yields its accepted proposals and one target token.
        assert run["accepted"] + run["target_calls"] == total
        assert run["tokens_per_target_call"] == pytest.approx(total / run["target_calls"])
        assert 0 <= run["accepted"] <= run["proposed"]
    import torch

    if not torch.cuda.is_available():
        proc = subprocess.run(
            [sys.executable, "benchmarks/inference.py", "--device", "cuda"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.startswith("error: ") and "--device cpu" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
