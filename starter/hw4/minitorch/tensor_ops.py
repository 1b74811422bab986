"""Tensor operations in plain Python: map, zip and reduce over any shape and strides.

Every elementwise computation of a tensor is one of three patterns:

- **map** applies a function of one float to every element: `-a`, `a.exp()`;
- **zip** applies a function of two floats to matching elements of two
  tensors, *broadcasting* them to a common shape first: `a + b`, `a < b`;
- **reduce** combines the elements along one dimension into one, leaving a
  dimension of size 1: `a.sum(1)`.

The low-level functions `tensor_map`, `tensor_zip` and `tensor_reduce` (task
hw1.4) work on storages, shapes and strides (see `minitorch.tensor_data`), so
they handle transposed, permuted and broadcast tensors as well as contiguous
ones. `SimpleOps` wraps them into operations on tensors, and `TensorBackend`
builds from any such ops class the operations that `Tensor` uses
(`backend.add_zip`, `backend.neg_map`, ...). Task hw1.5 writes faster versions
of the same functions (`minitorch.fast_ops`); the tensor code above them does
not change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import operators
from .tensor_data import (
    broadcast_index,
    index_to_position,
    shape_broadcast,
    to_index,
)

if TYPE_CHECKING:
    from .tensor import Tensor
    from .tensor_data import Shape, Storage, Strides

__all__ = [
    "SimpleBackend",
    "SimpleOps",
    "TensorBackend",
    "TensorOps",
    "tensor_map",
    "tensor_matrix_multiply",
    "tensor_reduce",
    "tensor_zip",
]


class MapProto(Protocol):
    def __call__(self, x: Tensor, out: Tensor | None = ..., /) -> Tensor: ...


class TensorOps:
    """The operations a tensor backend provides (see `SimpleOps` and `FastOps`)."""

    cuda = False

    @staticmethod
    def map(fn: Callable[[float], float]) -> MapProto:
        raise NotImplementedError

    @staticmethod
    def zip(fn: Callable[[float, float], float]) -> Callable[[Tensor, Tensor], Tensor]:
        raise NotImplementedError

    @staticmethod
    def reduce(
        fn: Callable[[float, float], float], start: float = 0.0
    ) -> Callable[[Tensor, int], Tensor]:
        raise NotImplementedError

    @staticmethod
    def matrix_multiply(a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError


class TensorBackend:
    """The tensor operations `Tensor` uses, built from an ops class.

    `TensorBackend(SimpleOps)` computes with the Python loops of this module;
    `TensorBackend(FastOps)` with the compiled loops of `minitorch.fast_ops`.
    """

    def __init__(self, ops: type[TensorOps]) -> None:
        self.ops = ops
        self.neg_map = ops.map(operators.neg)
        self.sigmoid_map = ops.map(operators.sigmoid)
        self.relu_map = ops.map(operators.relu)
        self.log_map = ops.map(operators.log)
        self.exp_map = ops.map(operators.exp)
        self.id_map = ops.map(operators.id)
        self.inv_map = ops.map(operators.inv)

        self.add_zip = ops.zip(operators.add)
        self.mul_zip = ops.zip(operators.mul)
        self.lt_zip = ops.zip(operators.lt)
        self.eq_zip = ops.zip(operators.eq)
        self.is_close_zip = ops.zip(operators.is_close)
        self.relu_back_zip = ops.zip(operators.relu_back)
        self.log_back_zip = ops.zip(operators.log_back)
        self.inv_back_zip = ops.zip(operators.inv_back)

        self.add_reduce = ops.reduce(operators.add, 0.0)
        self.mul_reduce = ops.reduce(operators.mul, 1.0)
        self.matrix_multiply = ops.matrix_multiply
        self.cuda = ops.cuda


class SimpleOps(TensorOps):
    """Tensor operations with the Python loops of this module (slow, simple)."""

    @staticmethod
    def map(fn: Callable[[float], float]) -> MapProto:
        """`fn` applied to every element: `ret(a)` or `ret(a, out)`.

        With `out`, the result is written into `out`, whose shape `a` must
        broadcast to (this is how a gradient is expanded to an input's shape).
        """
        return map_with(tensor_map(fn))

    @staticmethod
    def zip(fn: Callable[[float, float], float]) -> Callable[[Tensor, Tensor], Tensor]:
        """`fn` applied to matching elements of two tensors, broadcast to one shape."""
        return zip_with(tensor_zip(fn))

    @staticmethod
    def reduce(
        fn: Callable[[float, float], float], start: float = 0.0
    ) -> Callable[[Tensor, int], Tensor]:
        """`fn` folded over dimension `dim`, starting from `start`: `ret(a, dim)`.

        The result has the shape of `a` with `dim` of size 1; each of its
        elements starts as `start` and is combined with every element of its
        row of `a` along `dim`, in order.
        """
        return reduce_with(tensor_reduce(fn), start)

    @staticmethod
    def matrix_multiply(a: Tensor, b: Tensor) -> Tensor:
        """Matrix product of 2-D or 3-D tensors, batched over the first dimension.

        `(I, K) @ (K, J)` is `(I, J)`; with 3-D operands `(batch, I, K)` and
        `(batch', K, J)`, whose batch sizes broadcast, `out[n] = a[n] @ b[n]`.
        """
        out, a3, b3, squeeze = matmul_operands(a, b)
        tensor_matrix_multiply(*out.tuple(), *a3.tuple(), *b3.tuple())
        return squeeze(out)


def map_with(f: Callable[..., None]) -> MapProto:
    """The tensor-level map around a low-level map `f` (Python or compiled)."""

    def ret(a: Tensor, out: Tensor | None = None) -> Tensor:
        if out is None:
            out = a.zeros(a.shape)
        f(*out.tuple(), *a.tuple())
        return out

    return ret


def zip_with(f: Callable[..., None]) -> Callable[[Tensor, Tensor], Tensor]:
    """The tensor-level zip around a low-level zip `f`: the output has the broadcast shape."""

    def ret(a: Tensor, b: Tensor) -> Tensor:
        shape = a.shape if a.shape == b.shape else shape_broadcast(a.shape, b.shape)
        out = a.zeros(shape)
        f(*out.tuple(), *a.tuple(), *b.tuple())
        return out

    return ret


def reduce_with(f: Callable[..., None], start: float) -> Callable[[Tensor, int], Tensor]:
    """The tensor-level reduce around a low-level reduce `f`: `out` starts as `start`."""

    def ret(a: Tensor, dim: int) -> Tensor:
        out_shape = list(a.shape)
        out_shape[dim] = 1
        out = a.zeros(tuple(out_shape))
        out._tensor._storage[:] = start
        f(*out.tuple(), *a.tuple(), dim)
        return out

    return ret


def matmul_operands(
    a: Tensor, b: Tensor
) -> tuple[Tensor, Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """The output and both operands of a matrix product as 3-D tensors (no copies),
    and the function that turns the 3-D output back into the result's shape."""
    from .tensor_data import IndexingError, TensorData

    if a.dims not in (2, 3) or b.dims not in (2, 3):
        raise IndexingError(f"matmul takes 2-D or 3-D tensors, not {a.shape} @ {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise IndexingError(f"matmul: shapes {a.shape} and {b.shape} do not fit")

    def as_3d(t: Tensor) -> Tensor:
        if t.dims == 3:
            return t
        data = TensorData(t._tensor._storage, (1, *t.shape), (0, *t._tensor.strides))
        return t._new(data)

    a3, b3 = as_3d(a), as_3d(b)
    batch = shape_broadcast(a3.shape[:1], b3.shape[:1])
    out = a.zeros((*batch, a.shape[-2], b.shape[-1]))
    if a.dims == 2 and b.dims == 2:

        def squeeze(t: Tensor) -> Tensor:
            return t._new(TensorData(t._tensor._storage, t.shape[1:], t._tensor.strides[1:]))

    else:

        def squeeze(t: Tensor) -> Tensor:
            return t

    return out, a3, b3, squeeze


# ---------------------------------------------------------------------------
# The low-level loops (task hw1.4)
# ---------------------------------------------------------------------------


def tensor_map(
    fn: Callable[[float], float],
) -> Callable[[Storage, Shape, Strides, Storage, Shape, Strides], None]:
    """The low-level map: `fn` of every input element, written into `out`.

    The returned function `_map(out, out_shape, out_strides, in_storage,
    in_shape, in_strides)` writes, for every index `i` of `out_shape`,

        out[position of i in out] = fn(in[position of broadcast(i) in in])

    where `broadcast(i)` is the index into `in_shape` that `i` maps to
    (`broadcast_index`): `in_shape` may be smaller than `out_shape` but must
    broadcast to it. Neither tensor needs to be contiguous.

    Hint: loop over the ordinals of `out_shape`; with `to_index`,
    `broadcast_index` and `index_to_position` (task hw1.3) find both
    positions. Allocate the index arrays once, before the loop:
    `np.zeros(len(out_shape), dtype=np.int32)`.

    Args:
        fn: the function of one float to apply.

    Returns:
        The low-level function described above.
    """

    def _map(
        out: Storage,
        out_shape: Shape,
        out_strides: Strides,
        in_storage: Storage,
        in_shape: Shape,
        in_strides: Strides,
    ) -> None:
        out_index = np.zeros(len(out_shape), dtype=np.int32)
        in_index = np.zeros(len(in_shape), dtype=np.int32)
        size = int(np.prod(out_shape))
        for ordinal in range(size):
            to_index(ordinal, out_shape, out_index)
            broadcast_index(out_index, out_shape, in_shape, in_index)
            value = in_storage[index_to_position(in_index, in_strides)]
            out[index_to_position(out_index, out_strides)] = fn(value)

    return _map


def tensor_zip(
    fn: Callable[[float, float], float],
) -> Callable[[Storage, Shape, Strides, Storage, Shape, Strides, Storage, Shape, Strides], None]:
    """The low-level zip: `fn` of matching elements of two inputs, written into `out`.

    The returned function `_zip(out, out_shape, out_strides, a_storage,
    a_shape, a_strides, b_storage, b_shape, b_strides)` writes, for every
    index `i` of `out_shape`,

        out[i] = fn(a[broadcast(i) into a_shape], b[broadcast(i) into b_shape])

    `out_shape` is the broadcast of `a_shape` and `b_shape` (each input is
    broadcast to it separately). No tensor needs to be contiguous.

    Args:
        fn: the function of two floats to apply.

    Returns:
        The low-level function described above.
    """

    def _zip(
        out: Storage,
        out_shape: Shape,
        out_strides: Strides,
        a_storage: Storage,
        a_shape: Shape,
        a_strides: Strides,
        b_storage: Storage,
        b_shape: Shape,
        b_strides: Strides,
    ) -> None:
        out_index = np.zeros(len(out_shape), dtype=np.int32)
        a_index = np.zeros(len(a_shape), dtype=np.int32)
        b_index = np.zeros(len(b_shape), dtype=np.int32)
        size = int(np.prod(out_shape))
        for ordinal in range(size):
            to_index(ordinal, out_shape, out_index)
            broadcast_index(out_index, out_shape, a_shape, a_index)
            broadcast_index(out_index, out_shape, b_shape, b_index)
            x = a_storage[index_to_position(a_index, a_strides)]
            y = b_storage[index_to_position(b_index, b_strides)]
            out[index_to_position(out_index, out_strides)] = fn(x, y)

    return _zip


def tensor_reduce(
    fn: Callable[[float, float], float],
) -> Callable[[Storage, Shape, Strides, Storage, Shape, Strides, int], None]:
    """The low-level reduce: fold `fn` over one dimension of the input.

    The returned function `_reduce(out, out_shape, out_strides, a_storage,
    a_shape, a_strides, reduce_dim)` gets an `out` whose shape is `a_shape`
    with `reduce_dim` set to 1, and whose elements already hold the start
    value (0 for a sum, 1 for a product). For every index `i` of `out_shape`
    it combines, in order of `j = 0 .. a_shape[reduce_dim] - 1`,

        out[i] = fn(out[i], a[i with reduce_dim set to j])

    so the result starts from the value already in `out` (never from 0).
    As for map and zip, neither `out` nor `a` needs to be contiguous: find
    every position through the strides.

    Args:
        fn: the function of two floats that combines (e.g. `operators.add`).

    Returns:
        The low-level function described above.
    """

    def _reduce(
        out: Storage,
        out_shape: Shape,
        out_strides: Strides,
        a_storage: Storage,
        a_shape: Shape,
        a_strides: Strides,
        reduce_dim: int,
    ) -> None:
        index = np.zeros(len(out_shape), dtype=np.int32)
        size = int(np.prod(out_shape))
        for ordinal in range(size):
            to_index(ordinal, out_shape, index)
            out_pos = index_to_position(index, out_strides)
            acc = out[out_pos]
            for j in range(a_shape[reduce_dim]):
                index[reduce_dim] = j
                acc = fn(acc, a_storage[index_to_position(index, a_strides)])
            out[out_pos] = acc

    return _reduce


def tensor_matrix_multiply(
    out: Storage,
    out_shape: Shape,
    out_strides: Strides,
    a_storage: Storage,
    a_shape: Shape,
    a_strides: Strides,
    b_storage: Storage,
    b_shape: Shape,
    b_strides: Strides,
) -> None:
    """The low-level batched matrix product, in plain Python.

    All three tensors are 3-D: `out` is `(batch, I, J)`, `a` is
    `(batch_a, I, K)`, `b` is `(batch_b, K, J)`, where `batch_a` and
    `batch_b` are each either `batch` or 1 (broadcast). For every `n, i, j`:

        out[n, i, j] = sum over k of a[n or 0, i, k] * b[n or 0, k, j]

    Args:
        out, out_shape, out_strides: the output tensor (its storage is written).
        a_storage, a_shape, a_strides: the left operand.
        b_storage, b_shape, b_strides: the right operand.

    Returns:
        None (the result is in `out`).
    """
    a_batch = a_strides[0] if a_shape[0] > 1 else 0
    b_batch = b_strides[0] if b_shape[0] > 1 else 0
    for n in range(out_shape[0]):
        for i in range(out_shape[1]):
            for j in range(out_shape[2]):
                acc = 0.0
                a_pos = n * a_batch + i * a_strides[1]
                b_pos = n * b_batch + j * b_strides[2]
                for _ in range(a_shape[2]):
                    acc += a_storage[a_pos] * b_storage[b_pos]
                    a_pos += a_strides[2]
                    b_pos += b_strides[1]
                out[n * out_strides[0] + i * out_strides[1] + j * out_strides[2]] = acc


SimpleBackend = TensorBackend(SimpleOps)
