"""Hidden tests of task hw1.2 (never shipped to students; students see names and outcomes).

Stronger than the public tests: deeper graphs (diamonds, variables used three
or more times, long chains, wide fan-outs, constants inside the graph), random
graphs and random expressions built from a seed, the derivatives the
docstrings specify at edge points (ReLU at 0, the tails of the sigmoid, log
near 0, small and large denominators, exp near under- and overflow, LT and EQ
even where their inputs are equal), repeated `backward` calls, and a
comparison of the student's values and derivatives with the reference
solution's.

Conventions:
- every test calls `student` before `reference` (`both` does it in that order),
  so a student's exception is the test's error, not a reference mismatch;
- tolerances are explicit; results that any reasonable implementation computes
  with the same float operations are compared tightly (rel_tol 1e-12), sums
  over many paths (whose order may differ) more loosely (rel_tol 1e-9);
- Hypothesis settings are fixed here (deterministic, no example database), so
  the hidden tests do not depend on the public profile or on `CI`.
"""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import assert_close, seeds
from test_autodiff import check_order as public_check_order
from test_autodiff import graphs as public_graphs

pytestmark = pytest.mark.task("hw1.2")

# report_multiple_bugs=False: an unfinished function fails every example the same
# way, wherever in the graph it is first reached; report one error, not a group.
hidden_settings = settings(
    max_examples=100, derandomize=True, deadline=None, database=None, report_multiple_bugs=False
)


def both(student, reference, probe, *args):
    """(student's value, reference's value) of a probe; the student is called first."""
    return student.run(probe, *args), reference.run(probe, *args)


def assert_all_close(actual, expected, *, rel_tol, abs_tol, what):
    """Element-wise math.isclose of two equally long lists of numbers (None allowed)."""
    assert isinstance(actual, list), f"{what}: expected a list, got {type(actual).__name__}"
    assert len(actual) == len(expected), f"{what}: {len(actual)} values for {len(expected)}"
    for k, (value, want) in enumerate(zip(actual, expected, strict=True)):
        if want is None:
            assert value is None, f"{what}[{k}]: expected None (no derivative), got {value!r}"
            continue
        assert isinstance(value, (int, float)), (
            f"{what}[{k}]: expected a number, got {type(value).__name__} ({value!r})"
        )
        assert math.isclose(value, want, rel_tol=rel_tol, abs_tol=abs_tol), (
            f"{what}[{k}]: expected {want!r}, got {value!r}"
        )


def sigmoid_derivative(x):
    """sigmoid'(x) = e^{-|x|} / (1 + e^{-|x|})^2, accurate in both tails."""
    z = math.exp(-abs(x))
    return z / ((1.0 + z) * (1.0 + z))


# ---------------------------------------------------------------------------
# Probes (run where the student's or the reference's code lives)
# ---------------------------------------------------------------------------


def probe_unary_derivatives(name, xs, d):
    """[value, derivative] of scalar_functions.<name> at each x, backpropagating d."""
    from minitorch import scalar_functions
    from minitorch.scalar import Scalar

    fn = getattr(scalar_functions, name)
    out = []
    for x in xs:
        leaf = Scalar(x)
        result = fn.apply(leaf)
        result.backward(d)
        out.append([result.data, leaf.derivative])
    return out


def probe_division(pairs):
    """[value, dx, dy] of x / y for each pair."""
    from minitorch.scalar import Scalar

    out = []
    for x, y in pairs:
        a, b = Scalar(x), Scalar(y)
        q = a / b
        q.backward()
        out.append([q.data, a.derivative, b.derivative])
    return out


def probe_comparisons(x, y, d):
    """Values and derivatives of LT and EQ, alone, on equal inputs and inside a graph."""
    from minitorch import scalar_functions as sf
    from minitorch.scalar import Scalar

    results = {}
    for case in ("LT(x, y)", "EQ(x, y)", "LT(x, x)", "EQ(x, x)", "mask"):
        a, b = Scalar(x), Scalar(y)
        if case == "LT(x, y)":
            out = sf.LT.apply(a, b)
        elif case == "EQ(x, y)":
            out = sf.EQ.apply(a, b)
        elif case == "LT(x, x)":
            out = sf.LT.apply(a, a)
        elif case == "EQ(x, x)":
            out = sf.EQ.apply(a, a)
        else:
            out = (a < b) * a + (a == b) * b + (a > b)
        out.backward(d)
        results[case] = [out.data, a.derivative, b.derivative]
    return results


