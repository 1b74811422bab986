"""Hidden tests of task hw1.4 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- the low-level loops on up to 4 dimensions, on non-contiguous (permuted)
  inputs, and called directly with a strided `out` that lies inside a larger
  buffer (only `out`'s positions may be written);
- broadcasting corners: fewer dimensions, sizes 1 in the middle, both sides
  broadcast at once, a 1-element tensor against a 4-D one;
- the reduce contract: the result starts from the value already in `out`
  (any start value, one per output element), and folds in order with the
  accumulator as the first argument;
- matrix products of non-contiguous operands and broadcast batches, and their
  gradients with batch broadcasting;
- `Permute.backward` for permutations that are not their own inverse;
- `Sigmoid` far into its tails, `Log`, `Inv` and `Exp` at small and large inputs;
- comparisons with ties and broadcasting on both sides, and zero gradients;
- functions that leave their inputs (and `grad_output`) unchanged and compute
  with their inputs' backend;
- every function on larger shapes, and random programs mixing them (shared
  inputs, broadcasting, reductions), compared with the reference solution's
  values and gradients.

Conventions:
- every test calls `student` before `reference` (`both` does it in that order),
  so a student's exception is the test's error, not a reference mismatch;
- tolerances are explicit: values computed with the same float operations are
  compared tightly (rtol 1e-12), sums whose order may differ more loosely;
- Hypothesis settings are fixed here (deterministic, no example database), so
  the hidden tests do not depend on the public profile or on `CI`.
"""

import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from strategies import seeds
from test_tensor import assert_array_close as public_assert_array_close
from test_tensor import probe_function

pytestmark = pytest.mark.task("hw1.4")

# report_multiple_bugs=False: an unfinished function fails every example the same
# way; report one error, not a group. Like the grading profile, a failing example is
# reported as found, without time spent shrinking or explaining it.
hidden_settings = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.generate],
)


def both(student, reference, probe, *args):
    """(student's value, reference's value) of a probe; the student is called first."""
    return student.run(probe, *args), reference.run(probe, *args)


def assert_array_close(actual, expected, *, rtol, atol, what):
    """The public tests' `assert_array_close`, failing first on a missing value (None)."""
    assert actual is not None, f"{what}: got None"
    public_assert_array_close(actual, expected, rtol=rtol, atol=atol, what=what)


def sum_to_shape(x, shape):
    """x (of a broadcast shape) summed down to `shape`, as Tensor.expand does."""
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead))) if lead else x
    dims = tuple(k for k, n in enumerate(shape) if n == 1 and x.shape[k] != 1)
    return x.sum(axis=dims, keepdims=True) if dims else x


def inverse(order):
    return [int(k) for k in np.argsort(order)]


def sigmoid(x):
    """The logistic sigmoid on arrays, without overflow."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


@st.composite
def shapes(draw, min_dims=1, max_dims=4, max_side=3, max_size=81):
    """Shapes of up to 4 dimensions (sizes 1 to 3 by default)."""
    shape = draw(
        st.lists(st.integers(min_value=1, max_value=max_side), min_size=min_dims, max_size=max_dims)
    )
    return tuple(shape) if math.prod(shape) <= max_size else tuple(min(n, 2) for n in shape)


def random_array(seed, shape, low=-2.0, high=2.0):
    """Distinct values in [low, high), rounded to 3 decimals (reproducible from the seed)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, shape).round(3) + rng.uniform(-1e-4, 1e-4, shape)


# ---------------------------------------------------------------------------
# Probes (run where the student's or the reference's code lives)
# ---------------------------------------------------------------------------


def probe_ops_on_views(base_a, order_a, base_b, order_b):
    """map, zip and reduce of non-contiguous tensors: np.transpose(base_a, order_a), ...

    Each tensor is a permuted view (TensorData.permute, task hw1.3) of a
    contiguous one holding base_a (or base_b). Returns every result, read from
    the new, contiguous output's storage.
    """
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend as B

    def view(base, order):
        base = np.asarray(base, dtype=np.float64)
        t = Tensor.make(base.flatten(), base.shape)
        return t._new(t._tensor.permute(*order))

    def read(t):
        return {"shape": list(t.shape), "value": t._tensor._storage[: t.size].copy()}

    a, b = view(base_a, order_a), view(base_b, order_b)
    out = {
        "neg": read(B.neg_map(a)),
        "exp": read(B.exp_map(a)),
        "add": read(B.add_zip(a, b)),
        "mul": read(B.mul_zip(b, a)),
        "lt": read(B.lt_zip(a, b)),
    }
    for dim in range(len(a.shape)):
        out[f"sum {dim}"] = read(B.add_reduce(a, dim))
        out[f"prod {dim}"] = read(B.mul_reduce(b, dim))
    return out


