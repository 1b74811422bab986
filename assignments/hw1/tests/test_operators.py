"""Public tests of task hw1.1: scalar operators, derivatives and higher-order functions.

Most tests are property-based: Hypothesis draws many inputs and checks a
mathematical law (for example `add(x, y) == add(y, x)`). When one fails,
Hypothesis shrinks the input to a small counterexample and prints it as
"Falsifying example". Derivatives are checked against central differences.

How these tests reach your code
-------------------------------
No test imports `minitorch` itself. Every call to your code goes through the
`student` fixture (see `tests/conftest.py`), in one of two ways:

- `student.call("minitorch.operators.mul", 2.0, 3.0)` calls one function by its
  dotted name. The `ops` fixture below is shorthand for it: `ops.mul(2.0, 3.0)`.
- `student.run(probe_map, [1.0, 2.0])` runs a *probe*: a small function, defined
  at the top level of this file with a name starting with `probe_`, that imports
  your code inside its body, exercises it, and returns plain data (numbers,
  strings, lists, dicts). Probes are needed where a test must hand your code
  something that is not plain data, such as a function for `map` or `reduce`.

On your machine both simply call your code in the pytest process. The course's
grader runs these same tests but executes your code in a separate, sandboxed
process; that is why probes import what they use inside their body, use no
global names of this file, and return only plain data (for example the *name*
of a result's type rather than the type itself).

Run them with `pytest tests/test_operators.py` (add `-k sigmoid` for one topic).
"""

import functools
import math

import pytest
from hypothesis import example, given
from strategies import (
    assert_close,
    float_lists,
    paired_lists,
    small_floats,
    small_ints,
    small_nonzero_floats,
    small_positive_floats,
)

pytestmark = pytest.mark.task("hw1.1")

#: Step of the central differences used to check derivatives.
H = 1e-6


def central_difference(f, x: float, h: float = H) -> float:
    """Estimate f'(x) as (f(x + h) - f(x - h)) / (2h)."""
    return (f(x + h) - f(x - h)) / (2.0 * h)


class Operators:
    """Your `minitorch.operators`, reached through the `student` fixture.

    `ops.mul(2.0, 3.0)` is `student.call("minitorch.operators.mul", 2.0, 3.0)`.
    Only plain data (numbers, lists of numbers) can be passed this way; tests of
    `map`, `zipWith` and `reduce` use probes instead.
    """

    def __init__(self, student) -> None:
        self._student = student

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self._student.call, f"minitorch.operators.{name}")


@pytest.fixture(scope="module")
def ops(student):
    """Shorthand for calling functions of your `minitorch.operators`."""
    return Operators(student)


# ---------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------

#: Hand-computed values, grouped as in the handout: (operator, arguments, value).
KNOWN_VALUES = {
    "arithmetic": [
        ("mul", (2.0, 3.0), 6.0),
        ("mul", (-1.5, 4.0), -6.0),
        ("id", (7.25,), 7.25),
        ("add", (2.0, 3.5), 5.5),
        ("neg", (3.0,), -3.0),
        ("neg", (-2.0,), 2.0),
    ],
    "comparisons": [
        ("lt", (1.0, 2.0), 1.0),
        ("lt", (2.0, 1.0), 0.0),
        ("lt", (2.0, 2.0), 0.0),
        ("eq", (2.0, 2.0), 1.0),
        ("eq", (2.0, 3.0), 0.0),
        ("max", (1.0, 2.0), 2.0),
        ("max", (-1.0, -2.0), -1.0),
    ],
    "functions": [
        ("sigmoid", (0.0,), 0.5),
        ("relu", (2.5,), 2.5),
        ("relu", (-3.0,), 0.0),
        ("relu", (0.0,), 0.0),
        ("log", (math.e,), 1.0),
        ("log", (1.0,), 0.0),
        ("exp", (0.0,), 1.0),
        ("exp", (1.0,), math.e),
        ("inv", (4.0,), 0.25),
        ("inv", (-0.5,), -2.0),
    ],
    "derivatives": [
        ("log_back", (2.0, 3.0), 1.5),
        ("inv_back", (2.0, 4.0), -1.0),
        ("relu_back", (3.0, 5.0), 5.0),
        ("relu_back", (-3.0, 5.0), 0.0),
        ("relu_back", (0.0, 5.0), 0.0),
    ],
}


