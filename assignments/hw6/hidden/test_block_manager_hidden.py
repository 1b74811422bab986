"""Hidden tests of task hw6.3 (never shipped to students; students see names and outcomes).

Exact, like the public tests, and through the same probe (`probe_ops`) and the
same model of what must hold (`check_trace`), plus:

- the seeded random driver on more pools and seeds: one block, block size 1,
  one-token vocabularies (every block of a length collides in content, so only
  a chained hash keeps prefixes apart), long runs;
- the documented free-pool order: least recently freed first, a freed table's
  last block first (the head of a cached prefix outlives its tail);
- a block filled by `append_token` becomes a prefix hit;
- a refusal while reviving cached free blocks changes nothing, and the cache
  still serves the prefix afterwards; `can_allocate` counts cached free blocks;
- forks of forks and copy-on-write down the chain; a fork at a block boundary
  needs no copy; a child reports its parent's `num_cached_tokens`;
- the returned tables are copies; `ref_count` outside the pool is an IndexError.
"""

import pytest
from test_block_manager import check_trace, probe_ops

pytestmark = pytest.mark.task("hw6.3")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_copies_and_bounds():
    """The table allocate returns, the table after changing the lists that allocate
    and block_table returned, and the errors of ref_count(-1) and ref_count(num_blocks)."""
    from inference.block_manager import BlockManager

    bm = BlockManager(4, 2)
    table = bm.allocate("a", [1, 2, 3])
    first = [int(b) for b in table]
    table.append(3)
    table[0] = 3
    read = bm.block_table("a")
    read.clear()
    errors = []
    for block in (-1, 4):
        try:
            bm.ref_count(block)
            errors.append(None)
        except IndexError:
            errors.append("IndexError")
    return {"first": first, "table": [int(b) for b in bm.block_table("a")], "errors": errors}


def run(student, num_blocks, block_size, ops, what):
    trace = student.run(probe_ops, num_blocks, block_size, ops, None)
    check_trace(trace, num_blocks, block_size, what)
    return trace["steps"]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_blocks", "block_size", "vocab", "seed", "n_ops"),
    [
        (1, 1, 2, 10, 150),
        (2, 3, 2, 11, 200),
        (6, 1, 2, 12, 300),
        (8, 2, 1, 13, 300),
        (12, 3, 1, 14, 300),
        (20, 4, 2, 15, 600),
        (24, 2, 3, 16, 600),
        (9, 5, 2, 17, 400),
        (14, 2, 2, 18, 500),
        (32, 1, 3, 19, 500),
    ],
)
def test_random_operations_more(student, num_blocks, block_size, vocab, seed, n_ops):
    trace = student.run(probe_ops, num_blocks, block_size, None, [seed, n_ops, vocab])
    check_trace(trace, num_blocks, block_size, f"random operations (seed {seed})")
    assert trace["steps"][-1]["state"]["free"] == num_blocks


def test_free_pool_evicts_the_tail_of_a_cached_prefix_first(student):
    a = [1, 2, 3, 4, 5, 6]
    ops = [
        ["allocate", "a", a],  # blocks 0, 1, 2 of 6
        ["free", "a"],
        ["allocate", "x", [9, 9, 8, 8, 7, 7, 6]],  # 4 blocks: the 3 unused, then one of a's
        ["free", "x"],
        ["allocate", "a2", a],
    ]
    steps = run(student, 6, 2, ops, "eviction order")
    old, again = steps[0]["state"]["tables"]["a"], steps[-1]["state"]
    assert again["cached"]["a2"] == 4 and again["tables"]["a2"][:2] == old[:2], (
        "freeing returns a table's last block first, so a's last block is evicted "
        "before its first two, which must still be cached"
    )


