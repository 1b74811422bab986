"""Optimizers: what to do with the gradients once backpropagation has computed them."""

from __future__ import annotations

from collections.abc import Sequence

from .module import Parameter

__all__ = ["SGD", "Optimizer"]


class Optimizer:
    """Holds the parameters it updates."""

    def __init__(self, parameters: Sequence[Parameter]) -> None:
        self.parameters = list(parameters)


class SGD(Optimizer):
    """Stochastic gradient descent: `value <- value - lr * grad` for every parameter."""

    def __init__(self, parameters: Sequence[Parameter], lr: float = 1.0) -> None:
        super().__init__(parameters)
        self.lr = lr

    def zero_grad(self) -> None:
        """Forget the gradients of the last step (backpropagation *adds* to them)."""
        for p in self.parameters:
            value = p.value
            if hasattr(value, "grad"):
                value.grad = None
            if hasattr(value, "derivative"):
                value.derivative = None

    def step(self) -> None:
        """Move every parameter that has a gradient one step against it.

        For a tensor parameter `p`: `p.update(p.value - lr * p.value.grad)`.
        The new value must be a fresh leaf, not a result computed from the old
        one (otherwise every step's graph would hang on to all earlier ones):
        compute it from the *detached* value and gradient. Parameters without
        a gradient (`grad is None`: not used by the loss) are left alone.
        Scalar parameters (`derivative` instead of `grad`) work the same way.
        """
        for p in self.parameters:
            value = p.value
            grad = getattr(value, "grad", None)
            if grad is not None:
                p.update(value.detach() - grad.detach() * self.lr)
                continue
            derivative = getattr(value, "derivative", None)
            if derivative is not None:
                p.update(type(value)(value.data - self.lr * derivative))
