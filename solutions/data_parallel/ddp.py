"""Data-parallel training, the plain way (task hw5.2): `broadcast_parameters`,
`average_gradients`, `DataParallel`.

    model = DataParallel(GPT(config))      # every rank now holds rank 0's weights
    loss = loss_fn(model(my_ids))          # each rank: its own share of the batch
    loss.backward()
    model.sync_gradients()                 # every rank: the gradient of the whole batch
    optimizer.step()                       # the same step on every rank

Why it works: with equal shares of the global batch, the global mean loss is
the mean over the W ranks of their local mean losses, so its gradient is

    g = (1/W) * (g_0 + g_1 + ... + g_{W-1}),

the average of the ranks' local gradients: one all-reduce (SUM) per gradient,
then a division by W. Ranks that start from the same weights and apply the
same averaged gradient with the same optimizer stay identical, step after
step, to one process training on the whole batch.

Every function here runs on every rank of the default process group (set up by
`parallel.launch.run_ranks`), with collectives called in the same order on all
ranks. Use `torch.distributed`'s collectives on the tensors themselves (in
place), never a copy kept elsewhere.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import nn

__all__ = ["DataParallel", "average_gradients", "broadcast_parameters"]


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Overwrite, on every rank, each parameter and each buffer of `module` with rank
    `src`'s value (in place, so optimizers holding the parameters see the change).

    Plan: one broadcast per tensor, over `module.parameters()` then `module.buffers()`
    (the same order on every rank). A broadcast writes into `.data`: parameters
    that require gradients cannot be written in place otherwise.
    """
    # BEGIN SOLUTION hw5.2
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=src)
    # END SOLUTION


def average_gradients(module: nn.Module) -> None:
    """Replace, on every rank, each parameter's `.grad` by the average over the ranks
    of that parameter's `.grad`: all-reduce with SUM, then divide by the world size.

    A parameter whose `.grad` is None (frozen, or unused by this backward pass) is
    skipped and keeps None; the ranks run the same model, so they skip the same
    parameters and their collectives stay in step. A parameter shared by two
    submodules (tied weights) is one tensor with one gradient: average it once
    (`module.parameters()` yields it once).
    """
    # BEGIN SOLUTION hw5.2
    world_size = dist.get_world_size()
    for param in module.parameters():
        if param.grad is None:
            continue
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(world_size)
    # END SOLUTION


class DataParallel(nn.Module):
    """Wraps `module` for data-parallel training.

    At construction every rank's `module` receives rank 0's parameters and buffers
    (`broadcast_parameters`), so the ranks start identical whatever their seeds.
    Calling the wrapper calls `module`; `sync_gradients()`, after the backward
    pass and before the optimizer's step, averages the gradients over the ranks.

    Attributes:
        module: the wrapped module (its parameters are the wrapper's parameters).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        # BEGIN SOLUTION hw5.2
        broadcast_parameters(module, src=0)
        # END SOLUTION

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """`module(*args, **kwargs)`."""
        # BEGIN SOLUTION hw5.2
        return self.module(*args, **kwargs)
        # END SOLUTION

    def sync_gradients(self) -> None:
        """Average the gradients of `module` over the ranks (`average_gradients`)."""
        # BEGIN SOLUTION hw5.2
        average_gradients(self.module)
        # END SOLUTION