@pytest.mark.parametrize("group", list(KNOWN_VALUES))
def test_known_values(student, group):
    """Each operator of the group on a few hand-computed inputs; the message lists
    every value that is wrong."""
    wrong = []
    for name, args, expected in KNOWN_VALUES[group]:
        got = student.call(f"minitorch.operators.{name}", *args)
        if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-6):
            call = f"{name}({', '.join(map(repr, args))})"
            wrong.append(f"{call} returned {got!r}, expected {expected!r}")
    assert not wrong, "; ".join(wrong)


# ---------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------


@given(small_floats, small_floats)
def test_basic_arithmetic_matches_python(ops, x, y):
    """mul, add, neg and id agree exactly with Python's own arithmetic."""
    assert ops.mul(x, y) == x * y
    assert ops.add(x, y) == x + y
    assert ops.neg(x) == -x
    assert ops.id(x) == x


@given(small_floats, small_floats)
def test_add_and_mul_commute(ops, x, y):
    """x + y == y + x and x * y == y * x (and at x, y = 2, 3 they are 5 and 6)."""
    assert ops.add(x, y) == ops.add(y, x)
    assert ops.mul(x, y) == ops.mul(y, x)
    assert ops.add(2.0, 3.0) == ops.add(3.0, 2.0) == 5.0
    assert ops.mul(2.0, 3.0) == ops.mul(3.0, 2.0) == 6.0


@given(small_ints, small_ints, small_ints)
def test_add_and_mul_associative_on_integers(ops, a, b, c):
    """(a + b) + c == a + (b + c), and the same for *; exact for small integers
    (and (1 + 2) + 3 is 6, (2 * 3) * 4 is 24)."""
    x, y, z = float(a), float(b), float(c)
    assert ops.add(ops.add(x, y), z) == ops.add(x, ops.add(y, z))
    assert ops.mul(ops.mul(x, y), z) == ops.mul(x, ops.mul(y, z))
    assert ops.add(ops.add(1.0, 2.0), 3.0) == ops.add(1.0, ops.add(2.0, 3.0)) == 6.0
    assert ops.mul(ops.mul(2.0, 3.0), 4.0) == ops.mul(2.0, ops.mul(3.0, 4.0)) == 24.0


@given(small_floats, small_floats, small_floats)
def test_add_associative_on_floats(ops, x, y, z):
    """(x + y) + z is close to x + (y + z); floats only round differently
    (and (0.1 + 0.2) + 0.3 is close to 0.6)."""
    assert_close(ops.add(ops.add(x, y), z), ops.add(x, ops.add(y, z)))
    assert_close(ops.add(ops.add(0.1, 0.2), 0.3), 0.6)


@given(small_floats, small_floats, small_floats)
def test_distributive(ops, x, y, z):
    """z * (x + y) is close to z * x + z * y (and 3 * (1 + 2) is 9)."""
    left = ops.mul(z, ops.add(x, y))
    right = ops.add(ops.mul(z, x), ops.mul(z, y))
    assert_close(left, right)
    assert ops.mul(3.0, ops.add(1.0, 2.0)) == ops.add(ops.mul(3.0, 1.0), ops.mul(3.0, 2.0)) == 9.0


@given(small_floats)
def test_neg_twice_is_identity(ops, x):
    """-(-x) == x, and x + (-x) == 0."""
    assert ops.neg(ops.neg(x)) == x
    assert ops.add(x, ops.neg(x)) == 0.0


@given(small_floats)
def test_mul_identity_and_zero(ops, x):
    """x * 1 == x and x * 0 == 0."""
    assert ops.mul(x, 1.0) == x
    assert ops.mul(x, 0.0) == 0.0


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------


def probe_comparison_types(x, y):
    """The type names and values of lt(x, y) and eq(x, y)."""
    from minitorch import operators

    lt, eq = operators.lt(x, y), operators.eq(x, y)
    return {"lt": [type(lt).__name__, float(lt)], "eq": [type(eq).__name__, float(eq)]}


