"""Hidden tests of task hw3.4 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- odd sizes: vocabulary 7, 6 features in 3 heads, 3 layers, batch 1, a
  sequence as long as `n_positions`, sequences of one token, padding at the
  start, on both backends; `FeedForward` with its default middle size on the
  fast backend; `TransformerLayer` on a non-contiguous input with padding;
- `DecoderLM` in training mode (p_dropout = 0.2): the logits and every
  gradient are the reference's for the same seed (the dropout masks drawn
  from the model's generator in the documented order);
- a short training run: 20 AdamW steps of a tiny `DecoderLM` on a fixed
  batch; the loss of every step follows the reference's (rtol 1e-6) and, for
  p_dropout = 0, PyTorch's (the same model and torch.optim.AdamW), and the
  loss falls;
- `AdamW` with parameters that get a gradient only from some step on, or
  only at some steps (their step counts, moments and weight decay advance
  only then, as in PyTorch), weight decay 0 and 0.3, a large eps (1e-2:
  eps outside the square root), beta1 = 0, lr = 0, gradients with exact
  zeros, 60 steps; and on the fast backend, where each updated parameter
  stays a leaf tensor of its shape and backend that gets the next gradient.

Conventions: the student is called before the reference; tolerances are
explicit (rtol 1e-8, atol 1e-10 for modules against PyTorch; rtol 1e-9,
atol 1e-12 for AdamW, as in the public tests).
"""

import numpy as np
import pytest
import torch
from test_transformer import (
    ADAM_TOL,
    MODULE_TOL,
    check_decoder,
    run_decoder,
)
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

SAME = {"rtol": 1e-9, "atol": 1e-12}

