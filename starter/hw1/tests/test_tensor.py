"""Public tests of task hw1.4: tensor operations and tensor functions.

What is checked:

- the low-level loops of minitorch/tensor_ops.py, through the backend that
  `Tensor` uses (`SimpleBackend.neg_map`, `.add_zip`, `.add_reduce`,
  `.matrix_multiply`, ...), against NumPy on random shapes of 1 to 3
  dimensions: `tensor_map` (also on a permuted, non-contiguous input, and
  broadcast into a larger `out`), `tensor_zip` (also with broadcasting),
  `tensor_reduce` along every dimension (sums, products and `all`, whose
  product starts from 1) and `tensor_matrix_multiply` (2-D, and 3-D batches
  where one side's batch is 1);
- every function of minitorch/tensor_functions.py (`Neg`, `Inv`, `Add`, `Mul`,
  `Sigmoid`, `ReLU`, `Log`, `Exp`, `Sum`, `LT`, `EQ`, `IsClose`, `Permute`,
  `MatMul`) and the tensor methods built on them (`-`, `/`, `mean`, `view`,
  `all`...): forward values against NumPy, and gradients after
  `out.backward(d)` against central differences of the same function written
  with NumPy (every element of every input is checked);
- gradients of broadcast inputs have the input's shape and are summed over
  the copies;
- where PyTorch is installed, the same functions against PyTorch: values and
  gradients (these tests are skipped without torch; the grader has it).

How these tests reach your code
-------------------------------
As in the other test files, no test imports `minitorch`: each test hands a
*probe* (a function defined at the top level of this file, named `probe_...`)
to the `student` fixture. The probe builds tensors from NumPy arrays, calls
your code, and returns plain data: NumPy arrays of values and gradients, and
shapes as lists. PyTorch, where used, runs only in the test, never in a probe.

Run them with `pytest tests/test_tensor.py` (add `-k zip` for one topic).
"""

import numpy as np
import pytest
import strategies  # noqa: F401  (loads the Hypothesis settings profile: dev, ci or grade)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

pytestmark = pytest.mark.task("hw1.4")

# A test that reaches several unfinished functions fails at whichever comes first:
# report one error, not a group of them (the other settings come from the profile).
one_error = settings(report_multiple_bugs=False)

#: Step of the central differences computed by the tests.
H = 1e-6

# ---------------------------------------------------------------------------
# Strategies: shapes and arrays (small: the tensor ops of this task are plain Python)
# ---------------------------------------------------------------------------

#: Floats in [-3, 3]: exponentials and products of a few of them stay moderate.
floats = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_subnormal=False)
#: Floats in [0.2, 5]: inputs of `log`.
positive_floats = st.floats(min_value=0.2, max_value=5.0)
#: Floats at least 0.5 away from 0: denominators.
nonzero_floats = st.one_of(st.floats(min_value=0.5, max_value=3.0), st.floats(-3.0, -0.5))
#: Floats at least 0.01 away from 0 (relu has a kink at 0).
unkinked_floats = st.one_of(st.floats(min_value=0.01, max_value=3.0), st.floats(-3.0, -0.01))
#: A few integers: `==` is true often.
few_ints = st.sampled_from([-1.0, 0.0, 1.0, 2.0])


def shapes(min_dims=1, max_dims=3, max_side=4):
    """Shapes of 1 to 3 dimensions of sizes 1 to 4 (at most 64 elements)."""
    return st.lists(
        st.integers(min_value=1, max_value=max_side),
        min_size=min_dims,
        max_size=max_dims,
    ).map(tuple)


def arrays(shape, elements=floats, unique=True):
    """float64 arrays of this shape; with `unique`, no value repeats (a permuted or
    misplaced element then always shows)."""
    return hnp.arrays(np.float64, shape, elements=elements, unique=unique)


def upstream(data, shape):
    """A gradient `d` to backpropagate: values in [-2, -0.5] or [0.5, 2], from a drawn seed
    (never all zeros or all equal, so every misplaced or missing term shows)."""
    seed = data.draw(st.integers(min_value=0, max_value=2**32 - 1), label="seed of d")
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


