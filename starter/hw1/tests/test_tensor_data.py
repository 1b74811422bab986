"""Public tests of task hw1.3: tensor data (shapes, strides, indexing, broadcasting).

What is checked, in minitorch/tensor_data.py:

- `index_to_position`: the position is `index[0] * strides[0] + ...`, for any
  strides (row-major, transposed, with zeros), and for row-major strides it is
  NumPy's `ravel_multi_index`;
- `to_index`: the index of every ordinal of a shape is NumPy's `unravel_index`
  (row-major, last dimension fastest), and `to_index` followed by
  `index_to_position` with row-major strides gives the ordinal back;
- `broadcast_index`: for every index of the big shape, the index of the element
  of the small tensor that NumPy's broadcasting (`numpy.broadcast_to`) puts
  there;
- `shape_broadcast`: the shape `numpy.broadcast_shapes` gives, and
  `tensor_data.IndexingError` (or a subclass) where NumPy refuses;
- `TensorData.permute`: shape and strides reordered, the very same storage
  array (no copy), every element where `numpy.transpose` puts it; an order that
  is not a permutation of the dimensions raises `IndexingError`;
- `to_index`, `index_to_position` and `broadcast_index` compile with numba's
  `njit` (the fast ops of hw1.5 compile them) and give the same results there;
- the worked examples of the docstrings.

Random shapes have 1 to 4 dimensions, each of size 1 to 5.

How these tests reach your code
-------------------------------
As in the other test files, no test imports `minitorch`. Each test hands a
*probe* to the `student` fixture: a function defined at the top level of this
file, with a name starting with `probe_`, that imports your code inside its
body, builds the int32 arrays your functions take (shapes, strides, indices
are `numpy.int32` arrays, see the docstrings) or a `TensorData`, calls your
code and returns plain data (numbers, lists, NumPy arrays). The expected
values are computed by the tests themselves, mostly with NumPy.

Run them with `pytest tests/test_tensor_data.py` (add `-k broadcast` for one topic).
"""

import itertools
import math

import numpy as np
import pytest
import strategies  # noqa: F401  (registers and loads the Hypothesis settings profiles)
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.task("hw1.3")

#: Shapes of 1 to 4 dimensions, each of size 1 to 5.
shapes = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4)


def row_major_strides(shape):
    """The strides of a contiguous tensor of this shape: (12, 4, 1) for (2, 3, 4)."""
    strides = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    return strides


