"""Hidden tests of task hw3.3 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- odd sizes: 6 features in 3 heads (heads of size 2) with batch 1 and one
  token, 8 tokens, without bias, with padding, on the fast backend too;
- inputs that are not contiguous (a (B, T, C) view of a tensor stored as
  (T, B, C)) and large inputs (scores in the thousands: the softmax must be
  the stable one);
- rows whose keys are all masked (causal attention with the first key
  padding; a sequence that is all padding): every output and gradient
  finite, the other rows PyTorch's, all of it the reference's;
- `attention_mask` with causal attention and padding together, 3 heads;
- dropout in training mode: the same output and gradients as the reference
  for the same seed (the mask drawn over the attention weights, from the
  module's generator, after the projections); at p_dropout = 1 every weight
  is dropped, so the output is the output projection's bias on every row;
- the parameters drawn for a seed are the reference's (q, k, v, out in turn).

Conventions: the student is called before the reference; tolerances are
explicit (rtol 1e-8, atol 1e-10 against PyTorch, as in the public tests;
1e-9 against the reference, which computes in the same order).
"""

import numpy as np
import pytest
from test_attention import MODULE_TOL, check_attention, probe_attention, probe_attention_mask
from torch_models import as_torch, assert_close, assert_grads_close, attention, torch_params

pytestmark = [pytest.mark.task("hw3.3"), pytest.mark.time_limit(60)]

SAME = {"rtol": 1e-9, "atol": 1e-12}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_attention_view(config, x, pad, c, backend_name, seed):
    """MultiHeadAttention(**config, rng=seed) in training mode applied to a
    (B, T, C) view equal to `x` of a tensor stored as (T, B, C); its output
    and the gradients of sum(out * c) for x and every parameter."""
    import numba
    import numpy as np
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch.modules_attention import MultiHeadAttention

    backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # tiny inputs: threads only wait for a core
    try:
        layer = MultiHeadAttention(**config, backend=backend, rng=seed)
        params = {name: p.value.to_numpy() for name, p in layer.named_parameters()}
        stored = np.transpose(x, (1, 0, 2))
        base = Tensor.make(stored.ravel().copy(), stored.shape, backend=backend)
        base.requires_grad_(True)
        mask = None
        if pad is not None:
            mask = Tensor.make(pad.ravel().copy(), pad.shape, backend=backend)
        out = layer(base.permute(1, 0, 2), mask)
        (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
        grads = {
            name: None if p.value.grad is None else p.value.grad.to_numpy()
            for name, p in layer.named_parameters()
        }
        grad_x = None if base.grad is None else np.transpose(base.grad.to_numpy(), (1, 0, 2))
        return {"params": params, "out": out.to_numpy(), "grad_x": grad_x, "grads": grads}
    finally:
        numba.set_num_threads(threads)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def config_of(n_embd, n_head, causal=True, p_dropout=0.0, bias=True):
    return {
        "n_embd": n_embd,
        "n_head": n_head,
        "causal": causal,
        "p_dropout": p_dropout,
        "bias": bias,
    }


def check_same(got, want, what, tol=SAME):
    """Every array of a probe's answer (output, gradients, parameters) equals the reference's."""
    assert_close(got["out"], want["out"], what=f"{what}: output", **tol)
    assert_close(got["grad_x"], want["grad_x"], what=f"{what}: gradient of x", **tol)
    assert set(got["grads"]) == set(want["grads"]), f"{what}: parameters {sorted(got['grads'])}"
    for name, value in want["grads"].items():
        assert_close(got["grads"][name], value, what=f"{what}: gradient of {name}", **tol)


# ---------------------------------------------------------------------------
# Odd sizes, views, large inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "seq_len", "n_embd", "n_head", "causal", "bias"),
    [
        (1, 1, 6, 3, True, True),
        (1, 8, 6, 3, True, True),
        (3, 8, 6, 3, False, True),
        (2, 4, 6, 3, True, False),
        (1, 5, 6, 6, False, False),
    ],
)
def test_attention_with_odd_sizes(student, batch, seq_len, n_embd, n_head, causal, bias):
    """6 features in 3 heads (and in 6), batch 1, one token, no bias."""
    check_attention(student, batch, seq_len, n_embd, n_head, causal=causal, bias=bias)


def test_attention_with_odd_sizes_and_padding(student):
    """3 sequences of 6 tokens, 6 features in 3 heads, causal, padding at the ends."""
    pad = np.zeros((3, 6))
    pad[0, 4:] = 1.0
    pad[2, 5:] = 1.0
    check_attention(student, 3, 6, 6, 3, causal=True, pad=pad)


def test_attention_on_the_fast_backend_with_odd_sizes(student):
    """fast: 2 sequences of 7 tokens, 6 features in 3 heads, not causal, padding."""
    pad = np.zeros((2, 7))
    pad[1, :2] = 1.0
    check_attention(student, 2, 7, 6, 3, causal=False, pad=pad, backend="fast")


