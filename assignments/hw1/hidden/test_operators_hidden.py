"""Hidden tests of task hw1.1 (never shipped to students; students see names and outcomes).

Stronger than the public tests: other inputs (extreme magnitudes, subnormals,
negative zero, Python ints, long lists), the edge cases the docstrings specify
(sigmoid without overflow, relu_back at 0, reduce as a left fold with the
accumulator first, zipWith stopping at the shorter input, empty lists) and a
comparison of the student's results with the reference solution's.

Conventions:
- every test calls `student` before `reference` (`both` does it in that order),
  so a student's exception is the test's error, not a reference mismatch;
- tolerances are explicit (`math.isclose` with rel_tol/abs_tol); results that
  are exact in any reasonable implementation are compared exactly;
- Hypothesis settings are fixed here (deterministic, no example database), so
  the hidden tests do not depend on the public profile or on `CI`.
"""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import assert_close

pytestmark = pytest.mark.task("hw1.1")

hidden_settings = settings(max_examples=150, derandomize=True, deadline=None, database=None)

MODULE = "minitorch.operators"

LARGE = [1e300, -1e300, 1e150, -7.5e200, 123456789.0, -9.87654321e15, 2.0**53, 1.79e308]
TINY = [5e-324, -5e-324, 1e-300, -1e-300, 2.2250738585072014e-308, 1e-12, -1e-12]
INTEGRAL = [0.0, -0.0, 1.0, -1.0, 2.0, 3.0, -7.0, 1e6, -1e6, 2.0**40]
EXTREMES = LARGE + TINY + INTEGRAL


def both(student, reference, probe, *args):
    """(student's value, reference's value) of a probe or a function name of the module.

    The student is always called first.
    """
    if isinstance(probe, str):
        return student.call(f"{MODULE}.{probe}", *args), reference.call(f"{MODULE}.{probe}", *args)
    return student.run(probe, *args), reference.run(probe, *args)


def assert_all_close(actual, expected, inputs, *, rel_tol, abs_tol, what):
    """Element-wise math.isclose, naming the first input that differs."""
    assert isinstance(actual, list), f"{what}: expected a list, got {type(actual).__name__}"
    assert len(actual) == len(expected), f"{what}: {len(actual)} results for {len(expected)}"
    for value, want, given_input in zip(actual, expected, inputs, strict=True):
        assert isinstance(value, (int, float)), (
            f"{what}{given_input}: got a {type(value).__name__}, expected a number"
        )
        assert math.isclose(value, want, rel_tol=rel_tol, abs_tol=abs_tol), (
            f"{what}{given_input}: expected {want!r}, got {value!r}"
        )


# ---------------------------------------------------------------------------
# Probes (run where the student's or the reference's code lives)
# ---------------------------------------------------------------------------


def probe_unary(name, xs):
    """[f(x) for x in xs] for the operator `name`."""
    from minitorch import operators

    fn = getattr(operators, name)
    return [fn(x) for x in xs]


def probe_binary(name, pairs):
    """[f(x, y) for x, y in pairs] for the operator `name`."""
    from minitorch import operators

    fn = getattr(operators, name)
    return [fn(x, y) for x, y in pairs]


def probe_comparison_types(pairs):
    """Type names and values of lt(x, y) and eq(x, y) for each pair."""
    from minitorch import operators

    out = []
    for x, y in pairs:
        lt, eq = operators.lt(x, y), operators.eq(x, y)
        out.append([type(lt).__name__, type(eq).__name__, float(lt), float(eq)])
    return out


def probe_map_long(ls):
    """map on a long list, with an operator, a lambda and a generator."""
    from minitorch import operators

    results = [
        operators.map(operators.neg)(ls),
        operators.map(lambda x: 3.0 * x - 1.0)(ls),
        operators.map(operators.relu)(x for x in ls),
    ]
    return [[type(r).__name__, list(r)] for r in results]


def probe_inputs_unchanged():
    """Whether map returns a new list and the list functions leave their inputs alone."""
    from minitorch import operators

    a, b = [1.0, -2.0, 3.0], [10.0, 20.0, 30.0]
    mapped = operators.map(operators.id)(a)
    operators.zipWith(operators.add)(a, b)
    operators.reduce(operators.add, 0.0)(a)
    operators.negList(a)
    operators.addLists(a, b)
    operators.sum(a)
    operators.prod(b)
    return {
        "map returns a new list": mapped is not a,
        "inputs unchanged": a == [1.0, -2.0, 3.0] and b == [10.0, 20.0, 30.0],
    }


