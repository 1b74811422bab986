"""Public tests of task hw3.1: functions of tensors (minitorch/nn_functions.py).

What is checked, against PyTorch (CPU, float64) on the same numbers:

- `softmax`, `logsoftmax`, `logsumexp`, `max`, `tanh` and `GELU`: values and
  the gradient of `sum(f(x) * c)` (c random), for 1-D to 3-D inputs and every
  dimension, negative ones included (rtol 1e-9, atol 1e-12); `logsumexp` and
  `max` keep the reduced dimension with size 1;
- stability: logits of size 1e4 give finite values and the right gradients
  for `softmax`, `logsoftmax`, `logsumexp` and `softmax_loss`; `tanh` and
  `GELU` at +-800 give finite values and gradients;
- `max` with ties: the gradient is split equally among the maxima;
- `softmax_loss`: one loss per position, as `cross_entropy(..., reduction="none")`,
  for 2-D and 3-D logits, with gradients; ValueError for targets that are not
  class ids;
- `gather_rows`: rows picked by ids, the gradient summed over repeated ids;
  ValueError for ids out of range;
- `dropout`: the input's values when `ignore` or `p == 0`, zeros at `p == 1`;
  otherwise exactly the documented draw (`generator.random(x.shape) >= p`),
  the kept fraction within 5 standard deviations of the binomial's mean, kept
  values scaled by 1 / (1 - p), the gradient `c * mask / (1 - p)`, the same
  seed giving the same mask and a generator giving new masks as it advances.

Most tests run on `SimpleBackend` (small inputs, no compilation); those marked
"fast" run on `FastTensorBackend`, whose kernels numba compiles on first use
(several seconds once per session), and again on hw2's `CudaKernelBackend`
where there is a CUDA GPU (float32: rtol 1e-4, atol 1e-5). Those CUDA runs are
for you to check your layers on a GPU; they are skipped without one and never
graded.

How these tests reach your code: as in hw1, through *probes*, top-level
`probe_*` functions that import `minitorch` inside their body and return
NumPy arrays or other plain data (conftest.py explains why).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_models import as_torch, assert_close

pytestmark = [pytest.mark.task("hw3.1"), pytest.mark.time_limit(60)]

TIGHT = {"rtol": 1e-9, "atol": 1e-12}
#: The "fast" tests run on FastTensorBackend and, where there is a CUDA GPU, on
#: hw2's CudaKernelBackend, whose kernels compute in float32 (so looser bounds).
DEVICES = ["fast", pytest.param("cuda", marks=pytest.mark.gpu)]
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_apply(name, x, dim, c, backend_name):
    """`name` (a function of nn_functions) applied to x (along dim, where it
    takes one); its value and the gradient of sum(value * c) for x."""
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch import nn_functions as nf

    if backend_name == "cuda":
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend
    else:
        backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    t = Tensor.make(x.ravel().copy(), x.shape, backend=backend).requires_grad_(True)
    fn = getattr(nf, name)
    out = fn(t) if dim is None else fn(t, dim)
    weights = Tensor.make(c.ravel().copy(), c.shape, backend=backend)
    (out * weights).sum().backward()
    return {"out": out.to_numpy(), "grad": None if t.grad is None else t.grad.to_numpy()}


def probe_softmax_loss(logits, target, c, backend_name):
    """softmax_loss(logits, target), and the gradient of sum(loss * c) for the logits;
    or the name of the exception it raised."""
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch.nn_functions import softmax_loss

    if backend_name == "cuda":
        from minitorch.cuda_kernel_ops import CudaKernelBackend as backend
    else:
        backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    t = Tensor.make(logits.ravel().copy(), logits.shape, backend=backend).requires_grad_(True)
    y = Tensor.make(target.astype(float).ravel(), target.shape, backend=backend)
    try:
        loss = softmax_loss(t, y)
    except ValueError as e:  # the documented error; any other propagates
        return {"error": type(e).__name__}
    (loss * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
    return {"loss": loss.to_numpy(), "grad": None if t.grad is None else t.grad.to_numpy()}


def probe_gather_rows(table, ids, c):
    """gather_rows(table, ids) and the gradient of sum(out * c) for the table;
    or the name of the exception it raised."""
    from minitorch import SimpleBackend, Tensor
    from minitorch.nn_functions import gather_rows

    t = Tensor.make(table.ravel().copy(), table.shape, backend=SimpleBackend)
    t.requires_grad_(True)
    i = Tensor.make(ids.astype(float).ravel(), ids.shape, backend=SimpleBackend)
    try:
        out = gather_rows(t, i)
    except ValueError as e:  # the documented error; any other propagates
        return {"error": type(e).__name__}
    (out * Tensor.make(c.ravel().copy(), c.shape, backend=SimpleBackend)).sum().backward()
    return {"out": out.to_numpy(), "grad": None if t.grad is None else t.grad.to_numpy()}


def probe_dropout(x, p, ignore, seeds, c):
    """dropout(x, p, ignore, generator) once per seed in `seeds` (an int seeds a
    fresh generator each time; "shared" uses one generator seeded 7 for every
    call); the outputs, and the gradient of sum(first output * c)."""
    import numpy as np
    from minitorch import SimpleBackend, Tensor
    from minitorch.nn_functions import dropout

    shared = np.random.default_rng(7)
    outs, grad = [], None
    for k, seed in enumerate(seeds):
        t = Tensor.make(x.ravel().copy(), x.shape, backend=SimpleBackend).requires_grad_(True)
        out = dropout(t, p, ignore, shared if seed == "shared" else seed)
        outs.append(out.to_numpy())
        if k == 0:
            weights = Tensor.make(c.ravel().copy(), c.shape, backend=SimpleBackend)
            (out * weights).sum().backward()
            grad = None if t.grad is None else t.grad.to_numpy()
    return {"outs": outs, "grad": grad}


# ---------------------------------------------------------------------------
# PyTorch's values
# ---------------------------------------------------------------------------


def torch_apply(name, x, dim, c):
    xt = as_torch(x, requires_grad=True)
    fns = {
        "softmax": lambda t: torch.softmax(t, dim),
        "logsoftmax": lambda t: torch.log_softmax(t, dim),
        "logsumexp": lambda t: torch.logsumexp(t, dim, keepdim=True),
        "max": lambda t: torch.amax(t, dim, keepdim=True),
        "tanh": torch.tanh,
        "GELU": lambda t: F.gelu(t, approximate="tanh"),
    }
    out = fns[name](xt)
    (out * as_torch(c)).sum().backward()
    return out.detach().numpy(), xt.grad.numpy()


def check_against_torch(student, name, x, dim, backend="simple", tol=TIGHT):
    keep = name in ("logsumexp", "max")
    out_shape = list(x.shape)
    if keep:
        out_shape[dim] = 1
    c = np.random.default_rng(1).uniform(-1.0, 1.0, size=out_shape)
    got = student.run(probe_apply, name, x, dim, c, backend)
    want_out, want_grad = torch_apply(name, x, dim, c)
    where = f"{name}(x of shape {x.shape}" + ("" if dim is None else f", dim={dim}") + ")"
    assert_close(got["out"], want_out, what=where, **tol)
    assert_close(got["grad"], want_grad, what=f"gradient of sum({where} * c)", **tol)


CASES = [((5,), 0), ((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 4), 0), ((2, 3, 4), 1)]
CASES += [((2, 3, 4), 2), ((2, 3, 4), -2), ((1, 1), 1)]


# ---------------------------------------------------------------------------
# softmax, logsoftmax, logsumexp, max
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "logsoftmax", "logsumexp", "max"])
@pytest.mark.parametrize(("shape", "dim"), CASES)
def test_reductions_match_torch(student, name, shape, dim):
    """Value and gradient along every dimension (negative ones too), against PyTorch."""
    x = np.random.default_rng(sum(shape) + dim).normal(0.0, 3.0, size=shape)
    check_against_torch(student, name, x, dim)


@pytest.mark.parametrize("backend", DEVICES)
@pytest.mark.parametrize("name", ["softmax", "logsoftmax", "logsumexp", "max", "tanh", "GELU"])
def test_functions_on_the_fast_backend(student, name, backend):
    """fast: the same functions on FastTensorBackend (and CUDA), a (4, 6, 9) input,
    last dimension."""
    x = np.random.default_rng(5).normal(0.0, 2.0, size=(4, 6, 9))
    dim = None if name in ("tanh", "GELU") else 2
    check_against_torch(student, name, x, dim, backend, TIGHT if backend == "fast" else FLOAT32)


@pytest.mark.parametrize("name", ["softmax", "logsoftmax", "logsumexp"])
def test_large_logits_do_not_overflow(student, name):
    """Logits of size 1e4 (e^1e4 overflows): finite values and gradients, as PyTorch's."""
    x = np.random.default_rng(2).normal(0.0, 1.0, size=(3, 5)) * 1e4
    x[1] = [1e4, 1e4, -1e4, 0.0, 1e4 - 1.0]
    x[2] = [-1e4] * 5
    check_against_torch(student, name, x, 1)


