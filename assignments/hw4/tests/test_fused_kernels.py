"""Public tests of tasks hw4.1-hw4.4: the fused kernels of kernels/fused.cu.

Each test runs one launcher of `minitorch.fused_runtime` on your kernels (the
probe `probe_kernel` of fused_cases.py) and compares the outputs with a float64
NumPy model of the kernel (fused_cases.py), computed from the same float32
inputs. A result passes when |got - expected| <= atol + rtol * |expected|
everywhere; the tolerances are below (they allow for float32 arithmetic).

- hw4.1 softmax: rows of every launch shape the launcher picks (the shortest and
  the longest row of each: a warp per row for 1 to 32 keys, 33 to 64, 65 to
  128, ... 513 to 1024, then a block per row for 1025 to 2048, ... 4097 to
  8192 keys); causal masks, key padding masks and both; rows whose every
  key is masked (all zeros); scores of magnitude 10^4 (exp overflows unless
  the row's maximum is subtracted). rtol 1e-5, atol 1e-6.
- hw4.2 softmax gradient: rows of every block size; rows with masked keys and
  rows all masked (their output is 0, so is their gradient); many short rows.
  rtol 1e-4, atol 1e-6.
- hw4.3 LayerNorm: widths of every block size, multiples of 4 (float4 loads)
  and not (one number at a time), from 1 to 8192; rows with a mean of 10^4
  and a spread of 1 (rtol 1e-3, atol 2e-3: the inputs themselves are only
  that precise in float32); constant rows (variance 0); many rows. Else rtol
  1e-4, atol 1e-5 (mean: atol 1e-5; inv_std: rtol 1e-4).
- hw4.4 LayerNorm gradients: widths of every launch shape (its own table:
  up to 2 items a thread, copies of the kernel for 1, 2, 4 and 8); 65 to
  70,000 rows (each block takes many rows, and the gradients of gamma and
  beta add up the blocks' sums). rtol 1e-4, atol 1e-4
  (times sqrt(rows) for gamma and beta).

Every output is also checked for writes past its end, and the launcher must
have counted a launch of the kernel. A kernel that writes nothing (the
starter) fails with NotImplementedError naming its task. A CUDA error (a
misaligned float4 load, an access out of bounds) is a CudaError naming the
kernel; after one, the GPU refuses every later call of the same process, so
later tests of one `pytest` run may fail too: fix the first.

All tests need a CUDA GPU (they are skipped, saying so, without one).
"""

