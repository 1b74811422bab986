"""Public tests of task hw1.1: scalar operators, derivatives and higher-order functions.

Most tests are property-based: Hypothesis draws many inputs and checks a
mathematical law (for example `add(x, y) == add(y, x)`). When one fails,
Hypothesis shrinks the input to a small counterexample and prints it as
"Falsifying example". Derivatives are checked against central differences.

Run them with `pytest tests/test_operators.py` (add `-k sigmoid` for one topic).
"""

import math

import pytest
from hypothesis import given
from minitorch import operators
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


# ---------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------

KNOWN_VALUES = [
    ("mul", (2.0, 3.0), 6.0),
    ("mul", (-1.5, 4.0), -6.0),
    ("id", (7.25,), 7.25),
    ("add", (2.0, 3.5), 5.5),
    ("neg", (3.0,), -3.0),
    ("neg", (-2.0,), 2.0),
    ("lt", (1.0, 2.0), 1.0),
    ("lt", (2.0, 1.0), 0.0),
    ("lt", (2.0, 2.0), 0.0),
    ("eq", (2.0, 2.0), 1.0),
    ("eq", (2.0, 3.0), 0.0),
    ("max", (1.0, 2.0), 2.0),
    ("max", (-1.0, -2.0), -1.0),
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
    ("log_back", (2.0, 3.0), 1.5),
    ("inv_back", (2.0, 4.0), -1.0),
    ("relu_back", (3.0, 5.0), 5.0),
    ("relu_back", (-3.0, 5.0), 0.0),
    ("relu_back", (0.0, 5.0), 0.0),
]


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    KNOWN_VALUES,
    ids=[f"{name}{args}" for name, args, _ in KNOWN_VALUES],
)
def test_known_values(name, args, expected):
    """Each operator on a few hand-computed inputs."""
    assert_close(getattr(operators, name)(*args), expected)


# ---------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------


@given(small_floats, small_floats)
def test_basic_arithmetic_matches_python(x, y):
    """mul, add, neg and id agree exactly with Python's own arithmetic."""
    assert operators.mul(x, y) == x * y
    assert operators.add(x, y) == x + y
    assert operators.neg(x) == -x
    assert operators.id(x) == x


@given(small_floats, small_floats)
def test_add_and_mul_commute(x, y):
    """x + y == y + x and x * y == y * x."""
    assert operators.add(x, y) == operators.add(y, x)
    assert operators.mul(x, y) == operators.mul(y, x)


@given(small_ints, small_ints, small_ints)
def test_add_and_mul_associative_on_integers(a, b, c):
    """(a + b) + c == a + (b + c), and the same for *; exact for small integers."""
    x, y, z = float(a), float(b), float(c)
    assert operators.add(operators.add(x, y), z) == operators.add(x, operators.add(y, z))
    assert operators.mul(operators.mul(x, y), z) == operators.mul(x, operators.mul(y, z))


@given(small_floats, small_floats, small_floats)
def test_add_associative_on_floats(x, y, z):
    """(x + y) + z is close to x + (y + z); floats only round differently."""
    assert_close(operators.add(operators.add(x, y), z), operators.add(x, operators.add(y, z)))


@given(small_floats, small_floats, small_floats)
def test_distributive(x, y, z):
    """z * (x + y) is close to z * x + z * y."""
    left = operators.mul(z, operators.add(x, y))
    right = operators.add(operators.mul(z, x), operators.mul(z, y))
    assert_close(left, right)


@given(small_floats)
def test_neg_twice_is_identity(x):
    """-(-x) == x, and x + (-x) == 0."""
    assert operators.neg(operators.neg(x)) == x
    assert operators.add(x, operators.neg(x)) == 0.0


@given(small_floats)
def test_mul_identity_and_zero(x):
    """x * 1 == x and x * 0 == 0."""
    assert operators.mul(x, 1.0) == x
    assert operators.mul(x, 0.0) == 0.0


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------


@given(small_floats, small_floats)
def test_lt_and_eq_return_floats(x, y):
    """lt and eq return the floats 1.0 or 0.0, never bools."""
    for result in (operators.lt(x, y), operators.eq(x, y)):
        assert type(result) is float, f"expected a float, got {type(result).__name__}"
        assert result in (0.0, 1.0)


