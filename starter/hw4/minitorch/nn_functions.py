"""Functions of tensors that a Transformer needs (task hw3.1).

    >>> x = tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    >>> p = softmax(x, dim=1)          # rows that sum to 1
    >>> loss = softmax_loss(x, tensor([2.0]))   # -log p[0, 2]

Each function is either a new differentiable `Function` (a class with
`forward` and `backward`, as in `minitorch.tensor_functions`) or a plain
function that composes tensor operations (autodiff then finds its gradient).
Everything computes with the backend operations of hw1 (`t.f.exp_map`,
`t.f.add_zip`, `t.f.add_reduce`, ...) or the operators of `Tensor`, so the
same code runs on `SimpleBackend`, `FastTensorBackend` and, after hw2,
`CudaKernelBackend`. Only operators the CUDA kernels know may be mapped,
zipped or reduced: add, mul, id, neg, lt, eq, sigmoid, relu, log, exp, inv,
max and their `_back` forms.

Conventions:

- `dim` may be negative (counted from the end, as in PyTorch);
- reductions (`max`, `logsumexp`) keep `dim` with size 1, like `Tensor.sum`;
- numbers are float64; integer inputs (class ids, token ids) are tensors
  holding whole numbers.

Speed (what the given helpers are for): the fast backend's `zip` takes a
fast path only when both inputs have the output's shape and strides; a
broadcast one (`x * 0.5`, `x - row_max`, `x + bias`) costs an index
computation per element, tens of times more, and so does the gradient of
`Tensor.sum`, which is spread back the same way. Hence:

- `full_like(x, c)` makes a same-shape constant: `x * full_like(x, 0.5)`;
- `broadcast(a, shape)` (inside a `Function`) and `expand(x, shape)` (with
  autodiff) copy a tensor to a larger shape quickly when the copies are
  along leading dimensions (`(D,)` to `(N, D)`) or trailing ones (`(N, 1)`
  to `(N, D)`): as a matrix product with a vector of ones, which has no
  per-element index computation;

so `x - expand(row_max, x.shape)` costs a few per cent of `x - row_max`.
Both forms give the same numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from . import operators
from .tensor import Tensor
from .tensor_functions import Function

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .autodiff import Context
    from .tensor_ops import TensorBackend

__all__ = [
    "GELU",
    "broadcast",
    "dropout",
    "expand",
    "full",
    "full_like",
    "gather_rows",
    "logsoftmax",
    "logsumexp",
    "max",
    "max_reduce",
    "one_hot",
    "softmax",
    "softmax_loss",
    "tanh",
]

# ---------------------------------------------------------------------------
# Helpers (given)
# ---------------------------------------------------------------------------

_MAX_REDUCERS: dict[int, tuple[TensorBackend, Callable[[Tensor, int], Tensor]]] = {}


def max_reduce(backend: TensorBackend) -> Callable[[Tensor, int], Tensor]:
    """The backend's reduce with `operators.max`, starting from -inf: `ret(a, dim)`.

    A `TensorBackend` has no max reduce of its own; this builds one from its
    ops class once per backend (the fast backend compiles it on first use).
    """
    key = id(backend)
    if key not in _MAX_REDUCERS:
        _MAX_REDUCERS[key] = (backend, backend.ops.reduce(operators.max, -math.inf))
    return _MAX_REDUCERS[key][1]


def full_like(t: Tensor, value: float) -> Tensor:
    """A constant tensor of `t`'s shape and backend with every element `value`."""
    return full(t.shape, value, t.backend)


def full(shape: Sequence[int], value: float, backend: TensorBackend) -> Tensor:
    """A constant tensor of `shape` on `backend` with every element `value`."""
    shape = tuple(int(n) for n in shape)
    return Tensor.make(np.full(int(np.prod(shape)), float(value)), shape, backend=backend)


