"""`Tensor`: an n-dimensional array of floats that can be differentiated.

    >>> x = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()          # every operation records its inputs
    >>> y.backward()
    >>> x.grad                     # dy/dx = 2x
    [[2.00, 4.00], [6.00, 8.00]]

A `Tensor` is a `TensorData` (storage, shape, strides: task hw1.3), a backend
that computes on it (`SimpleBackend` or the fast one of task hw1.5) and, like
a `Scalar`, a history for backpropagation:

- a **leaf** has an empty `History` (`requires_grad_(True)`); backpropagation
  stores its gradient in `grad`, a tensor of its shape;
- an **intermediate** tensor's history names the `Function` that computed it,
  its `Context` and its inputs;
- a **constant** has no history (`requires_grad()` is False); numbers mixed
  with tensors (`x * 2.0`) become constant 1-element tensors.

This file is given: everything here calls the functions of
`minitorch.tensor_functions` (task hw1.4). The backpropagation algorithm is the
one of task hw1.2 (`minitorch.autodiff`), unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from .autodiff import Context, Variable, backpropagate
from .tensor_data import TensorData, shape_broadcast
from .tensor_functions import (
    EQ,
    LT,
    Add,
    All,
    Copy,
    Exp,
    Function,
    Inv,
    IsClose,
    Log,
    MatMul,
    Mul,
    Neg,
    Permute,
    ReLU,
    Sigmoid,
    Sum,
    View,
)
from .tensor_ops import SimpleBackend, TensorBackend

if TYPE_CHECKING:
    from .tensor_data import Shape, Storage, Strides, UserIndex, UserShape, UserStrides

__all__ = ["History", "Tensor", "TensorLike"]

#: What the arithmetic of a `Tensor` accepts on the other side.
TensorLike: TypeAlias = "float | int | Tensor"


@dataclass
class History:
    """How a tensor was computed: the function, its context and its inputs
    (all empty for a leaf)."""

    last_fn: type[Function] | None = None
    ctx: Context | None = None
    inputs: Sequence[Tensor] = ()


_ids = itertools.count(1)


class Tensor:
    """An n-dimensional array in a computation graph.

    Attributes:
        backend: the `TensorBackend` that computes on this tensor (also `f`).
        history: how it was computed (None for a constant).
        grad: for a leaf, the gradient accumulated by backpropagation.
        unique_id: a number no other tensor of this process has.
        name: a label for printing and debugging.
    """

    def __init__(
        self,
        v: TensorData,
        back: History | None = None,
        name: str | None = None,
        backend: TensorBackend | None = None,
    ) -> None:
        self._tensor = v
        self.history = back
        self.backend = backend if backend is not None else SimpleBackend
        self.f = self.backend
        self.grad: Tensor | None = None
        self.unique_id = next(_ids)
        self.name = name if name is not None else str(self.unique_id)

    # -- creation and conversion ----------------------------------------------

    @staticmethod
    def make(
        storage: Storage | Sequence[float],
        shape: UserShape,
        strides: UserStrides | None = None,
        backend: TensorBackend | None = None,
    ) -> Tensor:
        """A new constant tensor on a storage (not copied when it is a float64 array)."""
        return Tensor(TensorData(storage, shape, strides), backend=backend)

    def _new(self, tensor_data: TensorData) -> Tensor:
        return Tensor(tensor_data, backend=self.backend)

    def _ensure_tensor(self, b: TensorLike) -> Tensor:
        if isinstance(b, (int, float)):
            return Tensor.make([float(b)], (1,), backend=self.backend)
        b._type_(self.backend)
        return b

    def _type_(self, backend: TensorBackend) -> None:
        self.backend = backend
        self.f = backend

    def detach(self) -> Tensor:
        """The same data, without history (a constant)."""
        return Tensor(self._tensor, backend=self.backend)

    def requires_grad_(self, x: bool = True) -> Tensor:
        """Make this tensor a leaf that gets a gradient (True) or a constant (False)."""
        self.history = History() if x else None
        return self

    def requires_grad(self) -> bool:
        return self.history is not None

    def to_numpy(self) -> np.ndarray:
        """The values as a NumPy array of this shape (a copy)."""
        return self.contiguous()._tensor._storage[: self.size].reshape(self.shape).copy()

    def tuple(self) -> tuple[Storage, Shape, Strides]:
        return self._tensor.tuple()

    def zeros(self, shape: UserShape | None = None) -> Tensor:
        """A tensor of zeros on this tensor's backend (of its shape by default)."""
        shape = self.shape if shape is None else tuple(shape)
        return Tensor.make(np.zeros(int(np.prod(shape))), shape, backend=self.backend)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._tensor.shape

    @property
    def size(self) -> int:
        return self._tensor.size

    @property
    def dims(self) -> int:
        return self._tensor.dims

    def item(self) -> float:
        """The value of a 1-element tensor."""
        assert self.size == 1, f"item() needs a 1-element tensor, not shape {self.shape}"
        return float(self._tensor._storage[self._tensor.index((0,) * self.dims)])

    def __getitem__(self, key: int | UserIndex) -> float:
        return self._tensor.get((key,) if isinstance(key, int) else key)

    def __setitem__(self, key: int | UserIndex, val: float) -> None:
        self._tensor.set((key,) if isinstance(key, int) else key, val)

    def __repr__(self) -> str:
        return self._tensor.to_string()

    # -- arithmetic: each operator applies a tensor Function ------------------

    def __add__(self, b: TensorLike) -> Tensor:
        return Add.apply(self, self._ensure_tensor(b))

    def __radd__(self, b: TensorLike) -> Tensor:
        return Add.apply(self._ensure_tensor(b), self)

    def __sub__(self, b: TensorLike) -> Tensor:
        return Add.apply(self, Neg.apply(self._ensure_tensor(b)))

    def __rsub__(self, b: TensorLike) -> Tensor:
        return Add.apply(self._ensure_tensor(b), Neg.apply(self))

    def __mul__(self, b: TensorLike) -> Tensor:
        return Mul.apply(self, self._ensure_tensor(b))

    def __rmul__(self, b: TensorLike) -> Tensor:
        return Mul.apply(self._ensure_tensor(b), self)

    def __truediv__(self, b: TensorLike) -> Tensor:
        return Mul.apply(self, Inv.apply(self._ensure_tensor(b)))

    def __rtruediv__(self, b: TensorLike) -> Tensor:
        return Mul.apply(self._ensure_tensor(b), Inv.apply(self))

    def __matmul__(self, b: Tensor) -> Tensor:
        return MatMul.apply(self, b)

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __lt__(self, b: TensorLike) -> Tensor:
        return LT.apply(self, self._ensure_tensor(b))

    def __gt__(self, b: TensorLike) -> Tensor:
        return LT.apply(self._ensure_tensor(b), self)

    def __eq__(self, b: TensorLike) -> Tensor:  # type: ignore[override]
        return EQ.apply(self, self._ensure_tensor(b))

    __hash__ = None  # type: ignore[assignment]

    def all(self, dim: int | None = None) -> Tensor:
        """1.0 where every element (along `dim`, or of all) is non-zero."""
        if dim is None:
            return All.apply(self)
        return All.apply(self, self._ensure_tensor(dim))

    def is_close(self, y: Tensor) -> Tensor:
        return IsClose.apply(self, y)

    def sigmoid(self) -> Tensor:
        return Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return ReLU.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def exp(self) -> Tensor:
        return Exp.apply(self)

    def sum(self, dim: int | None = None) -> Tensor:
        """The sum along `dim` (kept with size 1), or of all elements (shape (1,))."""
        if dim is None:
            return Sum.apply(self.contiguous().view(self.size), self._ensure_tensor(0))
        return Sum.apply(self, self._ensure_tensor(dim))

    def mean(self, dim: int | None = None) -> Tensor:
        """The mean along `dim`, or of all elements."""
        if dim is None:
            return self.sum() / self.size
        return self.sum(dim) / self.shape[dim]

    def permute(self, *order: int) -> Tensor:
        return Permute.apply(self, Tensor.make([float(o) for o in order], (len(order),)))

    def view(self, *shape: int) -> Tensor:
        return View.apply(self, Tensor.make([float(s) for s in shape], (len(shape),)))

    def contiguous(self) -> Tensor:
        return Copy.apply(self)

    # -- broadcasting of gradients ---------------------------------------------

    def expand(self, other: Tensor) -> Tensor:
        """`other` (a gradient of a broadcast shape) summed down to this tensor's shape.

        When `self` was broadcast in a computation, its gradient arrives with
        the broadcast shape; each element of `self` was used once per copy, so
        its gradient is the sum over the copies.
        """
        if self.shape == other.shape:
            return other
        true_shape = shape_broadcast(self.shape, other.shape)
        buf = self.zeros(true_shape)
        self.backend.id_map(other, buf)
        if self.shape == true_shape:
            return buf
        out = buf
        padded = [1] * (len(true_shape) - len(self.shape)) + list(self.shape)
        for dim, size in enumerate(true_shape):
            if padded[dim] == 1 and size != 1:
                out = self.backend.add_reduce(out, dim)
        assert out.size == self.size, f"cannot sum shape {out.shape} down to {self.shape}"
        return Tensor.make(out._tensor._storage, self.shape, backend=self.backend)

    # -- the Variable interface used by backpropagation ----------------------

    def is_leaf(self) -> bool:
        return self.history is not None and self.history.last_fn is None

    def is_constant(self) -> bool:
        return self.history is None

    @property
    def parents(self) -> Iterable[Variable]:
        assert self.history is not None, "a constant has no parents"
        return self.history.inputs

    def accumulate_derivative(self, x: Any) -> None:
        """Add `x` (a tensor of this shape) to `grad`."""
        assert self.is_leaf(), "only leaves store gradients"
        if self.grad is None:
            self.grad = self.zeros()
        self.grad += x

    def chain_rule(self, d_output: Any) -> Iterable[tuple[Variable, Any]]:
        h = self.history
        assert h is not None and h.last_fn is not None and h.ctx is not None
        grads = h.last_fn._backward(h.ctx, d_output)
        assert len(grads) == len(h.inputs), f"{h.last_fn.__name__}.backward: wrong gradient count"
        return [
            (inp, inp.expand(self._ensure_tensor(d)))
            for inp, d in zip(h.inputs, grads, strict=True)
            if not inp.is_constant()
        ]

    def backward(self, grad_output: Tensor | None = None) -> None:
        """Backpropagate from this tensor (a 1-element one, unless `grad_output` is given)."""
        if grad_output is None:
            assert self.shape == (1,), "backward() without grad_output needs a 1-element tensor"
            grad_output = Tensor.make([1.0], (1,), backend=self.backend)
        backpropagate(self, grad_output)

    def zero_grad_(self) -> None:
        self.grad = None
