"""Public tests of task hw4.5: the fused kernels as differentiable functions
(minitorch/cuda_fused.py) and in hw3's layers (`use_fused_kernel=True`).

- `attn_softmax` and `layernorm` on `CudaKernelBackend`, forward and backward,
  against the float64 NumPy models of fused_cases.py (rtol 1e-4, atol 1e-5);
- `MultiHeadAttention` (causal, and not causal with a key padding mask) and
  `TransformerLayer` (with a key padding mask) with `use_fused_kernel=True`
  on `CudaKernelBackend` against the same layers without it on
  `FastTensorBackend` (float64), made from the same seed, with dropout 0: the
  output and the gradients of sum(out * c) for the input and every parameter
  (rtol 1e-3, atol 2e-4: the fused layer computes in float32).

Each probe also reads the launchers' counters (`fused_runtime.launches()`): a
fused function or layer must run its kernels on the GPU, each call once
(`attn_softmax`: the softmax kernel forward, its gradient kernel backward;
`layernorm`: the LayerNorm kernel forward, both gradient kernels backward).
Padding is at the end of each sequence, so no query has every key masked
(there the fused softmax gives zeros, hw3's the uniform weights).

All tests need a CUDA GPU (they are skipped, saying so, without one).
"""

import numpy as np
import pytest
from fused_cases import (
    check,
    layernorm_backward_model,
    layernorm_model,
    right_padding,
    softmax_backward_model,
    softmax_model,
)

pytestmark = [pytest.mark.gpu, pytest.mark.task("hw4.5"), pytest.mark.time_limit(60)]

FUNCTION_TOL = {"rtol": 1e-4, "atol": 1e-5}
LAYER_TOL = {"rtol": 1e-3, "atol": 2e-4}


def probe_attn_softmax(scores, pad, causal, grad):
    """attn_softmax on the CUDA backend: output, input gradient, launch counts."""
    import minitorch
    from minitorch import fused_runtime as fr
    from minitorch.cuda_fused import attn_softmax
    from minitorch.cuda_kernel_ops import CudaKernelBackend as cuda

    x = minitorch.Tensor.make(scores.ravel().copy(), scores.shape, backend=cuda)
    x.requires_grad_(True)
    mask = None if pad is None else minitorch.Tensor.make(pad.ravel().copy(), pad.shape)
    before = fr.launches()
    out = attn_softmax(x, mask, causal=causal)
    middle = fr.launches()
    (out * minitorch.Tensor.make(grad.ravel().copy(), grad.shape, backend=cuda)).sum().backward()
    after = fr.launches()
    return {
        "out": out.to_numpy(),
        "grad": x.grad.to_numpy(),
        "forward": middle["softmax"] - before["softmax"],
        "backward": after["softmax_backward"] - middle["softmax_backward"],
    }


def test_attn_softmax_function(student):
    rng = np.random.default_rng(10)
    for causal, pad in ((True, None), (False, right_padding(rng, 2, 6)), (True, np.ones((2, 6)))):
        scores, grad = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(2, 3, 6, 6))
        got = student.run(probe_attn_softmax, scores, pad, causal, grad)
        expected = softmax_model(scores, pad, causal)
        what = f"attn_softmax (causal {causal}, padding {pad is not None})"
        check(got["out"], expected, what, **FUNCTION_TOL)
        want_grad = softmax_backward_model(grad, expected).reshape(scores.shape)
        check(got["grad"], want_grad, f"{what}: gradient", **FUNCTION_TOL)
        assert got["forward"] == 1, f"{what}: {got['forward']} launches of attnSoftmaxKernel"
        assert got["backward"] == 1, f"{what}: {got['backward']} launches of its gradient kernel"


def probe_layernorm(x, gamma, beta, grad, eps):
    """layernorm on the CUDA backend: output, gradients, launch counts."""
    import minitorch
    from minitorch import fused_runtime as fr
    from minitorch.cuda_fused import layernorm
    from minitorch.cuda_kernel_ops import CudaKernelBackend as cuda

    def t(a):
        return minitorch.Tensor.make(a.ravel().copy(), a.shape, backend=cuda).requires_grad_(True)

    tx, tg, tb = t(x), t(gamma), t(beta)
    before = fr.launches()
    out = layernorm(tx, tg, tb, eps)
    middle = fr.launches()
    (out * minitorch.Tensor.make(grad.ravel().copy(), grad.shape, backend=cuda)).sum().backward()
    after = fr.launches()
    return {
        "out": out.to_numpy(),
        "grads": [tx.grad.to_numpy(), tg.grad.to_numpy(), tb.grad.to_numpy()],
        "launches": {k: after[k] - before[k] for k in after},
        "forward": middle["layernorm"] - before["layernorm"],
    }