@given(small_floats, small_floats)
def test_lt_eq_trichotomy(x, y):
    """Exactly one of x < y, y < x and x == y holds."""
    assert operators.lt(x, y) + operators.lt(y, x) + operators.eq(x, y) == 1.0
    assert operators.lt(x, y) == (1.0 if x < y else 0.0)
    assert operators.eq(x, y) == operators.eq(y, x)


@given(small_floats)
def test_lt_irreflexive_eq_reflexive(x):
    """x < x never holds; x == x always holds."""
    assert operators.lt(x, x) == 0.0
    assert operators.eq(x, x) == 1.0


@given(small_floats, small_floats)
def test_max(x, y):
    """max(x, y) is one of its inputs and at least as large as both."""
    m = operators.max(x, y)
    assert m in (x, y)
    assert m >= x
    assert m >= y
    assert operators.max(y, x) == m


@given(small_floats)
def test_is_close(x):
    """is_close accepts differences below 0.01 and rejects larger ones."""
    assert operators.is_close(x, x)
    assert operators.is_close(x, x + 0.001)
    assert operators.is_close(x + 0.001, x)
    assert not operators.is_close(x, x + 0.1)
    assert not operators.is_close(x - 0.1, x)


# ---------------------------------------------------------------------------
# Sigmoid and ReLU
# ---------------------------------------------------------------------------


@given(small_floats)
def test_sigmoid_matches_formula(x):
    """sigmoid(x) = 1 / (1 + e^{-x})."""
    assert_close(operators.sigmoid(x), 1.0 / (1.0 + math.exp(-x)))


@given(small_floats)
def test_sigmoid_in_unit_interval(x):
    """0 <= sigmoid(x) <= 1 (floats can round to exactly 0 or 1)."""
    s = operators.sigmoid(x)
    assert 0.0 <= s <= 1.0


@given(small_floats)
def test_sigmoid_symmetry(x):
    """sigmoid(-x) = 1 - sigmoid(x)."""
    assert_close(operators.sigmoid(operators.neg(x)), 1.0 - operators.sigmoid(x))


@given(small_floats, small_floats)
def test_sigmoid_monotone(x, y):
    """x <= y implies sigmoid(x) <= sigmoid(y)."""
    lo, hi = (x, y) if x <= y else (y, x)
    assert operators.sigmoid(lo) <= operators.sigmoid(hi)


@pytest.mark.parametrize("x", [-1000.0, -750.0, 750.0, 1000.0])
def test_sigmoid_large_inputs(x):
    """sigmoid does not overflow: it saturates to 0 or 1 for large |x|."""
    expected = 1.0 if x > 0 else 0.0
    assert_close(operators.sigmoid(x), expected)


@given(small_floats)
def test_relu(x):
    """relu(x) is x for positive x and 0 otherwise; it is never negative."""
    r = operators.relu(x)
    assert r >= 0.0
    assert r == max(x, 0.0)


# ---------------------------------------------------------------------------
# exp, log and inv
# ---------------------------------------------------------------------------


@given(small_floats)
def test_log_of_exp(x):
    """log(e^x) = x."""
    assert_close(operators.log(operators.exp(x)), x)


@given(small_positive_floats)
def test_exp_of_log(x):
    """e^{log(x)} = x for x > 0."""
    assert_close(operators.exp(operators.log(x)), x)


@given(small_floats, small_floats)
def test_exp_of_sum_is_product(x, y):
    """e^{x + y} = e^x * e^y."""
    assert_close(
        operators.exp(operators.add(x, y)),
        operators.mul(operators.exp(x), operators.exp(y)),
        rel_tol=1e-9,
        abs_tol=0.0,
    )


@given(small_positive_floats, small_positive_floats)
def test_log_of_product_is_sum(x, y):
    """log(x * y) = log(x) + log(y) for x, y > 0."""
    assert_close(
        operators.log(operators.mul(x, y)), operators.add(operators.log(x), operators.log(y))
    )


@given(small_nonzero_floats)
def test_inv(x):
    """x * (1 / x) = 1, and 1 / (1 / x) = x."""
    assert_close(operators.mul(x, operators.inv(x)), 1.0)
    assert_close(operators.inv(operators.inv(x)), x)


# ---------------------------------------------------------------------------
# Derivatives, against central differences
# ---------------------------------------------------------------------------


