"""Public tests of task hw3.3: multi-head attention (minitorch/modules_attention.py).

What is checked: `MultiHeadAttention.forward` against a PyTorch implementation
(CPU, float64; `torch_models.attention`, which masks with -inf) built from
the module's own parameters, its output and the gradients of x and of every
parameter of `sum(out * c)` (rtol 1e-8, atol 1e-10), for

- causal and non-causal attention, with and without bias;
- a key padding mask (1.0 at padding keys), with causal attention (padding
  at the end) and without (padding at either end);
- batch 1, sequence length 1, one head, heads of size 1, odd sizes
  (3 sequences of 7 tokens, 10 features in 5 heads), and a larger case
  on `FastTensorBackend` (and on hw2's `CudaKernelBackend` where there is a
  CUDA GPU: float32, rtol 1e-4, atol 1e-5; skipped without one, never graded);
- `attention_mask`: MASK_VALUE exactly where query i may not see key j, 0
  elsewhere, of the scores' shape; None when nothing is masked;
- dropout: in evaluation mode a module with p_dropout = 0.5 gives PyTorch's
  output (no dropout); in training mode its output differs.

No sequence in these tests has a query whose keys are all masked.
"""

import numpy as np
import pytest
from torch_models import as_torch, assert_close, assert_grads_close, attention, torch_params

pytestmark = [pytest.mark.task("hw3.3"), pytest.mark.time_limit(60)]

MODULE_TOL = {"rtol": 1e-8, "atol": 1e-10}
#: hw2's CudaKernelBackend computes in float32.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}


