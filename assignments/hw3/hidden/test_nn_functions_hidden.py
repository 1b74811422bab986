"""Hidden tests of task hw3.1 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- inputs that are not contiguous (permuted views of a tensor stored in
  another order) and output gradients that are not contiguous either (the
  output is used through a permuted view), for every function;
- masked rows, as attention makes them: rows where every entry is -1e9
  (softmax then is uniform; a softmax without the max subtraction divides
  0 by 0), rows with a single unmasked entry, and logits past e^x's range
  (800, -800; 1e4 along a leading dimension);
- `softmax_loss` with one class (loss 0), batch 1 and sequence length 1,
  7 classes, logits of 1e4 with the target at the smallest one (a loss of
  2e4, exactly), non-contiguous logits, and composed with other functions;
- `max` with ties along a leading dimension and on the fast backend;
- `tanh` and `GELU` from 1e-12 to 1e5 in size, on the fast backend too;
- `gather_rows` on a table that is a transposed view, on the fast backend;
- `dropout`: at p = 1 in training the output and the gradient are exact
  zeros (no 0 * inf = nan); the mask of a non-contiguous input is drawn in
  the order of its logical shape; two calls on one generator take two
  consecutive draws (exactly those of NumPy).

Conventions (as in the other hidden tests): the student is called before the
reference; tolerances are explicit (rtol 1e-9, atol 1e-12 against PyTorch in
float64, as in the public tests).
"""

import numpy as np
import pytest
import torch
from test_nn_functions import (
    TIGHT,
    check_against_torch,
    probe_dropout,
    probe_softmax_loss,
    torch_apply,
    torch_loss,
)
from torch_models import as_torch, assert_close

pytestmark = [pytest.mark.task("hw3.1"), pytest.mark.time_limit(60)]

REDUCTIONS = ["softmax", "logsoftmax", "logsumexp", "max"]


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_apply_view(name, x, order, dim, c, backend_name):
    """`name` of nn_functions applied to a permuted view equal to `x` (its tensor
    is stored in another order); the loss is sum(out.permute(reversed) * c
    reversed), so the output gradient is not contiguous either. The value, and
    the gradient for the view (in `x`'s layout)."""
    import numba
    import numpy as np
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch import nn_functions as nf

    backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # tiny inputs: threads only wait for a core
    try:
        inverse = list(np.argsort(order))
        stored = np.transpose(x, inverse)
        base = Tensor.make(stored.ravel().copy(), stored.shape, backend=backend)
        base.requires_grad_(True)
        view = base.permute(*order)
        out = getattr(nf, name)(view) if dim is None else getattr(nf, name)(view, dim)
        back = list(range(out.dims))[::-1]
        weights = np.transpose(c, back)
        w = Tensor.make(weights.ravel().copy(), weights.shape, backend=backend)
        (out.permute(*back) * w).sum().backward()
        grad = None if base.grad is None else np.transpose(base.grad.to_numpy(), order)
        return {"out": out.to_numpy(), "grad": grad}
    finally:
        numba.set_num_threads(threads)


def probe_softmax_loss_view(logits, order, target, c):
    """softmax_loss of logits given as a permuted view (SimpleBackend); the loss
    and the gradient of sum(loss * c) for the view (in `logits`' layout)."""
    import numpy as np
    from minitorch import SimpleBackend, Tensor
    from minitorch.nn_functions import softmax_loss

    stored = np.transpose(logits, list(np.argsort(order)))
    base = Tensor.make(stored.ravel().copy(), stored.shape, backend=SimpleBackend)
    base.requires_grad_(True)
    y = Tensor.make(target.astype(float).ravel(), target.shape, backend=SimpleBackend)
    loss = softmax_loss(base.permute(*order), y)
    (loss * Tensor.make(c.ravel().copy(), c.shape, backend=SimpleBackend)).sum().backward()
    grad = None if base.grad is None else np.transpose(base.grad.to_numpy(), order)
    return {"loss": loss.to_numpy(), "grad": grad}


def probe_composed(x, target):
    """mean(softmax_loss(logsoftmax(GELU(x) * tanh(x), 2) + logsumexp(x, 1) + max(x, 0), target))
    on SimpleBackend: the value and the gradient for x."""
    from minitorch import SimpleBackend, Tensor
    from minitorch import nn_functions as nf

    t = Tensor.make(x.ravel().copy(), x.shape, backend=SimpleBackend).requires_grad_(True)
    y = Tensor.make(target.astype(float).ravel(), target.shape, backend=SimpleBackend)
    h = nf.logsoftmax(nf.GELU(t) * nf.tanh(t), 2) + nf.logsumexp(t, 1) + nf.max(t, 0)
    loss = nf.softmax_loss(h, y).sum() / target.size
    loss.backward()
    return {"loss": loss.item(), "grad": None if t.grad is None else t.grad.to_numpy()}


