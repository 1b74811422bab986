"""Public tests of task hw1.2: scalar autodiff.

What is checked:

- `central_difference` (minitorch/autodiff.py) on functions with known derivatives;
- every `ScalarFunction` (minitorch/scalar_functions.py): its value, and the
  derivatives that backpropagation computes through it, against central
  differences of the same function written with Python's `math`;
- `Scalar.chain_rule` (minitorch/scalar.py), with and without constants;
- `topological_sort`: the output first, every variable once, every variable
  before the variables it was computed from, constants left out;
- `backpropagate` / `Scalar.backward`: derivatives of variables used several
  times are summed, only leaves store derivatives, `d_output` defaults to 1.

How these tests reach your code
-------------------------------
As in `test_operators.py`, no test imports `minitorch`. Each test hands a
*probe* to the `student` fixture: a function defined at the top level of this
file, with a name starting with `probe_`, that imports your code inside its
body, builds scalars, runs backpropagation and returns plain data (numbers,
lists, dicts, strings). Scalars themselves never leave a probe: to say *which*
variables `topological_sort` returned, a probe returns their names or
positions instead.

Run them with `pytest tests/test_autodiff.py` (add `-k topological` for one topic).
"""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import (
    assert_close,
    small_floats,
    small_nonzero_floats,
    small_positive_floats,
)

pytestmark = pytest.mark.task("hw1.2")

#: Step of the central differences computed by the tests themselves.
H = 1e-6

#: Floats in [-10, 10]: inputs whose products and exponentials stay moderate.
moderate_floats = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)


def numeric_derivative(f, xs, i, h=H):
    """(f(.., xs[i] + h, ..) - f(.., xs[i] - h, ..)) / 2h, in plain Python floats."""
    upper, lower = list(xs), list(xs)
    upper[i] += h
    lower[i] -= h
    return (f(*upper) - f(*lower)) / (2.0 * h)


