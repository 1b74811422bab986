"""Hidden tests of task hw1.3 (never shipped to students; students see names and outcomes).

Stronger than the public tests: shapes of up to 6 dimensions and sizes up to
7, non-contiguous strides (from permutes, permutes of permutes, and stride 0),
broadcasting where the small shape has fewer dimensions, 1s in the middle or
leading 1s, `to_index` at the first and last ordinals of large shapes,
exhaustive checks on every small shape, output arrays that arrive holding
garbage (the docstrings say the index is *written* into `out_index`: every
entry, not only the non-zero ones), inputs that must not be modified, the
exact return type of `shape_broadcast`, and `permute` orders that are out of
range or negative. Results are also compared with the reference solution's on
the same inputs.

Conventions:
- every test calls `student` before `reference` (`both` does it in that order),
  so a student's exception is the test's error, not a reference mismatch;
- all results are integers (or floats copied from storage) and are compared
  exactly;
- Hypothesis settings are fixed here (deterministic, no example database), so
  the hidden tests do not depend on the public profile or on `CI`.
"""

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from strategies import seeds
from test_tensor_data import check_shape_broadcast, row_major_strides

pytestmark = pytest.mark.task("hw1.3")

# report_multiple_bugs=False: a wrong function fails many examples the same way;
# report one of them, not a group. No shrinking phase: a failing example is
# reported as found (shrinking large shapes would take longer than the test's
# time limit).
hidden_settings = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.generate],
)

#: What probes fill output arrays with before a call: every entry must be overwritten.
GARBAGE = -7

#: Shapes of 1 to 6 dimensions, each of size 1 to 7.
big_shapes = st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=6)

#: At most this many indices of one shape are checked per example.
SAMPLE = 300


def both(student, reference, probe, *args):
    """(student's value, reference's value) of a probe; the student is called first."""
    return student.run(probe, *args), reference.run(probe, *args)


def check_reference(want, expected):
    """The reference's result must be the test's expectation (else the test itself is wrong)."""
    agrees = want == expected
    assert agrees, "the reference solution disagrees with this test's expectation"


def sample_ordinals(size, seed):
    """Every ordinal below `size` if there are few; else the first, the last and a sample."""
    if size <= SAMPLE:
        return list(range(size))
    rng = random.Random(seed)
    return sorted({0, 1, size - 2, size - 1, *rng.sample(range(size), SAMPLE - 4)})


def unravel(ordinals, shape):
    """numpy.unravel_index of each ordinal, as lists."""
    return np.stack(np.unravel_index(np.array(ordinals), shape), axis=1).tolist()


def broadcast_expected(big_shape, shape, big_indices):
    """The index of `shape` that numpy.broadcast_to puts at each big index."""
    small = np.arange(math.prod(shape)).reshape(shape)
    spread = np.broadcast_to(small, big_shape)
    flat = [int(spread[tuple(index)]) for index in big_indices]
    return unravel(flat, shape)


def at_most(shape, size):
    """`shape` without its leading dimensions, until it has at most `size` elements."""
    while len(shape) > 1 and math.prod(shape) > size:
        shape = shape[1:]
    return shape


def smaller_shape(draw, big_shape):
    """A shape broadcastable to big_shape: a right-aligned part of it, about a third of the
    sizes set to 1."""
    n = draw(st.integers(min_value=1, max_value=len(big_shape)))
    ones = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    shape = [1 if one == 0 else size for size, one in zip(big_shape[-n:], ones, strict=True)]
    if len(shape) < len(big_shape) and draw(st.booleans()):
        shape = [1, *shape]  # a leading 1 that aligns with a real dimension of big_shape
    return shape


@st.composite
def broadcast_pairs(draw):
    """(big_shape, shape): `shape` broadcastable to `big_shape`, often with fewer dims.

    Leading 1s in either shape, and 1s anywhere in the middle of `shape`, are common.
    """
    big_shape = draw(big_shapes)
    if draw(st.booleans()):
        big_shape = [1, *big_shape[:5]]
    return big_shape, smaller_shape(draw, big_shape)


@st.composite
def zip_cases(draw):
    """(big_shape, a_shape, b_shape): two shapes broadcastable to one of at most 2000 elements."""
    big_shape = at_most(draw(big_shapes), 2000)
    return big_shape, smaller_shape(draw, big_shape), smaller_shape(draw, big_shape)