def probe_same_input_twice(x, d):
    """Functions applied to the same leaf twice: chain_rule pairs and derivatives."""
    from minitorch import scalar_functions as sf
    from minitorch.scalar import Scalar

    results = {}
    for name in ("Add", "Mul"):
        leaf = Scalar(x, name="x")
        out = getattr(sf, name).apply(leaf, leaf)
        pairs = [[v.name, deriv] for v, deriv in out.chain_rule(d)]
        out.backward(d)
        results[name] = {"pairs": pairs, "derivative": leaf.derivative}
    return results


def probe_named_graphs(x, y):
    """Leaf derivatives (and a few non-leaf ones, which must stay None) of fixed graphs."""
    from minitorch.scalar import Scalar

    def run(build):
        leaves = [Scalar(x), Scalar(y)]
        out, inner = build(*leaves)
        out.backward()
        return {
            "value": out.data,
            "leaves": [leaf.derivative for leaf in leaves],
            "inner": [v.derivative for v in [out, *inner]],
        }

    def diamond(a, b):
        s = a.sigmoid()
        left, right = s * s, s.exp()
        return left * right + s, [s, left, right]

    def double_diamond(a, b):
        p = a * b
        q, r = p + a, p * b
        t = q * r
        u, v = t.relu(), t * 0.5
        return u + v - p, [p, q, r, t, u, v]

    def triple_use(a, b):
        p = a * b
        return p * p * p + p - p / (1.0 + b * b), [p]

    def five_uses(a, b):
        return a * a * a + a * b + a - a.sigmoid(), []

    def with_constants(a, b):
        c = Scalar(2.0, None) * 3.0 + 1.0  # a constant: every input is one
        p = a * c + b / c
        return p * p, [c, p]

    return {
        name: run(build)
        for name, build in [
            ("diamond", diamond),
            ("double diamond", double_diamond),
            ("triple use", triple_use),
            ("five uses", five_uses),
            ("with constants", with_constants),
        ]
    }


def probe_fan_out(x, n):
    """x feeds n products x * k (k = 1..n), summed by a chain of additions."""
    from minitorch.scalar import Scalar

    leaf = Scalar(x)
    total = leaf * 1.0
    for k in range(2, n + 1):
        total = total + leaf * float(k)
    total.backward()
    return leaf.derivative


def probe_long_chain(x, y, n):
    """A chain of n steps, each using the previous step and both leaves."""
    from minitorch.scalar import Scalar

    a, b = Scalar(x), Scalar(y)
    s = a
    for k in range(n):
        if k % 3 == 0:
            s = (s * 0.9 + b).sigmoid()
        elif k % 3 == 1:
            s = s * (1.0 + 0.001 * k) - a * 0.01
        else:
            s = s + (s * b).relu() * 0.1
    s.backward()
    return {"value": s.data, "derivatives": [a.derivative, b.derivative]}


def probe_repeated_backward(x, y):
    """Derivatives after two backward calls, after backward from two outputs, and from an
    intermediate variable."""
    from minitorch.scalar import Scalar

    a, b = Scalar(x), Scalar(y)
    out = a * b + a
    out.backward()
    first = [a.derivative, b.derivative]
    out.backward()
    twice = [a.derivative, b.derivative]

    c, e = Scalar(x), Scalar(y)
    (c * e).backward()
    (c.sigmoid() + e).backward(2.0)
    two_outputs = [c.derivative, e.derivative]

    f, g = Scalar(x), Scalar(y)
    inner = f * g
    outer = inner.sigmoid() + f
    inner.backward()
    from_inner = [f.derivative, g.derivative, outer.derivative]
    return {"first": first, "twice": twice, "two outputs": two_outputs, "from inner": from_inner}


