"""Hidden tests of task hw3.2 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- `Linear` on inputs that are not contiguous (permuted views), 4-D inputs,
  and the degenerate `Linear(1, 1)` on one row, on both backends; layers made
  one after the other from one generator draw what the reference draws;
- `Embedding` with ids that are a transposed view, 1-D and 3-D ids, a
  one-row table, and vocabulary 7 on the fast backend;
- `Dropout`: p = 1 in training gives exact zeros; switching between training
  and evaluation mode (evaluation calls draw nothing, so the training calls
  take consecutive draws of the generator); a generator shared with other
  code; 3-D inputs on the fast backend;
- `LayerNorm1d`: rows with a large mean and a small spread (1e6 + N(0, 1):
  the variance as E[x^2] - E[x]^2 loses about 3 digits there, the mean of the
  squared deviations does not), the gradient at a constant row, a size-1
  dimension, a large eps (0.5, which must go inside the square root), 4-D
  and non-contiguous inputs, and the fast backend.

Conventions: tolerances are explicit (rtol 1e-9, atol 1e-12 against PyTorch
in float64, as in the public tests).
"""

import numpy as np
import pytest
import torch.nn.functional as F
from test_modules_basic import TIGHT, check_grads
from torch_models import as_torch, assert_close, torch_params

pytestmark = [pytest.mark.task("hw3.2"), pytest.mark.time_limit(60)]


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_layer_view(kind, args, params, x, order, c, backend_name, seed):
    """A fresh layer (as the public `probe_layer`) applied to a permuted view
    equal to `x` (its tensor stored in another order); forward, the initial
    parameters and the gradients of sum(out * c) for x (in `x`'s layout, not
    for Embedding's ids) and every parameter."""
    import numba
    import numpy as np
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch import modules_basic as mb

    backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # tiny inputs: threads only wait for a core
    try:
        if kind == "LayerNorm1d":
            layer = mb.LayerNorm1d(*args, backend=backend)
        else:
            layer = getattr(mb, kind)(*args, backend=backend, rng=seed)
        initial = {name: p.value.to_numpy() for name, p in layer.named_parameters()}
        for name, p in layer.named_parameters():
            if name in params:
                value = params[name]
                p.update(Tensor.make(value.ravel().copy(), value.shape, backend=backend))
        stored = np.transpose(x, list(np.argsort(order)))
        base = Tensor.make(stored.ravel().copy(), stored.shape, backend=backend)
        base.requires_grad_(kind != "Embedding")
        out = layer(base.permute(*order))
        (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
        grads = {
            name: None if p.value.grad is None else p.value.grad.to_numpy()
            for name, p in layer.named_parameters()
        }
        grad_x = None if base.grad is None else np.transpose(base.grad.to_numpy(), order)
        return {"initial": initial, "out": out.to_numpy(), "grad_x": grad_x, "grads": grads}
    finally:
        numba.set_num_threads(threads)


def probe_layers_from_one_generator(specs, seed, ids, c):
    """Layers made in turn from one numpy.random.Generator seeded `seed`
    (`specs`: [kind, args] for Linear or Embedding), applied in turn to the ids
    (the first layer is an Embedding); their initial parameters, the output,
    and every parameter's gradient of sum(out * c)."""
    import numpy as np
    from minitorch import SimpleBackend, Tensor
    from minitorch import modules_basic as mb

    gen = np.random.default_rng(seed)
    layers = [getattr(mb, kind)(*args, backend=SimpleBackend, rng=gen) for kind, args in specs]
    params = [{n: p.value.to_numpy() for n, p in layer.named_parameters()} for layer in layers]
    h = Tensor.make(ids.astype(float).ravel(), ids.shape, backend=SimpleBackend)
    for layer in layers:
        h = layer(h)
    (h * Tensor.make(c.ravel().copy(), c.shape, backend=SimpleBackend)).sum().backward()
    grads = [
        {
            n: None if p.value.grad is None else p.value.grad.to_numpy()
            for n, p in layer.named_parameters()
        }
        for layer in layers
    ]
    return {"params": params, "out": h.to_numpy(), "grads": grads}


def probe_dropout_modes(p, x, seed, modes, shared_draws):
    """Dropout(p, rng=generator seeded `seed`) called on x once per mode in
    `modes` ("train" or "eval", switched with train()/eval()); after each call
    the same generator also draws `shared_draws` numbers elsewhere. The outputs,
    and the gradient of sum(out) for x of each call."""
    import numpy as np
    from minitorch import SimpleBackend, Tensor
    from minitorch.modules_basic import Dropout

    gen = np.random.default_rng(seed)
    layer = Dropout(p, rng=gen)
    outs, grads = [], []
    for mode in modes:
        if mode == "train":
            layer.train()
        else:
            layer.eval()
        t = Tensor.make(x.ravel().copy(), x.shape, backend=SimpleBackend).requires_grad_(True)
        out = layer(t)
        out.sum().backward()
        outs.append(out.to_numpy())
        grads.append(None if t.grad is None else t.grad.to_numpy())
        gen.random(shared_draws)
    return {"outs": outs, "grads": grads}


def probe_dropout_fast(p, x, seed):
    """Dropout(p, rng=seed) in training mode on FastTensorBackend: one output."""
    import numba
    from minitorch import FastTensorBackend, Tensor
    from minitorch.modules_basic import Dropout

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        layer = Dropout(p, rng=seed)
        return layer(Tensor.make(x.ravel().copy(), x.shape, backend=FastTensorBackend)).to_numpy()
    finally:
        numba.set_num_threads(threads)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def run_view(student, kind, args, params, x, order, backend="simple", seed=0):
    """probe_layer_view's answer and the weights c of the loss sum(out * c)."""
    out_shape = {
        "Linear": (*x.shape[:-1], args[1]),
        "Embedding": (*x.shape, args[1]),
        "LayerNorm1d": x.shape,
    }[kind]
    c = np.random.default_rng(98).uniform(-1.0, 1.0, size=out_shape)
    got = student.run(probe_layer_view, kind, list(args), params, x, list(order), c, backend, seed)
    return got, c


def check_layer_norm(student, x, eps, order=None, backend="simple", tol=TIGHT, seed=1):
    """LayerNorm1d (random weights and bias) against F.layer_norm: values and gradients."""
    dim = x.shape[-1]
    rng = np.random.default_rng(seed)
    params = {"weights": rng.normal(size=dim), "bias": rng.normal(size=dim)}
    order = list(range(x.ndim)) if order is None else order
    got, c = run_view(student, "LayerNorm1d", (dim, eps), params, x, order, backend)
    tparams = torch_params(params)
    xt = as_torch(x, requires_grad=True)
    out = F.layer_norm(xt, (dim,), tparams["weights"], tparams["bias"], eps)
    what = f"LayerNorm1d({dim}, eps={eps}) on shape {x.shape}"
    assert np.all(np.isfinite(got["out"])), f"{what}: non-finite output"
    assert_close(got["out"], out, what=what, **tol)
    (out * as_torch(c)).sum().backward()
    assert_close(got["grad_x"], xt.grad, what=f"{what}: gradient of x", **tol)
    for name, leaf in tparams.items():
        assert_close(got["grads"][name], leaf.grad, what=f"{what}: gradient of {name}", **tol)


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "order", "out_size", "bias", "backend"),
    [
        ((2, 3, 4), (2, 0, 1), 5, True, "simple"),
        ((4, 3), (1, 0), 2, False, "simple"),
        ((2, 1, 3, 5), (3, 1, 0, 2), 3, True, "simple"),
        ((1, 1), (0, 1), 1, True, "simple"),
        ((1, 1), (1, 0), 1, False, "fast"),
        ((3, 5, 6), (1, 2, 0), 7, True, "fast"),
    ],
)
def test_linear_on_views_and_odd_shapes(student, shape, order, out_size, bias, backend):
    """Permuted views, a 4-D input, and Linear(1, 1) on one row: value and gradients."""
    x = np.random.default_rng(sum(shape) + out_size).normal(size=shape)
    got, c = run_view(student, "Linear", (shape[-1], out_size, bias), {}, x, order, backend)
    tparams = torch_params(got["initial"])
    assert set(tparams) == ({"weights", "bias"} if bias else {"weights"})
    xt = as_torch(x, requires_grad=True)
    out = xt @ tparams["weights"] + (tparams["bias"] if bias else 0.0)
    what = f"Linear({shape[-1]}, {out_size}, bias={bias}) on a view of shape {shape}"
    assert_close(got["out"], out, what=what, **TIGHT)
    check_grads(got, tparams, xt, c, out, what)