@st.composite
def broadcast_shapes(draw, max_dims=3, max_side=4):
    """Two shapes that broadcast to a random shape: in each dimension one side, or
    none, has size 1, and one side may have fewer dimensions."""
    full = draw(shapes(1, max_dims, max_side))
    a, b = list(full), list(full)
    for k in range(len(full)):
        ones = draw(st.sampled_from(["neither", "a", "b"]))
        if ones == "a":
            a[k] = 1
        elif ones == "b":
            b[k] = 1
    shorter = draw(st.sampled_from(["neither", "a", "b"]))
    drop = draw(st.integers(min_value=0, max_value=len(full) - 1))
    if shorter == "a":
        a = a[drop:]
    elif shorter == "b":
        b = b[drop:]
    return tuple(a), tuple(b)


@st.composite
def permuted(draw, max_dims=3):
    """(array, order): a random array and a random permutation of its dimensions."""
    shape = draw(shapes(2, max_dims))
    order = draw(st.permutations(range(len(shape))))
    return draw(arrays(shape)), list(order)


def assert_array_close(actual, expected, *, rtol, atol, what):
    """Same shape and numpy.testing.assert_allclose, with a message naming `what`."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{what}: expected shape {expected.shape}, got {actual.shape}"
    )
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def sigmoid(x):
    """The logistic sigmoid on arrays (inputs of moderate size)."""
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------
# tensor_map
# ---------------------------------------------------------------------------

#: backend map name -> the same function on NumPy arrays.
MAPS = {
    "neg": lambda a: -a,
    "id": lambda a: a,
    "exp": np.exp,
    "relu": lambda a: np.where(a > 0, a, 0.0),
    "sigmoid": sigmoid,
}


def probe_map(name, a, order):
    """SimpleBackend.<name>_map of a tensor holding `a`, seen permuted by `order` if given.

    The permuted tensor is built with TensorData.permute (task hw1.3): the same
    storage seen with reordered shape and strides, not contiguous.
    """
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend

    a = np.asarray(a, dtype=np.float64)
    t = Tensor.make(a.flatten(), a.shape)
    if order is not None:
        t = t._new(t._tensor.permute(*order))
    out = getattr(SimpleBackend, name + "_map")(t)
    # `out` is a new contiguous tensor: read its storage directly.
    return {"shape": list(out.shape), "value": out._tensor._storage.copy()}


@pytest.mark.parametrize("name", list(MAPS))
@one_error
@given(data=st.data())
def test_map_values(student, name, data):
    """<name>_map applies the function to every element, for shapes of 1 to 3 dimensions."""
    a = data.draw(shapes().flatmap(arrays), label="a")
    got = student.run(probe_map, name, a, None)
    assert got["shape"] == list(a.shape), f"{name}_map: the result must have the input's shape"
    assert_array_close(
        got["value"], MAPS[name](a).flatten(), rtol=1e-12, atol=0.0, what=f"{name}_map"
    )


@one_error
@given(permuted())
def test_map_on_a_permuted_input(student, case):
    """neg_map of a permuted (non-contiguous) tensor: read each element through its strides."""
    a, order = case
    got = student.run(probe_map, "neg", a, order)
    expected = -np.transpose(a, order)
    assert got["shape"] == list(expected.shape)
    assert_array_close(
        got["value"],
        expected.flatten(),
        rtol=0.0,
        atol=0.0,
        what=f"neg_map of an array of shape {a.shape} permuted by {order} (row-major result)",
    )


def probe_map_into(name, a, out_shape):
    """SimpleBackend.<name>_map(a, out) for a zero `out` of `out_shape` (a broadcasts to it)."""
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend

    a = np.asarray(a, dtype=np.float64)
    t = Tensor.make(a.flatten(), a.shape)
    out = Tensor.make(np.zeros(int(np.prod(out_shape))), tuple(out_shape))
    result = getattr(SimpleBackend, name + "_map")(t, out)
    return {"same tensor": result is out, "value": out._tensor._storage.copy()}


@one_error
@given(broadcast_shapes(), st.sampled_from(["id", "neg"]), st.data())
def test_map_broadcasts_into_a_larger_out(student, shapes_pair, name, data):
    """map(a, out) writes fn(a) broadcast to out's shape (how gradients are expanded)."""
    small, other = shapes_pair
    out_shape = np.broadcast_shapes(small, other)
    a = data.draw(arrays(small), label="a")
    got = student.run(probe_map_into, name, a, list(out_shape))
    assert got["same tensor"], "map(a, out) must return `out`"
    expected = np.broadcast_to(MAPS[name](a), out_shape)
    assert_array_close(
        got["value"],
        expected.flatten(),
        rtol=0.0,
        atol=0.0,
        what=f"{name}_map of shape {small} into out of shape {out_shape}",
    )