def broadcast(a: Tensor, shape: Sequence[int]) -> Tensor:
    """`a` copied to `shape` (which `a`'s shape broadcasts to), as a new
    contiguous tensor without history: backend operations, for use inside a
    `Function`. `a` itself when it already has that shape.

    When the copies run along leading dimensions (`a` is `(1, .., 1, S...)`,
    `shape` is `(M..., S...)`) this is `ones(M, 1) @ a.view(1, S)`; along
    trailing ones (`a` is `(M..., 1, .., 1)`) it is `a.view(M, 1) @ ones(1, S)`.
    Other patterns take the backend's general (slower) map.
    """
    shape = tuple(int(n) for n in shape)
    if a.shape == shape:
        return a
    padded = (1,) * (len(shape) - a.dims) + a.shape
    if len(padded) != len(shape) or any(
        p not in (1, n) for p, n in zip(padded, shape, strict=True)
    ):
        raise ValueError(f"cannot broadcast shape {a.shape} to {shape}")
    f = a.f
    flat = f.id_map(a)  # a contiguous copy: its storage holds exactly its elements
    for split in range(len(shape) + 1):
        lead, rest = int(np.prod(shape[:split])), int(np.prod(shape[split:]))
        if padded[split:] == shape[split:] and all(p == 1 for p in padded[:split]):
            row = Tensor.make(flat._tensor._storage, (1, rest), backend=a.backend)
            out = f.matrix_multiply(full((lead, 1), 1.0, a.backend), row)
            return Tensor.make(out._tensor._storage, shape, backend=a.backend)
        if padded[:split] == shape[:split] and all(p == 1 for p in padded[split:]):
            column = Tensor.make(flat._tensor._storage, (lead, 1), backend=a.backend)
            out = f.matrix_multiply(column, full((1, rest), 1.0, a.backend))
            return Tensor.make(out._tensor._storage, shape, backend=a.backend)
    out = a.zeros(shape)
    f.id_map(a, out)
    return out


class Expand(Function):
    """`a` broadcast to `shape` (a tensor holding the sizes); see `broadcast`.

    Each element of `a` is copied to several places, so its gradient is the
    sum of theirs: `backward` returns the output gradient as it is, and
    `Tensor.chain_rule` sums it down to `a`'s shape (with fast reductions).
    """

    @staticmethod
    def forward(ctx: Context, a: Tensor, shape: Tensor) -> Tensor:
        return broadcast(a, [int(shape[i]) for i in range(shape.size)])

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        return grad_output, 0.0


def expand(x: Tensor, shape: Sequence[int]) -> Tensor:
    """`x` broadcast to `shape`, with autodiff (see `broadcast` and `Expand`):
    `x + expand(b, x.shape)` equals `x + b`, faster."""
    if tuple(shape) == x.shape:
        return x
    return Expand.apply(x, Tensor.make([float(n) for n in shape], (len(shape),)))


def one_hot(target: Tensor, num_classes: int) -> Tensor:
    """A constant tensor of shape `(*target.shape, num_classes)`: 1.0 at each
    target's class, 0.0 elsewhere. ValueError for ids that are not whole
    numbers in `[0, num_classes)`."""
    ids = _class_ids(target, num_classes, "class id")
    out = np.zeros((ids.size, num_classes))
    out[np.arange(ids.size), ids.ravel()] = 1.0
    return Tensor.make(out.ravel(), (*target.shape, num_classes), backend=target.backend)


def _class_ids(target: Tensor, n: int, what: str) -> np.ndarray:
    """The whole numbers of `target` as an int64 array; ValueError outside [0, n)."""
    values = target.to_numpy()
    ids = values.astype(np.int64)
    if not np.array_equal(ids, values) or (ids.size and (ids.min() < 0 or ids.max() >= n)):
        raise ValueError(f"every {what} must be a whole number in [0, {n})")
    return ids