@st.composite
def permuted_tensors(draw):
    """(shape, first order, second order): a row-major tensor permuted twice."""
    shape = at_most(draw(big_shapes), 2000)
    first = draw(st.permutations(range(len(shape))))
    second = draw(st.permutations(range(len(shape))))
    return shape, list(first), list(second)


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_positions(indices, strides):
    """index_to_position for each index; the index and strides arrays after the calls."""
    import numpy as np
    from minitorch.tensor_data import index_to_position

    strides_array = np.array(strides, dtype=np.int32)
    positions, unchanged = [], True
    for index in indices:
        index_array = np.array(index, dtype=np.int32)
        positions.append(int(index_to_position(index_array, strides_array)))
        unchanged = unchanged and index_array.tolist() == list(index)
    unchanged = unchanged and strides_array.tolist() == list(strides)
    return {"positions": positions, "inputs unchanged": unchanged}


def probe_to_index_fresh(shape, ordinals, garbage):
    """to_index into a fresh garbage-filled array for each ordinal; rows of indices."""
    import numpy as np
    from minitorch.tensor_data import to_index

    shape_array = np.array(shape, dtype=np.int32)
    rows = np.zeros((len(ordinals), len(shape)), dtype=np.int64)
    for row, ordinal in enumerate(ordinals):
        out_index = np.full(len(shape), garbage, dtype=np.int32)
        to_index(ordinal, shape_array, out_index)
        rows[row] = out_index
    return {"indices": rows, "shape unchanged": shape_array.tolist() == list(shape)}


def probe_to_index_many_shapes(shapes):
    """For each shape, to_index of every ordinal (one reused output array per shape)."""
    import math

    import numpy as np
    from minitorch.tensor_data import to_index

    results = []
    for shape in shapes:
        shape_array = np.array(shape, dtype=np.int32)
        out_index = np.full(len(shape), -1, dtype=np.int32)
        rows = []
        for ordinal in range(math.prod(shape)):
            to_index(ordinal, shape_array, out_index)
            rows.append([int(i) for i in out_index])
        results.append(rows)
    return results


def probe_strided_walk(shape, order, ordinals):
    """Storage positions of the ordinals of TensorData(arange(shape)).permute(order).

    Uses to_index with the permuted shape and index_to_position with the permuted
    strides, the way the tensor ops walk a non-contiguous tensor.
    """
    import numpy as np
    from minitorch.tensor_data import index_to_position, strides_from_shape, to_index

    shape_p = np.array([shape[o] for o in order], dtype=np.int32)
    strides = strides_from_shape(shape)
    strides_p = np.array([strides[o] for o in order], dtype=np.int32)
    out_index = np.full(len(shape), -3, dtype=np.int32)
    positions = []
    for ordinal in ordinals:
        to_index(ordinal, shape_p, out_index)
        positions.append(int(index_to_position(out_index, strides_p)))
    return positions


def probe_broadcast_fresh(big_shape, shape, big_indices, garbage):
    """broadcast_index into a fresh garbage-filled array for each big index."""
    import numpy as np
    from minitorch.tensor_data import broadcast_index

    big_shape_array = np.array(big_shape, dtype=np.int32)
    shape_array = np.array(shape, dtype=np.int32)
    rows = np.zeros((len(big_indices), len(shape)), dtype=np.int64)
    unchanged = True
    for row, big_index in enumerate(big_indices):
        big_index_array = np.array(big_index, dtype=np.int32)
        out_index = np.full(len(shape), garbage, dtype=np.int32)
        broadcast_index(big_index_array, big_shape_array, shape_array, out_index)
        rows[row] = out_index
        unchanged = unchanged and big_index_array.tolist() == list(big_index)
    unchanged = (
        unchanged
        and big_shape_array.tolist() == list(big_shape)
        and shape_array.tolist() == list(shape)
    )
    return {"indices": rows, "inputs unchanged": unchanged}