def sigmoid(x):
    """The logistic sigmoid on floats, without overflow."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


# ---------------------------------------------------------------------------
# central_difference
# ---------------------------------------------------------------------------


def probe_central_difference(x, y):
    """central_difference of a few functions with known derivatives, at (x, y)."""
    import math

    from minitorch.autodiff import central_difference

    return {
        "x^2": central_difference(lambda a: a * a, x),
        "x * y by x": central_difference(lambda a, b: a * b, x, y),
        "x * y by y": central_difference(lambda a, b: a * b, x, y, arg=1),
        "x + 2y + 3z by z": central_difference(lambda a, b, c: a + 2 * b + 3 * c, x, y, 1.0, arg=2),
        "exp(x / 50)": central_difference(lambda a: math.exp(a / 50.0), x),
    }


@given(small_floats, small_floats)
def test_central_difference_on_known_functions(student, x, y):
    """d(x^2)/dx = 2x, d(xy)/dx = y, d(xy)/dy = x, d(x + 2y + 3z)/dz = 3, d(e^{x/50})/dx."""
    got = student.run(probe_central_difference, x, y)
    expected = {
        "x^2": 2.0 * x,
        "x * y by x": y,
        "x * y by y": x,
        "x + 2y + 3z by z": 3.0,
        "exp(x / 50)": math.exp(x / 50.0) / 50.0,
    }
    for case, want in expected.items():
        assert case in got, f"missing result for {case}"
        assert_close(got[case], want, rel_tol=1e-4, abs_tol=1e-4)


def probe_central_difference_steps(x, y, epsilon):
    """The points at which central_difference calls f, and its result, for a recording f."""
    from minitorch.autodiff import central_difference

    calls = []

    def f(a, b, c):
        calls.append([a, b, c])
        return a * b * b + c

    if epsilon is None:
        result = central_difference(f, x, y, 5.0, arg=1)
    else:
        result = central_difference(f, x, y, 5.0, arg=1, epsilon=epsilon)
    return {"calls": sorted(calls), "result": result}


@pytest.mark.parametrize("epsilon", [None, 0.5, 1e-3], ids=["default", "0.5", "1e-3"])
def test_central_difference_steps_one_argument_by_epsilon(student, epsilon):
    """f is called at y + epsilon and y - epsilon (epsilon = 1e-6 by default), others unchanged."""
    x, y = 3.0, 2.0
    got = student.run(probe_central_difference_steps, x, y, epsilon)
    eps = 1e-6 if epsilon is None else epsilon
    assert got["calls"] == sorted([[x, y + eps, 5.0], [x, y - eps, 5.0]]), (
        f"with epsilon={epsilon}, central_difference(f, 3.0, 2.0, 5.0, arg=1) should call f "
        f"exactly at (3.0, 2.0 + {eps}, 5.0) and (3.0, 2.0 - {eps}, 5.0)"
    )
    # f = x y^2 + c: the central difference is exactly 2 x y, whatever epsilon
    # (a one-sided difference would be off by x * epsilon: 1.5 for epsilon = 0.5).
    assert_close(got["result"], 2.0 * x * y, rel_tol=1e-6, abs_tol=1e-6)


# ---------------------------------------------------------------------------
# Forward values of the scalar functions
# ---------------------------------------------------------------------------


def probe_binary_values(x, y):
    """Values of the two-argument functions, through the classes and the operators."""
    from minitorch import scalar_functions as sf
    from minitorch.scalar import Scalar

    a, b = Scalar(x), Scalar(y)
    return {
        "Add": sf.Add.apply(a, b).data,
        "Mul": sf.Mul.apply(a, b).data,
        "LT": sf.LT.apply(a, b).data,
        "EQ": sf.EQ.apply(a, b).data,
        "a + b": (a + b).data,
        "a - b": (a - b).data,
        "a * b": (a * b).data,
        "a < b": (a < b).data,
        "a > b": (a > b).data,
        "a == b": (a == b).data,
        "a == a": (a == a).data,
    }


@given(small_floats, small_floats)
def test_binary_function_values(student, x, y):
    """Add, Mul, LT and EQ compute x + y, x * y, x < y and x == y (as 1.0 / 0.0)."""
    got = student.run(probe_binary_values, x, y)
    expected = {
        "Add": x + y,
        "Mul": x * y,
        "LT": 1.0 if x < y else 0.0,
        "EQ": 1.0 if x == y else 0.0,
        "a + b": x + y,
        "a - b": x - y,
        "a * b": x * y,
        "a < b": 1.0 if x < y else 0.0,
        "a > b": 1.0 if x > y else 0.0,
        "a == b": 1.0 if x == y else 0.0,
        "a == a": 1.0,
    }
    for case, want in expected.items():
        assert got[case] == want, (
            f"{case} at x={x!r}, y={y!r}: expected {want!r}, got {got[case]!r}"
        )


def probe_unary_values(x, p):
    """Values of the one-argument functions (log and inv at the positive p)."""
    from minitorch import scalar_functions as sf
    from minitorch.scalar import Scalar

    a, q = Scalar(x), Scalar(p)
    return {
        "Neg": sf.Neg.apply(a).data,
        "ReLU": sf.ReLU.apply(a).data,
        "Sigmoid": sf.Sigmoid.apply(a).data,
        "Exp": sf.Exp.apply(a).data,
        "Log": sf.Log.apply(q).data,
        "Inv": sf.Inv.apply(q).data,
        "-a": (-a).data,
        "a.relu()": a.relu().data,
        "a.sigmoid()": a.sigmoid().data,
        "a.exp()": a.exp().data,
        "q.log()": q.log().data,
        "1 / q": (1.0 / q).data,
        "a / q": (a / q).data,
    }


@given(small_floats, small_positive_floats)
def test_unary_function_values(student, x, p):
    """Neg, ReLU, Sigmoid, Exp, Log and Inv compute what their operators compute."""
    got = student.run(probe_unary_values, x, p)
    expected = {
        "Neg": -x,
        "ReLU": max(x, 0.0),
        "Sigmoid": sigmoid(x),
        "Exp": math.exp(x),
        "Log": math.log(p),
        "Inv": 1.0 / p,
        "-a": -x,
        "a.relu()": max(x, 0.0),
        "a.sigmoid()": sigmoid(x),
        "a.exp()": math.exp(x),
        "q.log()": math.log(p),
        "1 / q": 1.0 / p,
        "a / q": x / p,
    }
    for case, want in expected.items():
        assert_close(got[case], want, rel_tol=1e-9, abs_tol=1e-12)


def probe_mixed_with_numbers(x):
    """Arithmetic between a Scalar and plain numbers, on both sides."""
    from minitorch.scalar import Scalar

    a = Scalar(x)
    results = {
        "a + 2": a + 2,
        "2 + a": 2 + a,
        "a * 3.5": a * 3.5,
        "3.5 * a": 3.5 * a,
        "a - 1": a - 1.0,
        "1 - a": 1.0 - a,
        "a / 4": a / 4.0,
        "a < 0": a < 0.0,
        "a > 0": a > 0.0,
    }
    return {case: [type(r).__name__, r.data] for case, r in results.items()}


@given(small_floats)
def test_arithmetic_with_plain_numbers(student, x):
    """A Scalar combined with a float or int gives a Scalar with the right value."""
    got = student.run(probe_mixed_with_numbers, x)
    expected = {
        "a + 2": x + 2,
        "2 + a": 2 + x,
        "a * 3.5": x * 3.5,
        "3.5 * a": 3.5 * x,
        "a - 1": x - 1.0,
        "1 - a": 1.0 - x,
        "a / 4": x / 4.0,
        "a < 0": 1.0 if x < 0.0 else 0.0,
        "a > 0": 1.0 if x > 0.0 else 0.0,
    }
    for case, want in expected.items():
        type_name, value = got[case]
        assert type_name == "Scalar", f"{case} returned a {type_name}"
        assert_close(value, want, rel_tol=1e-12, abs_tol=1e-12)


# ---------------------------------------------------------------------------
# Derivatives of each scalar function, against central differences
# ---------------------------------------------------------------------------

#: name -> (the function on floats, its inputs' strategy, number of inputs).
#: LT and EQ are piecewise constant: their derivative is 0 everywhere.
FUNCTIONS = {
    "Add": (lambda a, b: a + b, small_floats, 2),
    "Mul": (lambda a, b: a * b, small_floats, 2),
    "LT": (None, small_floats, 2),
    "EQ": (None, small_floats, 2),
    "Neg": (lambda a: -a, small_floats, 1),
    "Inv": (lambda a: 1.0 / a, small_nonzero_floats, 1),
    "Log": (math.log, small_positive_floats, 1),
    "Exp": (math.exp, small_floats, 1),
    "Sigmoid": (sigmoid, small_floats, 1),
    "ReLU": (lambda a: max(a, 0.0), small_nonzero_floats, 1),
}


def probe_function_derivatives(name, xs, d):
    """Apply scalar_functions.<name> to leaves with values xs, backpropagate d."""
    from minitorch import scalar_functions
    from minitorch.scalar import Scalar

    inputs = [Scalar(x) for x in xs]
    out = getattr(scalar_functions, name).apply(*inputs)
    out.backward(d)
    return {"value": out.data, "derivatives": [s.derivative for s in inputs]}


@pytest.mark.parametrize("name", list(FUNCTIONS))
@given(data=st.data())
def test_function_derivative(student, name, data):
    """x.derivative after f(x).backward(d) is d * f'(x) (f' from central differences)."""
    fn, elements, arity = FUNCTIONS[name]
    xs = [data.draw(elements, label=f"x{i}") for i in range(arity)]
    d = data.draw(small_floats, label="d_output")
    got = student.run(probe_function_derivatives, name, xs, d)
    derivatives = got["derivatives"]
    assert isinstance(derivatives, list)
    assert len(derivatives) == arity
    for i, actual in enumerate(derivatives):
        assert actual is not None, f"{name}: input {i} got no derivative (still None)"
        if fn is None:
            assert actual == 0.0, f"{name} is piecewise constant: its derivative is 0"
        else:
            want = d * numeric_derivative(fn, xs, i)
            assert_close(actual, want, rel_tol=1e-4, abs_tol=1e-4 * (1.0 + abs(d)))


def probe_operator_derivatives(x, y):
    """Derivatives of x - y, x / y, y > x and the unary methods, by backpropagation."""
    from minitorch.scalar import Scalar

    def grads(f, *values):
        leaves = [Scalar(v) for v in values]
        f(*leaves).backward()
        return [leaf.derivative for leaf in leaves]

    return {
        "x - y": grads(lambda a, b: a - b, x, y),
        "x / y": grads(lambda a, b: a / b, x, y),
        "y > x": grads(lambda a, b: b > a, x, y),
        "3 - x": grads(lambda a: 3.0 - a, x),
        "3 / y": grads(lambda b: 3.0 / b, y),
        "-x": grads(lambda a: -a, x),
    }


@given(small_floats, small_nonzero_floats)
def test_operator_derivatives(student, x, y):
    """-, / and > are built from Add, Neg, Mul, Inv and LT: their derivatives follow."""
    got = student.run(probe_operator_derivatives, x, y)
    expected = {
        "x - y": [1.0, -1.0],
        "x / y": [1.0 / y, -x / (y * y)],
        "y > x": [0.0, 0.0],
        "3 - x": [-1.0],
        "3 / y": [-3.0 / (y * y)],
        "-x": [-1.0],
    }
    for case, want in expected.items():
        assert len(got[case]) == len(want), case
        for actual, w in zip(got[case], want, strict=True):
            assert actual is not None, f"{case}: a leaf got no derivative"
            assert_close(actual, w, rel_tol=1e-9, abs_tol=1e-12)


# ---------------------------------------------------------------------------
# chain_rule
# ---------------------------------------------------------------------------


def probe_chain_rule(case, x, y, d):
    """[name, derivative] for each pair z.chain_rule(d) returns, for a few z."""
    from minitorch import scalar_functions as sf
    from minitorch.scalar import Scalar

    a, b = Scalar(x, name="x"), Scalar(y, name="y")
    z = {
        "x * y": lambda: sf.Mul.apply(a, b),
        "x + y": lambda: sf.Add.apply(a, b),
        "x * 4.0": lambda: sf.Mul.apply(a, 4.0),
        "4.0 * x": lambda: sf.Mul.apply(4.0, a),
        "x * constant": lambda: sf.Mul.apply(a, Scalar(4.0, None, name="c")),
        "x * x": lambda: sf.Mul.apply(a, a),
        "exp(x)": lambda: sf.Exp.apply(a),
    }[case]()
    return [[var.name, deriv] for var, deriv in z.chain_rule(d)]


@given(moderate_floats, moderate_floats, moderate_floats)
def test_chain_rule_gives_one_pair_per_input(student, x, y, d):
    """z.chain_rule(d) pairs each input of z's function with d * (partial derivative)."""
    cases = {
        "x * y": [["x", y * d], ["y", x * d]],
        "x + y": [["x", d], ["y", d]],
        "exp(x)": [["x", math.exp(x) * d]],
    }
    for case, want in cases.items():
        got = student.run(probe_chain_rule, case, x, y, d)
        assert [name for name, _ in got] == [name for name, _ in want], (
            f"{case}: chain_rule should return one pair per input, in input order"
        )
        for (_, actual), (_, w) in zip(got, want, strict=True):
            assert_close(actual, w, rel_tol=1e-9, abs_tol=1e-12)