def _dim(t: Tensor, dim: int) -> int:
    """`dim` counted from the front; IndexError when `t` has no such dimension."""
    if not -t.dims <= dim < t.dims:
        raise IndexError(f"dimension {dim} of a {t.dims}-D tensor")
    return dim % t.dims


# ---------------------------------------------------------------------------
# Functions (task hw3.1)
# ---------------------------------------------------------------------------


class Max(Function):
    """The largest element along `dim` (a 1-element tensor); `dim` kept with size 1.

    Gradient: d max / d a_i is 1 for the element that is the maximum and 0
    for the others. When several elements tie for the maximum the gradient
    is split equally among them (as `torch.amax` does): each gets
    `grad / count`, so the total is still `grad`.

    Plan: forward with `max_reduce`; backward: the mask `a == max` (1.0 at
    the maxima), the count of maxima along `dim`, and the mask times
    `grad / count`.
    """

    @staticmethod
    def forward(ctx: Context, a: Tensor, dim: Tensor) -> Tensor:
        d = int(dim.item())
        out = max_reduce(a.backend)(a, d)
        ctx.save_for_backward(a, out, d)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        a, out, d = ctx.saved_values
        f = grad_output.f
        mask = f.eq_zip(a, broadcast(out, a.shape))
        share = f.mul_zip(grad_output, f.inv_map(f.add_reduce(mask, d)))
        return f.mul_zip(mask, broadcast(share, a.shape)), 0.0


class Tanh(Function):
    """tanh(a) = (e^a - e^-a) / (e^a + e^-a); tanh'(a) = 1 - tanh(a)^2.

    Neither form is safe as written (e^a overflows for large a). With the
    sigmoid s(z) = 1 / (1 + e^-z), which the backend computes stably:

        tanh(a) = s(2a) - s(-2a)        tanh'(a) = 4 s(2a) s(-2a)

    (the derivative form avoids 1 - tanh^2, which loses every digit when
    tanh is close to 1). Plan: forward computes and saves both sigmoids;
    backward multiplies them (times 4) with the output gradient.
    """

    @staticmethod
    def forward(ctx: Context, a: Tensor) -> Tensor:
        f = a.f
        two_a = f.add_zip(a, a)
        up = f.sigmoid_map(two_a)
        down = f.sigmoid_map(f.neg_map(two_a))
        ctx.save_for_backward(up, down)
        return f.add_zip(up, f.neg_map(down))

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        up, down = ctx.saved_values
        f = grad_output.f
        slope = f.mul_zip(f.mul_zip(up, down), full_like(up, 4.0))
        return f.mul_zip(grad_output, slope)


class Gelu(Function):
    """GELU, tanh form (GPT-2; `torch.nn.functional.gelu(x, approximate="tanh")`):

        gelu(x) = 0.5 x (1 + tanh(u)),   u = c (x + 0.044715 x^3),   c = sqrt(2 / pi)

    Since 0.5 (1 + tanh(u)) = s(2u) with the sigmoid s, gelu(x) = x s(2u)
    and, with s' = s (1 - s) = s(2u) s(-2u),

        gelu'(x) = s(2u) + x s(2u) s(-2u) 2c (1 + 3 * 0.044715 x^2)

    Plan: forward computes z = 2u, s(z) and s(-z) (saved, with x), returns
    x s(z); backward evaluates gelu'(x) from the saved values.
    """

    @staticmethod
    def forward(ctx: Context, x: Tensor) -> Tensor:
        f = x.f
        c = math.sqrt(2.0 / math.pi)
        x_squared = f.mul_zip(x, x)
        inner = f.add_zip(full_like(x, 1.0), f.mul_zip(x_squared, full_like(x, 0.044715)))
        z = f.mul_zip(f.mul_zip(x, inner), full_like(x, 2.0 * c))
        up = f.sigmoid_map(z)
        down = f.sigmoid_map(f.neg_map(z))
        ctx.save_for_backward(x, x_squared, up, down)
        return f.mul_zip(x, up)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        x, x_squared, up, down = ctx.saved_values
        f = grad_output.f
        c = math.sqrt(2.0 / math.pi)
        dz = f.add_zip(
            full_like(x, 2.0 * c), f.mul_zip(x_squared, full_like(x, 6.0 * c * 0.044715))
        )
        slope = f.add_zip(up, f.mul_zip(f.mul_zip(x, f.mul_zip(up, down)), dz))
        return f.mul_zip(grad_output, slope)


