"""Public tests of task hw3.4: the Transformer (minitorch/modules_transfomer.py)
and AdamW (minitorch/adamw.py).

What is checked, against PyTorch (CPU, float64) built from the module's own
parameters (`torch_models`):

- `FeedForward` (Linear -> GELU (tanh form) -> Linear) and the pre-LN
  `TransformerLayer`: outputs and the gradients of x and of every parameter
  of `sum(out * c)` (rtol 1e-8, atol 1e-10);
- `DecoderLM` (seeded, small): its parameter names, logits `(B, T, n_vocab)`
  and every parameter's gradient of `sum(logits * c)` (rtol 1e-8, atol 1e-10),
  on `SimpleBackend` and, with a key padding mask, on `FastTensorBackend`
  (and on hw2's `CudaKernelBackend` where there is a CUDA GPU: float32, rtol
  1e-4, atol 1e-5; skipped without one and never graded);
  the same seed gives the same model, the first parameter drawn is the token
  embedding table; with p_dropout = 0.1, eval mode gives PyTorch's logits and
  training mode other logits, the same for the same seed;
- `AdamW` against `torch.optim.AdamW` for 25 steps of a loss whose gradients
  change with the parameters, with weight decay, default and custom
  hyper-parameters (rtol 1e-9, atol 1e-12 on every value after every step); a
  parameter without a gradient in a step is left alone and its step count
  does not advance (as in PyTorch); `zero_grad` clears the gradients.
"""

import numpy as np
import pytest
import torch
from torch_models import (
    as_torch,
    assert_close,
    assert_grads_close,
    decoder_lm,
    feed_forward,
    torch_params,
    transformer_layer,
)

pytestmark = [pytest.mark.task("hw3.4"), pytest.mark.time_limit(60)]