def test_softmax_rows_sum_to_one(student):
    """Every softmax row sums to 1 and lies in [0, 1]."""
    x = np.random.default_rng(3).normal(0.0, 10.0, size=(6, 7))
    got = student.run(probe_apply, "softmax", x, 1, np.ones((6, 7)), "simple")
    assert np.all(got["out"] >= 0.0) and np.all(got["out"] <= 1.0), "softmax outside [0, 1]"
    assert_close(got["out"].sum(axis=1), np.ones(6), rtol=1e-12, atol=0, what="row sums")


def test_max_splits_the_gradient_among_ties(student):
    """Ties: the gradient of max is split equally among the maxima (as torch.amax)."""
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, -1.0, 4.0, 4.9]])
    c = np.array([[1.0], [2.0], [-3.0]])
    got = student.run(probe_apply, "max", x, 1, c, "simple")
    assert_close(got["out"], [[3.0], [2.0], [5.0]], rtol=0, atol=0, what="max(x, 1)")
    want = [[0.0, 0.5, 0.5, 0.0], [0.5, 0.5, 0.5, 0.5], [-3.0, 0.0, 0.0, 0.0]]
    assert_close(got["grad"], want, rtol=1e-12, atol=0, what="gradient of max with ties")


# ---------------------------------------------------------------------------
# tanh and GELU
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tanh", "GELU"])
def test_elementwise_functions_match_torch(student, name):
    """Values and gradients on a grid from -8 to 8 and random 3-D inputs."""
    check_against_torch(student, name, np.linspace(-8.0, 8.0, 81), None)
    x = np.random.default_rng(4).normal(0.0, 2.0, size=(2, 3, 5))
    check_against_torch(student, name, x, None)


