"""Fast tensor operations: the loops of `tensor_ops`, compiled by numba and run in parallel.

The Python loops of task hw1.4 spend most of their time in the interpreter.
Here the same four loops (map, zip, reduce, matrix multiply) are compiled to
machine code with numba's `njit` and spread over the CPU cores with `prange`.
`FastTensorBackend` plugs them into the same `Tensor` code:

    x = minitorch.rand((100, 100), backend=minitorch.FastTensorBackend)

What makes them fast (task hw1.5):

- `@njit(parallel=True)` compiles a function; inside it, `for i in prange(n)`
  runs the iterations on all cores. Each iteration must be independent: it
  writes only its own output element, and allocates its own index arrays
  (inside the loop body);
- when `out` and the input(s) have the same shape and strides (and storages
  just as long as the tensors' size), index arithmetic is not needed at all:
  element `i` of the storage maps to element `i`;
- the inner loop of reduce and matrix multiply should do no index
  conversions and no calls: step a position by a stride, accumulate in a
  local variable, and write the output once;
- the helpers of task hw1.3 (`to_index`, `broadcast_index`,
  `index_to_position`) are compiled too (`njit`), so they can be called from
  compiled code.

Numba compiles a function the first time it is called with new argument
types, which takes a second or so; later calls are fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numba import njit as _njit
from numba import prange

from .tensor_data import (
    broadcast_index,
    index_to_position,
    to_index,
)
from .tensor_ops import (
    MapProto,
    TensorBackend,
    TensorOps,
    map_with,
    matmul_operands,
    reduce_with,
    zip_with,
)

if TYPE_CHECKING:
    from .tensor import Tensor
    from .tensor_data import Shape, Storage, Strides

# The low-level loops keep the names of those in `tensor_ops`; reach them as
# `minitorch.fast_ops.tensor_map` etc.
__all__ = ["FastOps", "FastTensorBackend"]

Fn = TypeVar("Fn")


def njit(fn: Fn, **kwargs: Any) -> Fn:
    """numba's `njit` as a plain function wrapper: `njit(fn)` is `fn`, compiled."""
    return _njit(**kwargs)(fn)  # type: ignore[no-any-return]


to_index = njit(to_index)
index_to_position = njit(index_to_position)
broadcast_index = njit(broadcast_index)


class FastOps(TensorOps):
    """Tensor operations with the compiled, parallel loops of this module."""

    @staticmethod
    def map(fn: Callable[[float], float]) -> MapProto:
        return map_with(tensor_map(njit(fn)))

    @staticmethod
    def zip(fn: Callable[[float, float], float]) -> Callable[[Tensor, Tensor], Tensor]:
        return zip_with(tensor_zip(njit(fn)))

    @staticmethod
    def reduce(
        fn: Callable[[float, float], float], start: float = 0.0
    ) -> Callable[[Tensor, int], Tensor]:
        return reduce_with(tensor_reduce(njit(fn)), start)

    @staticmethod
    def matrix_multiply(a: Tensor, b: Tensor) -> Tensor:
        out, a3, b3, squeeze = matmul_operands(a, b)
        tensor_matrix_multiply(*out.tuple(), *a3.tuple(), *b3.tuple())
        return squeeze(out)


# ---------------------------------------------------------------------------
# The compiled loops (task hw1.5)
# ---------------------------------------------------------------------------


def tensor_map(
    fn: Callable[[float], float],
) -> Callable[[Storage, Shape, Strides, Storage, Shape, Strides], None]:
    """The compiled, parallel low-level map (same contract as `tensor_ops.tensor_map`).

    `fn` is already compiled (`njit`). Write `_map` with `prange` over the
    output's ordinals. When `out` and `in` have the same shape and the same
    strides, and each storage holds exactly the tensor's elements (its length
    is the tensor's size), skip the index arithmetic:
    `out[i] = fn(in_storage[i])` for every storage position `i`.
    """

    def _map(
        out: Storage,
        out_shape: Shape,
        out_strides: Strides,
        in_storage: Storage,
        in_shape: Shape,
        in_strides: Strides,
    ) -> None:
        total = 1
        for k in range(len(out_shape)):
            total *= out_shape[k]
        # Same shape and strides over storages that hold exactly the elements:
        # storage position i of the input belongs at position i of the output.
        if (
            len(out) == total
            and len(in_storage) == total
            and len(out_shape) == len(in_shape)
            and np.array_equal(out_shape, in_shape)
            and np.array_equal(out_strides, in_strides)
        ):
            for i in prange(total):
                out[i] = fn(in_storage[i])
            return
        for ordinal in prange(total):
            out_index = np.empty(len(out_shape), np.int32)
            in_index = np.empty(len(in_shape), np.int32)
            to_index(ordinal, out_shape, out_index)
            broadcast_index(out_index, out_shape, in_shape, in_index)
            out[index_to_position(out_index, out_strides)] = fn(
                in_storage[index_to_position(in_index, in_strides)]
            )

    return _njit(parallel=True)(_map)  # type: ignore[no-any-return]


