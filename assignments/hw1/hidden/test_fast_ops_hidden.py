"""Hidden tests of task hw1.5 (never shipped to students; students see names and outcomes).

Stronger than the public tests:
- more and larger layouts: up to 4 dimensions, inputs stored in any dimension
  order with gaps of 1 or 2 unused numbers, broadcast inputs with strides of 0,
  and inputs left unchanged by every operation;
- outputs that are not contiguous: `map` into an `out` of any layout, and the
  low-level `tensor_zip`, `tensor_reduce` and `tensor_matrix_multiply` called
  directly with an `out` stored transposed and with gaps;
- the "same layout" shortcut taken only when shapes *and* strides are equal:
  same shape with other strides, equal strides with another shape;
- reduce starts from the value already in `out` and folds in order
  (a non-commutative `fn` and start values other than 0 and 1);
- matrix multiply with operands stored in any order (the batch dimension
  too), batch broadcasting (a 3-D batch of 1 with a nonzero batch stride,
  2-D with 3-D), odd and larger sizes;
- the student's results against the reference's in random chains of
  operations on permuted tensors;
- that map, zip, reduce and matrix multiply are all compiled with
  `parallel=True` and that numba turned a `prange` loop of each into a
  parallel loop (its parfor diagnostics);
- two timing checks (the `timing` fixture of the grading harness): matrix
  multiply and reduce against the reference, on fresh inputs per repetition.

Conventions: every test calls `student` before `reference`; tolerances are
explicit (1e-12 for one float operation per element, 1e-9 for sums, products and
matrix products, whose order of addition may differ); Hypothesis settings are
fixed here (deterministic, no database). Numba compiles every kernel on first
use (a second or two each), hence the 60 s limit of each test.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import seeds
from test_fast_ops import (
    MAP_TOL,
    SUM_TOL,
    ZIPS,
    check,
    layouts,
    probe_parallel_report,
    random_array,
    spec,
)

pytestmark = [pytest.mark.task("hw1.5"), pytest.mark.time_limit(60)]

hidden_settings = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
)


# ---------------------------------------------------------------------------
# Tensors as plain data: [storage, shape, strides], laid out by `spec` and read
# back by `check` (both from the public tests)
# ---------------------------------------------------------------------------


def check_unchanged(storage, original, what):
    """An input's storage (NaN gaps included) is exactly as it was."""
    np.testing.assert_array_equal(
        np.asarray(storage), original[0], err_msg=f"{what}: an input was modified"
    )


#: Layouts larger than the public tests' ones: sides up to 6, gaps of up to 2 unused numbers.
big_layouts = layouts(max_size=6, gaps=(1, 2, 3))


@st.composite
def broadcast_of(draw, full):
    """A shape that broadcasts to `full`: leading dimensions dropped, some set to 1."""
    drop = draw(st.integers(0, len(full) - 1))
    return [1 if draw(st.booleans()) else n for n in full[drop:]]


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_map_into(name, a, out):
    """FastTensorBackend.<name>_map(a, out); returns out and a's storage afterwards."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    target = Tensor.make(out[0], tuple(out[1]), tuple(out[2]), backend=FastTensorBackend)
    result = getattr(FastTensorBackend, f"{name}_map")(x, target)
    return {
        "out": [
            result._tensor.storage,
            list(result.shape),
            list(result._tensor.strides),
        ],
        "a": x._tensor.storage,
    }


def probe_zip(name, a, b):
    """FastTensorBackend.<name>_zip(a, b); returns the result and both inputs' storages."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    y = Tensor.make(b[0], tuple(b[1]), tuple(b[2]), backend=FastTensorBackend)
    result = getattr(FastTensorBackend, f"{name}_zip")(x, y)
    return {
        "out": [
            result._tensor.storage,
            list(result.shape),
            list(result._tensor.strides),
        ],
        "a": x._tensor.storage,
        "b": y._tensor.storage,
    }


def probe_reduce(name, a, dim):
    """FastTensorBackend.<name>_reduce(a, dim); returns the result and a's storage."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    result = getattr(FastTensorBackend, f"{name}_reduce")(x, dim)
    return {
        "out": [
            result._tensor.storage,
            list(result.shape),
            list(result._tensor.strides),
        ],
        "a": x._tensor.storage,
    }


def probe_matmul(a, b):
    """FastTensorBackend.matrix_multiply(a, b); returns the result and both storages."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    y = Tensor.make(b[0], tuple(b[1]), tuple(b[2]), backend=FastTensorBackend)
    result = FastTensorBackend.matrix_multiply(x, y)
    return {
        "out": [
            result._tensor.storage,
            list(result.shape),
            list(result._tensor.strides),
        ],
        "a": x._tensor.storage,
        "b": y._tensor.storage,
    }