@pytest.mark.parametrize("name", ["tanh", "GELU"])
def test_elementwise_functions_at_extremes(student, name):
    """At +-800 (e^1600 overflows) the values and gradients are finite and PyTorch's."""
    x = np.array([-800.0, -40.0, -1e-9, 0.0, 1e-9, 40.0, 800.0])
    check_against_torch(student, name, x, None)


# ---------------------------------------------------------------------------
# softmax_loss
# ---------------------------------------------------------------------------


def torch_loss(logits, target, c):
    lt = as_torch(logits, requires_grad=True)
    flat = lt.reshape(-1, logits.shape[-1])
    loss = F.cross_entropy(flat, torch.as_tensor(target.reshape(-1)), reduction="none")
    loss = loss.reshape(target.shape)
    (loss * as_torch(c)).sum().backward()
    return loss.detach().numpy(), lt.grad.numpy()


@pytest.mark.parametrize(("lead", "classes", "scale"), [((6,), 5, 2.0), ((2, 3), 4, 2.0)])
def test_softmax_loss_matches_cross_entropy(student, lead, classes, scale):
    """One loss per position (target's shape), and its gradient, as cross_entropy."""
    rng = np.random.default_rng(classes)
    logits = rng.normal(0.0, scale, size=(*lead, classes))
    target = rng.integers(0, classes, size=lead)
    c = rng.uniform(0.5, 1.5, size=lead)
    got = student.run(probe_softmax_loss, logits, target, c, "simple")
    assert "error" not in got, f"softmax_loss raised {got.get('error')}"
    want_loss, want_grad = torch_loss(logits, target, c)
    assert_close(got["loss"], want_loss, what="softmax_loss", **TIGHT)
    assert_close(got["grad"], want_grad, what="gradient of softmax_loss", **TIGHT)


@pytest.mark.parametrize("backend", DEVICES)
def test_softmax_loss_with_large_logits_on_the_fast_backend(student, backend):
    """fast: logits of size 1e4 give finite losses and PyTorch's values and gradients
    (on CUDA within float32's precision at 1e4: 1e-2 absolute)."""
    rng = np.random.default_rng(9)
    logits = rng.normal(0.0, 1.0, size=(4, 7, 11)) * 1e4
    target = rng.integers(0, 11, size=(4, 7))
    c = rng.uniform(0.5, 1.5, size=(4, 7))
    got = student.run(probe_softmax_loss, logits, target, c, backend)
    assert "error" not in got, f"softmax_loss raised {got.get('error')}"
    want_loss, want_grad = torch_loss(logits, target, c)
    tol = TIGHT if backend == "fast" else {"rtol": 1e-4, "atol": 1e-2}
    assert_close(got["loss"], want_loss, what="softmax_loss at 1e4", **tol)
    assert_close(got["grad"], want_grad, what="gradient of softmax_loss at 1e4", **tol)


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (np.array([0.0, 4.0]), "a class id equal to the number of classes"),
        (np.array([-1.0, 0.0]), "a negative class id"),
        (np.array([0.5, 1.0]), "a class id that is not a whole number"),
    ],
)
def test_softmax_loss_rejects_bad_targets(student, target, why):
    """ValueError for targets that are not class ids of the logits."""
    logits = np.zeros((2, 4))
    got = student.run(probe_softmax_loss, logits, target, np.ones(target.shape), "simple")
    assert got.get("error") == "ValueError", f"{why}: expected ValueError, got {got}"


