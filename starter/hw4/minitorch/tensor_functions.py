"""Differentiable functions of tensors, and functions that make tensors.

Like the scalar functions of task hw1.2, each function is a class with a
`forward(ctx, *inputs)` and a `backward(ctx, grad_output)`; here the inputs,
outputs and gradients are whole tensors. `Function.apply` handles the
history, so `forward` and `backward` only compute.

Compute with the tensor backend of the inputs (`t.f`, a `TensorBackend` of
`minitorch.tensor_ops`): `t.f.add_zip(a, b)`, `t.f.neg_map(a)`,
`t.f.add_reduce(a, dim)`, `t.f.relu_back_zip(a, grad)`... Never loop over
elements here: the backend does that, and task hw1.5 swaps in a fast one.

Shapes in `backward`: `grad_output` has the shape of the function's output.
Each returned gradient must have the shape of its input *or one that
broadcasts to it*: `Tensor.chain_rule` sums a broadcast gradient back down to
the input's shape (`Tensor.expand`), so `Add.backward` may simply return
`grad_output` twice, even when one input was broadcast.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np

from . import operators
from .autodiff import Context
from .tensor_ops import SimpleBackend, TensorBackend

if TYPE_CHECKING:
    from collections.abc import Callable

    from .tensor import Tensor
    from .tensor_data import UserIndex, UserShape

# The function classes share names with the scalar ones (`Add`, `Mul`, ...):
# reach them as `minitorch.tensor_functions.Add`.
__all__ = [
    "Function",
    "grad_central_difference",
    "grad_check",
    "ones",
    "rand",
    "tensor",
    "zeros",
]


def wrap_tuple(x: Any) -> tuple[Any, ...]:
    return x if isinstance(x, tuple) else (x,)


class Function:
    """A differentiable function of tensors; subclasses define `forward` and `backward`."""

    @classmethod
    def _backward(cls, ctx: Context, grad_out: Tensor) -> tuple[Tensor, ...]:
        return wrap_tuple(cls.backward(ctx, grad_out))  # type: ignore[attr-defined]

    @classmethod
    def _forward(cls, ctx: Context, *inps: Tensor) -> Tensor:
        return cls.forward(ctx, *inps)  # type: ignore[attr-defined]

    @classmethod
    def apply(cls, *vals: Tensor) -> Tensor:
        """Apply the function, recording the history when any input needs a gradient."""
        from .tensor import History, Tensor

        raw = []
        need_grad = False
        for v in vals:
            if v.requires_grad():
                need_grad = True
            raw.append(v.detach())
        ctx = Context(not need_grad)
        c = cls._forward(ctx, *raw)
        back = History(cls, ctx, vals) if need_grad else None
        return Tensor(c._tensor, back, backend=c.backend)


# ---------------------------------------------------------------------------
# The functions (task hw1.4)
# ---------------------------------------------------------------------------


class Neg(Function):
    """f(a) = -a"""

    @staticmethod
    def forward(ctx: Context, t1: Tensor) -> Tensor:
        return t1.f.neg_map(t1)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        return grad_output.f.neg_map(grad_output)


class Inv(Function):
    """f(a) = 1 / a"""

    @staticmethod
    def forward(ctx: Context, t1: Tensor) -> Tensor:
        ctx.save_for_backward(t1)
        return t1.f.inv_map(t1)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        (t1,) = ctx.saved_values
        return grad_output.f.inv_back_zip(t1, grad_output)


class Add(Function):
    """f(a, b) = a + b (broadcasting)"""

    @staticmethod
    def forward(ctx: Context, t1: Tensor, t2: Tensor) -> Tensor:
        return t1.f.add_zip(t1, t2)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        return grad_output, grad_output


class Mul(Function):
    """f(a, b) = a * b, elementwise (broadcasting)"""

    @staticmethod
    def forward(ctx: Context, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return a.f.mul_zip(a, b)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        a, b = ctx.saved_values
        f = grad_output.f
        return f.mul_zip(grad_output, b), f.mul_zip(grad_output, a)


class Sigmoid(Function):
    """f(a) = 1 / (1 + e^{-a}); f'(a) = f(a) * (1 - f(a))"""

    @staticmethod
    def forward(ctx: Context, t1: Tensor) -> Tensor:
        out = t1.f.sigmoid_map(t1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        (s,) = ctx.saved_values
        f = grad_output.f
        one_minus = f.add_zip(f.neg_map(s), s._ensure_tensor(1.0))
        return f.mul_zip(grad_output, f.mul_zip(s, one_minus))


class ReLU(Function):
    """f(a) = max(a, 0); f'(a) = 1 where a > 0, else 0"""

    @staticmethod
    def forward(ctx: Context, t1: Tensor) -> Tensor:
        ctx.save_for_backward(t1)
        return t1.f.relu_map(t1)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        (t1,) = ctx.saved_values
        return grad_output.f.relu_back_zip(t1, grad_output)


class Log(Function):
    """f(a) = log(a); f'(a) = 1 / a"""

    @staticmethod
    def forward(ctx: Context, t1: Tensor) -> Tensor:
        ctx.save_for_backward(t1)
        return t1.f.log_map(t1)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        (t1,) = ctx.saved_values
        return grad_output.f.log_back_zip(t1, grad_output)


class Exp(Function):
    """f(a) = e^a; f'(a) = e^a"""

    @staticmethod
    def forward(ctx: Context, t1: Tensor) -> Tensor:
        out = t1.f.exp_map(t1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        (out,) = ctx.saved_values
        return grad_output.f.mul_zip(grad_output, out)


class Sum(Function):
    """The sum along dimension `dim` (a 1-element tensor holding the dimension).

    The output keeps `dim`, with size 1. Every input element contributes
    once to its sum, so each one's gradient is the gradient of its sum.
    """

    @staticmethod
    def forward(ctx: Context, a: Tensor, dim: Tensor) -> Tensor:
        return a.f.add_reduce(a, int(dim.item()))

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        return grad_output, 0.0


class All(Function):
    """1.0 where every element along `dim` is non-zero, else 0.0 (not differentiable)."""

    @staticmethod
    def forward(ctx: Context, a: Tensor, dim: Tensor | None = None) -> Tensor:
        if dim is not None:
            return a.f.mul_reduce(a, int(dim.item()))
        return a.f.mul_reduce(a.contiguous().view(a.size), 0)


class LT(Function):
    """1.0 where a < b, else 0.0; its gradients are zero."""

    @staticmethod
    def forward(ctx: Context, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a.shape, b.shape)
        return a.f.lt_zip(a, b)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        a_shape, b_shape = ctx.saved_values
        return zeros(a_shape, grad_output.backend), zeros(b_shape, grad_output.backend)


class EQ(Function):
    """1.0 where a == b, else 0.0; its gradients are zero."""

    @staticmethod
    def forward(ctx: Context, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a.shape, b.shape)
        return a.f.eq_zip(a, b)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        a_shape, b_shape = ctx.saved_values
        return zeros(a_shape, grad_output.backend), zeros(b_shape, grad_output.backend)


class IsClose(Function):
    """1.0 where |a - b| < 1e-2, else 0.0; its gradients are zero."""

    @staticmethod
    def forward(ctx: Context, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a.shape, b.shape)
        return a.f.is_close_zip(a, b)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        a_shape, b_shape = ctx.saved_values
        return zeros(a_shape, grad_output.backend), zeros(b_shape, grad_output.backend)


class Permute(Function):
    """The dimensions reordered (`order` is a tensor holding the permutation); no copy."""

    @staticmethod
    def forward(ctx: Context, a: Tensor, order: Tensor) -> Tensor:
        perm = [int(order[i]) for i in range(order.size)]
        ctx.save_for_backward(perm)
        return a._new(a._tensor.permute(*perm))

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        (perm,) = ctx.saved_values
        inverse = [0] * len(perm)
        for k, p in enumerate(perm):
            inverse[p] = k
        return grad_output._new(grad_output._tensor.permute(*inverse)), 0.0


class View(Function):
    """The same storage seen with another shape of the same size (needs a contiguous input)."""

    @staticmethod
    def forward(ctx: Context, a: Tensor, shape: Tensor) -> Tensor:
        from .tensor import Tensor as _Tensor

        ctx.save_for_backward(a.shape)
        if not a._tensor.is_contiguous():
            raise ValueError("view needs a contiguous tensor: call .contiguous() first")
        new_shape = [int(shape[i]) for i in range(shape.size)]
        return _Tensor.make(a._tensor._storage, tuple(new_shape), backend=a.backend)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, float]:
        from .tensor import Tensor as _Tensor

        (original,) = ctx.saved_values
        grad = grad_output.contiguous()
        return _Tensor.make(grad._tensor._storage, original, backend=grad.backend), 0.0


class Copy(Function):
    """A contiguous copy."""

    @staticmethod
    def forward(ctx: Context, a: Tensor) -> Tensor:
        return a.f.id_map(a)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Tensor:
        return grad_output


class MatMul(Function):
    """Matrix product of the last two dimensions, batched over the others.

    For `a` of shape `(..., I, K)` and `b` of shape `(..., K, J)`, the output
    is `(..., I, J)`. The gradients: `grad_a = grad_output @ b^T` and
    `grad_b = a^T @ grad_output`, where `^T` swaps the last two dimensions.
    """

    @staticmethod
    def forward(ctx: Context, t1: Tensor, t2: Tensor) -> Tensor:
        ctx.save_for_backward(t1, t2)
        return t1.f.matrix_multiply(t1, t2)

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        t1, t2 = ctx.saved_values

        def transpose(a: Tensor) -> Tensor:
            order = list(range(a.dims))
            order[-2], order[-1] = order[-1], order[-2]
            return a._new(a._tensor.permute(*order))

        f = grad_output.f
        return (
            f.matrix_multiply(grad_output, transpose(t2)),
            f.matrix_multiply(transpose(t1), grad_output),
        )


# ---------------------------------------------------------------------------
# Making tensors (given)
# ---------------------------------------------------------------------------


def zeros(shape: UserShape, backend: TensorBackend = SimpleBackend) -> Tensor:
    """A tensor of zeros."""
    from .tensor import Tensor

    return Tensor.make(np.zeros(int(np.prod(shape)) if shape else 1), shape, backend=backend)


def ones(shape: UserShape, backend: TensorBackend = SimpleBackend) -> Tensor:
    """A tensor of ones."""
    from .tensor import Tensor

    return Tensor.make(np.ones(int(np.prod(shape)) if shape else 1), shape, backend=backend)


def rand(
    shape: UserShape, backend: TensorBackend = SimpleBackend, requires_grad: bool = False
) -> Tensor:
    """A tensor of random numbers in [0, 1) (Python's `random`, so `random.seed` fixes them)."""
    from .tensor import Tensor

    values = [random.random() for _ in range(int(np.prod(shape)))]
    t = Tensor.make(values, shape, backend=backend)
    t.requires_grad_(requires_grad)
    return t


def _tensor(
    ls: Any, shape: UserShape, backend: TensorBackend = SimpleBackend, requires_grad: bool = False
) -> Tensor:
    from .tensor import Tensor

    t = Tensor.make(ls, shape, backend=backend)
    t.requires_grad_(requires_grad)
    return t


def tensor(ls: Any, backend: TensorBackend = SimpleBackend, requires_grad: bool = False) -> Tensor:
    """A tensor from (nested lists of) numbers: `tensor([[1, 2], [3, 4]])`."""

    def shape(ls: Any) -> list[int]:
        if isinstance(ls, (list, tuple)):
            return [len(ls), *shape(ls[0])] if ls else [0]
        return []

    def flatten(ls: Any) -> list[float]:
        if isinstance(ls, (list, tuple)):
            return [y for x in ls for y in flatten(x)]
        return [float(ls)]

    dims = shape(ls)
    return _tensor(flatten(ls), tuple(dims) if dims else (1,), backend, requires_grad)


# ---------------------------------------------------------------------------
# Gradient checks (given)
# ---------------------------------------------------------------------------


def grad_central_difference(
    f: Callable[..., Tensor], *vals: Tensor, arg: int = 0, epsilon: float = 1e-6, ind: UserIndex
) -> float:
    """Central difference of `f(*vals).sum()` with respect to element `ind` of `vals[arg]`."""
    x = vals[arg]
    up = zeros(x.shape, x.backend)
    up[ind] = epsilon
    upper = [v if j != arg else v + up for j, v in enumerate(vals)]
    lower = [v if j != arg else v - up for j, v in enumerate(vals)]
    delta = f(*upper).sum() - f(*lower).sum()
    return delta[0] / (2.0 * epsilon)


def grad_check(f: Callable[..., Tensor], *vals: Tensor) -> None:
    """Compare backpropagated gradients of `f(*vals).sum()` with central differences
    at a random element of each input; AssertionError naming the input if they differ."""
    for x in vals:
        x.requires_grad_(True)
        x.zero_grad_()
    random.seed(10)
    out = f(*vals)
    out.sum().backward()
    for i, x in enumerate(vals):
        ind = x._tensor.sample()
        check = grad_central_difference(f, *vals, arg=i, ind=ind)
        assert x.grad is not None, f"input {i} got no gradient"
        got = x.grad[ind]
        if not operators.is_close(got, check):
            raise AssertionError(
                f"gradient check failed for input {i} of {getattr(f, '__name__', f)!r} at "
                f"index {ind}: backpropagation gives {got!r}, central difference gives {check!r}"
            )