def probe_zipWith_lengths(ls1, ls2):
    """zipWith on inputs of different lengths, as lists and as generators."""
    from minitorch import operators

    return [
        operators.zipWith(operators.add)(ls1, ls2),
        operators.zipWith(lambda x, y: x - y)(ls2, ls1),
        list(operators.zipWith(operators.mul)((x for x in ls1), iter(ls2))),
    ]


def probe_reduce_calls(start, ls):
    """The result of a non-commutative left fold, and every call reduce made to fn."""
    from minitorch import operators

    calls = []

    def append_digit(acc, x):
        calls.append([acc, x])
        return acc * 10.0 + x

    result = operators.reduce(append_digit, start)(ls)
    return {
        "result": result,
        "calls": calls,
        "keep accumulator": operators.reduce(lambda acc, x: acc, start)(ls),
        "keep element": operators.reduce(lambda acc, x: x, start)(ls),
        "acc - x": operators.reduce(lambda acc, x: acc - x, start)(ls),
        "x - acc": operators.reduce(lambda acc, x: x - acc, start)(ls),
    }


def probe_reduce_iterables():
    """reduce on a one-element tuple, a generator and a range-like iterator."""
    from minitorch import operators

    return [
        operators.reduce(operators.mul, 2.0)((3.0,)),
        operators.reduce(lambda acc, x: acc * 10.0 + x, 0.0)(float(i) for i in range(1, 6)),
        operators.reduce(operators.add, 0.5)(iter([1.0, 2.0])),
    ]


def probe_empty_inputs():
    """Every list function on empty inputs; reduce must not call fn at all."""
    from minitorch import operators

    def never(acc, x):
        raise AssertionError("reduce called fn on an empty input")

    return {
        "map list": operators.map(operators.neg)([]),
        "map generator": operators.map(operators.neg)(x for x in []),
        "zipWith": operators.zipWith(operators.add)([], []),
        "zipWith first empty": operators.zipWith(operators.add)([], [1.0, 2.0]),
        "zipWith second empty": operators.zipWith(operators.add)([1.0], []),
        "reduce add": operators.reduce(operators.add, -2.5)([]),
        "reduce mul": operators.reduce(operators.mul, 0.0)([]),
        "reduce never calls fn": operators.reduce(never, 4.0)([]),
        "negList": operators.negList([]),
        "addLists": operators.addLists([], []),
        "sum": operators.sum([]),
        "prod": operators.prod([]),
    }


EMPTY_EXPECTED = {
    "map list": [],
    "map generator": [],
    "zipWith": [],
    "zipWith first empty": [],
    "zipWith second empty": [],
    "reduce add": -2.5,
    "reduce mul": 0.0,
    "reduce never calls fn": 4.0,
    "negList": [],
    "addLists": [],
    "sum": 0.0,
    "prod": 1.0,
}


# ---------------------------------------------------------------------------
# Arithmetic and comparisons
# ---------------------------------------------------------------------------


def test_mul_add_neg_id_match_reference_on_extreme_magnitudes(student, reference):
    pairs = [[x, y] for x in EXTREMES for y in EXTREMES]
    for name in ("mul", "add"):
        got, want = both(student, reference, probe_binary, name, pairs)
        assert_all_close(got, want, pairs, rel_tol=1e-15, abs_tol=0.0, what=name)
    for name in ("neg", "id"):
        got, want = both(student, reference, probe_unary, name, EXTREMES)
        assert_all_close(got, want, EXTREMES, rel_tol=0.0, abs_tol=0.0, what=name)
    got, _ = both(student, reference, probe_unary, "neg", [0.0, -0.0])
    assert [math.copysign(1.0, v) for v in got] == [-1.0, 1.0], "neg must flip the sign of zero"


def test_operators_accept_python_ints_and_integral_floats(student, reference):
    ints = [0, 1, -1, 2, 3, -7, 10, 1000]
    nonzero = [i for i in ints if i != 0]
    positive = [i for i in ints if i > 0]
    for name, xs in [
        ("id", ints),
        ("neg", ints),
        ("relu", ints),
        ("sigmoid", ints),
        ("exp", [i for i in ints if i < 700]),
        ("log", positive),
        ("inv", nonzero),
    ]:
        for inputs in (xs, [float(i) for i in xs]):
            got, want = both(student, reference, probe_unary, name, inputs)
            assert_all_close(got, want, inputs, rel_tol=1e-12, abs_tol=1e-300, what=name)
    pairs = [[x, y] for x in ints for y in ints]
    for name in ("mul", "add", "lt", "eq", "max", "relu_back"):
        got, want = both(student, reference, probe_binary, name, pairs)
        assert_all_close(got, want, pairs, rel_tol=1e-12, abs_tol=0.0, what=name)
    pairs = [[x, y] for x in nonzero for y in ints]
    got, want = both(student, reference, probe_binary, "inv_back", pairs)
    assert_all_close(got, want, pairs, rel_tol=1e-12, abs_tol=0.0, what="inv_back")
    pairs = [[x, y] for x in positive for y in ints]
    got, want = both(student, reference, probe_binary, "log_back", pairs)
    assert_all_close(got, want, pairs, rel_tol=1e-12, abs_tol=0.0, what="log_back")


