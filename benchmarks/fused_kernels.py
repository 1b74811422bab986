"""How fast hw4's reference fused kernels are, against the GPU's copy bandwidth and PyTorch.

Renders hw4's reference tree (nothing stubbed) into a temporary folder, imports
its `minitorch` (which builds the CUDA library with kernels/fused.cu) and, for
each shape, times each reference kernel through the launchers that
`minitorch.fused_runtime` calls (`fused_runtime.library()`), on float32 inputs
made on the GPU. Prints per kernel and shape:

  ms        the median time of one launch;
  GB/s      bytes that the operation must move (each input read once, each
            output written once: softmax forward 2 N, backward 3 N, LayerNorm
            forward 2 N, backward 3 N, N = the numbers of the input; the small
            per-row and per-column vectors are counted too) divided by that time;
  of copy   that bandwidth as a share of a device-to-device copy of the same N
            numbers (the library's copyOnDevice, reading and writing 2 N), timed
            in the same run: the issue's goal for the reference is >= 75%;
  torch     the same operation in PyTorch for scale (torch.softmax and its
            backward, native_layer_norm and its backward, all float32), and
            reference time / torch time.

Before timing, each kernel is checked against a float64 NumPy model on a small
case ("ok" or "WRONG"). Timing is as in benchmarks/cuda_kernels.py: untimed
warm-up launches, then loops doubled until one lasts --min-time; a figure is the
median of --repeat loops, the GPU synchronized before and after each loop.
Without a CUDA GPU it prints "error: no CUDA GPU: <reason>" and exits 2.

    .venv/bin/python benchmarks/fused_kernels.py [--softmax 8x12x512x512,...]
        [--layernorm 8192x768,...] [--repeat 5] [--min-time 0.05]

The fused against the unfused miniTorch training step is
`benchmarks/transformer_step.py --backends cuda,fused`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cuda_kernels import Bench, NoGpu, gpu_name, load_torch  # noqa: E402

from grader import starter  # noqa: E402
from grader.manifest import Course  # noqa: E402

EPS = 1e-5
#: The issue's goal: the reference's share of the copy bandwidth.
GOAL = 0.75


@dataclass
class Row:
    kernel: str
    shape: str
    seconds: float
    nbytes: int
    copy_seconds: float
    torch_seconds: float | None

    def line(self, copy_bytes: int) -> str:
        rate = self.nbytes / self.seconds / 1e9
        copy_rate = copy_bytes / self.copy_seconds / 1e9
        share = rate / copy_rate
        torch = (
            f"{self.torch_seconds * 1e3:8.3f} ms  ratio {self.seconds / self.torch_seconds:5.2f}x"
            if self.torch_seconds
            else "  not available"
        )
        flag = "" if share >= GOAL else "  (below the 75% goal)"
        return (
            f"  {self.kernel:<20} {self.shape:<16} {self.seconds * 1e3:8.3f} ms"
            f"  {rate:7.0f} GB/s  {100 * share:4.0f}% of copy ({copy_rate:.0f} GB/s)"
            f"  torch {torch}{flag}"
        )


def parse_shapes(text: str, parts: int, what: str) -> list[tuple[int, ...]]:
    shapes = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            shape = tuple(int(n) for n in item.lower().split("x"))
        except ValueError:
            shape = ()
        if len(shape) != parts or min(shape) < 1:
            raise SystemExit(
                f"error: bad {what} shape {item!r}: expected {parts} positive sizes joined by x"
            )
        shapes.append(shape)
    return shapes


# ---------------------------------------------------------------------------
# Correctness on small cases, against float64 NumPy
# ---------------------------------------------------------------------------


def numpy_softmax(x: np.ndarray, causal: bool) -> np.ndarray:
    if causal:
        q, k = x.shape[-2:]
        x = np.where(np.arange(k)[None, :] > np.arange(q)[:, None], -np.inf, x)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def check_kernels(rt: ModuleType, fr: ModuleType) -> dict[str, bool]:
    rng = np.random.default_rng(0)
    results: dict[str, bool] = {}
    b, h, t = 2, 3, 37
    scores = rng.normal(size=(b, h, t, t))
    probs = numpy_softmax(scores, causal=True)
    out = rt.DeviceArray(scores.size)
    fr.attn_softmax_forward(out, rt.DeviceArray.from_numpy(scores), None, b, h, t, t, True)
    results["softmax forward"] = np.allclose(out.to_numpy(), probs.ravel(), atol=1e-5)
    grad = rng.normal(size=probs.shape)
    expected = probs * (grad - (grad * probs).sum(-1, keepdims=True))
    grad_in = rt.DeviceArray(scores.size)
    fr.attn_softmax_backward(
        grad_in, rt.DeviceArray.from_numpy(grad), rt.DeviceArray.from_numpy(probs), b * h * t, t
    )
    results["softmax backward"] = np.allclose(grad_in.to_numpy(), expected.ravel(), atol=1e-5)

    rows, width = 19, 203
    x, gamma, beta = rng.normal(size=(rows, width)), rng.normal(size=width), rng.normal(size=width)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    inv = 1 / np.sqrt(var + EPS)
    xhat = (x - mean) * inv
    arrays = {n: rt.DeviceArray.from_numpy(a) for n, a in (("x", x), ("g", gamma), ("b", beta))}
    y, m, s = rt.DeviceArray(x.size), rt.DeviceArray(rows), rt.DeviceArray(rows)
    fr.layernorm_forward(y, m, s, arrays["x"], arrays["g"], arrays["b"], rows, width, EPS)
    results["layernorm forward"] = np.allclose(
        y.to_numpy(), (xhat * gamma + beta).ravel(), atol=1e-4
    )
    gy = rng.normal(size=x.shape)
    dxhat = gy * gamma
    dx = inv * (
        dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True)
    )
    gx, gg, gb = rt.DeviceArray(x.size), rt.DeviceArray(width), rt.DeviceArray(width)
    fr.layernorm_backward(
        gx, gg, gb, rt.DeviceArray.from_numpy(gy), arrays["x"], arrays["g"], m, s, rows, width
    )
    results["layernorm backward"] = (
        np.allclose(gx.to_numpy(), dx.ravel(), atol=1e-4)
        and np.allclose(gg.to_numpy(), (gy * xhat).sum(0), atol=1e-3)
        and np.allclose(gb.to_numpy(), gy.sum(0), atol=1e-3)
    )
    return results


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def filled(rt: ModuleType, size: int, seed: int) -> Any:
    array = rt.DeviceArray(size)
    array.fill_uniform(seed)
    return array


def torch_time(bench: Bench, work: Callable[[], Any]) -> float | None:
    if bench.torch is None:
        return None
    return bench.per_call(work, bench.event_clock)


def copy_time(bench: Bench, size: int) -> float:
    rt = bench.rt
    src, dst = filled(rt, size, 1), rt.DeviceArray(size)
    lib = rt.library()
    return bench.per_call(lambda: rt.check(lib.copyOnDevice(dst.ptr, src.ptr, 4 * size)))


def softmax_rows(bench: Bench, fr: ModuleType, shape: tuple[int, ...]) -> list[Row]:
    rt, torch, lib = bench.rt, bench.torch, fr.library()
    b, h, q, k = shape
    n = b * h * q * k
    scores, out, grad, grad_in = filled(rt, n, 2), rt.DeviceArray(n), filled(rt, n, 3), None
    grad_in = rt.DeviceArray(n)
    label = "x".join(map(str, shape))
    copy = copy_time(bench, n)

    def forward() -> None:
        rt.check(lib.attnSoftmax(out.ptr, scores.ptr, None, b, h, q, k, 1))

    def backward() -> None:
        rt.check(lib.attnSoftmaxBackward(grad_in.ptr, grad.ptr, out.ptr, b * h * q, k))

    t_fwd = t_bwd = None
    if torch is not None:
        ts = torch.randn(shape, device="cuda")
        mask = torch.ones(q, k, dtype=torch.bool, device="cuda").triu(1)
        ts = ts.masked_fill(mask, float("-inf"))
        tout = torch.softmax(ts, -1)
        tgrad = torch.randn_like(tout)
        t_fwd = torch_time(bench, lambda: torch.softmax(ts, -1))
        t_bwd = torch_time(
            bench, lambda: torch._softmax_backward_data(tgrad, tout, -1, torch.float32)
        )
    return [
        Row("softmax forward", label, bench.per_call(forward), 8 * n, copy, t_fwd),
        Row("softmax backward", label, bench.per_call(backward), 12 * n, copy, t_bwd),
    ]


def layernorm_rows(bench: Bench, fr: ModuleType, shape: tuple[int, ...]) -> list[Row]:
    rt, torch, lib = bench.rt, bench.torch, fr.library()
    rows, width = shape
    n = rows * width
    x, gamma, beta = filled(rt, n, 4), filled(rt, width, 5), filled(rt, width, 6)
    y, mean, inv = rt.DeviceArray(n), rt.DeviceArray(rows), rt.DeviceArray(rows)
    gy, gx = filled(rt, n, 7), rt.DeviceArray(n)
    gg, gb = rt.DeviceArray(width), rt.DeviceArray(width)
    label = f"{rows}x{width}"
    copy = copy_time(bench, n)

    def forward() -> None:
        rt.check(
            lib.layerNorm(y.ptr, mean.ptr, inv.ptr, x.ptr, gamma.ptr, beta.ptr, rows, width, EPS)
        )

    forward()
    rt.synchronize()

    def backward() -> None:
        status = lib.layerNormBackward(
            gx.ptr, gg.ptr, gb.ptr, gy.ptr, x.ptr, gamma.ptr, mean.ptr, inv.ptr, rows, width
        )
        rt.check(status)

    t_fwd = t_bwd = None
    if torch is not None:
        aten = torch.ops.aten
        tx, tw, tb = (torch.randn(s, device="cuda") for s in ((rows, width), (width,), (width,)))
        _, tmean, trstd = aten.native_layer_norm(tx, [width], tw, tb, EPS)
        tgy = torch.randn_like(tx)
        t_fwd = torch_time(bench, lambda: aten.native_layer_norm(tx, [width], tw, tb, EPS))
        t_bwd = torch_time(
            bench,
            lambda: aten.native_layer_norm_backward(
                tgy, tx, [width], tmean, trstd, tw, tb, [True, True, True]
            ),
        )
    vectors = 4 * 2 * rows  # mean and 1/std
    return [
        Row(
            "layernorm forward",
            label,
            bench.per_call(forward),
            8 * n + 8 * width + vectors,
            copy,
            t_fwd,
        ),
        Row(
            "layernorm backward",
            label,
            bench.per_call(backward),
            12 * n + 12 * width + vectors,
            copy,
            t_bwd,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--softmax",
        default="8x12x512x512,2x12x1024x1024,64x12x128x128",
        help="batch x heads x queries x keys, comma-separated",
    )
    parser.add_argument(
        "--layernorm",
        default="8192x768,8192x1024,4096x4096,16384x256",
        help="rows x width, comma-separated",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.05)
    args = parser.parse_args()
    softmax = parse_shapes(args.softmax, 4, "softmax")
    layernorm = parse_shapes(args.layernorm, 2, "layernorm")
    for shape in softmax:
        if shape[3] > 8192:
            raise SystemExit(f"error: softmax rows of {shape[3]} keys: the kernel takes up to 8192")
    try:
        gpu = gpu_name()
    except NoGpu as exc:
        print(f"error: no CUDA GPU: {exc}", file=sys.stderr)
        return 2
    torch, torch_note = load_torch()
    with tempfile.TemporaryDirectory(prefix="llmsys-fused-") as tmp:
        course = Course.load(REPO)
        starter.copy_tree(starter.render_tree(course, course.get("hw4"), stub_tags=()), Path(tmp))
        sys.path.insert(0, tmp)
        from minitorch import cuda_runtime as rt
        from minitorch import fused_runtime as fr

        print(f"GPU: {gpu}; {torch_note}; building hw4's reference kernels ...", flush=True)
        rt.library()
        bench = Bench(rt, args.repeat, args.min_time, torch)
        checks = check_kernels(rt, fr)
        print(
            "correctness (small cases against float64 NumPy): "
            + ", ".join(f"{k} {'ok' if v else 'WRONG'}" for k, v in checks.items())
        )
        print(f"bandwidth (median of {args.repeat} loops of >= {args.min_time * 1e3:.0f} ms):")
        for shape in softmax:
            n = int(np.prod(shape))
            for row in softmax_rows(bench, fr, shape):
                print(row.line(8 * n), flush=True)
        for shape in layernorm:
            n = shape[0] * shape[1]
            for row in layernorm_rows(bench, fr, shape):
                print(row.line(8 * n), flush=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