def probe_attention(config, x, pad, c, backend_name, seed, training):
    """MultiHeadAttention(**config, backend=..., rng=seed) (training or eval mode):
    its parameters, forward(x, pad), and the gradients of sum(out * c) for x and
    every parameter."""
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch.modules_attention import MultiHeadAttention

    if backend_name == "cuda":
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend
    else:
        backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    layer = MultiHeadAttention(**config, backend=backend, rng=seed)
    if not training:
        layer.eval()
    params = {name: p.value.to_numpy() for name, p in layer.named_parameters()}
    t = Tensor.make(x.ravel().copy(), x.shape, backend=backend).requires_grad_(True)
    mask = None if pad is None else Tensor.make(pad.ravel().copy(), pad.shape, backend=backend)
    out = layer(t, mask)
    (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
    grads = {
        name: None if p.value.grad is None else p.value.grad.to_numpy()
        for name, p in layer.named_parameters()
    }
    return {
        "params": params,
        "out": out.to_numpy(),
        "grad_x": None if t.grad is None else t.grad.to_numpy(),
        "grads": grads,
    }


def probe_attention_mask(config, batch, seq_len, pad):
    """attention_mask(batch, seq_len, pad) of a fresh module (None stays None)."""
    from minitorch import SimpleBackend, Tensor
    from minitorch.modules_attention import MultiHeadAttention

    layer = MultiHeadAttention(**config, backend=SimpleBackend, rng=0)
    mask = None if pad is None else Tensor.make(pad.ravel().copy(), pad.shape)
    result = layer.attention_mask(batch, seq_len, mask)
    return None if result is None else result.to_numpy()


def check_attention(
    student, batch, seq_len, n_embd, n_head, causal=True, bias=True, pad=None, backend="simple"
):
    rng = np.random.default_rng(batch * 100 + seq_len * 10 + n_embd)
    x = rng.normal(size=(batch, seq_len, n_embd))
    c = rng.uniform(-1.0, 1.0, size=(batch, seq_len, n_embd))
    config = {"n_embd": n_embd, "n_head": n_head, "causal": causal, "p_dropout": 0.0, "bias": bias}
    got = student.run(probe_attention, config, x, pad, c, backend, 5, True)
    what = f"MultiHeadAttention({config}) on x of shape {x.shape}, padding {pad is not None}"
    params = torch_params(got["params"])
    xt = as_torch(x, requires_grad=True)
    out = attention(xt, params, "", n_head, causal, pad)
    tol = FLOAT32 if backend == "cuda" else MODULE_TOL
    assert_close(got["out"], out, what=what, **tol)
    (out * as_torch(c)).sum().backward()
    assert_close(got["grad_x"], xt.grad, what=f"{what}: gradient of x", **tol)
    assert_grads_close(got["grads"], params, what=what, **tol)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_attention_matches_torch(student, causal, bias):
    """2 sequences of 5 tokens, 12 features, 3 heads: output and gradients."""
    check_attention(student, 2, 5, 12, 3, causal=causal, bias=bias)


def test_causal_attention_with_padding_at_the_end(student):
    """Causal, key padding mask with padding at the end of the first sequence."""
    pad = np.array([[0.0, 0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    check_attention(student, 2, 5, 8, 2, causal=True, pad=pad)


def test_non_causal_attention_with_padding_at_either_end(student):
    """Not causal, padding at the start of one sequence and the end of another."""
    pad = np.array([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    check_attention(student, 2, 6, 8, 4, causal=False, pad=pad)


@pytest.mark.parametrize(
    ("batch", "seq_len", "n_embd", "n_head"),
    [(1, 4, 6, 2), (2, 1, 6, 3), (1, 1, 4, 1), (2, 3, 5, 1), (2, 3, 4, 4), (3, 7, 10, 5)],
)
def test_attention_shapes(student, batch, seq_len, n_embd, n_head):
    """Batch 1, one token, one head, heads of size 1 and odd sizes."""
    check_attention(student, batch, seq_len, n_embd, n_head)


@pytest.mark.parametrize("backend", ["fast", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_attention_on_the_fast_backend(student, backend):
    """fast: 4 sequences of 9 tokens, 16 features, 4 heads, causal with padding (and
    the same on hw2's CUDA backend where there is a GPU: float32, rtol 1e-4, atol 1e-5;
    never graded)."""
    pad = np.zeros((4, 9))
    pad[1, 6:] = 1.0
    pad[3, 8:] = 1.0
    check_attention(student, 4, 9, 16, 4, causal=True, pad=pad, backend=backend)


def test_attention_mask_values(student):
    """MASK_VALUE where query i may not see key j (causal: j > i; padding keys), else 0."""
    causal = {"n_embd": 4, "n_head": 2, "causal": True, "p_dropout": 0.0}
    got = student.run(probe_attention_mask, causal, 1, 3, None)
    assert got is not None, "a causal module returned no mask"
    got = np.asarray(got)
    assert got.shape == (1, 2, 3, 3), f"causal mask of shape {got.shape}, expected (1, 2, 3, 3)"
    m = -1e9
    want = np.array([[0.0, m, m], [0.0, 0.0, m], [0.0, 0.0, 0.0]])
    assert_close(got[0, 0], want, rtol=0, atol=0, what="causal mask")
    pad = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    got = np.asarray(student.run(probe_attention_mask, {**causal, "causal": False}, 2, 3, pad))
    assert got.shape == (2, 2, 3, 3), f"padding mask of shape {got.shape}, expected (2, 2, 3, 3)"
    for b in range(2):
        for h in range(2):
            want = np.broadcast_to(np.where(pad[b] != 0, m, 0.0), (3, 3))
            assert_close(got[b, h], want, rtol=0, atol=0, what=f"padding mask [{b}, {h}]")
    none = student.run(probe_attention_mask, {**causal, "causal": False}, 1, 3, None)
    assert none is None, "not causal and no padding: expected None"


def test_attention_dropout_only_in_training(student):
    """p_dropout = 0.5: eval mode gives PyTorch's output without dropout; training mode
    gives another output (the attention weights are dropped)."""
    rng = np.random.default_rng(21)
    x = rng.normal(size=(2, 6, 8))
    c = np.ones((2, 6, 8))
    config = {"n_embd": 8, "n_head": 2, "causal": True, "p_dropout": 0.5, "bias": True}
    evaluated = student.run(probe_attention, config, x, None, c, "simple", 1, False)
    trained = student.run(probe_attention, config, x, None, c, "simple", 1, True)
    want = attention(as_torch(x), torch_params(evaluated["params"], False), "", 2)
    assert_close(evaluated["out"], want, what="eval mode with p_dropout=0.5", **MODULE_TOL)
    assert not np.allclose(trained["out"], evaluated["out"]), "training mode: no dropout"