def test_lt_and_eq_return_floats_on_extremes_ints_and_signed_zeros(student, reference):
    values = [*EXTREMES, 0, 1, -3]
    pairs = [[x, y] for x in values for y in values]
    got, want = both(student, reference, probe_comparison_types, pairs)
    assert len(got) == len(want)
    for mine, theirs, pair in zip(got, want, pairs, strict=True):
        (lt_type, eq_type, lt, eq), (lt_ref, eq_ref) = mine, theirs[2:]
        assert lt_type == "float", f"lt{pair} returned a {lt_type}"
        assert eq_type == "float", f"eq{pair} returned a {eq_type}"
        assert (lt, eq) == (lt_ref, eq_ref), f"lt/eq{pair}: expected {lt_ref, eq_ref}, got {lt, eq}"
    # The signed zeros are equal, and neither is less than the other.
    got, _ = both(student, reference, probe_binary, "eq", [[0.0, -0.0], [-0.0, 0.0]])
    assert got == [1.0, 1.0]
    got, _ = both(student, reference, probe_binary, "lt", [[0.0, -0.0], [-0.0, 0.0]])
    assert got == [0.0, 0.0]


def test_max_matches_reference_on_ties_and_extremes(student, reference):
    pairs = [[x, y] for x in EXTREMES for y in EXTREMES]
    got, want = both(student, reference, probe_binary, "max", pairs)
    assert_all_close(got, want, pairs, rel_tol=0.0, abs_tol=0.0, what="max")
    for m, (x, y) in zip(got, pairs, strict=True):
        assert m in (x, y) and m >= x and m >= y, f"max({x}, {y}) returned {m}"


def test_is_close_just_inside_and_just_outside_the_tolerance(student, reference):
    """is_close is |x - y| < 0.01 (strictly), at its threshold and near it, in both orders."""
    below, above = math.nextafter(0.01, 0.0), math.nextafter(0.01, 1.0)
    inside = [
        [0.0, below],
        [-below, 0.0],
        [0.0, 0.0099],
        [0.0, -0.0099],
        [0.0, 0.00999],
        [-0.00999, 0.0],
        [100.0, 100.0095],
        [-3.0, -3.0095],
        [1e6, 1e6 + 0.0095],
        [1e300, 1e300],
        [5e-324, -5e-324],
        [0.0, -0.0],
    ]
    outside = [
        [0.0, 0.01],
        [-0.01, 0.0],
        [0.0, above],
        [0.0, 0.0101],
        [0.0, -0.0101],
        [0.0, 0.01001],
        [-0.01001, 0.0],
        [100.0, 100.0105],
        [-3.0, -3.0105],
        [1e6, 1e6 + 0.0105],
        [1e300, -1e300],
        [0.0, 1.0],
    ]
    pairs = inside + outside
    swapped = [[y, x] for x, y in pairs]
    expected = [True] * len(inside) + [False] * len(outside)
    for cases in (pairs, swapped):
        got, want = both(student, reference, probe_binary, "is_close", cases)
        assert want == expected  # the reference's |x - y| < 0.01 agrees
        assert [bool(v) for v in got] == expected, f"is_close on {cases}: got {got}"


# ---------------------------------------------------------------------------
# Sigmoid and ReLU
# ---------------------------------------------------------------------------


def test_sigmoid_does_not_overflow_at_plus_minus_700_and_beyond(student, reference):
    magnitudes = [700.0, 709.7, 710.0, 745.0, 746.0, 1000.0, 1e5, 1e308]
    xs = [sign * m for m in magnitudes for sign in (1.0, -1.0)]
    got, want = both(student, reference, probe_unary, "sigmoid", xs)
    assert_all_close(got, want, xs, rel_tol=1e-9, abs_tol=1e-12, what="sigmoid")
    for s, x in zip(got, xs, strict=True):
        assert 0.0 <= s <= 1.0, f"sigmoid({x}) = {s} is outside [0, 1]"