def probe_broadcast_walk(big_shape, a_shape, b_shape):
    """A zip-like walk: every ordinal of big_shape to the indices of two broadcast inputs.

    One output array per input, reused across ordinals as the tensor ops do,
    but filled with garbage first.
    """
    import math

    import numpy as np
    from minitorch.tensor_data import broadcast_index, to_index

    big = np.array(big_shape, dtype=np.int32)
    a = np.array(a_shape, dtype=np.int32)
    b = np.array(b_shape, dtype=np.int32)
    big_index = np.full(len(big_shape), 9, dtype=np.int32)
    a_index = np.full(len(a_shape), 9, dtype=np.int32)
    b_index = np.full(len(b_shape), 9, dtype=np.int32)
    rows_a, rows_b = [], []
    for ordinal in range(math.prod(big_shape)):
        to_index(ordinal, big, big_index)
        broadcast_index(big_index, big, a, a_index)
        broadcast_index(big_index, big, b, b_index)
        rows_a.append([int(i) for i in a_index])
        rows_b.append([int(i) for i in b_index])
    return {"a": rows_a, "b": rows_b}


def probe_shape_broadcast(pairs):
    """For each pair: {"shape", "type", "int sizes", "raised", "indexing_error"}."""
    import numbers

    from minitorch.tensor_data import IndexingError, shape_broadcast

    results = []
    for shape1, shape2 in pairs:
        try:
            shape = shape_broadcast(tuple(shape1), tuple(shape2))
        except NotImplementedError:
            raise  # an unfinished stub: let the test fail with it
        except Exception as error:
            results.append(
                {
                    "shape": None,
                    "type": None,
                    "int sizes": False,
                    "raised": type(error).__name__,
                    "indexing_error": isinstance(error, IndexingError),
                }
            )
            continue
        results.append(
            {
                "shape": [int(s) for s in shape],
                "type": type(shape).__name__,
                "int sizes": all(
                    isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape
                ),
                "raised": None,
                "indexing_error": False,
            }
        )
    return results


def probe_permute_twice(shape, first, second):
    """TensorData(arange(shape)).permute(*first).permute(*second): shapes, strides, elements."""
    import itertools
    import math

    import numpy as np
    from minitorch.tensor_data import TensorData

    storage = np.arange(math.prod(shape), dtype=np.float64) * 2.0 - 3.0
    t = TensorData(storage, tuple(shape))
    p = t.permute(*first)
    q = p.permute(*second)
    result = {
        "p shape": [int(s) for s in p.shape],
        "p strides": [int(s) for s in p.strides],
        "q shape": [int(s) for s in q.shape],
        "q strides": [int(s) for s in q.strides],
        "same storage": p.storage is storage and q.storage is storage,
        "new objects": p is not t and q is not p,
        "t unchanged": list(t.shape) == list(shape),
        "values": None,
    }
    expected_shape = tuple(shape[first[o]] for o in second)
    if tuple(q.shape) == expected_shape and tuple(p.shape) == tuple(shape[o] for o in first):
        indices = itertools.product(*(range(n) for n in q.shape))
        result["values"] = np.array([q.get(index) for index in indices])
    return result


def probe_permute_errors(shape, orders):
    """For each order: [class name of what permute raises or None, whether an IndexingError]."""
    import math

    from minitorch.tensor_data import IndexingError, TensorData

    t = TensorData([1.0] * math.prod(shape), tuple(shape))
    results = []
    for order in orders:
        try:
            t.permute(*order)
        except NotImplementedError:
            raise  # an unfinished stub: let the test fail with it
        except Exception as error:
            results.append([type(error).__name__, isinstance(error, IndexingError)])
        else:
            results.append([None, False])
    return {"results": results, "unchanged": list(t.shape) == list(shape)}


# ---------------------------------------------------------------------------
# index_to_position
# ---------------------------------------------------------------------------


@st.composite
def strided_shapes(draw):
    """(shape, strides): permuted row-major strides, strides with 0s, or arbitrary ones."""
    shape = draw(big_shapes)
    order = draw(st.permutations(range(len(shape))))
    base = row_major_strides([shape[o] for o in order])
    strides = [0] * len(shape)
    for k, o in enumerate(order):
        strides[o] = base[k]
    kind = draw(st.sampled_from(["permuted", "zeros", "any"]))
    if kind == "zeros":
        zeros = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
        strides = [0 if zero else s for s, zero in zip(strides, zeros, strict=True)]
    elif kind == "any":
        strides = draw(st.lists(st.integers(0, 999), min_size=len(shape), max_size=len(shape)))
    return shape, strides