# ---------------------------------------------------------------------------
# tensor_zip
# ---------------------------------------------------------------------------

#: backend zip name -> the same function on NumPy arrays.
ZIPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "lt": lambda a, b: (a < b).astype(np.float64),
    "eq": lambda a, b: (a == b).astype(np.float64),
    "is_close": lambda a, b: (np.abs(a - b) < 1e-2).astype(np.float64),
}


def probe_zip(name, a, b):
    """SimpleBackend.<name>_zip of tensors holding `a` and `b`."""
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ta = Tensor.make(a.flatten(), a.shape)
    tb = Tensor.make(b.flatten(), b.shape)
    out = getattr(SimpleBackend, name + "_zip")(ta, tb)
    return {"shape": list(out.shape), "value": out._tensor._storage.copy()}


def check_zip(got, name, a, b):
    expected = ZIPS[name](a, b)
    assert got["shape"] == list(expected.shape), (
        f"{name}_zip of shapes {a.shape} and {b.shape}: expected shape {expected.shape}, "
        f"got {tuple(got['shape'])}"
    )
    assert_array_close(
        got["value"],
        expected.flatten(),
        rtol=1e-15,
        atol=0.0,
        what=f"{name}_zip of shapes {a.shape} and {b.shape}",
    )


@pytest.mark.parametrize("name", list(ZIPS))
@one_error
@given(data=st.data())
def test_zip_values(student, name, data):
    """<name>_zip of two tensors of the same shape, element by element."""
    shape = data.draw(shapes(), label="shape")
    discrete = name in ("eq", "is_close")
    elements = few_ints if discrete else floats
    a = data.draw(arrays(shape, elements, unique=not discrete), label="a")
    b = data.draw(arrays(shape, elements, unique=not discrete), label="b")
    if name == "is_close":  # some pairs close, some not
        gaps = st.sampled_from([0.0, 0.004, -0.004, 0.5])
        b = b + data.draw(arrays(shape, gaps, unique=False), label="gap")
    check_zip(student.run(probe_zip, name, a, b), name, a, b)


@pytest.mark.parametrize(
    ("shape_a", "shape_b"),
    [
        ((3, 1), (1, 4)),
        ((2, 3), (3,)),
        ((3,), (2, 3)),
        ((2, 3), (2, 1)),
        ((1,), (2, 2)),
        ((4, 1, 2), (3, 2)),
    ],
    ids=str,
)
@pytest.mark.parametrize("name", ["add", "mul", "lt"])
def test_zip_broadcasting_examples(student, name, shape_a, shape_b):
    """Zip of two shapes that broadcast: each input is repeated along its size-1 dimensions."""
    rng = np.random.default_rng(sum(shape_a) * 7 + sum(shape_b))
    a = rng.uniform(-2.0, 2.0, shape_a).round(2)
    b = rng.uniform(-2.0, 2.0, shape_b).round(2)
    check_zip(student.run(probe_zip, name, a, b), name, a, b)


@one_error
@given(broadcast_shapes(), st.sampled_from(["add", "mul", "lt"]), st.data())
def test_zip_broadcasting(student, shapes_pair, name, data):
    """Zip of random broadcastable shapes (fewer dimensions, sizes 1, on either side)."""
    a = data.draw(arrays(shapes_pair[0]), label="a")
    b = data.draw(arrays(shapes_pair[1]), label="b")
    check_zip(student.run(probe_zip, name, a, b), name, a, b)


# ---------------------------------------------------------------------------
# tensor_reduce
# ---------------------------------------------------------------------------