@given(moderate_floats, moderate_floats)
def test_chain_rule_leaves_out_constants(student, x, d):
    """Plain numbers and Scalar(v, None) are constants: chain_rule gives them no pair."""
    for case in ("x * 4.0", "4.0 * x", "x * constant"):
        got = student.run(probe_chain_rule, case, x, 1.0, d)
        assert [name for name, _ in got] == ["x"], f"{case}: expected a pair for x only"
        assert_close(got[0][1], 4.0 * d, rel_tol=1e-12, abs_tol=1e-12)


def test_chain_rule_with_the_same_input_twice(student):
    """x * x has two inputs that are both x: chain_rule returns a pair for each use."""
    got = student.run(probe_chain_rule, "x * x", 3.0, 0.0, 2.0)
    assert got == [["x", 6.0], ["x", 6.0]]


# ---------------------------------------------------------------------------
# topological_sort
# ---------------------------------------------------------------------------


def probe_sort_named_graph():
    """topological_sort of a fixed graph with shared nodes and a constant, as names.

    a = x * y;  b = a + x;  c = a * b;  out = sigmoid(c) * 2.0
    """
    from minitorch.autodiff import topological_sort
    from minitorch.scalar import Scalar

    x, y = Scalar(0.5), Scalar(-1.5)
    a = x * y
    b = a + x
    c = a * b
    s = c.sigmoid()
    out = s * 2.0
    names = {v.unique_id: name for v, name in [(x, "x"), (y, "y"), (a, "a"), (b, "b")]}
    names.update({c.unique_id: "c", s.unique_id: "s", out.unique_id: "out"})
    return [names.get(v.unique_id, "a constant or unknown variable") for v in topological_sort(out)]