def probe_strided_out(op, out_shape, out_strides, buffer_size, a, a_view, b, b_view, dim):
    """Call tensor_map / tensor_zip / tensor_reduce of tensor_ops directly.

    `out` is (out_shape, out_strides) inside a buffer of `buffer_size` numbers
    that all start as -7.0 (or as the start value 0.5 for a reduce). Inputs
    a and b are arrays, each seen through `[shape, strides]` (`*_view`) if given.
    Returns the whole buffer.
    """
    import numpy as np
    from minitorch import operators
    from minitorch.tensor_ops import tensor_map, tensor_reduce, tensor_zip

    def arrays(x, layout):
        storage = np.asarray(x, dtype=np.float64).flatten()
        if layout is None:
            x = np.asarray(x)
            strides = [int(s) // 8 for s in np.ascontiguousarray(x).strides]
            layout = [list(x.shape), strides]
        shape, strides = layout
        return storage, np.array(shape, dtype=np.int32), np.array(strides, dtype=np.int32)

    buffer = np.full(buffer_size, 0.5 if op == "reduce" else -7.0)
    out = (buffer, np.array(out_shape, dtype=np.int32), np.array(out_strides, dtype=np.int32))
    if op == "map":
        tensor_map(operators.neg)(*out, *arrays(a, a_view))
    elif op == "zip":
        tensor_zip(operators.mul)(*out, *arrays(a, a_view), *arrays(b, b_view))
    else:
        tensor_reduce(operators.add)(*out, *arrays(a, a_view), dim)
    return buffer


def probe_zip_and_gradients(a, b, d):
    """Values of add/mul/lt zips of a and b, and the gradients of a * b + b after backward(d)."""
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend as B

    def leaf(x):
        x = np.asarray(x, dtype=np.float64)
        return Tensor.make(x.flatten(), x.shape).requires_grad_(True)

    ta, tb = leaf(a), leaf(b)
    out = {
        name: fn(ta, tb).to_numpy()
        for name, fn in [("add", B.add_zip), ("mul", B.mul_zip), ("lt", B.lt_zip)]
    }
    f = ta * tb + tb
    out["f"] = f.to_numpy()
    d = np.asarray(d, dtype=np.float64)
    f.backward(Tensor.make(d.flatten(), d.shape))
    out["a.grad"] = None if ta.grad is None else ta.grad.to_numpy()
    out["b.grad"] = None if tb.grad is None else tb.grad.to_numpy()
    return out


def probe_map_into(a, out_shape):
    """SimpleBackend.id_map(a, out) and neg_map(a, out) with `out` of a larger shape."""
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend as B

    a = np.asarray(a, dtype=np.float64)
    t = Tensor.make(a.flatten(), a.shape)
    results = []
    for fn in (B.id_map, B.neg_map):
        out = Tensor.make(np.full(int(np.prod(out_shape)), 9.0), tuple(out_shape))
        fn(t, out)
        results.append(out._tensor._storage.copy())
    return results


def probe_reduce_start(a, order, dim, starts):
    """Reduces whose start is not the usual one, of a (permuted by `order`) along `dim`.

    - SimpleOps.reduce(add, 2.5), SimpleOps.reduce(mul, -2.0): `out` starts as that value;
    - tensor_reduce(add) called directly on an `out` holding `starts` (one per element);
    - SimpleOps.reduce(lambda acc, x: 0.5 * acc + x, 1.0): order and argument order matter.
    """
    import numpy as np
    from minitorch import operators
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleOps, tensor_reduce

    a = np.asarray(a, dtype=np.float64)
    t = Tensor.make(a.flatten(), a.shape)
    t = t._new(t._tensor.permute(*order))

    def read(x):
        return x._tensor._storage.copy()

    out = {
        "add from 2.5": read(SimpleOps.reduce(operators.add, 2.5)(t, dim)),
        "mul from -2": read(SimpleOps.reduce(operators.mul, -2.0)(t, dim)),
        "halving fold": read(SimpleOps.reduce(lambda acc, x: 0.5 * acc + x, 1.0)(t, dim)),
    }
    shape = list(t.shape)
    shape[dim] = 1
    starts = np.asarray(starts, dtype=np.float64).flatten()
    target = Tensor.make(starts.copy(), tuple(shape))
    tensor_reduce(operators.add)(*target.tuple(), *t.tuple(), dim)
    out["add from out"] = read(target)
    return out


def probe_all(a):
    """t.all(dim) for every dimension, and t.all()."""
    import numpy as np
    from minitorch.tensor import Tensor

    a = np.asarray(a, dtype=np.float64)
    t = Tensor.make(a.flatten(), a.shape)
    return [t.all(dim).to_numpy() for dim in range(len(a.shape))] + [t.all().to_numpy()]


def probe_matmul_views(a, order_a, b, order_b):
    """SimpleBackend.matrix_multiply of tensors equal to a and b, seen as permuted views.

    The tensor for `a` holds np.transpose(a, argsort(order_a)) contiguously and
    is permuted by order_a, so its values are those of `a` but its strides are
    not row-major.
    """
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend

    def view(x, order):
        x = np.asarray(x, dtype=np.float64)
        base = np.ascontiguousarray(np.transpose(x, np.argsort(order)))
        t = Tensor.make(base.flatten(), base.shape)
        return t._new(t._tensor.permute(*order))

    out = SimpleBackend.matrix_multiply(view(a, order_a), view(b, order_b))
    return {"shape": list(out.shape), "value": out.to_numpy()}


def probe_matmul_gradients(a, b, d):
    """(a @ b).backward(d): the value and both gradients."""
    import numpy as np
    from minitorch.tensor import Tensor

    def leaf(x):
        x = np.asarray(x, dtype=np.float64)
        return Tensor.make(x.flatten(), x.shape).requires_grad_(True)

    ta, tb = leaf(a), leaf(b)
    out = ta @ tb
    d = np.asarray(d, dtype=np.float64)
    out.backward(Tensor.make(d.flatten(), d.shape))
    return {
        "value": out.to_numpy(),
        "a.grad": None if ta.grad is None else ta.grad.to_numpy(),
        "b.grad": None if tb.grad is None else tb.grad.to_numpy(),
    }


def probe_permute_gradients(x, order, w, d, second):
    """(x.permute(*order) * w).backward(d), and the same through a second permute."""
    import numpy as np
    from minitorch.tensor import Tensor

    def make(v, grad=False):
        v = np.asarray(v, dtype=np.float64)
        return Tensor.make(v.flatten(), v.shape).requires_grad_(grad)

    results = {}
    t = make(x, True)
    out = t.permute(*order) * make(w)
    out.backward(make(d))
    results["once"] = {"shape": list(out.shape), "grad": t.grad.to_numpy()}
    t = make(x, True)
    twice = t.permute(*order).permute(*second)
    twice.backward(make(np.transpose(np.asarray(d), second)))
    results["twice"] = {"shape": list(twice.shape), "grad": t.grad.to_numpy()}
    return results


def probe_unary(name, xs, d):
    """[value, gradient] of a.<name>() (Inv.apply for "inv") at each x, backpropagating d."""
    import numpy as np
    from minitorch import tensor_functions as tf
    from minitorch.tensor import Tensor

    x = np.asarray(xs, dtype=np.float64)
    t = Tensor.make(x.flatten(), x.shape).requires_grad_(True)
    out = tf.Inv.apply(t) if name == "inv" else getattr(t, name)()
    out.backward(Tensor.make(np.full(x.size, float(d)), x.shape))
    return [out.to_numpy(), t.grad.to_numpy()]


def probe_comparisons(a, b):
    """lt, gt, eq, is_close of a and b (broadcast), their gradients, and a masked expression."""
    import numpy as np
    from minitorch.tensor import Tensor

    def leaf(x):
        x = np.asarray(x, dtype=np.float64)
        return Tensor.make(x.flatten(), x.shape).requires_grad_(True)

    results = {}
    for name, fn in [
        ("lt", lambda p, q: p < q),
        ("gt", lambda p, q: p > q),
        ("eq", lambda p, q: p == q),
    ]:
        ta, tb = leaf(a), leaf(b)
        out = fn(ta, tb)
        out.sum().backward()
        results[name] = [out.to_numpy(), ta.grad.to_numpy(), tb.grad.to_numpy()]
    results["is_close"] = [leaf(a).is_close(leaf(b)).to_numpy()]
    ta, tb = leaf(a), leaf(b)
    masked = (ta < tb) * ta + (ta == tb) * tb * 3.0
    masked.sum().backward()
    results["masked"] = [masked.to_numpy(), ta.grad.to_numpy(), tb.grad.to_numpy()]
    return results


def probe_backend_used(name):
    """Apply the function `name` to tensors of a counting backend: calls, and output backend."""
    import numpy as np
    from minitorch import tensor_functions as tf
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleOps, TensorBackend

    calls = []

    class Counting(SimpleOps):
        @staticmethod
        def map(fn):
            f = SimpleOps.map(fn)

            def ret(a, out=None):
                calls.append("map")
                return f(a) if out is None else f(a, out)

            return ret

        @staticmethod
        def zip(fn):
            f = SimpleOps.zip(fn)

            def ret(a, b):
                calls.append("zip")
                return f(a, b)

            return ret

        @staticmethod
        def reduce(fn, start=0.0):
            f = SimpleOps.reduce(fn, start)

            def ret(a, dim):
                calls.append("reduce")
                return f(a, dim)

            return ret

        @staticmethod
        def matrix_multiply(a, b):
            calls.append("matrix_multiply")
            return SimpleOps.matrix_multiply(a, b)

    backend = TensorBackend(Counting)
    x = Tensor.make(np.array([0.5, 1.5, 2.0, 3.0]), (2, 2), backend=backend)
    y = Tensor.make(np.array([1.0, 0.5, 2.0, 4.0]), (2, 2), backend=backend)
    functions = {
        "neg": lambda: tf.Neg.apply(x),
        "inv": lambda: tf.Inv.apply(x),
        "add": lambda: tf.Add.apply(x, y),
        "mul": lambda: tf.Mul.apply(x, y),
        "sigmoid": lambda: tf.Sigmoid.apply(x),
        "relu": lambda: tf.ReLU.apply(x),
        "log": lambda: tf.Log.apply(x),
        "exp": lambda: tf.Exp.apply(x),
        "sum": lambda: x.sum(1),
        "lt": lambda: tf.LT.apply(x, y),
        "eq": lambda: tf.EQ.apply(x, y),
        "is_close": lambda: tf.IsClose.apply(x, y),
        "matmul": lambda: tf.MatMul.apply(x, y),
    }
    out = functions[name]()
    return {"calls": len(calls), "same backend": out.backend is backend}


def probe_program(leaves, ops, d):
    """Run a random program on leaf tensors; backpropagate d from its last node.

    ops: [op, i, j, dim]: node (len(leaves) + k) is op applied to nodes i (and j).
    """
    import numpy as np
    from minitorch import tensor_functions as tf
    from minitorch.tensor import Tensor

    def leaf(x):
        x = np.asarray(x, dtype=np.float64)
        return Tensor.make(x.flatten(), x.shape).requires_grad_(True)

    build = {
        "add": lambda a, b, k: a + b,
        "sub": lambda a, b, k: a - b,
        "mul": lambda a, b, k: a * b,
        "div": lambda a, b, k: a / (b * b + 1.0),
        "neg": lambda a, b, k: -a,
        "sigmoid": lambda a, b, k: a.sigmoid(),
        "relu": lambda a, b, k: a.relu(),
        "gauss": lambda a, b, k: (-(a * a)).exp(),
        "log": lambda a, b, k: (a * a + 1.0).log(),
        "inv": lambda a, b, k: tf.Inv.apply(a * a + 2.0),
        "sum": lambda a, b, k: a.sum(k),
        "mean": lambda a, b, k: a.mean(k),
        "mask": lambda a, b, k: (a < b) * a + (a == b) * 0.5,
    }
    nodes = [leaf(x) for x in leaves]
    for op, i, j, k in ops:
        nodes.append(build[op](nodes[i], nodes[j], k))
    out = nodes[-1]
    d = np.asarray(d, dtype=np.float64)
    value = out.to_numpy()
    out.backward(Tensor.make(d.flatten(), d.shape))
    return {
        "value": value,
        "grads": [None if x.grad is None else x.grad.to_numpy() for x in nodes[: len(leaves)]],
    }


# ---------------------------------------------------------------------------
# map, zip and reduce: non-contiguous inputs, up to 4 dimensions
# ---------------------------------------------------------------------------


@st.composite
def permuted_pair(draw):
    """Two base arrays and orders whose permuted views have the same (random) shape."""
    shape = draw(shapes(min_dims=2))
    order_a = list(draw(st.permutations(range(len(shape)))))
    order_b = list(draw(st.permutations(range(len(shape)))))
    seed = draw(seeds)
    # base_x is stored so that permuting it by order_x gives shape `shape`.
    base_a = random_array(seed, [shape[k] for k in inverse(order_a)])
    base_b = random_array(seed + 1, [shape[k] for k in inverse(order_b)], 0.5, 1.5)
    return base_a, order_a, base_b, order_b


@hidden_settings
@given(permuted_pair())
def test_map_zip_reduce_on_permuted_4d_tensors(student, reference, case):
    """map, zip and every reduce of permuted (non-contiguous) tensors of up to 4 dimensions."""
    base_a, order_a, base_b, order_b = case
    a, b = np.transpose(base_a, order_a), np.transpose(base_b, order_b)
    got, want = both(student, reference, probe_ops_on_views, base_a, order_a, base_b, order_b)
    expected = {
        "neg": -a,
        "exp": np.exp(a),
        "add": a + b,
        "mul": b * a,
        "lt": (a < b) * 1.0,
    }
    for dim in range(a.ndim):
        expected[f"sum {dim}"] = a.sum(axis=dim, keepdims=True)
        expected[f"prod {dim}"] = b.prod(axis=dim, keepdims=True)
    what = f"of shape {a.shape} (a permuted by {order_a}, b by {order_b})"
    for key, value in expected.items():
        assert got[key]["shape"] == list(value.shape), f"{key} {what}: shape"
        assert_array_close(want[key]["value"], value.flatten(), rtol=1e-12, atol=1e-12, what=key)
        assert_array_close(
            got[key]["value"], value.flatten(), rtol=1e-12, atol=1e-12, what=f"{key} {what}"
        )


#: Calls of the low-level loops with a strided out: op -> (out shape, out strides,
#: buffer size, a, a's [shape, strides] or None, b, b's layout, reduce dim).
STRIDED = {
    # out (2, 3) every other number of a buffer of 12, transposed: strides (2, 4)
    "map, out transposed with gaps": ("map", (2, 3), (2, 4), 12, (2, 3), None, None, None, 0),
    # a (3,) broadcast into out (2, 2, 3) with strides (1, 12, 4): a permuted layout
    "map, a broadcast, out permuted": ("map", (2, 2, 3), (1, 12, 4), 24, (3,), None, None, None, 0),
    # a seen as (3, 2) with strides (1, 3) (a transpose); b (2,) broadcast; out gaps
    "zip, a transposed, b broadcast": (
        "zip",
        (3, 2),
        (4, 1),
        12,
        (2, 3),
        [(3, 2), (1, 3)],
        (2,),
        None,
        0,
    ),
    # a (2, 1, 3) and b (4, 1): both broadcast; out (2, 4, 3) with strides (1, 6, 2)
    "zip, both broadcast": ("zip", (2, 4, 3), (1, 6, 2), 24, (2, 1, 3), None, (4, 1), None, 0),
    # reduce a (2, 3, 4) along 1 into out (2, 1, 4) with strides (1, 5, 2) in a buffer of 8
    "reduce, out strided": ("reduce", (2, 1, 4), (1, 5, 2), 8, (2, 3, 4), None, None, None, 1),
    # reduce a transposed (4, 3) along 0 into out (1, 3) with strides (7, 3)
    "reduce, a transposed": ("reduce", (1, 3), (7, 3), 9, (3, 4), [(4, 3), (1, 4)], None, None, 0),
}


@pytest.mark.parametrize("case", list(STRIDED))
def test_low_level_loops_write_only_through_out_strides(student, reference, case):
    """tensor_map / tensor_zip / tensor_reduce called directly: out is written at its
    strided positions only; inputs are read through their strides and broadcast."""
    op, out_shape, out_strides, size, a_shape, a_view, b_shape, b_view, dim = STRIDED[case]
    a = random_array(7, a_shape)
    b = None if b_shape is None else random_array(8, b_shape)

    def logical(x, layout):
        if layout is None:
            return x
        shape, strides = layout
        return np.lib.stride_tricks.as_strided(x, shape, [8 * s for s in strides])

    la = logical(a, a_view)
    if op == "map":
        result = np.broadcast_to(-la, out_shape)
    elif op == "zip":
        result = np.broadcast_to(la * logical(b, b_view), out_shape)
    else:
        result = 0.5 + la.sum(axis=dim, keepdims=True)
    expected = np.full(size, 0.5 if op == "reduce" else -7.0)
    for index in np.ndindex(*out_shape):
        expected[sum(i * s for i, s in zip(index, out_strides, strict=True))] = result[index]
    args = (op, out_shape, out_strides, size, a, a_view, b, b_view, dim)
    got, want = both(student, reference, probe_strided_out, *args)
    assert_array_close(want, expected, rtol=1e-12, atol=1e-12, what="reference")
    assert_array_close(
        got,
        expected,
        rtol=1e-12,
        atol=1e-12,
        what=f"{case}: the whole buffer (positions outside out must keep their value)",
    )


# ---------------------------------------------------------------------------
# Broadcasting corners
# ---------------------------------------------------------------------------

BROADCAST_CORNERS = [
    ((2, 1, 3), (4, 1)),  # fewer dimensions, 1 in the middle
    ((1, 3, 1), (2, 1, 4)),  # both sides broadcast in different dimensions
    ((1,), (2, 3, 4)),  # a 1-element tensor against a 3-D one
    ((2, 3, 4), (1,)),
    ((4,), (3, 1)),  # both broadcast: (3, 4)
    ((1, 1), (1,)),
    ((3, 1, 1, 2), (1, 2, 1)),  # 4-D, sizes 1 on both sides
    ((1, 2, 1, 3), (2, 1, 3, 1)),  # 4-D, every dimension broadcast on one side
    ((2, 1), (1, 2, 1, 1)),  # the shorter one is not the smaller one
]


@pytest.mark.parametrize(("shape_a", "shape_b"), BROADCAST_CORNERS, ids=str)
def test_broadcasting_corners_values_and_gradients(student, reference, shape_a, shape_b):
    """Zips of broadcast shapes, and the gradients of a * b + b summed back to each shape."""
    a = random_array(1, shape_a)
    b = random_array(2, shape_b)
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    d = random_array(3, out_shape)
    got, want = both(student, reference, probe_zip_and_gradients, a, b, d)
    expected = {
        "add": a + b,
        "mul": a * b,
        "lt": (a < b) * 1.0,
        "f": a * b + b,
        "a.grad": sum_to_shape(d * np.broadcast_to(b, out_shape), shape_a),
        "b.grad": sum_to_shape(d * np.broadcast_to(a, out_shape) + d, shape_b),
    }
    for key, value in expected.items():
        assert_array_close(want[key], value, rtol=1e-12, atol=1e-12, what=f"reference {key}")
        assert_array_close(
            got[key], value, rtol=1e-12, atol=1e-12, what=f"{key} for {shape_a} and {shape_b}"
        )


@pytest.mark.parametrize(
    ("shape", "out_shape"),
    [((3,), (2, 4, 3)), ((4, 1), (2, 4, 3)), ((1, 1, 3), (2, 2, 3)), ((1,), (3, 2, 2, 2))],
    ids=str,
)
def test_map_into_a_larger_out(student, reference, shape, out_shape):
    """map(a, out) broadcasts a to out's shape and overwrites every element of out."""
    a = random_array(4, shape)
    got, want = both(student, reference, probe_map_into, a, out_shape)
    expected = np.broadcast_to(a, out_shape).flatten()
    for k, sign in enumerate((1.0, -1.0)):
        assert_array_close(want[k], sign * expected, rtol=0, atol=0, what="reference")
        assert_array_close(
            got[k],
            sign * expected,
            rtol=0,
            atol=0,
            what=f"{['id', 'neg'][k]}_map of shape {shape} into out {out_shape}",
        )


# ---------------------------------------------------------------------------
# reduce: the start value is the one already in out
# ---------------------------------------------------------------------------


@st.composite
def reduce_cases(draw):
    shape = draw(shapes(min_dims=1))
    order = list(draw(st.permutations(range(len(shape)))))
    dim = draw(st.integers(min_value=0, max_value=len(shape) - 1))
    seed = draw(seeds)
    base = random_array(seed, [shape[k] for k in inverse(order)], -1.5, 1.5)
    out_shape = list(shape)
    out_shape[dim] = 1
    starts = random_array(seed + 1, out_shape, -5.0, 5.0)
    return base, order, dim, starts


@hidden_settings
@given(reduce_cases())
def test_reduce_starts_from_the_value_in_out(student, reference, case):
    """Any start value works: out[i] = fn(... fn(fn(out[i], a[.., 0, ..]), a[.., 1, ..]) ...)."""
    base, order, dim, starts = case
    a = np.transpose(base, order)
    got, want = both(student, reference, probe_reduce_start, base, order, dim, starts)
    halving = np.ones(starts.shape)
    for j in range(a.shape[dim]):
        halving = 0.5 * halving + np.take(a, [j], axis=dim)
    expected = {
        "add from 2.5": 2.5 + a.sum(axis=dim, keepdims=True),
        "mul from -2": -2.0 * a.prod(axis=dim, keepdims=True),
        "add from out": starts + a.sum(axis=dim, keepdims=True),
        "halving fold": halving,
    }
    explain = {
        "add from 2.5": "SimpleOps.reduce(add, 2.5): the sum must start from 2.5, not 0",
        "mul from -2": "SimpleOps.reduce(mul, -2.0): the product must start from -2.0",
        "add from out": "tensor_reduce must start each sum from the value already in out",
        "halving fold": "reduce(lambda acc, x: 0.5 * acc + x, 1.0) folds in order, acc first",
    }
    for key, value in expected.items():
        assert_array_close(want[key], value.flatten(), rtol=1e-12, atol=1e-12, what=key)
        assert_array_close(
            got[key],
            value.flatten(),
            rtol=1e-12,
            atol=1e-12,
            what=f"{explain[key]} (shape {a.shape}, dim {dim})",
        )


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (1, 4), (5,)], ids=str)
def test_all_of_ones_is_one(student, reference, shape):
    """all() is a product that starts from 1: all-ones gives 1, one zero gives 0 in its row."""
    a = np.ones(shape)
    got, want = both(student, reference, probe_all, a)
    for k, (value, ref) in enumerate(zip(got[:-1], want[:-1], strict=True)):
        expected = np.ones((*a.shape[:k], 1, *a.shape[k + 1 :]))
        assert_array_close(ref, expected, rtol=0, atol=0, what="reference")
        assert_array_close(
            value, expected, rtol=0, atol=0, what=f"all({k}) of ones of shape {shape}"
        )
    assert_array_close(got[-1], [1.0], rtol=0, atol=0, what=f"all() of ones of shape {shape}")
    a.flat[-1] = 0.0
    got = student.run(probe_all, a)
    for k, value in enumerate(got[:-1]):
        assert_array_close(
            value,
            a.prod(axis=k, keepdims=True),
            rtol=0,
            atol=0,
            what=f"all({k}) with one zero, shape {shape}",
        )
    assert_array_close(got[-1], [0.0], rtol=0, atol=0, what="all() with one zero")