def probe_sort_graph(n_leaves, ops):
    """Build a graph from (n_leaves, [[op, i, j, c], ...]) and sort its last node.

    Op "const" appends the constant Scalar(c, None); any op whose inputs are all
    constants gives a constant. Returns the node positions of the sorted
    variables (-1 for a variable that is not a node), the positions of the
    constant nodes, and which nodes are leaves.
    """
    from minitorch import scalar_functions as sf
    from minitorch.autodiff import topological_sort
    from minitorch.scalar import Scalar

    build = {
        "add": lambda a, b, c: sf.Add.apply(a, b),
        "mul": lambda a, b, c: sf.Mul.apply(a, b),
        "eq": lambda a, b, c: sf.EQ.apply(a, b),
        "neg": lambda a, b, c: sf.Neg.apply(a),
        "sigmoid": lambda a, b, c: sf.Sigmoid.apply(a),
        "add_const": lambda a, b, c: sf.Add.apply(c, a),
        "mul_const": lambda a, b, c: sf.Mul.apply(a, c),
        "const": lambda a, b, c: Scalar(c, None),
    }
    nodes = [Scalar(0.1 * (i + 1)) for i in range(n_leaves)]
    for op, i, j, c in ops:
        nodes.append(build[op](nodes[i], nodes[j], c))
    position = {node.unique_id: k for k, node in enumerate(nodes)}
    return {
        "order": [position.get(v.unique_id, -1) for v in topological_sort(nodes[-1])],
        "constants": [k for k, node in enumerate(nodes) if node.is_constant()],
    }


def probe_sort_chain(n, width):
    """A chain of n additions, each also using one of `width` shared leaves.

    Returns the sorted variables as ["leaf", k] or ["step", k] labels.
    """
    from minitorch.autodiff import topological_sort
    from minitorch.scalar import Scalar

    leaves = [Scalar(float(k)) for k in range(width)]
    labels = {leaf.unique_id: ["leaf", k] for k, leaf in enumerate(leaves)}
    s = leaves[0]
    for k in range(n):
        s = s + leaves[k % width]
        labels[s.unique_id] = ["step", k]
    return [labels.get(v.unique_id, ["unknown", -1]) for v in topological_sort(s)]


def probe_random_expression(seed):
    """A random expression graph built from `seed`: its value, leaf derivatives, and
    central differences of its value (h = 1e-6), all with the code under test."""
    import random

    from minitorch.scalar import Scalar

    rng = random.Random(seed)
    n_leaves = rng.randint(1, 4)
    point = [rng.uniform(-2.0, 2.0) for _ in range(n_leaves)]
    ops = [
        "add",
        "sub",
        "mul_sigmoid",
        "mul_const",
        "const_minus",
        "div",
        "const_div",
        "log",
        "exp",
        "relu",
        "neg",
        "lt_mask",
        "eq_mask",
        "gt_mask",
    ]
    plan = []
    for k in range(rng.randint(1, 30)):
        n = n_leaves + k
        i = rng.randrange(max(0, n - 3), n) if rng.random() < 0.7 else rng.randrange(n)
        plan.append([rng.choice(ops), i, rng.randrange(n), rng.uniform(-2.0, 2.0)])

    def apply(op, a, b, c):
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul_sigmoid":
            return a * b.sigmoid()
        if op == "mul_const":
            return a * c
        if op == "const_minus":
            return c - a
        if op == "div":
            return a / (1.0 + b * b)
        if op == "const_div":
            return c / (2.0 + a.sigmoid())
        if op == "log":
            return (a * a + 1.0).log()
        if op == "exp":
            return a.sigmoid().exp()
        if op == "relu":
            return a.relu()
        if op == "neg":
            return -a
        if op == "lt_mask":
            return (a < b) * a
        if op == "eq_mask":
            return (a == b) * b + a
        return (a > c) * b

    def build(values):
        leaves = [Scalar(v) for v in values]
        nodes = list(leaves)
        for op, i, j, c in plan:
            nodes.append(apply(op, nodes[i], nodes[j], c))
        return leaves, nodes[-1]

    leaves, out = build(point)
    out.backward()
    h = 1e-6
    differences = []
    for k in range(n_leaves):
        upper, lower = list(point), list(point)
        upper[k] += h
        lower[k] -= h
        differences.append((build(upper)[1].data - build(lower)[1].data) / (2.0 * h))
    return {
        "value": out.data,
        "derivatives": [leaf.derivative for leaf in leaves],
        "central differences": differences,
    }