#: (variable, the variables it was computed from) for the graph of probe_sort_named_graph.
NAMED_GRAPH = {
    "out": ["s"],
    "s": ["c"],
    "c": ["a", "b"],
    "b": ["a", "x"],
    "a": ["x", "y"],
    "x": [],
    "y": [],
}


def check_order(order, parents, output, constants=()):
    """The topological_sort properties, for an order of node labels.

    The nodes in `constants` are constants: they are not sorted, and neither
    are the nodes reached only through them.
    """
    assert order, "topological_sort returned nothing"
    assert order[0] == output, f"the output must come first, got {order[0]!r} first"
    duplicates = sorted({n for n in order if order.count(n) > 1}, key=str)
    assert not duplicates, f"every variable must appear exactly once; repeated: {duplicates}"
    reachable, todo = set(), [output]
    while todo:
        node = todo.pop()
        if node not in reachable and node not in constants:
            reachable.add(node)
            todo.extend(parents[node])
    assert set(order) == reachable, (
        f"expected exactly the variables {sorted(reachable, key=str)} (no constants), got {order}"
    )
    position = {node: i for i, node in enumerate(order)}
    for node in order:
        for parent in parents[node]:
            if parent not in constants:
                assert position[node] < position[parent], (
                    f"{node!r} was computed from {parent!r}, so it must come before it: got {order}"
                )


