"""Automatic differentiation on a computation graph (reverse mode).

Every value that miniTorch computes remembers how it was made: the function
that produced it and the values that function was applied to. These records
form a *computation graph*, a directed acyclic graph whose edges point from each
value to the inputs (its *parents*) it was computed from:

        x ----.
               (*) ---> a ---.
        y ----'               (+) ---> out
        x ------------------'

Backpropagation computes the derivative of the final value (`out`) with respect
to every value in the graph, walking it backwards from `out` to the inputs and
applying the chain rule at each node. This module holds the parts of that
algorithm that do not depend on what a value is (a `Scalar` in task hw1.2, a
`Tensor` later):

- `central_difference`: a numerical estimate of a derivative, used to check
  the exact derivatives that backpropagation computes;
- `Variable`: the interface a value must offer to take part in backpropagation;
- `topological_sort`: the order in which to visit the graph;
- `backpropagate`: the algorithm itself;
- `Context`: where a function keeps what its backward pass needs.

Words used below, for a variable `v` of the graph:

- a **leaf** is a variable created by the user (not computed by a function),
  such as `x = Scalar(2.0)`; leaves are where derivatives are stored;
- a **constant** is a value that does not need a derivative at all, such as
  the `3.0` in `x * 3.0`; constants have no history and are skipped everywhere;
- every other variable is an **intermediate** value: it was computed by a
  function, and its `parents` are that function's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Context",
    "Variable",
    "backpropagate",
    "central_difference",
    "topological_sort",
]


# ---------------------------------------------------------------------------
# Numerical derivatives
# ---------------------------------------------------------------------------


def central_difference(
    f: Callable[..., Any], *vals: Any, arg: int = 0, epsilon: float = 1e-6
) -> Any:
    """Estimate the partial derivative of `f` with respect to one of its arguments.

    `f` is a function of `len(vals)` arguments and `vals` is the point at which
    to differentiate it. With `x = vals[arg]`, the central difference is

        f'(x) ~ (f(..., x + epsilon, ...) - f(..., x - epsilon, ...)) / (2 * epsilon)

    where every argument other than the `arg`-th keeps its value from `vals`.
    Its error shrinks like `epsilon^2` (a one-sided difference's only like
    `epsilon`), which makes it a good check of exact derivatives.

    Args:
        f: the function to differentiate.
        *vals: the arguments of `f` at which to estimate the derivative.
        arg: the position (0-based) of the argument to differentiate by.
        epsilon: the step; the estimate uses `f` at `x - epsilon` and `x + epsilon`.

    Returns:
        The estimate above. For floats it is a float; `f` is only ever called
        with `vals` with the `arg`-th entry shifted, so the same code works for
        any values that support `+`, `-` and `/`.
    """
    upper = list(vals)
    lower = list(vals)
    upper[arg] = upper[arg] + epsilon
    lower[arg] = lower[arg] - epsilon
    return (f(*upper) - f(*lower)) / (2.0 * epsilon)


# ---------------------------------------------------------------------------
# The interface of a variable in the graph
# ---------------------------------------------------------------------------


class Variable(Protocol):
    """What backpropagation needs from a value of the computation graph.

    `Scalar` (task hw1.2) and, later, `Tensor` implement it.
    """

    def accumulate_derivative(self, x: Any) -> None:
        """Add `x` to the derivative stored on this variable (leaves only)."""
        ...

    @property
    def unique_id(self) -> int:
        """A number that identifies this variable; no two variables share one.

        Variables are not hashable (`==` builds a new variable instead of
        comparing), so use `unique_id` as the key of dictionaries and sets.
        """
        ...

    def is_leaf(self) -> bool:
        """Whether this variable was created by the user, not computed by a function."""
        ...

    def is_constant(self) -> bool:
        """Whether this variable needs no derivative (it has no history)."""
        ...

    @property
    def parents(self) -> Iterable[Variable]:
        """The inputs of the function that computed this variable."""
        ...

    def chain_rule(self, d_output: Any) -> Iterable[tuple[Variable, Any]]:
        """One step of the chain rule: the derivative with respect to each parent.

        Given `d_output`, the derivative of the final output with respect to
        this variable, return `(parent, derivative of the final output with
        respect to parent)` for every input of the function that computed this
        variable (constants left out).
        """
        ...


# ---------------------------------------------------------------------------
# Backpropagation
# ---------------------------------------------------------------------------


def topological_sort(variable: Variable) -> Iterable[Variable]:
    """The variables of the graph of `variable`, each before its parents.

    The result contains `variable` and every variable it was computed from,
    directly or indirectly (follow `parents`), with these rules:

    - `variable` itself comes first ("right-most" first: the output of the
      computation, then what it was computed from, down to the leaves);
    - every variable comes *before* each of its parents, i.e. after every
      variable that was computed from it. So when backpropagation reaches a
      variable, every contribution to its derivative has been collected;
    - every variable appears exactly once, however many paths lead to it
      (in `x * x + x`, `x` is reached three times but is listed once). Tell
      variables apart by `unique_id`;
    - constants (`is_constant()`) are left out, together with anything below
      them (a constant has no parents anyway).

    Hint: a depth-first search that appends a variable after visiting all of
    its parents produces every variable *after* its parents; reverse that list.
    Mark variables as visited by `unique_id`. The graphs of the course are at
    most a few hundred variables deep, so a recursive search is fine.

    Args:
        variable: the right-most variable (the output of the computation).

    Returns:
        The variables in the order described above (any iterable: a list is fine).
    """
    # An iterative depth-first search (no recursion limit on long chains):
    # each stack entry is a variable and whether its parents are already pushed.
    if variable.is_constant():
        return []
    visited: set[int] = set()
    finished: list[Variable] = []
    stack: list[tuple[Variable, bool]] = [(variable, False)]
    while stack:
        var, expanded = stack.pop()
        if expanded:
            finished.append(var)
            continue
        if var.unique_id in visited:
            continue
        visited.add(var.unique_id)
        stack.append((var, True))
        if not var.is_leaf():
            for parent in var.parents:
                if not parent.is_constant() and parent.unique_id not in visited:
                    stack.append((parent, False))
    finished.reverse()
    return finished


def backpropagate(variable: Variable, deriv: Any) -> None:
    """Compute the derivative of `variable` with respect to every leaf of its graph.

    `deriv` is the derivative of the final output with respect to `variable`
    (1.0 when `variable` is the final output itself). The algorithm:

    1. Visit the variables in `topological_sort(variable)` order, keeping a
       dictionary from `unique_id` to the derivative collected so far; it
       starts as `{variable.unique_id: deriv}`.
    2. For a leaf, call `leaf.accumulate_derivative(d)` with its collected
       derivative `d`. Only leaves store derivatives: do not call
       `accumulate_derivative` on any other variable.
    3. For any other variable, call `var.chain_rule(d)` and *add* each
       `(parent, d_parent)` it returns to that parent's entry. A variable
       used several times receives one contribution per use; its derivative
       is their sum (the multivariate chain rule). Overwriting the entry
       instead of adding to it is the classic bug.

    Because of the topological order, a variable's entry is complete (all of
    its contributions are in) before the variable is visited.

    Args:
        variable: the right-most variable.
        deriv: the derivative of the final output with respect to `variable`.

    Returns:
        None. The results are written to the leaves' `derivative` through
        `accumulate_derivative`.
    """
    derivatives: dict[int, Any] = {variable.unique_id: deriv}
    for var in topological_sort(variable):
        d = derivatives.pop(var.unique_id)
        if var.is_leaf():
            var.accumulate_derivative(d)
            continue
        for parent, d_parent in var.chain_rule(d):
            if parent.is_constant():
                continue
            key = parent.unique_id
            if key in derivatives:
                derivatives[key] = derivatives[key] + d_parent
            else:
                derivatives[key] = d_parent


# ---------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------


@dataclass
class Context:
    """What a function's forward pass keeps for its backward pass.

    Each application of a function gets a fresh `Context`. In `forward`, call
    `ctx.save_for_backward(a, b)` with the values `backward` will need; in
    `backward`, read them back with `a, b = ctx.saved_values`.

    Attributes:
        no_grad: True when no derivative will be asked for (every input is a
            constant); then `save_for_backward` saves nothing.
        saved_values: the values given to the last `save_for_backward` call.
    """

    no_grad: bool = False
    saved_values: tuple[Any, ...] = ()

    def save_for_backward(self, *values: Any) -> None:
        """Keep `values` for the backward pass (unless `no_grad`)."""
        if self.no_grad:
            return
        self.saved_values = values

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """The saved values (the name used by tensor functions)."""
        return self.saved_values
