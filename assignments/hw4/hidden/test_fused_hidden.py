"""Hidden tests of hw4 (never shipped to students; students see names and outcomes).

Stronger than the public tests, with the same probes and NumPy models
(fused_cases.py) and the same tolerances:
- hw4.1: random shapes and masks (causal or not, padding anywhere, rows with
  every key masked), rows of 8192 keys, many short rows;
- hw4.2: random shapes with masked keys, rows of 8192;
- hw4.3: random widths from 1 to 8192 and random eps, 600 rows of 8192, rows
  of mean -10^4;
- hw4.4: random shapes, 200,000 rows (each block of the gradient kernel then
  takes many rows);
- hw4.5: the fused TransformerLayer and MultiHeadAttention on the GPU against
  the reference's layers without fused kernels on the CPU (float64);
- timing (the grader's `timing` fixture): each kernel against the reference's
  on the same GPU, inputs made on the GPU from a fresh seed every repetition.
Every case is derived from fixed seeds, so a grading run can be repeated.
"""

import numpy as np
import pytest
from fused_cases import (
    LAYERNORM_TOL,
    SOFTMAX_BACKWARD_TOL,
    SOFTMAX_TOL,
    check,
    f32,
    layernorm_backward_model,
    layernorm_inputs,
    layernorm_model,
    right_padding,
    run_layernorm,
    run_layernorm_backward,
    run_softmax,
    run_softmax_backward,
    softmax_backward_model,
    softmax_model,
)
from test_fused_layers import LAYER_TOL, probe_layer

pytestmark = [pytest.mark.gpu, pytest.mark.time_limit(60)]


# ---------------------------------------------------------------------------
# hw4.1
# ---------------------------------------------------------------------------


