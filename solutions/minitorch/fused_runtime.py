"""The fused kernels of hw4 on GPU arrays: one function per launcher (provided).

The CUDA library of `minitorch.cuda_runtime` holds, from hw4 on, the fused
kernels of `kernels/fused.cu` and their launchers of `kernels/fused_launch.cu`.
The functions below take `DeviceArray`s (contiguous float32 arrays on the
GPU) and sizes, check that every array is large enough (an array too small is a
ValueError, before anything runs on the GPU), launch, and wait for the GPU: a
CUDA error, in the launch or while the kernel ran, is a `CudaError` whose
message starts with the kernel's name.

    attn_softmax_forward     attnSoftmaxWarpKernel (rows of up to 1024 keys) or
                             attnSoftmaxKernel (longer rows)                   (hw4.1)
    attn_softmax_backward    attnSoftmaxBackwardKernel   (hw4.2)
    layernorm_forward        layerNormKernel             (hw4.3)
    layernorm_backward       layerNormBackwardKernel and layerNormParamGradKernel (hw4.4)

Widths of LayerNorm are 1 to LAYERNORM_MAX_WIDTH (8192), rows of the softmax
0 to SOFTMAX_MAX_COLS (8192) keys: a wider row is a ValueError.

`launches()` says how many times each kernel has run in this process (the
launchers count them), so a test can tell work done on the GPU from work done
anywhere else.
"""

from __future__ import annotations

import ctypes

from . import cuda_runtime as rt
from .cuda_runtime import DeviceArray

__all__ = [
    "KINDS",
    "LAYERNORM_BACKWARD_ITEMS_PER_THREAD",
    "LAYERNORM_ITEMS_PER_THREAD",
    "LAYERNORM_MAX_WIDTH",
    "ROW_MIN_THREADS",
    "ROW_THREADS",
    "SOFTMAX_ITEMS_PER_THREAD",
    "SOFTMAX_MAX_COLS",
    "SOFTMAX_WARP_COLS",
    "attn_softmax_backward",
    "attn_softmax_forward",
    "launches",
    "layernorm_backward",
    "layernorm_forward",
    "library",
    "row_threads",
]

#: The kernels `launches()` counts, in the order of fused_launch.cu's fusedLaunchCounts.
KINDS = ("softmax", "softmax_backward", "layernorm", "layernorm_backward", "layernorm_params")
#: The longest row the attention softmax takes (fused.cuh).
SOFTMAX_MAX_COLS = 8192
#: The attention softmax's rows of at most this many keys take a warp each (fused.cuh).
SOFTMAX_WARP_COLS = 1024
#: Most and fewest threads of a row kernel's block (fused.cuh's ROW_THREADS, ROW_MIN_THREADS).
ROW_THREADS = 1024
ROW_MIN_THREADS = 64
#: Items of a row a thread takes before its block gets more threads (fused.cuh).
SOFTMAX_ITEMS_PER_THREAD = 8
LAYERNORM_ITEMS_PER_THREAD = 4
LAYERNORM_BACKWARD_ITEMS_PER_THREAD = 2
#: The widest row LayerNorm takes (fused.cuh).
LAYERNORM_MAX_WIDTH = 8192

_declared: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """The CUDA library with the fused launchers' signatures declared (a launcher
    called on it directly runs asynchronously and returns a CUDA status)."""
    global _declared
    lib = rt.library()
    if _declared is lib:
        return lib
    if not hasattr(lib, "fusedLaunchCounts"):
        raise rt.CudaUnavailable(
            "the CUDA library has no fused kernels: kernels/fused_launch.cu is missing"
        )
    p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    signatures = {
        "attnSoftmax": [p, p, p, i, i, i, i, i],
        "attnSoftmaxBackward": [p, p, p, i, i],
        "layerNorm": [p, p, p, p, p, p, i, i, f],
        "layerNormBackward": [p, p, p, p, p, p, p, p, i, i],
        "fusedLaunchCounts": [ctypes.POINTER(ctypes.c_int64)],
    }
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = ctypes.c_int
    _declared = lib
    return lib


def row_threads(items: int, per_thread: int) -> int:
    """The threads of a row kernel's block for a row of `items` items, as the
    launchers pick them: the smallest power of 2 from ROW_MIN_THREADS to
    ROW_THREADS with at most `per_thread` items a thread (ROW_THREADS for
    longer rows). `per_thread` is SOFTMAX_ITEMS_PER_THREAD for the softmax
    kernels (items = keys) and LAYERNORM_ITEMS_PER_THREAD for LayerNorm's
    (items = width / 4 float4s when 4 divides the width, else width),
    LAYERNORM_BACKWARD_ITEMS_PER_THREAD for its gradient's."""
    threads = ROW_MIN_THREADS
    while threads < ROW_THREADS and threads * per_thread < items:
        threads *= 2
    return threads


def _need(array: DeviceArray, size: int, name: str) -> None:
    if array.size < size:
        raise ValueError(f"{name} holds {array.size} numbers; the kernel needs {size}")


