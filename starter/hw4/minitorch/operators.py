"""Scalar operators: the smallest building blocks of miniTorch.

Everything miniTorch computes is, in the end, a composition of a few functions of
one or two Python floats. This module defines them in three groups:

1. **Operators**: `mul`, `id`, `add`, `neg`, `lt`, `eq`, `max`, `is_close`,
   `sigmoid`, `relu`, `log`, `exp` and `inv`. Later assignments wrap each of
   them in an autodiff-aware function, so they must be plain, side-effect free
   functions of floats.

2. **Derivatives** for backpropagation: `log_back`, `inv_back` and `relu_back`.
   A function `f_back(x, d)` returns `f'(x) * d`: the derivative of `f` at the
   input `x`, multiplied by the derivative `d` of the final output with respect
   to `f(x)` (the "upstream" gradient). This product is exactly one step of the
   chain rule, `dL/dx = dL/df * df/dx`.

3. **Higher-order functions**: `map`, `zipWith` and `reduce` take a function and
   return a new function that applies it to lists. `negList`, `addLists`, `sum`
   and `prod` are built from them in one line each. Tensors (tasks hw1.3 and hw1.4)
   generalise exactly these three patterns to n-dimensional arrays.

Notation in the docstrings: `e^{x}` is the exponential, `log` is the natural
logarithm, and `[x1, x2, ...]` is a Python list.

Some names (`id`, `max`, `map`, `sum`) shadow Python built-ins on purpose: they
are the names of the course API. Inside this module, the built-ins they hide
are not used.
"""

import math
from collections.abc import Callable, Iterable

__all__ = [
    "add",
    "addLists",
    "eq",
    "exp",
    "id",
    "inv",
    "inv_back",
    "is_close",
    "log",
    "log_back",
    "lt",
    "map",
    "max",
    "mul",
    "neg",
    "negList",
    "prod",
    "reduce",
    "relu",
    "relu_back",
    "sigmoid",
    "sum",
    "zipWith",
]


# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------


def mul(x: float, y: float) -> float:
    """Multiply two numbers.

    f(x, y) = x * y
    """
    return x * y


def id(x: float) -> float:
    """Return the input unchanged (the identity function).

    f(x) = x
    """
    return x


def add(x: float, y: float) -> float:
    """Add two numbers.

    f(x, y) = x + y
    """
    return x + y


def neg(x: float) -> float:
    """Negate a number.

    f(x) = -x
    """
    return -x


def lt(x: float, y: float) -> float:
    """Test whether `x` is less than `y`, as a float.

    f(x, y) = 1.0 if x < y else 0.0

    The result is a float, not a bool, so that comparisons can be used in
    arithmetic (for example as a mask: `mul(lt(0.0, x), x)` is `relu(x)`).
    """
    return 1.0 if x < y else 0.0


def eq(x: float, y: float) -> float:
    """Test whether `x` equals `y`, as a float.

    f(x, y) = 1.0 if x == y else 0.0
    """
    return 1.0 if x == y else 0.0


def max(x: float, y: float) -> float:
    """Return the larger of two numbers.

    f(x, y) = x if x > y else y
    """
    if x > y:
        return x
    return y


def is_close(x: float, y: float) -> bool:
    """Test whether two numbers are close, with an absolute tolerance of 0.01.

    f(x, y) = |x - y| < 1e-2

    This loose tolerance is meant for tests and examples of the course, not
    for numerical work.
    """
    return abs(x - y) < 1e-2


def sigmoid(x: float) -> float:
    """The logistic sigmoid, which squashes any real number into (0, 1).

    f(x) = 1 / (1 + e^{-x})

    Evaluated as written, `e^{-x}` overflows for large negative `x`
    (e^{1000} does not fit in a float). The algebraically equal form

    f(x) = e^{x} / (1 + e^{x})

    only ever exponentiates a non-positive number when `x < 0`. So: use the
    first form for x >= 0 and the second for x < 0; then the exponential is
    always at most 1 and nothing overflows.
    """
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def relu(x: float) -> float:
    """The rectified linear unit: `x` where it is positive, else 0.

    f(x) = x if x > 0 else 0.0
    """
    if x > 0.0:
        return x
    return 0.0


def log(x: float) -> float:
    """The natural logarithm, defined for x > 0.

    f(x) = log(x)
    """
    return math.log(x)


def exp(x: float) -> float:
    """The exponential function.

    f(x) = e^{x}
    """
    return math.exp(x)


def inv(x: float) -> float:
    """The reciprocal, defined for x != 0.

    f(x) = 1 / x
    """
    return 1.0 / x