import numpy as np
import pytest
from fused_cases import (
    BLOCK_SIZES,
    LAYERNORM_TOL,
    SOFTMAX_BACKWARD_TOL,
    SOFTMAX_SHAPES,
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

pytestmark = [pytest.mark.gpu, pytest.mark.time_limit(60)]

#: LayerNorm widths per block of the launcher: the width's items are width / 4
#: float4s when the width is a multiple of 4, else width numbers, and a block has
#: 64 threads (with one item a thread or fewer, then with up to 4), 128, ... 1024
#: threads with up to 4 items a thread, then 1024 threads with more (up to 8: the
#: widest row is 8192).
LAYERNORM_WIDTHS = {
    "64x1": (1, 2, 3, 4, 5, 31, 63, 64, 128, 256),
    "64": (65, 255, 260, 1024),
    "128": (257, 511, 1028, 2048),
    "256": (513, 1023, 2052, 4096),
    "512": (1025, 2047, 4100, 8192),
    "1024": (2049, 4095),
    "longer": (4097, 8191),
}

#: The same for LayerNorm's gradient, whose launcher gives a block's threads up
#: to 2 items each (LAYERNORM_BACKWARD_ITEMS_PER_THREAD) and picks the copy of the
#: kernel that holds 1, 2, 4 or 8 items a thread: the shortest and the longest
#: rows of each block size and copy, float4s and single numbers.
LAYERNORM_BACKWARD_WIDTHS = {
    "64": (1, 3, 63, 64, 4, 256, 65, 127, 260, 512),
    "128": (129, 255, 516, 1024),
    "256": (257, 511, 1028, 2048),
    "512": (513, 1023, 2052, 4096),
    "1024x2": (1025, 2047, 4100, 8192),
    "1024x4": (2049, 4095),
    "1024x8": (4097, 8191),
}


# ---------------------------------------------------------------------------
# hw4.1 attention softmax, forward
# ---------------------------------------------------------------------------


@pytest.mark.task("hw4.1")
@pytest.mark.parametrize("shape", sorted(SOFTMAX_SHAPES))
def test_softmax_every_launch_shape(student, shape):
    for keys in SOFTMAX_SHAPES[shape]:
        scores = np.random.default_rng(keys).uniform(-5, 5, size=(2, 1, 3, keys))
        got = run_softmax(student, scores)
        check(got, softmax_model(scores), f"softmax of rows of {keys}", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_causal(student):
    for batch, heads, t in ((2, 3, 1), (2, 3, 5), (2, 3, 64), (2, 3, 200), (1, 1, 1100)):
        scores = np.random.default_rng(t).normal(size=(batch, heads, t, t))
        got = run_softmax(student, scores, causal=True)
        check(got, softmax_model(scores, causal=True), f"causal, {t} tokens", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_key_padding(student):
    rng = np.random.default_rng(1)
    for batch, queries, keys in ((3, 7, 7), (4, 2, 300), (2, 33, 1500)):
        scores, pad = rng.normal(size=(batch, 2, queries, keys)), right_padding(rng, batch, keys)
        got = run_softmax(student, scores, pad)
        check(got, softmax_model(scores, pad), f"padding, {keys} keys", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_causal_and_padding(student):
    rng = np.random.default_rng(2)
    for batch, t in ((3, 9), (2, 130)):
        scores, pad = rng.normal(size=(batch, 4, t, t)), right_padding(rng, batch, t)
        got = run_softmax(student, scores, pad, causal=True)
        check(got, softmax_model(scores, pad, True), f"causal and padding, {t}", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_fully_masked_rows_are_zero(student):
    rng = np.random.default_rng(3)
    for t in (40, 1030):  # a warp per row, a block per row
        scores = rng.normal(size=(3, 2, t, t) if t < 1024 else (3, 1, 6, t))
        pad = np.zeros((3, t))
        pad[0, :5] = 1.0  # left padding: with a causal mask, queries 0-4 see no key
        pad[1, :] = 1.0  # a sequence all padding: every row masked
        got = run_softmax(student, scores, pad, causal=True)
        expected = softmax_model(scores, pad, True)
        assert not expected[0, :, :5].any() and not expected[1].any()
        check(got, expected, f"rows of {t} keys whose every key is masked", **SOFTMAX_TOL)


@pytest.mark.task("hw4.1")
def test_softmax_large_magnitudes(student):
    rng = np.random.default_rng(4)
    for offset, keys in ((0.0, 700), (3e4, 700), (-3e4, 700), (3e4, 1500)):
        scores = offset + 1e4 * rng.uniform(-1, 1, size=(2, 2, 5, keys))
        got = run_softmax(student, scores)
        assert np.isfinite(got).all(), f"scores around {offset:g}: not every output is finite"
        check(got, softmax_model(scores), f"scores of 10^4 around {offset:g}", **SOFTMAX_TOL)


# ---------------------------------------------------------------------------
# hw4.2 attention softmax, backward
# ---------------------------------------------------------------------------


def softmax_rows(seed, rows, cols, masked_fraction=0.0):
    """(grad_out, out): out a float32 softmax of random rows, some keys masked."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(1, 1, rows, cols))
    pad = None
    if masked_fraction:
        pad = (rng.random((1, cols)) < masked_fraction).astype(np.float64)
    out = f32(softmax_model(scores, pad)).reshape(rows, cols)
    return rng.uniform(-1, 1, size=(rows, cols)), out


@pytest.mark.task("hw4.2")
@pytest.mark.parametrize("block", sorted(BLOCK_SIZES))
def test_softmax_backward_every_block_size(student, block):
    for cols in BLOCK_SIZES[block]:
        grad_out, out = softmax_rows(cols, 6, cols)
        got = run_softmax_backward(student, grad_out, out)
        expected = softmax_backward_model(grad_out, out)
        check(got, expected, f"gradient, rows of {cols}", **SOFTMAX_BACKWARD_TOL)


@pytest.mark.task("hw4.2")
def test_softmax_backward_masked_keys(student):
    grad_out, out = softmax_rows(5, 8, 100, masked_fraction=0.3)
    out[3] = 0.0  # a row whose every key was masked
    got = run_softmax_backward(student, grad_out, out)
    expected = softmax_backward_model(grad_out, out)
    assert not expected[3].any() and not expected[out == 0].any()
    check(got, expected, "gradient with masked keys", **SOFTMAX_BACKWARD_TOL)


@pytest.mark.task("hw4.2")
def test_softmax_backward_many_rows(student):
    grad_out, out = softmax_rows(6, 5000, 77)
    got = run_softmax_backward(student, grad_out, out)
    check(got, softmax_backward_model(grad_out, out), "5000 rows of 77", **SOFTMAX_BACKWARD_TOL)


# ---------------------------------------------------------------------------
# hw4.3 LayerNorm, forward
# ---------------------------------------------------------------------------


def check_layernorm(got, expected, what, tol=LAYERNORM_TOL, mean_rtol=1e-5, std_rtol=1e-4):
    (out, mean, inv_std), (want_out, want_mean, want_inv_std) = got, expected
    check(out, want_out, f"{what}: out", **tol)
    check(mean, want_mean, f"{what}: mean", rtol=mean_rtol, atol=1e-5)
    check(inv_std, want_inv_std, f"{what}: inv_std", rtol=std_rtol, atol=0.0)


@pytest.mark.task("hw4.3")
@pytest.mark.parametrize("block", sorted(LAYERNORM_WIDTHS))
def test_layernorm_every_block_size(student, block):
    for width in LAYERNORM_WIDTHS[block]:
        x, gamma, beta = layernorm_inputs(width, 3, width, offset=0.5, spread=2.0)
        got = run_layernorm(student, x, gamma, beta)
        check_layernorm(got, layernorm_model(x, gamma, beta, 1e-5), f"width {width}")


@pytest.mark.task("hw4.3")
def test_layernorm_large_mean(student):
    for width in (768, 1001):
        x, gamma, beta = layernorm_inputs(width, 4, width, offset=1e4, spread=1.0)
        got = run_layernorm(student, x, gamma, beta)
        check_layernorm(
            got,
            layernorm_model(x, gamma, beta, 1e-5),
            f"rows of mean 10^4, width {width}",
            tol={"rtol": 1e-3, "atol": 2e-3},
            mean_rtol=1e-6,
            std_rtol=1e-3,
        )


@pytest.mark.task("hw4.3")
def test_layernorm_constant_rows(student):
    x, gamma, beta = layernorm_inputs(7, 4, 64)
    x[:] = np.array([[0.0], [2.5], [-1.0], [1e3]])
    for eps in (1e-5, 0.1):
        got = run_layernorm(student, x, gamma, beta, eps)
        check_layernorm(got, layernorm_model(x, gamma, beta, eps), f"constant rows, eps {eps}")


@pytest.mark.task("hw4.3")
def test_layernorm_many_rows(student):
    x, gamma, beta = layernorm_inputs(8, 3000, 96)
    got = run_layernorm(student, x, gamma, beta)
    check_layernorm(got, layernorm_model(x, gamma, beta, 1e-5), "3000 rows of 96")


# ---------------------------------------------------------------------------
# hw4.4 LayerNorm, backward
# ---------------------------------------------------------------------------


def check_layernorm_backward(student, seed, rows, width, offset=0.0):
    x, gamma, _ = layernorm_inputs(seed, rows, width, offset=offset)
    _, mean, inv_std = layernorm_model(x, gamma, 0.0 * gamma, 1e-5)
    mean, inv_std = f32(mean), f32(inv_std)
    grad_out = np.random.default_rng(seed + 1).uniform(-1, 1, size=(rows, width))
    got = run_layernorm_backward(student, grad_out, x, gamma, mean, inv_std)
    expected = layernorm_backward_model(grad_out, x, gamma, mean, inv_std)
    what = f"{rows} rows of {width}"
    check(got[0], expected[0], f"{what}: grad_in", rtol=1e-4, atol=1e-4)
    atol = 1e-4 * max(1.0, np.sqrt(rows))
    check(got[1], expected[1], f"{what}: grad_gamma", rtol=1e-4, atol=atol)
    check(got[2], expected[2], f"{what}: grad_beta", rtol=1e-4, atol=atol)


@pytest.mark.task("hw4.4")
@pytest.mark.parametrize("block", sorted(LAYERNORM_BACKWARD_WIDTHS))
def test_layernorm_backward_every_block_size(student, block):
    for width in LAYERNORM_BACKWARD_WIDTHS[block]:
        check_layernorm_backward(student, width, 3, width)


@pytest.mark.task("hw4.4")
@pytest.mark.parametrize(("rows", "width"), [(65, 40), (1000, 256), (70_000, 33)])
def test_layernorm_backward_many_rows(student, rows, width):
    check_layernorm_backward(student, rows, rows, width)


@pytest.mark.task("hw4.4")
def test_layernorm_backward_large_mean(student):
    check_layernorm_backward(student, 9, 50, 520, offset=1e4)