class Softmax(Function):
    """softmax(a)_i = e^{a_i} / sum_j e^{a_j} along `dim` (a 1-element tensor).

    Stable: with m = max_j a_j, softmax(a)_i = e^{a_i - m} / sum_j e^{a_j - m},
    where every exponent is <= 0 (no overflow) and one term is 1 (no 0 / 0).

    Gradient, with p = softmax(a) and output gradient g:
    grad_i = p_i (g_i - sum_j g_j p_j).

    Plan: forward: max, shift, exp, divide by the sum (save p); backward:
    the formula above with one sum along `dim`.
    """

    @staticmethod
    def forward(ctx: Context, a: Tensor, dim: Tensor) -> Tensor:
        f = a.f
        d = int(dim.item())
        m = max_reduce(a.backend)(a, d)
        e = f.exp_map(f.add_zip(a, broadcast(f.neg_map(m), a.shape)))
        p = f.mul_zip(e, broadcast(f.inv_map(f.add_reduce(e, d)), a.shape))
        ctx.save_for_backward(p, d)
        return p

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        p, d = ctx.saved_values
        f = grad_output.f
        dot = f.add_reduce(f.mul_zip(grad_output, p), d)
        return f.mul_zip(p, f.add_zip(grad_output, broadcast(f.neg_map(dot), p.shape))), 0.0


class LogSoftmax(Function):
    """logsoftmax(a)_i = a_i - logsumexp(a) along `dim` (a 1-element tensor).

    Stable: logsumexp(a) = m + log(sum_j e^{a_j - m}) with m = max_j a_j,
    so logsoftmax(a)_i = (a_i - m) - log(sum_j e^{a_j - m}); the sum is at
    least 1, so the log is finite.

    Gradient, with output o and output gradient g:
    grad_i = g_i - e^{o_i} sum_j g_j   (e^{o} is the softmax).

    Plan: forward: max, shift, log of the sum of exps, subtract (save the
    output); backward: the formula above.
    """

    @staticmethod
    def forward(ctx: Context, a: Tensor, dim: Tensor) -> Tensor:
        f = a.f
        d = int(dim.item())
        m = max_reduce(a.backend)(a, d)
        shifted = f.add_zip(a, broadcast(f.neg_map(m), a.shape))
        log_total = f.log_map(f.add_reduce(f.exp_map(shifted), d))
        out = f.add_zip(shifted, broadcast(f.neg_map(log_total), a.shape))
        ctx.save_for_backward(out, d)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        out, d = ctx.saved_values
        f = grad_output.f
        total = broadcast(f.add_reduce(grad_output, d), out.shape)
        return f.add_zip(grad_output, f.neg_map(f.mul_zip(f.exp_map(out), total))), 0.0


class LogSumExp(Function):
    """logsumexp(a) = log(sum_j e^{a_j}) along `dim` (a 1-element tensor); `dim`
    kept with size 1.

    Stable: m + log(sum_j e^{a_j - m}) with m = max_j a_j.
    Gradient: grad_i = g e^{a_i - logsumexp(a)} (the softmax times the output
    gradient g, which has size 1 along `dim`).

    Plan: forward as above (save the input and the output); backward: the
    formula above.
    """

    @staticmethod
    def forward(ctx: Context, a: Tensor, dim: Tensor) -> Tensor:
        f = a.f
        d = int(dim.item())
        m = max_reduce(a.backend)(a, d)
        total = f.add_reduce(f.exp_map(f.add_zip(a, broadcast(f.neg_map(m), a.shape))), d)
        out = f.add_zip(m, f.log_map(total))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        a, out = ctx.saved_values
        f = grad_output.f
        p = f.exp_map(f.add_zip(a, broadcast(f.neg_map(out), a.shape)))
        return f.mul_zip(p, broadcast(grad_output, a.shape)), 0.0