def test_topological_sort_on_a_graph_with_shared_nodes(student):
    """Output first, each variable once, each before its parents, the constant 2.0 left out."""
    order = student.run(probe_sort_named_graph)
    check_order(order, NAMED_GRAPH, "out")


#: Operations of the random graphs: name -> number of graph nodes it reads.
GRAPH_OPS = {"add": 2, "mul": 2, "lt": 2, "neg": 1, "sigmoid": 1, "add_const": 1, "mul_const": 1}


@st.composite
def graphs(draw, max_leaves=3, max_ops=8, ops=None, constants=None, recent=4):
    """(number of leaves, [[op, i, j], ...]): node n_leaves + k is op k applied to nodes i, j.

    `ops`: the operations' names (GRAPH_OPS by default); with `constants`, each
    operation also gets one of them: [op, i, j, c]. Operands are drawn among the
    `recent` latest nodes or any node."""
    n_leaves = draw(st.integers(min_value=1, max_value=max_leaves))
    n_ops = draw(st.integers(min_value=1, max_value=max_ops))
    names = sorted(GRAPH_OPS if ops is None else ops)
    drawn = []
    for k in range(n_ops):
        n = n_leaves + k
        op = draw(st.sampled_from(names))
        # Prefer recent nodes, so that graphs are deep as well as wide.
        i = draw(st.integers(min_value=max(0, n - recent), max_value=n - 1) | st.integers(0, n - 1))
        j = draw(st.integers(min_value=0, max_value=n - 1))
        drawn.append([op, i, j] + ([draw(st.sampled_from(constants))] if constants else []))
    return n_leaves, drawn


def graph_parents(n_leaves, ops):
    """node -> the nodes it reads, for a graph drawn by `graphs`."""
    parents = {i: [] for i in range(n_leaves)}
    for k, (op, i, j) in enumerate(ops):
        parents[n_leaves + k] = [i, j][: GRAPH_OPS[op]]
    return parents


def probe_sort_graph(n_leaves, ops):
    """Build the graph described by (n_leaves, ops); topological_sort of its last node.

    Returns the position of each sorted variable in the node list, or -1 for a
    variable that is not one of the nodes (a constant).
    """
    from minitorch import scalar_functions as sf
    from minitorch.autodiff import topological_sort
    from minitorch.scalar import Scalar

    build = {
        "add": lambda a, b: sf.Add.apply(a, b),
        "mul": lambda a, b: sf.Mul.apply(a, b),
        "lt": lambda a, b: sf.LT.apply(a, b),
        "neg": lambda a, b: sf.Neg.apply(a),
        "sigmoid": lambda a, b: sf.Sigmoid.apply(a),
        "add_const": lambda a, b: sf.Add.apply(a, 1.0),
        "mul_const": lambda a, b: sf.Mul.apply(2.0, a),
    }
    nodes = [Scalar(0.25 * (i + 1)) for i in range(n_leaves)]
    for op, i, j in ops:
        nodes.append(build[op](nodes[i], nodes[j]))
    position = {node.unique_id: k for k, node in enumerate(nodes)}
    return [position.get(v.unique_id, -1) for v in topological_sort(nodes[-1])]