def test_layers_from_one_generator_match_the_reference(student, reference):
    """Embedding(7, 6), Linear(6, 3), Linear(3, 5, bias=False), Linear(5, 1) made in
    turn from one generator (each draws after the previous one) and applied in
    turn to (2, 3) ids: parameters, output and gradients are the reference's."""
    specs = [["Embedding", [7, 6]], ["Linear", [6, 3]], ["Linear", [3, 5, False]]]
    specs.append(["Linear", [5, 1]])
    ids = np.array([[0, 6, 2], [2, 5, 1]])
    c = np.random.default_rng(97).uniform(-1.0, 1.0, size=(2, 3, 1))
    got = student.run(probe_layers_from_one_generator, specs, 12, ids, c)
    want = reference.run(probe_layers_from_one_generator, specs, 12, ids, c)
    for k, (mine, theirs) in enumerate(zip(got["params"], want["params"], strict=True)):
        assert set(mine) == set(theirs), f"layer {k} ({specs[k]}): parameters {sorted(mine)}"
        for name in theirs:
            assert_close(mine[name], theirs[name], rtol=0, atol=0, what=f"layer {k}: {name}")
    assert_close(got["out"], want["out"], what="output of the four layers", **TIGHT)
    for k, (mine, theirs) in enumerate(zip(got["grads"], want["grads"], strict=True)):
        for name in theirs:
            assert_close(mine[name], theirs[name], what=f"layer {k}: gradient of {name}", **TIGHT)