# ---------------------------------------------------------------------------
# gather_rows
# ---------------------------------------------------------------------------


def test_gather_rows_picks_rows_and_sums_gradients(student):
    """Rows of the table by id (any shape of ids); repeated ids add their gradients."""
    rng = np.random.default_rng(11)
    table = rng.normal(size=(5, 3))
    ids = np.array([[0, 2, 2], [4, 0, 2]])
    c = rng.uniform(-1.0, 1.0, size=(2, 3, 3))
    got = student.run(probe_gather_rows, table, ids, c)
    assert "error" not in got, f"gather_rows raised {got.get('error')}"
    assert_close(got["out"], table[ids], rtol=0, atol=0, what="gather_rows(table, ids)")
    want = np.zeros_like(table)
    np.add.at(want, ids.ravel(), c.reshape(-1, 3))
    assert_close(got["grad"], want, rtol=1e-12, atol=1e-15, what="gradient for the table")


@pytest.mark.parametrize("bad", [5, -1])
def test_gather_rows_rejects_ids_out_of_range(student, bad):
    """ValueError for an id outside [0, rows)."""
    got = student.run(probe_gather_rows, np.zeros((5, 2)), np.array([0, bad]), np.ones((2, 2)))
    assert got.get("error") == "ValueError", f"id {bad} of a 5-row table: got {got}"


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------


def test_dropout_is_the_identity_when_ignored_or_p_is_zero(student):
    """ignore=True (evaluation) or p = 0: the output is the input, the gradient is c."""
    x = np.random.default_rng(12).normal(size=(4, 5))
    c = np.random.default_rng(13).normal(size=(4, 5))
    for p, ignore in ((0.5, True), (0.0, False), (1.0, True)):
        got = student.run(probe_dropout, x, p, ignore, [0], c)
        assert_close(got["outs"][0], x, rtol=0, atol=0, what=f"dropout(p={p}, ignore={ignore})")
        assert_close(got["grad"], c, rtol=0, atol=0, what=f"gradient, p={p}, ignore={ignore}")


def test_dropout_draws_the_documented_mask(student):
    """The mask is exactly `generator.random(x.shape) >= p`; kept values are x / (1 - p)."""
    rng = np.random.default_rng(14)
    x = rng.normal(size=(6, 7))
    c = rng.normal(size=(6, 7))
    p = 0.4
    got = student.run(probe_dropout, x, p, False, [123], c)
    keep = np.random.default_rng(123).random(x.shape) >= p
    assert_close(got["outs"][0], np.where(keep, x / (1 - p), 0.0), rtol=1e-12, atol=0, what="out")
    assert_close(got["grad"], np.where(keep, c / (1 - p), 0.0), rtol=1e-12, atol=0, what="grad")


def test_dropout_keeps_the_right_fraction(student):
    """20000 ones, p = 0.3: the kept count is within 5 binomial standard deviations
    of 14000 (|count - 14000| <= 324), every kept value is 1 / 0.7, every other 0."""
    x = np.ones((200, 100))
    got = student.run(probe_dropout, x, 0.3, False, [2024], np.ones((200, 100)))
    out = got["outs"][0]
    kept = out != 0.0
    n, p = x.size, 0.3
    bound = 5 * np.sqrt(n * p * (1 - p))
    assert abs(kept.sum() - n * (1 - p)) <= bound, (
        f"kept {kept.sum()} of {n} with p = 0.3; expected {n * (1 - p):.0f} +- {bound:.0f}"
    )
    assert_close(out[kept], np.full(kept.sum(), 1 / 0.7), rtol=1e-12, atol=0, what="kept values")


def test_dropout_randomness_follows_the_generator(student):
    """The same seed gives the same mask; other seeds, or one generator used twice,
    give other masks; p = 1 gives zeros."""
    x = np.ones((10, 10))
    c = np.ones((10, 10))
    got = student.run(probe_dropout, x, 0.5, False, [5, 5, 6, "shared", "shared"], c)
    first, again, other, shared_1, shared_2 = got["outs"]
    assert np.array_equal(first, again), "the same seed gave different masks"
    assert not np.array_equal(first, other), "seeds 5 and 6 gave the same mask"
    assert not np.array_equal(shared_1, shared_2), "a generator used twice gave the same mask"
    zeros = student.run(probe_dropout, x, 1.0, False, [0], c)
    assert_close(zeros["outs"][0], np.zeros((10, 10)), rtol=0, atol=0, what="dropout(p=1)")
