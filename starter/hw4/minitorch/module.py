"""`Module` and `Parameter`: models as trees of modules that own parameters.

A model is a `Module` whose attributes are its parameters (`Parameter`) and
its sub-modules (other `Module`s), registered automatically when assigned:

    class Affine(Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = Parameter(tensor([2.0]))
            self.b = Parameter(tensor([0.5]))

        def forward(self, x: Tensor) -> Tensor:
            return x * self.w.value + self.b.value

`model(x)` calls `forward`; `model.parameters()` lists every parameter of the
tree, which is what an optimizer updates. This file is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Module", "Parameter"]


class Module:
    """A node of a model: parameters, sub-modules and a `forward` method.

    Attributes:
        training: True in training mode (the default), False after `eval()`.
    """

    def __init__(self) -> None:
        self.__dict__["_modules"] = {}
        self.__dict__["_parameters"] = {}
        self.training = True

    def modules(self) -> Sequence[Module]:
        """The direct sub-modules."""
        return list(self.__dict__["_modules"].values())

    def children(self) -> Sequence[Module]:
        return self.modules()

    def train(self) -> None:
        """Set training mode on this module and all of its descendants."""
        self.training = True
        for m in self.modules():
            m.train()

    def eval(self) -> None:
        """Set evaluation mode on this module and all of its descendants."""
        self.training = False
        for m in self.modules():
            m.eval()

    def named_parameters(self) -> Sequence[tuple[str, Parameter]]:
        """Every parameter of the tree, named by its path (`layer1.weights`)."""
        named = list(self.__dict__["_parameters"].items())
        for name, module in self.__dict__["_modules"].items():
            named.extend((f"{name}.{sub}", p) for sub, p in module.named_parameters())
        return named

    def parameters(self) -> Sequence[Parameter]:
        """Every parameter of the tree."""
        return [p for _, p in self.named_parameters()]

    def add_parameter(self, k: str, v: Any) -> Parameter:
        """Register `v` as parameter `k` (wrapped in a `Parameter`)."""
        p = Parameter(v, k)
        self.__dict__["_parameters"][k] = p
        return p

    def __setattr__(self, key: str, val: Any) -> None:
        if isinstance(val, Parameter):
            self.__dict__["_parameters"][key] = val
        elif isinstance(val, Module):
            self.__dict__["_modules"][key] = val
        else:
            super().__setattr__(key, val)

    def __getattr__(self, key: str) -> Any:
        if key in self.__dict__["_parameters"]:
            return self.__dict__["_parameters"][key]
        if key in self.__dict__["_modules"]:
            return self.__dict__["_modules"][key]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {key!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        lines += [f"  ({name}): {m!r}".replace("\n", "\n  ") for name, m in self._modules.items()]
        return "\n".join([*lines, ")"]) if len(lines) > 1 else f"{type(self).__name__}()"


class Parameter:
    """A value a model learns (a `Tensor` or `Scalar`), marked as a leaf that gets a gradient."""

    def __init__(self, x: Any, name: str | None = None) -> None:
        self.value = x
        self.name = name
        if hasattr(x, "requires_grad_"):
            self.value.requires_grad_(True)
            if self.name:
                self.value.name = self.name

    def update(self, x: Any) -> None:
        """Replace the value (keeping it a leaf that gets a gradient)."""
        self.value = x
        if hasattr(x, "requires_grad_"):
            self.value.requires_grad_(True)
            if self.name:
                self.value.name = self.name

    def __repr__(self) -> str:
        return repr(self.value)
