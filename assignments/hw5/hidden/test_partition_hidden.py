"""Hidden tests of task hw5.1 (never shipped to students; students see names and outcomes).

Stronger than the public tests, all against the reference (exact: lists of
whole numbers and strings) and the documented split:

- equal shares for 4, 5 and 7 ranks, on 0, 1, 5, 23 and 100 items (more ranks
  than items: some shares empty), still disjoint and covering;
- fractions that sum to less than 1 (the last items left out), ten shares of
  0.1, and many epochs in a row (seed + epoch each time, not a running shuffle);
- the global `random` state is left alone; `use` of a share that does not exist
  raises IndexError;
- `Partition` over a tuple and a string, and a Partition of a Partition;
- `partition_dataset` with an uneven last batch (23 items, 2 ranks, 3 per
  batch; 4 ranks and a batch of 9), one item per rank, items that are
  (x, y) pairs batched by the default collate, `len` of the loader.
"""

import pytest
from test_partition import (
    batched,
    expected_shares,
    probe_partition_dataset,
    probe_partitioner,
)

pytestmark = pytest.mark.task("hw5.1")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_global_random_untouched(n, sizes, seed, epochs):
    """random.random() after seeding the global generator with 99 and then building
    DataPartitioner(range(n), sizes, seed) and calling set_epoch for each epoch."""
    import random

    from data_parallel.dataset import DataPartitioner

    random.seed(99)
    partitioner = DataPartitioner(list(range(n)), sizes, seed)
    for epoch in epochs:
        partitioner.set_epoch(epoch)
    return random.random()


def probe_use_out_of_range(count, which):
    """The name of the exception DataPartitioner(range(10), [1/count]*count).use(which)
    raises, or None."""
    from data_parallel.dataset import DataPartitioner

    partitioner = DataPartitioner(list(range(10)), [1.0 / count] * count)
    try:
        partitioner.use(which)
    except IndexError:
        return "IndexError"
    return None


def probe_partition_views(kind):
    """Items of Partition over a tuple ("tuple"), a string ("str"), or a Partition of a
    Partition ("nested")."""
    from data_parallel.dataset import Partition

    if kind == "tuple":
        part = Partition(tuple(range(50, 60)), [9, 0, 3])
    elif kind == "str":
        part = Partition("abcdefgh", [7, 7, 1])
    else:
        part = Partition(Partition(list(range(20, 30)), [5, 6, 7, 8, 9]), [4, 0, 2])
    return {"len": len(part), "items": [part[i] for i in range(len(part))]}


def probe_pairs_loader(n, world_size, batch_size):
    """partition_dataset over the pairs (i, 2 i), default collate: per rank, per
    batch, the two collated columns as lists; and len() of each loader."""
    from data_parallel.dataset import partition_dataset

    data = [(i, 2 * i) for i in range(n)]
    out = []
    for rank in range(world_size):
        loader = partition_dataset(rank, world_size, data, batch_size, seed=5)
        out.append({"len": len(loader), "batches": [[c.tolist() for c in b] for b in loader]})
    return out


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [4, 5, 7])
@pytest.mark.parametrize("n", [0, 1, 5, 23, 100])
def test_equal_shares_many_ranks(student, reference, world_size, n):
    sizes = [1.0 / world_size] * world_size
    got = student.run(probe_partitioner, n, sizes, 21, [None])
    assert got == reference.run(probe_partitioner, n, sizes, 21, [None])
    assert got == [expected_shares(n, sizes, 21, 0)]
    flat = sorted(x for share in got[0] for x in share)
    assert flat == list(range(100, 100 + n)), "shares must be disjoint and cover the data"


@pytest.mark.parametrize(
    ("n", "sizes"), [(17, [0.3, 0.3]), (40, [0.1] * 10), (9, [0.0, 1.0]), (30, [0.45, 0.45])]
)
def test_unusual_fractions(student, reference, n, sizes):
    got = student.run(probe_partitioner, n, sizes, 8, [None, 2])
    assert got == reference.run(probe_partitioner, n, sizes, 8, [None, 2])
    assert got == [expected_shares(n, sizes, 8, 0), expected_shares(n, sizes, 8, 2)]


def test_many_epochs_use_seed_plus_epoch(student, reference):
    epochs = [None, 3, 1, 10, 3, 0]
    got = student.run(probe_partitioner, 25, [0.5, 0.5], 77, epochs)
    assert got == reference.run(probe_partitioner, 25, [0.5, 0.5], 77, epochs)
    assert got == [expected_shares(25, [0.5, 0.5], 77, e or 0) for e in epochs]


def test_global_random_state_untouched(student):
    import random

    random.seed(99)
    want = random.random()
    got = student.run(probe_global_random_untouched, 30, [0.5, 0.5], 3, [1, 2])
    assert got == want, "shuffles must use a generator of their own, not the global one"


@pytest.mark.parametrize(("count", "which"), [(2, 2), (3, 5)])
def test_use_out_of_range(student, count, which):
    assert student.run(probe_use_out_of_range, count, which) == "IndexError"


@pytest.mark.parametrize("kind", ["tuple", "str", "nested"])
def test_partition_views_of_other_sequences(student, reference, kind):
    got = student.run(probe_partition_views, kind)
    assert got == reference.run(probe_partition_views, kind)


@pytest.mark.parametrize(
    ("n", "world_size", "batch_size"), [(23, 2, 6), (23, 4, 9), (5, 3, 3), (7, 2, 100)]
)
def test_uneven_last_batch(student, reference, n, world_size, batch_size):
    got = student.run(probe_partition_dataset, n, world_size, batch_size, 4, 1, None)
    assert got == reference.run(probe_partition_dataset, n, world_size, batch_size, 4, 1, None)
    shares = expected_shares(n, [1.0 / world_size] * world_size, 4, 1, offset=1000)
    assert got == [batched(share, batch_size // world_size) for share in shares]


def test_pairs_default_collate_and_len(student, reference):
    got = student.run(probe_pairs_loader, 11, 2, 4)
    assert got == reference.run(probe_pairs_loader, 11, 2, 4)
    assert [r["len"] for r in got] == [3, 3]
