"""Data parallelism with `torch.distributed` (hw5.1 to hw5.4).

- `dataset`: each rank's disjoint share of a data set, batched (hw5.1);
- `ddp`: broadcast of rank 0's weights and averaging of gradients (hw5.2);
- `bucketed`: gradients all-reduced in buckets while the backward pass runs (hw5.3);
- `zero`: an optimizer whose state is sharded over the ranks, ZeRO stage 1 (hw5.4).
"""