@given(small_floats, small_floats)
@example(1.0, 2.0)
@example(2.0, 1.0)
@example(2.0, 2.0)
def test_lt_and_eq_return_floats(student, x, y):
    """lt and eq return the floats 1.0 or 0.0, never bools: 1.0 where x < y
    (x == y) holds, 0.0 where it does not."""
    expected = {"lt": 1.0 if x < y else 0.0, "eq": 1.0 if x == y else 0.0}
    for name, (type_name, value) in student.run(probe_comparison_types, x, y).items():
        assert type_name == "float", f"{name} returned a {type_name}, expected a float"
        assert value == expected[name], f"{name}({x!r}, {y!r}) returned {value!r}"


@given(small_floats, small_floats)
def test_lt_eq_trichotomy(ops, x, y):
    """Exactly one of x < y, y < x and x == y holds."""
    assert ops.lt(x, y) + ops.lt(y, x) + ops.eq(x, y) == 1.0
    assert ops.lt(x, y) == (1.0 if x < y else 0.0)
    assert ops.eq(x, y) == ops.eq(y, x)


@given(small_floats)
def test_lt_irreflexive_eq_reflexive(ops, x):
    """x < x never holds; x == x always holds."""
    assert ops.lt(x, x) == 0.0
    assert ops.eq(x, x) == 1.0


@given(small_floats, small_floats)
def test_max(ops, x, y):
    """max(x, y) is one of its inputs and at least as large as both."""
    m = ops.max(x, y)
    assert m in (x, y)
    assert m >= x
    assert m >= y
    assert ops.max(y, x) == m


@given(small_floats)
def test_is_close(ops, x):
    """is_close accepts differences below 0.01 and rejects larger ones."""
    assert ops.is_close(x, x)
    assert ops.is_close(x, x + 0.001)
    assert ops.is_close(x + 0.001, x)
    assert not ops.is_close(x, x + 0.1)
    assert not ops.is_close(x - 0.1, x)


def test_is_close_at_its_threshold(ops):
    """is_close is |x - y| < 0.01, strictly: a difference one float below 0.01 is
    close; 0.01 itself and the float above it are not (in either order)."""
    below, above = math.nextafter(0.01, 0.0), math.nextafter(0.01, 1.0)
    cases = [(below, True), (-below, True), (0.01, False), (-0.01, False), (above, False)]
    for difference, expected in cases:
        for x, y in ((0.0, difference), (difference, 0.0)):
            assert ops.is_close(x, y) == expected, f"is_close({x!r}, {y!r}) should be {expected}"


# ---------------------------------------------------------------------------
# Sigmoid and ReLU
# ---------------------------------------------------------------------------


@given(small_floats)
def test_sigmoid_matches_formula(ops, x):
    """sigmoid(x) = 1 / (1 + e^{-x})."""
    assert_close(ops.sigmoid(x), 1.0 / (1.0 + math.exp(-x)))


@given(small_floats)
def test_sigmoid_in_unit_interval(ops, x):
    """0 <= sigmoid(x) <= 1 (floats can round to exactly 0 or 1), and sigmoid(0) is 1/2."""
    s = ops.sigmoid(x)
    assert 0.0 <= s <= 1.0
    assert ops.sigmoid(0.0) == 0.5


@given(small_floats)
def test_sigmoid_symmetry(ops, x):
    """sigmoid(-x) = 1 - sigmoid(x)."""
    assert_close(ops.sigmoid(ops.neg(x)), 1.0 - ops.sigmoid(x))


@given(small_floats, small_floats)
def test_sigmoid_monotone(ops, x, y):
    """x <= y implies sigmoid(x) <= sigmoid(y); it strictly increases near 0, where
    sigmoid(-1) < sigmoid(0) = 1/2 < sigmoid(1)."""
    lo, hi = (x, y) if x <= y else (y, x)
    assert ops.sigmoid(lo) <= ops.sigmoid(hi)
    assert ops.sigmoid(-1.0) < ops.sigmoid(0.0) == 0.5 < ops.sigmoid(1.0)


@pytest.mark.parametrize("x", [750.0, 1000.0])
def test_sigmoid_large_inputs(ops, x):
    """sigmoid does not overflow: it saturates to 1 at x and to 0 at -x for large x."""
    assert_close(ops.sigmoid(x), 1.0)
    assert_close(ops.sigmoid(-x), 0.0)


