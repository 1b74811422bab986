"""A tensor-parallel MLP, Megatron-LM style (task hw5.6).

    mlp = ParallelMLP.from_dense(dense, rank=rank, world_size=world_size)
    y = mlp(x)      # on every rank: dense(x), for dense = nn.Sequential(Linear, GELU, Linear)

The dense MLP is `y = gelu(x A + a) B + b`, with `A = fc.weight^T` of shape
(n_embd, hidden) and `B = proj.weight^T` of shape (hidden, n_embd). With `P`
ranks (the process group's), each holding the same input `x`:

- `ColumnParallelLinear` splits `A` by columns, `A = [A_0 | ... | A_{P-1}]`
  (and `a` alike): rank `r` computes `h_r = gelu(x A_r + a_r)`, its block of
  the hidden features. The GELU acts feature by feature, so it needs no
  communication.
- `RowParallelLinear` splits `B` by rows into the matching blocks `B_r`:
  `y = sum_r h_r B_r + b`. Each rank computes its term, one all-reduce (sum)
  adds them up, and `b` is added once, after the sum.

Blocks are contiguous and in rank order: with `k = hidden / P`, rank `r` holds
hidden features `r k .. (r + 1) k - 1`. In PyTorch's layout (`weight` is
(out_features, in_features)) that is `fc.weight[r k:(r+1) k]`,
`fc.bias[r k:(r+1) k]` and `proj.weight[:, r k:(r+1) k]`; `proj.bias` is whole
on every rank.

Gradients come from two conjugate autograd functions:

- `f` (`copy_to_tensor_parallel_region`), at the input of the column-parallel
  layer: identity forward; backward, the all-reduce (sum) of the gradient, since
  every rank's `x` feeds every block and dL/dx is the sum of the blocks' parts;
- `g` (`reduce_from_tensor_parallel_region`), at the output of the
  row-parallel layer: all-reduce (sum) forward; identity backward, since every
  rank's term receives the whole gradient of `y`.

Every function here communicates over the default process group, which must
be set up already (e.g. by `parallel.launch.run_ranks`), and whose size and
rank must be the `world_size` and `rank` the layers were made with.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ColumnParallelLinear",
    "ParallelMLP",
    "RowParallelLinear",
    "copy_to_tensor_parallel_region",
    "reduce_from_tensor_parallel_region",
]


class _CopyToTensorParallelRegion(torch.autograd.Function):
    """`f`: identity forward; all-reduce (sum over the ranks) of the gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION hw5.6
        return x.view_as(x)
        # END SOLUTION

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION hw5.6
        grad = grad.clone()  # all_reduce works in place; autograd may share `grad`
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad
        # END SOLUTION


class _ReduceFromTensorParallelRegion(torch.autograd.Function):
    """`g`: all-reduce (sum over the ranks) forward; identity backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION hw5.6
        total = x.clone()  # all_reduce works in place; the input is the caller's
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total
        # END SOLUTION

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION hw5.6
        return grad
        # END SOLUTION


def copy_to_tensor_parallel_region(x: torch.Tensor) -> torch.Tensor:
    """`f(x)`: `x` itself forward; the gradient summed over the ranks backward."""
    return _CopyToTensorParallelRegion.apply(x)


def reduce_from_tensor_parallel_region(x: torch.Tensor) -> torch.Tensor:
    """`g(x)`: the sum of every rank's `x` forward; the gradient as it is backward."""
    return _ReduceFromTensorParallelRegion.apply(x)