@pytest.mark.task("hw4.1")
@pytest.mark.parametrize("seed", range(8))
def test_softmax_random_shapes_and_masks(student, seed):
    rng = np.random.default_rng(500 + seed)
    batch, heads = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    causal = bool(seed % 2)
    if causal:  # square: as many queries as keys
        keys = queries = int(rng.choice([1, 2, 17, 32, 33, 100, 255]))
    else:
        keys = int(rng.choice([1, 31, 64, 65, 257, 700, 1023, 1100, 2500]))
        queries = int(rng.integers(1, 9))
    scores = rng.normal(scale=3.0, size=(batch, heads, queries, keys))
    pad = None
    if seed % 4 >= 2:
        pad = (rng.random((batch, keys)) < 0.3).astype(np.float64)
        if seed % 3 == 0:
            pad[0] = 1.0  # a sequence all padding: every row of it is zeros
    got = run_softmax(student, scores, pad, causal)
    check(got, softmax_model(scores, pad, causal), f"seed {seed}", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_longest_rows(student):
    rng = np.random.default_rng(510)
    for keys in (5000, 8192):
        scores = rng.normal(scale=4.0, size=(1, 2, 1, keys))
        pad = (rng.random((1, keys)) < 0.5).astype(np.float64)
        got = run_softmax(student, scores, pad)
        check(got, softmax_model(scores, pad), f"rows of {keys}", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_many_short_rows(student):
    scores = np.random.default_rng(511).normal(size=(4, 8, 512, 20))
    got = run_softmax(student, scores)
    check(got, softmax_model(scores), "16384 rows of 20", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_large_magnitudes_with_masks(student):
    rng = np.random.default_rng(512)
    scores = 1e4 + 1e4 * rng.uniform(-1, 1, size=(2, 3, 50, 50))
    pad = right_padding(rng, 2, 50)
    got = run_softmax(student, scores, pad, True)
    check(got, softmax_model(scores, pad, True), "large scores, masked", **SOFTMAX_TOL)


# ---------------------------------------------------------------------------
# hw4.2
# ---------------------------------------------------------------------------


@pytest.mark.task("hw4.2")
@pytest.mark.parametrize("seed", range(6))
def test_softmax_backward_random(student, seed):
    rng = np.random.default_rng(600 + seed)
    rows = int(rng.integers(1, 300))
    cols = int(rng.choice([1, 3, 32, 47, 64, 129, 600, 1024, 1500, 3000]))
    scores = rng.normal(scale=2.0, size=(1, 1, rows, cols))
    pad = (rng.random((1, cols)) < 0.2).astype(np.float64) if seed % 2 else None
    out = f32(softmax_model(scores, pad)).reshape(rows, cols)
    grad_out = rng.normal(size=(rows, cols))
    got = run_softmax_backward(student, grad_out, out)
    check(got, softmax_backward_model(grad_out, out), f"seed {seed}", **SOFTMAX_BACKWARD_TOL)


@pytest.mark.task("hw4.2")
def test_softmax_backward_longest_rows(student):
    rng = np.random.default_rng(610)
    out = f32(softmax_model(rng.normal(size=(1, 1, 3, 8192)))).reshape(3, 8192)
    grad_out = rng.normal(size=out.shape)
    got = run_softmax_backward(student, grad_out, out)
    check(got, softmax_backward_model(grad_out, out), "rows of 8192", **SOFTMAX_BACKWARD_TOL)


# ---------------------------------------------------------------------------
# hw4.3
# ---------------------------------------------------------------------------


@pytest.mark.task("hw4.3")
@pytest.mark.parametrize("seed", range(8))
def test_layernorm_random(student, seed):
    rng = np.random.default_rng(700 + seed)
    width = int(rng.integers(1, 8193)) if seed % 2 else 4 * int(rng.integers(1, 2049))
    rows = int(rng.integers(2, 40))
    eps = float(rng.choice([1e-5, 1e-6, 1e-2]))
    x, gamma, beta = layernorm_inputs(seed, rows, width, offset=rng.normal(), spread=3.0)
    out, mean, inv_std = run_layernorm(student, x, gamma, beta, eps)
    want_out, want_mean, want_inv_std = layernorm_model(x, gamma, beta, eps)
    check(out, want_out, f"width {width}: out", **LAYERNORM_TOL)
    check(mean, want_mean, f"width {width}: mean", rtol=1e-5, atol=1e-5)
    check(inv_std, want_inv_std, f"width {width}: inv_std", rtol=1e-4, atol=0.0)


@pytest.mark.task("hw4.3")
def test_layernorm_wide_rows(student):
    x, gamma, beta = layernorm_inputs(710, 600, 8192)
    out, mean, inv_std = run_layernorm(student, x, gamma, beta)
    want_out, want_mean, want_inv_std = layernorm_model(x, gamma, beta, 1e-5)
    check(out, want_out, "600 rows of 8192: out", **LAYERNORM_TOL)
    check(mean, want_mean, "600 rows of 8192: mean", rtol=1e-5, atol=1e-5)
    check(inv_std, want_inv_std, "600 rows of 8192: inv_std", rtol=1e-4, atol=0.0)


@pytest.mark.task("hw4.3")
def test_layernorm_negative_large_mean(student):
    x, gamma, beta = layernorm_inputs(711, 5, 2048, offset=-1e4, spread=0.5)
    out, mean, inv_std = run_layernorm(student, x, gamma, beta)
    want_out, want_mean, want_inv_std = layernorm_model(x, gamma, beta, 1e-5)
    check(out, want_out, "mean -10^4: out", rtol=1e-3, atol=2e-3)
    check(mean, want_mean, "mean -10^4: mean", rtol=1e-6, atol=1e-5)
    check(inv_std, want_inv_std, "mean -10^4: inv_std", rtol=1e-3, atol=0.0)


# ---------------------------------------------------------------------------
# hw4.4
# ---------------------------------------------------------------------------


def check_backward(student, seed, rows, width, offset=0.0):
    x, gamma, _ = layernorm_inputs(seed, rows, width, offset=offset)
    _, mean, inv_std = layernorm_model(x, gamma, 0.0 * gamma, 1e-5)
    mean, inv_std = f32(mean), f32(inv_std)
    grad_out = np.random.default_rng(seed + 1).normal(size=(rows, width))
    got = run_layernorm_backward(student, grad_out, x, gamma, mean, inv_std)
    expected = layernorm_backward_model(grad_out, x, gamma, mean, inv_std)
    what = f"{rows} rows of {width}"
    check(got[0], expected[0], f"{what}: grad_in", rtol=1e-4, atol=1e-4)
    atol = 1e-4 * max(1.0, np.sqrt(rows))
    check(got[1], expected[1], f"{what}: grad_gamma", rtol=1e-4, atol=atol)
    check(got[2], expected[2], f"{what}: grad_beta", rtol=1e-4, atol=atol)


@pytest.mark.task("hw4.4")
@pytest.mark.parametrize("seed", range(8))
def test_layernorm_backward_random(student, seed):
    rng = np.random.default_rng(800 + seed)
    width = int(rng.integers(1, 8193)) if seed % 2 else 4 * int(rng.integers(1, 2049))
    rows = int(rng.integers(1, 3000 // max(1, width // 64) + 2))
    check_backward(student, 800 + seed, rows, width)


@pytest.mark.task("hw4.4")
def test_layernorm_backward_very_many_rows(student):
    check_backward(student, 810, 200_000, 8)


# ---------------------------------------------------------------------------
# hw4.5
# ---------------------------------------------------------------------------


@pytest.mark.task("hw4.5")
@pytest.mark.parametrize("seed", range(3))
def test_fused_transformer_layer_matches_the_reference(student, reference, seed):
    rng = np.random.default_rng(900 + seed)
    n_head = int(rng.integers(1, 4))
    config = {"n_embd": 8 * n_head, "n_head": n_head}
    batch, seq_len = int(rng.integers(1, 4)), int(rng.integers(2, 12))
    shape = (batch, seq_len, 8 * n_head)
    x, c = rng.normal(size=shape), rng.normal(size=shape)
    pad = right_padding(rng, batch, seq_len) if seed else None
    got = student.run(probe_layer, "transformer", config, x, pad, c, seed, True)
    want = reference.run(probe_layer, "transformer", config, x, pad, c, seed, False)
    check(got["out"], want["out"], "output", **LAYER_TOL)
    check(got["grad_x"], want["grad_x"], "gradient of x", **LAYER_TOL)
    for name, value in want["grads"].items():
        check(got["grads"][name], value, f"gradient of {name}", **LAYER_TOL)
    assert got["launches"]["layernorm"] == 2 and got["launches"]["softmax"] == 1


@pytest.mark.task("hw4.5")
def test_fused_attention_longer_sequences(student, reference):
    rng = np.random.default_rng(910)
    config = {"n_embd": 32, "n_head": 4, "causal": False}
    x, c = rng.normal(size=(2, 70, 32)), rng.normal(size=(2, 70, 32))
    pad = right_padding(rng, 2, 70)
    got = student.run(probe_layer, "attention", config, x, pad, c, 3, True)
    want = reference.run(probe_layer, "attention", config, x, pad, c, 3, False)
    check(got["out"], want["out"], "output", **LAYER_TOL)
    check(got["grad_x"], want["grad_x"], "gradient of x", **LAYER_TOL)
    assert got["launches"]["softmax"] == 1 and got["launches"]["softmax_backward"] == 1


# ---------------------------------------------------------------------------
# Speed against the reference (grading harness only: the `timing` fixture)
# ---------------------------------------------------------------------------
#
# Each size holds 2^22 numbers: (heads, size, size) scores with heads = 2^22 /
# size^2, or (2^22 / size, size) rows for LayerNorm.


def probe_time_softmax(seed, size, reps, keep):
    """Timed: `reps` causal softmaxes of (1, heads, size, size) scores made on the GPU."""
    from minitorch import fused_runtime as fr
    from minitorch.cuda_runtime import DeviceArray

    heads = max(1, 2**22 // (size * size))
    scores, out = DeviceArray(heads * size * size), DeviceArray(heads * size * size)
    sums, kept = [], None
    for i in range(reps):
        scores.fill_uniform(seed + i, -8.0, 8.0)
        fr.attn_softmax_forward(out, scores, None, 1, heads, size, size, True)
        sums.append(out.sum())
        if i == keep:
            kept = out.to_numpy()
    return {"sums": sums, "kept": kept}


def probe_time_softmax_backward(seed, size, reps, keep):
    """Timed: `reps` softmax gradients of (2^22 / size, size) rows made on the GPU.

    grad_out is positive and each row of out sums to about 1/2, not 1: every row of
    grad_in then sums to sum(grad_out * out) * (1 - sum(out)), about 1/4, and most of
    its numbers stay above the absolute tolerance (with rows of out summing to 1 each
    row's sum would be about 0, and the sums could not tell a right gradient from a
    wrong one). The sums are in double precision and the kernels' rounding moves them
    by far less than 1e-6 of their size: rtol 1e-5 still tells one repetition's
    inputs from another's."""
    from minitorch import fused_runtime as fr
    from minitorch.cuda_runtime import DeviceArray

    rows = 2**22 // size
    grad_out, out, grad_in = (DeviceArray(rows * size) for _ in range(3))
    sums, kept = [], None
    for i in range(reps):
        grad_out.fill_uniform(2 * (seed + i), 0.5, 1.5)
        out.fill_uniform(2 * (seed + i) + 1, 0.0, 1.0 / size)
        fr.attn_softmax_backward(grad_in, grad_out, out, rows, size)
        sums.append(grad_in.sum())
        if i == keep:
            kept = grad_in.to_numpy()
    return {"sums": sums, "kept": kept}


def probe_time_layernorm(seed, size, reps, keep):
    """Timed: `reps` LayerNorms of (2^22 / size, size) rows made on the GPU.

    Each repetition's sums are three numbers (out, mean, inv_std), each compared on
    its own scale, and beta is positive: a sum of outputs with beta about 0 could
    come out near 0, where a relative tolerance allows nothing and float32's
    rounding alone (or a bug far below the tolerance) would fail some repetitions
    at random."""
    from minitorch import fused_runtime as fr
    from minitorch.cuda_runtime import DeviceArray

    rows = 2**22 // size
    x, out = DeviceArray(rows * size), DeviceArray(rows * size)
    mean, inv_std = DeviceArray(rows), DeviceArray(rows)
    gamma, beta = DeviceArray(size), DeviceArray(size)
    sums, kept = [], None
    for i in range(reps):
        x.fill_uniform(3 * (seed + i), -2.0, 3.0)
        gamma.fill_uniform(3 * (seed + i) + 1, 0.5, 1.5)
        beta.fill_uniform(3 * (seed + i) + 2, 0.5, 1.5)
        fr.layernorm_forward(out, mean, inv_std, x, gamma, beta, rows, size, 1e-5)
        sums.append([out.sum(), mean.sum(), inv_std.sum()])
        if i == keep:
            kept = out.to_numpy()
    return {"sums": sums, "kept": kept}


def probe_time_layernorm_backward(seed, size, reps, keep):
    """Timed: `reps` LayerNorm gradients of (2^22 / size, size) rows made on the GPU.

    As for the forward, each repetition's sums are three numbers (grad_in, grad_gamma,
    grad_beta) compared each on its own scale, and the inputs keep each of them far
    from 0: grad_out and xhat are positive, so grad_beta and grad_gamma sum positive
    numbers and every row of grad_in sums to -inv_std * mean(h * xhat) * sum(xhat)."""
    import numpy as np
    from minitorch import fused_runtime as fr
    from minitorch.cuda_runtime import DeviceArray

    rows = 2**22 // size
    grad_out, x, grad_in = (DeviceArray(rows * size) for _ in range(3))
    mean, inv_std = DeviceArray(rows), DeviceArray(rows)
    gamma, grad_gamma, grad_beta = DeviceArray(size), DeviceArray(size), DeviceArray(size)
    sums, kept = [], None
    for i in range(reps):
        base = 5 * (seed + i)
        grad_out.fill_uniform(base, 0.5, 1.5)
        x.fill_uniform(base + 1, 0.5, 2.5)
        gamma.fill_uniform(base + 2, 0.5, 1.5)
        mean.fill_uniform(base + 3, -0.1, 0.1)
        inv_std.fill_uniform(base + 4, 0.5, 1.5)
        fr.layernorm_backward(
            grad_in, grad_gamma, grad_beta, grad_out, x, gamma, mean, inv_std, rows, size
        )
        sums.append([grad_in.sum(), grad_gamma.sum(), grad_beta.sum()])
        if i == keep:
            kept = np.concatenate([grad_gamma.to_numpy(), grad_beta.to_numpy()])
    return {"sums": sums, "kept": kept}


@pytest.mark.task("hw4.1")
@pytest.mark.timing("fused-softmax")
@pytest.mark.time_limit(300)
def test_softmax_speed(timing):
    """Causal softmaxes of (size, size) scores timed against the reference kernel."""
    timing.compare(probe_time_softmax, rtol=1e-3, atol=1e-5)


@pytest.mark.task("hw4.2")
@pytest.mark.timing("fused-softmax-backward")
@pytest.mark.time_limit(300)
def test_softmax_backward_speed(timing):
    """Softmax gradients of rows of `size` timed against the reference kernel."""
    timing.compare(probe_time_softmax_backward, rtol=1e-5, atol=1e-6)


@pytest.mark.task("hw4.3")
@pytest.mark.timing("fused-layernorm")
@pytest.mark.time_limit(300)
def test_layernorm_speed(timing):
    """LayerNorms of rows of `size` timed against the reference kernel."""
    timing.compare(probe_time_layernorm, rtol=1e-3, atol=1e-2)


@pytest.mark.task("hw4.4")
@pytest.mark.timing("fused-layernorm-backward")
@pytest.mark.time_limit(300)
def test_layernorm_backward_speed(timing):
    """LayerNorm gradients of rows of `size` timed against the reference kernels."""
    timing.compare(probe_time_layernorm_backward, rtol=1e-3, atol=1e-1)