def probe_reduce(name, a):
    """SimpleBackend.<name>_reduce of a tensor holding `a`, along each dimension in turn."""
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend

    a = np.asarray(a, dtype=np.float64)
    t = Tensor.make(a.flatten(), a.shape)
    results = []
    for dim in range(len(a.shape)):
        out = getattr(SimpleBackend, name + "_reduce")(t, dim)
        results.append({"shape": list(out.shape), "value": out._tensor._storage.copy()})
    return results


@pytest.mark.parametrize(
    ("name", "np_fn", "elements"),
    [("add", np.sum, floats), ("mul", np.prod, st.floats(-2.0, 2.0))],
    ids=["add", "mul"],
)
@one_error
@given(data=st.data())
def test_reduce_along_each_dimension(student, name, np_fn, elements, data):
    """add_reduce / mul_reduce along every dimension: that dimension becomes size 1."""
    a = data.draw(shapes().flatmap(lambda s: arrays(s, elements)), label="a")
    got = student.run(probe_reduce, name, a)
    assert len(got) == a.ndim
    for dim, result in enumerate(got):
        expected = np_fn(a, axis=dim, keepdims=True)
        assert result["shape"] == list(expected.shape), (
            f"{name}_reduce of shape {a.shape} along {dim}: expected shape {expected.shape}"
        )
        assert_array_close(
            result["value"],
            expected.flatten(),
            rtol=1e-12,
            atol=1e-12,
            what=f"{name}_reduce of shape {a.shape} along dimension {dim}",
        )


def probe_all(a):
    """t.all(dim) for every dimension, and t.all(), of a tensor holding `a`."""
    import numpy as np
    from minitorch.tensor import Tensor

    a = np.asarray(a, dtype=np.float64)
    t = Tensor.make(a.flatten(), a.shape)
    along = [t.all(dim).to_numpy() for dim in range(len(a.shape))]
    return {"along": along, "whole": t.all().to_numpy()}


@one_error
@given(shapes().flatmap(lambda s: arrays(s, st.sampled_from([1.0, 1.0, 1.0, 2.0, 0.0]), False)))
def test_all_is_a_product_that_starts_from_one(student, a):
    """all() multiplies with mul_reduce, whose result starts from the 1.0 already in `out`."""
    got = student.run(probe_all, a)
    for dim, value in enumerate(got["along"]):
        expected = np.prod(a, axis=dim, keepdims=True)
        assert_array_close(
            value, expected, rtol=0.0, atol=0.0, what=f"all({dim}) of shape {a.shape}"
        )
    assert_array_close(
        got["whole"], [np.prod(a)], rtol=0.0, atol=0.0, what=f"all() of shape {a.shape}"
    )


# ---------------------------------------------------------------------------
# tensor_matrix_multiply
# ---------------------------------------------------------------------------


def probe_matmul(a, b):
    """SimpleBackend.matrix_multiply of tensors holding `a` and `b`."""
    import numpy as np
    from minitorch.tensor import Tensor
    from minitorch.tensor_ops import SimpleBackend

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ta = Tensor.make(a.flatten(), a.shape)
    tb = Tensor.make(b.flatten(), b.shape)
    return SimpleBackend.matrix_multiply(ta, tb).to_numpy()


#: How the batch dimensions of a matrix product line up: a's shape, b's shape.
MATMUL_LAYOUTS = {
    "2-D": lambda n, i, k, j: ((i, k), (k, j)),
    "3-D": lambda n, i, k, j: ((n, i, k), (n, k, j)),
    "a batch 1": lambda n, i, k, j: ((1, i, k), (n, k, j)),
    "b batch 1": lambda n, i, k, j: ((n, i, k), (1, k, j)),
    "2-D @ 3-D": lambda n, i, k, j: ((i, k), (n, k, j)),
    "3-D @ 2-D": lambda n, i, k, j: ((n, i, k), (k, j)),
}


@st.composite
def matmul_operands(draw, layouts=tuple(MATMUL_LAYOUTS)):
    """(layout, a, b) with sizes 1 to 4 (batch 2 to 3)."""
    layout = draw(st.sampled_from(layouts))
    n = draw(st.integers(min_value=2, max_value=3))
    i, k, j = (draw(st.integers(min_value=1, max_value=4)) for _ in range(3))
    shape_a, shape_b = MATMUL_LAYOUTS[layout](n, i, k, j)
    return layout, draw(arrays(shape_a)), draw(arrays(shape_b))