def probe_gather_view(table, ids, c, backend_name):
    """gather_rows of a table given as the transpose of a stored (width, rows)
    tensor; the rows and the gradient of sum(out * c) for the table."""
    import numba
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch.nn_functions import gather_rows

    backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        stored = table.T
        base = Tensor.make(stored.ravel().copy(), stored.shape, backend=backend)
        base.requires_grad_(True)
        i = Tensor.make(ids.astype(float).ravel(), ids.shape, backend=backend)
        out = gather_rows(base.permute(1, 0), i)
        (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
        grad = None if base.grad is None else base.grad.to_numpy().T
        return {"out": out.to_numpy(), "grad": grad}
    finally:
        numba.set_num_threads(threads)


def probe_dropout_view(x, order, p, seed, c, backend_name):
    """dropout(view, p, generator=seed) of a permuted view equal to `x`; the
    output and the gradient of sum(out * c) for the view (in `x`'s layout)."""
    import numba
    import numpy as np
    from minitorch import FastTensorBackend, SimpleBackend, Tensor
    from minitorch.nn_functions import dropout

    backend = {"simple": SimpleBackend, "fast": FastTensorBackend}[backend_name]
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        stored = np.transpose(x, list(np.argsort(order)))
        base = Tensor.make(stored.ravel().copy(), stored.shape, backend=backend)
        base.requires_grad_(True)
        out = dropout(base.permute(*order), p, False, seed)
        (out * Tensor.make(c.ravel().copy(), c.shape, backend=backend)).sum().backward()
        grad = None if base.grad is None else np.transpose(base.grad.to_numpy(), order)
        return {"out": out.to_numpy(), "grad": grad}
    finally:
        numba.set_num_threads(threads)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def check_view(student, name, x, order, dim, backend="simple", tol=TIGHT):
    """`name` on a permuted view equal to x, against PyTorch on x."""
    out_shape = list(x.shape)
    if name in ("logsumexp", "max"):
        out_shape[dim] = 1
    c = np.random.default_rng(31).uniform(-1.0, 1.0, size=out_shape)
    got = student.run(probe_apply_view, name, x, list(order), dim, c, backend)
    want_out, want_grad = torch_apply(name, x, dim, c)
    where = f"{name} of a permuted view of shape {x.shape} (order {order}), dim={dim}"
    assert_close(got["out"], want_out, what=where, **tol)
    assert_close(got["grad"], want_grad, what=f"gradient of {where}", **tol)


# ---------------------------------------------------------------------------
# Non-contiguous inputs and output gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize(("order", "dim"), [((2, 0, 1), 0), ((1, 2, 0), 1), ((2, 1, 0), -1)])
def test_reductions_of_permuted_views(student, name, order, dim):
    """A (3, 4, 5) view of a tensor stored in another order; the output gradient
    arrives through a permutation too."""
    x = np.random.default_rng(len(name) + dim).normal(0.0, 3.0, size=(3, 4, 5))
    check_view(student, name, x, order, dim)


@pytest.mark.parametrize("name", ["tanh", "GELU"])
def test_elementwise_functions_of_permuted_views(student, name):
    """tanh and GELU of a (2, 3, 4) view stored as (4, 2, 3)."""
    x = np.random.default_rng(6).normal(0.0, 2.0, size=(2, 3, 4))
    check_view(student, name, x, (1, 2, 0), None)


@pytest.mark.parametrize("name", [*REDUCTIONS, "tanh", "GELU"])
def test_permuted_views_on_the_fast_backend(student, name):
    """fast: a (3, 6, 5) view stored as (5, 3, 6), last dimension."""
    x = np.random.default_rng(8).normal(0.0, 2.0, size=(3, 6, 5))
    dim = None if name in ("tanh", "GELU") else 2
    check_view(student, name, x, (1, 2, 0), dim, "fast")


# ---------------------------------------------------------------------------
# Masked rows and logits past the range of exp
# ---------------------------------------------------------------------------

MASK = -1e9


@pytest.mark.parametrize("name", ["softmax", "logsoftmax", "logsumexp", "max"])
def test_masked_rows(student, name):
    """Rows as attention masks them (scores + -1e9): all masked (softmax is then
    uniform, logsumexp is -1e9 + log 6), one entry left, and half masked."""
    rng = np.random.default_rng(17)
    x = rng.normal(0.0, 1.0, size=(4, 6))
    x[0] = MASK
    x[1, 1:] += MASK
    x[2, ::2] += MASK
    check_against_torch(student, name, x, 1)


@pytest.mark.parametrize("name", ["softmax", "logsoftmax", "logsumexp"])
def test_logits_past_the_range_of_exp(student, name):
    """e^800 overflows and e^-800 underflows: rows of +-800, and 1e4 along
    dimension 0 of a 3-D input."""
    x = np.array([[800.0, 799.0, -800.0, 0.0], [-800.0, -800.0, -799.5, -801.0]])
    check_against_torch(student, name, x, 1)
    big = np.random.default_rng(4).normal(0.0, 1.0, size=(3, 2, 4)) * 1e4
    check_against_torch(student, name, big, 0)


def test_max_ties_along_a_leading_dimension(student):
    """Ties along dimension 0 of a 3-D input: the gradient is split among the maxima."""
    x = np.zeros((3, 2, 2))
    x[:, 0, 0] = [1.0, 1.0, 1.0]
    x[:, 0, 1] = [2.0, -1.0, 2.0]
    x[:, 1, 0] = [-5.0, 4.0, 3.0]
    x[:, 1, 1] = [MASK, MASK, MASK]
    check_against_torch(student, "max", x, 0)


def test_max_ties_on_the_fast_backend(student):
    """fast: whole numbers in [0, 3) (many ties) along the last dimension."""
    x = np.random.default_rng(9).integers(0, 3, size=(4, 5, 6)).astype(float)
    check_view(student, "max", x, (0, 1, 2), 2, "fast")


# ---------------------------------------------------------------------------
# tanh and GELU
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tanh", "GELU"])
def test_elementwise_functions_over_many_magnitudes(student, name):
    """From 1e-12 to 1e5 in size, both signs, values and gradients as PyTorch's."""
    mags = np.array([1e-12, 1e-6, 0.01, 0.5, 1.0, 2.5, 5.0, 12.0, 20.0, 40.0, 700.0, 1e5])
    x = np.concatenate([-mags[::-1], [0.0], mags])
    check_against_torch(student, name, x, None)


# ---------------------------------------------------------------------------
# softmax_loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lead", "classes"), [((1,), 1), ((3,), 1), ((1, 1), 7), ((1, 4), 7), ((5, 1), 7)]
)
def test_softmax_loss_degenerate_shapes(student, lead, classes):
    """One class (every loss 0, every gradient 0), batch 1, sequences of one token."""
    rng = np.random.default_rng(classes * 10 + len(lead))
    logits = rng.normal(0.0, 2.0, size=(*lead, classes))
    target = rng.integers(0, classes, size=lead)
    c = rng.uniform(0.5, 1.5, size=lead)
    got = student.run(probe_softmax_loss, logits, target, c, "simple")
    assert "error" not in got, f"softmax_loss raised {got.get('error')}"
    want_loss, want_grad = torch_loss(logits, target, c)
    assert_close(got["loss"], want_loss, what=f"softmax_loss, logits {logits.shape}", **TIGHT)
    assert_close(got["grad"], want_grad, what=f"gradient, logits {logits.shape}", **TIGHT)


