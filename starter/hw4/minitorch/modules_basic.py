"""The basic layers of a Transformer (task hw3.2): `Linear`, `Embedding`,
`Dropout` and `LayerNorm1d`.

    >>> layer = Linear(16, 32, rng=0)
    >>> y = layer(x)        # x of shape (..., 16): y of shape (..., 32)

Every layer computes on the tensor backend given as `backend`
(`FastTensorBackend` by default; `SimpleBackend` is fine for tiny inputs).

Randomness never comes from Python's `random`: initial values, and the
masks of `Dropout`, are drawn from a `numpy.random.Generator`. The `rng`
argument of every layer is such a generator (used, and advanced, as it is),
an int seed (`numpy.random.default_rng(seed)`), or None (seed 0). Models
made of several layers pass one generator to all of them, so the whole
model is fixed by one seed.

Initial values (drawn in this order):

- `Linear`: weights, then bias, each uniform in `[-1/sqrt(in_size), 1/sqrt(in_size))`
  (PyTorch's default);
- `Embedding`: weights from the standard normal distribution (PyTorch's default);
- `LayerNorm1d`: weights 1, bias 0 (nothing drawn).
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np

from .fast_ops import FastTensorBackend
from .module import Module, Parameter
from .nn_functions import dropout, expand, gather_rows
from .tensor import Tensor
from .tensor_ops import TensorBackend

__all__ = ["Dropout", "Embedding", "LayerNorm1d", "Linear", "Rng", "make_rng", "parameter"]

#: What layers accept as their source of randomness (see the module's docstring).
Rng: TypeAlias = "np.random.Generator | int | None"


def make_rng(rng: Rng) -> np.random.Generator:
    """A generator from an `rng` argument: the same generator, a seeded one, or seed 0."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, not {rng!r}")


def parameter(values: np.ndarray, backend: TensorBackend) -> Parameter:
    """A `Parameter` holding a new tensor with a copy of `values` (any shape)."""
    values = np.array(values, dtype=np.float64)
    return Parameter(Tensor.make(values.ravel(), values.shape, backend=backend))


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return int(value)


class Linear(Module):
    """An affine map of the last dimension: `forward(x) = x @ weights + bias`.

    Attributes:
        weights: a `Parameter` of shape `(in_size, out_size)`.
        bias: a `Parameter` of shape `(out_size,)`, or None when `bias=False`.
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        bias: bool = True,
        backend: TensorBackend = FastTensorBackend,
        rng: Rng = None,
    ) -> None:
        super().__init__()
        self.in_size = _positive("in_size", in_size)
        self.out_size = _positive("out_size", out_size)
        gen = make_rng(rng)
        bound = 1.0 / math.sqrt(in_size)
        self.weights = parameter(gen.uniform(-bound, bound, (in_size, out_size)), backend)
        self.bias = parameter(gen.uniform(-bound, bound, (out_size,)), backend) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """`x @ weights + bias` for `x` of shape `(..., in_size)`: shape `(..., out_size)`.

        Plan: the matrix product of the backends takes 2-D (or 3-D) tensors,
        so see `x` as a 2-D `(rows, in_size)` tensor (a view needs a
        contiguous tensor), multiply, add the bias (it broadcasts over the
        rows; `nn_functions.expand` does that fast), and view the result with
        `x`'s leading dimensions.
        """
        *lead, width = x.shape
        if width != self.in_size:
            raise ValueError(f"Linear({self.in_size}, ...) got an input of shape {x.shape}")
        rows = int(np.prod(lead, dtype=np.int64))
        out = x.contiguous().view(rows, self.in_size) @ self.weights.value
        if self.bias is not None:
            out = out + expand(self.bias.value, out.shape)
        return out.view(*lead, self.out_size)


class Embedding(Module):
    """A table of `num_embeddings` vectors of size `embedding_dim`, looked up by id.

    Attributes:
        weights: a `Parameter` of shape `(num_embeddings, embedding_dim)`;
            row `i` is the vector of id `i`.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        backend: TensorBackend = FastTensorBackend,
        rng: Rng = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = _positive("num_embeddings", num_embeddings)
        self.embedding_dim = _positive("embedding_dim", embedding_dim)
        gen = make_rng(rng)
        self.weights = parameter(gen.standard_normal((num_embeddings, embedding_dim)), backend)

    def forward(self, x: Tensor) -> Tensor:
        """The vectors of the ids in `x` (any shape, whole numbers in
        `[0, num_embeddings)`): shape `(*x.shape, embedding_dim)`.

        The gradient of the weights gets, in each row, the sum of the output
        gradients at the positions holding that id. Plan: `gather_rows`
        (task hw3.1). ValueError for an id out of range.
        """
        return gather_rows(self.weights.value, x)