# ---------------------------------------------------------------------------
# Matrix products
# ---------------------------------------------------------------------------

#: layout -> (a's shape, b's shape, a's order, b's order): orders make permuted views.
MATMUL_VIEWS = {
    "2-D, both transposed": ((3, 4), (4, 2), [1, 0], [1, 0]),
    "3-D, batch last in storage": ((2, 3, 4), (2, 4, 3), [2, 0, 1], [1, 2, 0]),
    "3-D, a batch 1, b transposed": ((1, 2, 3), (3, 3, 2), [0, 1, 2], [0, 2, 1]),
    "3-D, b batch 1, a permuted": ((3, 2, 4), (1, 4, 2), [1, 0, 2], [0, 1, 2]),
    "2-D @ 3-D, permuted": ((2, 3), (4, 3, 1), [1, 0], [2, 1, 0]),
    "3-D @ 2-D, permuted": ((2, 1, 3), (3, 4), [2, 1, 0], [1, 0]),
    "inner size 1": ((2, 3, 1), (2, 1, 4), [1, 2, 0], [2, 0, 1]),
}


@pytest.mark.parametrize("layout", list(MATMUL_VIEWS))
def test_matmul_of_non_contiguous_and_broadcast_operands(student, reference, layout):
    """matrix_multiply reads both operands through their strides; a batch of 1 is shared."""
    shape_a, shape_b, order_a, order_b = MATMUL_VIEWS[layout]
    a, b = random_array(5, shape_a), random_array(6, shape_b)
    got, want = both(student, reference, probe_matmul_views, a, order_a, b, order_b)
    expected = np.matmul(a, b)
    assert_array_close(want["value"], expected, rtol=1e-12, atol=1e-12, what="reference")
    assert got["shape"] == list(expected.shape), f"{layout}: shape"
    assert_array_close(
        got["value"],
        expected,
        rtol=1e-12,
        atol=1e-12,
        what=f"{layout}: {shape_a} @ {shape_b} of permuted views",
    )


