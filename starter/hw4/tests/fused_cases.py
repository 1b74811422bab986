"""Helpers of the hw4 tests: float64 NumPy models of the kernels, and the probes
that run them.

The models (`softmax_model`, `softmax_backward_model`, `layernorm_model`,
`layernorm_backward_model`) are the answer key: they compute in float64, from
inputs first rounded to float32 (`f32`), so the only difference from a correct
kernel is the kernel's own float32 arithmetic. A result passes when
|got - expected| <= atol + rtol * |expected| everywhere (`check`).

The probes run in your process (the grader's sandboxed worker when graded):
`probe_kernel` copies the inputs to the GPU, runs one launcher of
`minitorch.fused_runtime`, and copies the outputs back. Each output is filled
with NaN before the launch and followed by 64 guard NaNs, so the tests can tell

- a kernel that wrote nothing (the starter's stubs): NotImplementedError
  naming the task;
- a kernel that wrote past the end of an output: AssertionError.

It also checks that the launcher counted a launch of the kernel (the GPU ran it).
"""

from __future__ import annotations

import numpy as np

#: Tolerances of the kernel tests, |got - expected| <= atol + rtol * |expected|,
#: calibrated on the reference (float32 kernels against float64 models).
SOFTMAX_TOL = {"rtol": 1e-5, "atol": 1e-6}
SOFTMAX_BACKWARD_TOL = {"rtol": 1e-4, "atol": 1e-6}
LAYERNORM_TOL = {"rtol": 1e-4, "atol": 1e-5}

#: The softmax forward's launch shapes for a row of n keys (fused_launch.cu): up to
#: 1024 keys (SOFTMAX_WARP_COLS) a warp per row, in a kernel holding 1, 2, 4, 8, 16
#: or 32 keys a lane (the fewest that hold the row), then one block per row of 256,
#: 512 or 1024 threads (as BLOCK_SIZES). The tests of "every launch shape" take the
#: shortest and the longest row of each.
SOFTMAX_SHAPES = {
    "warp1": (1, 32),
    "warp2": (33, 64),
    "warp4-8": (65, 128, 129, 256),
    "warp16-32": (257, 512, 513, 1024),
    "256": (1025, 2048),
    "512": (2049, 4096),
    "1024": (4097, 8192),
}

#: The softmax gradient's blocks for a row of n keys (fused_launch.cu): 64 threads
#: with one key a thread or fewer, with up to 4 and with up to 8 keys a thread, then
#: 128, 256, 512 and 1024 threads with up to 8 keys a thread (8192 keys, the most a
#: row may have, are 8 a thread of 1024). Each test of "every block size" takes the
#: shortest and the longest row of one of them.
BLOCK_SIZES = {
    "64x1": (1, 64),
    "64x4": (65, 256),
    "64x8": (257, 512),
    "128": (513, 1024),
    "256": (1025, 2048),
    "512": (2049, 4096),
    "1024": (4097, 8192),
}


def f32(x):
    """`x` rounded to float32, as float64 (what the GPU is given)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def check(got, expected, what, rtol, atol):
    """|got - expected| <= atol + rtol * |expected| everywhere, shapes equal."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------


def key_mask(batch, heads, queries, keys, key_padding, causal):
    """Bool (batch, heads, queries, keys): True where key j is masked for query i."""
    masked = np.zeros((batch, heads, queries, keys), dtype=bool)
    if causal:
        masked |= np.triu(np.ones((queries, keys), dtype=bool), k=1)
    if key_padding is not None:
        masked |= (np.asarray(key_padding) != 0)[:, None, None, :]
    return masked


def softmax_model(scores, key_padding=None, causal=False):
    """The attention softmax of scores (B, nh, Tq, Tk): masked keys 0, a row whose
    every key is masked all zeros, the others softmax over the keys not masked."""
    scores = f32(scores)
    masked = key_mask(*scores.shape, key_padding, causal)
    shifted = np.where(masked, -np.inf, scores)
    row_max = shifted.max(axis=-1, keepdims=True)
    empty = np.isneginf(row_max)
    e = np.exp(shifted - np.where(empty, 0.0, row_max))
    total = e.sum(axis=-1, keepdims=True)
    return np.where(empty, 0.0, e / np.where(empty, 1.0, total))