def probe_central_difference(point, arg, epsilon):
    """central_difference of a fixed polynomial of three arguments."""
    from minitorch.autodiff import central_difference

    def f(a, b, c):
        return a * b * b + c * c * c - 2.0 * a * c

    return central_difference(f, *point, arg=arg, epsilon=epsilon)


# ---------------------------------------------------------------------------
# Derivatives at edge points
# ---------------------------------------------------------------------------


def test_relu_derivative_at_zero_and_tiny_inputs(student, reference):
    """ReLU'(x) is 1 for x > 0 and 0 otherwise, including at 0.0 and -0.0."""
    xs = [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1e300, -1e300]
    for d in (1.0, -2.5):
        got, want = both(student, reference, probe_unary_derivatives, "ReLU", xs, d)
        expected = [[max(x, 0.0), d if x > 0.0 else 0.0] for x in xs]
        assert want == expected
        for x, (value, derivative), (_, w) in zip(xs, got, expected, strict=True):
            assert value == max(x, 0.0), f"relu({x!r}) = {value!r}"
            assert derivative == w, f"relu'({x!r}) * {d}: expected {w!r}, got {derivative!r}"


@pytest.mark.parametrize("d", [1.0, -3.0])
def test_sigmoid_derivative_in_the_tails(student, reference, d):
    """sigmoid'(x) is tiny but not 0 for x = -40; nothing overflows at |x| = 1000."""
    xs = [-1000.0, -745.0, -700.0, -100.0, -40.0, -35.0, -31.0, -30.5, -20.0, -1.0, 0.0, 1.0]
    xs += [20.0, 30.5, 40.0, 100.0, 1000.0]
    got, want = both(student, reference, probe_unary_derivatives, "Sigmoid", xs, d)
    for x, (value, derivative), (ref_value, ref_derivative) in zip(xs, got, want, strict=True):
        assert math.isclose(value, ref_value, rel_tol=1e-12, abs_tol=1e-300), (
            f"sigmoid({x!r}): expected {ref_value!r}, got {value!r}"
        )
        exact = d * sigmoid_derivative(x)
        # Accept the reference's value (sigmoid * (1 - sigmoid), which rounds to 0
        # for x > 37) or the exact one.
        assert any(
            math.isclose(derivative, w, rel_tol=1e-9, abs_tol=1e-300)
            for w in (exact, ref_derivative)
        ), f"sigmoid'({x!r}) * {d}: expected {exact!r}, got {derivative!r}"


def test_log_derivative_near_zero(student, reference):
    """log'(x) = 1 / x exactly, also where it is huge (no epsilon added to x)."""
    xs = [1e-300, 1e-200, 1e-12, 1e-8, 1e-6, 1e-4, 0.01, 1.0, 1e10, 1e300]
    for d in (1.0, 0.5, -7.0):
        got, want = both(student, reference, probe_unary_derivatives, "Log", xs, d)
        assert_all_close(
            [v for v, _ in got], [math.log(x) for x in xs], rel_tol=1e-12, abs_tol=0.0, what="log"
        )
        expected = [d / x for x in xs]
        assert_all_close([w for _, w in want], expected, rel_tol=1e-12, abs_tol=0.0, what="ref")
        assert_all_close(
            [g for _, g in got], expected, rel_tol=1e-12, abs_tol=0.0, what=f"log' * {d} at {xs}"
        )