@given(small_floats)
def test_relu(ops, x):
    """relu(x) is x for positive x and 0 otherwise; it is never negative."""
    r = ops.relu(x)
    assert r >= 0.0
    assert r == max(x, 0.0)


# ---------------------------------------------------------------------------
# exp, log and inv
# ---------------------------------------------------------------------------


@given(small_floats)
def test_log_of_exp(ops, x):
    """log(e^x) = x (and e^0 = 1, e^1 = e)."""
    assert_close(ops.log(ops.exp(x)), x)
    assert ops.exp(0.0) == 1.0
    assert_close(ops.exp(1.0), math.e)


@given(small_positive_floats)
def test_exp_of_log(ops, x):
    """e^{log(x)} = x for x > 0 (and log(1) = 0, log(e) = 1)."""
    assert_close(ops.exp(ops.log(x)), x)
    assert ops.log(1.0) == 0.0
    assert_close(ops.log(math.e), 1.0)


@given(small_floats, small_floats)
def test_exp_of_sum_is_product(ops, x, y):
    """e^{x + y} = e^x * e^y (and e^{1 + 1} = e^2)."""
    assert_close(
        ops.exp(ops.add(x, y)),
        ops.mul(ops.exp(x), ops.exp(y)),
        rel_tol=1e-9,
        abs_tol=0.0,
    )
    assert_close(ops.exp(ops.add(1.0, 1.0)), math.e**2)


@given(small_positive_floats, small_positive_floats)
def test_log_of_product_is_sum(ops, x, y):
    """log(x * y) = log(x) + log(y) for x, y > 0 (and log(2 * 4) = 3 log(2))."""
    assert_close(ops.log(ops.mul(x, y)), ops.add(ops.log(x), ops.log(y)))
    assert_close(ops.log(ops.mul(2.0, 4.0)), 3.0 * math.log(2.0))


@given(small_nonzero_floats)
def test_inv(ops, x):
    """x * (1 / x) = 1, and 1 / (1 / x) = x."""
    assert_close(ops.mul(x, ops.inv(x)), 1.0)
    assert_close(ops.inv(ops.inv(x)), x)


# ---------------------------------------------------------------------------
# Derivatives, against central differences
# ---------------------------------------------------------------------------


@given(small_positive_floats, small_floats)
def test_log_back(ops, x, d):
    """log_back(x, d) = d * log'(x)."""
    expected = d * central_difference(math.log, x)
    assert_close(ops.log_back(x, d), expected, rel_tol=1e-4, abs_tol=1e-4)


@given(small_nonzero_floats, small_floats)
def test_inv_back(ops, x, d):
    """inv_back(x, d) = d * inv'(x)."""
    expected = d * central_difference(lambda t: 1.0 / t, x)
    assert_close(ops.inv_back(x, d), expected, rel_tol=1e-4, abs_tol=1e-4)


@given(small_nonzero_floats, small_floats)
def test_relu_back(ops, x, d):
    """relu_back(x, d) = d * relu'(x), checked away from the kink at 0."""
    expected = d * central_difference(lambda t: max(t, 0.0), x)
    assert_close(ops.relu_back(x, d), expected, rel_tol=1e-4, abs_tol=1e-4)


# ---------------------------------------------------------------------------
# Higher-order functions (through probes: functions cannot be passed as data)
# ---------------------------------------------------------------------------


def probe_map(ls):
    """map with neg (on a list), a lambda (on a tuple) and id (on a generator)."""
    from minitorch import operators

    results = {
        "neg on a list": operators.map(operators.neg)(ls),
        "x * 2 on a tuple": operators.map(lambda x: x * 2.0)(tuple(ls)),
        "id on a generator": operators.map(operators.id)(x for x in ls),
    }
    return {case: [type(r).__name__, list(r)] for case, r in results.items()}


@given(float_lists())
def test_map(student, ls):
    """map(fn) applies fn to every element and returns a new list."""
    results = student.run(probe_map, ls)
    expected = {
        "neg on a list": [-x for x in ls],
        "x * 2 on a tuple": [2.0 * x for x in ls],
        "id on a generator": ls,
    }
    for case, (type_name, values) in results.items():
        assert type_name == "list", f"map ({case}) returned a {type_name}, expected a list"
        assert values == expected[case], f"map ({case})"