def test_sigmoid_near_zero_and_at_negative_zero(student, reference):
    xs = [0.0, -0.0, 1e-12, -1e-12, 1e-8, -1e-8, 1e-300, -1e-300, 5e-324, -5e-324]
    got, want = both(student, reference, probe_unary, "sigmoid", xs)
    assert_all_close(got, want, xs, rel_tol=0.0, abs_tol=1e-15, what="sigmoid")
    s = dict(zip(xs[:6], got[:6], strict=True))  # 0.0 and -0.0 are one key: both give 0.5
    assert got[0] == 0.5 and got[1] == 0.5, "sigmoid(0.0) and sigmoid(-0.0) are exactly 0.5"
    assert s[-1e-12] < 0.5 < s[1e-12], "sigmoid(+-1e-12) is on the wrong side of 0.5"
    assert s[-1e-8] < 0.5 < s[1e-8], "sigmoid(+-1e-8) is on the wrong side of 0.5"


@hidden_settings
@given(st.floats(min_value=-800.0, max_value=800.0, allow_nan=False))
def test_sigmoid_matches_reference_from_minus_800_to_800(student, reference, x):
    got, want = both(student, reference, "sigmoid", x)
    assert_close(got, want, rel_tol=1e-9, abs_tol=1e-12)


def test_relu_at_zero_negative_zero_subnormals_and_extremes(student, reference):
    xs = [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1e300, -1e300, 1.7976931348623157e308]
    got, want = both(student, reference, probe_unary, "relu", xs)
    assert_all_close(got, want, xs, rel_tol=0.0, abs_tol=0.0, what="relu")
    assert all(r >= 0.0 for r in got)


def test_relu_back_is_zero_at_zero_and_negative_zero(student, reference):
    xs = [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1e300, -1e300]
    ds = [1.0, -2.5, 1e300, 0.0]
    pairs = [[x, d] for x in xs for d in ds]
    got, want = both(student, reference, probe_binary, "relu_back", pairs)
    assert_all_close(got, want, pairs, rel_tol=0.0, abs_tol=0.0, what="relu_back")
    for value, (x, d) in zip(got, pairs, strict=True):
        assert value == (d if x > 0.0 else 0.0), f"relu_back({x}, {d}) = {value}"