MATMUL_GRAD_LAYOUTS = {
    "a batch 1": ((1, 2, 3), (3, 3, 4)),
    "b batch 1": ((3, 2, 3), (1, 3, 4)),
    "2-D @ 3-D": ((2, 3), (4, 3, 2)),
    "3-D @ 2-D": ((2, 4, 3), (3, 2)),
    "3-D": ((2, 3, 1), (2, 1, 3)),
    "2-D, square": ((3, 3), (3, 3)),
}


@pytest.mark.parametrize("layout", list(MATMUL_GRAD_LAYOUTS))
def test_matmul_gradients_with_batch_broadcast(student, reference, layout):
    """grad_a = d @ b^T and grad_b = a^T @ d, summed over the batches an operand was shared by."""
    shape_a, shape_b = MATMUL_GRAD_LAYOUTS[layout]
    a, b = random_array(9, shape_a), random_array(10, shape_b)
    value = np.matmul(a, b)
    d = random_array(11, value.shape)
    got, want = both(student, reference, probe_matmul_gradients, a, b, d)
    grad_a = np.matmul(d, np.swapaxes(b, -1, -2))
    grad_b = np.matmul(np.swapaxes(a, -1, -2), d)
    expected = {
        "value": value,
        "a.grad": sum_to_shape(grad_a, shape_a),
        "b.grad": sum_to_shape(grad_b, shape_b),
    }
    for key, v in expected.items():
        assert_array_close(want[key], v, rtol=1e-12, atol=1e-12, what=f"reference {key}")
        assert_array_close(
            got[key], v, rtol=1e-12, atol=1e-12, what=f"{key} of {shape_a} @ {shape_b}"
        )