class SoftmaxLoss(Function):
    """Cross-entropy along `dim` (a 1-element tensor) of `logits` against a
    constant one-hot tensor `target` of the same shape; `dim` kept with size 1:

        loss = logsumexp(logits) - sum_i target_i logits_i

    Stable as in `LogSumExp`: with m the maximum and z = logits - m,
    loss = log(sum_i e^{z_i}) - sum_i target_i z_i (the one-hot sums to 1).
    Gradient: grad_i = g (softmax(logits)_i - target_i), with g the output
    gradient (size 1 along `dim`); `target` gets none.

    Plan: forward: max, shift, exp, both sums, the difference (save the exps,
    the inverse of their sum and the target); backward: the formula above.
    """

    @staticmethod
    def forward(ctx: Context, logits: Tensor, target: Tensor, dim: Tensor) -> Tensor:
        f = logits.f
        d = int(dim.item())
        m = max_reduce(logits.backend)(logits, d)
        shifted = f.add_zip(logits, broadcast(f.neg_map(m), logits.shape))
        e = f.exp_map(shifted)
        total = f.add_reduce(e, d)
        picked = f.add_reduce(f.mul_zip(shifted, target), d)
        ctx.save_for_backward(e, f.inv_map(total), target)
        return f.add_zip(f.log_map(total), f.neg_map(picked))

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float, float]:
        e, inv_total, target = ctx.saved_values
        f = grad_output.f
        p = f.mul_zip(e, broadcast(inv_total, e.shape))
        diff = f.add_zip(p, f.neg_map(target))
        return f.mul_zip(diff, broadcast(grad_output, e.shape)), 0.0, 0.0


class GatherRows(Function):
    """Rows of a 2-D `table` picked by whole-number `ids` of any shape:
    `out[i..., :] = table[ids[i...], :]`, of shape `(*ids.shape, table.shape[1])`.

    This is an embedding lookup. No map, zip, reduce or matrix product picks
    rows, and multiplying a one-hot matrix by the table would cost
    `num_rows` times more, so this function indexes the NumPy storages
    directly (they live on the host for every backend).

    Gradient for `table`: every row receives the sum of the output gradients
    of the positions that picked it (a row picked twice gets both; a row never
    picked gets 0). `ids` gets no gradient.

    Plan: forward: the ids as integers (`ids.to_numpy()`), the table's values
    as a `(num_rows, width)` array, NumPy indexing, a new tensor; backward:
    a zero array of the table's shape and `np.add.at` (which, unlike `+=`
    with fancy indexing, adds every repeated id).
    """

    @staticmethod
    def forward(ctx: Context, table: Tensor, ids: Tensor) -> Tensor:
        rows, width = table.shape
        picked = _class_ids(ids, rows, "id").ravel()
        values = table.to_numpy()[picked]
        ctx.save_for_backward(picked, table.shape)
        return Tensor.make(values.ravel(), (*ids.shape, width), backend=table.backend)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        picked, table_shape = ctx.saved_values
        grad = np.zeros(table_shape)
        np.add.at(grad, picked, grad_output.to_numpy().reshape(len(picked), table_shape[1]))
        return Tensor.make(grad.ravel(), table_shape, backend=grad_output.backend), 0.0


# ---------------------------------------------------------------------------
# The functions to call (task hw3.1)
# ---------------------------------------------------------------------------