@hidden_settings
@given(strided_shapes(), seeds)
def test_index_to_position_on_non_contiguous_strides_up_to_6_dims(student, reference, case, seed):
    """Positions for permuted strides, stride-0 dimensions, arbitrary strides; inputs unchanged."""
    shape, strides = case
    rng = random.Random(seed)
    indices = [[0] * len(shape), [n - 1 for n in shape]]
    indices += [[rng.randrange(n) for n in shape] for _ in range(30)]
    got, want = both(student, reference, probe_positions, indices, strides)
    expected = [int(np.dot(index, strides)) for index in indices]
    check_reference(want["positions"], expected)
    for index, actual, position in zip(indices, got["positions"], expected, strict=True):
        assert actual == position, (
            f"strides {strides}, index {index}: expected position {position}, got {actual}"
        )
    assert got["inputs unchanged"], "index_to_position must not modify its index or strides"


def test_index_to_position_of_one_dimension_and_many_dimensions(student, reference):
    """1-D (position = index * stride) and 6-D cases with a stride-0 dimension."""
    cases = [
        ([[0]], [1], [0]),
        ([[4]], [1], [4]),
        ([[4]], [3], [12]),
        ([[4]], [0], [0]),
        ([[1, 2, 3, 4, 5, 6]], [720, 120, 24, 6, 2, 1], [720 + 240 + 72 + 24 + 10 + 6]),
        ([[6, 5, 4, 3, 2, 1]], [1, 7, 0, 343, 2401, 16807], [6 + 35 + 0 + 1029 + 4802 + 16807]),
    ]
    for indices, strides, expected in cases:
        got, want = both(student, reference, probe_positions, indices, strides)
        check_reference(want["positions"], expected)
        assert got["positions"][0] == expected[0], f"index {indices[0]}, strides {strides}"


# ---------------------------------------------------------------------------
# to_index
# ---------------------------------------------------------------------------


def small_shapes_exhaustive():
    """Every shape of 1 to 3 dimensions with sizes 1 to 3, and a few with 1s around."""
    out = []
    for dims in (1, 2, 3):
        out += [list(s) for s in itertools.product((1, 2, 3), repeat=dims)]
    out += [[1, 1, 1, 1], [1, 4, 1, 2], [2, 1, 1, 3, 1], [1, 1, 1, 1, 1, 5], [7, 1, 1, 1, 1, 1]]
    return out


def test_to_index_on_every_small_shape(student, reference):
    """Every ordinal of every shape of up to 3 dims with sizes up to 3 (and 1s padded shapes)."""
    shapes = small_shapes_exhaustive()
    got, want = both(student, reference, probe_to_index_many_shapes, shapes)
    for shape, rows, reference_rows in zip(shapes, got, want, strict=True):
        expected = unravel(list(range(math.prod(shape))), shape)
        check_reference(reference_rows, expected)
        for ordinal, (actual, index) in enumerate(zip(rows, expected, strict=True)):
            assert actual == index, (
                f"shape {shape}, ordinal {ordinal}: expected {index}, got {actual}"
            )


@hidden_settings
@given(big_shapes, seeds)
def test_to_index_on_large_shapes_first_and_last_ordinals(student, reference, shape, seed):
    """Up to 6 dims, sizes up to 7: ordinals 0, 1, size-2, size-1 and a sample; fresh out arrays."""
    ordinals = sample_ordinals(math.prod(shape), seed)
    got, want = both(student, reference, probe_to_index_fresh, shape, ordinals, GARBAGE)
    expected = unravel(ordinals, shape)
    check_reference(want["indices"].tolist(), expected)
    for ordinal, actual, index in zip(ordinals, got["indices"].tolist(), expected, strict=True):
        assert actual == index, (
            f"shape {shape}, ordinal {ordinal}: expected {index}, got {actual} "
            f"(out_index arrived filled with {GARBAGE}; every entry must be written)"
        )
    assert got["shape unchanged"], "to_index must not modify `shape`"