@hidden_settings
@given(
    st.floats(min_value=-1e300, max_value=1e300, allow_nan=False),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
def test_relu_back_matches_reference_on_wide_ranges(student, reference, x, d):
    got, want = both(student, reference, "relu_back", x, d)
    assert got == want


# ---------------------------------------------------------------------------
# exp, log, inv and their derivatives
# ---------------------------------------------------------------------------


def test_log_back_and_inv_back_at_small_inputs(student, reference):
    xs = [1e-3, 1e-6, 1e-10, 1e-50, 1e-100]
    ds = [1.0, -3.0, 1e-5]
    pairs = [[x, d] for x in xs for d in ds]
    got, want = both(student, reference, probe_binary, "log_back", pairs)
    assert_all_close(got, want, pairs, rel_tol=1e-12, abs_tol=0.0, what="log_back")
    pairs += [[-x, d] for x, d in pairs]
    got, want = both(student, reference, probe_binary, "inv_back", pairs)
    assert_all_close(got, want, pairs, rel_tol=1e-12, abs_tol=0.0, what="inv_back")
    for value, (x, d) in zip(got, pairs, strict=True):
        assert math.isclose(value, -d / (x * x), rel_tol=1e-12), f"inv_back({x}, {d})"


positive_wide = st.floats(min_value=1e-50, max_value=1e50)
nonzero_wide = st.one_of(positive_wide, positive_wide.map(lambda x: -x))
positive_huge = st.floats(min_value=1e-300, max_value=1e300)
nonzero_huge = st.one_of(positive_huge, positive_huge.map(lambda x: -x))


@hidden_settings
@given(positive_wide, nonzero_wide, st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_log_back_and_inv_back_match_reference_on_wide_ranges(student, reference, x, y, d):
    got, want = both(student, reference, "log_back", x, d)
    assert_close(got, want, rel_tol=1e-12, abs_tol=1e-200)
    got, want = both(student, reference, "inv_back", y, d)
    assert_close(got, want, rel_tol=1e-12, abs_tol=1e-200)


@hidden_settings
@given(
    st.floats(min_value=-745.0, max_value=709.0),
    positive_huge,
    nonzero_huge,
)
def test_exp_log_inv_match_reference_on_wide_ranges(student, reference, x, p, z):
    got, want = both(student, reference, "exp", x)
    assert_close(got, want, rel_tol=1e-12, abs_tol=1e-300)
    got, want = both(student, reference, "log", p)
    assert_close(got, want, rel_tol=1e-12, abs_tol=1e-12)
    got, want = both(student, reference, "inv", z)
    assert_close(got, want, rel_tol=1e-12, abs_tol=0.0)


# ---------------------------------------------------------------------------
# Higher-order functions and list functions
# ---------------------------------------------------------------------------


def test_map_on_a_long_list_with_operators_lambdas_and_generators(student, reference):
    rng = random.Random(20270111)
    ls = [rng.uniform(-1e6, 1e6) for _ in range(10_000)] + [0.0, -0.0, 1e300, -5e-324]
    got, want = both(student, reference, probe_map_long, ls)
    assert [t for t, _ in got] == ["list", "list", "list"], "map must return lists"
    assert [v for _, v in got] == [v for _, v in want]


def test_map_returns_a_new_list_and_no_list_function_mutates_its_input(student, reference):
    got, want = both(student, reference, probe_inputs_unchanged)
    assert got == want == {"map returns a new list": True, "inputs unchanged": True}


@pytest.mark.parametrize(
    ("ls1", "ls2"),
    [
        ([1.0, 2.0, 3.0], [10.0, 20.0]),
        ([1.0], [10.0, 20.0, 30.0]),
        ([], [1.0, 2.0]),
        ([4.0, 5.0], []),
        ([1.5, -2.5, 3.5, 7.0], [2.0, 4.0, 8.0]),
    ],
    ids=["longer-first", "longer-second", "empty-first", "empty-second", "four-and-three"],
)
def test_zipWith_stops_at_the_end_of_the_shorter_input(student, reference, ls1, ls2):
    got, want = both(student, reference, probe_zipWith_lengths, ls1, ls2)
    pairs = list(zip(ls1, ls2, strict=False))
    expected = [
        [x + y for x, y in pairs],
        [y - x for x, y in pairs],
        [x * y for x, y in pairs],
    ]
    assert want == expected
    assert got == expected


@hidden_settings
@given(
    st.floats(min_value=-9.0, max_value=9.0).map(round).map(float),
    st.lists(st.integers(min_value=0, max_value=9).map(float), max_size=12),
)
def test_reduce_folds_left_with_the_accumulator_as_first_argument(student, reference, start, ls):
    got, want = both(student, reference, probe_reduce_calls, start, ls)
    assert got["calls"] == want["calls"], "reduce must call fn(acc, x) on x1, x2, ... in order"
    assert got == want


def test_reduce_on_tuples_generators_and_iterators(student, reference):
    got, want = both(student, reference, probe_reduce_iterables)
    assert want == [6.0, 12345.0, 3.5]
    assert got == want


def test_every_list_function_on_empty_inputs(student, reference):
    got, want = both(student, reference, probe_empty_inputs)
    assert want == EMPTY_EXPECTED
    assert got == EMPTY_EXPECTED


def test_negList_and_addLists_match_reference_on_long_lists(student, reference):
    rng = random.Random(7_340_033)
    ls1 = [rng.uniform(-1e9, 1e9) for _ in range(10_000)] + [1e308, -0.0, 5e-324]
    ls2 = [rng.uniform(-1e-9, 1e-9) for _ in range(10_000)] + [1e308, 0.0, -5e-324]
    got, want = both(student, reference, "negList", ls1)
    assert got == want
    got, want = both(student, reference, "addLists", ls1, ls2)
    assert got == want


def test_sum_and_prod_match_reference_on_long_lists(student, reference):
    rng = random.Random(104_729)
    ls = [rng.uniform(-1e3, 1e3) for _ in range(5_000)]
    got, want = both(student, reference, "sum", ls)
    assert_close(got, want, rel_tol=1e-9, abs_tol=1e-12 * math.fsum(abs(x) for x in ls))
    factors = [1.0 + rng.uniform(-0.01, 0.01) for _ in range(2_000)]
    factors[::97] = [-f for f in factors[::97]]
    got, want = both(student, reference, "prod", factors)
    assert_close(got, want, rel_tol=1e-9, abs_tol=0.0)


def test_sum_and_prod_of_single_elements_and_overflowing_lists(student, reference):
    cases = [
        ("sum", [2.5]),
        ("prod", [2.5]),
        ("sum", [-0.0]),
        ("prod", [-7.0]),
        ("sum", [1e308, 1e308]),
        ("sum", [1e308, -1e308]),
        ("prod", [1e200, 1e200]),
        ("prod", [1e-200, 1e-200]),
        ("prod", [-1.0] * 7),
        ("prod", [3.0, 0.0, 5.0]),
    ]
    for name, ls in cases:
        got, want = both(student, reference, name, ls)
        assert_close(got, want, rel_tol=1e-12, abs_tol=0.0)