# ---------------------------------------------------------------------------
# Permute backward
# ---------------------------------------------------------------------------

PERMUTATIONS = [
    ((2, 3, 4), [1, 2, 0], [2, 0, 1]),
    ((2, 3, 4), [2, 0, 1], [0, 2, 1]),
    ((2, 2, 2), [1, 2, 0], [1, 2, 0]),  # same sizes: a wrong order keeps the shape
    ((2, 3, 1, 2), [1, 2, 3, 0], [3, 0, 1, 2]),
    ((3, 1, 2, 2), [3, 0, 1, 2], [2, 3, 0, 1]),
    ((2, 3, 2, 1), [2, 3, 1, 0], [1, 0, 3, 2]),
    ((3, 2), [1, 0], [1, 0]),
]


@pytest.mark.parametrize(("shape", "order", "second"), PERMUTATIONS, ids=str)
def test_permute_backward_applies_the_inverse_permutation(student, reference, shape, order, second):
    """x.permute(*order).backward(d): x.grad is d permuted back, by the inverse of `order`."""
    x = random_array(12, shape)
    permuted_shape = [shape[k] for k in order]
    w = random_array(13, permuted_shape)
    d = random_array(14, permuted_shape)
    got, want = both(student, reference, probe_permute_gradients, x, order, w, d, second)
    expected_once = np.transpose(d * w, inverse(order))
    # permute(order).permute(second), backpropagating d permuted by `second`.
    expected_twice = np.transpose(d, inverse(order))
    for result in (want, got):
        assert result["once"]["shape"] == permuted_shape
        assert_array_close(
            result["once"]["grad"],
            expected_once,
            rtol=1e-12,
            atol=1e-12,
            what=f"grad of x {shape} through permute{tuple(order)} (inverse {inverse(order)})",
        )
        assert_array_close(
            result["twice"]["grad"],
            expected_twice,
            rtol=1e-12,
            atol=1e-12,
            what=f"grad of x {shape} through permute{tuple(order)}.permute{tuple(second)}",
        )