def assert_lists_equal(actual, expected, labels, what):
    """Assert two lists are equal, naming the first entry that differs (labels[k] says which)."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} results for {len(expected)}"
    for label, value, want in zip(labels, actual, expected, strict=True):
        assert value == want, f"{what}, {label}: expected {want}, got {value}"


def all_indices(shape):
    """Every index of a shape, in row-major order, as lists."""
    return [list(index) for index in itertools.product(*(range(n) for n in shape))]


@st.composite
def shapes_with_strides(draw):
    """(shape, strides): strides of every kind, not only row-major ones."""
    shape = draw(shapes)
    kind = draw(st.sampled_from(["row-major", "permuted", "any"]))
    if kind == "row-major":
        strides = row_major_strides(shape)
    elif kind == "permuted":
        order = draw(st.permutations(range(len(shape))))
        base = row_major_strides([shape[o] for o in order])
        strides = [0] * len(shape)
        for k, o in enumerate(order):
            strides[o] = base[k]
    else:
        strides = draw(st.lists(st.integers(0, 40), min_size=len(shape), max_size=len(shape)))
    return shape, strides


@st.composite
def broadcast_pairs(draw):
    """(big_shape, shape): `shape` is broadcastable to `big_shape`.

    `shape` is a right-aligned suffix of `big_shape` (so it may have fewer
    dimensions) in which about a third of the sizes are replaced by 1.
    """
    big_shape = draw(shapes)
    n = draw(st.integers(min_value=1, max_value=len(big_shape)))
    ones = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    shape = [1 if one == 0 else size for size, one in zip(big_shape[-n:], ones, strict=True)]
    return big_shape, shape


def expected_broadcast_indices(big_shape, shape):
    """For each index of big_shape (row-major), the index of `shape` NumPy broadcasts there."""
    small = np.arange(math.prod(shape)).reshape(shape)
    spread = np.broadcast_to(small, big_shape).reshape(-1)
    return np.stack(np.unravel_index(spread, shape), axis=1).reshape(-1, len(shape))


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_index_to_position(indices, strides):
    """index_to_position(index, strides) for each index, as Python ints."""
    import numpy as np
    from minitorch.tensor_data import index_to_position

    strides = np.array(strides, dtype=np.int32)
    return [int(index_to_position(np.array(i, dtype=np.int32), strides)) for i in indices]


def probe_to_index(shape, ordinals):
    """The index to_index writes for each ordinal, one row per ordinal."""
    import numpy as np
    from minitorch.tensor_data import to_index

    shape = np.array(shape, dtype=np.int32)
    out_index = np.zeros(len(shape), dtype=np.int32)
    rows = np.zeros((len(ordinals), len(shape)), dtype=np.int64)
    for row, ordinal in enumerate(ordinals):
        to_index(ordinal, shape, out_index)
        rows[row] = out_index
    return rows


def probe_round_trip(shape):
    """index_to_position(to_index(ordinal), row-major strides) for every ordinal."""
    import math

    import numpy as np
    from minitorch.tensor_data import index_to_position, strides_from_shape, to_index

    strides = np.array(strides_from_shape(shape), dtype=np.int32)
    shape = np.array(shape, dtype=np.int32)
    out_index = np.zeros(len(shape), dtype=np.int32)
    positions = []
    for ordinal in range(math.prod(int(s) for s in shape)):
        to_index(ordinal, shape, out_index)
        positions.append(int(index_to_position(out_index, strides)))
    return positions


def probe_broadcast_index(big_shape, shape, big_indices):
    """The index broadcast_index writes for each big index, one row per big index."""
    import numpy as np
    from minitorch.tensor_data import broadcast_index

    big_shape_array = np.array(big_shape, dtype=np.int32)
    shape_array = np.array(shape, dtype=np.int32)
    out_index = np.zeros(len(shape), dtype=np.int32)
    rows = np.zeros((len(big_indices), len(shape)), dtype=np.int64)
    for row, big_index in enumerate(big_indices):
        broadcast_index(
            np.array(big_index, dtype=np.int32), big_shape_array, shape_array, out_index
        )
        rows[row] = out_index
    return rows


def probe_shape_broadcast(shape1, shape2):
    """{"shape": the result or None, "raised": the exception's class name, "indexing_error"}."""
    from minitorch.tensor_data import IndexingError, shape_broadcast

    try:
        shape = shape_broadcast(tuple(shape1), tuple(shape2))
    except NotImplementedError:
        raise  # an unfinished stub: let the test fail with it
    except Exception as error:
        return {
            "shape": None,
            "raised": type(error).__name__,
            "indexing_error": isinstance(error, IndexingError),
        }
    return {"shape": [int(s) for s in shape], "raised": None, "indexing_error": False}


def probe_permute(shape, order):
    """Shape, strides, storage sharing and elements of TensorData(arange).permute(*order)."""
    import itertools
    import math

    import numpy as np
    from minitorch.tensor_data import TensorData

    storage = np.arange(math.prod(shape), dtype=np.float64) + 0.5
    t = TensorData(storage, tuple(shape))
    p = t.permute(*order)
    result = {
        "type": type(p).__name__,
        "shape": [int(s) for s in p.shape],
        "strides": [int(s) for s in p.strides],
        "same storage": p.storage is t.storage,
        "original shape": [int(s) for s in t.shape],
        "original strides": [int(s) for s in t.strides],
        "values": None,
    }
    if tuple(p.shape) == tuple(shape[o] for o in order):
        indices = itertools.product(*(range(n) for n in p.shape))
        result["values"] = np.array([p.get(index) for index in indices])
    return result


def probe_permute_error(shape, order):
    """The class name of what TensorData.permute(*order) raises (None if nothing)."""
    import math

    from minitorch.tensor_data import IndexingError, TensorData

    t = TensorData([0.0] * math.prod(shape), tuple(shape))
    try:
        t.permute(*order)
    except NotImplementedError:
        raise  # an unfinished stub: let the test fail with it
    except Exception as error:
        return {"raised": type(error).__name__, "indexing_error": isinstance(error, IndexingError)}
    return {"raised": None, "indexing_error": False}


def probe_numba_compiled(shape, strides, big_shape, small_shape):
    """The three helpers compiled with numba.njit, on every ordinal of `shape` / `big_shape`."""
    import math

    import numpy as np
    from minitorch.tensor_data import broadcast_index, index_to_position, to_index
    from numba import njit

    shape_a = np.array(shape, dtype=np.int32)
    strides_a = np.array(strides, dtype=np.int32)
    big_a = np.array(big_shape, dtype=np.int32)
    small_a = np.array(small_shape, dtype=np.int32)
    try:
        fast_to_index = njit(to_index)
        fast_position = njit(index_to_position)
        fast_broadcast = njit(broadcast_index)
        index = np.zeros(len(shape), dtype=np.int32)
        positions = []
        for ordinal in range(math.prod(shape)):
            fast_to_index(ordinal, shape_a, index)
            positions.append(int(fast_position(index, strides_a)))
        big_index = np.zeros(len(big_shape), dtype=np.int32)
        small_index = np.zeros(len(small_shape), dtype=np.int32)
        small = []
        for ordinal in range(math.prod(big_shape)):
            fast_to_index(ordinal, big_a, big_index)
            fast_broadcast(big_index, big_a, small_a, small_index)
            small.append([int(i) for i in small_index])
    except NotImplementedError:
        raise  # an unfinished stub: let the test fail with it
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:3000]}
    return {"positions": positions, "small indices": small}