@one_error
@given(matmul_operands(("2-D",)))
def test_matmul_2d(student, operands):
    """(I, K) @ (K, J) is (I, J): out[i, j] = sum over k of a[i, k] * b[k, j]."""
    _, a, b = operands
    assert_array_close(
        student.run(probe_matmul, a, b),
        a @ b,
        rtol=1e-12,
        atol=1e-12,
        what=f"matmul of shapes {a.shape} @ {b.shape}",
    )


@pytest.mark.parametrize("layout", [k for k in MATMUL_LAYOUTS if k != "2-D"])
@settings(one_error, max_examples=20)
@given(data=st.data())
def test_matmul_batched(student, layout, data):
    """Batched products; a batch of 1 (or a 2-D operand) is shared by every batch of the other."""
    _, a, b = data.draw(matmul_operands((layout,)), label="operands")
    assert_array_close(
        student.run(probe_matmul, a, b),
        np.matmul(a, b),
        rtol=1e-12,
        atol=1e-12,
        what=f"matmul of shapes {a.shape} @ {b.shape} ({layout})",
    )


# ---------------------------------------------------------------------------
# The tensor functions: values and gradients
# ---------------------------------------------------------------------------


def probe_function(name, xs, extra, d):
    """Apply the function `name` to leaf tensors holding `xs`; backpropagate `d` if given.

    `extra` is the dimension of sum / mean / all, the order of permute or the
    shape of view. Returns the value and the gradient of every input, and whether
    forward and backward left the inputs' values (and backward `d`'s) unchanged.
    """
    import numpy as np
    from minitorch import tensor_functions as tf
    from minitorch.tensor import Tensor

    def leaf(x):
        x = np.asarray(x, dtype=np.float64)
        return Tensor.make(x.flatten(), x.shape).requires_grad_(True)

    functions = {
        "neg": lambda a: -a,
        "inv": lambda a: tf.Inv.apply(a),
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "sigmoid": lambda a: a.sigmoid(),
        "relu": lambda a: a.relu(),
        "log": lambda a: a.log(),
        "exp": lambda a: a.exp(),
        "sum(dim)": lambda a: a.sum(extra[0]),
        "sum()": lambda a: a.sum(),
        "mean(dim)": lambda a: a.mean(extra[0]),
        "mean()": lambda a: a.mean(),
        "lt": lambda a, b: a < b,
        "gt": lambda a, b: a > b,
        "eq": lambda a, b: a == b,
        "is_close": lambda a, b: a.is_close(b),
        "all(dim)": lambda a: a.all(extra[0]),
        "permute": lambda a: a.permute(*extra),
        "view": lambda a: a.view(*extra),
        "matmul": lambda a, b: a @ b,
        "layer": lambda x, w, b: (x @ w + b).relu().sum(1),
    }
    inputs = [leaf(x) for x in xs]
    before = [t._tensor._storage.copy() for t in inputs]

    def unchanged():
        return [
            bool(np.array_equal(t._tensor._storage, v)) for t, v in zip(inputs, before, strict=True)
        ]

    out = functions[name](*inputs)
    result = {"shape": list(out.shape), "value": out.to_numpy()}
    result["inputs unchanged by forward"] = unchanged()
    if d is not None:
        d = np.asarray(d, dtype=np.float64)
        grad = Tensor.make(d.flatten(), d.shape)
        out.backward(grad)
        result["grads"] = [None if x.grad is None else x.grad.to_numpy() for x in inputs]
        result["inputs unchanged by backward"] = unchanged()
        result["d unchanged by backward"] = bool(np.array_equal(grad._tensor._storage, d.flatten()))
    return result


def unary(elements=floats):
    """One input of a random shape."""

    @st.composite
    def draw(draw):
        return [draw(shapes().flatmap(lambda s: arrays(s, elements)))], None

    return draw()


def binary(a_elements=floats, b_elements=floats, unique=True):
    """Two inputs of random broadcastable shapes."""

    @st.composite
    def draw(draw):
        shape_a, shape_b = draw(broadcast_shapes())
        a = draw(arrays(shape_a, a_elements, unique))
        return [a, draw(arrays(shape_b, b_elements, unique))], None

    return draw()