# ---------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "order", "vocab", "backend"),
    [
        (np.array([[0, 3, 6], [6, 6, 1]]), (1, 0), 7, "simple"),
        (np.array([4]), (0,), 7, "simple"),
        (np.array([[[0, 0]], [[0, 0]]]), (0, 1, 2), 1, "simple"),
        (np.array([[5, 2, 5, 0], [1, 1, 6, 5], [3, 4, 0, 0]]), (1, 0), 7, "fast"),
    ],
)
def test_embedding_of_odd_ids(student, ids, order, vocab, backend):
    """Ids that are a transposed view, 1-D and 3-D ids, a one-row table, fast backend."""
    got, c = run_view(student, "Embedding", (vocab, 6), {}, ids.astype(float), order, backend)
    weights = got["initial"]["weights"]
    assert weights.shape == (vocab, 6), f"Embedding({vocab}, 6) weights of shape {weights.shape}"
    assert_close(got["out"], weights[ids], rtol=0, atol=0, what=f"Embedding(ids {ids.shape})")
    want = np.zeros((vocab, 6))
    np.add.at(want, ids.ravel(), c.reshape(-1, 6))
    assert_close(got["grads"]["weights"], want, rtol=1e-12, atol=1e-15, what="weights gradient")


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


def test_dropout_module_at_p_one(student):
    """Training mode, p = 1: exact zeros (finite), call after call; gradient 0."""
    x = np.random.default_rng(3).normal(size=(4, 5)) * 1e3
    got = student.run(probe_dropout_modes, 1.0, x, 0, ["train", "train"], 0)
    for k, (out, grad) in enumerate(zip(got["outs"], got["grads"], strict=True)):
        assert np.all(np.isfinite(out)), f"Dropout(1.0), call {k}: non-finite output"
        assert_close(out, np.zeros_like(x), rtol=0, atol=0, what=f"Dropout(1.0), call {k}")
        assert grad is not None and np.all(np.isfinite(grad)), f"call {k}: gradient {grad}"
        assert_close(grad, np.zeros_like(x), rtol=0, atol=0, what=f"gradient, call {k}")