def test_free_pool_evicts_the_least_recently_freed_first(student):
    a, b = [1, 1, 2, 2], [3, 3, 4, 4]
    ops = [
        ["allocate", "a", a],
        ["allocate", "b", b],
        ["allocate", "y", [5]],  # the remaining 3 blocks are never used
        ["free", "a"],
        ["free", "b"],
        ["allocate", "x", [9, 9, 8, 8, 7, 7, 6, 6, 5, 5]],  # 5 blocks: 2 of them a's
        ["allocate", "b2", b],
    ]
    steps = run(student, 8, 2, ops, "least recently freed first")
    final = steps[-1]["state"]
    assert final["cached"]["b2"] == 4, "b was freed after a: its blocks must outlive a's"


def test_a_block_filled_by_append_is_cached(student):
    ops = [
        ["allocate", "a", [1, 2, 3]],
        ["append", "a", 4],
        ["append", "a", 5],
        ["allocate", "b", [1, 2, 3, 4, 9]],
        ["free", "a"],
        ["free", "b"],
        ["allocate", "c", [1, 2, 3, 4]],
    ]
    steps = run(student, 8, 4, ops, "cached on fill")
    a_first = steps[1]["state"]["tables"]["a"][0]
    assert steps[3]["state"]["cached"]["b"] == 4
    assert steps[3]["state"]["tables"]["b"][0] == a_first
    assert steps[-1]["state"]["cached"]["c"] == 4
    assert steps[-1]["state"]["tables"]["c"] == [a_first]


def test_refusal_while_reviving_cached_blocks(student):
    ops = [
        ["allocate", "a", [1, 2, 3, 4]],  # 2 of 3 blocks
        ["free", "a"],
        ["can_allocate", 6],  # cached free blocks count as free
        ["allocate", "b", [1, 2, 3, 4, 5, 6, 7]],  # 2 revived hits + 2 new > 3 free
        ["allocate", "c", [1, 2, 3, 4, 5]],  # 2 revived hits + 1 new: fits
        ["append", "c", 6],  # fills c's last block: cached too
        ["free", "c"],
        ["allocate", "d", [1, 2, 3, 4, 5, 6, 7]],  # 3 revived hits + 1 new > 3 free
        ["allocate", "e", [1, 2, 3, 4, 5, 6]],  # 3 revived hits
    ]
    steps = run(student, 3, 2, ops, "refusal with cached blocks")
    assert [s["error"] for s in steps] == [
        None,
        None,
        None,
        "NoFreeBlocks",
        None,
        None,
        None,
        "NoFreeBlocks",
        None,
    ]
    assert steps[2]["result"] is True
    assert steps[4]["state"]["cached"]["c"] == 4
    assert steps[-1]["state"]["cached"]["e"] == 6


def test_forks_of_forks_copy_on_write(student):
    ops = [
        ["allocate", "a", [1, 2, 3, 4, 5]],
        ["fork", "a", "b"],
        ["fork", "b", "c"],
        ["append", "b", 7],  # copy: the last block is held 3 times
        ["append", "c", 8],  # copy: still held by a and c
        ["append", "a", 9],  # a's alone now
        ["append", "b", 7],
        ["allocate", "d", [1, 2, 3, 4]],
        ["fork", "d", "e"],
        ["append", "e", 1],  # d's block is full: a new block, no copy
    ]
    steps = run(student, 10, 4, ops, "forks of forks")
    last = steps[0]["state"]["tables"]["a"][1]
    assert [steps[i]["state"]["refs"][last] for i in (2, 3, 4)] == [3, 2, 1]
    assert steps[3]["result"][0] == last and steps[4]["result"][0] == last
    assert steps[5]["result"] is None and steps[6]["result"] is None
    assert steps[9]["result"] is None
    final = steps[-1]["state"]
    assert final["tables"]["e"][0] == final["tables"]["d"][0]
    assert final["cached"]["e"] == final["cached"]["d"] == 4


def test_tables_are_copies_and_ref_count_bounds(student):
    got = student.run(probe_copies_and_bounds)
    assert len(got["first"]) == 2
    assert got["table"] == got["first"], "changing a returned table must not change the manager"
    assert got["errors"] == ["IndexError", "IndexError"]