def tensor_zip(
    fn: Callable[[float, float], float],
) -> Callable[[Storage, Shape, Strides, Storage, Shape, Strides, Storage, Shape, Strides], None]:
    """The compiled, parallel low-level zip (same contract as `tensor_ops.tensor_zip`).

    When all three tensors have the same shape and strides and their storages
    hold exactly their elements, skip the index arithmetic (as in map).
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
        total = 1
        for k in range(len(out_shape)):
            total *= out_shape[k]
        if (
            len(out) == total
            and len(a_storage) == total
            and len(b_storage) == total
            and len(out_shape) == len(a_shape)
            and len(out_shape) == len(b_shape)
            and np.array_equal(out_shape, a_shape)
            and np.array_equal(out_shape, b_shape)
            and np.array_equal(out_strides, a_strides)
            and np.array_equal(out_strides, b_strides)
        ):
            for i in prange(total):
                out[i] = fn(a_storage[i], b_storage[i])
            return
        for ordinal in prange(total):
            out_index = np.empty(len(out_shape), np.int32)
            a_index = np.empty(len(a_shape), np.int32)
            b_index = np.empty(len(b_shape), np.int32)
            to_index(ordinal, out_shape, out_index)
            broadcast_index(out_index, out_shape, a_shape, a_index)
            broadcast_index(out_index, out_shape, b_shape, b_index)
            out[index_to_position(out_index, out_strides)] = fn(
                a_storage[index_to_position(a_index, a_strides)],
                b_storage[index_to_position(b_index, b_strides)],
            )

    return _njit(parallel=True)(_zip)  # type: ignore[no-any-return]


def tensor_reduce(
    fn: Callable[[float, float], float],
) -> Callable[[Storage, Shape, Strides, Storage, Shape, Strides, int], None]:
    """The compiled, parallel low-level reduce (same contract as `tensor_ops.tensor_reduce`).

    Parallelize over the output elements. The inner loop over `reduce_dim`
    starts from the value already in `out` (the start value), steps the input
    position by `a_strides[reduce_dim]`, accumulates in a local variable and
    writes `out` once at the end.
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
        total = 1
        for k in range(len(out_shape)):
            total *= out_shape[k]
        step = a_strides[reduce_dim]
        length = a_shape[reduce_dim]
        for ordinal in prange(total):
            index = np.empty(len(out_shape), np.int32)
            to_index(ordinal, out_shape, index)
            out_pos = index_to_position(index, out_strides)
            a_pos = index_to_position(index, a_strides)
            acc = out[out_pos]
            for _ in range(length):
                acc = fn(acc, a_storage[a_pos])
                a_pos += step
            out[out_pos] = acc

    return _njit(parallel=True)(_reduce)  # type: ignore[no-any-return]


def _tensor_matrix_multiply(
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
    """The compiled, parallel batched matrix product (same contract as
    `tensor_ops.tensor_matrix_multiply`: 3-D tensors, batch 1 broadcasts).

    Parallelize the outer loop(s) with `prange`. The innermost loop (over `k`)
    must do only the multiply-add: no index conversions, no function calls,
    one read of `a` and one of `b` per step, positions advanced by the strides,
    and one write to `out` per output element.
    """
    a_batch = a_strides[0] if a_shape[0] > 1 else 0
    b_batch = b_strides[0] if b_shape[0] > 1 else 0
    rows = out_shape[1]
    cols = out_shape[2]
    inner = a_shape[2]
    a_row, a_col = a_strides[1], a_strides[2]
    b_row, b_col = b_strides[1], b_strides[2]
    for nij in prange(out_shape[0] * rows):
        n = nij // rows
        i = nij % rows
        for j in range(cols):
            a_pos = n * a_batch + i * a_row
            b_pos = n * b_batch + j * b_col
            acc = 0.0
            for _ in range(inner):
                acc += a_storage[a_pos] * b_storage[b_pos]
                a_pos += a_col
                b_pos += b_row
            out[n * out_strides[0] + i * out_strides[1] + j * out_strides[2]] = acc


tensor_matrix_multiply = _njit(parallel=True, fastmath=False)(_tensor_matrix_multiply)

FastTensorBackend = TensorBackend(FastOps)
