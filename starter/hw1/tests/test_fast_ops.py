"""Public tests of task hw1.5: fast tensor operations, compiled and parallel with numba.

What is checked, on `minitorch.FastTensorBackend` (whose operations call the
loops of `minitorch/fast_ops.py`), against NumPy computing the same thing:

- map (`neg_map`), zip (`add_zip` and `lt_zip`, which tells `fn(a, b)` from
  `fn(b, a)`) and reduce (`add_reduce`, `mul_reduce` along every dimension)
  on random shapes of up to 4 dimensions;
- inputs that are not contiguous: stored in another dimension order
  (permuted strides), with unused numbers between the elements, or broadcast
  with a stride of 0. An input with the same shape as the output but other
  strides must not take the "same layout" shortcut;
- broadcasting: `map` into a larger `out`, `zip` of two shapes that broadcast;
- matrix multiply: 2-D, 3-D, a batch of 1 broadcast against a batch of n,
  2-D with 3-D, transposed operands;
- sizes that the Python loops of task hw1.4 handle only slowly (a 200 x 200
  matrix product, reductions of 250 000 numbers);
- that `tensor_matrix_multiply` is compiled by numba with `parallel=True` and
  that its outer loop really became a parallel loop (numba's report of the
  compiled function lists a `prange` loop). The hidden tests check the same
  for map, zip and reduce, and time your matrix multiply and reduce against
  the reference (see the handout).

How these tests reach your code
-------------------------------
As in the other test files, no test imports `minitorch`: probes (functions
named `probe_*` below) build tensors from plain data, call your code and return
plain data. A tensor travels as `[storage, shape, strides]` (a NumPy array and
two lists): `spec` below lays out a NumPy array that way (in any dimension
order, with or without gaps), and `values` reads a result back. Results are
read from their storage directly, so a test of `zip` does not depend on your
`map` (which `Tensor.to_numpy` would use).

Numba compiles each operation the first time it runs, which takes a second
or so; that is why each test here may take up to 60 seconds when graded.

Run them with `pytest tests/test_fast_ops.py` (add `-k matmul` for one topic).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import seeds  # importing strategies also loads its settings profiles

pytestmark = [pytest.mark.task("hw1.5"), pytest.mark.time_limit(60)]

#: Tolerances: maps compute one float operation per element (almost exact);
#: sums, products and matrix products may add in another order than NumPy.
MAP_TOL = {"rtol": 1e-12, "atol": 1e-12}
SUM_TOL = {"rtol": 1e-9, "atol": 1e-9}

#: The settings profile of `strategies`, with fewer examples: each example runs
#: compiled code (starting its threads), and a few dozen layouts cover the cases.
few = settings(max_examples=30, report_multiple_bugs=False)


# ---------------------------------------------------------------------------
# Tensors as plain data
# ---------------------------------------------------------------------------


def spec(x, order=None, gap=1):
    """`x` as `[storage, shape, strides]` for `Tensor.make`.

    The storage holds `x` with its dimensions stored in the order `order` (a
    permutation of the dimensions; None keeps the row-major order), each
    element followed by `gap - 1` unused numbers (NaN, so reading one shows).
    `order=(1, 0)` stores a matrix column by column: the transpose's layout.
    """
    x = np.asarray(x, dtype=np.float64)
    order = list(range(x.ndim)) if order is None else list(order)
    stored = np.ascontiguousarray(np.transpose(x, order))
    storage = np.full(max(stored.size, 1) * gap, np.nan)
    storage[::gap] = stored.ravel()
    stored_strides = [gap * int(np.prod(stored.shape[k + 1 :])) for k in range(x.ndim)]
    strides = [0] * x.ndim
    for k, dim in enumerate(order):
        strides[dim] = stored_strides[k]
    return [storage, list(x.shape), strides]


def values(result, what):
    """The NumPy array of a tensor returned by a probe as `[storage, shape, strides]`."""
    storage, shape, strides = result
    storage = np.asarray(storage, dtype=np.float64)
    last = sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
    assert len(storage) > last, f"{what}: storage of {len(storage)} numbers for shape {shape}"
    return np.lib.stride_tricks.as_strided(
        storage, tuple(shape), tuple(s * storage.itemsize for s in strides)
    ).copy()


def check(result, expected, what, tol):
    """The probe's tensor has the expected shape and values (within `tol`)."""
    expected = np.asarray(expected, dtype=np.float64)
    assert list(result[1]) == list(expected.shape), (
        f"{what}: expected shape {list(expected.shape)}, got {list(result[1])}"
    )
    np.testing.assert_allclose(values(result, what), expected, err_msg=what, **tol)