# One error, not a group of them, when a graph reaches several unfinished functions.
@settings(report_multiple_bugs=False)
@given(graphs())
def test_topological_sort_property_on_random_graphs(student, graph):
    """On random graphs (shared nodes, constants): output first, each once, before its parents."""
    n_leaves, ops = graph
    order = student.run(probe_sort_graph, n_leaves, ops)
    assert -1 not in order, "topological_sort returned a constant"
    check_order(order, graph_parents(n_leaves, ops), n_leaves + len(ops) - 1)


def probe_sort_leaf():
    """topological_sort of a leaf: just the leaf."""
    from minitorch.autodiff import topological_sort
    from minitorch.scalar import Scalar

    x = Scalar(1.0)
    return [v.unique_id == x.unique_id for v in topological_sort(x)]


def test_topological_sort_of_a_leaf(student):
    """A leaf's graph is the leaf alone."""
    assert student.run(probe_sort_leaf) == [True]


# ---------------------------------------------------------------------------
# backpropagate and Scalar.backward
# ---------------------------------------------------------------------------


def probe_x_times_x_plus_x(x):
    """d(x * x + x)/dx by backpropagation."""
    from minitorch.scalar import Scalar

    a = Scalar(x)
    (a * a + a).backward()
    return a.derivative


@given(small_floats)
def test_derivatives_of_a_shared_leaf_are_summed(student, x):
    """x is used three times in x * x + x: dx = x + x + 1 = 2x + 1."""
    assert_close(student.run(probe_x_times_x_plus_x, x), 2.0 * x + 1.0, rel_tol=1e-12)


def probe_shared_intermediate(x, y):
    """a = x * y; out = a * a + a; returns the derivatives of x, y, a and out."""
    from minitorch.scalar import Scalar

    a_x, a_y = Scalar(x), Scalar(y)
    a = a_x * a_y
    out = a * a + a
    out.backward()
    return {"x": a_x.derivative, "y": a_y.derivative, "a": a.derivative, "out": out.derivative}


@given(moderate_floats, moderate_floats)
def test_derivatives_through_a_shared_intermediate(student, x, y):
    """out = a^2 + a with a = xy: dx = (2a + 1) y and dy = (2a + 1) x."""
    got = student.run(probe_shared_intermediate, x, y)
    a = x * y
    assert_close(got["x"], (2.0 * a + 1.0) * y, rel_tol=1e-9, abs_tol=1e-9)
    assert_close(got["y"], (2.0 * a + 1.0) * x, rel_tol=1e-9, abs_tol=1e-9)
    assert got["a"] is None, "only leaves store derivatives: `a` was computed by Mul"
    assert got["out"] is None, "only leaves store derivatives: `out` was computed by Add"


def probe_backward_d_output(x, d):
    """Derivatives of sigmoid(x) * x via backward(), backward(d) and backpropagate(out, d)."""
    from minitorch.autodiff import backpropagate
    from minitorch.scalar import Scalar

    results = {}
    for how in ("backward()", "backward(d)", "backpropagate(out, d)"):
        leaf = Scalar(x)
        out = leaf.sigmoid() * leaf
        if how == "backward()":
            out.backward()
        elif how == "backward(d)":
            out.backward(d)
        else:
            backpropagate(out, d)
        results[how] = leaf.derivative
    return results


@given(moderate_floats, moderate_floats)
def test_backward_d_output_defaults_to_one(student, x, d):
    """backward() starts from 1.0; backward(d) and backpropagate(out, d) scale by d."""
    got = student.run(probe_backward_d_output, x, d)
    s = sigmoid(x)
    derivative = s + x * s * (1.0 - s)
    assert_close(got["backward()"], derivative, rel_tol=1e-9, abs_tol=1e-12)
    assert_close(got["backward(d)"], d * derivative, rel_tol=1e-9, abs_tol=1e-12)
    assert_close(got["backpropagate(out, d)"], d * derivative, rel_tol=1e-9, abs_tol=1e-12)


def probe_constants_have_no_derivative(x):
    """x * c + 2 with the constant c = Scalar(3.0, None): derivatives of x and c."""
    from minitorch.scalar import Scalar

    leaf, c = Scalar(x), Scalar(3.0, None)
    (leaf * c + 2.0).backward()
    return {"x": leaf.derivative, "c": c.derivative}


