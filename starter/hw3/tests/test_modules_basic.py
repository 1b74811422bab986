"""Public tests of task hw3.2: Linear, Embedding, Dropout and LayerNorm1d
(minitorch/modules_basic.py).

What is checked, against PyTorch (CPU, float64) built from the layer's own
parameters:

- `Linear.forward`: `x @ weights + bias` for 2-D and 3-D inputs, with and
  without bias; the gradients of x, weights and bias of `sum(out * c)`
  (rtol 1e-9, atol 1e-12); the initial values are drawn from the generator
  as documented (bounded by 1/sqrt(in_size), the same seed giving the same
  layer, another seed another);
- `Embedding.forward`: the rows of the weights picked by (2-D) ids, and the
  gradient summed over repeated ids (exact up to rtol 1e-12); ValueError for
  an id out of range;
- `Dropout`: the identity in evaluation mode and at p = 0; in training mode
  the mask of `nn_functions.dropout` drawn from the module's generator (the
  same seed giving the same masks), with the kept fraction within 5 binomial
  standard deviations;
- `LayerNorm1d.forward` against `torch.nn.functional.layer_norm`, with
  random weights and bias, for 2-D and 3-D inputs: values and the gradients
  of x, weights and bias (rtol 1e-9, atol 1e-12); a constant row gives the
  bias (no division by zero).

Most tests run on `SimpleBackend`; those named "fast" on `FastTensorBackend`,
and again on hw2's `CudaKernelBackend` where there is a CUDA GPU (float32:
rtol 1e-4, atol 1e-5; skipped without a GPU and never graded).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_models import as_torch, assert_close, torch_params

pytestmark = [pytest.mark.task("hw3.2"), pytest.mark.time_limit(60)]

TIGHT = {"rtol": 1e-9, "atol": 1e-12}
#: hw2's CudaKernelBackend computes in float32.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}
GPU = pytest.mark.gpu


def tolerance(backend):
    return FLOAT32 if backend == "cuda" else TIGHT


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_layer(kind, args, params, x, c, backend_name, seed):
    """A fresh layer `kind(*args, backend=..., rng=seed)` (LayerNorm1d: no rng),
    its parameters replaced by `params` where given; its initial parameters,
    forward(x), and the gradients of sum(forward(x) * c) for x and every
    parameter. Ids (Embedding) are not differentiated."""
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch import modules_basic as mb

    if backend_name == "cuda":
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend
    else:
        backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    if kind == "LayerNorm1d":
        layer = mb.LayerNorm1d(*args, backend=backend)
    else:
        layer = getattr(mb, kind)(*args, backend=backend, rng=seed)
    initial = {name: p.value.to_numpy() for name, p in layer.named_parameters()}
    for name, p in layer.named_parameters():
        if name in params:
            p.update(Tensor.make(params[name].ravel().copy(), params[name].shape, backend=backend))
    t = Tensor.make(x.ravel().copy(), x.shape, backend=backend)
    t.requires_grad_(kind != "Embedding")
    try:
        out = layer(t)
    except ValueError as e:  # the documented error; any other propagates
        return {"error": type(e).__name__}
    (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
    grads = {
        name: None if p.value.grad is None else p.value.grad.to_numpy()
        for name, p in layer.named_parameters()
    }
    return {
        "initial": initial,
        "out": out.to_numpy(),
        "grad_x": None if t.grad is None else t.grad.to_numpy(),
        "grads": grads,
    }


def probe_dropout_module(p, x, seed, calls, training):
    """Dropout(p, rng=seed) in training mode (or eval); `calls` outputs on x."""
    from minitorch import SimpleBackend, Tensor
    from minitorch.modules_basic import Dropout

    layer = Dropout(p, rng=seed)
    if not training:
        layer.eval()
    t = Tensor.make(x.ravel().copy(), x.shape, backend=SimpleBackend)
    return {"outs": [layer(t).to_numpy() for _ in range(calls)]}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def run_layer(student, kind, args, params, x, backend="simple", seed=0):
    """The probe's answer, and the weights c of the loss sum(out * c)."""
    out_shape = {
        "Linear": (*x.shape[:-1], args[1]),
        "Embedding": (*x.shape, args[1]),
        "LayerNorm1d": x.shape,
    }[kind]
    c = np.random.default_rng(99).uniform(-1.0, 1.0, size=out_shape)
    got = student.run(probe_layer, kind, list(args), params, x, c, backend, seed)
    assert "error" not in got, f"{kind}{tuple(args)} on shape {x.shape} raised {got.get('error')}"
    return got, c


