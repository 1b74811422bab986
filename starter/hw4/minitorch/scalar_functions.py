"""Differentiable functions of scalars.

Each function is a class with two static methods:

- `forward(ctx, *inputs) -> float` computes the value from plain floats, and
  saves in `ctx` (a `Context`) whatever the backward pass will need;
- `backward(ctx, d_output)` receives `d_output`, the derivative of the final
  output with respect to this function's result, and returns the derivative
  of the final output with respect to each input: one float for a function of
  one argument, a tuple of two floats for a function of two. By the chain rule
  that is `d_output` times the partial derivative of the function.

You never call `forward` or `backward` yourself. `Mul.apply(x, y)` (which
`x * y` calls) unwraps the scalars, calls `forward`, and records the function,
its context and its inputs in the history of the resulting `Scalar`; during
backpropagation, `Scalar.chain_rule` calls `backward` through `_backward`.

Use the operators of `minitorch.operators` (task hw1.1) for the arithmetic:
`operators.mul`, `operators.log_back`, `operators.sigmoid` and so on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import operators
from .autodiff import Context

if TYPE_CHECKING:
    from .scalar import Scalar, ScalarLike

__all__ = [
    "EQ",
    "LT",
    "Add",
    "Exp",
    "Inv",
    "Log",
    "Mul",
    "Neg",
    "ReLU",
    "ScalarFunction",
    "Sigmoid",
]


def wrap_tuple(x: Any) -> tuple[Any, ...]:
    """`x` itself if it is a tuple, else the tuple `(x,)`."""
    if isinstance(x, tuple):
        return x
    return (x,)


class ScalarFunction:
    """A differentiable function of scalars; subclasses define `forward` and `backward`."""

    @classmethod
    def _forward(cls, ctx: Context, *inps: float) -> float:
        """The value of the function, as a float."""
        return float(cls.forward(ctx, *inps))  # type: ignore[attr-defined]

    @classmethod
    def _backward(cls, ctx: Context, d_out: float) -> tuple[float, ...]:
        """The derivatives with respect to the inputs, always as a tuple of floats."""
        return tuple(float(d) for d in wrap_tuple(cls.backward(ctx, d_out)))  # type: ignore[attr-defined]

    @classmethod
    def apply(cls, *vals: ScalarLike) -> Scalar:
        """Apply the function to scalars (or plain numbers), recording the history.

        Plain numbers are wrapped as constants. If every input is a constant,
        the result is a constant too (no derivative can flow through it).
        """
        from .scalar import Scalar, ScalarHistory

        scalars: list[Scalar] = []
        raw: list[float] = []
        for v in vals:
            if isinstance(v, Scalar):
                scalars.append(v)
                raw.append(v.data)
            else:
                scalars.append(Scalar(v, None))
                raw.append(float(v))

        needs_grad = any(not s.is_constant() for s in scalars)
        ctx = Context(no_grad=not needs_grad)
        value = cls._forward(ctx, *raw)
        history = ScalarHistory(cls, ctx, tuple(scalars)) if needs_grad else None
        return Scalar(value, history)


# ---------------------------------------------------------------------------
# Functions of two scalars
# ---------------------------------------------------------------------------


class Add(ScalarFunction):
    """Addition: f(a, b) = a + b."""

    @staticmethod
    def forward(ctx: Context, a: float, b: float) -> float:
        """Return a + b."""
        return operators.add(a, b)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> tuple[float, float]:
        """The chain rule: (df/da * d_output, df/db * d_output) for f(a, b) = a + b."""
        return d_output, d_output


class Mul(ScalarFunction):
    """Multiplication: f(a, b) = a * b."""

    @staticmethod
    def forward(ctx: Context, a: float, b: float) -> float:
        """Return a * b; save both inputs, which the backward pass needs."""
        ctx.save_for_backward(a, b)
        return operators.mul(a, b)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> tuple[float, float]:
        """The chain rule: (df/da * d_output, df/db * d_output) for f(a, b) = a * b; the
        partial derivatives need the inputs that `forward` saved."""
        a, b = ctx.saved_values
        return operators.mul(b, d_output), operators.mul(a, d_output)


class LT(ScalarFunction):
    """Less-than: f(a, b) = 1.0 if a < b else 0.0."""

    @staticmethod
    def forward(ctx: Context, a: float, b: float) -> float:
        """Return 1.0 if a < b else 0.0 (a float, see `operators.lt`)."""
        return operators.lt(a, b)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> tuple[float, float]:
        """f is piecewise constant: its derivative is 0 for both inputs, everywhere.

        (At a == b it jumps and has no derivative; we use 0 there too.)
        Return (0.0, 0.0).
        """
        return 0.0, 0.0


class EQ(ScalarFunction):
    """Equality: f(a, b) = 1.0 if a == b else 0.0."""

    @staticmethod
    def forward(ctx: Context, a: float, b: float) -> float:
        """Return 1.0 if a == b else 0.0 (a float, see `operators.eq`)."""
        return operators.eq(a, b)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> tuple[float, float]:
        """Like `LT`: what is the derivative of a piecewise constant function?"""
        return 0.0, 0.0


# ---------------------------------------------------------------------------
# Functions of one scalar
# ---------------------------------------------------------------------------


class Neg(ScalarFunction):
    """Negation: f(a) = -a."""

    @staticmethod
    def forward(ctx: Context, a: float) -> float:
        """Return -a."""
        return operators.neg(a)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> float:
        """The chain rule: f'(a) * d_output for f(a) = -a."""
        return operators.neg(d_output)


