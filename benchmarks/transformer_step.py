"""A training step of hw3's reference DecoderLM in miniTorch against the same model in PyTorch.

Renders hw3's reference tree (nothing stubbed) into a temporary folder and
imports its `minitorch`. For each backend of --backends it builds
`DecoderLM(n_vocab, --n-embd, --n-head, --n-layer, n_positions=--seq-len,
p_dropout=0)` seeded 0, and times one training step on a fixed batch of
--batch sequences of --seq-len random token ids (seeded): the mean of
`softmax_loss` over all positions, `backward`, `AdamW.step`, `zero_grad`.
The same model in PyTorch eager (the functional model of hw3's tests,
`assignments/hw3/tests/torch_models.py`, on a copy of the miniTorch model's
parameters; `torch.optim.AdamW` with the same settings) is timed in the same
run on the matching device and precision: float64 on the CPU for "fast"
(miniTorch's CPU storage is float64), float32 on the GPU for "cuda" (hw2's
kernels compute in float32). Both first check that their losses agree.

Prints per backend: the median seconds per step of each (after --warmup
untimed steps, which include numba's compilation or the CUDA build) and the
ratio miniTorch / PyTorch. For "cuda" also where a step's time goes: kernel
launches per step, and the time spent copying between host and device
(`DeviceArray.from_numpy` and `to_numpy`, measured after a synchronize so
that waiting for kernels is not counted as copying), as a share of the step.
"fused" is "cuda" with hw4's fused attention softmax and LayerNorm kernels
(`use_fused_kernel` on every layer; hw4's reference tree is rendered instead
of hw3's, which holds the same hw3 code): with "cuda,fused" it prints the
fused step against the unfused one side by side.

    .venv/bin/python benchmarks/transformer_step.py [--backends fast,cuda,fused]
        [--batch 32] [--seq-len 32] [--n-embd 64] [--n-head 4] [--n-layer 2]
        [--steps 10] [--warmup 3] [--threads 2]

Without a CUDA GPU the "cuda" row says why and the others still run. The
defaults are the handout's model (n_embd 64, 4 heads, 2 layers, batch 32)
at a sequence length near the corpus' longest batches.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from grader import gpus, starter  # noqa: E402
from grader.manifest import Course  # noqa: E402

VOCAB = 256


def load_torch_models() -> ModuleType:
    """hw3's PyTorch yardstick (`assignments/hw3/tests/torch_models.py`)."""
    path = REPO / "assignments" / "hw3" / "tests" / "torch_models.py"
    spec = importlib.util.spec_from_file_location("hw3_torch_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median_time(step: Callable[[], float], warmup: int, steps: int) -> tuple[float, float]:
    """(median seconds per call after `warmup` untimed calls, the first call's result)."""
    first = step()
    for _ in range(max(0, warmup - 1)):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), first


class CopyClock:
    """Wraps `DeviceArray.from_numpy` / `to_numpy` of a cuda_runtime module and adds
    up the seconds they take, a synchronize first so kernels are not counted."""

    def __init__(self, rt: ModuleType) -> None:
        self.rt = rt
        self.seconds = 0.0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        cls = self.rt.DeviceArray
        original_from, original_to = cls.from_numpy.__func__, cls.to_numpy

        def from_numpy(klass: type, array: np.ndarray) -> Any:
            self.rt.synchronize()
            start = time.perf_counter()
            try:
                return original_from(klass, array)
            finally:
                self.seconds += time.perf_counter() - start

        def to_numpy(array: Any) -> np.ndarray:
            self.rt.synchronize()
            start = time.perf_counter()
            try:
                return original_to(array)
            finally:
                self.seconds += time.perf_counter() - start

        cls.from_numpy, cls.to_numpy = classmethod(from_numpy), to_numpy
        try:
            yield
        finally:
            cls.from_numpy, cls.to_numpy = classmethod(original_from), original_to


def use_fused(module: Any) -> None:
    """Turn on hw4's fused kernels in `module` and every module below it."""
    if hasattr(module, "use_fused_kernel"):
        module.use_fused_kernel = True
    for child in module.modules():
        use_fused(child)