@hidden_settings
@given(permuted_tensors(), seeds)
def test_to_index_and_index_to_position_walk_a_permuted_tensor(student, reference, case, seed):
    """Walking a permuted tensor by ordinal visits the storage in numpy.transpose's order."""
    shape, order, _ = case
    size = math.prod(shape)
    ordinals = sample_ordinals(size, seed)
    got, want = both(student, reference, probe_strided_walk, shape, order, ordinals)
    transposed = np.transpose(np.arange(size).reshape(shape), order).reshape(-1)
    expected = [int(transposed[o]) for o in ordinals]
    check_reference(want, expected)
    for ordinal, actual, position in zip(ordinals, got, expected, strict=True):
        assert actual == position, (
            f"tensor of shape {shape} permuted by {order}, ordinal {ordinal}: expected "
            f"storage position {position}, got {actual}"
        )


# ---------------------------------------------------------------------------
# broadcast_index
# ---------------------------------------------------------------------------

BROADCAST_CASES = [
    ([2, 3, 4], [3, 1]),
    ([2, 3, 4], [4]),
    ([2, 3, 4], [1]),
    ([2, 3, 4], [1, 1, 1]),
    ([2, 3, 4], [2, 1, 4]),
    ([2, 3, 4], [1, 3, 4]),
    ([2, 3, 4], [2, 3, 4]),
    ([5, 2, 3], [2, 1]),
    ([4, 3, 2, 5], [3, 1, 5]),
    ([4, 3, 2, 5], [4, 1, 1, 5]),
    ([3, 1, 4], [1, 1, 4]),
    ([1, 6], [6]),
    ([1, 2, 3], [1, 3]),
    ([2, 3, 2, 2, 3, 2], [3, 2, 1, 3, 1]),
    ([2, 3, 2, 2, 3, 2], [1, 1, 3, 1]),
    ([7, 1, 3, 1, 2, 2], [1, 1, 2]),
]


def test_broadcast_index_known_cases(student, reference):
    """Fewer dims, 1s in the middle, leading 1s, same shape, all 1s; every big index."""
    for big_shape, shape in BROADCAST_CASES:
        big_indices = [list(i) for i in itertools.product(*(range(n) for n in big_shape))]
        got, want = both(
            student, reference, probe_broadcast_fresh, big_shape, shape, big_indices, GARBAGE
        )
        expected = broadcast_expected(big_shape, shape, big_indices)
        check_reference(want["indices"].tolist(), expected)
        for big_index, actual, index in zip(
            big_indices, got["indices"].tolist(), expected, strict=True
        ):
            assert actual == index, (
                f"big_shape {big_shape}, shape {shape}, big_index {big_index}: expected {index}, "
                f"got {actual} (out_index arrived filled with {GARBAGE}; write every entry, "
                "including the 0s)"
            )
        assert got["inputs unchanged"], "broadcast_index must not modify big_index or the shapes"


@hidden_settings
@given(broadcast_pairs(), seeds)
def test_broadcast_index_random_up_to_6_dims(student, reference, pair, seed):
    """Random broadcastable pairs of up to 6 dims, sizes up to 7; fresh garbage-filled outputs."""
    big_shape, shape = pair
    ordinals = sample_ordinals(math.prod(big_shape), seed)
    big_indices = unravel(ordinals, big_shape)
    got, want = both(
        student, reference, probe_broadcast_fresh, big_shape, shape, big_indices, GARBAGE
    )
    expected = broadcast_expected(big_shape, shape, big_indices)
    check_reference(want["indices"].tolist(), expected)
    for big_index, actual, index in zip(
        big_indices, got["indices"].tolist(), expected, strict=True
    ):
        assert actual == index, (
            f"big_shape {big_shape}, shape {shape}, big_index {big_index}: expected {index}, "
            f"got {actual}"
        )
    assert got["inputs unchanged"], "broadcast_index must not modify big_index or the shapes"