# ---------------------------------------------------------------------------
# Unary functions at the edges
# ---------------------------------------------------------------------------


def test_sigmoid_values_and_gradients_in_the_tails(student, reference):
    """sigmoid'(x) = s (1 - s), from x = -40 to 20: the tails of the derivative are tiny."""
    xs = np.array([[-40.0, -20.0, -5.0, -1.0, -0.25], [0.0, 0.25, 1.0, 5.0, 20.0]])
    got, want = both(student, reference, probe_unary, "sigmoid", xs, -1.5)
    z = np.exp(-np.abs(xs))
    exact = -1.5 * z / ((1.0 + z) * (1.0 + z))
    # 1 - s loses digits for large x (s rounds near 1): allow 1e-6 relative.
    assert_array_close(got[0], sigmoid(xs), rtol=1e-12, atol=0, what="sigmoid")
    assert_array_close(want[1], exact, rtol=1e-6, atol=1e-300, what="reference")
    assert_array_close(got[1], exact, rtol=1e-6, atol=1e-300, what=f"sigmoid' * -1.5 at {xs}")


@pytest.mark.parametrize(
    ("name", "xs", "derivative"),
    [
        ("log", [1e-8, 1e-4, 0.5, 1.0, 3.0, 1e4, 1e8], lambda x: 1.0 / x),
        ("inv", [-1e8, -3.0, -1e-4, 1e-8, 0.25, 1e4], lambda x: -1.0 / (x * x)),
        ("exp", [-700.0, -20.0, -1.0, 0.0, 1.0, 20.0, 700.0], np.exp),
        ("relu", [-5.0, -1e-8, 0.0, 1e-8, 5.0], lambda x: (x > 0) * 1.0),
    ],
    ids=["log", "inv", "exp", "relu"],
)
def test_unary_gradients_at_small_and_large_inputs(student, reference, name, xs, derivative):
    """log' = 1/x, inv' = -1/x^2, exp' = e^x, relu' = (x > 0) at inputs from 1e-8 to 1e8."""
    xs = np.array(xs)
    got, want = both(student, reference, probe_unary, name, xs, 2.0)
    expected = 2.0 * derivative(xs)
    assert_array_close(want[1], expected, rtol=1e-12, atol=0, what=f"reference {name}'")
    assert_array_close(got[1], expected, rtol=1e-12, atol=0, what=f"{name}' * 2 at {list(xs)}")
    assert_array_close(got[0], want[0], rtol=1e-12, atol=0, what=f"{name} values")


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([[1.0], [2.0], [3.0]], [[3.0, 2.0, 1.0, 2.0]]),  # (3, 1) and (1, 4), with ties
        ([[1.0, 2.0], [2.0, 1.0]], [2.0, 2.0]),  # (2, 2) and (2,)
        ([2.0], [[[1.0, 2.0], [3.0, 2.0]]]),  # (1,) and (1, 2, 2)
    ],
    ids=["3x1 vs 1x4", "2x2 vs 2", "1 vs 1x2x2"],
)
def test_comparisons_broadcast_with_ties_and_have_zero_gradients(student, reference, a, b):
    """lt, gt, eq and is_close broadcast; their gradients are zeros of the inputs' shapes."""
    a, b = np.array(a), np.array(b)
    got, want = both(student, reference, probe_comparisons, a, b)
    expected = {"lt": (a < b) * 1.0, "gt": (a > b) * 1.0, "eq": (a == b) * 1.0}
    for name, value in expected.items():
        assert_array_close(got[name][0], value, rtol=0, atol=0, what=f"{name} values")
        assert_array_close(got[name][1], np.zeros(a.shape), rtol=0, atol=0, what=f"{name} a.grad")
        assert_array_close(got[name][2], np.zeros(b.shape), rtol=0, atol=0, what=f"{name} b.grad")
    close = (np.abs(a - b) < 1e-2) * 1.0
    assert_array_close(got["is_close"][0], close, rtol=0, atol=0, what="is_close values")
    lt, eq = (a < b) * 1.0, (a == b) * 1.0
    shape = np.broadcast_shapes(a.shape, b.shape)
    masked_a = sum_to_shape(np.broadcast_to(lt, shape), a.shape)
    masked_b = sum_to_shape(np.broadcast_to(3.0 * eq, shape), b.shape)
    assert_array_close(got["masked"][0], lt * a + eq * b * 3.0, rtol=0, atol=0, what="mask")
    assert_array_close(got["masked"][1], masked_a, rtol=0, atol=0, what="masked a.grad")
    assert_array_close(got["masked"][2], masked_b, rtol=0, atol=0, what="masked b.grad")
    assert_array_close(want["masked"][1], masked_a, rtol=0, atol=0, what="reference")