def _run(status: int, kernel: str) -> None:
    """Check a launcher's status, then wait for the kernel and check how it ran."""
    rt.check(status, kernel)
    rt.check(rt.library().deviceSynchronize(), kernel)


def attn_softmax_forward(
    out: DeviceArray,
    scores: DeviceArray,
    key_padding: DeviceArray | None,
    batch: int,
    heads: int,
    queries: int,
    keys: int,
    causal: bool,
) -> None:
    """`out` = the masked softmax over the keys of `scores` (batch, heads, queries, keys).

    `key_padding`: None, or (batch, keys) with a nonzero number at each padding key;
    `causal`: mask key j > query i. A row whose every key is masked becomes zeros."""
    if not 0 <= keys <= SOFTMAX_MAX_COLS:
        raise ValueError(f"rows of {keys} keys; the softmax kernel takes 0 to {SOFTMAX_MAX_COLS}")
    rows = batch * heads * queries
    _need(scores, rows * keys, "scores")
    _need(out, rows * keys, "out")
    if key_padding is not None:
        _need(key_padding, batch * keys, "key_padding")
    status = library().attnSoftmax(
        out.ptr,
        scores.ptr,
        None if key_padding is None else key_padding.ptr,
        batch,
        heads,
        queries,
        keys,
        int(bool(causal)),
    )
    _run(status, "attnSoftmaxWarpKernel" if keys <= SOFTMAX_WARP_COLS else "attnSoftmaxKernel")


def attn_softmax_backward(
    grad_in: DeviceArray, grad_out: DeviceArray, out: DeviceArray, rows: int, cols: int
) -> None:
    """`grad_in` = the softmax's gradient for its input, from `grad_out` (the
    gradient of its output) and `out` (its output), each (rows, cols)."""
    for array, name in ((grad_in, "grad_in"), (grad_out, "grad_out"), (out, "out")):
        _need(array, rows * cols, name)
    status = library().attnSoftmaxBackward(grad_in.ptr, grad_out.ptr, out.ptr, rows, cols)
    _run(status, "attnSoftmaxBackwardKernel")


def _check_width(width: int) -> None:
    if not 0 <= width <= LAYERNORM_MAX_WIDTH:
        raise ValueError(
            f"rows of width {width}; the LayerNorm kernels take 0 to {LAYERNORM_MAX_WIDTH}"
        )


def layernorm_forward(
    out: DeviceArray,
    mean: DeviceArray,
    inv_std: DeviceArray,
    x: DeviceArray,
    gamma: DeviceArray,
    beta: DeviceArray,
    rows: int,
    width: int,
    eps: float,
) -> None:
    """`out` = LayerNorm of `x` (rows, width) with `gamma` and `beta` (width);
    each row's mean and 1 / sqrt(var + eps) into `mean` and `inv_std` (rows)."""
    _check_width(width)
    for array, size, name in (
        (out, rows * width, "out"),
        (x, rows * width, "x"),
        (mean, rows, "mean"),
        (inv_std, rows, "inv_std"),
        (gamma, width, "gamma"),
        (beta, width, "beta"),
    ):
        _need(array, size, name)
    status = library().layerNorm(
        out.ptr, mean.ptr, inv_std.ptr, x.ptr, gamma.ptr, beta.ptr, rows, width, eps
    )
    _run(status, "layerNormKernel")


def layernorm_backward(
    grad_in: DeviceArray,
    grad_gamma: DeviceArray,
    grad_beta: DeviceArray,
    grad_out: DeviceArray,
    x: DeviceArray,
    gamma: DeviceArray,
    mean: DeviceArray,
    inv_std: DeviceArray,
    rows: int,
    width: int,
) -> None:
    """LayerNorm's gradients from `grad_out` (rows, width), the forward's input
    `x`, `gamma` and the saved `mean` and `inv_std`: `grad_in` (rows, width),
    `grad_gamma` and `grad_beta` (width, summed over the rows)."""
    _check_width(width)
    for array, size, name in (
        (grad_in, rows * width, "grad_in"),
        (grad_out, rows * width, "grad_out"),
        (x, rows * width, "x"),
        (mean, rows, "mean"),
        (inv_std, rows, "inv_std"),
        (gamma, width, "gamma"),
        (grad_gamma, width, "grad_gamma"),
        (grad_beta, width, "grad_beta"),
    ):
        _need(array, size, name)
    status = library().layerNormBackward(
        grad_in.ptr,
        grad_gamma.ptr,
        grad_beta.ptr,
        grad_out.ptr,
        x.ptr,
        gamma.ptr,
        mean.ptr,
        inv_std.ptr,
        rows,
        width,
    )
    _run(status, "layerNormBackwardKernel or layerNormParamGradKernel")


def launches() -> dict[str, int]:
    """How many times each fused kernel has run in this process (see `KINDS`)."""
    counts = (ctypes.c_int64 * len(KINDS))()
    rt.check(library().fusedLaunchCounts(counts))
    return {kind: int(count) for kind, count in zip(KINDS, counts, strict=True)}