def check_grads(got, tparams, xt, c, out, what, tol=TIGHT):
    (out * as_torch(c)).sum().backward()
    if xt is not None:
        assert_close(got["grad_x"], xt.grad, what=f"{what}: gradient of x", **tol)
    assert set(got["grads"]) == set(tparams), (
        f"{what}: parameters {sorted(got['grads'])}, expected {sorted(tparams)}"
    )
    for name, leaf in tparams.items():
        assert_close(got["grads"][name], leaf.grad, what=f"{what}: gradient of {name}", **tol)


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "out_size", "bias", "backend"),
    [
        ((4, 3), 5, True, "simple"),
        ((2, 3, 4), 6, True, "simple"),
        ((1, 1, 7), 2, False, "simple"),
        ((3, 5, 8), 16, True, "fast"),
        pytest.param((3, 5, 8), 16, True, "cuda", marks=GPU),
    ],
)
def test_linear_matches_torch(student, shape, out_size, bias, backend):
    """x @ weights + bias over the last dimension; gradients of x, weights and bias."""
    x = np.random.default_rng(len(shape) + out_size).normal(size=shape)
    got, c = run_layer(student, "Linear", (shape[-1], out_size, bias), {}, x, backend)
    names = {"weights", "bias"} if bias else {"weights"}
    assert set(got["initial"]) == names, f"Linear parameters {sorted(got['initial'])}"
    tparams = torch_params(got["initial"])
    xt = as_torch(x, requires_grad=True)
    out = xt @ tparams["weights"] + (tparams["bias"] if bias else 0.0)
    assert_close(got["out"], out, what=f"Linear({shape[-1]}, {out_size})", **tolerance(backend))
    check_grads(got, tparams, xt, c, out, "Linear", tolerance(backend))


def test_linear_initialisation_is_seeded(student):
    """Weights (in, out) and bias (out,) in [-1/sqrt(in), 1/sqrt(in)), drawn in that
    order from numpy.random.default_rng(seed) by uniform(-bound, bound, shape)."""
    x = np.ones((1, 9))
    first, _ = run_layer(student, "Linear", (9, 4, True), {}, x, seed=3)
    again, _ = run_layer(student, "Linear", (9, 4, True), {}, x, seed=3)
    other, _ = run_layer(student, "Linear", (9, 4, True), {}, x, seed=4)
    rng = np.random.default_rng(3)
    bound = 1 / 3
    want_w = rng.uniform(-bound, bound, (9, 4))
    want_b = rng.uniform(-bound, bound, (4,))
    assert_close(first["initial"]["weights"], want_w, rtol=0, atol=0, what="initial weights")
    assert_close(first["initial"]["bias"], want_b, rtol=0, atol=0, what="initial bias")
    assert np.array_equal(first["initial"]["weights"], again["initial"]["weights"])
    assert not np.array_equal(first["initial"]["weights"], other["initial"]["weights"])


# ---------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------


def test_embedding_looks_up_rows(student):
    """forward(ids) = weights[ids], shape (*ids.shape, dim); repeated ids add gradients."""
    ids = np.array([[1, 0, 3], [3, 3, 2]])
    got, c = run_layer(student, "Embedding", (5, 4), {}, ids.astype(float), seed=8)
    weights = got["initial"]["weights"]
    assert weights.shape == (5, 4), f"Embedding(5, 4) weights of shape {weights.shape}"
    assert_close(got["out"], weights[ids], rtol=0, atol=0, what="Embedding(ids)")
    want = np.zeros((5, 4))
    np.add.at(want, ids.ravel(), c.reshape(-1, 4))
    assert_close(got["grads"]["weights"], want, rtol=1e-12, atol=1e-15, what="weights gradient")
    expected = np.random.default_rng(8).standard_normal((5, 4))
    assert_close(weights, expected, rtol=0, atol=0, what="initial weights (standard normal)")