# ---------------------------------------------------------------------------
# Inputs unchanged; the inputs' backend is used
# ---------------------------------------------------------------------------

#: name -> (input shapes, extra): the functions whose inputs must stay unchanged.
UNCHANGED = {
    "neg": ([(2, 3)], None),
    "inv": ([(2, 3)], None),
    "add": ([(2, 3), (3,)], None),
    "mul": ([(2, 1), (1, 3)], None),
    "sigmoid": ([(2, 3)], None),
    "relu": ([(2, 3)], None),
    "log": ([(2, 3)], None),
    "exp": ([(2, 3)], None),
    "sum(dim)": ([(2, 3)], [1]),
    "lt": ([(2, 3), (2, 3)], None),
    "eq": ([(2, 3), (2, 3)], None),
    "permute": ([(2, 3, 2)], [2, 0, 1]),
    "matmul": ([(2, 3), (3, 2)], None),
}


@pytest.mark.parametrize("name", list(UNCHANGED))
def test_functions_leave_inputs_and_grad_output_unchanged(student, reference, name):
    """forward must not write into its inputs, nor backward into them or into grad_output."""
    input_shapes, extra = UNCHANGED[name]
    xs = [random_array(20 + k, s, 0.5, 2.0) for k, s in enumerate(input_shapes)]
    special = {"sum(dim)": (2, 1), "permute": (2, 2, 3), "matmul": (2, 2)}
    out_shape = special[name] if name in special else np.broadcast_shapes(*input_shapes)
    d = random_array(30, out_shape)
    got, want = both(student, reference, probe_function, name, xs, extra, d)
    flags = ("inputs unchanged by forward", "inputs unchanged by backward")
    assert [want[f] for f in flags] == [[True] * len(xs)] * 2 and want["d unchanged by backward"]
    assert got[flags[0]] == [True] * len(xs), (
        f"{name}.forward changed the values of its input(s): compute into a new tensor"
    )
    assert got[flags[1]] == [True] * len(xs), (
        f"backward of {name} changed the values of its input(s)"
    )
    assert got["d unchanged by backward"], f"{name}.backward changed grad_output in place"


@pytest.mark.parametrize(
    "name",
    [
        "neg",
        "inv",
        "add",
        "mul",
        "sigmoid",
        "relu",
        "log",
        "exp",
        "sum",
        "lt",
        "eq",
        "is_close",
        "matmul",
    ],
)
def test_functions_compute_with_their_inputs_backend(student, reference, name):
    """forward computes with the inputs' backend (t.f), and returns a tensor of that backend."""
    got, want = both(student, reference, probe_backend_used, name)
    assert want["calls"] > 0 and want["same backend"]
    assert got["calls"] > 0, (
        f"{name}.forward did not call the backend of its inputs: use t1.f.<op>, not "
        "a fixed backend, so that the fast backend of hw1.5 is used when tensors have it"
    )
    assert got["same backend"], f"{name}.forward returned a tensor of another backend"


# ---------------------------------------------------------------------------
# Every function on larger shapes, against the reference
# ---------------------------------------------------------------------------


@st.composite
def function_cases(draw, name):
    """(xs, extra, d) for the function `name`, with shapes of up to 4 dimensions."""
    seed = draw(seeds)
    rng = np.random.default_rng(seed)

    def values(shape, low=-2.0, high=2.0):
        return rng.uniform(low, high, shape)

    shape = draw(shapes())
    extra = None
    if name in ("add", "sub", "mul", "div", "lt", "eq"):
        other = list(shape)
        for k in range(len(other)):
            if draw(st.booleans()):
                other[k] = 1
        other = other[draw(st.integers(0, len(other) - 1)) :]
        pair = [shape, tuple(other)] if draw(st.booleans()) else [tuple(other), shape]
        if name in ("lt", "eq"):
            xs = [rng.integers(-1, 2, s).astype(np.float64) for s in pair]
        elif name == "div":
            xs = [values(pair[0]), values(pair[1], 0.5, 2.0) * rng.choice([-1, 1], pair[1])]
        else:
            xs = [values(s) for s in pair]
    elif name == "matmul":
        n, i, k, j = (draw(st.integers(1, 3)) for _ in range(4))
        layout = draw(st.sampled_from(["2-D", "3-D", "a batch 1", "b batch 1", "2-3", "3-2"]))
        sa, sb = {
            "2-D": ((i, k), (k, j)),
            "3-D": ((n, i, k), (n, k, j)),
            "a batch 1": ((1, i, k), (n, k, j)),
            "b batch 1": ((n, i, k), (1, k, j)),
            "2-3": ((i, k), (n, k, j)),
            "3-2": ((n, i, k), (k, j)),
        }[layout]
        xs = [values(sa), values(sb)]
    else:
        low, high = {"log": (0.1, 3.0), "inv": (0.5, 2.0)}.get(name, (-2.0, 2.0))
        xs = [values(shape, low, high)]
        if name == "inv":
            xs[0] *= rng.choice([-1.0, 1.0], shape)
        if name in ("sum(dim)", "mean(dim)"):
            extra = [draw(st.integers(0, len(shape) - 1))]
        if name == "permute":
            extra = list(draw(st.permutations(range(len(shape)))))
    out_shape = {
        "sum(dim)": lambda: tuple(1 if k == extra[0] else n for k, n in enumerate(shape)),
        "mean(dim)": lambda: tuple(1 if k == extra[0] else n for k, n in enumerate(shape)),
        "mean()": lambda: (1,),
        "permute": lambda: tuple(shape[k] for k in extra),
        "matmul": lambda: np.matmul(xs[0], xs[1]).shape,
    }.get(name, lambda: np.broadcast_shapes(*[x.shape for x in xs]))()
    return xs, extra, rng.uniform(-2.0, 2.0, out_shape)


