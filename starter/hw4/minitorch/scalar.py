"""`Scalar`: a float that remembers how it was computed, and can be differentiated.

    >>> x = Scalar(2.0, name="x")
    >>> y = x * x + x          # every operation records its inputs
    >>> y.backward()           # backpropagation, starting from dy/dy = 1
    >>> x.derivative           # dy/dx = 2x + 1
    5.0

A `Scalar` is one of three kinds (see `minitorch.autodiff`):

- a **leaf**, made by the user: `Scalar(2.0)`. Its `history` is an empty
  `ScalarHistory`; backpropagation stores its derivative in `derivative`;
- an **intermediate** value, made by a `ScalarFunction`: its `history` names
  the function, the function's `Context` and the input scalars;
- a **constant**: `Scalar(3.0, None)`, with no history at all. Plain numbers
  mixed with scalars (the `3.0` in `x * 3.0`) become constants. Constants get
  no derivative, and backpropagation does not visit them.

Only `Scalar.chain_rule` is yours to write in this file (task hw1.2); the rest
is given.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from .autodiff import Context, Variable, backpropagate, central_difference
from .scalar_functions import (
    EQ,
    LT,
    Add,
    Exp,
    Inv,
    Log,
    Mul,
    Neg,
    ReLU,
    ScalarFunction,
    Sigmoid,
)

__all__ = ["Scalar", "ScalarHistory", "ScalarLike", "derivative_check"]

#: What the arithmetic of a `Scalar` accepts on the other side.
ScalarLike: TypeAlias = "float | int | Scalar"


@dataclass(frozen=True)
class ScalarHistory:
    """How a `Scalar` was computed.

    Attributes:
        last_fn: the `ScalarFunction` class that computed it (None for a leaf).
        ctx: the `Context` of that application (None for a leaf).
        inputs: the scalars the function was applied to, in order (empty for a leaf).
    """

    last_fn: type[ScalarFunction] | None = None
    ctx: Context | None = None
    inputs: Sequence[Scalar] = ()


#: The history of every leaf: no function, no context, no inputs.
LEAF = ScalarHistory()

_ids = itertools.count(1)


class Scalar:
    """A float in a computation graph.

    Attributes:
        data: the value.
        history: how it was computed (`LEAF` for a leaf, None for a constant).
        derivative: for a leaf, the derivative accumulated by backpropagation
            (None until the first `backward`).
        unique_id: a number no other `Scalar` of this process has.
        name: a label for printing and debugging (by default, the unique id).
    """

    def __init__(
        self, v: float, back: ScalarHistory | None = LEAF, name: str | None = None
    ) -> None:
        self.data = float(v)
        self.history = back
        self.derivative: float | None = None
        self.unique_id: int = next(_ids)
        self.name = name if name is not None else str(self.unique_id)

    def __repr__(self) -> str:
        return f"Scalar({self.data})"

    # -- arithmetic: each operator applies a ScalarFunction ------------------

    def __add__(self, b: ScalarLike) -> Scalar:
        return Add.apply(self, b)

    def __radd__(self, b: ScalarLike) -> Scalar:
        return Add.apply(b, self)

    def __sub__(self, b: ScalarLike) -> Scalar:
        return Add.apply(self, Neg.apply(b))

    def __rsub__(self, b: ScalarLike) -> Scalar:
        return Add.apply(b, Neg.apply(self))

    def __mul__(self, b: ScalarLike) -> Scalar:
        return Mul.apply(self, b)

    def __rmul__(self, b: ScalarLike) -> Scalar:
        return Mul.apply(b, self)

    def __truediv__(self, b: ScalarLike) -> Scalar:
        return Mul.apply(self, Inv.apply(b))

    def __rtruediv__(self, b: ScalarLike) -> Scalar:
        return Mul.apply(b, Inv.apply(self))

    def __neg__(self) -> Scalar:
        return Neg.apply(self)

    def __lt__(self, b: ScalarLike) -> Scalar:
        return LT.apply(self, b)

    def __gt__(self, b: ScalarLike) -> Scalar:
        return LT.apply(b, self)

    def __eq__(self, b: ScalarLike) -> Scalar:  # type: ignore[override]
        return EQ.apply(self, b)

    # `==` builds a Scalar, so scalars cannot be hashed: key them by `unique_id`.
    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return self.data

    def log(self) -> Scalar:
        """The natural logarithm (requires data > 0)."""
        return Log.apply(self)

    def exp(self) -> Scalar:
        """The exponential."""
        return Exp.apply(self)

    def sigmoid(self) -> Scalar:
        """The logistic sigmoid."""
        return Sigmoid.apply(self)

    def relu(self) -> Scalar:
        """The rectified linear unit."""
        return ReLU.apply(self)

    # -- the Variable interface used by backpropagation ----------------------

    def is_leaf(self) -> bool:
        """Whether this scalar was created by the user (it has an empty history)."""
        return self.history is not None and self.history.last_fn is None

    def is_constant(self) -> bool:
        """Whether this scalar is a constant (it has no history)."""
        return self.history is None

    @property
    def parents(self) -> Iterable[Variable]:
        """The inputs of the function that computed this scalar."""
        assert self.history is not None, "a constant has no parents"
        return self.history.inputs

    def accumulate_derivative(self, x: float) -> None:
        """Add `x` to this leaf's `derivative` (which starts at None, i.e. 0)."""
        assert self.is_leaf(), "only leaves store derivatives"
        if self.derivative is None:
            self.derivative = 0.0
        self.derivative += x

    def chain_rule(self, d_output: float) -> Iterable[tuple[Variable, float]]:
        """One step of the chain rule, from this scalar to the inputs of its function.

        This scalar was computed as `f(x1, ..., xn)` by `h.last_fn` (where
        `h = self.history`), from the inputs `h.inputs`, with context `h.ctx`.
        Given `d_output` (the derivative of the final output with respect to
        this scalar), the derivative with respect to input `xi` is

            d_output * df/dxi

        and `h.last_fn._backward(h.ctx, d_output)` returns exactly these
        numbers, as a tuple with one entry per input, in order.

        Returns:
            A list of `(input, derivative)` pairs, in the order of `h.inputs`,
            leaving out the inputs that are constants. An input used twice
            (`x * x`) appears twice, once per use.
        """
        h = self.history
        assert h is not None and h.last_fn is not None and h.ctx is not None
        derivatives = h.last_fn._backward(h.ctx, d_output)
        return [
            (inp, d) for inp, d in zip(h.inputs, derivatives, strict=True) if not inp.is_constant()
        ]

    def backward(self, d_output: float | None = None) -> None:
        """Backpropagate from this scalar: fill in the derivatives of its leaves.

        Args:
            d_output: the derivative of the final output with respect to this
                scalar; by default 1.0 (this scalar *is* the final output).
        """
        if d_output is None:
            d_output = 1.0
        backpropagate(self, d_output)


def derivative_check(f: Callable[..., Scalar], *scalars: Scalar) -> None:
    """Check the derivatives of `f` computed by backpropagation against central differences.

    Calls `f(*scalars).backward()` and compares each scalar's `derivative`
    with `central_difference` of `f` at the same point. The scalars' previous
    derivatives are cleared first.

    Raises:
        AssertionError: naming the argument, the point, and both derivatives,
            if they differ by more than 1e-2 (relative or absolute).
    """
    for x in scalars:
        x.derivative = None
    out = f(*scalars)
    out.backward()

    point = [x.data for x in scalars]

    def on_floats(*xs: float) -> float:
        return f(*(Scalar(v) for v in xs)).data

    for i, x in enumerate(scalars):
        expected = central_difference(on_floats, *point, arg=i)
        actual = 0.0 if x.derivative is None else x.derivative
        if not math.isclose(actual, expected, rel_tol=1e-2, abs_tol=1e-2):
            raise AssertionError(
                f"derivative check failed for argument {i} of {getattr(f, '__name__', f)!r} "
                f"at {point}: backpropagation gives {actual!r}, central difference "
                f"gives {expected!r}. Check the backward of the functions f uses."
            )