MODULE_TOL = {"rtol": 1e-8, "atol": 1e-10}
ADAM_TOL = {"rtol": 1e-9, "atol": 1e-12}
#: hw2's CudaKernelBackend computes in float32.
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_module(kind, config, x, pad, c, backend_name, seed, training):
    """A fresh `kind` (FeedForward, TransformerLayer or DecoderLM) from `config`,
    `backend` and `rng=seed`, in training or eval mode: its parameters,
    forward(x[, pad]) and the gradients of sum(out * c) for x (not for the
    ids of DecoderLM) and every parameter."""
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch import modules_transfomer as mt

    if backend_name == "cuda":
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend
    else:
        backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    model = getattr(mt, kind)(**config, backend=backend, rng=seed)
    if not training:
        model.eval()
    params = {name: p.value.to_numpy() for name, p in model.named_parameters()}
    t = Tensor.make(x.ravel().copy(), x.shape, backend=backend)
    t.requires_grad_(kind != "DecoderLM")
    if kind == "FeedForward":
        out = model(t)
    else:
        mask = None if pad is None else Tensor.make(pad.ravel().copy(), pad.shape, backend=backend)
        out = model(t, mask)
    (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
    grads = {
        name: None if p.value.grad is None else p.value.grad.to_numpy()
        for name, p in model.named_parameters()
    }
    return {
        "params": params,
        "out": out.to_numpy(),
        "grad_x": None if t.grad is None else t.grad.to_numpy(),
        "grads": grads,
    }


def probe_adamw(init, coeffs, steps, hyper):
    """AdamW(**hyper) over parameters a, b, unused (initial values `init`) for
    `steps` steps of zero_grad, backward of the loss
        sum(a * a * A) + sum(a * B) + sum(b * b * b * C) (the b term on even steps only),
    step; the values of all three after every step, and whether zero_grad
    cleared the gradients."""
    from minitorch import SimpleBackend, Tensor
    from minitorch.adamw import AdamW
    from minitorch.module import Parameter

    def make(values):
        return Tensor.make(values.ravel().copy(), values.shape, backend=SimpleBackend)

    params = {name: Parameter(make(init[name])) for name in ("a", "b", "unused")}
    optimizer = AdamW(list(params.values()), **hyper)
    A, B, C = (make(coeffs[k]) for k in ("A", "B", "C"))
    history = []
    cleared = True
    for k in range(steps):
        optimizer.zero_grad()
        cleared = cleared and all(p.value.grad is None for p in params.values())
        a, b = params["a"].value, params["b"].value
        loss = (a * a * A).sum() + (a * B).sum()
        if k % 2 == 0:
            loss = loss + (b * b * b * C).sum()
        loss.backward()
        optimizer.step()
        history.append({name: p.value.to_numpy() for name, p in params.items()})
    return {"history": history, "cleared": cleared}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def expected_names(n_layer, bias=True):
    """The parameter names of DecoderLM."""
    linear = ["weights", "bias"] if bias else ["weights"]
    names = {"token_embeddings.weights", "position_embeddings.weights", "lm_head.weights"}
    names |= {"ln.weights", "ln.bias"}
    for i in range(n_layer):
        layer = f"layer_{i}"
        for ln in ("ln_1", "ln_2"):
            names |= {f"{layer}.{ln}.weights", f"{layer}.{ln}.bias"}
        for proj in ("q_projection", "k_projection", "v_projection", "out_projection"):
            names |= {f"{layer}.attention.{proj}.{n}" for n in linear}
        for lin in ("linear_in", "linear_out"):
            names |= {f"{layer}.ff.{lin}.{n}" for n in linear}
    return names


def run_decoder(student, config, idx, pad=None, backend="simple", seed=0, training=False):
    c = np.random.default_rng(7).uniform(-1.0, 1.0, size=(*idx.shape, config["n_vocab"]))
    got = student.run(
        probe_module, "DecoderLM", config, idx.astype(float), pad, c, backend, seed, training
    )
    return got, c


def check_decoder(student, config, idx, pad=None, backend="simple"):
    got, c = run_decoder(student, config, idx, pad, backend)
    assert set(got["params"]) == expected_names(config["n_layer"], config.get("bias", True)), (
        f"DecoderLM parameters: {sorted(got['params'])}"
    )
    params = torch_params(got["params"])
    logits = decoder_lm(idx, params, config["n_head"], config["n_layer"], config["ln_eps"], pad)
    what = f"DecoderLM({config}) on ids of shape {idx.shape}"
    tol = FLOAT32 if backend == "cuda" else MODULE_TOL
    assert_close(got["out"], logits, what=f"{what}: logits", **tol)
    (logits * as_torch(c)).sum().backward()
    assert_grads_close(got["grads"], params, what=what, **tol)


SMALL = {
    "n_vocab": 13,
    "n_embd": 8,
    "n_head": 2,
    "n_layer": 2,
    "n_positions": 10,
    "p_dropout": 0.0,
    "ln_eps": 1e-5,
}


# ---------------------------------------------------------------------------
# FeedForward and TransformerLayer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["FeedForward", "TransformerLayer"])
def test_blocks_match_torch(student, kind):
    """Outputs and gradients of x and every parameter, 2 sequences of 5 tokens, 8 features."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 8))
    c = rng.uniform(-1.0, 1.0, size=(2, 5, 8))
    if kind == "FeedForward":
        config = {"n_embd": 8, "middle_dim": 12, "p_dropout": 0.0}
    else:
        config = {"n_embd": 8, "n_head": 2, "p_dropout": 0.0, "ln_eps": 1e-5}
    got = student.run(probe_module, kind, config, x, None, c, "simple", 4, True)
    params = torch_params(got["params"])
    xt = as_torch(x, requires_grad=True)
    if kind == "FeedForward":
        out = feed_forward(xt, params, "")
    else:
        out = transformer_layer(xt, params, "", 2, 1e-5)
    assert_close(got["out"], out, what=kind, **MODULE_TOL)
    (out * as_torch(c)).sum().backward()
    assert_close(got["grad_x"], xt.grad, what=f"{kind}: gradient of x", **MODULE_TOL)
    assert_grads_close(got["grads"], params, what=kind, **MODULE_TOL)


# ---------------------------------------------------------------------------
# DecoderLM
# ---------------------------------------------------------------------------


def test_decoder_matches_torch(student):
    """A 2-layer model (13 tokens, 8 features, 2 heads): logits and every gradient."""
    idx = np.random.default_rng(0).integers(0, 13, size=(2, 6))
    check_decoder(student, SMALL, idx)


def test_decoder_without_bias_and_one_token(student):
    """bias=False (no biases in the Linear layers), one layer, sequences of one token."""
    config = {**SMALL, "n_layer": 1, "bias": False}
    check_decoder(student, config, np.array([[3], [12], [0]]))


@pytest.mark.parametrize("backend", ["fast", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_decoder_on_the_fast_backend_with_padding(student, backend):
    """fast: 23 tokens, 16 features, 4 heads, 3 sequences of 10 tokens, padding at the
    end (and the same on hw2's CUDA backend where there is a GPU: float32, rtol 1e-4,
    atol 1e-5; never graded)."""
    config = {
        "n_vocab": 23,
        "n_embd": 16,
        "n_head": 4,
        "n_layer": 2,
        "n_positions": 12,
        "p_dropout": 0.0,
        "ln_eps": 1e-5,
    }
    idx = np.random.default_rng(1).integers(0, 23, size=(3, 10))
    pad = np.zeros((3, 10))
    pad[0, 7:] = 1.0
    check_decoder(student, config, idx, pad, backend)


def test_decoder_is_seeded(student):
    """The same seed gives the same model; the token embeddings are the first
    draw of numpy.random.default_rng(seed) (standard normal)."""
    idx = np.zeros((1, 2))
    first, _ = run_decoder(student, SMALL, idx, seed=11)
    again, _ = run_decoder(student, SMALL, idx, seed=11)
    other, _ = run_decoder(student, SMALL, idx, seed=12)
    for name, value in first["params"].items():
        assert np.array_equal(value, again["params"][name]), f"seed 11 twice: {name} differs"
    assert not np.array_equal(first["out"], other["out"]), "seeds 11 and 12 gave the same model"
    want = np.random.default_rng(11).standard_normal((13, 8))
    assert_close(
        first["params"]["token_embeddings.weights"], want, rtol=0, atol=0, what="token embeddings"
    )


def test_decoder_dropout_only_in_training(student):
    """p_dropout = 0.1: eval mode gives PyTorch's logits (no dropout); training mode
    gives other logits, the same ones for the same seed."""
    config = {**SMALL, "p_dropout": 0.1}
    idx = np.random.default_rng(2).integers(0, 13, size=(2, 5))
    evaluated, _ = run_decoder(student, config, idx, seed=3, training=False)
    trained, _ = run_decoder(student, config, idx, seed=3, training=True)
    again, _ = run_decoder(student, config, idx, seed=3, training=True)
    params = torch_params(evaluated["params"], False)
    logits = decoder_lm(idx, params, 2, 2, 1e-5)
    assert_close(evaluated["out"], logits, what="eval-mode logits", **MODULE_TOL)
    assert not np.allclose(trained["out"], evaluated["out"]), "training mode: no dropout"
    assert np.array_equal(trained["out"], again["out"]), "the same seed, other dropout masks"


# ---------------------------------------------------------------------------
# AdamW
# ---------------------------------------------------------------------------


def torch_adamw(init, coeffs, steps, hyper):
    params = {name: as_torch(init[name], requires_grad=True) for name in ("a", "b", "unused")}
    optimizer = torch.optim.AdamW(list(params.values()), **hyper)
    A, B, C = (as_torch(coeffs[k]) for k in ("A", "B", "C"))
    history = []
    for k in range(steps):
        optimizer.zero_grad()
        a, b = params["a"], params["b"]
        loss = (a * a * A).sum() + (a * B).sum()
        if k % 2 == 0:
            loss = loss + (b * b * b * C).sum()
        loss.backward()
        optimizer.step()
        history.append({name: p.detach().numpy().copy() for name, p in params.items()})
    return history


@pytest.mark.parametrize(
    "hyper",
    [
        {},
        {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1},
        {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.0},
    ],
)
def test_adamw_matches_torch(student, hyper):
    """25 steps against torch.optim.AdamW with the same hyper-parameters; `b` gets a
    gradient every other step, `unused` never (it must stay as it was)."""
    rng = np.random.default_rng(len(hyper))
    init = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(5,)), "unused": rng.normal(size=2)}
    coeffs = {
        "A": rng.uniform(0.5, 2.0, size=(3, 4)),
        "B": rng.normal(size=(3, 4)),
        "C": rng.normal(size=(5,)),
    }
    got = student.run(probe_adamw, init, coeffs, 25, hyper)
    want = torch_adamw(init, coeffs, 25, hyper)
    assert got["cleared"], "zero_grad left a gradient behind"
    for k, (mine, theirs) in enumerate(zip(got["history"], want, strict=True)):
        for name in ("a", "b", "unused"):
            assert_close(
                mine[name], theirs[name], what=f"{name} after step {k + 1} ({hyper})", **ADAM_TOL
            )