def test_softmax_loss_of_a_far_off_target(student):
    """Logits 1e4 and -1e4: the target at -1e4 loses exactly 2e4 (finite), its
    gradient is -1 there and +1 at the maximum."""
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [MASK, 0.0, MASK]])
    target = np.array([1, 2, 0])
    c = np.ones(3)
    got = student.run(probe_softmax_loss, logits, target, c, "simple")
    assert "error" not in got, f"softmax_loss raised {got.get('error')}"
    want_loss, want_grad = torch_loss(logits, target, c)
    assert np.all(np.isfinite(got["loss"])), f"non-finite losses {got['loss']}"
    assert_close(got["loss"], want_loss, what="softmax_loss at 1e4 and -1e9", **TIGHT)
    assert_close(got["grad"], want_grad, what="gradient at 1e4 and -1e9", **TIGHT)


def test_softmax_loss_of_a_permuted_view(student):
    """Logits (2, 3, 7) given as a view of a (7, 2, 3) tensor."""
    rng = np.random.default_rng(23)
    logits = rng.normal(0.0, 3.0, size=(2, 3, 7))
    target = rng.integers(0, 7, size=(2, 3))
    c = rng.uniform(0.5, 1.5, size=(2, 3))
    got = student.run(probe_softmax_loss_view, logits, [1, 2, 0], target, c)
    want_loss, want_grad = torch_loss(logits, target, c)
    assert_close(got["loss"], want_loss, what="softmax_loss of a view", **TIGHT)
    assert_close(got["grad"], want_grad, what="gradient of softmax_loss of a view", **TIGHT)