@pytest.mark.parametrize("backend", ["fast", pytest.param("cuda", marks=GPU)])
def test_embedding_on_the_fast_backend_matches_torch(student, backend):
    """fast: the lookup and its gradient, as torch.nn.functional.embedding."""
    ids = np.random.default_rng(1).integers(0, 50, size=(4, 9))
    got, c = run_layer(student, "Embedding", (50, 8), {}, ids.astype(float), backend)
    tparams = torch_params(got["initial"])
    out = F.embedding(torch.as_tensor(ids), tparams["weights"])
    tol = tolerance(backend)
    assert_close(got["out"], out, what=f"Embedding(ids) on the {backend} backend", **tol)
    check_grads(got, tparams, None, c, out, "Embedding", tol)


@pytest.mark.parametrize("bad", [5.0, -1.0, 1.5])
def test_embedding_rejects_bad_ids(student, bad):
    """ValueError for an id that is not a whole number in [0, num_embeddings)."""
    c = np.ones((2, 3))
    got = student.run(probe_layer, "Embedding", [5, 3], {}, np.array([0.0, bad]), c, "simple", 0)
    assert got.get("error") == "ValueError", f"id {bad} of Embedding(5, 3): got {got}"


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


def test_dropout_module_in_eval_mode_and_at_zero(student):
    """eval(): the input, whatever p; training mode with p = 0: the input."""
    x = np.random.default_rng(2).normal(size=(5, 6))
    for p, training in ((0.7, False), (0.0, True)):
        got = student.run(probe_dropout_module, p, x, 0, 2, training)
        for out in got["outs"]:
            assert_close(out, x, rtol=0, atol=0, what=f"Dropout({p}), training={training}")


def test_dropout_module_masks(student):
    """Training mode, p = 0.25, 40000 ones: each call draws `rng.random(x.shape) >= p`
    from the module's generator (seeded by rng=seed), kept values are 1 / 0.75,
    the kept count is within 5 binomial standard deviations (|count - 30000| <= 433)."""
    x = np.ones((200, 200))
    got = student.run(probe_dropout_module, 0.25, x, 17, 2, True)
    rng = np.random.default_rng(17)
    bound = 5 * np.sqrt(x.size * 0.25 * 0.75)
    for k, out in enumerate(got["outs"]):
        kept = int((out != 0.0).sum())
        assert abs(kept - 30000) <= bound, f"call {k}: kept {kept} of 40000, expected 30000"
        keep = rng.random(x.shape) >= 0.25
        assert_close(out, np.where(keep, 1 / 0.75, 0.0), rtol=1e-12, atol=0, what=f"call {k}")


# ---------------------------------------------------------------------------
# LayerNorm1d
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "eps", "backend"),
    [
        ((4, 6), 1e-5, "simple"),
        ((2, 3, 5), 1e-3, "simple"),
        ((3, 7, 16), 1e-5, "fast"),
        pytest.param((3, 7, 16), 1e-5, "cuda", marks=GPU),
    ],
)
def test_layer_norm_matches_torch(student, shape, eps, backend):
    """As F.layer_norm(x, (dim,), weights, bias, eps): values and gradients of x,
    weights and bias (weights and bias random, not the initial 1 and 0)."""
    rng = np.random.default_rng(shape[-1])
    x = rng.normal(1.0, 3.0, size=shape)
    params = {"weights": rng.normal(size=shape[-1]), "bias": rng.normal(size=shape[-1])}
    got, c = run_layer(student, "LayerNorm1d", (shape[-1], eps), params, x, backend)
    assert_close(got["initial"]["weights"], np.ones(shape[-1]), rtol=0, atol=0, what="gain")
    assert_close(got["initial"]["bias"], np.zeros(shape[-1]), rtol=0, atol=0, what="bias")
    tparams = torch_params(params)
    xt = as_torch(x, requires_grad=True)
    out = F.layer_norm(xt, (shape[-1],), tparams["weights"], tparams["bias"], eps)
    assert_close(got["out"], out, what=f"LayerNorm1d on shape {shape}", **tolerance(backend))
    check_grads(got, tparams, xt, c, out, "LayerNorm1d", tolerance(backend))


def test_layer_norm_of_a_constant_row(student):
    """A constant row has variance 0: the output is the bias (eps avoids 0 / 0)."""
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]])
    params = {"weights": np.array([1.0, 2.0, 3.0]), "bias": np.array([0.5, -0.5, 0.25])}
    got, _ = run_layer(student, "LayerNorm1d", (3, 1e-5), params, x)
    assert np.all(np.isfinite(got["out"])), f"non-finite output {got['out']}"
    assert_close(got["out"][0], params["bias"], rtol=0, atol=1e-12, what="constant row")