def probe_low_level(kind, cases):
    """Calls the low-level loop of `kind` directly on each case; returns each `out` storage.

    kind "zip": `fast_ops.tensor_zip` of fn(x, y) = x - 2y, cases (out, a, b);
    kind "reduce": `fast_ops.tensor_reduce` of fn(acc, x) = acc / 2 + x, cases
    (out, a, dim) where `out` already holds the start values;
    kind "matmul": `fast_ops.tensor_matrix_multiply`, cases (out, a, b), all 3-D.
    Each tensor is (storage, shape, strides); `out` may have any layout.
    """
    import numpy as np
    from minitorch import fast_ops
    from numba import njit

    def arrays(t):
        return (
            np.array(t[0], dtype=np.float64),
            np.array(t[1], dtype=np.int32),
            np.array(t[2], dtype=np.int32),
        )

    def minus_twice(x, y):
        return x - 2.0 * y

    def halve_add(acc, x):
        return acc / 2.0 + x

    if kind == "zip":
        kernel = fast_ops.tensor_zip(njit(minus_twice))
    elif kind == "reduce":
        kernel = fast_ops.tensor_reduce(njit(halve_add))
    else:
        kernel = fast_ops.tensor_matrix_multiply
    results = []
    for case in cases:
        out = arrays(case[0])
        if kind == "reduce":
            kernel(*out, *arrays(case[1]), int(case[2]))
        else:
            kernel(*out, *arrays(case[1]), *arrays(case[2]))
        results.append(out[0])
    return results