def minitorch_step(
    mt: ModuleType,
    backend: Any,
    args: argparse.Namespace,
    ids: np.ndarray,
    labels: np.ndarray,
    fused: bool = False,
) -> tuple[Any, Callable[[], float]]:
    """(the model, a function doing one training step and returning its loss)."""
    from minitorch.adamw import AdamW
    from minitorch.modules_transfomer import DecoderLM
    from minitorch.nn_functions import softmax_loss

    model = DecoderLM(
        VOCAB, args.n_embd, args.n_head, args.n_layer, args.seq_len, 0.0, backend=backend, rng=0
    )
    if fused:
        use_fused(model)
    optimizer = AdamW(model.parameters(), lr=1e-3)

    def tensor(values: np.ndarray) -> Any:
        return mt.Tensor.make(values.astype(float).ravel().copy(), values.shape, backend=backend)

    x, y = tensor(ids), tensor(labels)

    def step() -> float:
        loss = softmax_loss(model(x), y).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss.item())

    return model, step


def torch_step(
    model: Any, args: argparse.Namespace, ids: np.ndarray, labels: np.ndarray, device: str
) -> Callable[[], float]:
    """One training step of the same model in PyTorch eager, on `device`."""
    import torch
    import torch.nn.functional as F

    tm = load_torch_models()
    dtype = torch.float64 if device == "cpu" else torch.float32
    params = {
        name: torch.tensor(p.value.to_numpy(), dtype=dtype, device=device, requires_grad=True)
        for name, p in model.named_parameters()
    }
    optimizer = torch.optim.AdamW(params.values(), lr=1e-3, weight_decay=1e-2)
    target = torch.as_tensor(labels, dtype=torch.int64, device=device)

    def step() -> float:
        logits = tm.decoder_lm(ids, params, args.n_head, args.n_layer, 1e-5)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        value = float(loss.item())  # waits for the GPU, as miniTorch's loss.item() does
        return value

    return step


def bench(name: str, mt: ModuleType, args: argparse.Namespace) -> list[str]:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(args.batch, args.seq_len))
    labels = rng.integers(0, VOCAB, size=(args.batch, args.seq_len))
    if name == "fast":
        from minitorch.fast_ops import FastTensorBackend as backend

        device = "cpu"
    else:
        reason = gpus.shortfall(1)
        if reason is not None:
            return [f"{name:<6} not run: {reason}"]
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend

        device = "cuda"
    model, step = minitorch_step(mt, backend, args, ids, labels, fused=name == "fused")
    reference = torch_step(model, args, ids, labels, device)
    mine, mine_loss = median_time(step, args.warmup, args.steps)
    theirs, their_loss = median_time(reference, args.warmup, args.steps)
    lines = [
        f"{name:<6} miniTorch {mine:8.4f} s/step   PyTorch eager ({device}) {theirs:8.4f} s/step"
        f"   ratio {mine / theirs:7.1f}x   first losses {mine_loss:.5f} / {their_loss:.5f}"
    ]
    if name != "fast":
        from minitorch import cuda_runtime as rt

        def launches() -> int:
            count = sum(rt.launches().values())
            if name == "fused":
                from minitorch import fused_runtime

                count += sum(fused_runtime.launches().values())
            return count

        clock = CopyClock(rt)
        before = launches()
        with clock.counting():
            rt.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rt.synchronize()
            total = time.perf_counter() - start
        count = launches() - before
        lines.append(
            f"       per step: {count / args.steps:.0f} kernel launches; host<->device copies"
            f" {clock.seconds / args.steps:.4f} s of {total / args.steps:.4f} s"
            f" ({100 * clock.seconds / total:.0f}%)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="fast,cuda")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="numba and torch threads (0: all)")
    args = parser.parse_args()
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    unknown = sorted(set(names) - {"fast", "cuda", "fused"})
    if unknown:
        parser.error(f"unknown backend {unknown[0]!r}: choose from fast, cuda, fused")
    if args.threads:
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="llmsys-bench-") as tmp:
        course = Course.load(REPO)
        assignment = course.get("hw4" if "fused" in names else "hw3")
        starter.copy_tree(starter.render_tree(course, assignment, stub_tags=()), Path(tmp))
        sys.path.insert(0, tmp)
        import minitorch as mt

        print(
            f"DecoderLM(vocab {VOCAB}, n_embd {args.n_embd}, {args.n_head} heads, "
            f"{args.n_layer} layers), batch {args.batch} x {args.seq_len} tokens, "
            f"{args.steps} timed steps after {args.warmup}; threads: "
            f"{args.threads or os.cpu_count()}",
            flush=True,
        )
        for name in names:
            for line in bench(name, mt, args):
                print(line, flush=True)


if __name__ == "__main__":
    main()