def test_inv_and_division_with_small_and_large_denominators(student, reference):
    """inv'(x) = -1 / x^2; d(x / y) = (1 / y, -x / y^2), for y from 1e-150 to 1e150."""
    xs = [1e-150, -1e-150, 1e-8, -1e-8, 0.001, -3.0, 1e8, 1e150, -1e150]
    got, want = both(student, reference, probe_unary_derivatives, "Inv", xs, 2.0)
    expected = [[1.0 / x, -2.0 / (x * x)] for x in xs]
    assert_all_close(
        [v for v, _ in got], [v for v, _ in expected], rel_tol=1e-12, abs_tol=0.0, what="inv"
    )
    assert_all_close(
        [g for _, g in got], [g for _, g in expected], rel_tol=1e-12, abs_tol=0.0, what="inv' * 2"
    )
    pairs = [[1.0, 1e-8], [-3.0, 1e-8], [2.0, -1e-100], [5.0, 1e100], [0.0, 3.0], [1e-100, 1e-100]]
    got, want = both(student, reference, probe_division, pairs)
    for (x, y), row, ref_row in zip(pairs, got, want, strict=True):
        exact = [x / y, 1.0 / y, -x / (y * y)]
        assert_all_close(ref_row, exact, rel_tol=1e-12, abs_tol=0.0, what="reference")
        assert_all_close(row, exact, rel_tol=1e-12, abs_tol=0.0, what=f"x / y at {x, y}")


def test_exp_derivative_near_underflow_and_overflow(student, reference):
    """exp'(x) = e^x, from e^{-745} (the smallest subnormal) to e^{709}."""
    xs = [-745.0, -700.0, -50.0, 0.0, 1.0, 50.0, 700.0, 709.0]
    for d in (1.0, -0.25):
        got, want = both(student, reference, probe_unary_derivatives, "Exp", xs, d)
        expected = [[math.exp(x), d * math.exp(x)] for x in xs]
        for x, row, ref_row, exact in zip(xs, got, want, expected, strict=True):
            assert_all_close(ref_row, exact, rel_tol=1e-12, abs_tol=1e-320, what="reference")
            assert_all_close(row, exact, rel_tol=1e-12, abs_tol=1e-320, what=f"exp at {x!r}")


@hidden_settings
@given(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.floats(min_value=-10.0, max_value=10.0, allow_nan=False),
)
def test_lt_and_eq_have_zero_derivatives_even_at_equal_inputs(student, reference, x, y, d):
    """LT and EQ pass no derivative back, also when both inputs are the same variable."""
    got, want = both(student, reference, probe_comparisons, x, y, d)
    lt, eq = (1.0 if x < y else 0.0), (1.0 if x == y else 0.0)
    expected = {
        "LT(x, y)": [lt, 0.0, 0.0],
        "EQ(x, y)": [eq, 0.0, 0.0],
        "LT(x, x)": [0.0, 0.0, None],
        "EQ(x, x)": [1.0, 0.0, None],
    }
    for case, exact in expected.items():
        assert want[case] == exact
        assert got[case] == exact, f"{case} at x={x!r}, y={y!r}, d={d!r}"
    # (x < y) * x + (x == y) * y + (x > y): the masks are constant, so dx = d * (x < y).
    assert_all_close(got["mask"], want["mask"], rel_tol=1e-12, abs_tol=0.0, what="mask")
    assert got["mask"][1] == d * lt


# ---------------------------------------------------------------------------
# Graphs: shared variables, diamonds, fan-out, long chains, constants
# ---------------------------------------------------------------------------


@hidden_settings
@given(
    st.floats(min_value=-3.0, max_value=3.0, allow_nan=False),
    st.floats(min_value=-3.0, max_value=3.0, allow_nan=False),
)
def test_same_input_twice(student, reference, x, d):
    """Add(x, x) and Mul(x, x): chain_rule returns one pair per use; derivatives 2d and 2xd."""
    got, want = both(student, reference, probe_same_input_twice, x, d)
    assert got["Add"]["pairs"] == [["x", d], ["x", d]]
    assert got["Mul"]["pairs"] == [["x", x * d], ["x", x * d]]
    assert got["Add"]["derivative"] == d + d
    assert got["Mul"]["derivative"] == x * d + x * d
    assert got == want