def probe_chain(seed):
    """A random chain of fast operations on tensors of random layouts (from `seed`);
    every intermediate result, as a list of arrays."""
    import numpy as np
    from minitorch import FastTensorBackend as F
    from minitorch import Tensor

    rng = np.random.default_rng(seed)

    def tensor(shape):
        x = rng.uniform(-2.0, 2.0, size=shape)
        order = rng.permutation(len(shape))
        stored = np.ascontiguousarray(np.transpose(x, order))
        view = np.transpose(stored, np.argsort(order))
        strides = tuple(s // 8 for s in view.strides)
        return Tensor.make(stored.ravel(), shape, strides, backend=F)

    def plain(t):
        data = t._tensor
        return np.lib.stride_tricks.as_strided(
            data.storage, data.shape, [8 * s for s in data.strides]
        ).copy()

    n, m, k = (int(v) for v in rng.integers(1, 6, size=3))
    results = []
    s = F.add_zip(F.neg_map(tensor((n, m))), tensor((1, m)))
    results.append(plain(s))
    q = F.matrix_multiply(s, tensor((m, k)))
    results.append(plain(q))
    r = F.add_reduce(q, int(rng.integers(0, 2)))
    results.append(plain(r))
    results.append(plain(F.lt_zip(r, q)))
    results.append(plain(F.mul_reduce(s, int(rng.integers(0, 2)))))
    b = F.matrix_multiply(tensor((3, n, m)), tensor((1, m, k)))
    results.append(plain(b))
    return results


def probe_time_matmul(seed, size, reps, keep):
    """Timed: `reps` products of two fresh (size, size) matrices (inputs from seed + i)."""
    import numpy as np
    from minitorch import FastTensorBackend, Tensor

    sums, kept = [], None
    for i in range(reps):
        rng = np.random.default_rng(seed + i)
        a = Tensor.make(rng.random(size * size) - 0.5, (size, size), backend=FastTensorBackend)
        b = Tensor.make(rng.random(size * size) - 0.5, (size, size), backend=FastTensorBackend)
        out = FastTensorBackend.matrix_multiply(a, b)._tensor
        result = np.lib.stride_tricks.as_strided(
            out.storage, out.shape, [8 * s for s in out.strides]
        ).copy()
        sums.append(float(result.sum()))
        if i == keep:
            kept = result
    return {"sums": sums, "kept": kept}


def probe_time_reduce(seed, size, reps, keep):
    """Timed: `reps` sums of a fresh (n, n) tensor along each dimension, n = isqrt(size)."""
    import math

    import numpy as np
    from minitorch import FastTensorBackend, Tensor

    side = math.isqrt(size)
    sums, kept = [], None
    for i in range(reps):
        rng = np.random.default_rng(seed + i)
        a = Tensor.make(rng.random(side * side) - 0.5, (side, side), backend=FastTensorBackend)
        parts = []
        for dim in (1, 0):
            out = FastTensorBackend.add_reduce(a, dim)._tensor
            parts.append(
                np.lib.stride_tricks.as_strided(
                    out.storage, out.shape, [8 * s for s in out.strides]
                ).ravel()
            )
        result = np.concatenate(parts)
        sums.append(float(result.sum()))
        if i == keep:
            kept = result
    return {"sums": sums, "kept": kept}


# ---------------------------------------------------------------------------
# map
# ---------------------------------------------------------------------------


@hidden_settings
@given(big_layouts, st.data(), seeds)
def test_map_into_any_out_layout(student, layout, data, seed):
    """neg_map(a, out): `out` of any layout, `a` of a broadcast shape and any layout;
    `a` unchanged."""
    shape, out_order, out_gap = layout
    in_shape = data.draw(broadcast_of(shape), label="in_shape")
    in_order = data.draw(st.permutations(range(len(in_shape))), label="in_order")
    in_gap = data.draw(st.sampled_from([1, 2]), label="in_gap")
    x = random_array(seed, in_shape)
    a = spec(x, in_order, in_gap)
    got = student.run(probe_map_into, "neg", a, spec(np.zeros(shape), out_order, out_gap))
    what = (
        f"neg_map of shape {in_shape} (order {in_order}, gap {in_gap}) into out of shape "
        f"{shape} (order {out_order}, gap {out_gap})"
    )
    check(got["out"], np.broadcast_to(-x, shape), what, MAP_TOL)
    check_unchanged(got["a"], a, what)


@pytest.mark.parametrize(
    ("a_layout", "out_layout"),
    [
        pytest.param((None, 1), ((1, 0), 1), id="a row-major, out stored transposed"),
        pytest.param(((1, 0), 1), (None, 1), id="a stored transposed, out row-major"),
        pytest.param(((1, 0), 1), ((1, 0), 1), id="both stored transposed"),
        pytest.param((None, 2), (None, 1), id="a with gaps, out row-major"),
        pytest.param((None, 1), (None, 2), id="a row-major, out with gaps"),
        pytest.param((None, 2), (None, 2), id="both with gaps"),
    ],
)
def test_map_same_shape_other_strides(student, a_layout, out_layout):
    """Equal shapes, equal or different strides: the shortcut only when strides are equal.
    Layouts are (order, gap) as for `spec`."""
    x = random_array(11, (4, 5))
    got = student.run(
        probe_map_into, "neg", spec(x, *a_layout), spec(np.zeros((4, 5)), *out_layout)
    )
    what = f"neg_map of a (4, 5) tensor with layout {a_layout} into out with layout {out_layout}"
    check(got["out"], -x, what, MAP_TOL)


def test_map_equal_strides_other_shape(student):
    """a (1, 5) and out (4, 5), both row-major: equal strides (5, 1), other shapes, so
    `a` must be broadcast; and a stride-0 input of the output's shape."""
    row = random_array(12, (1, 5))
    got = student.run(probe_map_into, "neg", spec(row), spec(np.zeros((4, 5))))
    check(
        got["out"],
        np.broadcast_to(-row, (4, 5)),
        "neg_map of (1, 5) into (4, 5)",
        MAP_TOL,
    )
    col = random_array(13, (4,))
    repeated = [col, [4, 5], [1, 0]]  # shape (4, 5), column j is `col`
    got = student.run(probe_map_into, "neg", repeated, spec(np.zeros((4, 5))))
    expected = -np.repeat(col[:, None], 5, axis=1)
    check(got["out"], expected, "neg_map of a (4, 5) tensor with strides (1, 0)", MAP_TOL)


# ---------------------------------------------------------------------------
# zip
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ZIPS))
@hidden_settings
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data(), seeds)
def test_zip_broadcast_any_layout(student, name, full, data, seed):
    """<name>_zip of two shapes broadcasting to `full` (or `full` itself), each input stored
    in any order with gaps; inputs unchanged."""
    arrays, specs = [], []
    for side in ("a", "b"):
        shape = data.draw(st.one_of(st.just(full), broadcast_of(full)), label=f"{side} shape")
        order = data.draw(st.permutations(range(len(shape))), label=f"{side} order")
        gap = data.draw(st.sampled_from([1, 2]), label=f"{side} gap")
        arrays.append(random_array(seed + len(arrays), shape))
        specs.append(spec(arrays[-1], order, gap))
    x, y = arrays
    got = student.run(probe_zip, name, specs[0], specs[1])
    what = f"{name}_zip of shapes {list(x.shape)} and {list(y.shape)}"
    check(got["out"], ZIPS[name](x, y), what, MAP_TOL)
    check_unchanged(got["a"], specs[0], what)
    check_unchanged(got["b"], specs[1], what)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((3, 1), (1, 4)),
        ((4,), (3, 4)),
        ((3, 4), (4,)),
        ((2, 1, 4), (3, 1)),
        ((1,), (2, 3, 4, 5)),
        ((2, 3, 4, 5), (2, 3, 4, 5)),
        ((1, 1), (1, 1)),
    ],
)
def test_zip_shapes(student, a_shape, b_shape):
    """Broadcasting both ways, fewer dimensions, 4-D, 1-element tensors (lt_zip, so that
    fn(b, a) in place of fn(a, b) shows)."""
    x, y = random_array(14, a_shape), random_array(15, b_shape)
    got = student.run(probe_zip, "lt", spec(x), spec(y))
    check(got["out"], (x < y).astype(float), f"lt_zip of {a_shape} and {b_shape}", MAP_TOL)
    got = student.run(probe_zip, "lt", spec(y), spec(x))
    check(got["out"], (y < x).astype(float), f"lt_zip of {b_shape} and {a_shape}", MAP_TOL)