def softmax_backward_model(grad_out, out):
    """dL/d(scores) = y * (g - sum_k g_k y_k) per row, for y = out and g = grad_out."""
    g, y = f32(grad_out), f32(out)
    return y * (g - (g * y).sum(axis=-1, keepdims=True))


def layernorm_model(x, gamma, beta, eps):
    """(out, mean, inv_std) of LayerNorm over the last dimension (biased variance)."""
    x, gamma, beta = f32(x), f32(gamma), f32(beta)
    mean = x.mean(axis=-1)
    inv_std = 1.0 / np.sqrt(((x - mean[:, None]) ** 2).mean(axis=-1) + np.float32(eps))
    out = (x - mean[:, None]) * inv_std[:, None] * gamma + beta
    return out, mean, inv_std


def layernorm_backward_model(grad_out, x, gamma, mean, inv_std):
    """(grad_in, grad_gamma, grad_beta) of LayerNorm from the given statistics."""
    dy, x, gamma = f32(grad_out), f32(x), f32(gamma)
    mean, inv_std = f32(mean)[:, None], f32(inv_std)[:, None]
    xhat = (x - mean) * inv_std
    h = dy * gamma
    h_mean, hx_mean = h.mean(axis=1, keepdims=True), (h * xhat).mean(axis=1, keepdims=True)
    grad_in = inv_std * (h - h_mean - xhat * hx_mean)
    return grad_in, (dy * xhat).sum(axis=0), dy.sum(axis=0)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def right_padding(rng, batch, keys):
    """(batch, keys): 1.0 at the last keys of each sequence; each keeps 1 key or more."""
    lengths = rng.integers(1, keys + 1, size=batch)
    return (np.arange(keys)[None, :] >= lengths[:, None]).astype(np.float64)


def layernorm_inputs(seed, rows, width, offset=0.0, spread=1.0):
    """x (rows, width) = offset + spread * normal, gamma and beta (width)."""
    rng = np.random.default_rng(seed)
    x = offset + spread * rng.normal(size=(rows, width))
    return x, rng.uniform(0.5, 1.5, size=width), rng.uniform(-0.5, 0.5, size=width)


# ---------------------------------------------------------------------------
# The probe
# ---------------------------------------------------------------------------


