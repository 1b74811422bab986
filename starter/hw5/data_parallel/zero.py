"""An optimizer whose state is sharded over the ranks, ZeRO stage 1 (task hw5.4):
`shard_bounds`, `ShardedOptimizer`.

    optimizer = ShardedOptimizer(model.parameters(), torch.optim.AdamW, lr=1e-3)
    loss.backward()
    average_gradients(model)        # every rank: the averaged gradients
    optimizer.step()                # each rank updates its shard, then shares it
    optimizer.zero_grad()

Why: in plain data parallelism every rank keeps the whole optimizer state
(AdamW: two more tensors per parameter, twice the model's size) and does the
same update as every other rank. Here the parameters are split into W shards,
one per rank; rank r keeps optimizer state for its shard only and updates only
its shard, then every parameter is broadcast from the rank that owns it. State
memory per rank drops from 2P to about 2P / W (for AdamW), and the parameters
after `step()` are exactly those of the unsharded optimizer: each parameter's
update depends only on its own gradient and state, computed once, by its owner.

The split (contiguous, balanced by element count): lay the parameters end to
end, in the order given, as N = n_0 + ... + n_{k-1} elements; parameter i,
which starts at element s_i = n_0 + ... + n_{i-1}, has its middle element at
m_i = s_i + n_i / 2, and belongs to rank

    owner(i) = floor(W * m_i / N)            (integers: W * (2 s_i + n_i) // (2 N)),

the rank whose 1/W-th of the elements holds its middle. Owners never decrease
with i, so each rank owns a contiguous run of parameters (possibly none, when
one parameter is larger than N / W), and a rank owns at most N / W elements
plus half of each of the two parameters that straddle its ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["ShardedOptimizer", "shard_bounds"]


def shard_bounds(sizes: Sequence[int], world_size: int) -> list[int]:
    """The contiguous split of the module docstring, as `world_size + 1` positions:
    rank r owns the parameters at positions `bounds[r] : bounds[r + 1]` of `sizes`
    (the element counts, in order); `bounds[0] == 0`, `bounds[-1] == len(sizes)`.

    When N is 0 (no elements at all) rank 0 owns every parameter.
    """
    raise NotImplementedError("hw5.4: Sharded optimizer state (ZeRO stage 1)")


class ShardedOptimizer:
    """ZeRO stage 1 over the default process group.

    Args:
        params: the parameters to optimize (a tensor listed twice counts once),
            the same ones, in the same order, on every rank.
        optimizer_cls: the optimizer to run on each shard, e.g. `torch.optim.AdamW`.
        **defaults: its arguments (`lr`, `weight_decay`, ...).

    Rank r builds ONE `optimizer_cls(shard, **defaults)` over its shard (the
    parameters that `shard_bounds` gives it, in order), or none when its shard is
    empty; it reads the gradients of its shard only.

    Attributes:
        params: the parameters, in order.
        owners: `owners[i]`, the rank owning `params[i]`.
        local_optimizer: this rank's optimizer, or None for an empty shard.
    """

    def __init__(
        self, params: Iterable[Tensor], optimizer_cls: type[torch.optim.Optimizer], **defaults: Any
    ) -> None:
        unique: dict[int, Tensor] = {}
        for p in params:
            unique.setdefault(id(p), p)
        self.params: list[Tensor] = list(unique.values())
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.owners: list[int] = []
        self.local_optimizer: torch.optim.Optimizer | None = None
        raise NotImplementedError("hw5.4: Sharded optimizer state (ZeRO stage 1)")

    def step(self) -> None:
        """Update this rank's shard with `local_optimizer.step()`, then give every rank
        every parameter: broadcast `params[i]` from `owners[i]`, for each i in order.

        The gradients must already be averaged over the ranks (hw5.2's job).
        """
        raise NotImplementedError("hw5.4: Sharded optimizer state (ZeRO stage 1)")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of ALL the parameters (not only the shard's): set them
        to None, or to zeros when `set_to_none` is False."""
        raise NotImplementedError("hw5.4: Sharded optimizer state (ZeRO stage 1)")
