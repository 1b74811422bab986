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
        raise NotImplementedError("hw5.1: Data partitioning")

    def __len__(self) -> int:
        raise NotImplementedError("hw5.1: Data partitioning")

    def __getitem__(self, i: int) -> Any:
        raise NotImplementedError("hw5.1: Data partitioning")


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
        raise NotImplementedError("hw5.1: Data partitioning")

    def set_epoch(self, epoch: int) -> None:
        """Shuffle again with seed `seed + epoch` and cut the shares (see the class).

        Plan: shuffle the list of positions with a `random.Random` of that seed,
        then cut it at the rounded cumulative fractions.
        """
        raise NotImplementedError("hw5.1: Data partitioning")

    def use(self, partition: int) -> Partition:
        """Share number `partition` of the current epoch, as a `Partition` of `data`
        (IndexError when there is no such share)."""
        raise NotImplementedError("hw5.1: Data partitioning")


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
    raise NotImplementedError("hw5.1: Data partitioning")