@given(small_floats)
def test_constants_get_no_derivative(student, x):
    """Backpropagation skips constants: d(3x + 2)/dx = 3, and the constant stays None."""
    assert student.run(probe_constants_have_no_derivative, x) == {"x": 3.0, "c": None}


# ---------------------------------------------------------------------------
# Whole expressions, against central differences
# ---------------------------------------------------------------------------

#: Expressions of two variables, on floats (the probe builds the same ones on Scalars).
EXPRESSIONS = {
    "x * y + x / y": lambda x, y: x * y + x / y,
    "sigmoid(x * y) * x - y": lambda x, y: sigmoid(x * y) * x - y,
    "log(x * x + 1) * exp(y / 10)": lambda x, y: math.log(x * x + 1.0) * math.exp(y / 10.0),
    "relu(x) * relu(y) + (x < y) * x": lambda x, y: (
        max(x, 0.0) * max(y, 0.0) + (1.0 if x < y else 0.0) * x
    ),
    "1 / (1 + x * x) - (x - y) * (x - y)": lambda x, y: 1.0 / (1.0 + x * x) - (x - y) * (x - y),
}


def probe_expression_gradient(name, x, y):
    """The value of expression `name` at (x, y) and its derivatives, by backpropagation."""
    from minitorch.scalar import Scalar

    expressions = {
        "x * y + x / y": lambda a, b: a * b + a / b,
        "sigmoid(x * y) * x - y": lambda a, b: (a * b).sigmoid() * a - b,
        "log(x * x + 1) * exp(y / 10)": lambda a, b: (a * a + 1.0).log() * (b / 10.0).exp(),
        "relu(x) * relu(y) + (x < y) * x": lambda a, b: a.relu() * b.relu() + (a < b) * a,
        "1 / (1 + x * x) - (x - y) * (x - y)": lambda a, b: 1.0 / (1.0 + a * a) - (a - b) * (a - b),
    }
    leaves = [Scalar(x), Scalar(y)]
    out = expressions[name](*leaves)
    out.backward()
    return {"value": out.data, "derivatives": [leaf.derivative for leaf in leaves]}


@pytest.mark.parametrize("name", list(EXPRESSIONS))
@given(x=small_nonzero_floats.map(lambda v: v / 10.0), y=small_nonzero_floats.map(lambda v: v / 10))
def test_expression_gradients_match_central_differences(student, name, x, y):
    """The gradient of a whole expression equals its central-difference estimate."""
    assume(abs(x - y) > 1e-3)  # (x < y) jumps at x == y
    fn = EXPRESSIONS[name]
    got = student.run(probe_expression_gradient, name, x, y)
    assert_close(got["value"], fn(x, y), rel_tol=1e-9, abs_tol=1e-9)
    for i, actual in enumerate(got["derivatives"]):
        assert actual is not None, f"{name}: leaf {'xy'[i]} got no derivative"
        want = numeric_derivative(fn, [x, y], i)
        assert_close(actual, want, rel_tol=1e-4, abs_tol=1e-4)


def probe_derivative_check(x, y):
    """derivative_check on correct functions, and on a function with a wrong backward."""
    from minitorch.scalar import Scalar, derivative_check
    from minitorch.scalar_functions import ScalarFunction

    class WrongSquare(ScalarFunction):
        """f(a) = a^2 with the wrong derivative a (instead of 2a)."""

        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, d_output):
            (a,) = ctx.saved_values
            return a * d_output

    results = {}
    for case, f in [
        ("x * y", lambda a, b: a * b),
        ("sigmoid(x) + y / x", lambda a, b: a.sigmoid() + b / a),
        ("wrong square", lambda a, b: WrongSquare.apply(a) + b),
    ]:
        try:
            derivative_check(f, Scalar(x), Scalar(y))
            results[case] = "passed"
        except AssertionError:
            results[case] = "AssertionError"
    return results


@given(small_nonzero_floats, moderate_floats)
def test_derivative_check(student, x, y):
    """derivative_check passes on correct derivatives and catches a wrong backward."""
    got = student.run(probe_derivative_check, x, y)
    assert got["x * y"] == "passed"
    assert got["sigmoid(x) + y / x"] == "passed"
    assert got["wrong square"] == "AssertionError", "x^2 with derivative x must be caught"