@hidden_settings
@given(zip_cases())
def test_broadcast_index_in_a_zip_walk(student, reference, case):
    """Two inputs broadcast to one output, walked by ordinal with reused output arrays."""
    big_shape, a_shape, b_shape = case
    got, want = both(student, reference, probe_broadcast_walk, big_shape, a_shape, b_shape)
    big_indices = unravel(list(range(math.prod(big_shape))), big_shape)
    for name, shape in (("a", a_shape), ("b", b_shape)):
        expected = broadcast_expected(big_shape, shape, big_indices)
        check_reference(want[name], expected)
        assert len(got[name]) == len(expected)
        for big_index, actual, index in zip(big_indices, got[name], expected, strict=True):
            assert actual == index, (
                f"output shape {big_shape}, input {name} of shape {shape} (other input of shape "
                f"{b_shape if name == 'a' else a_shape}), output index {big_index}: expected "
                f"input index {index}, got {actual}"
            )


# ---------------------------------------------------------------------------
# shape_broadcast
# ---------------------------------------------------------------------------

SHAPE_CASES = [
    ((), (2, 3)),
    ((2, 3), ()),
    ((1,), (1,)),
    ((1, 1, 1), (1,)),
    ((1,), (3, 1, 4)),
    ((3, 1, 4), (1,)),
    ((1, 5), (4, 1)),
    ((1, 1, 5), (4, 1)),
    ((4, 1), (1, 1, 5)),
    ((5, 1, 3), (4, 1)),
    ((1, 4, 1), (2, 1, 1, 3)),
    ((2, 1, 1, 3), (1, 4, 1)),
    ((1, 2, 3, 4, 5, 6), (6,)),
    ((7, 1, 1, 1, 1, 1), (1, 7)),
    ((1, 3), (2, 1)),
    ((2, 3), (3, 3)),
    ((3, 3), (2, 3)),
    ((2, 1, 3), (4, 2)),
    ((4, 2), (2, 1, 3)),
    ((2, 4, 3), (5, 4, 3)),
    ((2, 3, 4), (1, 3, 5)),
    ((6,), (1, 2, 3, 4, 5, 7)),
    ((1, 2), (1, 3)),
]