@hidden_settings
@given(
    st.floats(min_value=-2.0, max_value=2.0, allow_nan=False),
    st.floats(min_value=-2.0, max_value=2.0, allow_nan=False),
)
def test_diamonds_and_variables_used_many_times(student, reference, x, y):
    """Diamonds, an intermediate used three times, a leaf used five times, constants."""
    got, want = both(student, reference, probe_named_graphs, x, y)
    for name, ref in want.items():
        mine = got[name]
        assert_close(mine["value"], ref["value"], rel_tol=1e-12, abs_tol=1e-12)
        assert_all_close(mine["leaves"], ref["leaves"], rel_tol=1e-9, abs_tol=1e-12, what=name)
        assert mine["inner"] == [None] * len(ref["inner"]), (
            f"{name}: only leaves store derivatives (intermediates and constants stay None)"
        )
    # Analytic checks of the reference (and so of the student).
    s = 1.0 / (1.0 + math.exp(-x))
    ds = s * (1.0 - s)
    diamond = (2.0 * s * math.exp(s) + s * s * math.exp(s) + 1.0) * ds
    assert_close(got["diamond"]["leaves"][0], diamond, rel_tol=1e-9, abs_tol=1e-12)
    p = x * y
    triple = 3.0 * p * p + 1.0 - 1.0 / (1.0 + y * y)
    assert_close(got["triple use"]["leaves"][0], triple * y, rel_tol=1e-9, abs_tol=1e-9)
    five = 3.0 * x * x + y + 1.0 - ds
    assert_close(got["five uses"]["leaves"][0], five, rel_tol=1e-9, abs_tol=1e-9)
    c = 7.0
    q = x * c + y / c
    assert_close(got["with constants"]["leaves"][0], 2.0 * q * c, rel_tol=1e-9, abs_tol=1e-9)
    assert_close(got["with constants"]["leaves"][1], 2.0 * q / c, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("n", [2, 3, 10, 50])
def test_fan_out_sums_every_use(student, reference, n):
    """sum(k * x for k = 1..n): dx = n (n + 1) / 2; overwriting keeps one term only."""
    got, want = both(student, reference, probe_fan_out, 1.5, n)
    assert want == n * (n + 1) / 2
    assert got == n * (n + 1) / 2


@pytest.mark.parametrize("n", [30, 100])
def test_long_chain(student, reference, n):
    """A chain of n steps that reuses both leaves at every step (deep graph, many paths)."""
    got, want = both(student, reference, probe_long_chain, 0.3, -0.7, n)
    assert_close(got["value"], want["value"], rel_tol=1e-12, abs_tol=1e-12)
    assert_all_close(
        got["derivatives"], want["derivatives"], rel_tol=1e-9, abs_tol=1e-12, what=f"chain of {n}"
    )


@hidden_settings
@given(
    st.floats(min_value=-3.0, max_value=3.0, allow_nan=False),
    st.floats(min_value=-3.0, max_value=3.0, allow_nan=False),
)
def test_backward_accumulates_and_starts_from_the_variable_it_is_called_on(
    student, reference, x, y
):
    """Two backward calls add up; backward from an intermediate reaches only its leaves."""
    got, want = both(student, reference, probe_repeated_backward, x, y)
    assert_all_close(got["first"], [y + 1.0, x], rel_tol=1e-12, abs_tol=1e-12, what="first")
    assert_all_close(
        got["twice"],
        [2.0 * (y + 1.0), 2.0 * x],
        rel_tol=1e-12,
        abs_tol=1e-12,
        what="after two backward calls",
    )
    s = 1.0 / (1.0 + math.exp(-x))
    assert_all_close(
        got["two outputs"],
        [y + 2.0 * s * (1.0 - s), x + 2.0],
        rel_tol=1e-9,
        abs_tol=1e-12,
        what="two outputs",
    )
    assert got["from inner"] == [y, x, None], "inner.backward(): d(f * g) only"
    for key in want:
        assert_all_close(got[key], want[key], rel_tol=1e-9, abs_tol=1e-12, what=key)


# ---------------------------------------------------------------------------
# topological_sort on larger graphs
# ---------------------------------------------------------------------------

#: Operations of the random graphs: name -> number of graph nodes it reads.
GRAPH_OPS = {
    "add": 2,
    "mul": 2,
    "eq": 2,
    "neg": 1,
    "sigmoid": 1,
    "add_const": 1,
    "mul_const": 1,
    "const": 0,
}


def graphs():
    """(n_leaves, [[op, i, j, c], ...]) with up to 5 leaves and 40 operations."""
    return public_graphs(5, 40, GRAPH_OPS, (0.5, -1.0, 0.125), recent=3)


def check_order(order, parents, constants, output):
    """topological_sort's properties (the public tests' `check_order`) for an order of
    node positions, in which -1 stands for a variable that is not a node."""
    assert -1 not in order, "topological_sort returned a variable that is not a node"
    public_check_order(order, parents, output, constants)


@hidden_settings
@given(graphs())
def test_topological_sort_on_random_graphs_with_constants(student, reference, graph):
    """Up to 45 nodes, shared nodes, constant nodes and constant subexpressions."""
    n_leaves, ops = graph
    parents, constants = {k: [] for k in range(n_leaves)}, set()
    for k, (op, i, j, _) in enumerate(ops):
        node = n_leaves + k
        parents[node] = [i, j][: GRAPH_OPS[op]]
        if all(parent in constants for parent in parents[node]):
            constants.add(node)  # "const", or an operation on constants only
    output = n_leaves + len(ops) - 1
    assume(output not in constants)
    got, want = both(student, reference, probe_sort_graph, n_leaves, ops)
    assert set(want["constants"]) == constants
    check_order(want["order"], parents, constants, output)
    check_order(got["order"], parents, constants, output)


@pytest.mark.parametrize(("n", "width"), [(1, 1), (5, 2), (40, 3), (200, 7)])
def test_topological_sort_on_a_chain_with_shared_leaves(student, reference, n, width):
    """Steps in reverse order; each leaf once, after every step that uses it."""
    got, want = both(student, reference, probe_sort_chain, n, width)
    for order in (want, got):
        assert ["unknown", -1] not in order, "topological_sort returned an unknown variable"
        steps = [k for kind, k in order if kind == "step"]
        leaves = [k for kind, k in order if kind == "leaf"]
        assert steps == list(reversed(range(n))), f"steps must come last-computed first: {steps}"
        assert sorted(leaves) == list(range(width)), f"each leaf exactly once: {leaves}"
        position = {tuple(label): p for p, label in enumerate(order)}
        for step in range(n):
            users = [("leaf", step % width)] + ([("leaf", 0)] if step == 0 else [])
            for leaf in users:
                assert position[("step", step)] < position[leaf], (
                    f"step {step} uses leaf {leaf[1]}, so it must come before it"
                )


# ---------------------------------------------------------------------------
# Random expressions and central_difference against the reference
# ---------------------------------------------------------------------------


@hidden_settings
@given(seeds)
def test_random_expressions_match_reference(student, reference, seed):
    """Random expression graphs (every operation, shared nodes, constants): value and gradient."""
    got, want = both(student, reference, probe_random_expression, seed)
    scale = 1.0 + max(abs(d) for d in want["derivatives"] if d is not None)
    assert_close(got["value"], want["value"], rel_tol=1e-9, abs_tol=1e-12)
    assert_all_close(
        got["derivatives"],
        want["derivatives"],
        rel_tol=1e-7,
        abs_tol=1e-9 * scale,
        what=f"derivatives (seed {seed})",
    )


@settings(hidden_settings, max_examples=40)
@given(seeds)
def test_random_expressions_match_central_differences(student, seed):
    """Backpropagated derivatives of random expressions agree with central differences."""
    got = student.run(probe_random_expression, seed)
    scale = 1.0 + abs(got["value"])
    for k, (actual, estimate) in enumerate(
        zip(got["derivatives"], got["central differences"], strict=True)
    ):
        if actual is None:  # a leaf the output does not depend on
            actual = 0.0
        assert math.isclose(actual, estimate, rel_tol=1e-3, abs_tol=1e-4 * scale), (
            f"seed {seed}, leaf {k}: backpropagation gives {actual!r}, "
            f"central difference {estimate!r}"
        )


@hidden_settings
@given(
    st.lists(st.floats(min_value=-50.0, max_value=50.0, allow_nan=False), min_size=3, max_size=3),
    st.integers(min_value=0, max_value=2),
    st.sampled_from([1e-6, 1e-4, 1e-2, 0.5, 1.0]),
)
def test_central_difference_matches_reference(student, reference, point, arg, epsilon):
    """central_difference by any argument, for several steps, equals the reference's."""
    got, want = both(student, reference, probe_central_difference, point, arg, epsilon)
    assert_close(got, want, rel_tol=1e-12, abs_tol=1e-12)
