"""Public tests of task hw5.1: data partitioning (data_parallel/dataset.py).

What is checked (exactly: these are lists of whole numbers):

- `Partition(data, index)`: length, items `data[index[i]]` (negative positions
  too), IndexError past the end, and that it is a view (a change of `data`
  shows through);
- `DataPartitioner`: the shares are the slices of the documented shuffle
  (`random.Random(seed + epoch)`) cut at the rounded cumulative fractions, for
  the default sizes and seed and for unequal fractions; shares of 1/W each are
  disjoint, cover the data and differ in length by at most one (W = 2, 3);
  `set_epoch` reshuffles with `seed + epoch` and epoch 0 comes back;
  ValueError for negative fractions or fractions summing to more than 1;
- `partition_dataset`: rank r's batches are share r of the documented split, in
  order, `batch_size // world_size` items each (the last one possibly smaller),
  made by the default collate or by `collate_fn`; the ranks' batches together
  hold every item once (W = 2, 3); the epoch changes the shares; ValueError for a
  batch too small to give every rank an item and for a rank out of range.
"""

import math
import random

import pytest

pytestmark = pytest.mark.task("hw5.1")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_partition_view(data, index, positions):
    """len(Partition(data, index)), its items at `positions` (None for an
    IndexError), and its item 0 after data[index[0]] is changed to -1."""
    from data_parallel.dataset import Partition

    data = list(data)
    part = Partition(data, index)
    items = []
    for i in positions:
        try:
            items.append(part[i])
        except IndexError:
            items.append(None)
    data[index[0]] = -1
    return {"len": len(part), "items": items, "after_change": part[0]}


def probe_partitioner(n, sizes, seed, epochs):
    """For each epoch of `epochs` (in turn, through set_epoch; None: as built),
    the items of every share of DataPartitioner(range(100, 100 + n), sizes, seed)."""
    from data_parallel.dataset import DataPartitioner

    data = list(range(100, 100 + n))
    if seed is None:
        partitioner = DataPartitioner(data, sizes) if sizes is not None else DataPartitioner(data)
    else:
        partitioner = DataPartitioner(data, sizes, seed)
    out = []
    for epoch in epochs:
        if epoch is not None:
            partitioner.set_epoch(epoch)
        count = len(sizes) if sizes is not None else 2
        shares = []
        for k in range(count):
            part = partitioner.use(k)
            shares.append([part[i] for i in range(len(part))])
        out.append(shares)
    return out


def probe_partitioner_error(sizes):
    """The name of the exception DataPartitioner(range(10), sizes) raises, or None."""
    from data_parallel.dataset import DataPartitioner

    try:
        DataPartitioner(list(range(10)), sizes)
    except ValueError:
        return "ValueError"
    return None


def probe_partition_dataset(n, world_size, batch_size, seed, epoch, collate):
    """Every rank's batches (as lists) of partition_dataset over range(1000, 1000 + n);
    `collate`: None (PyTorch's default, tensors) or "tagged" (a collate_fn that
    returns ["batch", *items])."""
    from data_parallel.dataset import partition_dataset

    def tagged(items):
        return ["batch", *items]

    data = list(range(1000, 1000 + n))
    out = []
    for rank in range(world_size):
        loader = partition_dataset(
            rank,
            world_size,
            data,
            batch_size,
            collate_fn=tagged if collate == "tagged" else None,
            seed=seed,
            epoch=epoch,
        )
        out.append([b.tolist() if hasattr(b, "tolist") else list(b) for b in loader])
    return out


def probe_partition_dataset_error(rank, world_size, batch_size):
    """The name of the exception partition_dataset raises, or None."""
    from data_parallel.dataset import partition_dataset

    try:
        partition_dataset(rank, world_size, list(range(12)), batch_size)
    except ValueError:
        return "ValueError"
    return None


# ---------------------------------------------------------------------------
# The documented split, written out
# ---------------------------------------------------------------------------