def probe_kernel(kind, arrays, sizes):
    """Run one launcher of `minitorch.fused_runtime` (`kind`: softmax,
    softmax_backward, layernorm or layernorm_backward) on NumPy inputs.

    `arrays`: the inputs by name (None for no key padding); `sizes`: the
    launcher's sizes by name. Returns the outputs by name (float64 arrays).
    NotImplementedError when the kernel wrote none of its first output,
    AssertionError when a kernel wrote past the end of an output or the
    launcher counted no launch."""
    import numpy as np
    from minitorch import fused_runtime as fr
    from minitorch.cuda_runtime import DeviceArray

    guard = 64
    tasks = {
        "softmax": ("hw4.1: Attention softmax, forward", ["attnSoftmaxKernel"]),
        "softmax_backward": ("hw4.2: Attention softmax, backward", ["attnSoftmaxBackwardKernel"]),
        "layernorm": ("hw4.3: LayerNorm, forward", ["layerNormKernel"]),
        "layernorm_backward": (
            "hw4.4: LayerNorm, backward",
            ["layerNormBackwardKernel", "layerNormParamGradKernel"],
        ),
    }

    def gpu(name):
        value = arrays[name]
        return None if value is None else DeviceArray.from_numpy(np.asarray(value, np.float32))

    def output(size):
        return DeviceArray.from_numpy(np.full(size + guard, np.nan, dtype=np.float32))

    s = sizes
    if kind == "softmax":
        n = s["batch"] * s["heads"] * s["queries"] * s["keys"]
        outs = {"out": (output(n), n)}
        run = lambda: fr.attn_softmax_forward(  # noqa: E731
            outs["out"][0], gpu("scores"), gpu("key_padding"), s["batch"], s["heads"],
            s["queries"], s["keys"], s["causal"],
        )  # fmt: skip
        counted = ["softmax"]
    elif kind == "softmax_backward":
        n = s["rows"] * s["cols"]
        outs = {"grad_in": (output(n), n)}
        run = lambda: fr.attn_softmax_backward(  # noqa: E731
            outs["grad_in"][0], gpu("grad_out"), gpu("out"), s["rows"], s["cols"]
        )
        counted = ["softmax_backward"]
    elif kind == "layernorm":
        rows, width = s["rows"], s["width"]
        outs = {
            "out": (output(rows * width), rows * width),
            "mean": (output(rows), rows),
            "inv_std": (output(rows), rows),
        }
        run = lambda: fr.layernorm_forward(  # noqa: E731
            outs["out"][0], outs["mean"][0], outs["inv_std"][0], gpu("x"), gpu("gamma"),
            gpu("beta"), rows, width, s["eps"],
        )  # fmt: skip
        counted = ["layernorm"]
    else:
        rows, width = s["rows"], s["width"]
        outs = {
            "grad_in": (output(rows * width), rows * width),
            "grad_gamma": (output(width), width),
            "grad_beta": (output(width), width),
        }
        run = lambda: fr.layernorm_backward(  # noqa: E731
            outs["grad_in"][0], outs["grad_gamma"][0], outs["grad_beta"][0], gpu("grad_out"),
            gpu("x"), gpu("gamma"), gpu("mean"), gpu("inv_std"), rows, width,
        )  # fmt: skip
        counted = ["layernorm_backward", "layernorm_params"]
    before = fr.launches()
    run()
    after = fr.launches()
    task, kernels = tasks[kind]
    results = {}
    for k, (name, (array, size)) in enumerate(outs.items()):
        values = array.to_numpy().astype(np.float64)
        if k == 0 and size and np.isnan(values[:size]).all():
            raise NotImplementedError(
                f"{task}: {kernels[0]} wrote nothing to {name} (is it still the starter's stub?)"
            )
        assert np.isnan(values[size:]).all(), (
            f"{' or '.join(kernels)} wrote past the end of {name} (at positions "
            f"{(np.flatnonzero(~np.isnan(values[size:])) + size)[:5].tolist()}; "
            f"{name} holds {size} numbers)"
        )
        results[name] = values[:size]
    if results and next(iter(outs.values()))[1]:
        for kind_counted, kernel in zip(counted, kernels, strict=True):
            assert after[kind_counted] > before[kind_counted], f"{kernel} was never launched"
    return results


def run_softmax(student, scores, key_padding=None, causal=False):
    """The student's softmax kernel on scores (B, nh, Tq, Tk): out of the same shape."""
    batch, heads, queries, keys = scores.shape
    sizes = {"batch": batch, "heads": heads, "queries": queries, "keys": keys, "causal": causal}
    got = student.run(
        probe_kernel, "softmax", {"scores": scores, "key_padding": key_padding}, sizes
    )
    return got["out"].reshape(scores.shape)


def run_softmax_backward(student, grad_out, out):
    """The student's softmax gradient kernel on (rows, cols) arrays."""
    rows, cols = out.shape
    got = student.run(
        probe_kernel,
        "softmax_backward",
        {"grad_out": grad_out, "out": out},
        {"rows": rows, "cols": cols},
    )
    return got["grad_in"].reshape(out.shape)


def run_layernorm(student, x, gamma, beta, eps=1e-5):
    """The student's LayerNorm kernel: (out, mean, inv_std)."""
    rows, width = x.shape
    got = student.run(
        probe_kernel,
        "layernorm",
        {"x": x, "gamma": gamma, "beta": beta},
        {"rows": rows, "width": width, "eps": eps},
    )
    return got["out"].reshape(x.shape), got["mean"], got["inv_std"]


def run_layernorm_backward(student, grad_out, x, gamma, mean, inv_std):
    """The student's LayerNorm gradient kernels: (grad_in, grad_gamma, grad_beta)."""
    rows, width = x.shape
    got = student.run(
        probe_kernel,
        "layernorm_backward",
        {"grad_out": grad_out, "x": x, "gamma": gamma, "mean": mean, "inv_std": inv_std},
        {"rows": rows, "width": width},
    )
    return got["grad_in"].reshape(x.shape), got["grad_gamma"], got["grad_beta"]