# ---------------------------------------------------------------------------
# Derivatives (for backpropagation)
# ---------------------------------------------------------------------------


def log_back(x: float, d: float) -> float:
    """Derivative of `log` at `x`, times the upstream derivative `d`.

    f(x) = log(x),   f'(x) = 1 / x,   so   log_back(x, d) = d / x
    """
    return d / x


def inv_back(x: float, d: float) -> float:
    """Derivative of `inv` at `x`, times the upstream derivative `d`.

    f(x) = 1 / x,   f'(x) = -1 / x^2,   so   inv_back(x, d) = -d / x^2
    """
    return -d / (x * x)


def relu_back(x: float, d: float) -> float:
    """Derivative of `relu` at `x`, times the upstream derivative `d`.

    f(x) = relu(x),   f'(x) = 1 if x > 0 else 0,   so   relu_back(x, d) = d if x > 0 else 0.0

    `relu` has no derivative at exactly 0; like most libraries, we use 0 there.
    """
    return d if x > 0.0 else 0.0


# ---------------------------------------------------------------------------
# Higher-order functions
# ---------------------------------------------------------------------------


def map(fn: Callable[[float], float]) -> Callable[[Iterable[float]], list[float]]:
    """Lift a function of one float to a function of a list of floats.

    `map(fn)` returns a new function that applies `fn` to every element:

        map(fn)([x1, x2, ..., xn]) = [fn(x1), fn(x2), ..., fn(xn)]

    Example: `map(neg)([1.0, -2.0, 3.0]) == [-1.0, 2.0, -3.0]`.

    The input may be any iterable (list, tuple, generator); the result is
    always a new list.
    """

    def apply(ls: Iterable[float]) -> list[float]:
        return [fn(x) for x in ls]

    return apply


def zipWith(
    fn: Callable[[float, float], float],
) -> Callable[[Iterable[float], Iterable[float]], list[float]]:
    """Lift a function of two floats to a function of two lists, element by element.

    `zipWith(fn)` returns a new function that pairs up the elements of its two
    inputs and applies `fn` to each pair:

        zipWith(fn)([x1, ..., xn], [y1, ..., yn]) = [fn(x1, y1), ..., fn(xn, yn)]

    Example: `zipWith(add)([1.0, 2.0], [10.0, 20.0]) == [11.0, 22.0]`.

    Like Python's `zip`, it stops at the end of the shorter input; callers are
    expected to pass inputs of the same length.
    """

    def apply(ls1: Iterable[float], ls2: Iterable[float]) -> list[float]:
        return [fn(x, y) for x, y in zip(ls1, ls2, strict=False)]

    return apply


def reduce(fn: Callable[[float, float], float], start: float) -> Callable[[Iterable[float]], float]:
    """Lift a function of two floats to a function that folds a list into one float.

    `reduce(fn, start)` returns a new function that combines the elements from
    left to right, beginning with the accumulator `start`:

        reduce(fn, start)([x1, x2, ..., xn]) = fn(...fn(fn(start, x1), x2)..., xn)

    The accumulator is always the *first* argument of `fn`. For an empty input
    the result is `start`.

    Example: `reduce(add, 0.0)([1.0, 2.0, 3.0])` computes
    `add(add(add(0.0, 1.0), 2.0), 3.0) == 6.0`.
    """

    def apply(ls: Iterable[float]) -> float:
        acc = start
        for x in ls:
            acc = fn(acc, x)
        return acc

    return apply


def negList(ls: Iterable[float]) -> list[float]:
    """Negate every element of a list, using `map`.

    negList([x1, ..., xn]) = [-x1, ..., -xn]
    """
    return map(neg)(ls)


def addLists(ls1: Iterable[float], ls2: Iterable[float]) -> list[float]:
    """Add two lists element by element, using `zipWith`.

    addLists([x1, ..., xn], [y1, ..., yn]) = [x1 + y1, ..., xn + yn]
    """
    return zipWith(add)(ls1, ls2)


def sum(ls: Iterable[float]) -> float:
    """Sum the elements of a list, using `reduce`.

    sum([x1, ..., xn]) = x1 + ... + xn,   and   sum([]) = 0.0
    """
    return reduce(add, 0.0)(ls)


def prod(ls: Iterable[float]) -> float:
    """Multiply the elements of a list, using `reduce`.

    prod([x1, ..., xn]) = x1 * ... * xn,   and   prod([]) = 1.0
    """
    return reduce(mul, 1.0)(ls)