@st.composite
def with_dim(draw, elements=floats, unique=True):
    """One input and one of its dimensions."""
    a = draw(shapes().flatmap(lambda s: arrays(s, elements, unique)))
    return [a], [draw(st.integers(min_value=0, max_value=a.ndim - 1))]


@st.composite
def with_swap(draw):
    """One input of 2 or 3 dimensions and an order that swaps two of them (or none)."""
    a = draw(shapes(2, 3).flatmap(arrays))
    i, j = draw(st.integers(0, a.ndim - 1)), draw(st.integers(0, a.ndim - 1))
    order = list(range(a.ndim))
    order[i], order[j] = order[j], order[i]
    return [a], order


@st.composite
def with_view_shape(draw):
    """One input and another shape of the same size."""
    a = draw(shapes().flatmap(arrays))
    options = [[a.size], [1, a.size], [a.size, 1], list(reversed(a.shape))]
    return [a], draw(st.sampled_from(options))


@st.composite
def matmul_inputs(draw):
    """A 2-D or 3-D (same batch) matrix product."""
    _, a, b = draw(matmul_operands(("2-D", "3-D")))
    return [a, b], None


@st.composite
def layer_inputs(draw):
    """x (N, I), w (I, J), b (J,): a linear layer with relu."""
    n, i, j = (draw(st.integers(min_value=1, max_value=4)) for _ in range(3))
    # x @ w is a multiple of 0.25 and b is 0.1 or more away from one: no input of
    # relu is near its kink at 0, where central differences would be wrong.
    x = draw(arrays((n, i), st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]), False))
    w = draw(arrays((i, j), st.sampled_from([-1.0, -0.5, 0.5, 1.0]), False))
    b = draw(arrays((j,), st.sampled_from([-1.1, -0.6, -0.1, 0.1, 0.6, 1.1]), False))
    return [x, w, b], None


def keep(fn):
    """A NumPy reduction along extra[0], keeping the dimension."""
    return lambda xs, extra: fn(xs[0], axis=extra[0], keepdims=True)


def relu(x):
    return np.where(x > 0, x, 0.0)


#: name -> (inputs strategy, the function on NumPy arrays, its gradient kind).
#: Gradient kinds: "smooth" (checked by central differences), "step" (piecewise
#: constant: the gradients must be zeros of the inputs' shapes), None (no gradient).
FUNCTIONS = {
    "neg": (unary(), lambda xs, e: -xs[0], "smooth"),
    "inv": (unary(nonzero_floats), lambda xs, e: 1.0 / xs[0], "smooth"),
    "add": (binary(), lambda xs, e: xs[0] + xs[1], "smooth"),
    "sub": (binary(), lambda xs, e: xs[0] - xs[1], "smooth"),
    "mul": (binary(), lambda xs, e: xs[0] * xs[1], "smooth"),
    "div": (binary(floats, nonzero_floats), lambda xs, e: xs[0] / xs[1], "smooth"),
    "sigmoid": (unary(), lambda xs, e: sigmoid(xs[0]), "smooth"),
    "relu": (unary(unkinked_floats), lambda xs, e: relu(xs[0]), "smooth"),
    "log": (unary(positive_floats), lambda xs, e: np.log(xs[0]), "smooth"),
    "exp": (unary(), lambda xs, e: np.exp(xs[0]), "smooth"),
    "sum(dim)": (with_dim(), keep(np.sum), "smooth"),
    "sum()": (unary(), lambda xs, e: np.sum(xs[0]).reshape(1), "smooth"),
    "mean(dim)": (with_dim(), keep(np.mean), "smooth"),
    "mean()": (unary(), lambda xs, e: np.mean(xs[0]).reshape(1), "smooth"),
    "lt": (binary(few_ints, few_ints, False), lambda xs, e: (xs[0] < xs[1]) * 1.0, "step"),
    "gt": (binary(few_ints, few_ints, False), lambda xs, e: (xs[0] > xs[1]) * 1.0, "step"),
    "eq": (binary(few_ints, few_ints, False), lambda xs, e: (xs[0] == xs[1]) * 1.0, "step"),
    "is_close": (
        binary(st.sampled_from([0.0, 0.004, 1.0]), st.sampled_from([0.0, 0.005, 0.02]), False),
        lambda xs, e: (np.abs(xs[0] - xs[1]) < 1e-2) * 1.0,
        None,
    ),
    "all(dim)": (with_dim(st.sampled_from([1.0, 1.0, 0.0]), False), keep(np.prod), None),
    "permute": (with_swap(), lambda xs, e: np.transpose(xs[0], e), "smooth"),
    "view": (with_view_shape(), lambda xs, e: xs[0].reshape(e), "smooth"),
    "matmul": (matmul_inputs(), lambda xs, e: np.matmul(xs[0], xs[1]), "smooth"),
    "layer": (
        layer_inputs(),
        lambda xs, e: relu(xs[0] @ xs[1] + xs[2]).sum(axis=1, keepdims=True),
        "smooth",
    ),
}