# ---------------------------------------------------------------------------
# reduce
# ---------------------------------------------------------------------------


@hidden_settings
@given(big_layouts, st.sampled_from(["add", "mul"]), seeds)
def test_reduce_any_layout(student, layout, name, seed):
    """<name>_reduce along every dimension, inputs in any order with gaps; input unchanged."""
    shape, order, gap = layout
    x = random_array(seed, shape, 0.5, 1.5) * np.where(random_array(seed + 1, shape) < 0, -1, 1)
    a = spec(x, order, gap)
    for dim in range(len(shape)):
        got = student.run(probe_reduce, name, a, dim)
        expected = (
            x.sum(axis=dim, keepdims=True) if name == "add" else x.prod(axis=dim, keepdims=True)
        )
        what = f"{name}_reduce along {dim} of shape {shape} (order {order}, gap {gap})"
        check(got["out"], expected, what, SUM_TOL)
        check_unchanged(got["a"], a, what)


@pytest.mark.parametrize(
    ("shape", "order"),
    [
        ((2, 1000), None),
        ((1000, 3), None),
        ((1000, 3), (1, 0)),
        ((1, 1, 7), None),
        ((5, 1), None),
    ],
)
def test_reduce_long_and_unit_dims(student, shape, order):
    """Long dimensions (1000), dimensions of size 1, along every dimension."""
    x = random_array(16, shape)
    for dim in range(len(shape)):
        got = student.run(probe_reduce, "add", spec(x, order), dim)
        check(
            got["out"],
            x.sum(axis=dim, keepdims=True),
            f"add_reduce of {shape} along {dim}",
            SUM_TOL,
        )
    y = random_array(17, shape, 0.9, 1.1)
    for dim in range(len(shape)):
        got = student.run(probe_reduce, "mul", spec(y, order), dim)
        check(
            got["out"],
            y.prod(axis=dim, keepdims=True),
            f"mul_reduce of {shape} along {dim}",
            SUM_TOL,
        )


def test_reduce_broadcast_input(student):
    """A (3, 4) input with strides (0, 1) (every row the same storage) along each dim."""
    row = random_array(18, (4,))
    full = np.tile(row, (3, 1))
    for dim in (0, 1):
        got = student.run(probe_reduce, "add", [row, [3, 4], [0, 1]], dim)
        check(
            got["out"],
            full.sum(axis=dim, keepdims=True),
            f"add_reduce along {dim}",
            SUM_TOL,
        )