TINY = {
    "n_vocab": 7,
    "n_embd": 6,
    "n_head": 3,
    "n_layer": 2,
    "n_positions": 6,
    "p_dropout": 0.0,
    "ln_eps": 1e-5,
}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_block_view(kind, config, x, pad, c, backend_name, seed):
    """A fresh FeedForward or TransformerLayer (training mode) applied to a
    (B, T, C) view equal to `x` of a tensor stored as (T, B, C); its parameters,
    output, and the gradients of sum(out * c) for x and every parameter."""
    import numba
    import numpy as np
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch import modules_transfomer as mt

    backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # tiny inputs: threads only wait for a core
    try:
        block = getattr(mt, kind)(**config, backend=backend, rng=seed)
        params = {name: p.value.to_numpy() for name, p in block.named_parameters()}
        stored = np.transpose(x, (1, 0, 2))
        base = Tensor.make(stored.ravel().copy(), stored.shape, backend=backend)
        base.requires_grad_(True)
        view = base.permute(1, 0, 2)
        if kind == "FeedForward":
            out = block(view)
        else:
            mask = None
            if pad is not None:
                mask = Tensor.make(pad.ravel().copy(), pad.shape, backend=backend)
            out = block(view, mask)
        (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
        grads = {
            name: None if p.value.grad is None else p.value.grad.to_numpy()
            for name, p in block.named_parameters()
        }
        grad_x = None if base.grad is None else np.transpose(base.grad.to_numpy(), (1, 0, 2))
        return {"params": params, "out": out.to_numpy(), "grad_x": grad_x, "grads": grads}
    finally:
        numba.set_num_threads(threads)


def probe_training(config, ids, targets, seed, steps, hyper):
    """`steps` AdamW(**hyper) steps of DecoderLM(**config, rng=seed) (training
    mode, FastTensorBackend) on one batch: per step zero_grad, the mean of
    softmax_loss(model(ids), targets), backward, step. The initial parameters
    and the loss of every step (before its update)."""
    import numba
    from minitorch import FastTensorBackend, Tensor
    from minitorch.adamw import AdamW
    from minitorch.modules_transfomer import DecoderLM
    from minitorch.nn_functions import softmax_loss

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        backend = FastTensorBackend
        model = DecoderLM(**config, backend=backend, rng=seed)
        initial = {name: p.value.to_numpy() for name, p in model.named_parameters()}
        optimizer = AdamW(model.parameters(), **hyper)
        idx = Tensor.make(ids.astype(float).ravel(), ids.shape, backend=backend)
        y = Tensor.make(targets.astype(float).ravel(), targets.shape, backend=backend)
        losses = []
        for _ in range(steps):
            optimizer.zero_grad()
            loss = softmax_loss(model(idx), y).sum() / targets.size
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return {"initial": initial, "losses": losses}
    finally:
        numba.set_num_threads(threads)


def probe_adamw_schedule(init, coeffs, schedule, hyper):
    """AdamW(**hyper) over parameters named as `init`; at step k the loss is
    sum over the names in schedule[k] of sum(p * p * A_p + p * B_p) (nothing,
    and no backward, when schedule[k] is empty), then step. The values of
    every parameter after every step."""
    from minitorch import SimpleBackend, Tensor
    from minitorch.adamw import AdamW
    from minitorch.module import Parameter

    def make(values):
        return Tensor.make(values.ravel().copy(), values.shape, backend=SimpleBackend)

    params = {name: Parameter(make(value)) for name, value in init.items()}
    optimizer = AdamW(list(params.values()), **hyper)
    history = []
    for names in schedule:
        optimizer.zero_grad()
        if names:
            loss = None
            for name in names:
                p = params[name].value
                term = (p * p * make(coeffs[name][0])).sum() + (p * make(coeffs[name][1])).sum()
                loss = term if loss is None else loss + term
            loss.backward()
        optimizer.step()
        history.append({name: p.value.to_numpy() for name, p in params.items()})
    return history


def probe_adamw_fast(init, coeff, steps):
    """AdamW(lr=0.1, weight_decay=0.2) over one (2, 3, 4) parameter on
    FastTensorBackend; loss sum(p * p * coeff) per step. After the steps: the
    value, whether it is on FastTensorBackend, its shape, whether it is a leaf
    (no history of operations), and the gradient one more backward gives it."""
    import numba
    from minitorch import FastTensorBackend, Tensor
    from minitorch.adamw import AdamW
    from minitorch.module import Parameter

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:

        def make(values):
            return Tensor.make(values.ravel().copy(), values.shape, backend=FastTensorBackend)

        param = Parameter(make(init))
        optimizer = AdamW([param], lr=0.1, weight_decay=0.2)
        c = make(coeff)
        for _ in range(steps):
            optimizer.zero_grad()
            (param.value * param.value * c).sum().backward()
            optimizer.step()
        value = param.value
        history = value.history
        leaf = history is None or history.last_fn is None
        result = {
            "value": value.to_numpy(),
            "fast": value.backend is FastTensorBackend,
            "shape": list(value.shape),
            "leaf": leaf,
        }
        optimizer.zero_grad()
        (param.value * param.value * c).sum().backward()
        result["grad"] = None if param.value.grad is None else param.value.grad.to_numpy()
        return result
    finally:
        numba.set_num_threads(threads)


# ---------------------------------------------------------------------------
# PyTorch's values
# ---------------------------------------------------------------------------


def torch_adamw_schedule(init, coeffs, schedule, hyper):
    params = {name: as_torch(value, requires_grad=True) for name, value in init.items()}
    optimizer = torch.optim.AdamW(list(params.values()), **hyper)
    history = []
    for names in schedule:
        optimizer.zero_grad()
        if names:
            loss = sum(
                (params[n] * params[n] * as_torch(coeffs[n][0])).sum()
                + (params[n] * as_torch(coeffs[n][1])).sum()
                for n in names
            )
            loss.backward()
        optimizer.step()
        history.append({name: p.detach().numpy().copy() for name, p in params.items()})
    return history


def torch_training(config, initial, ids, targets, steps, hyper):
    """The losses of the same run in PyTorch (p_dropout = 0 only)."""
    params = torch_params(initial)
    optimizer = torch.optim.AdamW(list(params.values()), **hyper)
    target = torch.as_tensor(targets.ravel())
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        logits = decoder_lm(ids, params, config["n_head"], config["n_layer"], config["ln_eps"])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, config["n_vocab"]), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ---------------------------------------------------------------------------
# Blocks and the decoder at odd sizes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "config", "shape", "backend"),
    [
        ("FeedForward", {"n_embd": 6, "p_dropout": 0.0}, (2, 3, 6), "fast"),
        ("FeedForward", {"n_embd": 6, "middle_dim": 5, "p_dropout": 0.0}, (1, 1, 6), "simple"),
        ("TransformerLayer", {"n_embd": 6, "n_head": 3, "p_dropout": 0.0}, (3, 4, 6), "simple"),
        ("TransformerLayer", {"n_embd": 6, "n_head": 3, "p_dropout": 0.0}, (1, 1, 6), "simple"),
        ("TransformerLayer", {"n_embd": 6, "n_head": 2, "bias": False}, (2, 5, 6), "fast"),
    ],
)
def test_blocks_on_views_with_odd_sizes(student, kind, config, shape, backend):
    """FeedForward (default middle size 24) and TransformerLayer on a (B, T, C)
    view stored as (T, B, C), with padding for the layers (first key of
    sequence 0 kept, its last key padding)."""
    config = {**config, "p_dropout": 0.0}
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    c = rng.uniform(-1.0, 1.0, size=shape)
    pad = None
    if kind == "TransformerLayer" and shape[1] > 1:
        pad = np.zeros(shape[:2])
        pad[0, -1] = 1.0
    got = student.run(probe_block_view, kind, config, x, pad, c, backend, 3)
    params = torch_params(got["params"])
    xt = as_torch(x, requires_grad=True)
    if kind == "FeedForward":
        out = feed_forward(xt, params, "")
    else:
        out = transformer_layer(xt, params, "", config["n_head"], 1e-5, pad)
    what = f"{kind}({config}) on a view of shape {shape} ({backend})"
    assert_close(got["out"], out, what=what, **MODULE_TOL)
    (out * as_torch(c)).sum().backward()
    assert_close(got["grad_x"], xt.grad, what=f"{what}: gradient of x", **MODULE_TOL)
    assert_grads_close(got["grads"], params, what=what, **MODULE_TOL)