class Inv(ScalarFunction):
    """Reciprocal: f(a) = 1 / a (a != 0). Division `x / y` is `x * Inv(y)`."""

    @staticmethod
    def forward(ctx: Context, a: float) -> float:
        """Return 1 / a; save a."""
        ctx.save_for_backward(a)
        return operators.inv(a)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> float:
        """The chain rule: f'(a) * d_output for f(a) = 1 / a (see `operators.inv_back`)."""
        (a,) = ctx.saved_values
        return operators.inv_back(a, d_output)


class Log(ScalarFunction):
    """Natural logarithm: f(a) = log(a) (a > 0)."""

    @staticmethod
    def forward(ctx: Context, a: float) -> float:
        """Return log(a); save a."""
        ctx.save_for_backward(a)
        return operators.log(a)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> float:
        """The chain rule: f'(a) * d_output for f(a) = log(a) (see `operators.log_back`).

        Use the exact formula: near 0 the derivative is huge (1e8 at a = 1e-8),
        and "safe" variants such as d_output / (a + 1e-6) are wrong there.
        """
        (a,) = ctx.saved_values
        return operators.log_back(a, d_output)


class Exp(ScalarFunction):
    """Exponential: f(a) = e^{a}."""

    @staticmethod
    def forward(ctx: Context, a: float) -> float:
        """Return e^{a}; save the result, which is also the derivative."""
        out = operators.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, d_output: float) -> float:
        """The chain rule: f'(a) * d_output for f(a) = e^{a}; `forward` saved what it needs."""
        (out,) = ctx.saved_values
        return operators.mul(out, d_output)


class Sigmoid(ScalarFunction):
    """Logistic sigmoid: f(a) = 1 / (1 + e^{-a})."""

    @staticmethod
    def forward(ctx: Context, a: float) -> float:
        """Return sigmoid(a) with `operators.sigmoid` (it does not overflow); save it."""
        out = operators.sigmoid(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, d_output: float) -> float:
        """The chain rule: f'(a) * d_output, where f'(a) = sigmoid(a) * (1 - sigmoid(a)).

        It must be right for every float a: e^{-a} overflows for a < -709, so
        do not compute the derivative from e^{-a} directly; reuse sigmoid(a).
        For large negative a the derivative is tiny but not 0 (about 4e-18 at
        a = -40).
        """
        (s,) = ctx.saved_values
        return operators.mul(operators.mul(s, 1.0 - s), d_output)


class ReLU(ScalarFunction):
    """Rectified linear unit: f(a) = a if a > 0 else 0."""

    @staticmethod
    def forward(ctx: Context, a: float) -> float:
        """Return relu(a); save a."""
        ctx.save_for_backward(a)
        return operators.relu(a)

    @staticmethod
    def backward(ctx: Context, d_output: float) -> float:
        """The chain rule: f'(a) * d_output for f(a) = relu(a) (see `operators.relu_back`).

        At a == 0 the derivative is 0, as in `operators.relu_back`.
        """
        (a,) = ctx.saved_values
        return operators.relu_back(a, d_output)