def test_low_level_reduce_starts_from_out_and_folds_in_order(student):
    """tensor_reduce(fn) with fn(acc, x) = acc / 2 + x: each `out` element starts from the
    value already in `out` (not 0, not the first input), combines x = a[.., j, ..] for
    j = 0, 1, ... in order as fn(acc, x); `out` stored in any layout."""
    rng = np.random.default_rng(19)
    cases, expected = [], []
    for shape, order, dim, out_order, gap in [
        ((4, 5), None, 1, None, 1),
        ((4, 5), (1, 0), 0, None, 1),
        ((3, 4, 5), (2, 0, 1), 1, (2, 1, 0), 2),
        ((2, 3, 4, 2), (3, 2, 1, 0), 2, (0, 3, 1, 2), 2),
        ((6,), None, 0, None, 3),
        ((5, 1), None, 1, None, 1),
    ]:
        x = rng.uniform(-2.0, 2.0, size=shape)
        out_shape = list(shape)
        out_shape[dim] = 1
        start = rng.uniform(-5.0, 5.0, size=out_shape)
        acc = start.copy()
        for j in range(shape[dim]):
            acc = acc / 2.0 + np.take(x, [j], axis=dim)
        cases.append([spec(start, out_order, gap), spec(x, order), dim])
        expected.append(acc)
    got = student.run(probe_low_level, "reduce", cases)
    assert len(got) == len(cases)
    for storage, case, want in zip(got, cases, expected, strict=True):
        out = [storage, case[0][1], case[0][2]]
        what = f"tensor_reduce of shape {case[1][1]} along {case[2]}, out strides {case[0][2]}"
        check(out, want, what, SUM_TOL)


# ---------------------------------------------------------------------------
# Low-level zip and matmul into any out
# ---------------------------------------------------------------------------


def test_low_level_zip_into_any_out_layout(student):
    """tensor_zip(fn) with fn(x, y) = x - 2y, `out` stored transposed or with gaps."""
    rng = np.random.default_rng(20)
    cases, expected = [], []
    for out_shape, a_shape, b_shape, out_order, gap in [
        ((4, 5), (4, 5), (4, 5), (1, 0), 1),
        ((4, 5), (4, 5), (4, 5), None, 2),
        ((3, 4), (3, 1), (4,), (1, 0), 2),
        ((2, 3, 4), (2, 3, 4), (1, 3, 1), (2, 0, 1), 1),
    ]:
        x, y = rng.uniform(-2, 2, size=a_shape), rng.uniform(-2, 2, size=b_shape)
        cases.append([spec(np.zeros(out_shape), out_order, gap), spec(x), spec(y)])
        expected.append(x - 2.0 * y)
    got = student.run(probe_low_level, "zip", cases)
    assert len(got) == len(cases)
    for storage, case, want in zip(got, cases, expected, strict=True):
        out = [storage, case[0][1], case[0][2]]
        what = f"tensor_zip into out of shape {case[0][1]} and strides {case[0][2]}"
        check(out, want, what, MAP_TOL)


def test_low_level_matmul_into_any_out_layout(student):
    """tensor_matrix_multiply called directly: `out` stored transposed or with gaps; a
    batch of 1 with a nonzero batch stride broadcast against a batch of 3."""
    rng = np.random.default_rng(21)
    cases, expected = [], []
    for a_shape, b_shape, out_order, gap in [
        ((2, 3, 4), (2, 4, 5), (0, 2, 1), 1),
        ((1, 3, 4), (3, 4, 5), (2, 1, 0), 2),
        ((3, 3, 4), (1, 4, 5), None, 2),
        ((2, 6, 1), (2, 1, 7), (1, 0, 2), 1),
    ]:
        x, y = rng.uniform(-2, 2, size=a_shape), rng.uniform(-2, 2, size=b_shape)
        want = np.matmul(x, y)
        cases.append([spec(np.zeros(want.shape), out_order, gap), spec(x), spec(y)])
        expected.append(want)
    got = student.run(probe_low_level, "matmul", cases)
    assert len(got) == len(cases)
    for storage, case, want in zip(got, cases, expected, strict=True):
        out = [storage, case[0][1], case[0][2]]
        what = (
            f"tensor_matrix_multiply of {case[1][1]} and {case[2][1]} into out with "
            f"strides {case[0][2]}"
        )
        check(out, want, what, SUM_TOL)


# ---------------------------------------------------------------------------
# matrix multiply
# ---------------------------------------------------------------------------


