"""Data-parallel training with gradients all-reduced in buckets, overlapped with the
backward pass (task hw5.3): `assign_buckets`, `BucketedDataParallel`.

    model = BucketedDataParallel(GPT(config), bucket_cap_mb=1.0)
    loss = loss_fn(model(my_ids))
    loss.backward()                          # buckets are all-reduced as they fill
    model.finish_gradient_synchronization()  # wait; .grad now holds the average
    optimizer.step()

Why buckets: one all-reduce per parameter pays a fixed cost per call many times;
one all-reduce of everything after backward cannot start before the last
gradient exists. Gradients appear during backward roughly in reverse order of
registration (the last layer's first), so parameters are grouped in that order
into buckets of at most `bucket_cap_mb` MiB. As soon as every gradient of a
bucket has been accumulated, the bucket's gradients, flattened into one
tensor, start their all-reduce (SUM) without waiting (`async_op=True`), while
autograd goes on computing the gradients of earlier layers. At the end each
handle is waited for, the sums are divided by the world size W, and the
averages are copied back into the parameters' `.grad`, so that

    p.grad = (1/W) * (g_0(p) + ... + g_{W-1}(p))   for every trainable p,

exactly as `ddp.average_gradients` (task hw5.2) would leave them.

Contract of the communication (the tests check it): the buckets are all-reduced
through `torch.distributed.all_reduce` (called as `dist.all_reduce(...)`, looked
up when called), one call per bucket with `async_op=True` during the backward
pass, each call's result used only after waiting on its handle (`Work.wait()`),
and that waiting done in `finish_gradient_synchronization`, not before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["BucketedDataParallel", "assign_buckets"]


def assign_buckets(sizes: Sequence[int], cap_bytes: int) -> list[list[int]]:
    """Group parameters of `sizes` bytes (in registration order) into buckets.

    The parameters are taken in REVERSE registration order (the last one first).
    Each one joins the current bucket if the bucket's total stays at most
    `cap_bytes` (a total equal to the cap fits); otherwise the current bucket is
    closed and the parameter starts a new one. A parameter larger than the cap
    thus gets a bucket of its own, and no bucket is ever empty.

    Returns the buckets in the order they are formed, each as the list of the
    parameters' positions in `sizes`, in the order they joined: for sizes
    `[4, 4, 8]` and a cap of 8, `[[2], [1, 0]]`.
    """
    raise NotImplementedError("hw5.3: Bucketed, overlapped gradient all-reduce")


class BucketedDataParallel(nn.Module):
    """Wraps `module` for data-parallel training with bucketed, overlapped all-reduces.

    At construction: every parameter and buffer of `module` gets rank 0's value
    (a broadcast, as in hw5.2, so the ranks start identical); the trainable
    parameters (`requires_grad`; frozen ones take no part), as listed by
    `module.named_parameters()` (a tied parameter once, under its first name),
    are grouped with `assign_buckets` by their size in bytes
    (`numel * element_size`) under a cap of `int(bucket_cap_mb * 2**20)` bytes;
    a post-accumulate-grad hook (`Tensor.register_post_accumulate_grad_hook`)
    on each trainable parameter marks it ready.

    During backward: when the last parameter of a bucket becomes ready, the
    bucket's gradients, flattened (in the bucket's order) into one new tensor,
    start an all-reduce with `async_op=True`; keep its handle.

    `finish_gradient_synchronization()`: wait on every handle, divide each
    bucket's sums by the world size, copy them back into the parameters'
    `.grad`, and reset the bookkeeping so that the next step starts afresh.

    Every trainable parameter must receive a gradient in each backward pass
    (otherwise its bucket never fills); all trainable parameters share one dtype.

    Attributes:
        module: the wrapped module.
        buckets: the buckets, in the order they are all-reduced, each as the list
            of its parameters' names (as `module.named_parameters()` names them),
            in the bucket's order.
    """

    def __init__(self, module: nn.Module, bucket_cap_mb: float = 25.0) -> None:
        super().__init__()
        self.module = module
        self.bucket_cap_mb = bucket_cap_mb
        self.buckets: list[list[str]] = []
        raise NotImplementedError("hw5.3: Bucketed, overlapped gradient all-reduce")

    def _grad_ready(self, param: Tensor) -> None:
        """The hook of `param`: its `.grad` is final for this backward pass. When it
        completes its bucket, start the bucket's all-reduce (see the class)."""
        raise NotImplementedError("hw5.3: Bucketed, overlapped gradient all-reduce")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """`module(*args, **kwargs)`."""
        return self.module(*args, **kwargs)

    def finish_gradient_synchronization(self) -> None:
        """Wait for every bucket's all-reduce, then set each trainable parameter's
        `.grad` to the average over the ranks; ready for the next step afterwards.

        Plan: for each launched bucket, wait on its handle, divide the flat sums
        by the world size, and copy consecutive slices of it (each of a
        parameter's numel, viewed in its shape) into the parameters' `.grad`.
        """
        raise NotImplementedError("hw5.3: Bucketed, overlapped gradient all-reduce")