def random_array(seed, shape, low=-3.0, high=3.0):
    """Uniform numbers in [low, high), reproducible from `seed`."""
    return np.random.default_rng(seed).uniform(low, high, size=tuple(shape))


@st.composite
def layouts(draw, max_dims=4, max_size=5, gaps=(1, 2)):
    """(shape, order, gap): a shape of 1..max_dims dimensions of sizes 1..max_size, a
    random dimension order and a gap drawn from `gaps` (as for `spec`)."""
    shape = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_dims))
    order = draw(st.permutations(range(len(shape))))
    gap = draw(st.sampled_from(gaps))
    return shape, order, gap


@st.composite
def broadcast_pairs(draw):
    """Two shapes that broadcast: each drops leading dimensions or has 1s of a common shape."""
    full = draw(st.lists(st.integers(2, 4), min_size=1, max_size=4))

    def smaller():
        drop = draw(st.integers(0, len(full) - 1))
        return [1 if draw(st.booleans()) else n for n in full[drop:]]

    return smaller(), smaller()


# ---------------------------------------------------------------------------
# Probes (run where your code lives)
# ---------------------------------------------------------------------------


def probe_map(name, a, out=None):
    """FastTensorBackend.<name>_map of tensor `a` (into tensor `out`, if given)."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    fn = getattr(FastTensorBackend, f"{name}_map")
    if out is None:
        result = fn(x)
    else:
        target = Tensor.make(out[0], tuple(out[1]), tuple(out[2]), backend=FastTensorBackend)
        result = fn(x, target)
    return [result._tensor.storage, list(result.shape), list(result._tensor.strides)]


def probe_zip(name, a, b):
    """FastTensorBackend.<name>_zip of tensors `a` and `b`."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    y = Tensor.make(b[0], tuple(b[1]), tuple(b[2]), backend=FastTensorBackend)
    result = getattr(FastTensorBackend, f"{name}_zip")(x, y)
    return [result._tensor.storage, list(result.shape), list(result._tensor.strides)]


