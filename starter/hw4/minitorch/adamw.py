"""AdamW: Adam with decoupled weight decay (task hw3.4), as `torch.optim.AdamW`.

For each parameter `p` with gradient `g`, at its step `t = 1, 2, ...`:

    p = p * (1 - lr * weight_decay)                (decoupled weight decay)
    m = beta1 * m + (1 - beta1) * g                (first moment, m_0 = 0)
    v = beta2 * v + (1 - beta2) * g^2              (second moment, v_0 = 0)
    m_hat = m / (1 - beta1^t)                      (bias corrections)
    v_hat = v / (1 - beta2^t)
    p = p - lr * m_hat / (sqrt(v_hat) + eps)

The decay multiplies the parameter itself, not the gradient: that is what
distinguishes AdamW from Adam with an L2 penalty. A parameter without a
gradient (`grad is None`) is skipped, and its `t` does not advance.

The moments are optimizer state, never part of a computation graph: they
are NumPy arrays of each parameter's shape, and the update is computed with
NumPy on the values (`to_numpy()`), then stored as a fresh leaf tensor
(`Parameter.update`), as `SGD.step` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .module import Parameter
from .optim import Optimizer
from .tensor import Tensor

__all__ = ["AdamState", "AdamW"]


@dataclass
class AdamState:
    """What AdamW keeps for one parameter: its step count and both moments."""

    step: int
    m: np.ndarray
    v: np.ndarray


class AdamW(Optimizer):
    """AdamW over tensor parameters (see the module's docstring).

    Attributes:
        lr, betas, eps, weight_decay: the hyper-parameters (PyTorch's defaults).
        state: per parameter (by its position in `parameters`), its
            `AdamState`, made (step 0, zero moments) at its first step.
    """

    def __init__(
        self,
        parameters: Sequence[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(parameters)
        if not lr >= 0.0 or not eps >= 0.0 or not weight_decay >= 0.0:
            raise ValueError("lr, eps and weight_decay must be >= 0")
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), not {betas}")
        self.lr = float(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.state: dict[int, AdamState] = {}

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (backpropagation adds to them)."""
        for p in self.parameters:
            if hasattr(p.value, "grad"):
                p.value.grad = None

    def step(self) -> None:
        """One AdamW update of every parameter that has a gradient.

        Plan: per parameter, the value and the gradient as NumPy arrays, the
        state (zeros at the first step), the formulas of the module's
        docstring in their order, and `p.update` with a new tensor of the
        parameter's shape and backend.
        """
        beta1, beta2 = self.betas
        for index, p in enumerate(self.parameters):
            value = p.value
            grad = getattr(value, "grad", None)
            if grad is None:
                continue
            g = grad.to_numpy()
            w = value.to_numpy()
            if index not in self.state:
                self.state[index] = AdamState(0, np.zeros_like(w), np.zeros_like(w))
            state = self.state[index]
            state.step += 1
            state.m = beta1 * state.m + (1.0 - beta1) * g
            state.v = beta2 * state.v + (1.0 - beta2) * g * g
            w = w * (1.0 - self.lr * self.weight_decay)
            m_hat = state.m / (1.0 - beta1**state.step)
            v_hat = state.v / (1.0 - beta2**state.step)
            w = w - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            p.update(Tensor.make(w.ravel(), value.shape, backend=value.backend))