def test_decoder_with_odd_sizes(student):
    """Vocabulary 7, 6 features in 3 heads, 3 layers; batch 1 as long as n_positions."""
    idx = np.array([[6, 0, 3, 3, 1, 5]])
    check_decoder(student, {**TINY, "n_layer": 3}, idx)


def test_decoder_of_single_tokens(student):
    """Four sequences of one token (position 0 only)."""
    check_decoder(student, TINY, np.array([[0], [6], [2], [2]]))


def test_decoder_on_the_fast_backend_with_padding_at_the_start(student):
    """fast: no bias, the second key of one sequence padding (every query still
    keeps key 0)."""
    config = {**TINY, "bias": False}
    idx = np.array([[1, 2, 3, 4, 5, 6], [0, 0, 6, 5, 4, 3]])
    pad = np.zeros((2, 6))
    pad[1, 1] = 1.0
    check_decoder(student, config, idx, pad, "fast")


def test_decoder_training_mode_matches_the_reference(student, reference):
    """p_dropout = 0.2 in training mode, seed 5: logits and every gradient are the
    reference's (same parameters, same masks in the same order)."""
    config = {**TINY, "p_dropout": 0.2}
    idx = np.array([[1, 4, 4, 0, 6], [2, 3, 5, 1, 1]])
    got, _ = run_decoder(student, config, idx, seed=5, training=True)
    want, _ = run_decoder(reference, config, idx, seed=5, training=True)
    for name, value in want["params"].items():
        assert_close(got["params"][name], value, rtol=0, atol=0, what=f"initial {name}")
    assert_close(got["out"], want["out"], what="training-mode logits", **SAME)
    assert set(got["grads"]) == set(want["grads"])
    for name, value in want["grads"].items():
        assert_close(got["grads"][name], value, what=f"gradient of {name}", **SAME)


# ---------------------------------------------------------------------------
# A short training run
# ---------------------------------------------------------------------------

TRAIN_IDS = np.array([[1, 2, 3, 4, 5], [6, 5, 4, 3, 2], [0, 1, 0, 1, 0]])
TRAIN_TARGETS = np.array([[2, 3, 4, 5, 6], [5, 4, 3, 2, 1], [1, 0, 1, 0, 1]])
TRAIN_HYPER = {"lr": 0.02, "betas": (0.9, 0.98), "eps": 1e-8, "weight_decay": 0.1}


#: Both workers may compile the fast backend's kernels here first (a composed rerun
#: starts fresh ones), hence more than the usual 60 s.
@pytest.mark.time_limit(120)
@pytest.mark.parametrize("p_dropout", [0.0, 0.1])
def test_training_run_follows_the_reference(student, reference, p_dropout):
    """20 AdamW steps (lr 0.02, weight decay 0.1) of a 2-layer DecoderLM
    (vocabulary 7, 6 features, 3 heads) on one batch of 3 x 5 tokens: every
    step's loss is the reference's (rtol 1e-6: float64 sums may add in another
    order) and, without dropout, PyTorch's; the last loss is below 70% of the
    first."""
    config = {**TINY, "p_dropout": p_dropout}
    args = (config, TRAIN_IDS, TRAIN_TARGETS, 17, 20, TRAIN_HYPER)
    got = student.run(probe_training, *args)
    want = reference.run(probe_training, *args)
    losses = np.asarray(got["losses"], dtype=float)
    assert losses.shape == (20,), f"expected 20 losses, got {losses.shape}"
    assert np.all(np.isfinite(losses)), f"the loss became non-finite: {losses}"
    if p_dropout == 0.0:
        theirs = torch_training(config, got["initial"], TRAIN_IDS, TRAIN_TARGETS, 20, TRAIN_HYPER)
        assert_close(losses, theirs, rtol=1e-6, atol=1e-9, what="losses against PyTorch")
    assert_close(losses, want["losses"], rtol=1e-6, atol=1e-9, what="losses of steps 1-20")
    assert losses[-1] < 0.7 * losses[0], f"the loss did not fall: {losses}"