FUNCTION_NAMES = [
    "neg",
    "inv",
    "add",
    "sub",
    "mul",
    "div",
    "sigmoid",
    "relu",
    "log",
    "exp",
    "sum(dim)",
    "mean(dim)",
    "mean()",
    "lt",
    "eq",
    "permute",
    "matmul",
]


@pytest.mark.parametrize("name", FUNCTION_NAMES)
@settings(hidden_settings, max_examples=20)
@given(data=st.data())
def test_function_values_and_gradients_match_reference(student, reference, name, data):
    """Each function on shapes of up to 4 dimensions (broadcasting, any permutation)."""
    xs, extra, d = data.draw(function_cases(name), label="xs, extra, d")
    got, want = both(student, reference, probe_function, name, xs, extra, d)
    shapes_text = " and ".join(str(x.shape) for x in xs)
    what = f"{name} of shapes {shapes_text} (extra={extra})"
    assert_array_close(got["value"], want["value"], rtol=1e-12, atol=1e-12, what=what)
    for k, (grad, ref) in enumerate(zip(got["grads"], want["grads"], strict=True)):
        assert grad is not None, f"{what}: input {k} got no gradient"
        scale = 1.0 + float(np.max(np.abs(ref)))
        assert_array_close(
            grad, ref, rtol=1e-9, atol=1e-12 * scale, what=f"gradient of input {k} of {what}"
        )


# ---------------------------------------------------------------------------
# Random programs against the reference
# ---------------------------------------------------------------------------

PROGRAM_OPS = {
    "add": 2,
    "sub": 2,
    "mul": 2,
    "div": 2,
    "mask": 2,
    "neg": 1,
    "sigmoid": 1,
    "relu": 1,
    "gauss": 1,
    "log": 1,
    "inv": 1,
    "sum": 1,
    "mean": 1,
}


@st.composite
def programs(draw):
    """(leaves, ops, d): up to 3 leaves whose shapes broadcast together and up to 8 ops."""
    full = draw(shapes(max_size=36))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    leaves = []
    for _ in range(draw(st.integers(1, 3))):
        shape = [1 if draw(st.booleans()) else n for n in full]
        shape = shape[draw(st.integers(0, len(shape) - 1)) :]
        leaves.append(rng.uniform(-1.5, 1.5, shape))
    node_shapes = [leaf.shape for leaf in leaves]
    ops = []
    for _ in range(draw(st.integers(1, 8))):
        n = len(node_shapes)
        op = draw(st.sampled_from(sorted(PROGRAM_OPS)))
        i = draw(st.integers(max(0, n - 3), n - 1) | st.integers(0, n - 1))
        j = draw(st.integers(0, n - 1))
        k = draw(st.integers(0, len(node_shapes[i]) - 1))
        if PROGRAM_OPS[op] == 2:
            shape = np.broadcast_shapes(node_shapes[i], node_shapes[j])
        elif op in ("sum", "mean"):
            shape = tuple(1 if m == k else s for m, s in enumerate(node_shapes[i]))
        else:
            shape = node_shapes[i]
        ops.append([op, i, j, k])
        node_shapes.append(shape)
    d = rng.uniform(-2.0, 2.0, node_shapes[-1])
    return leaves, ops, d


def program_step(op, a, b, k):
    """One operation of a program, with NumPy."""
    if op in ("sum", "mean"):
        return getattr(a, op)(axis=k, keepdims=True)
    return {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "div": lambda: a / (b * b + 1.0),
        "neg": lambda: -a,
        "sigmoid": lambda: sigmoid(a),
        "relu": lambda: np.where(a > 0, a, 0.0),
        "gauss": lambda: np.exp(-(a * a)),
        "log": lambda: np.log(a * a + 1.0),
        "inv": lambda: 1.0 / (a * a + 2.0),
        "mask": lambda: (a < b) * a + (a == b) * 0.5,
    }[op]()


def run_program(leaves, ops):
    """The value of a program, with NumPy."""
    nodes = list(leaves)
    for op, i, j, k in ops:
        nodes.append(program_step(op, nodes[i], nodes[j], k))
    return nodes[-1]


@settings(hidden_settings, max_examples=100)
@given(programs())
def test_random_programs_match_reference(student, reference, program):
    """Random programs (shared inputs, broadcasting, reductions): values and gradients."""
    leaves, ops, d = program
    got, want = both(student, reference, probe_program, leaves, ops, d)
    expected = run_program(leaves, ops)
    what = f"program {ops} on leaves of shapes {[x.shape for x in leaves]}"
    assert_array_close(want["value"], expected, rtol=1e-9, atol=1e-12, what="reference")
    assert_array_close(got["value"], expected, rtol=1e-9, atol=1e-12, what=f"value of {what}")
    for k, (grad, ref) in enumerate(zip(got["grads"], want["grads"], strict=True)):
        if ref is None:
            assert grad is None, f"{what}: leaf {k} is not used, so its grad must stay None"
            continue
        assert grad is not None, f"{what}: leaf {k} got no gradient"
        scale = 1.0 + float(np.max(np.abs(ref)))
        assert_array_close(
            grad, ref, rtol=1e-9, atol=1e-12 * scale, what=f"gradient of leaf {k} of {what}"
        )