@hidden_settings
@given(
    st.sampled_from([(None, None), (1, 1), (2, 2), (1, 3), (3, 1), (None, 3), (2, None)]),
    st.integers(1, 7),
    st.integers(1, 7),
    st.integers(1, 7),
    st.data(),
    seeds,
)
def test_matmul_any_layout(student, batches, rows, inner, cols, data, seed):
    """2-D and 3-D operands, batches broadcast, each operand stored in any dimension order
    (the batch dimension included) with or without gaps; operands unchanged."""
    a_shape = (rows, inner) if batches[0] is None else (batches[0], rows, inner)
    b_shape = (inner, cols) if batches[1] is None else (batches[1], inner, cols)
    x, y = random_array(seed, a_shape), random_array(seed + 1, b_shape)
    a_order = data.draw(st.permutations(range(len(a_shape))), label="a order")
    b_order = data.draw(st.permutations(range(len(b_shape))), label="b order")
    a_gap, b_gap = (
        data.draw(st.sampled_from([1, 2])),
        data.draw(st.sampled_from([1, 2])),
    )
    a, b = spec(x, a_order, a_gap), spec(y, b_order, b_gap)
    got = student.run(probe_matmul, a, b)
    what = (
        f"matrix_multiply of {list(a_shape)} (order {a_order}, gap {a_gap}) and "
        f"{list(b_shape)} (order {b_order}, gap {b_gap})"
    )
    check(got["out"], np.matmul(x, y), what, SUM_TOL)
    check_unchanged(got["a"], a, what)
    check_unchanged(got["b"], b, what)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "a_order", "b_order"),
    [
        ((3, 65, 33), (1, 33, 47), None, (0, 2, 1)),
        ((1, 130), (130, 1), None, None),
        ((97, 1), (1, 89), (1, 0), None),
        ((4, 20, 30), (30, 25), (1, 0, 2), (1, 0)),
        ((128, 128), (128, 128), (1, 0), None),
    ],
)
def test_matmul_odd_and_larger_sizes(student, a_shape, b_shape, a_order, b_order):
    """Sizes that are not powers of 2, inner size 1, a single row or column, larger."""
    x, y = random_array(22, a_shape), random_array(23, b_shape)
    got = student.run(probe_matmul, spec(x, a_order), spec(y, b_order))
    check(
        got["out"],
        np.matmul(x, y),
        f"matrix_multiply of {a_shape} and {b_shape}",
        SUM_TOL,
    )


# ---------------------------------------------------------------------------
# Student against reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_chain_matches_reference(student, reference, seed):
    """neg_map, add_zip (broadcast), matrix_multiply (2-D, batched), add_reduce, lt_zip and
    mul_reduce chained on permuted tensors: every result equals the reference's."""
    got = student.run(probe_chain, seed)
    want = reference.run(probe_chain, seed)
    steps = [
        "add_zip of neg_map",
        "matrix_multiply",
        "add_reduce",
        "lt_zip",
        "mul_reduce",
    ]
    steps.append("batched matrix_multiply")
    assert len(got) == len(want)
    for step, mine, theirs in zip(steps, got, want, strict=True):
        assert np.shape(mine) == np.shape(theirs), f"{step}: shape {np.shape(mine)}"
        np.testing.assert_allclose(mine, theirs, err_msg=f"chain {seed}: {step}", **SUM_TOL)


# ---------------------------------------------------------------------------
# Compiled, in parallel
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["map", "zip", "reduce", "matmul"])
def test_compiled_in_parallel(student, kind):
    """The loop of `kind` is a numba function compiled with parallel=True in which numba
    made a parallel loop from a `prange` (with `range` only, it reports none)."""
    report = student.run(probe_parallel_report, kind)
    assert report["compiled"], f"the {kind} loop is not a numba-compiled function"
    assert report["parallel"], f"the {kind} loop is compiled without parallel=True"
    assert report["prange_loops"] >= 1, (
        f"numba found no prange loop to run in parallel in the {kind} loop "
        f"(parallel loops it made: {report['patterns'] or 'none'})"
    )


# ---------------------------------------------------------------------------
# Speed against the reference (grading harness only: the `timing` fixture)
# ---------------------------------------------------------------------------


@pytest.mark.timing("fast-matmul")
def test_matmul_speed(timing):
    """Products of fresh (n, n) matrices, n in the check's sizes, timed against the
    reference; the credit follows the time ratio (the grader's timing check)."""
    # Fails (TimingMismatch) when an output differs from the reference's; otherwise
    # the harness records the ratio and the credit, which scale this test's points.
    timing.compare(probe_time_matmul)


@pytest.mark.timing("fast-reduce")
def test_reduce_speed(timing):
    """Sums along each dimension of a fresh (n, n) tensor, n * n about the check's sizes,
    timed against the reference."""
    timing.compare(probe_time_reduce)
