"""Neural network layers, a classifier and its training loop (task hw1.6).

The network of this task is a multi-layer perceptron for the 2-D datasets of
`minitorch.datasets`: each input is a point `(x0, x1)`, the output is the
probability that its label is 1.

    x (batch, 2) -> Linear(2, h) -> relu -> Linear(h, h) -> relu
                 -> Linear(h, 1) -> sigmoid -> p (batch,)

It is trained by gradient descent on the binary cross-entropy

    loss = -mean( y * log(p) + (1 - y) * log(1 - p) )

which is small when `p` is close to 1 for the points labelled 1 and close to
0 for the others. Everything is written with tensor operations (tasks hw1.4
and hw1.5), so the same code runs on `SimpleBackend` and on the fast backend.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from .datasets import Graph
from .module import Module, Parameter
from .optim import SGD
from .tensor import Tensor
from .tensor_functions import rand, tensor
from .tensor_ops import SimpleBackend, TensorBackend

__all__ = ["Epoch", "Linear", "Network", "binary_cross_entropy", "train"]


class Linear(Module):
    """An affine layer: `forward(x) = x @ weights + bias`.

    Attributes:
        weights: a `Parameter` of shape `(in_size, out_size)`.
        bias: a `Parameter` of shape `(out_size,)`.
    """

    def __init__(self, in_size: int, out_size: int, backend: TensorBackend = SimpleBackend) -> None:
        super().__init__()
        # Uniform in [-1/sqrt(in_size), 1/sqrt(in_size)), from Python's `random`.
        bound = 1.0 / math.sqrt(in_size)
        self.weights = Parameter(2.0 * bound * (rand((in_size, out_size), backend) - 0.5))
        self.bias = Parameter(2.0 * bound * (rand((out_size,), backend) - 0.5))
        self.out_size = out_size

    def forward(self, x: Tensor) -> Tensor:
        """`x @ weights + bias` for `x` of shape `(batch, in_size)`: shape `(batch, out_size)`.

        The bias (shape `(out_size,)`) broadcasts over the batch.
        """
        return x @ self.weights.value + self.bias.value


class Network(Module):
    """The classifier above: three `Linear` layers named `layer1`, `layer2`, `layer3`."""

    def __init__(self, hidden: int, backend: TensorBackend = SimpleBackend) -> None:
        super().__init__()
        self.layer1 = Linear(2, hidden, backend)
        self.layer2 = Linear(hidden, hidden, backend)
        self.layer3 = Linear(hidden, 1, backend)

    def forward(self, x: Tensor) -> Tensor:
        """The probability of label 1 for each point of `x` (batch, 2): shape `(batch,)`.

        relu after the first two layers, sigmoid after the last; the last
        layer's `(batch, 1)` output is viewed as `(batch,)`.
        """
        h = self.layer1.forward(x).relu()
        h = self.layer2.forward(h).relu()
        return self.layer3.forward(h).sigmoid().view(x.shape[0])


def binary_cross_entropy(p: Tensor, y: Tensor) -> Tensor:
    """`-mean(y * log(p) + (1 - y) * log(1 - p))`, a tensor of shape `(1,)`.

    `p` and `y` have the same shape; `y` holds 0s and 1s. Hint: for 0/1
    labels the bracket is `log(q)` with `q = y * p + (1 - y) * (1 - p)`, the
    probability given to the right label. Add 1e-12 to `q` before the log so
    that a saturated `p` (exactly 0.0 or 1.0) gives a large loss, not log(0).
    """
    q = y * p + (1.0 - y) * (1.0 - p)
    return -((q + 1e-12).log().mean())


@dataclass(frozen=True)
class Epoch:
    """One step of training: its number (from 1), the loss, and how many points
    the network classified correctly (p > 0.5 for label 1) *before* the step."""

    epoch: int
    loss: float
    correct: int


def train(
    data: Graph,
    hidden: int,
    learning_rate: float,
    max_epochs: int,
    backend: TensorBackend = SimpleBackend,
    seed: int = 0,
    target_accuracy: float = 1.0,
    log_fn: Callable[[Epoch], None] | None = None,
) -> list[Epoch]:
    """Train a fresh `Network(hidden)` on `data` by full-batch gradient descent.

    Seeds Python's `random` with `seed` (so the initial weights are fixed),
    then, for each epoch until `max_epochs`: clear the gradients, compute the
    network's output on all points and the loss, backpropagate, step the
    optimizer (`SGD` with `learning_rate`), and record an `Epoch`. Stops early
    once the fraction of correct points reaches `target_accuracy`.

    Returns:
        The recorded epochs, in order.
    """
    random.seed(seed)
    model = Network(hidden, backend)
    optimizer = SGD(model.parameters(), learning_rate)
    X = tensor(data.X, backend=backend)
    y = tensor([float(v) for v in data.y], backend=backend)
    history: list[Epoch] = []
    for epoch in range(1, max_epochs + 1):
        optimizer.zero_grad()
        p = model.forward(X)
        loss = binary_cross_entropy(p, y)
        loss.backward()
        optimizer.step()
        correct = int(((p.detach() > 0.5) == y).sum().item())
        record = Epoch(epoch, loss.item(), correct)
        history.append(record)
        if log_fn is not None:
            log_fn(record)
        if record.correct >= target_accuracy * data.N:
            break
    return history