def test_dropout_module_switching_modes(student):
    """train, eval, train, eval, train on one generator that other code also uses
    (3 numbers after each call): evaluation calls return x (gradient 1) and draw
    nothing; each training call draws `random(x.shape)` where the generator is."""
    x = np.random.default_rng(5).normal(size=(3, 4))
    modes = ["train", "eval", "train", "eval", "train"]
    got = student.run(probe_dropout_modes, 0.5, x, 21, modes, 3)
    rng = np.random.default_rng(21)
    for k, mode in enumerate(modes):
        what = f"call {k} ({mode})"
        if mode == "eval":
            assert_close(got["outs"][k], x, rtol=0, atol=0, what=what)
            assert_close(got["grads"][k], np.ones_like(x), rtol=0, atol=0, what=f"{what}: grad")
        else:
            keep = rng.random(x.shape) >= 0.5
            assert_close(got["outs"][k], np.where(keep, 2 * x, 0.0), rtol=1e-12, atol=0, what=what)
            want_grad = np.where(keep, 2.0, 0.0)
            assert_close(got["grads"][k], want_grad, rtol=1e-12, atol=0, what=f"{what}: grad")
        rng.random(3)


def test_dropout_module_on_the_fast_backend(student):
    """fast: Dropout(0.2, rng=8) on a (2, 3, 4) input: the documented mask."""
    x = np.random.default_rng(6).normal(size=(2, 3, 4))
    got = student.run(probe_dropout_fast, 0.2, x, 8)
    keep = np.random.default_rng(8).random(x.shape) >= 0.2
    assert_close(got, np.where(keep, x / 0.8, 0.0), rtol=1e-12, atol=0, what="Dropout on fast")


# ---------------------------------------------------------------------------
# LayerNorm1d
# ---------------------------------------------------------------------------


def test_layer_norm_of_rows_with_a_large_mean(student):
    """Rows 1e6 + N(0, 1): the variance must be the mean of the squared
    deviations from the mean (E[x^2] - E[x]^2 cancels catastrophically);
    rtol 1e-6 (the mean itself is only known to about 1e-10 here)."""
    x = 1e6 + np.random.default_rng(11).normal(size=(4, 8))
    check_layer_norm(student, x, 1e-5, tol={"rtol": 1e-6, "atol": 1e-8})


def test_layer_norm_gradient_at_a_constant_row(student):
    """Constant rows (variance 0, so 1 / sqrt(eps) scales): values and gradients."""
    x = np.array([[2.0, 2.0, 2.0, 2.0], [-3.0, -3.0, -3.0, -3.0], [0.5, -1.0, 2.0, 0.0]])
    check_layer_norm(student, x, 1e-5)


@pytest.mark.parametrize(
    ("shape", "eps", "order", "backend"),
    [
        ((5, 1), 1e-5, None, "simple"),
        ((3, 6), 0.5, None, "simple"),
        ((2, 1, 3, 4), 1e-5, None, "simple"),
        ((2, 3, 6), 1e-5, (2, 0, 1), "simple"),
        ((1, 1, 6), 1e-5, None, "fast"),
        ((3, 4, 7), 1e-3, (1, 2, 0), "fast"),
    ],
)
def test_layer_norm_odd_shapes(student, shape, eps, order, backend):
    """A size-1 dimension (output: the bias), eps 0.5 (inside the square root),
    4-D, non-contiguous views, batch 1 on the fast backend."""
    x = np.random.default_rng(sum(shape)).normal(0.5, 0.3, size=shape)
    check_layer_norm(student, x, eps, order, backend)