DIFFERENTIABLE = [name for name, (_, _, kind) in FUNCTIONS.items() if kind is not None]


def central_differences(fn, xs, extra, d):
    """d(sum(fn(xs) * d)) / dx for every element of every input, by central differences."""
    grads = []
    for i, x in enumerate(xs):
        grad = np.zeros_like(x)
        for index in np.ndindex(x.shape):
            upper = [y.copy() for y in xs]
            lower = [y.copy() for y in xs]
            upper[i][index] += H
            lower[i][index] -= H
            # Subtract before summing: the outputs that do not depend on this
            # element cancel exactly, so the sum adds no rounding error.
            delta = np.sum((fn(upper, extra) - fn(lower, extra)) * d)
            grad[index] = delta / (2.0 * H)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("name", list(FUNCTIONS))
@settings(one_error, max_examples=25)
@given(data=st.data())
def test_function_values(student, name, data):
    """The function's value (and shape) equals NumPy's."""
    draw_inputs, np_fn, _ = FUNCTIONS[name]
    xs, extra = data.draw(draw_inputs, label="inputs, extra")
    expected = np_fn(xs, extra)
    got = student.run(probe_function, name, xs, extra, None)
    shapes_text = " and ".join(str(x.shape) for x in xs)
    assert got["shape"] == list(expected.shape), (
        f"{name} of shapes {shapes_text} (extra={extra}): expected shape {expected.shape}, "
        f"got {tuple(got['shape'])}"
    )
    assert_array_close(
        got["value"],
        expected,
        rtol=1e-12,
        atol=1e-12,
        what=f"{name} of shapes {shapes_text} (extra={extra})",
    )


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@settings(one_error, max_examples=20)
@given(data=st.data())
def test_function_gradients(student, name, data):
    """After out.backward(d), each input's grad has its shape and equals the central difference.

    The central difference is that of sum(f(inputs) * d), computed with NumPy
    on every element; broadcast inputs get the sum over their copies.
    """
    draw_inputs, np_fn, kind = FUNCTIONS[name]
    xs, extra = data.draw(draw_inputs, label="inputs, extra")
    out_shape = np_fn(xs, extra).shape
    d = upstream(data, out_shape)
    got = student.run(probe_function, name, xs, extra, d)
    if kind == "step":
        expected = [np.zeros_like(x) for x in xs]
    else:
        expected = central_differences(np_fn, xs, extra, d)
    assert len(got["grads"]) == len(xs)
    for i, (grad, want) in enumerate(zip(got["grads"], expected, strict=True)):
        what = (
            f"gradient of input {i} of {name} for shapes "
            f"{' and '.join(str(x.shape) for x in xs)} (extra={extra})"
        )
        assert grad is not None, f"{what}: no gradient (grad is None)"
        assert_array_close(grad, want, rtol=1e-5, atol=1e-6, what=what)


def probe_broadcast_gradients():
    """Gradients of (a + b).sum() and (a * b).sum() for a (3, 1) and b (1, 4)."""
    from minitorch import tensor

    results = {}
    for name in ("add", "mul"):
        a = tensor([[1.0], [2.0], [3.0]], requires_grad=True)
        b = tensor([[1.0, 10.0, 100.0, 1000.0]], requires_grad=True)
        out = a + b if name == "add" else a * b
        out.sum().backward()
        results[name] = {
            "shape": list(out.shape),
            "a.grad": a.grad.to_numpy(),
            "b.grad": b.grad.to_numpy(),
        }
    return results