def max(x: Tensor, dim: int) -> Tensor:
    """The maximum of `x` along `dim`, with `dim` kept (size 1); see `Max`."""
    return Max.apply(x, x._ensure_tensor(_dim(x, dim)))


def tanh(x: Tensor) -> Tensor:
    """tanh of every element of `x`; see `Tanh`."""
    return Tanh.apply(x)


def GELU(x: Tensor) -> Tensor:
    """GELU (tanh form) of every element of `x`; see `Gelu`."""
    return Gelu.apply(x)


def softmax(x: Tensor, dim: int) -> Tensor:
    """softmax of `x` along `dim` (same shape as `x`); see `Softmax`."""
    return Softmax.apply(x, x._ensure_tensor(_dim(x, dim)))


def logsoftmax(x: Tensor, dim: int) -> Tensor:
    """log of the softmax of `x` along `dim` (same shape as `x`); see `LogSoftmax`."""
    return LogSoftmax.apply(x, x._ensure_tensor(_dim(x, dim)))


def logsumexp(x: Tensor, dim: int) -> Tensor:
    """log(sum(exp(x))) along `dim`, with `dim` kept (size 1); see `LogSumExp`."""
    return LogSumExp.apply(x, x._ensure_tensor(_dim(x, dim)))


def gather_rows(table: Tensor, ids: Tensor) -> Tensor:
    """The rows of `table` (2-D) picked by `ids`; see `GatherRows`. ValueError
    for an id that is not a whole number in `[0, table.shape[0])`."""
    if table.dims != 2:
        raise ValueError(f"gather_rows needs a 2-D table, not shape {table.shape}")
    return GatherRows.apply(table, ids)


def softmax_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of `logits` (shape `(..., C)`) against class ids `target`
    (shape `(...)`, whole numbers in `[0, C)`), one loss per position:

        loss[i...] = logsumexp(logits[i..., :]) - logits[i..., target[i...]]
                   = -logsoftmax(logits)[i..., target[i...]]

    The result has `target`'s shape (no mean: the caller averages, possibly
    leaving out padding positions). Equal to PyTorch's
    `cross_entropy(logits, target, reduction="none")` for 2-D logits.

    Plan: `SoftmaxLoss` over the last dimension with the one-hot targets
    (`one_hot`), viewed with `target`'s shape. (Composing `logsoftmax`, a
    product with the one-hot tensor and a sum gives the same numbers, with
    more operations.)

    Raises:
        ValueError: when the shapes do not fit or a target is not a class id.
    """
    if logits.dims < 2 or tuple(target.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"logits of shape {logits.shape} do not fit targets of {target.shape}")
    dim = logits._ensure_tensor(logits.dims - 1)
    loss = SoftmaxLoss.apply(logits, one_hot(target, logits.shape[-1]), dim)
    return loss.view(*target.shape)


def dropout(
    x: Tensor,
    p: float,
    ignore: bool = False,
    generator: np.random.Generator | int | None = None,
) -> Tensor:
    """Inverted dropout: each element of `x` is zeroed with probability `p`,
    the others are scaled by 1 / (1 - p), so the expected value is `x`.

    `x` itself (the same tensor) when `ignore` is true (evaluation) or
    `p == 0`; zeros when `p == 1`. The random draw is exactly
    `u = generator.random(x.shape)`, keeping the elements where `u >= p`:
    with a `numpy.random.Generator` the draw advances it; an int is a seed
    (`numpy.random.default_rng(seed)`), so the same seed gives the same mask;
    None draws from a fresh unseeded generator.

    Plan: the keep mask with NumPy, times the scale, as a constant tensor of
    `x`'s shape; multiply.

    Raises:
        ValueError: when `p` is not in [0, 1].
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], not {p}")
    if ignore or p == 0.0:
        return x
    rng = generator
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    keep = rng.random(x.shape) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = Tensor.make(np.where(keep, scale, 0.0).ravel(), x.shape, backend=x.backend)
    return x * mask
