"""Each rank's share of a data set (task hw5.1): `Partition`, `DataPartitioner`,
`partition_dataset`.

    partitioner = DataPartitioner(data, sizes=(0.5, 0.5), seed=1234)
    mine = partitioner.use(rank)           # a view: len(mine), mine[i]
    partitioner.set_epoch(1)               # another shuffle for the next epoch

    loader = partition_dataset(rank, world_size, data, batch_size=64)
    for batch in loader: ...               # batches of 64 // world_size items

In data-parallel training every rank runs the same model on its own part of
each global batch. `partition_dataset` gives rank r the r-th of `world_size`
disjoint shares of the data set, so that together the ranks see every item
once per epoch, and batches it with `batch_size // world_size` items per batch:
the global batch of `batch_size` items is split over the ranks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import DataLoader

__all__ = ["DataPartitioner", "Partition", "partition_dataset"]


class Partition:
    """A view of `data` through the positions `index`: item i is `data[index[i]]`.

    Nothing is copied. `len` is `len(index)`; an item out of range raises
    IndexError (as a list does, negative positions counting from the end).
    """

    def __init__(self, data: Sequence[Any], index: Sequence[int]) -> None:
        # BEGIN SOLUTION hw5.1
        self.data = data
        self.index = list(index)
        # END SOLUTION

    def __len__(self) -> int:
        # BEGIN SOLUTION hw5.1
        return len(self.index)
        # END SOLUTION

    def __getitem__(self, i: int) -> Any:
        # BEGIN SOLUTION hw5.1
        return self.data[self.index[i]]
        # END SOLUTION


class DataPartitioner:
    """Splits the positions `0 .. n-1` of `data` (n = len(data)) into shares of the
    fractions `sizes`, after a seeded shuffle.

    The shuffle of epoch e: `random.Random(seed + e).shuffle(positions)` on the
    list `[0, 1, ..., n-1]` (Python's `random`, so that every implementation
    agrees; a generator of its own, so the global `random` state is left
    alone). Share k is the slice `positions[cut_{k-1}:cut_k]` of the shuffled
    list, where `cut_{-1} = 0` and

        cut_k = min(n, floor(n * c_k + 1/2)),   c_k = sizes[0] + ... + sizes[k]

    (the running sum taken left to right in floating point): each cut is the
    nearest whole number to n times the cumulative fraction, halves rounded up.
    So the shares are disjoint, shares of equal fractions differ in length by
    at most one, and fractions that sum to 1 cover all n positions (a smaller
    sum leaves the last positions out).

    Args:
        data: anything with `len` and `[]`.
        sizes: the fractions, each >= 0, summing to at most 1 (+ 1e-9 for
            rounding); ValueError otherwise.
        seed: the seed of epoch 0's shuffle.

    Attributes:
        partitions: the current epoch's shares, as lists of positions of `data`.
    """

    def __init__(
        self, data: Sequence[Any], sizes: Sequence[float] = (0.5, 0.5), seed: int = 1234
    ) -> None:
        self.data = data
        self.sizes = [float(s) for s in sizes]
        self.seed = seed
        self.partitions: list[list[int]] = []
        # BEGIN SOLUTION hw5.1
        if any(not math.isfinite(s) or s < 0 for s in self.sizes):
            raise ValueError(f"sizes must be fractions >= 0, not {list(sizes)}")
        if sum(self.sizes) > 1.0 + 1e-9:
            raise ValueError(f"sizes sum to {sum(self.sizes)}, more than 1")
        self.set_epoch(0)
        # END SOLUTION

    def set_epoch(self, epoch: int) -> None:
        """Shuffle again with seed `seed + epoch` and cut the shares (see the class).

        Plan: shuffle the list of positions with a `random.Random` of that seed,
        then cut it at the rounded cumulative fractions.
        """
        # BEGIN SOLUTION hw5.1
        n = len(self.data)
        positions = list(range(n))
        random.Random(self.seed + epoch).shuffle(positions)
        self.partitions = []
        start, total = 0, 0.0
        for size in self.sizes:
            total += size
            cut = min(n, math.floor(n * total + 0.5))
            self.partitions.append(positions[start:cut])
            start = cut
        # END SOLUTION

    def use(self, partition: int) -> Partition:
        """Share number `partition` of the current epoch, as a `Partition` of `data`
        (IndexError when there is no such share)."""
        # BEGIN SOLUTION hw5.1
        if not 0 <= partition < len(self.partitions):
            raise IndexError(f"no partition {partition} of {len(self.partitions)}")
        return Partition(self.data, self.partitions[partition])
        # END SOLUTION


def partition_dataset(
    rank: int,
    world_size: int,
    dataset: Sequence[Any],
    batch_size: int,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    seed: int = 1234,
    epoch: int = 0,
) -> DataLoader:
    """Rank `rank`'s share of `dataset`, batched: a `DataLoader` over share `rank` of
    a `DataPartitioner(dataset, [1 / world_size] * world_size, seed)` at epoch
    `epoch`, with `batch_size // world_size` items per batch, in the share's
    order (no further shuffling), the last batch possibly smaller (not dropped),
    batches made by `collate_fn` (PyTorch's default when None).

    ValueError when `rank` is not in `[0, world_size)` or when
    `batch_size // world_size` is less than 1.
    """
    # BEGIN SOLUTION hw5.1
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not one of world_size {world_size} ranks")
    per_rank = batch_size // world_size
    if per_rank < 1:
        raise ValueError(f"batch_size {batch_size} gives no item per rank of {world_size}")
    partitioner = DataPartitioner(dataset, [1.0 / world_size] * world_size, seed)
    partitioner.set_epoch(epoch)
    return DataLoader(
        partitioner.use(rank), batch_size=per_rank, shuffle=False, collate_fn=collate_fn
    )
    # END SOLUTION