# ---------------------------------------------------------------------------
# The docstrings' worked examples
# ---------------------------------------------------------------------------


def test_index_to_position_docstring_examples(student):
    """Index (1, 2) is at position 5 with strides (3, 1), and at 7 with strides (1, 3)."""
    assert student.run(probe_index_to_position, [[1, 2]], [3, 1]) == [5]
    assert student.run(probe_index_to_position, [[1, 2]], [1, 3]) == [7]
    assert student.run(probe_index_to_position, [[0, 0, 0], [1, 2, 3]], [12, 4, 1]) == [0, 23]


def test_to_index_docstring_example(student):
    """For shape (2, 3), ordinals 0..5 are (0,0) (0,1) (0,2) (1,0) (1,1) (1,2)."""
    got = student.run(probe_to_index, [2, 3], list(range(6)))
    want = [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert got.tolist() == want, "to_index must count in row-major order (last dimension fastest)"


def test_broadcast_index_docstring_example(student):
    """big_shape (2, 3, 4), shape (3, 1), big_index (1, 2, 3) gives (2, 0)."""
    got = student.run(probe_broadcast_index, [2, 3, 4], [3, 1], [[1, 2, 3]])
    assert got.tolist() == [[2, 0]], (
        f"expected (2, 0), got {tuple(got[0].tolist())}: align the dimensions on the right, "
        "and use 0 where the small shape has size 1"
    )


BROADCAST_EXAMPLES = [
    ([2, 3, 4], [4]),
    ([2, 3, 4], [1, 4]),
    ([2, 3, 4], [3, 1]),
    ([2, 3, 4], [2, 1, 4]),
    ([4, 3, 2, 5], [2, 1]),
    ([3, 2], [1]),
]


@pytest.mark.parametrize(
    ("big_shape", "shape"), BROADCAST_EXAMPLES, ids=[f"{b}-{s}" for b, s in BROADCAST_EXAMPLES]
)
def test_broadcast_index_examples(student, big_shape, shape):
    """A few common cases ((4,) spread over (2, 3, 4), ...), checked at every big index."""
    big_indices = all_indices(big_shape)
    got = student.run(probe_broadcast_index, big_shape, shape, big_indices)
    want = expected_broadcast_indices(big_shape, shape)
    assert_lists_equal(
        got.tolist(),
        want.tolist(),
        [f"big_index {index}" for index in big_indices],
        f"big_shape {big_shape}, shape {shape}",
    )


SHAPE_BROADCAST_EXAMPLES = [
    ((2, 3), (3,), (2, 3)),
    ((4, 1), (1, 5), (4, 5)),
    ((2, 1, 3), (4, 3), (2, 4, 3)),
    ((3,), (2, 3), (2, 3)),
    ((1,), (4, 5), (4, 5)),
    ((2, 3), (2,), None),
    ((3, 1), (2, 4, 1), None),
]


@pytest.mark.parametrize(
    ("shape1", "shape2", "expected"),
    SHAPE_BROADCAST_EXAMPLES,
    ids=[f"{a}-{b}" for a, b, _ in SHAPE_BROADCAST_EXAMPLES],
)
def test_shape_broadcast_examples(student, shape1, shape2, expected):
    """The docstring's examples: (2, 3) and (3,) give (2, 3), ..., (2, 3) and (2,) raise."""
    got = student.run(probe_shape_broadcast, list(shape1), list(shape2))
    check_shape_broadcast(got, f"shape_broadcast{shape1, shape2}", expected)


def check_shape_broadcast(got, call, expected):
    """The result `got` of `probe_shape_broadcast` for `call` (the call, as text): the
    shape `expected`, or IndexingError where `expected` is None."""
    if expected is None:
        assert got["indexing_error"], (
            f"{call} must raise IndexingError, "
            f"got {got['raised'] or 'no exception'} (result {got['shape']})"
        )
    else:
        assert got["raised"] is None, f"{call} raised {got['raised']}"
        assert got["shape"] == list(expected), (
            f"{call}: expected {tuple(expected)}, got {tuple(got['shape'])}"
        )


def test_permute_docstring_example(student):
    """A (2, 3, 4) tensor permuted by (2, 0, 1) has shape (4, 2, 3) and strides (1, 12, 4)."""
    got = student.run(probe_permute, [2, 3, 4], [2, 0, 1])
    assert got["shape"] == [4, 2, 3]
    assert got["strides"] == [1, 12, 4], "the strides move with their dimensions"


# ---------------------------------------------------------------------------
# index_to_position and to_index
# ---------------------------------------------------------------------------


@given(shapes_with_strides(), st.data())
def test_index_to_position_is_the_dot_product_of_index_and_strides(student, case, data):
    """position = index[0] * strides[0] + ... + index[n-1] * strides[n-1], for any strides."""
    shape, strides = case
    index_strategy = st.tuples(*(st.integers(0, n - 1) for n in shape)).map(list)
    indices = data.draw(st.lists(index_strategy, min_size=1, max_size=5), label="indices")
    got = student.run(probe_index_to_position, indices, strides)
    want = [int(np.dot(index, strides)) for index in indices]
    labels = [f"index {index}" for index in indices]
    assert_lists_equal(got, want, labels, f"shape {shape}, strides {strides}")


@given(shapes)
def test_index_to_position_with_row_major_strides_is_ravel_multi_index(student, shape):
    """With row-major strides, the position of each index is numpy.ravel_multi_index."""
    indices = all_indices(shape)
    got = student.run(probe_index_to_position, indices, row_major_strides(shape))
    want = [int(np.ravel_multi_index(index, shape)) for index in indices]
    labels = [f"index {index}" for index in indices]
    assert_lists_equal(got, want, labels, f"shape {shape}, strides {row_major_strides(shape)}")


@given(shapes)
def test_to_index_is_unravel_index(student, shape):
    """to_index(ordinal, shape) is numpy.unravel_index(ordinal, shape), for every ordinal."""
    size = math.prod(shape)
    got = student.run(probe_to_index, shape, list(range(size)))
    want = np.stack(np.unravel_index(np.arange(size), shape), axis=1)
    assert got.shape == want.shape
    for ordinal in range(size):
        assert got[ordinal].tolist() == want[ordinal].tolist(), (
            f"shape {shape}, ordinal {ordinal}: expected index {tuple(want[ordinal].tolist())}, "
            f"got {tuple(got[ordinal].tolist())} (row-major: the last dimension changes fastest)"
        )


@given(shapes)
def test_to_index_then_index_to_position_gives_the_ordinal_back(student, shape):
    """For row-major strides, index_to_position(to_index(ordinal)) == ordinal."""
    got = student.run(probe_round_trip, shape)
    ordinals = list(range(math.prod(shape)))
    labels = [f"ordinal {ordinal}" for ordinal in ordinals]
    assert_lists_equal(got, ordinals, labels, f"shape {shape}, position of to_index(ordinal)")


# ---------------------------------------------------------------------------
# broadcast_index and shape_broadcast
# ---------------------------------------------------------------------------


@given(broadcast_pairs())
def test_broadcast_index_matches_numpy_broadcasting(student, pair):
    """Every index of the big shape maps to the element numpy.broadcast_to puts there."""
    big_shape, shape = pair
    got = student.run(probe_broadcast_index, big_shape, shape, all_indices(big_shape))
    want = expected_broadcast_indices(big_shape, shape)
    assert got.shape == want.shape
    for big_index, actual, expected in zip(all_indices(big_shape), got, want, strict=True):
        assert actual.tolist() == expected.tolist(), (
            f"big_shape {big_shape}, shape {shape}, big_index {big_index}: expected "
            f"{expected.tolist()}, got {actual.tolist()}"
        )


@given(shapes, shapes)
def test_shape_broadcast_matches_numpy(student, shape1, shape2):
    """The shape numpy.broadcast_shapes gives, or IndexingError where it raises."""
    try:
        expected = list(np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    except ValueError:
        expected = None
    got = student.run(probe_shape_broadcast, shape1, shape2)
    if expected is None:
        assert got["indexing_error"], (
            f"shapes {shape1} and {shape2} do not broadcast: expected IndexingError, "
            f"got {got['raised'] or 'no exception'} (result {got['shape']})"
        )
    else:
        assert got["raised"] is None, f"shape_broadcast({shape1}, {shape2}) raised {got['raised']}"
        assert got["shape"] == expected, f"shape_broadcast({shape1}, {shape2})"


@given(broadcast_pairs())
def test_shape_broadcast_of_a_broadcastable_shape_is_the_big_shape(student, pair):
    """If `shape` broadcasts to `big_shape`, both orders of the arguments give `big_shape`."""
    big_shape, shape = pair
    assert student.run(probe_shape_broadcast, big_shape, shape)["shape"] == big_shape
    assert student.run(probe_shape_broadcast, shape, big_shape)["shape"] == big_shape


# ---------------------------------------------------------------------------
# TensorData.permute
# ---------------------------------------------------------------------------


@given(shapes.flatmap(lambda s: st.tuples(st.just(s), st.permutations(range(len(s))))))
def test_permute_moves_shape_strides_and_elements(student, case):
    """Dimension k of the result is dimension order[k]; same storage; elements as np.transpose."""
    shape, order = case
    got = student.run(probe_permute, shape, list(order))
    strides = row_major_strides(shape)
    assert got["type"] == "TensorData", f"permute must return a TensorData, got a {got['type']}"
    assert got["shape"] == [shape[o] for o in order], f"shape {shape}, order {order}"
    assert got["strides"] == [strides[o] for o in order], (
        f"shape {shape} (strides {strides}), order {order}: the strides move with their dimensions"
    )
    assert got["same storage"], "permute must share the storage array, not copy it"
    assert got["original shape"] == shape, "permute must not change the original tensor"
    assert got["original strides"] == strides, "permute must not change the original tensor"
    original = (np.arange(math.prod(shape)) + 0.5).reshape(shape)
    want = np.transpose(original, order).reshape(-1)
    np.testing.assert_array_equal(
        got["values"],
        want,
        err_msg=f"elements of the permuted tensor, row-major (shape {shape}, order {order})",
    )


NON_PERMUTATIONS = [
    ((2, 3, 4), (0, 0, 1)),
    ((2, 3, 4), (2, 2, 2)),
    ((2, 3, 4), (1, 0)),
    ((2, 3, 4), (0, 1, 2, 2)),
    ((2, 3), (1, 0, 2)),
    ((5,), ()),
]


@pytest.mark.parametrize(
    ("shape", "order"), NON_PERMUTATIONS, ids=[f"{s}-{o}" for s, o in NON_PERMUTATIONS]
)
def test_permute_rejects_orders_that_are_not_permutations(student, shape, order):
    """Repeated dimensions or the wrong number of them raise IndexingError."""
    got = student.run(probe_permute_error, list(shape), list(order))
    assert got["indexing_error"], (
        f"TensorData of shape {shape}: permute{order} must raise IndexingError, "
        f"got {got['raised'] or 'no exception'}"
    )


# ---------------------------------------------------------------------------
# numba
# ---------------------------------------------------------------------------


@pytest.mark.time_limit(60)
def test_helpers_compile_with_numba(student):
    """njit(to_index), njit(index_to_position) and njit(broadcast_index) compile and agree."""
    shape, strides = [2, 3, 4], [1, 2, 6]  # the strides of a transposed (4, 3, 2) tensor
    big_shape, small_shape = [3, 2, 4], [2, 1]
    got = student.run(probe_numba_compiled, shape, strides, big_shape, small_shape)
    assert "error" not in got, (
        "numba could not compile or run your helpers (the fast ops of hw1.5 compile them "
        "with njit: use plain loops over the arrays, no lists or tuples):\n" + got.get("error", "")
    )
    want_positions = [int(np.dot(index, strides)) for index in all_indices(shape)]
    assert_lists_equal(
        got["positions"],
        want_positions,
        [f"ordinal {k}" for k in range(len(want_positions))],
        f"compiled to_index + index_to_position, shape {shape}, strides {strides}",
    )
    want_small = expected_broadcast_indices(big_shape, small_shape).tolist()
    assert_lists_equal(
        got["small indices"],
        want_small,
        [f"big index {index}" for index in all_indices(big_shape)],
        f"compiled to_index + broadcast_index, big_shape {big_shape}, shape {small_shape}",
    )