def probe_zipWith(ls1, ls2):
    """zipWith with mul (on two lists) and a lambda (on a tuple and a list)."""
    from minitorch import operators

    results = {
        "mul on lists": operators.zipWith(operators.mul)(ls1, ls2),
        "x - y on a tuple and a list": operators.zipWith(lambda x, y: x - y)(tuple(ls1), ls2),
    }
    return {case: [type(r).__name__, list(r)] for case, r in results.items()}


@given(paired_lists())
def test_zipWith(student, pair):
    """zipWith(fn) applies fn to the elements of two lists pairwise."""
    ls1, ls2 = pair
    results = student.run(probe_zipWith, ls1, ls2)
    expected = {
        "mul on lists": [x * y for x, y in zip(ls1, ls2, strict=True)],
        "x - y on a tuple and a list": [x - y for x, y in zip(ls1, ls2, strict=True)],
    }
    for case, (type_name, values) in results.items():
        assert type_name == "list", f"zipWith ({case}) returned a {type_name}, expected a list"
        assert values == expected[case], f"zipWith ({case})"


def probe_empty_inputs():
    """map, zipWith and reduce applied to empty lists."""
    from minitorch import operators

    return {
        "map": operators.map(operators.neg)([]),
        "zipWith": operators.zipWith(operators.add)([], []),
        "reduce": operators.reduce(operators.add, 3.5)([]),
    }


def test_higher_order_functions_on_empty_lists(student):
    """map and zipWith give [] for empty input; reduce gives its start value."""
    assert student.run(probe_empty_inputs) == {"map": [], "zipWith": [], "reduce": 3.5}


def probe_reduce_add(start, ls):
    """reduce(add, start)(ls)."""
    from minitorch import operators

    return operators.reduce(operators.add, start)(ls)


@given(float_lists(small_ints.map(float)))
def test_reduce_with_add(student, ls):
    """reduce(add, start) adds the elements to start."""
    assert student.run(probe_reduce_add, 10.0, ls) == 10.0 + math.fsum(ls)


def probe_reduce_append_digits(start, ls):
    """reduce with fn(acc, x) = 10 * acc + x, on a list and on a tuple."""
    from minitorch import operators

    def append_digit(acc, x):
        return acc * 10.0 + x

    reduce = operators.reduce(append_digit, start)
    return [reduce(ls), reduce(tuple(ls))]


def test_reduce_folds_from_the_left(student):
    """reduce(fn, start)([x1, x2, x3]) = fn(fn(fn(start, x1), x2), x3)."""
    assert student.run(probe_reduce_append_digits, 0.0, [1.0, 2.0, 3.0]) == [123.0, 123.0]
    assert student.run(probe_reduce_append_digits, 4.0, [5.0, 6.0]) == [456.0, 456.0]


@given(float_lists())
def test_negList(ops, ls):
    """negList negates each element."""
    assert ops.negList(ls) == [-x for x in ls]


@given(paired_lists())
def test_addLists(ops, pair):
    """addLists adds two lists element by element."""
    ls1, ls2 = pair
    assert ops.addLists(ls1, ls2) == [x + y for x, y in zip(ls1, ls2, strict=True)]


@given(float_lists())
def test_sum(ops, ls):
    """sum agrees with math.fsum (which is exactly rounded)."""
    assert_close(ops.sum(ls), math.fsum(ls))


@given(float_lists(max_size=10))
def test_prod(ops, ls):
    """prod agrees with math.prod."""
    assert_close(ops.prod(ls), math.prod(ls), rel_tol=1e-9, abs_tol=0.0)


def test_sum_and_prod_of_empty_list(ops):
    """The sum of no numbers is 0.0; their product is 1.0."""
    assert ops.sum([]) == 0.0
    assert ops.prod([]) == 1.0


@given(paired_lists())
def test_sum_distributes_over_addLists(ops, pair):
    """sum(ls1 + ls2 elementwise) = sum(ls1) + sum(ls2) (and is 10 for [1, 2] and [3, 4])."""
    ls1, ls2 = pair
    assert_close(
        ops.sum(ops.addLists(ls1, ls2)),
        ops.add(ops.sum(ls1), ops.sum(ls2)),
    )
    assert ops.sum(ops.addLists([1.0, 2.0], [3.0, 4.0])) == 10.0