def probe_reduce(name, a, dim):
    """FastTensorBackend.<name>_reduce of tensor `a` along `dim`."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    result = getattr(FastTensorBackend, f"{name}_reduce")(x, dim)
    return [result._tensor.storage, list(result.shape), list(result._tensor.strides)]


def probe_matmul(a, b):
    """FastTensorBackend.matrix_multiply(a, b)."""
    from minitorch import FastTensorBackend, Tensor

    x = Tensor.make(a[0], tuple(a[1]), tuple(a[2]), backend=FastTensorBackend)
    y = Tensor.make(b[0], tuple(b[1]), tuple(b[2]), backend=FastTensorBackend)
    result = FastTensorBackend.matrix_multiply(x, y)
    return [result._tensor.storage, list(result.shape), list(result._tensor.strides)]


def probe_parallel_report(kind):
    """Runs the loop of `kind` (map, zip, reduce or matmul) once on small tensors, and
    reports how numba compiled it: a dispatcher (`compiled`), with `parallel=True`
    (`parallel`), and how many of the parallel loops that numba made (its parfor
    diagnostics) came from a `prange` (`prange_loops`).

    The loops of map, zip and reduce are those that `FastTensorBackend.neg_map`,
    `add_zip` and `add_reduce` hold (compiled once, by earlier tests); where none is
    found there, a new one from `fast_ops.tensor_map(njit(neg))` etc.
    """
    import numpy as np
    from minitorch import FastTensorBackend as F
    from minitorch import Tensor, fast_ops, operators
    from numba import njit

    x = Tensor.make(np.arange(6.0), (2, 3), (1, 2), backend=F)  # stored column by column
    y = Tensor.make(np.arange(6.0), (2, 3), backend=F)
    if kind == "matmul":
        F.matrix_multiply(x, Tensor.make(np.arange(6.0), (3, 2), backend=F))
        kernel = fast_ops.tensor_matrix_multiply
    else:
        op, make = {
            "map": (F.neg_map, lambda: fast_ops.tensor_map(njit(operators.neg))),
            "zip": (F.add_zip, lambda: fast_ops.tensor_zip(njit(operators.add))),
            "reduce": (
                F.add_reduce,
                lambda: fast_ops.tensor_reduce(njit(operators.add)),
            ),
        }[kind]
        args = {"map": (x,), "zip": (x, y), "reduce": (x, 1)}[kind]
        op(*args)
        cells = [cell.cell_contents for cell in getattr(op, "__closure__", None) or ()]
        found = [c for c in cells if hasattr(c, "get_metadata") and hasattr(c, "signatures")]
        if found:
            kernel = found[0]
        else:  # not held by the backend's operation: a new one
            kernel = make()
            out = Tensor.make(np.zeros(6), (2, 3), backend=F)
            if kind == "map":
                kernel(*out.tuple(), *x.tuple())
            elif kind == "zip":
                kernel(*out.tuple(), *x.tuple(), *y.tuple())
            else:
                kernel(*Tensor.make(np.zeros(2), (2, 1), backend=F).tuple(), *x.tuple(), 1)
    report = {"compiled": False, "parallel": False, "prange_loops": 0, "patterns": []}
    if not (hasattr(kernel, "signatures") and hasattr(kernel, "get_metadata")):
        return report
    report["compiled"] = len(kernel.signatures) > 0
    report["parallel"] = bool(kernel.targetoptions.get("parallel"))
    for signature in kernel.signatures:
        diagnostics = kernel.get_metadata(signature).get("parfor_diagnostics")
        if diagnostics is None:
            continue
        for parfor in diagnostics.get_parfors():
            for pattern in parfor.patterns:
                report["patterns"].append(str(pattern))
                if isinstance(pattern, tuple) and pattern and pattern[0] == "prange":
                    report["prange_loops"] += 1
    return report


# ---------------------------------------------------------------------------
# map
# ---------------------------------------------------------------------------


@few
@given(layouts(), seeds)
def test_map_any_layout(student, layout, seed):
    """neg_map of a tensor of any shape, stored in any dimension order, with or without gaps."""
    shape, order, gap = layout
    x = random_array(seed, shape)
    result = student.run(probe_map, "neg", spec(x, order, gap))
    check(
        result,
        -x,
        f"neg_map of shape {shape} stored in order {order} (gap {gap})",
        MAP_TOL,
    )


def test_map_same_shape_other_strides(student):
    """An input with the output's shape but other strides: no "same layout" shortcut.

    The output of `neg_map(a)` is a new row-major tensor. When `a` has the same
    shape but is stored column by column, or repeats one row through a stride
    of 0, storage position i of `a` is not element i of the output.
    """
    x = random_array(1, (3, 4))
    result = student.run(probe_map, "neg", spec(x, order=(1, 0)))
    check(result, -x, "neg_map of a (3, 4) tensor stored column by column", MAP_TOL)
    row = random_array(2, (4,))
    repeated = [row, [3, 4], [0, 1]]  # shape (3, 4), every row is `row`
    result = student.run(probe_map, "neg", repeated)
    check(
        result,
        -np.tile(row, (3, 1)),
        "neg_map of a (3, 4) tensor with strides (0, 1)",
        MAP_TOL,
    )


@pytest.mark.parametrize(
    ("in_shape", "out_shape"),
    [
        ((1, 4), (3, 4)),
        ((4,), (3, 4)),
        ((3, 1), (3, 4)),
        ((1,), (2, 3)),
        ((2, 1, 3), (2, 4, 3)),
    ],
)
def test_map_broadcasts_into_out(student, in_shape, out_shape):
    """neg_map(a, out) with a smaller `a`: every element of `out` gets -a[broadcast index]."""
    x = random_array(3, in_shape)
    out = spec(np.zeros(out_shape))
    result = student.run(probe_map, "neg", spec(x), out)
    expected = np.broadcast_to(-x, out_shape)
    check(
        result,
        expected,
        f"neg_map of shape {in_shape} into out of shape {out_shape}",
        MAP_TOL,
    )


# ---------------------------------------------------------------------------
# zip
# ---------------------------------------------------------------------------

#: The zips tested, and what they compute (`lt` tells a swapped `fn(b, a)` from `fn(a, b)`).
ZIPS = {
    "add": np.add,
    "lt": lambda a, b: (a < b).astype(float),
}


@pytest.mark.parametrize("name", list(ZIPS))
@few
@given(layouts(), seeds)
def test_zip_same_shape(student, name, layout, seed):
    """<name>_zip of two tensors of one shape: both row-major (the fast path), then with
    the second stored in another layout (no fast path)."""
    shape, order, gap = layout
    x, y = random_array(seed, shape), random_array(seed + 1, shape)
    result = student.run(probe_zip, name, spec(x), spec(y))
    check(
        result,
        ZIPS[name](x, y),
        f"{name}_zip of two row-major tensors of shape {shape}",
        MAP_TOL,
    )
    result = student.run(probe_zip, name, spec(x), spec(y, order, gap))
    check(
        result,
        ZIPS[name](x, y),
        f"{name}_zip of shape {shape}, the second stored in order {order} (gap {gap})",
        MAP_TOL,
    )


@pytest.mark.parametrize("name", list(ZIPS))
@few
@given(broadcast_pairs(), seeds, st.booleans())
def test_zip_broadcast(student, name, shapes, seed, permuted):
    """<name>_zip of two shapes that broadcast to a larger one (optionally with the first
    stored in reversed dimension order)."""
    a_shape, b_shape = shapes
    x, y = random_array(seed, a_shape), random_array(seed + 1, b_shape)
    order = list(reversed(range(len(a_shape)))) if permuted else None
    result = student.run(probe_zip, name, spec(x, order), spec(y))
    check(
        result,
        ZIPS[name](x, y),
        f"{name}_zip of shapes {a_shape} and {b_shape}",
        MAP_TOL,
    )


def test_zip_equal_strides_other_shape(student):
    """(2, 3) + (1, 3): both row-major, so `a`'s strides (3, 1) equal those of the output,
    but `b` has another shape and must be broadcast, not read at positions 0..5."""
    x, y = random_array(4, (2, 3)), random_array(5, (1, 3))
    result = student.run(probe_zip, "add", spec(x), spec(y))
    check(result, x + y, "add_zip of shapes (2, 3) and (1, 3)", MAP_TOL)


# ---------------------------------------------------------------------------
# reduce
# ---------------------------------------------------------------------------


@few
@given(layouts(), seeds)
def test_add_reduce_every_dim(student, layout, seed):
    """add_reduce along every dimension: the shape keeps the dimension, with size 1."""
    shape, order, gap = layout
    x = random_array(seed, shape)
    for dim in range(len(shape)):
        result = student.run(probe_reduce, "add", spec(x, order, gap), dim)
        check(
            result,
            x.sum(axis=dim, keepdims=True),
            f"add_reduce along dim {dim} of shape {shape} stored in order {order} (gap {gap})",
            SUM_TOL,
        )


@few
@given(layouts(), seeds)
def test_mul_reduce_every_dim(student, layout, seed):
    """mul_reduce along every dimension: starts from 1 (the start value already in `out`)."""
    shape, order, gap = layout
    x = random_array(seed, shape, 0.5, 2.0) * np.where(random_array(seed + 1, shape) < 0, -1, 1)
    for dim in range(len(shape)):
        result = student.run(probe_reduce, "mul", spec(x, order, gap), dim)
        check(
            result,
            x.prod(axis=dim, keepdims=True),
            f"mul_reduce along dim {dim} of shape {shape} stored in order {order} (gap {gap})",
            SUM_TOL,
        )


# ---------------------------------------------------------------------------
# matrix multiply
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((3, 4), (4, 5)),
        ((1, 6), (6, 1)),
        ((5, 1), (1, 4)),
        ((2, 3, 4), (2, 4, 5)),
        ((1, 3, 4), (3, 4, 2)),
        ((3, 3, 4), (1, 4, 2)),
        ((3, 4), (2, 4, 5)),
        ((2, 3, 4), (4, 5)),
    ],
    ids=[
        "2d",
        "row-col",
        "outer",
        "3d",
        "batch1-left",
        "batch1-right",
        "2d-3d",
        "3d-2d",
    ],
)
def test_matmul_shapes(student, a_shape, b_shape):
    """2-D and 3-D products; a batch of 1 (3-D or 2-D) is used for every batch of the other."""
    x, y = random_array(6, a_shape), random_array(7, b_shape)
    result = student.run(probe_matmul, spec(x), spec(y))
    check(result, np.matmul(x, y), f"matrix_multiply of {a_shape} and {b_shape}", SUM_TOL)


@few
@given(
    st.sampled_from([None, (1, 1), (2, 2), (1, 3), (3, 1)]),
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 6),
    st.booleans(),
    st.booleans(),
    seeds,
)
def test_matmul_random(student, batches, rows, inner, cols, a_transposed, b_transposed, seed):
    """Random sizes and batches, operands stored transposed (column by column) or not."""
    a_shape, b_shape = (rows, inner), (inner, cols)
    if batches is not None:
        a_shape, b_shape = (batches[0], *a_shape), (batches[1], *b_shape)
    x, y = random_array(seed, a_shape), random_array(seed + 1, b_shape)

    def swap_last(n):
        return [*range(n - 2), n - 1, n - 2]

    a = spec(x, swap_last(x.ndim) if a_transposed else None)
    b = spec(y, swap_last(y.ndim) if b_transposed else None)
    result = student.run(probe_matmul, a, b)
    what = (
        f"matrix_multiply of {a_shape}{' (stored transposed)' if a_transposed else ''} "
        f"and {b_shape}{' (stored transposed)' if b_transposed else ''}"
    )
    check(result, np.matmul(x, y), what, SUM_TOL)


# ---------------------------------------------------------------------------
# Larger sizes
# ---------------------------------------------------------------------------


def test_large_matmul(student):
    """A (200, 300) by (300, 150) product: fast when compiled, seconds in plain Python."""
    x, y = random_array(8, (200, 300)), random_array(9, (300, 150))
    result = student.run(probe_matmul, spec(x), spec(y, order=(1, 0)))
    check(result, x @ y, "matrix_multiply of (200, 300) and (300, 150)", SUM_TOL)


def test_large_reduce_and_zip(student):
    """Reductions of a (500, 500) tensor along each dimension, and a (500, 500) zip."""
    x, y = random_array(10, (500, 500)), random_array(11, (500, 500))
    for dim in (0, 1):
        result = student.run(probe_reduce, "add", spec(x), dim)
        check(
            result,
            x.sum(axis=dim, keepdims=True),
            f"add_reduce of (500, 500) along {dim}",
            SUM_TOL,
        )
    result = student.run(probe_zip, "add", spec(x), spec(y, order=(1, 0)))
    check(
        result,
        x + y,
        "add_zip of two (500, 500) tensors, one stored transposed",
        MAP_TOL,
    )


# ---------------------------------------------------------------------------
# Compiled, in parallel
# ---------------------------------------------------------------------------


def test_matmul_is_compiled_in_parallel(student):
    """tensor_matrix_multiply is `njit(parallel=True)` and numba made a parallel loop of
    its `prange` (with `range`, numba runs every loop on one core and reports none)."""
    report = student.run(probe_parallel_report, "matmul")
    assert report["compiled"], (
        "minitorch.fast_ops.tensor_matrix_multiply is not a numba-compiled function "
        "(it should be _njit(parallel=True)(_tensor_matrix_multiply))"
    )
    assert report["parallel"], "tensor_matrix_multiply is compiled without parallel=True"
    assert report["prange_loops"] >= 1, (
        "numba found no prange loop to run in parallel in tensor_matrix_multiply "
        f"(parallel loops it made: {report['patterns'] or 'none'}); "
        "write the outer loop as `for ... in prange(...)`"
    )