class Dropout(Module):
    """Inverted dropout with probability `p_dropout` (see `nn_functions.dropout`).

    In training mode each element is zeroed with probability `p_dropout`
    and the others are scaled by 1 / (1 - p_dropout); in evaluation mode
    (`eval()`), or when `p_dropout == 0`, `forward` returns its input.

    Attributes:
        p_dropout: the probability of zeroing an element.
        rng: the `numpy.random.Generator` of the masks; each training-mode
            call draws `rng.random(x.shape)` and keeps the elements where the
            draw is >= p_dropout.
    """

    def __init__(self, p_dropout: float = 0.1, rng: Rng = None) -> None:
        super().__init__()
        if not 0.0 <= p_dropout <= 1.0:
            raise ValueError(f"p_dropout must be in [0, 1], not {p_dropout}")
        self.p_dropout = float(p_dropout)
        self.rng = make_rng(rng)

    def forward(self, x: Tensor) -> Tensor:
        """`x` with dropout applied in training mode; `x` itself in evaluation mode.

        Plan: `nn_functions.dropout` with this module's generator.
        """
        return dropout(x, self.p_dropout, ignore=not self.training, generator=self.rng)


class LayerNorm1d(Module):
    """Layer normalization over the last dimension (of size `dim`):

        y = (x - mean) / sqrt(var + eps) * weights + bias

    where `mean` and `var` are the mean and the (biased: divided by `dim`)
    variance of each vector along the last dimension, as in
    `torch.nn.functional.layer_norm(x, (dim,), weights, bias, eps)`.

    Attributes:
        weights: a `Parameter` of shape `(dim,)`, initially ones (the gain).
        bias: a `Parameter` of shape `(dim,)`, initially zeros.
        eps: added to the variance, so a constant vector does not divide by 0.
    """

    def __init__(
        self, dim: int, eps: float = 1e-5, backend: TensorBackend = FastTensorBackend
    ) -> None:
        super().__init__()
        self.dim = _positive("dim", dim)
        if not eps > 0.0:
            raise ValueError(f"eps must be positive, not {eps}")
        self.eps = float(eps)
        self.weights = parameter(np.ones(dim), backend)
        self.bias = parameter(np.zeros(dim), backend)

    def forward(self, x: Tensor) -> Tensor:
        """The normalized `x` (shape `(..., dim)`), of the same shape.

        Plan: see `x` as `(rows, dim)`; mean and variance of each row (sums
        along dimension 1, so they keep a size-1 dimension that broadcasts);
        1 / sqrt(var + eps) as exp(-log(var + eps) / 2) (tensors have exp and
        log, not sqrt); scale and shift; view back to `x`'s shape.
        (`nn_functions.expand` makes the broadcasts fast; plain broadcasting
        gives the same numbers.)
        """
        if x.shape[-1] != self.dim:
            raise ValueError(f"LayerNorm1d({self.dim}) got an input of shape {x.shape}")
        rows = x.size // self.dim
        h = x.contiguous().view(rows, self.dim)
        centred = h - expand(h.sum(1) / self.dim, h.shape)
        variance = (centred * centred).sum(1) / self.dim
        inv_std = ((variance + self.eps).log() * -0.5).exp()
        scale = expand(inv_std, h.shape) * expand(self.weights.value, h.shape)
        out = centred * scale + expand(self.bias.value, h.shape)
        return out.view(*x.shape)