def test_layernorm_function(student):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 5, 36))
    gamma, beta = rng.uniform(0.5, 1.5, size=36), rng.uniform(-0.5, 0.5, size=36)
    grad = rng.normal(size=x.shape)
    got = student.run(probe_layernorm, x, gamma, beta, grad, 1e-5)
    out, mean, inv_std = layernorm_model(x.reshape(10, 36), gamma, beta, 1e-5)
    check(got["out"], out.reshape(x.shape), "layernorm", **FUNCTION_TOL)
    rows = x.reshape(10, 36)
    expected = layernorm_backward_model(grad.reshape(10, 36), rows, gamma, mean, inv_std)
    for name, value, want in zip(("x", "gamma", "beta"), got["grads"], expected, strict=True):
        check(value, want.reshape(value.shape), f"layernorm: gradient of {name}", **FUNCTION_TOL)
    assert got["forward"] == 1, f"{got['forward']} launches of layerNormKernel in forward"
    counts = got["launches"]
    for kind in ("layernorm", "layernorm_backward", "layernorm_params"):
        assert counts[kind] == 1, f"{counts[kind]} launches of the {kind} kernel: {counts}"


def probe_layer(kind, config, x, pad, c, seed, fused):
    """A layer (`attention` or `transformer`) made from `seed` with dropout 0: fused
    on the CUDA backend, or not on the fast CPU backend. Its output, the
    gradients of sum(out * c) and the fused kernels' launches."""
    import minitorch
    from minitorch import fused_runtime as fr
    from minitorch.modules_attention import MultiHeadAttention
    from minitorch.modules_transfomer import TransformerLayer

    if fused:
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend
    else:
        backend = minitorch.FastTensorBackend
    make = MultiHeadAttention if kind == "attention" else TransformerLayer
    layer = make(**config, p_dropout=0.0, backend=backend, rng=seed, use_fused_kernel=fused)
    t = minitorch.Tensor.make(x.ravel().copy(), x.shape, backend=backend).requires_grad_(True)
    mask = None if pad is None else minitorch.Tensor.make(pad.ravel().copy(), pad.shape)
    before = fr.launches() if fused else {}
    out = layer(t, mask)
    (out * minitorch.Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
    after = fr.launches() if fused else {}
    return {
        "out": out.to_numpy(),
        "grad_x": t.grad.to_numpy(),
        "grads": {name: p.value.grad.to_numpy() for name, p in layer.named_parameters()},
        "launches": {k: after[k] - before[k] for k in after},
    }


def compare_layers(student, kind, config, batch, seq_len, pad, launches):
    n_embd = config["n_embd"]
    rng = np.random.default_rng(batch * 10 + seq_len)
    x, c = rng.normal(size=(batch, seq_len, n_embd)), rng.normal(size=(batch, seq_len, n_embd))
    fused = student.run(probe_layer, kind, config, x, pad, c, 5, True)
    plain = student.run(probe_layer, kind, config, x, pad, c, 5, False)
    check(fused["out"], plain["out"], f"{kind}: output", **LAYER_TOL)
    check(fused["grad_x"], plain["grad_x"], f"{kind}: gradient of x", **LAYER_TOL)
    assert sorted(fused["grads"]) == sorted(plain["grads"])
    for name, value in plain["grads"].items():
        check(fused["grads"][name], value, f"{kind}: gradient of {name}", **LAYER_TOL)
    for name, count in launches.items():
        assert fused["launches"][name] == count, (
            f"{kind}: {fused['launches'][name]} launches of the {name} kernel, expected {count}"
        )


def test_fused_attention_causal(student):
    config = {"n_embd": 16, "n_head": 4, "causal": True}
    compare_layers(student, "attention", config, 2, 7, None, {"softmax": 1, "softmax_backward": 1})


def test_fused_attention_with_padding(student):
    config = {"n_embd": 12, "n_head": 3, "causal": False}
    pad = right_padding(np.random.default_rng(12), 3, 9)
    compare_layers(student, "attention", config, 3, 9, pad, {"softmax": 1, "softmax_backward": 1})


def test_fused_transformer_layer(student):
    config = {"n_embd": 16, "n_head": 2}
    pad = right_padding(np.random.default_rng(13), 2, 6)
    launches = {
        "softmax": 1,
        "softmax_backward": 1,
        "layernorm": 2,
        "layernorm_backward": 2,
        "layernorm_params": 2,
    }
    compare_layers(student, "transformer", config, 2, 6, pad, launches)