def expected_shares(n, sizes, seed, epoch, offset=100):
    positions = list(range(n))
    random.Random(seed + epoch).shuffle(positions)
    shares, start, total = [], 0, 0.0
    for size in sizes:
        total += size
        cut = min(n, math.floor(n * total + 0.5))
        shares.append([offset + p for p in positions[start:cut]])
        start = cut
    return shares


def batched(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_partition_is_a_view(student):
    data = [10, 11, 12, 13, 14, 15]
    got = student.run(probe_partition_view, data, [4, 0, 2], [0, 1, 2, -1, 3, 7])
    assert got["len"] == 3
    assert got["items"] == [14, 10, 12, 12, None, None], "items are data[index[i]]"
    assert got["after_change"] == -1, "a Partition must be a view of data, not a copy"


def test_partitioner_default_split_is_the_documented_shuffle(student):
    got = student.run(probe_partitioner, 11, None, None, [None])
    assert got == [expected_shares(11, [0.5, 0.5], 1234, 0)]


@pytest.mark.parametrize(
    ("n", "sizes", "seed"),
    [(20, [0.7, 0.2, 0.1], 5), (13, [0.25, 0.25, 0.5], 0), (9, [0.5, 0.3], 42)],
)
def test_partitioner_unequal_fractions(student, n, sizes, seed):
    got = student.run(probe_partitioner, n, sizes, seed, [None])
    assert got == [expected_shares(n, sizes, seed, 0)]


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("n", [12, 13, 17])
def test_equal_shares_are_disjoint_and_cover(student, world_size, n):
    sizes = [1.0 / world_size] * world_size
    (shares,) = student.run(probe_partitioner, n, sizes, 3, [None])
    flat = [item for share in shares for item in share]
    assert sorted(flat) == list(range(100, 100 + n)), "shares must be disjoint and cover the data"
    lengths = [len(share) for share in shares]
    assert max(lengths) - min(lengths) <= 1, f"share lengths {lengths}"
    assert shares == expected_shares(n, sizes, 3, 0)


def test_set_epoch_reshuffles(student):
    sizes = [0.5, 0.5]
    got = student.run(probe_partitioner, 16, sizes, 7, [None, 1, 2, 0])
    assert got[0] == expected_shares(16, sizes, 7, 0)
    assert got[1] == expected_shares(16, sizes, 7, 1), "epoch e shuffles with seed + e"
    assert got[2] == expected_shares(16, sizes, 7, 2)
    assert got[1] != got[0] and got[2] != got[1], "each epoch must shuffle anew"
    assert got[3] == got[0], "set_epoch(0) must give back epoch 0's shares"


@pytest.mark.parametrize("sizes", [[0.6, 0.6], [-0.1, 0.5]])
def test_partitioner_rejects_bad_fractions(student, sizes):
    assert student.run(probe_partitioner_error, sizes) == "ValueError"


@pytest.mark.parametrize(("world_size", "batch_size"), [(2, 6), (3, 6), (3, 7)])
def test_partition_dataset_batches_each_rank_share(student, world_size, batch_size):
    n = 22
    got = student.run(probe_partition_dataset, n, world_size, batch_size, 11, 0, None)
    shares = expected_shares(n, [1.0 / world_size] * world_size, 11, 0, offset=1000)
    per_rank = batch_size // world_size
    assert got == [batched(share, per_rank) for share in shares]
    items = [x for rank in got for batch in rank for x in batch]
    assert sorted(items) == list(range(1000, 1000 + n)), "every item once over all ranks"


def test_partition_dataset_collate_fn_and_epoch(student):
    got = student.run(probe_partition_dataset, 10, 2, 4, 1234, 3, "tagged")
    shares = expected_shares(10, [0.5, 0.5], 1234, 3, offset=1000)
    assert got == [[["batch", *b] for b in batched(share, 2)] for share in shares]


@pytest.mark.parametrize(("rank", "world_size", "batch_size"), [(0, 3, 2), (2, 2, 4), (-1, 2, 4)])
def test_partition_dataset_rejects_bad_arguments(student, rank, world_size, batch_size):
    got = student.run(probe_partition_dataset_error, rank, world_size, batch_size)
    assert got == "ValueError"