def _shard_size(features: int, world_size: int, rank: int, what: str) -> int:
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, not {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0 .. {world_size - 1}, not {rank!r}")
    if features % world_size != 0:
        raise ValueError(f"{what} = {features} is not divisible by world_size = {world_size}")
    return features // world_size


def _linear_parameters(
    shape: tuple[int, int], bias_size: int | None, fan_in: int, dtype: torch.dtype | None
) -> tuple[nn.Parameter, nn.Parameter | None]:
    """A weight of `shape` and a bias (or None), uniform in +-1/sqrt(fan_in) as
    `nn.Linear` draws them for the dense layer."""
    bound = 1.0 / math.sqrt(fan_in)
    weight = nn.Parameter(torch.empty(shape, dtype=dtype).uniform_(-bound, bound))
    if bias_size is None:
        return weight, None
    return weight, nn.Parameter(torch.empty(bias_size, dtype=dtype).uniform_(-bound, bound))


class ColumnParallelLinear(nn.Module):
    """Rank `rank`'s block of the output features of `nn.Linear(in_features, out_features)`.

    `forward(x)`, for the whole input `x` of shape (..., in_features), is this
    rank's block (features `rank k .. (rank + 1) k - 1`, `k = out_features /
    world_size`) of the dense layer's output: shape (..., k). Backward, the
    gradient of `x` is summed over the ranks (`f`), so every rank gets the
    dense layer's.

    Attributes:
        weight: (k, in_features), the dense weight's rows of this rank's block.
        bias: (k,), the dense bias's entries of this rank's block (or None).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        world_size: int,
        rank: int,
        bias: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.world_size = world_size
        self.rank = rank
        self.out_per_rank = _shard_size(out_features, world_size, rank, "out_features")
        self.weight, self.bias = _linear_parameters(
            (self.out_per_rank, in_features),
            self.out_per_rank if bias else None,
            in_features,
            dtype,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's block of `x W^T + b` (see the class).

        Plan: pass `x` through `f`, then the local affine map.
        """
        # BEGIN SOLUTION hw5.6
        return F.linear(copy_to_tensor_parallel_region(x), self.weight, self.bias)
        # END SOLUTION

    @classmethod
    def from_dense(cls, linear: nn.Linear, rank: int, world_size: int) -> ColumnParallelLinear:
        """Rank `rank`'s block of `linear` (copies of its values, same dtype)."""
        layer = cls(
            linear.in_features,
            linear.out_features,
            world_size,
            rank,
            bias=linear.bias is not None,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            # BEGIN SOLUTION hw5.6
            k = layer.out_per_rank
            layer.weight.copy_(linear.weight[rank * k : (rank + 1) * k])
            if layer.bias is not None:
                layer.bias.copy_(linear.bias[rank * k : (rank + 1) * k])
            # END SOLUTION
        return layer


class RowParallelLinear(nn.Module):
    """`nn.Linear(in_features, out_features)` applied to input features split over the ranks.

    `forward(x_r)`, for this rank's block `x_r` of the input features (shape
    (..., k), `k = in_features / world_size`, features `rank k .. (rank + 1) k - 1`),
    is the dense layer's whole output on every rank: the all-reduce (`g`) of
    every rank's `x_r W_r^T`, plus the bias, added once. Backward, each rank's
    `x_r` gets its block of the dense gradient.

    Attributes:
        weight: (out_features, k), the dense weight's columns of this rank's block.
        bias: (out_features,), the whole dense bias, on every rank (or None).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        world_size: int,
        rank: int,
        bias: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.world_size = world_size
        self.rank = rank
        self.in_per_rank = _shard_size(in_features, world_size, rank, "in_features")
        self.weight, self.bias = _linear_parameters(
            (out_features, self.in_per_rank), out_features if bias else None, in_features, dtype
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x W^T + b` of the dense layer, from this rank's block of `x` (see the class).

        Plan: the local product (no bias), through `g`, then the bias.
        """
        # BEGIN SOLUTION hw5.6
        out = reduce_from_tensor_parallel_region(F.linear(x, self.weight))
        return out if self.bias is None else out + self.bias
        # END SOLUTION

    @classmethod
    def from_dense(cls, linear: nn.Linear, rank: int, world_size: int) -> RowParallelLinear:
        """Rank `rank`'s block of `linear` (copies of its values, same dtype)."""
        layer = cls(
            linear.in_features,
            linear.out_features,
            world_size,
            rank,
            bias=linear.bias is not None,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            # BEGIN SOLUTION hw5.6
            k = layer.in_per_rank
            layer.weight.copy_(linear.weight[:, rank * k : (rank + 1) * k])
            if layer.bias is not None:
                layer.bias.copy_(linear.bias)
            # END SOLUTION
        return layer


class ParallelMLP(nn.Module):
    """`proj(gelu(fc(x)))` split over the ranks: `fc` column-parallel, `proj`
    row-parallel (see the module's docstring). On every rank, `forward(x)` of
    the whole input `x` (..., n_embd) is the dense MLP's output (..., n_embd).

    Attributes:
        fc: `ColumnParallelLinear(n_embd, hidden, ...)`.
        act: `nn.GELU(approximate=...)`.
        proj: `RowParallelLinear(hidden, n_embd, ...)`.
    """

    def __init__(
        self,
        n_embd: int,
        hidden: int,
        world_size: int,
        rank: int,
        bias: bool = True,
        approximate: str = "none",
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.fc = ColumnParallelLinear(n_embd, hidden, world_size, rank, bias=bias, dtype=dtype)
        self.act = nn.GELU(approximate=approximate)
        self.proj = RowParallelLinear(hidden, n_embd, world_size, rank, bias=bias, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dense MLP's output, on every rank (see the class)."""
        # BEGIN SOLUTION hw5.6
        return self.proj(self.act(self.fc(x)))
        # END SOLUTION

    @classmethod
    def from_dense(cls, dense: nn.Sequential, rank: int, world_size: int) -> ParallelMLP:
        """Rank `rank`'s share of `dense = nn.Sequential(Linear, GELU, Linear)`
        (copies of its values, same dtype)."""
        if (
            not isinstance(dense, nn.Sequential)
            or len(dense) != 3
            or not isinstance(dense[0], nn.Linear)
            or not isinstance(dense[1], nn.GELU)
            or not isinstance(dense[2], nn.Linear)
        ):
            raise TypeError("expected nn.Sequential(nn.Linear, nn.GELU, nn.Linear)")
        fc, act, proj = dense
        mlp = cls(
            fc.in_features,
            fc.out_features,
            world_size,
            rank,
            bias=fc.bias is not None,
            approximate=act.approximate,
            dtype=fc.weight.dtype,
        )
        mlp.fc = ColumnParallelLinear.from_dense(fc, rank, world_size)
        mlp.proj = RowParallelLinear.from_dense(proj, rank, world_size)
        return mlp