def test_broadcast_gradients_are_summed_to_the_input_shape(student):
    """a (3, 1) + b (1, 4) is (3, 4): a.grad is (3, 1), b.grad is (1, 4), summed over copies."""
    got = student.run(probe_broadcast_gradients)
    assert got["add"]["shape"] == [3, 4]
    assert_array_close(got["add"]["a.grad"], [[4.0]] * 3, rtol=0, atol=0, what="add: a.grad")
    assert_array_close(got["add"]["b.grad"], [[3.0] * 4], rtol=0, atol=0, what="add: b.grad")
    # d(sum a_i b_j)/da_i = sum_j b_j;  d/db_j = sum_i a_i.
    assert_array_close(got["mul"]["a.grad"], [[1111.0]] * 3, rtol=0, atol=0, what="mul: a.grad")
    assert_array_close(got["mul"]["b.grad"], [[6.0] * 4], rtol=0, atol=0, what="mul: b.grad")


# ---------------------------------------------------------------------------
# Against PyTorch (skipped where torch is not installed)
# ---------------------------------------------------------------------------


def torch_function(torch, name, xs, extra):
    """The function `name` with PyTorch (comparisons as float64 0.0 / 1.0)."""
    a = xs[0]
    functions = {
        "neg": lambda: -a,
        "inv": lambda: 1.0 / a,
        "add": lambda: a + xs[1],
        "sub": lambda: a - xs[1],
        "mul": lambda: a * xs[1],
        "div": lambda: a / xs[1],
        "sigmoid": lambda: torch.sigmoid(a),
        "relu": lambda: torch.relu(a),
        "log": lambda: torch.log(a),
        "exp": lambda: torch.exp(a),
        "sum(dim)": lambda: a.sum(extra[0], keepdim=True),
        "sum()": lambda: a.sum().reshape(1),
        "mean(dim)": lambda: a.mean(extra[0], keepdim=True),
        "mean()": lambda: a.mean().reshape(1),
        "lt": lambda: (a < xs[1]).double(),
        "gt": lambda: (a > xs[1]).double(),
        "eq": lambda: (a == xs[1]).double(),
        "is_close": lambda: ((a - xs[1]).abs() < 1e-2).double(),
        "all(dim)": lambda: a.prod(extra[0], keepdim=True),
        "permute": lambda: a.permute(*extra),
        "view": lambda: a.reshape(extra),
        "matmul": lambda: a @ xs[1],
        "layer": lambda: torch.relu(a @ xs[1] + xs[2]).sum(1, keepdim=True),
    }
    return functions[name]()


@pytest.mark.parametrize("name", list(FUNCTIONS))
@settings(one_error, max_examples=15)
@given(data=st.data())
def test_function_matches_torch(student, name, data):
    """Values and gradients (after out.backward(d)) equal PyTorch's."""
    torch = pytest.importorskip("torch")
    draw_inputs, _, kind = FUNCTIONS[name]
    xs, extra = data.draw(draw_inputs, label="inputs, extra")
    inputs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = torch_function(torch, name, inputs, extra)
    d = None
    if kind is not None:
        d = upstream(data, tuple(out.shape))
    got = student.run(probe_function, name, xs, extra, d)
    shapes_text = " and ".join(str(x.shape) for x in xs)
    assert_array_close(
        got["value"],
        out.detach().numpy(),
        rtol=1e-12,
        atol=1e-12,
        what=f"{name} of shapes {shapes_text} (extra={extra}) against torch",
    )
    if kind is None:
        return
    if kind == "smooth":
        out.backward(torch.tensor(d, dtype=torch.float64))
    for i, (x, grad) in enumerate(zip(inputs, got["grads"], strict=True)):
        want = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        what = f"gradient of input {i} of {name} for shapes {shapes_text} against torch"
        assert grad is not None, f"{what}: no gradient (grad is None)"
        assert_array_close(grad, want, rtol=1e-9, atol=1e-12, what=what)