@pytest.mark.parametrize(("backend", "scale"), [("simple", 1.0), ("fast", 1.0), ("simple", 40.0)])
def test_attention_of_a_permuted_view(student, backend, scale):
    """x (2, 5, 6) given as a view of a (5, 2, 6) tensor; at scale 40 the scores
    are in the thousands (a softmax without the max subtraction overflows)."""
    rng = np.random.default_rng(int(scale))
    x = rng.normal(size=(2, 5, 6)) * scale
    c = rng.uniform(-1.0, 1.0, size=(2, 5, 6))
    config = config_of(6, 3)
    got = student.run(probe_attention_view, config, x, None, c, backend, 4)
    params = torch_params(got["params"])
    xt = as_torch(x, requires_grad=True)
    out = attention(xt, params, "", 3)
    what = f"attention of a permuted view (x scaled by {scale}, {backend})"
    assert np.all(np.isfinite(got["out"])), f"{what}: non-finite output"
    assert_close(got["out"], out, what=what, **MODULE_TOL)
    (out * as_torch(c)).sum().backward()
    assert_close(got["grad_x"], xt.grad, what=f"{what}: gradient of x", **MODULE_TOL)
    assert_grads_close(got["grads"], params, what=what, **MODULE_TOL)


# ---------------------------------------------------------------------------
# Rows with every key masked
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
def test_rows_with_every_key_masked(student, reference, causal):
    """Sequence 0 has its first key padding (causal: query 0 sees no key),
    sequence 1 is all padding (no query sees a key). Everything is finite; the
    rows that keep a key are PyTorch's; everything is the reference's
    (rtol 1e-6: masked scores near -1e9 keep only about 7 digits)."""
    rng = np.random.default_rng(53)
    x = rng.normal(size=(3, 4, 6))
    c = rng.uniform(-1.0, 1.0, size=(3, 4, 6))
    pad = np.zeros((3, 4))
    pad[0, 0] = 1.0
    pad[1, :] = 1.0
    config = config_of(6, 3, causal=causal)
    got = student.run(probe_attention, config, x, pad, c, "simple", 6, True)
    want = reference.run(probe_attention, config, x, pad, c, "simple", 6, True)
    for key in ("out", "grad_x"):
        assert np.all(np.isfinite(got[key])), f"{key}: non-finite values with fully masked rows"
    for name, grad in got["grads"].items():
        assert grad is not None and np.all(np.isfinite(grad)), f"gradient of {name}: {grad}"
    out = attention(as_torch(x), torch_params(got["params"], False), "", 3, causal, pad)
    out = out.detach().numpy()
    keeps_a_key = ~np.isnan(out).any(axis=2)
    expected_kept = 12 - 4 - (1 if causal else 0)
    assert keeps_a_key.sum() == expected_kept, "the test's own PyTorch model masked other rows"
    assert_close(
        got["out"][keeps_a_key], out[keeps_a_key], what="rows that keep a key", **MODULE_TOL
    )
    check_same(got, want, "fully masked rows", tol={"rtol": 1e-6, "atol": 1e-8})


def test_attention_mask_causal_with_padding(student):
    """Causal and padding together, 3 sequences, 3 heads: MASK_VALUE where j > i
    or key j is padding, 0 elsewhere, shape (3, 3, 4, 4)."""
    pad = np.array([[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    got = student.run(probe_attention_mask, config_of(6, 3), 3, 4, pad)
    assert got is not None, "a causal module with padding returned no mask"
    got = np.asarray(got)
    assert got.shape == (3, 3, 4, 4), f"mask of shape {got.shape}, expected (3, 3, 4, 4)"
    future = np.triu(np.ones((4, 4), dtype=bool), k=1)
    for b in range(3):
        blocked = future | (pad[b] != 0)[None, :]
        want = np.where(blocked, -1e9, 0.0)
        for h in range(3):
            assert_close(got[b, h], want, rtol=0, atol=0, what=f"mask [{b}, {h}]")


# ---------------------------------------------------------------------------
# Dropout and seeding against the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
def test_training_mode_dropout_matches_the_reference(student, reference, causal):
    """p_dropout = 0.5 in training mode, seed 9: the module's parameters, output
    and gradients are the reference's (dropout of the attention weights, the
    mask `rng.random((B, n_head, T, T)) >= p` from the module's generator)."""
    rng = np.random.default_rng(59)
    x = rng.normal(size=(2, 5, 6))
    c = rng.uniform(-1.0, 1.0, size=(2, 5, 6))
    pad = np.zeros((2, 5))
    pad[1, 4] = 1.0
    config = config_of(6, 3, causal=causal, p_dropout=0.5)
    got = student.run(probe_attention, config, x, pad, c, "simple", 9, True)
    want = reference.run(probe_attention, config, x, pad, c, "simple", 9, True)
    for name, value in want["params"].items():
        assert_close(got["params"][name], value, rtol=0, atol=0, what=f"initial {name}")
    check_same(got, want, f"training mode, p_dropout=0.5, causal={causal}")


def test_dropout_of_every_weight_leaves_the_bias(student):
    """p_dropout = 1 in training mode: every attention weight is dropped, so each
    output row is the output projection's bias; x gets no gradient (zeros)."""
    rng = np.random.default_rng(61)
    x = rng.normal(size=(2, 3, 6))
    c = rng.uniform(-1.0, 1.0, size=(2, 3, 6))
    got = student.run(
        probe_attention, config_of(6, 3, p_dropout=1.0), x, None, c, "simple", 2, True
    )
    bias = got["params"]["out_projection.bias"]
    assert_close(got["out"], np.broadcast_to(bias, (2, 3, 6)), rtol=0, atol=1e-15, what="output")
    assert_close(got["grad_x"], np.zeros((2, 3, 6)), rtol=0, atol=0, what="gradient of x")
