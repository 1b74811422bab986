"""How a tensor's numbers are laid out in memory: shapes, strides and indexing.

A tensor of shape `(2, 3)` is a grid of 6 numbers, but memory is a flat array.
`TensorData` keeps the flat array (the *storage*) and two tuples that say how
to find element `[i, j]` in it:

- the **shape**, the size of each dimension: `(2, 3)`;
- the **strides**, how far apart in storage two neighbours along each
  dimension are: `(3, 1)` for the usual row-major layout, where a row is 3
  numbers long and neighbours within a row are adjacent.

The element at a multi-dimensional index lies at the storage *position*
`sum(index[k] * strides[k])`. Many tensors can share one storage: the
transpose of a `(2, 3)` tensor is the same 6 numbers seen with shape `(3, 2)`
and strides `(1, 3)`, no copy needed. That is what `permute` does.

Words used below:

- an **index** is one position per dimension, e.g. `(1, 2)`;
- a **position** is an offset into the storage array;
- an **ordinal** counts the elements of a shape in row-major order, from 0
  to `size - 1` (for shape `(2, 3)`: `(0, 0)` is 0, `(0, 2)` is 2, `(1, 0)` is 3).
  It equals the position only for contiguous tensors.

Three functions of task hw1.3 (`index_to_position`, `to_index` and
`broadcast_index`) are also compiled with numba by the fast ops of task hw1.5,
so write them with plain loops over the arrays they get: no lists, no tuples
built inside, no Python objects. Their outputs are written into an array
passed in (`out_index`) instead of being returned; write every entry of it,
since the compiled code hands in arrays of garbage (`np.empty`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_DIMS",
    "Index",
    "IndexingError",
    "OutIndex",
    "Shape",
    "Storage",
    "Strides",
    "TensorData",
    "UserIndex",
    "UserShape",
    "UserStrides",
    "broadcast_index",
    "index_to_position",
    "shape_broadcast",
    "strides_from_shape",
    "to_index",
]

#: The most dimensions a tensor may have.
MAX_DIMS = 32


class IndexingError(RuntimeError):
    """An index or shape that does not fit the tensor."""


Storage: TypeAlias = npt.NDArray[np.float64]
OutIndex: TypeAlias = npt.NDArray[np.int32]
Index: TypeAlias = npt.NDArray[np.int32]
Shape: TypeAlias = npt.NDArray[np.int32]
Strides: TypeAlias = npt.NDArray[np.int32]

UserIndex: TypeAlias = Sequence[int]
UserShape: TypeAlias = Sequence[int]
UserStrides: TypeAlias = Sequence[int]


def index_to_position(index: Index, strides: Strides) -> int:
    """The storage position of the element at a multi-dimensional index.

        position = index[0] * strides[0] + ... + index[n-1] * strides[n-1]

    Example: with strides `(3, 1)`, index `(1, 2)` is at position 5; with the
    transposed strides `(1, 3)`, the same index is at position 7.

    Args:
        index: one entry per dimension (an array of ints).
        strides: the tensor's strides, as long as `index`.

    Returns:
        The position in storage.
    """
    position = 0
    for k in range(len(index)):
        position += index[k] * strides[k]
    return position


def to_index(ordinal: int, shape: Shape, out_index: OutIndex) -> None:
    """The multi-dimensional index of the `ordinal`-th element, in row-major order.

    The inverse of counting: for shape `(2, 3)`, ordinal 0 is `(0, 0)`, 1 is
    `(0, 1)`, 2 is `(0, 2)`, 3 is `(1, 0)` and 5 is `(1, 2)`. The last
    dimension changes fastest. It does not depend on strides: it is the index
    in any tensor of this shape.

    Hint: like writing a number in a mixed radix. The last entry is
    `ordinal % shape[-1]`; divide `ordinal` by `shape[-1]` (integer division)
    and go on with the dimension before it.

    Args:
        ordinal: a number from 0 to `prod(shape) - 1`.
        shape: the tensor's shape.
        out_index: an array as long as `shape`; the index is written into it.

    Returns:
        None (the result is in `out_index`).
    """
    rest = ordinal
    for k in range(len(shape) - 1, -1, -1):
        out_index[k] = rest % shape[k]
        rest = rest // shape[k]


def broadcast_index(big_index: Index, big_shape: Shape, shape: Shape, out_index: OutIndex) -> None:
    """The index into a smaller tensor that broadcasting maps `big_index` to.

    When a tensor of shape `shape` is broadcast to `big_shape` (see
    `shape_broadcast`), each element of the big result reads one element of
    the small tensor. The dimensions are aligned on the right; `shape` may
    have fewer dimensions than `big_shape`, and a dimension of size 1 in
    `shape` is repeated along the big one. So, for each dimension `k` of
    `shape`, aligned with dimension `k + len(big_shape) - len(shape)` of
    `big_shape`: the index is that of `big_index` where `shape[k] > 1`, and 0
    where `shape[k] == 1`.

    Example: `big_shape (2, 3, 4)`, `shape (3, 1)`, `big_index (1, 2, 3)`
    gives `(2, 0)`.

    Args:
        big_index: an index into the broadcast (big) shape.
        big_shape: the broadcast shape.
        shape: the small tensor's shape; broadcastable to `big_shape`.
        out_index: an array as long as `shape`; the index is written into it.

    Returns:
        None (the result is in `out_index`).
    """
    offset = len(big_shape) - len(shape)
    for k in range(len(shape)):
        if shape[k] > 1:
            out_index[k] = big_index[k + offset]
        else:
            out_index[k] = 0


def shape_broadcast(shape1: UserShape, shape2: UserShape) -> tuple[int, ...]:
    """The shape two tensors broadcast to, or IndexingError if they do not.

    Align the two shapes on the right, as if the shorter one had 1s added on
    its left. Then each pair of sizes must be equal, or one of them 1; the
    result has the larger of each pair.

    Examples: `(2, 3)` and `(3,)` give `(2, 3)`; `(4, 1)` and `(1, 5)` give
    `(4, 5)`; `(2, 1, 3)` and `(4, 3)` give `(2, 4, 3)`; `(2, 3)` and `(2,)`
    raise IndexingError.

    Args:
        shape1: the first shape.
        shape2: the second shape.

    Returns:
        The broadcast shape, as a tuple of ints.

    Raises:
        IndexingError: if the shapes cannot be broadcast (say which shapes).
    """
    n = max(len(shape1), len(shape2))
    a = (1,) * (n - len(shape1)) + tuple(int(s) for s in shape1)
    b = (1,) * (n - len(shape2)) + tuple(int(s) for s in shape2)
    out = []
    for x, y in zip(a, b, strict=True):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise IndexingError(f"shapes {tuple(shape1)} and {tuple(shape2)} do not broadcast")
    return tuple(out)


def strides_from_shape(shape: UserShape) -> tuple[int, ...]:
    """The strides of a contiguous (row-major) tensor of this shape."""
    if not shape:
        return ()
    strides = [1]
    for size in reversed(shape[1:]):
        strides.insert(0, strides[0] * size)
    return tuple(strides)


class TensorData:
    """A storage array seen through a shape and strides.

    Attributes:
        storage: the flat float64 array of numbers (possibly shared).
        shape: the size of each dimension (as an int32 array: `shape`;
            as a tuple of ints: `tuple_shape`, used for display and comparison).
        strides: the storage distance between neighbours along each dimension.
        size: the number of elements, `prod(shape)`.
        dims: the number of dimensions.
    """

    def __init__(
        self,
        storage: Sequence[float] | Storage,
        shape: UserShape,
        strides: UserStrides | None = None,
    ) -> None:
        self._storage: Storage = (
            storage if isinstance(storage, np.ndarray) else np.array(storage, dtype=np.float64)
        )
        if strides is None:
            strides = strides_from_shape(shape)
        if len(strides) != len(shape):
            raise IndexingError(f"strides {tuple(strides)} do not fit shape {tuple(shape)}")
        if len(shape) > MAX_DIMS:
            raise IndexingError(f"a tensor has at most {MAX_DIMS} dimensions, not {len(shape)}")
        self._strides: Strides = np.array(strides, dtype=np.int32)
        self._shape: Shape = np.array(shape, dtype=np.int32)
        self.strides: tuple[int, ...] = tuple(int(s) for s in strides)
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        self.dims = len(self.strides)
        self.size = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        if self.size and len(self._storage) < self._last_position() + 1:
            raise IndexingError(
                f"storage of {len(self._storage)} numbers is too small for shape {self.shape} "
                f"and strides {self.strides}"
            )

    def _last_position(self) -> int:
        return sum((s - 1) * st for s, st in zip(self.shape, self.strides, strict=True))

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def tuple_shape(self) -> tuple[int, ...]:
        return self.shape

    def is_contiguous(self) -> bool:
        """Whether the strides are those of the row-major layout, i.e. each
        stride is at least as large as the next one (so walking the storage in
        order walks the elements in order)."""
        last = 1 << 62
        for stride in self.strides:
            if stride > last:
                return False
            last = stride
        return True

    @staticmethod
    def shape_broadcast(shape_a: UserShape, shape_b: UserShape) -> tuple[int, ...]:
        return shape_broadcast(shape_a, shape_b)

    def index(self, index: int | UserIndex) -> int:
        """The storage position of a user index (an int for 1-D tensors, or a tuple)."""
        if isinstance(index, (int, np.integer)):
            index = (int(index),)
        idx = tuple(int(i) for i in index)
        if len(idx) != len(self.shape):
            raise IndexingError(f"index {idx} must have {len(self.shape)} entries")
        for i, size in zip(idx, self.shape, strict=True):
            if not 0 <= i < size:
                raise IndexingError(f"index {idx} out of range for shape {self.shape}")
        return int(index_to_position(np.array(idx, dtype=np.int32), self._strides))

    def indices(self) -> Iterable[tuple[int, ...]]:
        """Every index of the shape, in row-major order."""
        out = np.zeros(len(self.shape), dtype=np.int32)
        for ordinal in range(self.size):
            to_index(ordinal, self._shape, out)
            yield tuple(int(i) for i in out)

    def sample(self) -> tuple[int, ...]:
        """A random index of the shape."""
        return tuple(random.randint(0, s - 1) for s in self.shape)

    def get(self, key: UserIndex) -> float:
        return float(self._storage[self.index(key)])

    def set(self, key: UserIndex, val: float) -> None:
        self._storage[self.index(key)] = val

    def tuple(self) -> tuple[Storage, Shape, Strides]:
        """The storage, shape and strides, as arrays (what the ops work on)."""
        return (self._storage, self._shape, self._strides)

    def permute(self, *order: int) -> TensorData:
        """The same storage with the dimensions reordered (no copy).

        Dimension `k` of the result is dimension `order[k]` of this tensor:
        for a tensor of shape `(2, 3, 4)`, `permute(2, 0, 1)` has shape
        `(4, 2, 3)`. The strides move with their dimensions.

        Args:
            *order: a permutation of `0 .. dims-1`.

        Returns:
            A new `TensorData` sharing this storage.

        Raises:
            IndexingError: if `order` is not a permutation of the dimensions.
        """
        if sorted(order) != list(range(len(self.shape))):
            raise IndexingError(
                f"permute needs a permutation of 0..{len(self.shape) - 1}, got {order}"
            )
        return TensorData(
            self._storage,
            tuple(self.shape[k] for k in order),
            tuple(self.strides[k] for k in order),
        )

    def to_string(self) -> str:
        """The numbers as nested brackets, row by row."""
        lines = []
        for index in self.indices():
            opening = ""
            for i in range(len(index) - 1, -1, -1):
                if index[i] == 0:
                    opening = "\n" + "\t" * i + "[" + opening
                else:
                    break
            text = opening + f"{self.get(index):3.2f}"
            closing = ""
            for i in range(len(index) - 1, -1, -1):
                if index[i] == self.shape[i] - 1:
                    closing += "]"
                else:
                    break
            lines.append(text + (closing if closing else ","))
            if not closing:
                lines[-1] += " "
        return "".join(lines).lstrip("\n")