@given(small_positive_floats, small_floats)
def test_log_back(x, d):
    """log_back(x, d) = d * log'(x)."""
    expected = d * central_difference(math.log, x)
    assert_close(operators.log_back(x, d), expected, rel_tol=1e-4, abs_tol=1e-4)


@given(small_nonzero_floats, small_floats)
def test_inv_back(x, d):
    """inv_back(x, d) = d * inv'(x)."""
    expected = d * central_difference(lambda t: 1.0 / t, x)
    assert_close(operators.inv_back(x, d), expected, rel_tol=1e-4, abs_tol=1e-4)


@given(small_nonzero_floats, small_floats)
def test_relu_back(x, d):
    """relu_back(x, d) = d * relu'(x), checked away from the kink at 0."""
    expected = d * central_difference(lambda t: max(t, 0.0), x)
    assert_close(operators.relu_back(x, d), expected, rel_tol=1e-4, abs_tol=1e-4)


# ---------------------------------------------------------------------------
# Higher-order functions
# ---------------------------------------------------------------------------


@given(float_lists())
def test_map(ls):
    """map(fn) applies fn to every element and returns a new list."""
    result = operators.map(operators.neg)(ls)
    assert isinstance(result, list)
    assert result == [-x for x in ls]
    assert operators.map(lambda x: x * 2.0)(tuple(ls)) == [2.0 * x for x in ls]
    assert operators.map(operators.id)(x for x in ls) == ls


@given(paired_lists())
def test_zipWith(pair):
    """zipWith(fn) applies fn to the elements of two lists pairwise."""
    ls1, ls2 = pair
    result = operators.zipWith(operators.mul)(ls1, ls2)
    assert isinstance(result, list)
    assert result == [x * y for x, y in zip(ls1, ls2, strict=True)]
    assert operators.zipWith(lambda x, y: x - y)(tuple(ls1), ls2) == [
        x - y for x, y in zip(ls1, ls2, strict=True)
    ]


def test_higher_order_functions_on_empty_lists():
    """map and zipWith give [] for empty input; reduce gives its start value."""
    assert operators.map(operators.neg)([]) == []
    assert operators.zipWith(operators.add)([], []) == []
    assert operators.reduce(operators.add, 3.5)([]) == 3.5


@given(float_lists(small_ints.map(float)))
def test_reduce_with_add(ls):
    """reduce(add, start) adds the elements to start."""
    assert operators.reduce(operators.add, 10.0)(ls) == 10.0 + math.fsum(ls)


def test_reduce_folds_from_the_left():
    """reduce(fn, start)([x1, x2, x3]) = fn(fn(fn(start, x1), x2), x3)."""

    def append_digit(acc, x):
        return acc * 10.0 + x

    assert operators.reduce(append_digit, 0.0)([1.0, 2.0, 3.0]) == 123.0
    assert operators.reduce(append_digit, 4.0)((5.0, 6.0)) == 456.0


@given(float_lists())
def test_negList(ls):
    """negList negates each element."""
    assert operators.negList(ls) == [-x for x in ls]


@given(paired_lists())
def test_addLists(pair):
    """addLists adds two lists element by element."""
    ls1, ls2 = pair
    assert operators.addLists(ls1, ls2) == [x + y for x, y in zip(ls1, ls2, strict=True)]


@given(float_lists())
def test_sum(ls):
    """sum agrees with math.fsum (which is exactly rounded)."""
    assert_close(operators.sum(ls), math.fsum(ls))


@given(float_lists(max_size=10))
def test_prod(ls):
    """prod agrees with math.prod."""
    assert_close(operators.prod(ls), math.prod(ls), rel_tol=1e-9, abs_tol=0.0)


def test_sum_and_prod_of_empty_list():
    """The sum of no numbers is 0.0; their product is 1.0."""
    assert operators.sum([]) == 0.0
    assert operators.prod([]) == 1.0


@given(paired_lists())
def test_sum_distributes_over_addLists(pair):
    """sum(ls1 + ls2 elementwise) = sum(ls1) + sum(ls2)."""
    ls1, ls2 = pair
    assert_close(
        operators.sum(operators.addLists(ls1, ls2)),
        operators.add(operators.sum(ls1), operators.sum(ls2)),
    )