def numpy_broadcast(shape1, shape2):
    """numpy.broadcast_shapes as a list, or None where it raises."""
    try:
        return list(np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    except ValueError:
        return None


def check_shape_results(pairs, got, want):
    """Compare shape_broadcast's results with NumPy's, the reference's, and the contract."""
    for (shape1, shape2), actual, ref in zip(pairs, got, want, strict=True):
        expected = numpy_broadcast(shape1, shape2)
        call = f"shape_broadcast({tuple(shape1)}, {tuple(shape2)})"
        check_reference(ref["shape"], expected)
        check_shape_broadcast(actual, call, expected)


def test_shape_broadcast_known_cases(student, reference):
    """Empty shapes, 1s on either side, leading dims, conflicts behind a 1, both argument orders."""
    pairs = [[list(a), list(b)] for a, b in SHAPE_CASES]
    got, want = both(student, reference, probe_shape_broadcast, pairs)
    check_shape_results(pairs, got, want)


@hidden_settings
@given(st.lists(st.tuples(big_shapes, big_shapes), min_size=1, max_size=20))
def test_shape_broadcast_random_up_to_6_dims(student, reference, pairs):
    """Random pairs of up to 6 dims, sizes up to 7, in both orders, against numpy and reference."""
    pairs = [[a, b] for a, b in pairs] + [[b, a] for a, b in pairs]
    got, want = both(student, reference, probe_shape_broadcast, pairs)
    check_shape_results(pairs, got, want)


@hidden_settings
@given(broadcast_pairs())
def test_shape_broadcast_of_broadcastable_pairs(student, reference, pair):
    """A shape and the (bigger) shape it broadcasts to give the bigger one, in both orders."""
    big_shape, shape = pair
    pairs = [[big_shape, shape], [shape, big_shape], [big_shape, big_shape]]
    got, want = both(student, reference, probe_shape_broadcast, pairs)
    check_shape_results(pairs, got, want)


def test_shape_broadcast_returns_a_tuple_of_ints(student, reference):
    """The docstring: "the broadcast shape, as a tuple of ints" (not a list, not floats)."""
    pairs = [[[2, 3], [3]], [[4, 1], [1, 5]], [[1], [1]], [[2, 1, 3], [4, 3]]]
    got, want = both(student, reference, probe_shape_broadcast, pairs)
    for (shape1, shape2), actual, ref in zip(pairs, got, want, strict=True):
        check_reference([ref["type"], ref["int sizes"]], ["tuple", True])
        call = f"shape_broadcast({tuple(shape1)}, {tuple(shape2)})"
        assert actual["raised"] is None, f"{call} raised {actual['raised']}"
        assert actual["type"] == "tuple", f"{call} must return a tuple, got a {actual['type']}"
        assert actual["int sizes"], f"{call} must return a tuple of ints"


# ---------------------------------------------------------------------------
# TensorData.permute
# ---------------------------------------------------------------------------


@hidden_settings
@given(permuted_tensors())
def test_permute_of_a_permuted_tensor_up_to_6_dims(student, reference, case):
    """Permuting a non-contiguous (permuted) tensor: shapes, strides, storage, elements."""
    shape, first, second = case
    got, want = both(student, reference, probe_permute_twice, shape, first, second)
    strides = row_major_strides(shape)
    p_shape, p_strides = [shape[o] for o in first], [strides[o] for o in first]
    q_shape, q_strides = [p_shape[o] for o in second], [p_strides[o] for o in second]
    where = f"shape {shape} permuted by {first}, then by {second}"
    check_reference([want["q shape"], want["q strides"]], [q_shape, q_strides])
    assert got["p shape"] == p_shape, f"{where}: first permute's shape"
    assert got["p strides"] == p_strides, f"{where}: first permute's strides"
    assert got["q shape"] == q_shape, f"{where}: second permute's shape"
    assert got["q strides"] == q_strides, f"{where}: second permute's strides"
    numpy_view = np.transpose(np.transpose(np.zeros(shape), first), second)
    assert [s // 8 for s in numpy_view.strides] == q_strides  # the same layout as NumPy's
    assert got["same storage"], f"{where}: both results must share the original storage"
    assert got["new objects"], f"{where}: permute must return a new TensorData"
    assert got["t unchanged"], f"{where}: the original tensor must not change"
    original = (np.arange(math.prod(shape), dtype=np.float64) * 2.0 - 3.0).reshape(shape)
    expected = np.transpose(np.transpose(original, first), second).reshape(-1)
    np.testing.assert_array_equal(got["values"], expected, err_msg=f"{where}: elements")
    np.testing.assert_array_equal(want["values"], expected)


def test_permute_identity_and_one_dimension(student, reference):
    """permute(0) of a 1-D tensor and the identity order keep shape and strides."""
    for shape, order in (([5], [0]), ([2, 3, 4], [0, 1, 2]), ([1, 1, 6], [2, 1, 0])):
        identity = list(range(len(shape)))
        got, want = both(student, reference, probe_permute_twice, shape, order, identity)
        strides = row_major_strides(shape)
        assert got["q shape"] == want["q shape"] == [shape[o] for o in order], (shape, order)
        assert got["q strides"] == want["q strides"] == [strides[o] for o in order], (shape, order)
        np.testing.assert_array_equal(got["values"], want["values"])


PERMUTE_ERRORS = {
    (2, 3): [[0, 2], [2, 0], [-1, 0], [0, -1], [1, 1], [0], [0, 1, 2], []],
    (2, 3, 4): [[0, 1, 3], [3, 1, 2], [-1, 0, 1], [2, 0, -3], [0, 1, 1], [0, 1, 2, 0], [5, 6, 7]],
    (1, 1, 2, 3): [[0, 1, 2, 4], [3, 2, 1, -1], [0, 0, 1, 2], [0, 1, 2]],
}


@pytest.mark.parametrize("shape", list(PERMUTE_ERRORS), ids=[str(s) for s in PERMUTE_ERRORS])
def test_permute_rejects_out_of_range_negative_and_repeated_dims(student, reference, shape):
    """Orders with a dimension >= dims, a negative one, a repeat, or the wrong length raise."""
    orders = PERMUTE_ERRORS[shape]
    got, want = both(student, reference, probe_permute_errors, list(shape), orders)
    check_reference(all(indexing for _, indexing in want["results"]), True)
    for order, (raised, indexing) in zip(orders, got["results"], strict=True):
        assert indexing, (
            f"TensorData of shape {shape}: permute{tuple(order)} is not a permutation of "
            f"0..{len(shape) - 1} and must raise IndexingError, got {raised or 'no exception'}"
        )
    assert got["unchanged"], "a refused permute must not change the tensor"