# ---------------------------------------------------------------------------
# AdamW
# ---------------------------------------------------------------------------

#: Who gets a gradient at each of 12 steps: "late" from step 5 on, "sometimes" at
#: steps 1, 2, 6 and 11, "frozen" never.
SCHEDULE = [["always", "sometimes"], ["always", "sometimes"], ["always"], ["always"]]
SCHEDULE += [["always", "late"], ["always", "late", "sometimes"], [], ["always", "late"]]
SCHEDULE += [["always", "late"], ["late"], ["always", "late", "sometimes"], ["always", "late"]]


@pytest.mark.parametrize(
    "hyper",
    [
        {"lr": 0.1, "weight_decay": 0.0},
        {"lr": 0.1, "betas": (0.8, 0.9), "weight_decay": 0.3},
        {"lr": 0.05, "eps": 1e-2, "weight_decay": 0.1},
        {"lr": 0.05, "betas": (0.0, 0.5), "weight_decay": 0.05},
        {"lr": 0.0, "weight_decay": 0.5},
    ],
)
def test_adamw_with_parameters_used_at_some_steps(student, hyper):
    """12 steps against torch.optim.AdamW: parameters used from step 5 on, at some
    steps, never, and at a step where nothing has a gradient; zeros in the
    gradients (a coefficient row of 0); weight decay 0 and > 0, eps 1e-2,
    beta1 = 0, lr = 0."""
    rng = np.random.default_rng(71)
    names = ("always", "late", "sometimes", "frozen")
    init = {name: rng.normal(size=(2, 3)) for name in names}
    coeffs = {name: [rng.uniform(0.5, 2.0, size=(2, 3)), rng.normal(size=(2, 3))] for name in names}
    coeffs["always"][0][1] = 0.0
    coeffs["always"][1][1] = 0.0  # row 1 of "always" gets exact-zero gradients
    got = student.run(probe_adamw_schedule, init, coeffs, SCHEDULE, hyper)
    want = torch_adamw_schedule(init, coeffs, SCHEDULE, hyper)
    assert len(got) == len(SCHEDULE)
    for k, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        for name in names:
            assert_close(
                mine[name], theirs[name], what=f"{name} after step {k + 1} ({hyper})", **ADAM_TOL
            )


def test_adamw_over_many_steps(student):
    """60 steps, default hyper-parameters but lr 0.01: bias corrections all the way."""
    rng = np.random.default_rng(73)
    init = {"p": rng.normal(size=(4,))}
    coeffs = {"p": [rng.uniform(0.5, 2.0, size=(4,)), rng.normal(size=(4,))]}
    schedule = [["p"]] * 60
    hyper = {"lr": 0.01}
    got = student.run(probe_adamw_schedule, init, coeffs, schedule, hyper)
    want = torch_adamw_schedule(init, coeffs, schedule, hyper)
    for k in (0, 9, 29, 59):
        assert_close(got[k]["p"], want[k]["p"], what=f"p after step {k + 1}", **ADAM_TOL)


def test_adamw_on_the_fast_backend(student):
    """fast: a (2, 3, 4) parameter after 8 steps: torch.optim.AdamW's value, still
    a leaf of its shape on FastTensorBackend, and the next backward reaches it."""
    rng = np.random.default_rng(79)
    init = rng.normal(size=(2, 3, 4))
    coeff = rng.uniform(0.5, 2.0, size=(2, 3, 4))
    got = student.run(probe_adamw_fast, init, coeff, 8)
    p = as_torch(init, requires_grad=True)
    optimizer = torch.optim.AdamW([p], lr=0.1, weight_decay=0.2)
    for _ in range(8):
        optimizer.zero_grad()
        (p * p * as_torch(coeff)).sum().backward()
        optimizer.step()
    assert got["fast"], "the updated parameter left FastTensorBackend"
    assert got["shape"] == [2, 3, 4], f"the updated parameter has shape {got['shape']}"
    assert got["leaf"], "the updated parameter has a history of operations (not a leaf)"
    assert_close(got["value"], p.detach(), what="value after 8 steps", **ADAM_TOL)
    want_grad = 2.0 * p.detach().numpy() * coeff
    assert_close(got["grad"], want_grad, rtol=1e-12, atol=1e-15, what="the next gradient")