def test_composed_functions_match_the_reference(student, reference):
    """A loss composed of every function: its value and gradient, against the
    reference and PyTorch."""
    rng = np.random.default_rng(29)
    x = rng.normal(0.0, 2.0, size=(2, 3, 5))
    target = rng.integers(0, 5, size=(2, 3))
    got = student.run(probe_composed, x, target)
    want = reference.run(probe_composed, x, target)
    xt = as_torch(x, requires_grad=True)
    h = torch.log_softmax(torch.nn.functional.gelu(xt, approximate="tanh") * torch.tanh(xt), 2)
    h = h + torch.logsumexp(xt, 1, keepdim=True) + torch.amax(xt, 0, keepdim=True)
    loss = torch.nn.functional.cross_entropy(h.reshape(-1, 5), torch.as_tensor(target.ravel()))
    loss.backward()
    assert_close(want["loss"], loss.item(), what="reference's loss", **TIGHT)
    assert_close(got["loss"], want["loss"], what="composed loss", **TIGHT)
    assert_close(got["grad"], want["grad"], what="gradient of the composed loss", **TIGHT)
    assert_close(got["grad"], xt.grad, what="gradient of the composed loss", **TIGHT)


# ---------------------------------------------------------------------------
# gather_rows
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["simple", "fast"])
def test_gather_rows_of_a_transposed_table(student, backend):
    """A (7, 6) table given as the transpose of a (6, 7) tensor; 3-D ids with
    repeats; the gradient sums over repeated ids."""
    rng = np.random.default_rng(37)
    table = rng.normal(size=(7, 6))
    ids = rng.integers(0, 7, size=(2, 3, 4))
    ids[0, 0, :] = 3
    c = rng.uniform(-1.0, 1.0, size=(2, 3, 4, 6))
    got = student.run(probe_gather_view, table, ids, c, backend)
    assert_close(got["out"], table[ids], rtol=0, atol=0, what="rows of a transposed table")
    want = np.zeros_like(table)
    np.add.at(want, ids.ravel(), c.reshape(-1, 6))
    assert_close(got["grad"], want, rtol=1e-12, atol=1e-15, what="gradient for the table")


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------


def test_dropout_at_p_one_gives_exact_zeros(student):
    """Training mode, p = 1: every output and every gradient is 0.0 (not nan:
    the scale 1 / (1 - p) must not be multiplied by the zeros of the mask)."""
    x = np.random.default_rng(41).normal(size=(3, 4)) * 1e3
    c = np.ones((3, 4))
    got = student.run(probe_dropout, x, 1.0, False, [0, "shared"], c)
    for k, out in enumerate(got["outs"]):
        assert np.all(np.isfinite(out)), f"dropout(p=1), call {k}: non-finite values {out}"
        assert_close(out, np.zeros((3, 4)), rtol=0, atol=0, what=f"dropout(p=1), call {k}")
    assert got["grad"] is not None, "dropout(p=1): no gradient for x"
    assert np.all(np.isfinite(got["grad"])), f"dropout(p=1): gradient {got['grad']}"
    assert_close(got["grad"], np.zeros((3, 4)), rtol=0, atol=0, what="gradient at p=1")


def test_dropout_calls_take_consecutive_draws(student):
    """Two calls on one generator (seeded 7) use `random(x.shape)` twice, in turn."""
    x = np.random.default_rng(43).normal(size=(5, 4))
    c = np.ones((5, 4))
    got = student.run(probe_dropout, x, 0.35, False, ["shared", "shared"], c)
    rng = np.random.default_rng(7)
    for k, out in enumerate(got["outs"]):
        keep = rng.random(x.shape) >= 0.35
        want = np.where(keep, x / 0.65, 0.0)
        assert_close(out, want, rtol=1e-12, atol=0, what=f"call {k + 1} on one generator")


@pytest.mark.parametrize("backend", ["simple", "fast"])
def test_dropout_of_a_permuted_view(student, backend):
    """The mask of a (3, 4, 5) view stored as (5, 3, 4) is drawn over the view's
    shape: `generator.random((3, 4, 5)) >= p`; the gradient follows it."""
    rng = np.random.default_rng(47)
    x = rng.normal(size=(3, 4, 5))
    c = rng.normal(size=(3, 4, 5))
    got = student.run(probe_dropout_view, x, [1, 2, 0], 0.3, 99, c, backend)
    keep = np.random.default_rng(99).random(x.shape) >= 0.3
    assert_close(got["out"], np.where(keep, x / 0.7, 0.0), rtol=1e-12, atol=0, what="out")
    assert_close(got["grad"], np.where(keep, c / 0.7, 0.0), rtol=1e-12, atol=0, what="grad")
